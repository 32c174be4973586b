"""The synthetic demo study: 42 patient questions, a clinician arm and an LLM arm, six raters.

Two parts:

- :func:`simulate_ratings` (pure, seeded): a rater model that fills in the ``ayers_harm``
  instrument for a share of the assignments, so the monitor and analysis pages have data;
- :func:`build_demo`: builds the study through ``study.services`` from the files in
  ``data/demo/`` (see its README), exactly as a coordinator would: import, attach the
  instrument, add users and roles, lock the protocol, persist a seeded design, start rating,
  and submit the simulated ratings as the raters.

Everything here is labelled synthetic: the study's ``synthetic`` flag is set, every case is tagged
``synthetic``, and the arms' labels say "synthetic demo".

The rater model (all on the 1-5 scale before rounding), loosely shaped like Ayers et al. (2023),
where chatbot answers were rated higher for quality and much higher for empathy:

    latent quality(answer)  = base_q[arm] + case_q + answer_q - error penalty
    latent empathy(answer)  = base_e[arm] + case_e + answer_e
    rating = clip(round(latent + leniency[rater] + noise), 1, 5)

Answers listed in ``data/demo/answer_errors.csv`` carry a subtle error: each rater notices it
with a probability that grows with its severity; a rater who notices marks possible harm (extent
and likelihood by severity) and rates quality lower. Other answers get an occasional mild
harm flag, more often when the rater scored their quality low. The preferred response follows
quality (and, less, empathy), with a tie when the two are close. Seconds on task grow with the
words shown.

Randomness comes from ``numpy.random.default_rng(seed)``: the same seed gives the same ratings
with this numpy version. (Unlike the assignment, the demo need not replay across versions.)
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from study.errors import ConfigError, StudyError
from study.services.people import DEMO_ISSUER

DEMO_DIR = Path(__file__).resolve().parent.parent / "data" / "demo"
DEMO_STUDY_ID = "demo-patient-questions"
DEMO_STUDY_NAME = "Demo: patient questions (synthetic)"
DEMO_DESCRIPTION = (
    "Synthetic demo data written for Clinval; not real patients. 42 invented patient questions "
    "over 8 specialties, each answered by a clinician and by a demo LLM; six fictional raters; "
    "ratings simulated by a seeded rater model (study.demo)."
)
DEMO_INSTRUMENT = "ayers_harm"
TEST_ARM = "llm_a"
REFERENCE_ARM = "clinician"
RATERS_PER_CASE = 3
ISSUER = DEMO_ISSUER
COORDINATOR = {
    "user_id": "demo-coordinator",
    "display_name": "Demo Coordinator (demo)",
    "email": "coordinator@demo.clinval.example",
    "specialty": None,
    "subject": "demo-coordinator",
}
STATISTICIAN = {
    "user_id": "demo-statistician",
    "display_name": "Demo Statistician (demo)",
    "email": "statistician@demo.clinval.example",
    "specialty": None,
    "subject": "demo-statistician",
}

# Item keys of the ayers_harm instrument that the rater model fills in.
ITEM_BETTER = "better_response"
ITEM_QUALITY = "quality"
ITEM_EMPATHY = "empathy"
ITEM_HARM_EXTENT = "harm_extent"
ITEM_HARM_LIKELIHOOD = "harm_likelihood"
ITEM_COULD_HARM = "could_cause_harm"
SIMULATED_ITEMS = (
    ITEM_BETTER,
    ITEM_QUALITY,
    ITEM_EMPATHY,
    ITEM_HARM_EXTENT,
    ITEM_HARM_LIKELIHOOD,
    ITEM_COULD_HARM,
)
SEVERITIES = ("mild", "moderate", "severe")

SIMULATION_COLUMNS = {
    "assignment_id": pl.String,
    "case_id": pl.String,
    "rater_id": pl.String,
    "item": pl.String,
    "label": pl.String,  # "Response A" ...; null for the assignment-level preference
    "answer_id": pl.String,
    "arm_id": pl.String,
    "value": pl.Float64,  # numeric items; null for the preference
    "value_text": pl.String,  # the preference: "A", "B", ... or "tie"; null otherwise
    "seconds": pl.Float64,  # time on task for the whole assignment
}


@dataclass(frozen=True, slots=True)
class RaterModel:
    """Parameters of the simulated raters; quality and empathy on the 1-5 scale.

    Defaults give the LLM arm a slightly higher quality (+0.35 before error penalties) and a
    clearly higher empathy (+1.3) than clinicians, the direction Ayers et al. (2023) reported.
    """

    rated_share: float = 0.6
    quality_mean: Mapping[str, float] = field(
        default_factory=lambda: {REFERENCE_ARM: 3.45, TEST_ARM: 3.8}
    )
    empathy_mean: Mapping[str, float] = field(
        default_factory=lambda: {REFERENCE_ARM: 2.5, TEST_ARM: 3.8}
    )
    case_sd: float = 0.35
    answer_sd: float = 0.3
    leniency_sd: float = 0.3
    noise_sd: float = 0.55
    # Probability that a rater notices an error, and the quality points it costs when noticed
    # (an unnoticed error still costs a little: the answer is weaker in other ways too).
    notice: Mapping[str, float] = field(
        default_factory=lambda: {"mild": 0.55, "moderate": 0.7, "severe": 0.85}
    )
    penalty_noticed: Mapping[str, float] = field(
        default_factory=lambda: {"mild": 0.9, "moderate": 1.4, "severe": 2.0}
    )
    penalty_unnoticed: float = 0.3
    false_alarm: float = 0.04  # harm flag on an answer without a planted error
    tie_band: float = 0.4  # |utility difference| below this is a tie
    seconds_base: float = 35.0
    seconds_per_word: float = 0.22


def simulate_ratings(
    assignments: pl.DataFrame,
    presentations: pl.DataFrame,
    *,
    errors: Mapping[str, str] | None = None,
    words: Mapping[str, int] | None = None,
    seed: int = 2026,
    model: RaterModel | None = None,
) -> pl.DataFrame:
    """Simulate the raters' submissions for about ``model.rated_share`` of the assignments.

    Parameters
    ----------
    assignments : as ``study.assignment.design_assignments`` returns (assignment_id, case_id,
        rater_id, queue_position, ...).
    presentations : likewise (assignment_id, answer_id, arm_id, position, label).
    errors : answer_id -> severity ("mild", "moderate", "severe") of its planted error.
    words : answer_id -> number of words, for time on task (default 150 per answer).
    seed : the same seed gives the same frame.
    model : the rater model's parameters.

    Returns
    -------
    Long frame with columns :data:`SIMULATION_COLUMNS`, one row per (rated assignment, item,
    answer) for per-answer items and one row per rated assignment for ``better_response``.
    Raters work through their queue in order and stop at different points; exactly
    ``round(rated_share * n_assignments)`` assignments are rated. Harm items are consistent:
    ``could_cause_harm`` is 1 exactly when ``harm_extent`` > 0, and likelihood is 0 when there is
    no harm. Sorted by rater, queue position, item, label.
    """
    model = model or RaterModel()
    errors = dict(errors or {})
    bad = sorted({s for s in errors.values() if s not in SEVERITIES})
    if bad:
        raise StudyError(f"Unknown error severities {bad}; use one of {', '.join(SEVERITIES)}.")
    if not 0.0 <= model.rated_share <= 1.0:
        raise StudyError(f"rated_share must lie in [0, 1], got {model.rated_share}.")
    rng = np.random.default_rng(seed)

    raters = sorted(set(assignments.get_column("rater_id").to_list()))
    cases = sorted(set(assignments.get_column("case_id").to_list()))
    answers = presentations.select("answer_id", "arm_id").unique().sort("answer_id").iter_rows()
    answer_arm = dict(answers)
    unknown_arms = sorted({a for a in answer_arm.values() if a not in model.quality_mean})
    if unknown_arms:
        raise StudyError(f"The rater model has no means for arm(s) {', '.join(unknown_arms)}.")

    # Latent properties, drawn in a fixed order so that the frame depends only on the seed.
    leniency = dict(zip(raters, rng.normal(0.0, model.leniency_sd, len(raters)), strict=True))
    speed = dict(zip(raters, np.exp(rng.normal(0.0, 0.25, len(raters))), strict=True))
    progress = dict(zip(raters, rng.uniform(0.5, 1.5, len(raters)), strict=True))
    case_q = dict(zip(cases, rng.normal(0.0, model.case_sd, len(cases)), strict=True))
    case_e = dict(zip(cases, rng.normal(0.0, model.case_sd, len(cases)), strict=True))
    answer_ids = sorted(answer_arm)
    answer_q = dict(zip(answer_ids, rng.normal(0.0, model.answer_sd, len(answer_ids)), strict=True))
    answer_e = dict(zip(answer_ids, rng.normal(0.0, model.answer_sd, len(answer_ids)), strict=True))

    rated = _rated_assignments(assignments, raters, progress, model.rated_share, rng)
    shown = {
        key: group.sort("position")
        for (key,), group in presentations.group_by("assignment_id", maintain_order=True)
    }

    rows: list[tuple[Any, ...]] = []
    for assignment_id, case_id, rater in rated:
        panel = shown[assignment_id]
        utilities: dict[str, float] = {}
        per_answer: list[tuple[str, str, str, dict[str, float]]] = []
        for answer_id, arm_id, label in panel.select("answer_id", "arm_id", "label").iter_rows():
            severity = errors.get(answer_id)
            noticed = severity is not None and rng.random() < model.notice[severity]
            penalty = 0.0
            if severity is not None:
                penalty = model.penalty_noticed[severity] if noticed else model.penalty_unnoticed
            q_latent = model.quality_mean[arm_id] + case_q[case_id] + answer_q[answer_id] - penalty
            e_latent = model.empathy_mean[arm_id] + case_e[case_id] + answer_e[answer_id]
            quality = _to_scale(q_latent + leniency[rater] + rng.normal(0.0, model.noise_sd))
            empathy = _to_scale(e_latent + leniency[rater] + rng.normal(0.0, model.noise_sd))
            extent, likelihood = _harm(severity, noticed, quality, model, rng)
            values = {
                ITEM_QUALITY: float(quality),
                ITEM_EMPATHY: float(empathy),
                ITEM_HARM_EXTENT: float(extent),
                ITEM_HARM_LIKELIHOOD: float(likelihood),
                ITEM_COULD_HARM: float(extent > 0),
            }
            per_answer.append((answer_id, arm_id, label, values))
            utilities[label] = quality + 0.3 * empathy - 1.5 * extent + rng.normal(0.0, 0.5)

        words_shown = sum((words or {}).get(a, 150) for a, _, _, _ in per_answer)
        seconds = (model.seconds_base + model.seconds_per_word * words_shown) * speed[rater]
        seconds = round(float(seconds * math.exp(rng.normal(0.0, 0.3))), 1)

        ranked = sorted(utilities.items(), key=lambda kv: (-kv[1], kv[0]))
        if len(ranked) > 1 and ranked[0][1] - ranked[1][1] < model.tie_band:
            choice = "tie"
        else:
            choice = ranked[0][0].removeprefix("Response ").strip()
        rows.append(
            (assignment_id, case_id, rater, ITEM_BETTER, None, None, None, None, choice, seconds)
        )
        for answer_id, arm_id, label, values in per_answer:
            for item, value in values.items():
                rows.append(
                    (
                        assignment_id,
                        case_id,
                        rater,
                        item,
                        label,
                        answer_id,
                        arm_id,
                        value,
                        None,
                        seconds,
                    )
                )

    frame = pl.DataFrame(rows, schema=SIMULATION_COLUMNS, orient="row")
    order = assignments.select("assignment_id", "queue_position")
    return (
        frame.join(order, on="assignment_id", how="left")
        .sort("rater_id", "queue_position", "item", "label", nulls_last=False)
        .drop("queue_position")
    )


def submissions(simulated: pl.DataFrame) -> list[dict[str, Any]]:
    """Group :func:`simulate_ratings` rows into one submission per assignment.

    Each: ``{"assignment_id", "rater_id", "case_id", "seconds", "values"}`` where ``values`` is
    what ``rating.submit_rating`` takes: ``{"better_response": "A", "quality": {"Response A":
    4, "Response B": 3}, ...}`` (whole numbers as ``int``).
    """
    out: list[dict[str, Any]] = []
    for (assignment_id,), group in simulated.group_by("assignment_id", maintain_order=True):
        first = group.row(0, named=True)
        values: dict[str, Any] = {}
        for row in group.iter_rows(named=True):
            if row["label"] is None:
                values[row["item"]] = row["value_text"]
            else:
                values.setdefault(row["item"], {})[row["label"]] = int(row["value"])
        out.append(
            {
                "assignment_id": assignment_id,
                "rater_id": first["rater_id"],
                "case_id": first["case_id"],
                "seconds": first["seconds"],
                "values": values,
            }
        )
    return out


# --- demo files ----------------------------------------------------------------------------------


def read_raters(path: Path | None = None) -> list[dict[str, str | None]]:
    """The demo raters: dicts with user_id, display_name, email, specialty, issuer, subject."""
    path = path or DEMO_DIR / "raters.csv"
    with open(path, newline="", encoding="utf-8") as handle:
        rows = [{k: (v or None) for k, v in row.items()} for row in csv.DictReader(handle)]
    needed = {"user_id", "display_name", "email", "specialty", "issuer", "subject"}
    if not rows or needed - set(rows[0]):
        raise ConfigError(f"{path} needs the columns {', '.join(sorted(needed))}.")
    return rows


def read_answer_errors(path: Path | None = None) -> dict[str, str]:
    """answer_id -> severity of the deliberate error planted in that demo answer."""
    path = path or DEMO_DIR / "answer_errors.csv"
    with open(path, newline="", encoding="utf-8") as handle:
        return {row["answer_id"]: row["severity"] for row in csv.DictReader(handle)}


def demo_protocol(*, instrument: Mapping[str, Any]) -> dict[str, Any]:
    """The demo's analysis plan, frozen by ``lock_protocol`` before any rating.

    The assignment seed is not in it: the lock seals it and adds its commitment
    (``assignment_seed_commitment``), so that the allocation cannot be replayed before
    unblinding.

    Primary: mean quality of information (1-5), LLM minus clinicians, non-inferiority margin 0.5
    points, higher is better, one-sided alpha 0.025 (i.e. the lower bound of the two-sided 95%
    interval must lie above -0.5); linear mixed model with crossed random intercepts for case and
    rater, paired t interval over cases as sensitivity analysis.
    """
    return {
        "title": DEMO_STUDY_NAME,
        "synthetic": True,
        # what the demo validates the model for (study.protocol.IntendedUse)
        "intended_use": {
            "task": "answering patients' written questions about their care",
            "setting": "a patient portal; answers reviewed by a clinician before sending",
            "population": "adults in primary and specialist care (synthetic cases)",
            "language": "English",
        },
        "instrument": dict(instrument),
        "arms": {"test": TEST_ARM, "reference": REFERENCE_ARM},
        "primary_endpoint": {
            "item": ITEM_QUALITY,
            "name": "quality of information",
            "scale": [1, 5],
            "estimand": "mean difference test - reference",
            "margin": 0.5,
            "direction": "higher",
            "alpha": 0.025,
            "sided": "one-sided",
            "method": "mixed",
            "sensitivity_methods": ["t"],
            "model": "value ~ arm + (1|case) + (1|rater)",
        },
        "secondary_endpoints": [
            {"item": ITEM_EMPATHY, "margin": 0.5, "direction": "higher", "method": "mixed"},
            {
                "item": ITEM_COULD_HARM,
                "statistic": "risk_difference",
                "margin": 0.05,
                "direction": "lower",
                "method": "newcombe",
            },
            {"item": ITEM_BETTER, "statistic": "win_rates"},
        ],
        "multiplicity": "holm (secondary endpoints)",
        "assignment": {
            "raters_per_case": RATERS_PER_CASE,
            "algorithm": _assignment_algorithm(),
            "exclude_own_answers": True,
        },
    }


def build_demo(store: Any, *, seed: int = 2026, study_id: str = DEMO_STUDY_ID) -> str:
    """Build the synthetic demo study in ``store`` through ``study.services``; return its id.

    The study ends in ``rating`` with about 60% of assignments rated by the simulated raters,
    so the rater queue, monitor and analysis pages all have something to show. Same seed, same
    study (apart from timestamps). Raises ``ConflictError`` if ``study_id`` exists already.

    All or nothing: the whole build is one transaction, so a failure or an interrupt (Ctrl-C)
    midway leaves no trace (no users, study, rows or audit events of it), and a later build
    starts afresh.
    """
    with store.transaction():
        return _build(store, seed=seed, study_id=study_id)


def _build(store: Any, *, seed: int, study_id: str) -> str:
    """``build_demo``'s steps; runs inside its transaction.

    The demo builder (a named system actor) creates the people, the study and its design; each
    simulated rater then submits as themselves, signed in through the demo picker's step.
    """
    from study.access import system_caller
    from study.assignment import design_assignments
    from study.instruments import get_builtin
    from study.services import content, design, instrument_library, lifecycle, people, studies

    builder = system_caller("demo")
    raters = read_raters()
    for person in (COORDINATOR, STATISTICIAN, *raters):
        people.ensure_user(
            store,
            builder,
            issuer=str(person.get("issuer") or ISSUER),
            subject=str(person["subject"]),
            email=person["email"],
            display_name=person["display_name"],
            specialty=person["specialty"],
            user_id=str(person["user_id"]),
        )

    # the rubric study is created first (screens list the newest study first, so the main demo
    # stays the one shown by default) and filled last (so the main demo's rows keep their ids)
    rubric_id = studies.create_study(
        store,
        builder,
        RUBRIC_STUDY_NAME,
        study_id=RUBRIC_STUDY_ID,
        synthetic=True,
        description=RUBRIC_DESCRIPTION,
    )
    study_id = studies.create_study(
        store,
        builder,
        DEMO_STUDY_NAME,
        study_id=study_id,
        synthetic=True,
        description=DEMO_DESCRIPTION,
    )
    # the demo's coordinator may create studies (a coordinator for every study): someone
    # trying Clinval starts a study of their own in Design, which a study-scoped role refuses
    people.grant_role(store, builder, None, COORDINATOR["user_id"], "coordinator")
    people.grant_role(store, builder, study_id, STATISTICIAN["user_id"], "statistician")
    rater_ids = [str(r["user_id"]) for r in raters]
    for rater in rater_ids:
        people.grant_role(store, builder, study_id, rater, "rater")

    content.import_arms(store, builder, study_id, DEMO_DIR / "arms.csv")
    content.import_cases(store, builder, study_id, DEMO_DIR / "cases.jsonl")
    content.import_answers(store, builder, study_id, DEMO_DIR / "answers.jsonl")

    instrument = get_builtin(DEMO_INSTRUMENT)
    missing = sorted(set(SIMULATED_ITEMS) - {item.key for item in instrument.items})
    if missing:
        raise ConfigError(
            f"Built-in instrument '{DEMO_INSTRUMENT}' lacks the items the demo rates: "
            + ", ".join(missing)
        )
    key, version = instrument_library.add_instrument(store, builder, instrument)
    instrument_library.attach_instrument(store, builder, study_id, key, version)

    protocol = demo_protocol(
        instrument={"key": key, "version": version, "content_hash": instrument.content_hash()},
    )
    design.lock_protocol(store, builder, study_id, protocol, seed=seed)

    cases = content.list_cases(store, builder, study_id)
    answers = content.list_answers(store, builder, study_id)
    specialty = {str(r["user_id"]): r["specialty"] for r in raters}
    assignments, presentations = design_assignments(
        cases.get_column("case_id").to_list(),
        rater_ids,
        raters_per_case=RATERS_PER_CASE,
        answers=answers.select("answer_id", "case_id", "arm_id", "author_id"),
        seed=seed,
        rater_specialty=specialty,
        case_specialty=dict(cases.select("case_id", "specialty").iter_rows()),
    )
    design.persist_assignments(store, builder, study_id, assignments, presentations, seed=seed)
    lifecycle.start_rating(store, builder, study_id)
    _rate_main(store, study_id, rater_ids, assignments, presentations, answers, seed)
    _fill_rubric(store, builder, rubric_id, seed=seed)
    return study_id


def _rate_main(
    store: Any,
    study_id: str,
    rater_ids: list[str],
    assignments: pl.DataFrame,
    presentations: pl.DataFrame,
    answers: pl.DataFrame,
    seed: int,
) -> None:
    """Submit the simulated ratings of the main demo study, each rater as themselves."""
    from study.services import people, rating

    words = {a: len(t.split()) for a, t in answers.select("answer_id", "text").iter_rows()}
    simulated = simulate_ratings(
        assignments, presentations, errors=read_answer_errors(), words=words, seed=seed
    )
    callers = {rater: people.demo_sign_in(store, rater) for rater in rater_ids}
    stored_id = {}
    for rater, caller in callers.items():
        queue = rating.rater_queue(store, caller, study_id)
        for assignment, case_id in queue.select("assignment", "case_id").iter_rows():
            stored_id[(rater, case_id)] = assignment
    for submission in submissions(simulated):
        rater = submission["rater_id"]
        rating.submit_rating(
            store,
            callers[rater],
            study_id,
            stored_id[(rater, submission["case_id"])],
            submission["values"],
            seconds=submission["seconds"],
        )


# --- the rubric demo -----------------------------------------------------------------------------

RUBRIC_STUDY_ID = "demo-rubric-conversations"
RUBRIC_STUDY_NAME = "Demo: rubric conversations (synthetic)"
RUBRIC_DESCRIPTION = (
    "Synthetic demo data written for Clinval; not real patients. Four invented two-turn health "
    "conversations with HealthBench-style rubric criteria (points, negative for behaviour to "
    "avoid), each answered by a clinician and by a demo LLM; two demo raters mark every "
    "criterion met or not met; ratings of one rater simulated (study.demo)."
)
RUBRIC_DIR = DEMO_DIR / "rubric"
RUBRIC_RATERS = ("demo-rater-05", "demo-rater-06")
"""Demo raters who also rate the rubric study (not demo-rater-01, whose screen the browser
tests drive, and not the coordinator or statistician, who stay in the main study alone)."""
RUBRIC_SIMULATED = "demo-rater-06"
"""The rater whose rubric ratings are simulated; demo-rater-05's queue is left to a newcomer."""
RUBRIC_MET = {
    "rubric-001:clinician": {"c1", "c2", "c3", "c5"},
    "rubric-001:llm_a": {"c2", "c3", "c5"},
    "rubric-002:clinician": {"c1", "c2", "c3"},
    "rubric-002:llm_a": {"c1", "c2", "c3"},
    "rubric-003:clinician": {"c1", "c2", "c4"},
    "rubric-003:llm_a": {"c1", "c2"},
    "rubric-004:clinician": {"c1", "c2", "c3"},
    "rubric-004:llm_a": {"c1", "c2", "c3"},
}
"""Which criteria each demo answer meets as written (the simulated rater misjudges a few)."""
RUBRIC_SLIP = 0.1
"""Chance that the simulated rater marks a criterion the other way."""


