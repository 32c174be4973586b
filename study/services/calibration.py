"""The coordinator's decisions on a rater's calibration round: try again, or pass.

A rater whose finished calibration attempt scores below the protocol's pass threshold is offered
no live case (``rating.rater_status`` says "waiting" for the coordinator). The coordinator then
either lets them try again (``retry_calibration``: the calibration cases come back as new
assignments of the next attempt, the earlier attempt's ratings kept) or passes them
(``pass_rater``). Each decision is a ``calibration_decisions`` row with a reason and its audit
event; nobody decides on their own calibration.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from study import audit
from study.access import Caller, guarded, refuse
from study.errors import ConflictError, NotFoundError, Problem, StateError, ValidationError
from study.phases import calibration_of
from study.services import _queue
from study.services._common import audit_design, require_study
from study.store import Cursor, Store, first, utc_now


@guarded
def retry_calibration(store: Store, caller: Caller, study: str, rater: str, *, reason: str) -> int:
    """Give ``rater`` the study's calibration cases again, as attempt n + 1 of their finished,
    failed attempt n; ``reason`` is recorded. Returns the new attempt's number.

    The new assignments show the same screens (answers, order, labels) in the same queue order
    as attempt n, queued after everything the rater holds; next_assignment offers them first.
    They are recorded by an ``assignments.persist`` event (counts and row digests, for ``audit
    verify``) next to the ``calibration.retry`` event, in one transaction. Allowed while the
    study is locked or rating; refused for an attempt not finished or passed already, and for
    the caller's own calibration (audited).
    """
    reason = _reason(reason)
    _refuse_self(store, caller, study, rater, "retry_calibration")
    with store.transaction() as cur:
        result = _failed_attempt(cur, study, rater)
        attempt = result.attempt + 1
        first_id = store.allocate_ids(cur, "assignments")
        after = cur.execute(
            "SELECT max(shown_order) FROM assignments WHERE study = ? AND rater = ?",
            [study, rater],
        ).fetchall()[0][0]
        previous = cur.sql(
            "SELECT id, case_id, seed, algorithm FROM assignments WHERE study = $s AND rater = $r"
            " AND phase = 'calibration' AND attempt = $n ORDER BY shown_order",
            params={"s": study, "r": rater, "n": result.attempt},
        ).pl()
        now = utc_now()
        again = previous.select(
            (pl.int_range(pl.len(), dtype=pl.Int64) + first_id).alias("id"),
            pl.lit(study).alias("study"),
            pl.format(f"cal{attempt}-{{}}-{rater}", "case_id").alias("design_key"),
            pl.lit(rater).alias("rater"),
            "case_id",
            "seed",
            "algorithm",
            (pl.int_range(pl.len(), dtype=pl.Int32) + after + 1).alias("shown_order"),
            pl.lit(now).alias("created_at"),
            pl.lit("calibration").alias("phase"),
            pl.lit(attempt, dtype=pl.Int32).alias("attempt"),
        )
        screens = cur.sql(
            "SELECT assignment, answer_id, position, label FROM presentations"
            " WHERE list_contains($ids, assignment) ORDER BY assignment, position",
            params={"ids": previous.get_column("id").to_list()},
        ).pl()
        shown = (
            screens.join(
                previous.select(pl.col("id").alias("assignment"), "case_id"), on="assignment"
            )
            .join(again.select(pl.col("id").alias("new"), "case_id"), on="case_id")
            .select(pl.col("new").alias("assignment"), "answer_id", "position", "label")
            .sort("assignment", "position")
        )
        shown = shown.with_columns(
            (
                pl.int_range(pl.len(), dtype=pl.Int64) + store.allocate_ids(cur, "presentations")
            ).alias("id"),
            pl.lit(study).alias("study"),
        )
        store.insert_frame(cur, "assignments", again)
        store.insert_frame(cur, "presentations", shown)
        decision = _decide(cur, store, caller, study, rater, result, "retry", reason, now)
        commitment = first(
            cur.execute("SELECT commitment FROM sealed_seeds WHERE study = ?", [study]).fetchall()
        )
        audit_design(
            cur,
            caller,
            study,
            commitment[0] if commitment else None,
            again,
            shown,
            design={"calibration_retry": rater, "attempt": attempt},
        )
        audit.append(
            cur,
            actor=caller.actor,
            kind=audit.CALIBRATION_RETRY,
            object_type="calibration_decision",
            object_id=str(decision),
            study=study,
            payload=_payload(rater, result) | {"new_attempt": attempt, "reason": reason},
        )
    return attempt


@guarded
def pass_rater(store: Store, caller: Caller, study: str, rater: str, *, reason: str) -> int:
    """Pass ``rater`` to live rating although their finished calibration attempt fell below the
    threshold; ``reason`` is recorded. Returns the ``calibration.pass`` event's seq.

    Allowed while the study is locked or rating; refused for an attempt not finished or passed
    already, and for the caller's own calibration (audited).
    """
    reason = _reason(reason)
    _refuse_self(store, caller, study, rater, "pass_rater")
    with store.transaction() as cur:
        result = _failed_attempt(cur, study, rater)
        decision = _decide(cur, store, caller, study, rater, result, "pass", reason, utc_now())
        return audit.append(
            cur,
            actor=caller.actor,
            kind=audit.CALIBRATION_PASS,
            object_type="calibration_decision",
            object_id=str(decision),
            study=study,
            payload=_payload(rater, result) | {"reason": reason},
        )


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError([Problem("calibration", None, "reason", "a decision needs a reason")])
    return reason


def _refuse_self(store: Store, caller: Caller, study: str, rater: str, name: str) -> None:
    if caller.user_id is not None and caller.user_id == rater:
        refuse(
            store,
            caller,
            "Nobody decides on their own calibration: another coordinator must.",
            study=study,
            service=f"calibration.{name}",
        )


def _failed_attempt(cur: Cursor, study: str, rater: str) -> _queue.CalibrationResult:
    """The rater's newest calibration attempt, which must be finished and not passed."""
    require_study(cur, study, ("locked", "rating"))
    calibration = calibration_of(_queue.protocol(cur, study))
    if calibration is None:
        raise StateError(f"Study '{study}' has no calibration round in its protocol.")
    result = _queue.calibration_result(cur, study, rater, calibration)
    if result is None:
        raise NotFoundError(f"Rater '{rater}' has no calibration cases in study '{study}'.")
    if result.passed:
        raise ConflictError(f"Rater '{rater}' passed calibration attempt {result.attempt} already.")
    if not result.finished:
        raise StateError(
            f"Rater '{rater}' has not finished calibration attempt {result.attempt} "
            f"({result.done} of {result.cases} cases done)."
        )
    return result


def _decide(
    cur: Cursor,
    store: Store,
    caller: Caller,
    study: str,
    rater: str,
    result: _queue.CalibrationResult,
    decision: str,
    reason: str,
    now: Any,
) -> int:
    decision_id = store.allocate_ids(cur, "calibration_decisions")
    cur.execute(
        "INSERT INTO calibration_decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [decision_id, study, rater, result.attempt, decision, reason, now, caller.actor],
    )
    return decision_id


def _payload(rater: str, result: _queue.CalibrationResult) -> dict[str, Any]:
    return {
        "rater": rater,
        "attempt": result.attempt,
        "matched": result.matched,
        "expected": result.expected,
        "score": result.score,
        "threshold": result.threshold,
    }
