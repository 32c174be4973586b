"""Monitoring a study: counts, progress by rater, cases by specialty, per-arm counts, time on
task, raters to look at, and the safety queue with its acknowledgements.

Progress only, never a result broken down by arm: the per-arm figures are how many answers and
ratings each arm has, not what the ratings say; time on task and rater flags carry no arm.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import polars as pl

from study import audit, importing
from study.access import Caller, guarded
from study.errors import ConflictError, NotFoundError, Problem, ValidationError
from study.services import _queue
from study.services._common import require_study
from study.store import Store, utc_now

FAST_SECONDS = 15.0
"""A rater whose median time on a case is below this many seconds is flagged as implausibly fast.

Why 15 s: a case shows a patient question and at least two answers of typically 100-300 words;
silent reading of non-fiction runs at about 240 words per minute (Brysbaert M, 2019, J Mem Lang
109:104047), so reading even one 100-word answer takes some 25 s, and a case takes a minute or
more. A median under 15 s per case means most cases were rated faster than one answer can be
read. It is a flag for the coordinator to look at, never an exclusion."""

MIN_CASES_FOR_FLAGS = 5
"""Fewer rated cases than this flag nobody: one value on every item of three cases is chance."""


@guarded
def study_status(
    store: Store, caller: Caller, study: str, *, per_arm: bool = True
) -> dict[str, Any]:
    """Counts for the monitor page.

    Keys: study, status, cases, arms, answers, raters (with assignments), assignments, done,
    ratings_submitted (current submitted ratings), per_arm: {arm_id: {answers, ratings}} (left
    out with ``per_arm=False``, for a caller that reads ``arm_summary`` instead).
    """
    cur = store.cursor()
    try:
        counts = cur.execute(
            "SELECT (SELECT status FROM studies WHERE id = $s),"
            " (SELECT count(*) FROM cases WHERE study = $s),"
            " (SELECT count(*) FROM arms WHERE study = $s),"
            " (SELECT count(*) FROM answers WHERE study = $s),"
            " (SELECT count(DISTINCT rater) FROM assignments WHERE study = $s),"
            " (SELECT count(*) FROM assignments WHERE study = $s),"
            " (SELECT count(*) FROM assignments WHERE study = $s AND done),"
            " (SELECT count(*) FROM current_ratings c JOIN assignments a ON a.id = c.assignment"
            "   WHERE a.study = $s)",
            {"s": study},
        ).fetchall()[0]
        arms = (
            cur.sql(_ARM_SUMMARY_SQL, params={"s": study}).pl()
            if per_arm and counts[0] is not None
            else None
        )
    finally:
        cur.close()
    status, *numbers = counts
    if status is None:
        raise NotFoundError(f"There is no study '{study}'.")
    names = ("cases", "arms", "answers", "raters", "assignments", "done", "ratings_submitted")
    result: dict[str, Any] = {"study": study, "status": status}
    result.update(dict(zip(names, (int(n) for n in numbers), strict=True)))
    if arms is not None:
        result["per_arm"] = {
            arm: {"answers": answers, "ratings": ratings}
            for arm, answers, ratings in arms.select("arm_id", "answers", "ratings").iter_rows()
        }
    return result


_ARM_SUMMARY_SQL = (
    "SELECT "
    + ", ".join(f"r.{c}" for c in importing.ARM_COLUMNS)
    + ", coalesce(n.answers, 0) AS answers, coalesce(x.ratings, 0) AS ratings FROM arms r"
    " LEFT JOIN (SELECT arm_id, count(*) AS answers FROM answers WHERE study = $s"
    "  GROUP BY arm_id) n ON n.arm_id = r.arm_id"
    " LEFT JOIN (SELECT an.arm_id, count(*) AS ratings FROM current_ratings c"
    "  JOIN presentations p ON p.id = c.slot"
    "  JOIN assignments g ON g.id = c.assignment"
    "  JOIN answers an ON an.study = p.study AND an.answer_id = p.answer_id"
    "  WHERE p.study = $s AND g.phase = 'live' GROUP BY an.arm_id) x ON x.arm_id = r.arm_id"
    " WHERE r.study = $s ORDER BY r.arm_id"
)


@guarded
def arm_summary(store: Store, caller: Caller, study: str) -> pl.DataFrame:
    """The study's arms with what has been done with each, one row per arm by arm_id.

    Columns: arm_id, kind, label, model_name, model_version, author_role (as ``list_arms``),
    answers (answers stored from the arm), ratings (current submitted ratings of those answers,
    one per item per response rated, live assignments only: calibration and repeats are not
    counted; assignment-level items such as a pairwise choice are not counted). Both counts are Int64, 0 when none.
    """
    return store.read(_ARM_SUMMARY_SQL, {"s": study})


@guarded
def cases_by_specialty(store: Store, caller: Caller, study: str) -> pl.DataFrame:
    """Cases per specialty, most first.

    Columns: ``specialty`` (``"(none)"`` for a blank one), ``cases`` (count).
    """
    return store.read(
        "SELECT coalesce(nullif(trim(specialty), ''), '(none)') AS specialty, count(*) AS cases"
        " FROM cases WHERE study = $s GROUP BY 1 ORDER BY cases DESC, specialty",
        {"s": study},
    )


@guarded
def rater_progress(store: Store, caller: Caller, study: str) -> pl.DataFrame:
    """Assignments per rater of a study: columns ``rater``, ``name`` (display name, else the id),
    ``done`` and ``to_do`` (counts), ordered by name. Raters with no assignment are left out."""
    return store.read(
        "SELECT a.rater, coalesce(u.display_name, a.rater) AS name,"
        " count(*) FILTER (WHERE a.done) AS done, count(*) FILTER (WHERE NOT a.done) AS to_do"
        " FROM assignments a LEFT JOIN users u ON u.id = a.rater"
        " WHERE a.study = $s GROUP BY a.rater, u.display_name ORDER BY name",
        {"s": study},
    )


@guarded
def calibration_status(
    store: Store, caller: Caller, study: str, *, now: dt.datetime | None = None
) -> pl.DataFrame:
    """Every rater's calibration outcome and standing, one row per rater with assignments, by
    rater id: what the coordinator reads to see who passed and who waits for a decision.

    Columns: ``rater``, ``name`` (display name, else the id), ``phase`` ("calibration",
    "waiting", "live", "done", as ``rating.rater_status``), ``waiting_for`` ("coordinator",
    "washout" or null), ``attempt`` (newest calibration attempt), ``calibration_done`` and
    ``calibration_cases`` (cases of that attempt submitted / in it), ``matched`` and
    ``expected`` (gold values), ``score`` (matched / expected, a share in [0, 1]; null until the
    attempt is finished), ``threshold``, ``passed`` (bool), ``decision`` ("pass" when the
    coordinator passed the rater, else null). Without a calibration round the calibration
    columns are null. ``now``: as ``rating.next_assignment`` takes it.
    """
    now = now or utc_now()
    cur = store.cursor()
    try:
        raters = cur.execute(
            "SELECT DISTINCT a.rater, coalesce(u.display_name, a.rater) FROM assignments a"
            " LEFT JOIN users u ON u.id = a.rater WHERE a.study = ? ORDER BY a.rater",
            [study],
        ).fetchall()
        rows = []
        for rater, name in raters:
            standing = _queue.standing(cur, study, rater, now)
            result = standing["calibration"] or {}
            rows.append(
                {
                    "rater": rater,
                    "name": name,
                    "phase": standing["phase"],
                    "waiting_for": standing["waiting_for"],
                    "attempt": result.get("attempt"),
                    "calibration_done": result.get("done"),
                    "calibration_cases": result.get("cases"),
                    "matched": result.get("matched"),
                    "expected": result.get("expected"),
                    "score": result.get("score"),
                    "threshold": result.get("threshold"),
                    "passed": result.get("passed"),
                    "decision": result.get("decision"),
                }
            )
    finally:
        cur.close()
    return pl.DataFrame(rows, schema=_CALIBRATION_SCHEMA)


_CALIBRATION_SCHEMA = {
    "rater": pl.String,
    "name": pl.String,
    "phase": pl.String,
    "waiting_for": pl.String,
    "attempt": pl.Int64,
    "calibration_done": pl.Int64,
    "calibration_cases": pl.Int64,
    "matched": pl.Int64,
    "expected": pl.Int64,
    "score": pl.Float64,
    "threshold": pl.Float64,
    "passed": pl.Boolean,
    "decision": pl.String,
}


@guarded
def safety_queue(store: Store, caller: Caller, study: str) -> pl.DataFrame:
    """Ratings of severe harm, newest first: the coordinator's safety queue.

    Columns: ``alert`` (id), ``raised_at`` (UTC), ``case_id``, ``question``, ``label`` (the
    response as the rater saw it), ``answer_text``, ``rater``, ``item``, ``value``,
    ``acknowledged_at``, ``acknowledged_by``, ``note``. No arm: the queue is read while blind.
    """
    return store.read(
        "SELECT s.id AS alert, s.raised_at, a.case_id, c.question, p.label,"
        " an.text AS answer_text, a.rater, r.item_key AS item,"
        " coalesce(r.value_text, CAST(r.value_num AS VARCHAR)) AS value,"
        " s.acknowledged_at, s.acknowledged_by, s.note"
        " FROM safety_alerts s JOIN ratings r ON r.id = s.rating"
        " JOIN assignments a ON a.id = r.assignment"
        " JOIN cases c ON c.study = a.study AND c.case_id = a.case_id"
        " LEFT JOIN presentations p ON p.id = r.presentation"
        " LEFT JOIN answers an ON an.study = p.study AND an.answer_id = p.answer_id"
        " WHERE s.study = $s ORDER BY s.raised_at DESC, s.id DESC",
        {"s": study},
    )


@guarded
def case_flags(store: Store, caller: Caller, study: str) -> pl.DataFrame:
    """Flagged and skipped cases with their reasons, newest first.

    Columns: ``flag`` (id, what ``flagged_case`` opens), ``kind`` ("flag" or "skip"),
    ``case_id``, ``rater``, ``reason``, ``created_at``.
    """
    return store.read(
        "SELECT f.id AS flag, f.kind, a.case_id, a.rater, f.reason, f.created_at FROM case_flags f"
        " JOIN assignments a ON a.id = f.assignment WHERE f.study = $s"
        " ORDER BY f.created_at DESC, f.id DESC",
        {"s": study},
    )


@guarded
def flagged_case(store: Store, caller: Caller, study: str, flag: int) -> dict[str, Any]:
    """One flag or skip opened to be read: the case as its rater saw it, and why.

    Keys: ``flag``, ``kind``, ``case_id``, ``rater``, ``reason``, ``created_at``, ``question``,
    ``context``, ``conversation`` (the turns, or None), and ``responses``: [{label, text}] in
    the order the rater's screen showed them, under their neutral labels. No arm, no answer id:
    the coordinator reads it while blind (``study.access.BLIND_STATUSES``), and the rater's
    reason may concern a response ("Response B is cut off"). ``NotFoundError`` for a flag that
    is not the study's.
    """
    cur = store.cursor()
    try:
        found = cur.execute(
            "SELECT f.id, f.kind, a.case_id, a.rater, f.reason, f.created_at, c.question,"
            " c.context, c.conversation, a.id FROM case_flags f"
            " JOIN assignments a ON a.id = f.assignment"
            " JOIN cases c ON c.study = a.study AND c.case_id = a.case_id"
            " WHERE f.study = ? AND f.id = ?",
            [study, int(flag)],
        ).fetchall()
        if not found:
            raise NotFoundError(f"Study '{study}' has no flagged or skipped case {flag}.")
        *row, assignment = found[0]
        responses = cur.execute(
            "SELECT p.label, an.text FROM presentations p"
            " JOIN answers an ON an.study = p.study AND an.answer_id = p.answer_id"
            " WHERE p.assignment = ? ORDER BY p.position",
            [assignment],
        ).fetchall()
    finally:
        cur.close()
    keys = ("flag", "kind", "case_id", "rater", "reason", "created_at", "question", "context")
    opened: dict[str, Any] = dict(zip(keys, row[:8], strict=True))
    opened["conversation"] = None if row[8] is None else json.loads(row[8])
    opened["responses"] = [{"label": label, "text": text} for label, text in responses]
    return opened


@guarded
def case_progress(store: Store, caller: Caller, study: str) -> pl.DataFrame:
    """Live assignments per case: columns ``case_id``, ``done`` and ``assigned`` (counts of
    raters), by case id; cases with no assignment are left out. Unlike ``time_on_task`` it counts
    assignments whose ratings recorded no time (imported ratings, older submissions)."""
    return store.read(
        "SELECT case_id, count(*) FILTER (WHERE done) AS done, count(*) AS assigned"
        " FROM assignments WHERE study = $s AND phase = 'live' GROUP BY case_id ORDER BY case_id",
        {"s": study},
    )


_TIME_ON_TASK_SQL = """
SELECT a.rater, coalesce(u.display_name, a.rater) AS name, a.case_id,
    max(r.seconds_on_task) AS seconds
