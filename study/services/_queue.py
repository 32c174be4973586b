"""What a rater's queue offers next, and where the rater stands: calibration, waiting, live, done.

Shared by the rater's services (``rating``), the coordinator's view (``monitoring``) and the
coordinator's calibration decisions (``calibration``). Reads only; every call takes the cursor of
its service.

The rules, from the protocol (``study.phases``):

- calibration first: while the rater's newest calibration attempt has cases left, only those are
  offered;
- a finished attempt opens live rating when its score reaches the protocol's pass threshold, or
  when the coordinator passed the rater (a ``calibration_decisions`` row); otherwise the rater
  waits for the coordinator (nothing is offered);
- a repeat is offered once ``washout_days`` have passed since the rater's first submission of
  the same case's live assignment (its ``done_at``), before the remaining live cases, so that
  the interval between the two ratings stays close to the washout; a repeat whose live
  assignment was skipped or withdrawn is never offered (nothing to repeat).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from study.phases import Calibration, Repeats, calibration_of, gold_values, repeats_of, score
from study.protocol import read_plan
from study.store import Cursor, first

SKIPPED = "EXISTS (SELECT 1 FROM case_flags f WHERE f.assignment = a.id AND f.kind = 'skip')"
"""SQL: assignment ``a`` was skipped by its rater."""

LIVE_GONE = (
    "EXISTS (SELECT 1 FROM assignments l WHERE l.study = a.study AND l.rater = a.rater"
    " AND l.case_id = a.case_id AND l.phase = 'live' AND (l.status = 'withdrawn' OR EXISTS"
    " (SELECT 1 FROM case_flags f WHERE f.assignment = l.id AND f.kind = 'skip')))"
)
"""SQL: the live assignment of repeat ``a``'s case was withdrawn or skipped (nothing to repeat)."""

IN_QUEUE = f"a.status <> 'withdrawn' AND NOT {SKIPPED} AND NOT (a.phase = 'repeat' AND {LIVE_GONE})"
"""SQL: assignment ``a`` is part of its rater's work (not withdrawn, not skipped, not a repeat
of a case the rater did not rate live); progress counts these."""


def protocol(cur: Cursor, study: str) -> Mapping[str, Any]:
    """The study's newest locked protocol's content, as ``study.protocol`` reads it (read-only;
    {} before the lock)."""
    plan = read_plan(cur, study)
    return plan.content if plan is not None else {}


@dataclass(frozen=True, slots=True)
class CalibrationResult:
    """One rater's newest calibration attempt.

    ``done``/``cases``: calibration assignments of the attempt submitted / in it; ``matched`` /
    ``expected``: gold values matched / expected over the attempt (counted once every case is
    submitted; 0 before); ``score``: matched / expected (a share in [0, 1], None until the attempt
    is finished); ``threshold``: the protocol's pass threshold; ``decision``: the coordinator's
    decision on this attempt ("pass", or None); ``passed``: score >= threshold or a "pass"
    decision.
    """

    attempt: int
    done: int
    cases: int
    matched: int
    expected: int
    score: float | None
    threshold: float
    decision: str | None

    @property
    def finished(self) -> bool:
        return self.cases > 0 and self.done == self.cases

    @property
    def passed(self) -> bool:
        if self.decision == "pass":
            return True
        # a share compared with the threshold in whole values, free of rounding: 4/5 >= 0.8
        return self.finished and self.matched >= self.threshold * self.expected - 1e-9

    def as_dict(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt,
            "done": self.done,
            "cases": self.cases,
            "finished": self.finished,
            "matched": self.matched,
            "expected": self.expected,
            "score": self.score,
            "threshold": self.threshold,
            "decision": self.decision,
            "passed": self.passed,
        }


def calibration_result(
    cur: Cursor, study: str, rater: str, calibration: Calibration
) -> CalibrationResult | None:
    """The rater's newest calibration attempt scored against the protocol's gold values; None
    when the rater has no calibration assignment.

    Score = (gold values the rater's submitted values match) / (gold values expected), over every
    case of the attempt (``study.phases.score``: numbers as numbers, text exactly, a value not
    given unmatched).
    """
    # few small queries whatever the number of gold cases: this runs on a live rater's key press
    rows = cur.execute(
        "SELECT id, case_id, done, attempt FROM assignments a WHERE study = ? AND rater = ?"
        " AND phase = 'calibration' QUALIFY attempt = max(attempt) OVER ()",
        [study, rater],
    ).fetchall()
    if not rows:
        return None
    attempt = rows[0][3]
    decision = first(
        cur.execute(
            "SELECT decision FROM calibration_decisions WHERE study = ? AND rater = ?"
            " AND attempt = ?",
            [study, rater, attempt],
        ).fetchall()
    )
    done = sum(1 for _, _, d, _ in rows if d)
    matched = expected = 0
    if done == len(rows):
        ids = [r[0] for r in rows]
        case_items = {
            r[0]
            for r in cur.execute(
                "SELECT i.item_key FROM study_instruments s JOIN items i ON i.instrument_key ="
                " s.instrument_key AND i.instrument_version = s.instrument_version"
                " WHERE s.study = ? AND i.scope = 'case'",
                [study],
            ).fetchall()
        }
        screens: dict[int, dict[str, str]] = {}
        for assignment, answer_id, label in cur.execute(
            "SELECT assignment, answer_id, label FROM presentations"
            " WHERE list_contains(?, assignment) ORDER BY assignment, position",
            [ids],
        ).fetchall():
            screens.setdefault(assignment, {})[answer_id] = label
        given: dict[int, dict[tuple[str, str | None], Any]] = {}
        for assignment, slot, item, num, text, label in cur.execute(
            "SELECT c.assignment, r.slot, r.item_key, r.value_num, r.value_text, p.label"
            " FROM current_ratings c JOIN ratings r ON r.id = c.rating"
            " LEFT JOIN presentations p ON p.id = r.presentation"
            " WHERE list_contains(?, c.assignment)",
            [ids],
        ).fetchall():
            where = (item, None if slot == 0 else label)
            given.setdefault(assignment, {})[where] = text if text is not None else num
        for assignment, case_id, _, _ in rows:
            gold = gold_values(
                calibration, case_id, screens.get(assignment, {}), case_items=case_items
            )
            hit, out_of = score(gold, given.get(assignment, {}))
            matched += hit
            expected += out_of
    return CalibrationResult(
        attempt=int(attempt),
        done=done,
        cases=len(rows),
        matched=matched,
        expected=expected,
        score=(matched / expected if expected else None) if done == len(rows) else None,
        threshold=calibration.pass_threshold,
        decision=decision[0] if decision else None,
    )