def _fill_rubric(store: Any, builder: Any, study_id: str, *, seed: int) -> None:
    """The rubric demo study (created as a draft), through the services as a coordinator would
    build it; left in rating, with one rater's assignments rated by the seeded model above and
    the other's open."""
    from study.assignment import design_assignments
    from study.instruments import get_builtin
    from study.services import content, design, instrument_library, lifecycle, people, rating

    for rater in RUBRIC_RATERS:
        people.grant_role(store, builder, study_id, rater, "rater")
    content.import_arms(store, builder, study_id, RUBRIC_DIR / "arms.csv")
    content.import_cases(store, builder, study_id, RUBRIC_DIR / "cases.jsonl")
    content.import_answers(store, builder, study_id, RUBRIC_DIR / "answers.jsonl")
    instrument = get_builtin("healthbench_rubric")
    key, version = instrument_library.add_instrument(store, builder, instrument)
    instrument_library.attach_instrument(store, builder, study_id, key, version)
    design.lock_protocol(
        store,
        builder,
        study_id,
        {
            "title": RUBRIC_STUDY_NAME,
            "synthetic": True,
            "instrument": {"key": key, "version": version},
            "arms": {"test": TEST_ARM, "reference": REFERENCE_ARM},
            "primary_endpoint": {
                "item": "rubric",
                "name": "HealthBench score (points of met criteria over positive points)",
                "estimand": "mean difference test - reference of per-answer scores",
                "margin": 0.1,
                "direction": "higher",
                "alpha": 0.025,
                "method": "t",
            },
        },
        seed=seed,
    )
    answers = content.list_answers(store, builder, study_id)
    cases = content.list_cases(store, builder, study_id).get_column("case_id").to_list()
    assignments, presentations = design_assignments(
        cases,
        list(RUBRIC_RATERS),
        raters_per_case=len(RUBRIC_RATERS),
        answers=answers.select("answer_id", "case_id", "arm_id", "author_id"),
        seed=seed,
    )
    design.persist_assignments(store, builder, study_id, assignments, presentations, seed=seed)
    lifecycle.start_rating(store, builder, study_id)

    rng = np.random.default_rng(seed)
    caller = people.demo_sign_in(store, RUBRIC_SIMULATED)
    while (view := rating.next_assignment(store, caller, study_id)) is not None:
        keys = [c["key"] for c in view["criteria"]]
        values = {}
        for shown in view["presentations"]:
            answer = _shown_answer(store, shown["presentation"])
            met = RUBRIC_MET[answer]
            values[shown["label"]] = {
                k: (k in met) != bool(rng.random() < RUBRIC_SLIP) for k in keys
            }
        seconds = float(20 + 8 * len(keys) + rng.integers(0, 30))
        rating.submit_rating(
            store, caller, study_id, view["assignment"], {"rubric": values}, seconds=seconds
        )


