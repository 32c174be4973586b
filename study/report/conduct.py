"""The report's sections on what was planned and what happened: summary, design (arms,
instruments, the locked plan), the flow of cases and raters, and deviations from the protocol."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import polars as pl

from study.report.cells import TO_COMPLETE, e, html_table


def primary_endpoint(facts: Mapping[str, Any]) -> dict[str, Any]:
    """The plan's primary endpoint as the results read it (its direction filled from the item's
    declaration, ``study.protocol``), without the fields the protocol leaves unset."""
    results = facts.get("results") or {}
    plan = results.get("protocol") or facts.get("plan")
    primary = plan.primary if plan is not None else None
    if primary is None:
        return {}
    fields = {
        "item": primary.item,
        "margin": primary.margin,
        "direction": primary.direction,
        "alpha": primary.alpha,
        "method": primary.method,
        "statistic": primary.statistic,
        "sensitivity_methods": list(primary.sensitivity_methods),
    }
    return {k: v for k, v in fields.items() if v is not None}


def intended_use(facts: Mapping[str, Any]) -> str | None:
    """The locked protocol's intended use as an HTML table (field, what it states), or None
    when it states none."""
    plan = (facts.get("results") or {}).get("protocol") or facts.get("plan")
    use = plan.intended_use if plan is not None else None
    if use is None:
        return None
    return html_table(("intended use", "as locked"), use.described())


def results_table(facts: Mapping[str, Any]) -> pl.DataFrame | None:
    """The results table (``analyses.RESULT_COLUMNS``), or None before a plan was run."""
    return (facts.get("results") or {}).get("results")


def summary_section(facts: Mapping[str, Any]) -> str:
    study, flow = facts["study"], facts["flow"]
    ratings: pl.DataFrame = facts["ratings"]
    parts = [
        f"<p>{e(study.get('description') or '')}</p>",
        html_table(
            ("what", "count"),
            [
                ("cases", flow["cases"]),
                ("arms", facts["arms"].height),
                ("answers", flow["answers"]),
                ("raters with assignments", flow["raters_assigned"]),
                ("assignments (done)", f"{flow['assignments']} ({flow['done']})"),
                ("ratings exported (current, submitted)", ratings.height),
            ],
        ),
    ]
    if (use := intended_use(facts)) is not None:
        parts.append(use)
    ni = results_table(facts)
    if ni is not None and ni.height:
        for row in ni.filter(pl.col("role") == "primary").head(1).iter_rows(named=True):
            parts.append(
                f"<p><strong>Primary result:</strong> {e(row.get('conclusion') or row.get('note'))}</p>"
            )
    return "".join(parts)


def design_section(facts: Mapping[str, Any]) -> str:
    arms: pl.DataFrame = facts["arms"]
    arm_rows = [
        (
            r["arm_id"],
            r["kind"],
            r["label"],
            r["model_name"] or "",
            r["model_version"] or "",
            r["author_role"] or "",
            r["answers"],
        )
        for r in arms.iter_rows(named=True)
    ]
    instruments = [
        (i["key"], i["version"], i["title"], i["content_hash"], i["citation"])
        for i in facts["instruments"]
    ]
    items = [
        (
            r["item_key"],
            f"{r['instrument_key']} {r['instrument_version']}",
            r["prompt"],
            r["type"],
            r["level"],
            r["direction"],
            r["scope"],
            # no break space around "=": a code stays on the line of its label
            "; ".join(
                f"{o.get('value')}\u00a0=\u00a0{o.get('label')}"
                for o in json.loads(r["options"] or "[]")
            ),
        )
        for r in facts["items"].iter_rows(named=True)
    ]
    protocol = facts["protocols"][-1] if facts["protocols"] else None
    primary = primary_endpoint(facts)
    design_event = next(
        (
            ev["payload"]
            for ev in reversed(facts["events"])
            if ev["action"] == "assignments.persist"
        ),
        {},
    )
    plan = [
        ("primary item", primary.get("item", TO_COMPLETE)),
        ("margin", primary.get("margin", "—")),
        ("direction", primary.get("direction", "from the item")),
        ("one-sided alpha", primary.get("alpha", 0.025)),
        ("method", primary.get("method", "t")),
        ("statistic", primary.get("statistic", "from the item (mean or risk difference)")),
        ("sensitivity methods", ", ".join(primary.get("sensitivity_methods") or []) or "—"),
        ("assignment algorithm", ", ".join(design_event.get("algorithm") or []) or "—"),
        (
            "assignment design",
            "; ".join(
                f"{k} {v}" for k, v in (design_event.get("design") or {}).items() if k != "raters"
            )
            or "—",
        ),
        ("ratings collected", facts["origin"].get("origin", "—")),
    ]
    what = {
        "protocol.lock": "protocol version {version} locked",
        "assignments.persist": "assignments stored",
        "study.rating": "rating opened",
        "study.closed": "rating closed",
        "study.unblinded": "unblinded",
    }
    timeline = [
        (
            str(ev["occurred_at"])[:19],
            what[ev["action"]].format(version=ev["payload"].get("version", "")),
            ev["actor"],
            ev["seq"],
        )
        for ev in facts["events"]
        if ev["action"] in what
    ]
    return (
        "<h3>Timeline (UTC, from the audit trail)</h3>"
        + html_table(("when", "what", "by", "audit event"), timeline)
        + "<h3>Arms</h3>"
        + html_table(
            ("arm", "kind", "label", "model", "model version", "author role", "answers"), arm_rows
        )
        + "<h3>Instruments</h3>"
        + html_table(
            ("key", "version", "title", "content hash", "source"), instruments, notes=("source",)
        )
        + "<h3>Items</h3>"
        + html_table(
            ("item", "instrument", "wording", "type", "level", "direction", "rated per", "values"),
            items,
            # the wording and the values are the sentences here; the codes keep to one word
            widths=(None, None, "25%", None, None, None, None, "22%"),
        )
        + "<h3>Analysis plan (locked protocol"
        + (
            f" version {e(protocol['version'])}, hash <code>{e(protocol['content_hash'])}</code>"
            if protocol
            else ""
        )
        + ")</h3>"
        + html_table(("", ""), plan)
    )


def flow_section(facts: Mapping[str, Any]) -> str:
    flow = facts["flow"]
    ratings: pl.DataFrame = facts["ratings"]
    rated_cases = ratings.get_column("case").n_unique() if ratings.height else 0
    rated_raters = ratings.get_column("rater").n_unique() if ratings.height else 0
    not_assigned = flow["cases"] - flow["cases_assigned"]
    boxes = [
        f"{flow['cases']} cases imported",
        f"{flow['cases_assigned']} cases assigned to {flow['raters_assigned']} raters "
        f"({flow['assignments']} assignments)",
        f"{flow['done']} assignments rated; {flow['skipped']} skipped; "
        f"{flow['assignments'] - flow['done'] - flow['skipped']} not rated",
        f"{rated_cases} cases and {rated_raters} raters in the export ({ratings.height} ratings)",
    ]
    flow_html = (
        '<div class="flow">'
        + " → ".join(f'<div class="box">{e(b)}</div>' for b in boxes)
        + "</div>"
    )
    exclusions = [
        ("cases imported but never assigned", not_assigned, "not in the assignment design"),
        ("assignments skipped by their rater", flow["skipped"], "reasons below"),
        (
            "assignments not rated (yet)",
            flow["assignments"] - flow["done"] - flow["skipped"],
            "rating stopped before they were done",
        ),
        ("cases flagged as faulty (kept, not excluded)", flow["flagged"], "reasons below"),
    ]
    flags: pl.DataFrame = facts["case_flags"]
    flag_rows = [
        (r["kind"], r["case_id"], r["rater"], r["reason"]) for r in flags.iter_rows(named=True)
    ]
    raters: pl.DataFrame = facts["raters"]
    by_specialty = (
        raters.group_by("specialty")
        .agg(pl.len().alias("raters"), pl.col("done").sum())
        .sort("specialty")
        if raters.height
        else raters
    )
    per_rater = [
        (r["rater"], r["specialty"], r["assignments"], r["done"])
        for r in raters.iter_rows(named=True)
    ]
    return (
        flow_html
        + "<h3>Exclusions and why</h3>"
        + html_table(("what", "count", "why"), exclusions)
        + "<p>No rater or rating is excluded automatically; flagged raters and cases stay in "
        "every analysis unless the protocol says otherwise.</p>"
        + (
            "<h3>Skipped and flagged cases</h3>"
            + html_table(("kind", "case", "rater", "reason"), flag_rows)
            if flag_rows
            else ""
        )
        + "<h3>Raters</h3>"
        + html_table(
            ("specialty", "raters", "assignments done"),
            [
                (r["specialty"] or "not recorded", r["raters"], r["done"])
                for r in by_specialty.iter_rows(named=True)
            ],
        )
        + "<details><summary>Per rater</summary>"
        + html_table(("rater", "specialty", "assignments", "done"), per_rater)
        + "</details>"
    )


def deviations_section(facts: Mapping[str, Any]) -> str:
    locks = {
        ev["payload"].get("version"): ev
        for ev in facts["events"]
        if ev["action"] == "protocol.lock"
    }
    later = [p for p in facts["protocols"] if p["version"] > 1]
    rows = [
        (
            p["version"],
            p["locked_at"],
            p["locked_by"],
            p["reason"] or "",
            p["content_hash"],
            locks.get(p["version"], {}).get("seq", "—"),
        )
        for p in later
    ]
    unknown: pl.DataFrame = facts["unknown_provenance"]
    unknown_rows = [
        (r["arm_id"], r["field"], r["level"], r["answers"], r["consequence"])
        for r in unknown.iter_rows(named=True)
    ]
    out = (
        html_table(
            ("version", "locked at (UTC)", "by", "reason", "content hash", "audit event"),
            rows,
            details=("reason",),  # the coordinator's own words, as long as they needed
        )
        if rows
        else "<p>None: the protocol locked as version 1 was never amended.</p>"
    )
    if unknown_rows:
        out += "<h3>Provenance the sources never recorded</h3>" + html_table(
            ("arm", "field", "level", "answers", "consequence"), unknown_rows
        )
    origin = facts["origin"].get("origin")
    if origin in ("imported", "mixed"):
        out += (
            f"<p>Ratings were {'all' if origin == 'imported' else 'partly'} imported from "
            "elsewhere, not collected blind in Clinval.</p>"
        )
    return out