def _due_before(now: dt.datetime, repeats: Repeats) -> dt.datetime:
    """Latest first-rating time whose repeat is due at ``now``."""
    return now - dt.timedelta(days=repeats.washout_days)


def next_id(
    cur: Cursor,
    study: str,
    rater: str,
    now: dt.datetime,
    *,
    content: dict[str, Any] | None = None,
) -> int | None:
    """The id of the assignment the rater's queue offers now, or None (see the module's rules).

    Small point queries with fetchall: this runs on every key press of a rater.
    """
    content = protocol(cur, study) if content is None else content
    calibration = calibration_of(content)
    if calibration is not None:
        head = first(
            cur.execute(
                "SELECT a.id FROM assignments a WHERE a.study = ? AND a.rater = ?"
                " AND a.phase = 'calibration' AND NOT a.done AND a.status = 'pending'"
                " AND a.attempt = (SELECT max(attempt) FROM assignments WHERE study = ?"
                "  AND rater = ? AND phase = 'calibration') ORDER BY a.shown_order LIMIT 1",
                [study, rater, study, rater],
            ).fetchall()
        )
        if head is not None:
            return head[0]
        result = calibration_result(cur, study, rater, calibration)
        if result is not None and not result.passed:
            return None
    repeats = repeats_of(content)
    if repeats is not None:
        head = first(
            cur.execute(
                "SELECT a.id FROM assignments a JOIN assignments l ON l.study = a.study"
                " AND l.rater = a.rater AND l.case_id = a.case_id AND l.phase = 'live'"
                " WHERE a.study = ? AND a.rater = ? AND a.phase = 'repeat' AND NOT a.done"
                f" AND a.status = 'pending' AND NOT {SKIPPED} AND l.done AND l.done_at <= ?"
                " AND NOT EXISTS (SELECT 1 FROM case_flags f WHERE f.assignment = l.id"
                "  AND f.kind = 'skip') ORDER BY a.shown_order LIMIT 1",
                [study, rater, _due_before(now, repeats)],
            ).fetchall()
        )
        if head is not None:
            return head[0]
    head = first(
        cur.execute(
            "SELECT a.id FROM assignments a WHERE a.study = ? AND a.rater = ? AND NOT a.done"
            f" AND a.status = 'pending' AND a.phase = 'live' AND NOT {SKIPPED}"
            " ORDER BY a.shown_order LIMIT 1",
            [study, rater],
        ).fetchall()
    )
    return None if head is None else head[0]


def standing(cur: Cursor, study: str, rater: str, now: dt.datetime) -> dict[str, Any]:
    """Where the rater stands now: the dict ``rating.rater_status`` returns (see there)."""
    content = protocol(cur, study)
    calibration = calibration_of(content)
    result = calibration_result(cur, study, rater, calibration) if calibration is not None else None
    left = dict(
        cur.execute(
            "SELECT a.phase, count(*) FROM assignments a WHERE a.study = ? AND a.rater = ?"
            f" AND NOT a.done AND {IN_QUEUE} AND (a.phase <> 'calibration' OR a.attempt ="
            "  (SELECT max(attempt) FROM assignments WHERE study = a.study AND rater = a.rater"
            "   AND phase = 'calibration')) GROUP BY a.phase",
            [study, rater],
        ).fetchall()
    )
    remaining = {phase: int(left.get(phase, 0)) for phase in ("calibration", "live", "repeat")}
    offered = next_id(cur, study, rater, now, content=content)
    waiting_for, next_repeat_at = None, None
    if offered is not None:
        phase = "calibration" if remaining["calibration"] else "live"
    elif result is not None and result.finished and not result.passed:
        phase, waiting_for = "waiting", "coordinator"
    elif remaining["repeat"]:
        repeats = repeats_of(content)
        due = first(
            cur.execute(
                "SELECT min(l.done_at) FROM assignments a JOIN assignments l ON l.study = a.study"
                " AND l.rater = a.rater AND l.case_id = a.case_id AND l.phase = 'live'"
                f" WHERE a.study = ? AND a.rater = ? AND a.phase = 'repeat' AND NOT a.done"
                f" AND {IN_QUEUE} AND l.done",
                [study, rater],
            ).fetchall()
        )
        phase, waiting_for = "waiting", "washout"
        if due and due[0] is not None and repeats is not None:
            next_repeat_at = due[0] + dt.timedelta(days=repeats.washout_days)
    else:
        phase = "done"
    return {
        "phase": phase,
        "waiting_for": waiting_for,
        "next_repeat_at": next_repeat_at,
        "remaining": remaining,
        "calibration": result.as_dict() if result is not None else None,
    }