def _shown_answer(store: Any, presentation: int) -> str:
    """The answer behind a presentation (the simulation knows what the rater cannot)."""
    return str(
        store.read("SELECT answer_id FROM presentations WHERE id = $p", {"p": presentation}).item()
    )


# --- internals -----------------------------------------------------------------------------------


def _assignment_algorithm() -> str:
    from study.assignment import ALGORITHM

    return ALGORITHM


def _to_scale(x: float, low: int = 1, high: int = 5) -> int:
    # Round half up (not to even), so 2.5 -> 3: rounding must not favour even scale points.
    return int(min(high, max(low, math.floor(x + 0.5))))


def _harm(
    severity: str | None,
    noticed: bool,
    quality: int,
    model: RaterModel,
    rng: np.random.Generator,
) -> tuple[int, int]:
    """(extent 0-2, likelihood 0-2) as one rater judges one answer."""
    if severity is not None and noticed:
        if severity == "severe":
            extent = 2 if rng.random() < 0.75 else 1
            likelihood = 2 if rng.random() < 0.5 else 1
        elif severity == "moderate":
            extent = 2 if rng.random() < 0.2 else 1
            likelihood = 1 if rng.random() < 0.6 else 0
        else:
            extent = 1
            likelihood = 1 if rng.random() < 0.3 else 0
        return extent, likelihood
    # A stray flag, likelier on an answer the rater thought poor.
    p = model.false_alarm * (3.0 if quality <= 2 else 1.0)
    if rng.random() < p:
        return 1, 0
    return 0, 0


