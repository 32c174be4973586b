"""A rater's work: their queue, the next presentation, and their submissions.

A rater reads and writes only their own assignments: the services take the rater from the
caller, never from an argument. Ratings are accepted only while the study is ``rating``, only
for the items of the study's instruments, and never for an answer the rater wrote. Every
submission is one transaction: the rating revisions, the current-rating pointers, the
assignment's done flag and the audit event.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import polars as pl

from study import audit
from study.access import Caller, check_grants, guarded, refuse, require, with_grants
from study.case_json import stored_criteria
from study.errors import (
    ConflictError,
    NotFoundError,
    Problem,
    StateError,
    StudyError,
    ValidationError,
)
from study.instruments import Instrument, Item, broken_rules, rule_in_words, severe_values
from study.protocol import NEWEST_VERSION_SQL, read_plan
from study.services import _queue, _rater_view
from study.services._ownership import as_id
from study.services._ownership import own_assignment as _own_assignment
from study.store import ConstraintViolation, Cursor, Store, first, utc_now

_SUBMIT = "rating.submit_rating"


# --- the queue -------------------------------------------------------------------------------


@guarded(in_query=True)
def next_assignment(
    store: Store, caller: Caller, study: str, *, now: dt.datetime | None = None
) -> dict[str, Any] | None:
    """The caller's next assignment in ``study``, or None when nothing is offered now.

    Read from the ``done`` flags (never by scanning ratings); a skipped case has left the queue.
    With the protocol's phases (``study.services._queue``): calibration cases first; nothing while
    a finished calibration has not passed (``rater_status`` says why); a repeat once its washout
    has passed since the first rating of its case, before the remaining live cases. ``now``: the
    time the washout is measured at (UTC, naive; default the store's clock), for tests.
    Returns ``assignment_view``'s dict for it.
    """
    cur = store.cursor()
    try:
        # this runs for every case rated: the caller's roles, the protocol's version, and (when
        # every assignment is live) the next one and the queue's counts in one statement
        grants, known, version, head, remaining, total = cur.execute(
            with_grants(
                f"SELECT {NEWEST_VERSION_SQL} AS version,"
                " arg_min(id, shown_order) FILTER (WHERE NOT done AND status = 'pending'),"
                " count(*) FILTER (WHERE NOT done AND status <> 'withdrawn'),"
                " count(*) FILTER (WHERE status <> 'withdrawn')"
                " FROM assignments a ANTI JOIN (SELECT assignment FROM case_flags"
                "  WHERE kind = 'skip') f ON f.assignment = a.id"  # SKIPPED, as a faster join
                " WHERE study = $study AND rater = $caller"
            ),
            {"caller": caller.user_id, "study": study},
        ).fetchall()[0]
        check_grants(store, caller, grants, known)
        content = _protocol_content(store, cur, study, version)
        if content.get("calibration") is None and content.get("repeats") is None:
            if head is None:
                return None
            return _rater_view.assignment_view(
                store, cur, study, caller.user_id, head, content, counts=(remaining, total)
            )
        head = _queue.next_id(cur, study, caller.user_id, now or utc_now(), content=content)
        return (
            None
            if head is None
            else _rater_view.assignment_view(store, cur, study, caller.user_id, head, content)
        )
    finally:
        cur.close()


def _protocol_content(
    store: Store, cur: Cursor, study: str, version: int | None
) -> Mapping[str, Any]:
    """The content of ``study``'s protocol ``version`` (its newest, read afresh by the caller),
    or {} before the lock. A locked version is never changed (an amendment is a new version),
    so its content is read once per process (``store.facts``); reading only the newest version
    number each time costs half a millisecond less than the content's own sub-plan."""
    if version is None:
        return {}
    content = store.facts.get(("protocol", study, version))
    if content is None:
        plan = read_plan(cur, study, version=version)
        # read-only: one process's calls share it
        content = plan.content if plan is not None else MappingProxyType({})
        store.remember(("protocol", study, version), content)
    return content


@guarded
def rater_status(
    store: Store, caller: Caller, study: str, *, now: dt.datetime | None = None
) -> dict[str, Any]:
    """Where the caller stands in ``study``'s queue, for the rating screen's message.

    Keys: ``phase``: "calibration" (calibration cases are offered), "waiting" (nothing is
    offered now), "live" (study cases, repeats included, are offered) or "done" (nothing left);
    ``waiting_for``: "coordinator" (a finished calibration below the pass threshold: the
    coordinator may let the rater retry or pass them), "washout" (only repeats are left, not due
    yet) or None; ``next_repeat_at``: when the first waiting repeat falls due (UTC, naive
    datetime) or None; ``remaining``: {"calibration", "live", "repeat"} -> assignments left
    (not done, not skipped; calibration: of the newest attempt); ``calibration``: None without
    a calibration round, else the newest attempt as a dict: attempt, done, cases, finished,
    matched, expected, score (matched / expected in [0, 1], None until finished), threshold,
    decision ("pass" when the coordinator passed the rater, else None), passed. ``now`` as for
    ``next_assignment``.
    """
    cur = store.cursor()
    try:
        return _queue.standing(cur, study, caller.user_id, now or utc_now())
    finally:
        cur.close()


@guarded(in_query=True)
def mark_presented(store: Store, caller: Caller, study: str, assignment: int) -> dt.datetime | None:
    """Record that the caller's assignment is on their screen now: the first call stamps its
    ``presented_at`` (UTC) and appends an ``assignment.present`` event; later calls (a rerun, a
    reload, another device) change nothing. Time on task runs from this stamp to the first
    submission, so the page calls this each time it shows an unfinished case.

    Returns the stamp (the first one), or None for an assignment already submitted without one.
    Only while the study is ``rating``, only for the caller's own assignment.
    """
    row = _own_assignment(store, caller, study, assignment, service=_PRESENT)
    if row["presented_at"] is not None or row["done"]:
        return row["presented_at"]
    assignment = row["id"]
    if row["study_status"] != "rating":
        raise StateError(
            f"Study '{study}' is {row['study_status']}; cases are shown only while rating."
        )
    with store.transaction() as cur:
        now = utc_now()
        if _stamp_presented(cur, caller, study, assignment, now):
            return now
        stamp, done, status = cur.execute(
            "SELECT s.presented_at, s.done, t.status FROM assignments s"
            " JOIN studies t ON t.id = s.study WHERE s.id = ?",
            [assignment],
        ).fetchall()[0]
        if stamp is None and not done and status != "rating":
            raise StateError(f"Study '{study}' is {status}; cases are shown only while rating.")
        return stamp


def _stamp_presented(
    cur: Cursor, caller: Caller, study: str, assignment: int, now: dt.datetime
) -> bool:
    """Stamp the caller's ``assignment`` as presented at ``now`` and append its
    ``assignment.present`` event, inside the caller's transaction ``cur``; False (nothing
    written) when it has a stamp already, is done, or the study no longer rates."""
    # writers are serialised, and the stamp is set only where none is and the study still
    # rates: a stamp set, a submission or a close since the caller's read leaves no row changed
    # (no RETURNING: DuckDB 2.0 runs an UPDATE ... RETURNING as a delete and insert, which
    # the foreign keys onto assignments refuse)
    (changed,) = cur.execute(
        "UPDATE assignments SET presented_at = ? WHERE id = ? AND presented_at IS NULL"
        " AND NOT done AND (SELECT status FROM studies WHERE id = ?) = 'rating'",
        [now, assignment, study],
    ).fetchall()[0]
    if changed:
        audit.append(
            cur,
            actor=caller.actor,
            kind=audit.ASSIGNMENT_PRESENT,
            object_type="assignment",
            object_id=str(assignment),
            study=study,
            payload={"rater": caller.user_id, "presented_at": now.isoformat()},
        )
    return bool(changed)


def _present_next(store: Store, cur: Cursor, caller: Caller, study: str, now: dt.datetime) -> None:
    """In a first submission's transaction: stamp the case the caller's queue offers next as
    presented now, as ``mark_presented`` would when the screen shows it a moment later (the
    rating screen shows the next case in the same server round trip), saving that call its
    own transaction, access check and commit."""
    (version,) = first(cur.execute(f"SELECT {NEWEST_VERSION_SQL}", {"study": study}).fetchall())
    content = _protocol_content(store, cur, study, version)
    head = _queue.next_id(cur, study, caller.user_id, now, content=dict(content))
    if head is not None:
        _stamp_presented(cur, caller, study, head, now)


_PRESENT = "rating.mark_presented"


@guarded(in_query=True)
def assignment_view(store: Store, caller: Caller, study: str, assignment: int) -> dict[str, Any]:
    """One of the caller's assignments as the rating screen shows it, with its current values.

    Keys: ``assignment`` (id), ``case_id``, ``question``, ``context``, ``shown_order``, ``done``,
    ``comment`` (the newest comment given with its ratings, or None), ``remaining``
    (unfinished, not skipped, this one included if unfinished), ``total`` (not
    withdrawn, not skipped, not a repeat of a case skipped; calibration, live and repeats
    together), ``presentations``: [{presentation, position, label, text}] in screen
    order, ``display``: how to render the answers' text (``study.rendering.MODES``, from the
    protocol's ``display``), and ``values``: the current submitted values as ``submit_rating`` takes them
    (item -> value for case-scope items, item -> {label: value} for answer-scope items; empty
    before the first submit), ``phase``: "calibration", "live" or "repeat" (the screen should
    not tell a rater that a case is a repeat: knowing it would change the second rating). Never
    the arm, the answer's id or its author (blinding).

    Rubric cases (``study.case_json``): ``conversation`` is the chat before the answers, a list of
    {role, content} (role "system", "user" or "assistant"), or None for a plain question;
    ``criteria`` the case's rubric criteria in order, [{key, criterion}] (empty for a case
    without a rubric): raters see what each criterion says, not its points (they judge whether
    the answer does what it says; the points are the study's scoring, and a visible -10 invites
    grading the answer's overall worth instead); ``rubric_items`` the keys of the items rated
    per criterion (``criteria = "case"``), whose values are {label: {criterion_key: bool}}.
    """
    cur = store.cursor()
    try:
        grants, known, owner = cur.execute(
            with_grants("SELECT rater FROM assignments WHERE id = $assignment AND study = $study"),
            {"caller": caller.user_id, "assignment": as_id(assignment), "study": study},
        ).fetchall()[0]
        check_grants(store, caller, grants, known)
        if owner == caller.user_id:
            return _rater_view.assignment_view(store, cur, study, caller.user_id, int(assignment))
    finally:
        cur.close()
    if owner is None:
        raise NotFoundError(f"There is no assignment {assignment} in study '{study}'.")
    refuse(
        store,
        caller,
        f"Assignment {assignment} belongs to another rater.",
        study=study,
        service="rating.assignment_view",
    )


@guarded
def rater_queue(
    store: Store, caller: Caller, study: str, *, rater: str | None = None
) -> pl.DataFrame:
    """A rater's assignments in queue order: assignment, case_id, shown_order, status, done,
    done_at, phase, attempt (of a calibration), presented_at. ``rater``: the caller (default); another rater's queue needs ``monitor_study``."""
    if rater is None or rater == caller.user_id:
        require(store, caller, "rate", study=study, service="rating.rater_queue")
        rater = caller.user_id
    else:
        require(store, caller, "monitor_study", study=study, service="rating.rater_queue")
    return store.read(
        "SELECT id AS assignment, case_id, shown_order, status, done, done_at, phase, attempt,"
        " presented_at FROM assignments WHERE study = $s AND rater = $r ORDER BY shown_order",
        {"s": study, "r": rater},
    )


# --- flags and skips -------------------------------------------------------------------------


@guarded(in_query=True)
def flag_case(store: Store, caller: Caller, study: str, assignment: int, reason: str) -> int:
    """Flag the case of one of the caller's assignments as faulty, with a ``reason``; the case
    stays in the queue (it can still be rated). Returns the audit event's seq."""
    return _mark(store, caller, study, assignment, "flag", reason, audit.CASE_FLAG)


@guarded(in_query=True)
def skip_case(store: Store, caller: Caller, study: str, assignment: int, reason: str) -> int:
    """Skip the case of one of the caller's unfinished assignments, with a ``reason``: it leaves
    their queue and is not rated by them. Returns the audit event's seq."""
    return _mark(store, caller, study, assignment, "skip", reason, audit.CASE_SKIP)


_DONE = {"flag": "flagged", "skip": "skipped"}


def _mark(
    store: Store,
    caller: Caller,
    study: str,
    assignment: Any,
    kind: str,
    reason: str,
    event: audit.EventKind,
) -> int:
    assignment = _own_assignment(store, caller, study, assignment, service=f"rating.{kind}_case")[
        "id"
    ]
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError([Problem(kind, None, "reason", f"a {kind} needs a reason")])
    with store.transaction() as cur:
        done, study_status, phase = cur.execute(
            "SELECT s.done, t.status, s.phase FROM assignments s JOIN studies t"
            " ON t.id = s.study WHERE s.id = ?",
            [assignment],
        ).fetchall()[0]
        if study_status != "rating":
            raise StateError(
                f"Study '{study}' is {study_status}; cases are {_DONE[kind]} only while rating."
            )
        if kind == "skip" and phase == "calibration":
            raise StateError(
                "A calibration case cannot be skipped: the calibration score counts every case. "
                "Flag it if something is wrong with it."
            )
        if kind == "skip" and done:
            raise StateError(f"Assignment {assignment} is rated already; it cannot be skipped.")
        if cur.execute(
            "SELECT 1 FROM case_flags WHERE assignment = ? AND kind = ?", [assignment, kind]
        ).fetchall():
            raise ConflictError(f"This case was {_DONE[kind]} already.")
        flag_id = store.allocate_ids(cur, "case_flags")
        cur.execute(
            "INSERT INTO case_flags VALUES (?, ?, ?, ?, ?, ?, ?)",
            [flag_id, assignment, study, kind, reason, utc_now(), caller.actor],
        )
        return audit.append(
            cur,
            actor=caller.actor,
            kind=event,
            object_type="case_flag",
            object_id=str(flag_id),
            study=study,
            payload={"assignment": assignment, "reason": reason},
        )


# --- submitting ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Sheet:
    """One assignment as the rater sees it: what can be rated on it, and how it stands."""

    assignment: int
    done: bool
    labels: Mapping[int, str]  # presentation id -> neutral label, in screen order
    instruments: tuple[Instrument, ...]
    presented_at: dt.datetime | None = None  # first shown to the rater (UTC)
    criteria: tuple[str, ...] = ()  # the case's rubric criterion keys, in order

    @property
    def presentations(self) -> list[int]:
        return list(self.labels)


@guarded(in_query=True)
def submit_rating(
    store: Store,
    caller: Caller,
    study: str,
    assignment: int,
    values: Mapping[str, Any],
    *,
    seconds: float | None = None,
    revise: bool = False,
    comment: str | None = None,
    present_next: bool = False,
) -> int:
    """Submit the caller's values for one of their assignments; return the audit event's seq.

    ``values`` maps item_key -> value for case-scope items (e.g. a pairwise choice "A", "B" or
    "tie"), and item_key -> {presentation: value} for answer-scope items, where a presentation is
    named by its id (int) or its label ("Response A"); a bare value is accepted when the
    assignment shows one answer. Each value is checked by ``Item.validate_value``; every
    required item needs a value for every response shown, and the instruments' consistency rules
    must hold. An item rated per criterion of the case (``criteria = "case"``) takes
    {presentation: {criterion_key: True | False}} with every criterion of the case labelled
    (``Item.validate_criteria``); the labels are stored as one JSON object per answer.
    ``seconds``: time on task, in seconds (>= 0); when None (the rating screen), a first
    submission takes the seconds from the case's first presentation (``mark_presented``) to
    now, and None when it was never marked. A revision records no time on task: ``seconds``
    with ``revise=True`` is a ``ValidationError`` (the time per case would count the case twice).

    Accepted only while the study is ``rating``, only for the caller's own assignment in
    ``study`` (``PermissionDenied``, audited, otherwise), never for an answer the caller wrote.
    The assignment is marked done. Submitting a done assignment again is a ``ConflictError`` (so
    a double submit leaves one rating) unless ``revise=True``: then the given values become new
    revisions that replace the current ones (earlier revisions stay, as history); a value equal
    to the current one is left as it is, and a revision that changes nothing is refused.
    ``revise=True`` on an assignment never submitted is a ``StateError``. ``comment``: the
    rater's free-text comment on the case (the rating screen's comment box), stored with the
    first rating row written (``rating_comments``, as an imported rating's comment) and in the
    audit event; a revision's comment is stored with its own rows, so earlier ones stay.
    ``present_next``: a first submission also stamps the case the queue offers next as
    presented (``mark_presented``), in the same transaction: for the rating screen, which shows
    that case in the same round trip.
    """
    row = _own_assignment(store, caller, study, assignment, service=_SUBMIT, sheet=True)
    _check_seconds(seconds)
    _check_state(study, row, revise=revise)
    if revise and seconds is not None:
        raise ValidationError(
            [
                Problem(
                    "rating",
                    None,
                    "seconds",
                    "a revision records no time on task (only the first submission does); "
                    "leave seconds out",
                )
            ]
        )
    sheet = _Sheet(
        row["id"],
        bool(row["done"]),
        dict(row["labels"]),
        row["instruments"],
        row["presented_at"],
        tuple(c["key"] for c in stored_criteria(row["criteria"])),
    )
    with store.transaction() as cur:
        now = utc_now()
        if revise:
            _check_state(study, _state(cur, sheet.assignment), revise=True)
        else:
            # the gate of a first submission: marked done here only if it is not done, not
            # withdrawn and the study still rates, now that writers are serialised (a second
            # tab's submit, a withdrawal or a close since the read above changes no row)
            (changed,) = cur.execute(
                "UPDATE assignments SET done = true, status = 'done', done_at = ? WHERE id = ?"
                " AND NOT done AND status <> 'withdrawn'"
                " AND (SELECT status FROM studies WHERE id = ?) = 'rating'",
                [now, sheet.assignment, study],
            ).fetchall()[0]
            if not changed:
                _check_state(study, _state(cur, sheet.assignment), revise=False)
                raise ConflictError(f"Assignment {sheet.assignment} was submitted already.")
        rows = _rating_rows(cur, sheet, values, revise=revise)
        if revise:
            rows = _changed(cur, sheet, rows)
        if seconds is None and not revise and sheet.presented_at is not None:
            seconds = max(0.0, (now - sheet.presented_at).total_seconds())
        _write(store, cur, sheet, rows, caller=caller, seconds=seconds, revise=revise, now=now)
        if comment:  # a statement only when there is a comment
            cur.execute("INSERT INTO rating_comments VALUES (?, ?)", [rows[0]["id"], comment])
        alerts = _raise_safety_alerts(store, cur, study, sheet, rows)
        seq = audit.append(
            cur,
            actor=caller.actor,
            kind=audit.RATING_REVISE if revise else audit.RATING_SUBMIT,
            object_type="assignment",
            object_id=str(sheet.assignment),
            study=study,
            payload={
                "rater": caller.user_id,
                "seconds": seconds,
                # the time stored on the ratings (and, first time, the assignment's done_at):
                # audit verify compares them with it
                "submitted_at": now.isoformat(),
                "values": sorted(
                    (
                        {
                            k: r[k]
                            for k in ("slot", "item_key", "value_num", "value_text", "revision")
                        }
                        for r in rows
                    ),
                    key=lambda r: (r["slot"], r["item_key"]),
                ),
            }
            | ({"comment": comment} if comment else {})
            | ({"safety_alerts": alerts} if alerts else {}),
        )
        if present_next and not revise:
            _present_next(store, cur, caller, study, now)
        return seq


def _raise_safety_alerts(
    store: Store, cur: Cursor, study: str, sheet: _Sheet, rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Put the submission's severe-harm ratings into the safety queue, in its transaction."""
    severe = severe_values(sheet.instruments)
    hits = [
        r
        for r in rows
        if r["item_key"] in severe
        and (r["value_text"] if r["value_text"] is not None else r["value_num"])
        in severe[r["item_key"]]
    ]
    if not hits:
        return []
    first_id = store.allocate_ids(cur, "safety_alerts")
    now = utc_now()
    store.insert_rows(
        cur,
        "safety_alerts",
        [
            {"id": first_id + n, "study": study, "rating": r["id"], "raised_at": now}
            for n, r in enumerate(hits)
        ],
    )
    return [{"slot": r["slot"], "item_key": r["item_key"]} for r in hits]


def _check_seconds(seconds: float | None) -> None:
    if seconds is not None and (
        isinstance(seconds, bool) or not math.isfinite(seconds) or seconds < 0
    ):
        raise ValidationError([Problem("rating", None, "seconds", "must be a number >= 0")])


def _state(cur: Cursor, assignment: int) -> dict[str, Any]:
    """The assignment's state as ``_check_state`` reads it, inside the caller's transaction."""
    done, status, study_status, phase = cur.execute(
        "SELECT s.done, s.status, t.status, s.phase FROM assignments s"
        " JOIN studies t ON t.id = s.study WHERE s.id = ?",
        [assignment],
    ).fetchall()[0]
    return {
        "id": assignment,
        "done": done,
        "status": status,
        "study_status": study_status,
        "phase": phase,
    }


def _check_state(study: str, row: Mapping[str, Any], *, revise: bool) -> None:
    """Refuse a submission the assignment cannot take as it stands (``row``: ``_state``'s keys)."""
    assignment, done, phase = row["id"], row["done"], row["phase"]
    if row["study_status"] != "rating":
        raise StateError(
            f"Study '{study}' is {row['study_status']}; ratings are accepted only while rating."
        )
    if row["status"] == "withdrawn":
        raise StateError(f"Assignment {assignment} was withdrawn.")
    if done and not revise:
        raise ConflictError(f"Assignment {assignment} was submitted already.")
    if revise and phase == "calibration":
        # the score is taken from the first submission; revising after a failed score would
        # turn the calibration into a guessing game
        raise StateError(
            f"Assignment {assignment} is a calibration case: its answers are final. The "
            "coordinator can let a rater try the calibration again."
        )
    if revise and not done:
        # a revision replaces some submitted values; a first submit must give every required
        # value, so it may not come in through the revise path
        raise StateError(
            f"Assignment {assignment} has not been submitted yet, so there is nothing to "
            "revise: submit it first (with every required item)."
        )


def _rating_rows(
    cur: Cursor, sheet: _Sheet, values: Mapping[str, Any], *, revise: bool
) -> list[dict[str, Any]]:
    """One row per (slot, item) of the submission, each value checked; every problem at once.

    Slot 0 is the assignment itself (case-scope items); other slots are presentation ids.
    """
    items = {item.key: (inst, item) for inst in sheet.instruments for item in inst.items}
    problems = [
        Problem("rating", None, key, "not an item of this study")
        for key in values
        if key not in items
    ]
    rows = []
    for key, (inst, item) in items.items():
        by_slot, faults = _by_slot(item, values.get(key), sheet)
        problems += [Problem("rating", None, key, fault) for fault in faults]
        wanted = {0} if item.scope == "case" else set(sheet.presentations)
        if item.per_case_criteria and not sheet.criteria:
            wanted = set()  # a case without a rubric has nothing to rate on this item
            if by_slot:
                problems.append(Problem("rating", None, key, "this case has no rubric criteria"))
                continue
        if item.required and not revise and not faults and set(by_slot) != wanted:
            problems.append(Problem("rating", None, key, "required, but has no value"))
        for slot, value in by_slot.items():
            try:
                checked = (
                    item.validate_criteria(value, sheet.criteria)
                    if item.per_case_criteria
                    else item.validate_value(value)
                )
            except StudyError as exc:
                reason = _value_fault(key, sheet.labels.get(slot), exc)
                problems.append(Problem("rating", None, key, reason))
                continue
            rows.append(_row(inst, key, slot, checked))
    if not problems:
        problems += _rule_faults(cur, sheet, rows)
    if problems:
        raise ValidationError(list(dict.fromkeys(problems)))
    if not rows:
        raise ValidationError([Problem("rating", None, None, "no values given")])
    return rows


def _changed(cur: Cursor, sheet: _Sheet, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of a revision whose value differs from the current one: an unchanged value is
    not a revision (it would restate the value under a new time on task, and raise its safety
    alert again). Refuses a revision that changes nothing."""
    current = {
        (slot, item): (num, text)
        for slot, item, num, text in cur.execute(
            "SELECT r.slot, r.item_key, r.value_num, r.value_text FROM current_ratings c"
            " JOIN ratings r ON r.id = c.rating WHERE c.assignment = ?",
            [sheet.assignment],
        ).fetchall()
    }
    changed = [
        r
        for r in rows
        if current.get((r["slot"], r["item_key"])) != (r["value_num"], r["value_text"])
    ]
    if not changed:
        raise ValidationError(
            [Problem("rating", None, None, "no value changed: nothing to revise")]
        )
    return changed


def _row(inst: Instrument, item_key: str, slot: int, value: Any) -> dict[str, Any]:
    """A rating row's content: where it goes (slot) and the value, numeric or text."""
    text = value if isinstance(value, str) else None
    return {
        "slot": slot,
        "presentation": slot or None,
        "instrument_key": inst.key,
        "instrument_version": inst.version,
        "item_key": item_key,
        "value_num": None if text is not None else float(value),
        "value_text": text,
    }


def _by_slot(item: Item, given: Any, sheet: _Sheet) -> tuple[dict[int, Any], list[str]]:
    """Slot -> value for one item's submitted value(s), and the problems found."""
    if item.scope == "case":
        return ({0: given} if given is not None else {}), []
    if (
        item.per_case_criteria
        and isinstance(given, Mapping)
        and not any(isinstance(v, Mapping) for v in given.values())
    ):
        # one answer's {criterion: met}, given bare: allowed when one answer is shown
        if len(sheet.labels) == 1:
            return {sheet.presentations[0]: given}, []
        return {}, ["give {label: {criterion: met}} per response shown"]
    if isinstance(given, Mapping):
        by_label = {label: pid for pid, label in sheet.labels.items()}
        by_slot, problems = {}, []
        for name, value in given.items():
            slot = by_label.get(name) if isinstance(name, str) else name
            if slot not in sheet.labels:
                problems.append(f"this assignment shows no {name!r}")
            elif value is not None:
                by_slot[slot] = value
        return by_slot, problems
    if given is None:
        return {}, []
    if len(sheet.labels) == 1:
        return {sheet.presentations[0]: given}, []
    return {}, ["give one value per response shown, e.g. {'Response A': 4, 'Response B': 3}"]


def _value_fault(key: str, label: str | None, exc: StudyError) -> str:
    """The item's complaint about a value, naming the response it was given for."""
    reason = str(exc)
    if label is None:
        return reason
    prefix = f"item '{key}'"
    if reason.startswith(prefix):
        return f"{prefix}, {label}{reason[len(prefix) :]}"
    return f"{label}: {reason}"


def _rule_faults(cur: Cursor, sheet: _Sheet, rows: list[dict[str, Any]]) -> list[Problem]:
    """Problems for ratings that break an instrument's consistency rules, per response shown.

    The values checked for a slot are the stored current values overlaid with this submission's,
    so a revision of one item cannot leave it contradicting an item rated earlier.
    """
    if not any(inst.rules for inst in sheet.instruments):
        return []
    current: dict[tuple[str, int], dict[str, Any]] = {}
    stored = (
        cur.execute(
            "SELECT r.instrument_key, r.slot, r.item_key, r.value_num, r.value_text"
            " FROM current_ratings c JOIN ratings r ON r.id = c.rating WHERE c.assignment = ?",
            [sheet.assignment],
        ).fetchall()
        if sheet.done  # nothing is stored before the first submit
        else []
    )
    for key, slot, item_key, num, text in stored:
        current.setdefault((key, slot), {})[item_key] = text if text is not None else num
    for row in rows:
        value = row["value_text"] if row["value_text"] is not None else row["value_num"]
        current.setdefault((row["instrument_key"], row["slot"]), {})[row["item_key"]] = value
    by_key = {inst.key: inst for inst in sheet.instruments}
    problems = []
    for (key, slot), slot_values in current.items():
        where = sheet.labels.get(slot)
        # in the words the rater read (prompts, option labels), named by the item to change
        # (the rule's then-item), so the screen puts it beside that field
        for rule, given, then in broken_rules(by_key[key], slot_values):
            message = rule_in_words(by_key[key], rule, given, then)
            reason = f"{where}: {message}" if where else message
            problems.append(Problem("rating", None, rule.then_item, reason))
    return problems


def _write(
    store: Store,
    cur: Cursor,
    sheet: _Sheet,
    rows: list[dict[str, Any]],
    *,
    caller: Caller,
    seconds: float | None,
    revise: bool,
    now: dt.datetime,
) -> None:
    """Insert the rows as new revisions and point the current ratings at them."""
    # an assignment not yet submitted has no ratings (ratings are stored only by a submit or an
    # import, and both mark it done): its first revision is 1 without a scan of the ratings
    previous = (
        dict(
            ((slot, item_key), last)
            for slot, item_key, last in cur.execute(
                "SELECT slot, item_key, max(revision) FROM ratings WHERE assignment = ?"
                " GROUP BY slot, item_key",
                [sheet.assignment],
            ).fetchall()
        )
        if sheet.done
        else {}
    )
    first_id = store.allocate_ids(cur, "ratings")
    for n, row in enumerate(rows):
        row.update(
            id=first_id + n,
            assignment=sheet.assignment,
            revision=previous.get((row["slot"], row["item_key"]), 0) + 1,
            status="submitted",
            seconds_on_task=seconds,
            created_at=now,
            submitted_at=now,
            actor=caller.actor,
        )
    current = [
        {
            "assignment": sheet.assignment,
            "slot": r["slot"],
            "item_key": r["item_key"],
            "rating": r["id"],
        }
        for r in rows
    ]
    try:
        store.insert_rows(cur, "ratings", rows)
        store.insert_rows(
            cur,
            "current_ratings",
            current,
            on_conflict="(assignment, slot, item_key) DO UPDATE SET rating = excluded.rating"
            if revise
            else None,
        )
    except ConstraintViolation:
        raise ConflictError(
            f"Assignment {sheet.assignment} was submitted already (a second submit was refused)."
        ) from None
    # a first submission's done flag was set by submit_rating's gate, before these rows