FROM assignments a
JOIN current_ratings c ON c.assignment = a.id
JOIN ratings r ON r.id = c.rating
LEFT JOIN users u ON u.id = a.rater
WHERE a.study = $s AND a.done AND r.seconds_on_task IS NOT NULL
GROUP BY a.id, a.rater, u.display_name, a.case_id
ORDER BY name, a.case_id
"""


@guarded
def time_on_task(store: Store, caller: Caller, study: str) -> pl.DataFrame:
    """Seconds each done assignment took, one row per (rater, case) rated.

    Columns: ``rater``, ``name`` (display name, else the id), ``case_id``, ``seconds`` (Float64,
    the time the rating sheet recorded for the submission; assignments whose ratings recorded
    none are left out). No arm: a case's time covers all its answers.
    """
    return store.read(_TIME_ON_TASK_SQL, {"s": study})


_RATER_VALUES_SQL = """
SELECT a.rater, r.item_key AS item, count(*) AS ratings,
    count(DISTINCT coalesce(r.value_text, CAST(r.value_num AS VARCHAR))) AS distinct_values
FROM current_ratings c
JOIN ratings r ON r.id = c.rating
JOIN assignments a ON a.id = c.assignment
JOIN items i ON i.instrument_key = r.instrument_key AND i.instrument_version = r.instrument_version
    AND i.item_key = r.item_key
