"""The reporting-guideline items the study's data can fill (TRIPOD-LLM, DECIDE-AI; the rest
marked "to be completed by the authors") and the reproducibility section."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from study.report.cells import TO_COMPLETE, e, html_table, number
from study.report.conduct import intended_use, primary_endpoint, results_table

TRIPOD_LLM = (
    "Gallifant J, Afshar M, Ameen S, et al. The TRIPOD-LLM reporting guideline for studies "
    "using large language models. Nat Med. 2025;31(1):60-69. doi:10.1038/s41591-024-03425-5"
)
DECIDE_AI = (
    "Vasey B, Nagendran M, Campbell B, et al. Reporting guideline for the early-stage clinical "
    "evaluation of decision support systems driven by artificial intelligence: DECIDE-AI. "
    "Nat Med. 2022;28(5):924-933. doi:10.1038/s41591-022-01772-9"
)


def _llm_arms(facts: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [r for r in facts["arms"].iter_rows(named=True) if r["kind"] == "llm"]


def _tripod_items(facts: Mapping[str, Any]) -> list[tuple[str, str, str | None]]:
    """(section, topic, what the data says as HTML, or None: to be completed)."""
    llm = _llm_arms(facts)
    ratings: pl.DataFrame = facts["ratings"]
    flow = facts["flow"]
    raters: pl.DataFrame = facts["raters"]
    primary = primary_endpoint(facts)
    protocol = facts["protocols"][-1] if facts["protocols"] else None
    models = "; ".join(
        f"{e(a['model_name'])} version {e(a['model_version'])} (arm {e(a['arm_id'])})" for a in llm
    )
    dates = "; ".join(
        f"arm {e(a['arm_id'])}: answers generated {e(a['first_generated'] or 'not recorded')} to "
        f"{e(a['last_generated'] or 'not recorded')}"
        for a in llm
    )
    submitted = ratings.get_column("submitted_at").drop_nulls() if ratings.height else None
    rating_period = (
        f"ratings submitted {e(str(submitted.min())[:19])} to {e(str(submitted.max())[:19])} (UTC)"
        if submitted is not None and submitted.len()
        else "no ratings submitted"
    )
    prompts = "".join(
        f"<p>Arm {e(a['arm_id'])}: {e(a['prompts'])} distinct prompt(s), "
        f"{e(a['system_prompts'])} system prompt(s), {e(a['parameter_sets'])} parameter set(s)"
        f"{'; parameters ' + '<code>' + e(a['example_parameters']) + '</code>' if a['example_parameters'] else ''}."
        f"{'<pre>' + e(a['example_prompt']) + '</pre>' if a['example_prompt'] else ''}"
        f"{'System prompt:<pre>' + e(a['example_system_prompt']) + '</pre>' if a['example_system_prompt'] else ''}</p>"
        for a in llm
    )
    specialties = (
        ", ".join(
            f"{e(s or 'not recorded')} {n}"
            for s, n in raters.group_by("specialty").agg(pl.len()).sort("specialty").iter_rows()
        )
        if raters.height
        else "none"
    )
    agreement = (facts.get("results") or {}).get("agreement")
    alpha = (
        "; ".join(
            f"{e(r['item'])} {number(r.get('estimate'))} ({number(r.get('ci_low'))} to {number(r.get('ci_high'))})"
            for r in agreement.filter(pl.col("statistic") == "krippendorff_alpha").iter_rows(
                named=True
            )
        )
        if agreement is not None and "statistic" in agreement.columns
        else ""
    )
    ni = results_table(facts)
    primary_result = (
        " ".join(
            f"{e(r.get('variant') or r.get('statistic'))}: {e(r.get('conclusion') or r.get('note'))}"
            for r in ni.filter(pl.col("role") == "primary").iter_rows(named=True)
        )
        if ni is not None and "role" in ni.columns
        else ""
    )
    fewest, most = flow["fewest_raters_per_case"], flow["most_raters_per_case"]
    per_case = (
        (f"{fewest}" if fewest == most else f"{fewest} to {most}") if fewest is not None else None
    )
    return [
        (
            "Title and abstract",
            "Title: identifies the study as evaluating an LLM, the task and the setting",
            None,
        ),
        (
            "Title and abstract",
            "Abstract: structured summary of objectives, LLM, data, evaluation and results",
            None,
        ),
        (
            "Introduction",
            "Background: the clinical task and the rationale for using an LLM",
            # the task, setting, population and language as the protocol locked them; the
            # rationale is the authors' to write
            intended_use(facts),
        ),
        (
            "Introduction",
            "Objectives: the research question and hypotheses",
            (
                f"Non-inferiority of the LLM arm against the reference arm on "
                f"<code>{e(primary.get('item'))}</code>, margin {e(primary.get('margin'))}, "
                f"one-sided alpha {e(primary.get('alpha', 0.025))} (locked protocol)."
            )
            if primary.get("item")
            else None,
        ),
        (
            "Methods: data",
            "Data sources: where the cases and answers come from; dates",
            f"{flow['cases']} cases, {flow['answers']} answers from {facts['arms'].height} arms"
            + (" (synthetic demo data)" if facts["study"].get("synthetic") else "")
            + f"; {dates or 'no LLM arm'}; {rating_period}.",
        ),
        (
            "Methods: data",
            "Data preparation: how cases were selected, cleaned and de-identified",
            None,
        ),
        (
            "Methods: LLM",
            "Model names, versions and access (API or local), date of use",
            (models + ". Access route: " + TO_COMPLETE + ".") if llm else None,
        ),
        (
            "Methods: LLM",
            "Prompts, system prompts and generation parameters; prompt development",
            (prompts + "How the prompts were developed: " + TO_COMPLETE + ".") if llm else None,
        ),
        ("Methods: LLM", "Fine-tuning, retrieval augmentation or other adaptation", None),
        (
            "Methods: outcomes",
            "Outcomes and how they were assessed: instrument, items, scales",
            "; ".join(
                f"{e(i['key'])} {e(i['version'])} ({e(i['title'])})" for i in facts["instruments"]
            )
            + ". Item wording, scales and levels: see Design and the codebook.",
        ),
        (
            "Methods: annotation",
            "Annotation process: number of raters, their expertise, assignment, training",
            f"{raters.height} raters (specialty: {specialties}); "
            f"{e(per_case) if per_case else 'assigned'} raters per case; "
            f"{flow['assignments']} assignments by a seeded design. Rater training and "
            f"calibration: {TO_COMPLETE}.",
        ),
        (
            "Methods: annotation",
            "Blinding of raters to the source of answers",
            "Answers shown under neutral labels in a seeded order; no arm, model or author reaches "
            "the rater's browser; no rater rates their own answer"
            + (
                "; raters guessed each answer's source (blinding indices reported)."
                if (
                    (facts.get("results") or {}).get("blinding") is not None
                    and (facts.get("results") or {})["blinding"].height
                )
                else "."
            ),
        ),
        (
            "Methods: analysis",
            "Statistical methods: estimand, margin, methods, multiplicity, agreement statistics",
            f"Test minus reference; method {e(primary.get('method', 't'))}"
            + (
                f", sensitivity {e(', '.join(primary.get('sensitivity_methods') or []))}"
                if primary.get("sensitivity_methods")
                else ""
            )
            + "; secondary endpoints Holm-adjusted; agreement: Krippendorff's alpha at each item's "
            "level with unit-bootstrap CIs, Fleiss', Randolph's kappa, Gwet's AC1/AC2, ICC.",
        ),
        ("Methods: analysis", "Sample size and its rationale", None),
        (
            "Open science",
            "Protocol: where it can be accessed; registration",
            (
                f"Locked protocol version {e(protocol['version'])}, SHA-256 "
                f"<code>{e(protocol['content_hash'])}</code>. Registration: {TO_COMPLETE}."
            )
            if protocol
            else None,
        ),
        ("Open science", "Funding, conflicts of interest, data and code availability", None),
        ("Open science", "Patient and public involvement", None),
        (
            "Results",
            "Flow of cases and raters, with exclusions",
            f"See Flow: {flow['cases']} cases, {flow['assignments']} assignments, {flow['done']} "
            f"rated, {flow['skipped']} skipped, {flow['flagged']} flagged.",
        ),
        ("Results", "Inter-rater agreement", f"Krippendorff's alpha: {alpha}." if alpha else None),
        ("Results", "Performance: primary and secondary results", primary_result or None),
        ("Discussion", "Interpretation, limitations, implications for practice", None),
    ]


def _guideline(items: list[tuple[str, str, str | None]], citation: str) -> str:
    rows = [
        (e(section), e(topic), filled if filled else f'<span class="todo">{TO_COMPLETE}</span>')
        for section, topic, filled in items
    ]
    return (
        f"<p>Topics of the checklist ({e(citation)}), paraphrased; the numbering is the "
        "checklist's own. Filled from the study's data where it can be.</p>"
        + html_table(
            ("section", "topic", "from this study"),
            rows,
            raw=True,
            # what the study says holds prompts, parameters and a protocol hash: room for them
            widths=("9em", "30%", None),
        )
    )


def decide_section(facts: Mapping[str, Any]) -> str:
    llm = _llm_arms(facts)
    raters: pl.DataFrame = facts["raters"]
    items = [
        (
            "AI system",
            "Identification of the AI system (name, version)",
            "; ".join(f"{e(a['model_name'])} {e(a['model_version'])}" for a in llm) or None,
        ),
        (
            "Participants",
            "Users: number and characteristics of the people who used or judged the system",
            f"{raters.height} clinician raters; specialties as in Flow.",
        ),
        ("Implementation", "Setting, integration into the clinical workflow", None),
        ("Safety", "Errors and harms observed, and how they were handled", None),
        ("Human factors", "Usability, learning curve, user trust", None),
    ]
    return (
        "<p>DECIDE-AI applies to the early live clinical evaluation of AI decision support. This "
        "study rates answers offline; the items below apply only where the LLM is also used in "
        "care.</p>" + _guideline(items, DECIDE_AI)
    )


def reproducibility_section(facts: Mapping[str, Any]) -> str:
    seed = facts["seed"]
    protocol = facts["protocols"][-1] if facts["protocols"] else None
    rows = [
        (
            "audit chain head",
            f"<code>{e(facts['audit_head'])}</code> (event {e(facts['audit_seq'])})",
        ),
        ("protocol hash", f"<code>{e(protocol['content_hash'])}</code>" if protocol else "—"),
        (
            "assignment seed",
            e(seed.get("seed")) if seed.get("seed") is not None else e(seed.get("note")),
        ),
        ("seed commitment", f"<code>{e(seed.get('commitment'))}</code>"),
    ]
    return (
        html_table(("", ""), rows, raw=True)
        + "<p>The bundle's <code>manifest.json</code> records the package versions, the analysis "
        "seed and the SHA-256 of every file; <code>python -m study audit verify --expect "
        "HASH</code> shows that the audit chain still holds this head.</p>"
    )


def tripod_section(facts: Mapping[str, Any]) -> str:
    """The TRIPOD-LLM items, filled where the study's data can."""
    return _guideline(_tripod_items(facts), TRIPOD_LLM)