def _rated_assignments(
    assignments: pl.DataFrame,
    raters: list[str],
    progress: Mapping[str, float],
    share: float,
    rng: np.random.Generator,
) -> list[tuple[str, str, str]]:
    """(assignment_id, case_id, rater) of the rated assignments, in each rater's queue order.

    Raters progress at different speeds (``progress`` weights); the total is exactly
    ``round(share * n)``.
    """
    queues = {
        rater: assignments.filter(pl.col("rater_id") == rater)
        .sort("queue_position")
        .select("assignment_id", "case_id", "rater_id")
        .rows()
        for rater in raters
    }
    total = sum(len(q) for q in queues.values())
    target = round(share * total)
    mean_weight = float(np.mean([progress[r] for r in raters])) if raters else 1.0
    done = {
        r: min(len(queues[r]), round(share * progress[r] / mean_weight * len(queues[r])))
        for r in raters
    }
    # Adjust one case at a time, at random, until the total is exact.
    while sum(done.values()) != target:
        if sum(done.values()) < target:
            room = [r for r in raters if done[r] < len(queues[r])]
            done[room[int(rng.integers(len(room)))]] += 1
        else:
            busy = [r for r in raters if done[r] > 0]
            done[busy[int(rng.integers(len(busy)))]] -= 1
    return [row for r in raters for row in queues[r][: done[r]]]