WHERE a.study = $s AND i.options IS NOT NULL AND json_array_length(i.options) > 1
GROUP BY a.rater, r.item_key
"""


@guarded
def rater_flags(
    store: Store,
    caller: Caller,
    study: str,
    *,
    fast_seconds: float = FAST_SECONDS,
    min_cases: int = MIN_CASES_FOR_FLAGS,
) -> pl.DataFrame:
    """Raters to look at: straight-lining and implausibly fast raters. Flagged, never excluded.

    One row per rater with a done assignment, ordered by name. Columns: ``rater``, ``name``,
    ``cases`` (done assignments), ``median_seconds`` (median time on a case, null if none was
    recorded), ``straight_lining`` (the rater gave one and the same value to every rating of each
    item that offers a choice, over at least ``min_cases`` cases: no variation at all),
    ``fast`` (``median_seconds`` below ``fast_seconds``, over at least ``min_cases`` cases; see
    ``FAST_SECONDS`` for why 15 s), ``flagged`` (either), ``reason`` (in words, "" when none).
    """
    times = time_on_task(store, caller, study)
    progress = rater_progress(store, caller, study).filter(pl.col("done") > 0)
    values = store.read(_RATER_VALUES_SQL, {"s": study})
    medians = times.group_by("rater").agg(pl.col("seconds").median().alias("median_seconds"))
    constant = values.group_by("rater").agg(
        (pl.col("distinct_values") == 1).all().alias("one_value_per_item"),
        pl.len().alias("items"),
    )
    frame = (
        progress.select("rater", "name", pl.col("done").alias("cases"))
        .join(medians, on="rater", how="left")
        .join(constant, on="rater", how="left")
        .with_columns(enough=pl.col("cases") >= min_cases)
        .with_columns(
            straight_lining=pl.col("enough") & pl.col("one_value_per_item").fill_null(False),
            fast=pl.col("enough") & (pl.col("median_seconds") < fast_seconds).fill_null(False),
        )
    )
    straight = pl.format("the same value on every rating of each of {} items", pl.col("items"))
    fast = pl.format(
        "median {} s per case, under " + f"{fast_seconds:g} s",
        pl.col("median_seconds").round(1),
    )
    reasons = pl.concat_str(
        [
            pl.when(pl.col("straight_lining")).then(straight),
            pl.when(pl.col("fast")).then(fast),
        ],
        separator="; ",
        ignore_nulls=True,
    )
    return frame.select(
        "rater",
        "name",
        "cases",
        "median_seconds",
        "straight_lining",
        "fast",
        (pl.col("straight_lining") | pl.col("fast")).alias("flagged"),
        reasons.fill_null("").alias("reason"),
    ).sort("name")


@guarded
def acknowledge_alert(store: Store, caller: Caller, study: str, alert: int, *, note: str) -> None:
    """Acknowledge safety alert ``alert`` of ``study`` with ``note`` (what was done about it).

    Records who and when on the alert and appends a ``safety.acknowledge`` event with the note.
    Refuses a blank note (``ValidationError``), an alert that is not the study's
    (``NotFoundError``) and one acknowledged already (``ConflictError``); nothing is stored then.
    """
    text = (note or "").strip()
    if not text:
        raise ValidationError(
            [Problem("acknowledgement", None, "note", "an acknowledgement needs a note")]
        )
    with store.transaction() as cur:
        require_study(cur, study)
        found = cur.execute(
            "SELECT acknowledged_at FROM safety_alerts WHERE id = ? AND study = ?",
            [int(alert), study],
        ).fetchall()
        if not found:
            raise NotFoundError(f"Study '{study}' has no safety alert {alert}.")
        if found[0][0] is not None:
            raise ConflictError(f"Safety alert {alert} was acknowledged already.")
        cur.execute(
            "UPDATE safety_alerts SET acknowledged_at = ?, acknowledged_by = ?, note = ? WHERE id = ?",
            [utc_now(), caller.actor, text, int(alert)],
        )
        audit.append(
            cur,
            actor=caller.actor,
            kind=audit.SAFETY_ACKNOWLEDGE,
            object_type="safety_alert",
            object_id=str(alert),
            study=study,
            payload={"alert": int(alert), "note": text},
        )
