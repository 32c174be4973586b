"""What is stored, against what the audit events say: the state half of ``audit verify``.

``audit_verify.verify`` first checks the chain (every event whole, linked and keyed) and that audited
rows have their events; then ``state_fault`` here checks that the rows are what the events
recorded:

- protocols: the stored content hashes to the hash its ``protocol.lock`` event recorded;
- cases, arms, answers, assignments, presentations: each row matches its digest, and the
  digests add up to what the storing event recorded (``study.digests``);
- assignments: done exactly when a ``rating.submit`` event recorded their submission, by the
  rater the assignment names;
- current ratings: each (assignment, response, item) points at the newest revision the rating
  events recorded, and no pointer exists without an event;
- roles: exactly those that the ``role.grant`` and ``role.revoke`` events leave in force;
- studies: the status their lifecycle events lead to;
- sealed seeds: the commitment the events recorded, and (with the key) the seed behind it.

Each check returns the first finding as (seq of the event to blame, or None for "no event";
a sentence naming the row and the event).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from study import audit, digests, keyfile
from study.canonical import content_hash
from study.instruments import Instrument, item_rows
from study.store import Cursor, first

Finding = tuple[int | None, str]


def state_fault(cur: Cursor, *, key: bytes | None, migrated: bool = True) -> Finding | None:
    """The first stored row that differs from what the events say, or None.

    ``migrated``: False for a database opened read-only before migration 2, which has no row
    digests and no sealed seeds yet (their checks are skipped; the rest apply)."""
    columns = {
        (t, c)
        for t, c in cur.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
        ).fetchall()
    }

    def having(*needed: tuple[str, str]) -> bool:
        # a database opened read-only before later migrations lacks what they added
        return all(n in columns for n in needed)

    checks: tuple[Callable[[], Finding | None], ...] = (
        lambda: _protocols(cur),
        lambda: _digests(cur) if migrated else None,
        lambda: _assignments_done(cur),
        lambda: _current_ratings(cur),
        lambda: _ratings_as_recorded(cur),
        lambda: _imported_ratings(cur),
        lambda: _assignment_states(cur) if having(("assignments", "presented_at")) else None,
        lambda: _undigested_phases(cur) if migrated and having(("assignments", "phase")) else None,
        lambda: _safety_alerts(cur) if having(("safety_alerts", "rating")) else None,
        lambda: _acknowledgements(cur) if having(("safety_alerts", "note")) else None,
        lambda: _flags(cur) if having(("case_flags", "reason")) else None,
        lambda: _instruments(cur),
        lambda: _attachments(cur),
        lambda: _studies(cur),
        lambda: _lock_metadata(cur),
        lambda: _people(cur),
        lambda: _roles(cur),
        lambda: _statuses(cur),
        lambda: _sealed_seeds(cur, key) if migrated else None,
    )
    for check in checks:
        found = check()
        if found is not None:
            return found
    return None


def _protocols(cur: Cursor) -> Finding | None:
    rows = cur.execute(
        "SELECT p.study, p.version, p.content, p.content_hash, e.seq,"
        " json_extract_string(e.payload, '$.content_hash')"
        " FROM protocols p JOIN audit_events e ON e.action = ?"
        "  AND e.object_id = p.study || '@' || p.version ORDER BY e.seq",
        [audit.PROTOCOL_LOCK.name],
    ).fetchall()
    for study, version, content, stored_hash, seq, recorded in rows:
        name = f"protocol {study}@{version}"
        if content_hash(json.loads(content)) != recorded:
            return seq, (
                f"{name}'s content differs from what audit event {seq} locked (content hash "
                f"{recorded}): it was altered"
            )
        if stored_hash != recorded:
            return seq, f"{name}'s stored hash differs from the one audit event {seq} recorded"
    return None


_STORING_KINDS = {
    "cases": (audit.CASES_IMPORT, audit.CASES_REMOVE),
    "arms": (audit.ARMS_IMPORT, audit.ARMS_REMOVE),
    "answers": (audit.ANSWERS_IMPORT, audit.ANSWERS_REMOVE),
    "assignments": (audit.ASSIGNMENTS_PERSIST,),
    "presentations": (audit.ASSIGNMENTS_PERSIST,),
    "assignment_phases": (audit.ASSIGNMENTS_PERSIST,),
}
"""Per digested kind, the events that change its rows (an import adds, a removal takes away):
each records the total over the study's digests after it."""


def _recorded_total_path(kind: str) -> str:
    return (
        f"$.stored_sha256.{kind}"
        if kind in ("assignments", "presentations", "assignment_phases")
        else "$.stored_sha256"
    )


def _digests(cur: Cursor) -> Finding | None:
    for kind, spec in digests.DIGESTED.items():
        # per study, the newest storing event that recorded digests: it holds the total over all
        latest = cur.execute(
            "SELECT study, max(seq) FROM audit_events WHERE list_contains(?, action)"
            " AND json_extract_string(payload, ?) IS NOT NULL GROUP BY study ORDER BY study",
            [[k.name for k in _STORING_KINDS[kind]], _recorded_total_path(kind)],
        ).fetchall()
        for study, seq in latest:
            found = _digest_rows(cur, study, kind, spec, seq)
            if found is not None:
                return found
            recorded = first(
                cur.execute(
                    "SELECT json_extract_string(payload, ?) FROM audit_events WHERE seq = ?",
                    [_recorded_total_path(kind), seq],
                ).fetchall()
            )[0]
            if digests.total(cur, study, kind) != recorded:
                return seq, (
                    f"the digests of study {study}'s {kind} differ from what audit event {seq} "
                    "recorded: rows and their digests were altered together"
                )
    return None


def _digest_rows(
    cur: Cursor, study: str, kind: str, spec: digests.Digested, seq: int
) -> Finding | None:
    row = first(
        cur.execute(
            f"SELECT coalesce(r.row_id, d.row_id), r.digest IS NULL, d.digest IS NULL"
            f" FROM ({spec.rows_sql()}) r FULL JOIN (SELECT row_id, digest FROM stored_digests"
            "  WHERE study = $study AND kind = $kind) d ON d.row_id = r.row_id"
            " WHERE r.digest IS DISTINCT FROM d.digest ORDER BY 1 LIMIT 1",
            {"study": study, "kind": kind},
        ).fetchall()
    )
    if row is None:
        return None
    row_id, gone, undigested = row
    what = f"{spec.table[:-1]} {row_id} of study {study}"
    if kind != spec.table:  # a later set of the table's columns: say which
        what += f" ({', '.join(spec.columns)})"
    if gone:
        return seq, f"{what} was stored (audit event {seq} recorded it) but is no longer there"
    if undigested:
        return seq, (
            f"{what} was not stored by any audit event (the newest, {seq}, does not record it): "
            "it was added around the store"
        )
    return (
        seq,
        f"{what} differs from what was stored (recorded by audit event {seq}): it was altered",
    )


_SUBMITTED = (
    "SELECT CAST(object_id AS BIGINT) AS assignment, min(seq) AS seq,"
    " arg_min(json_extract_string(payload, '$.rater'), seq) AS rater"
    " FROM audit_events WHERE action = $submit GROUP BY 1"
)


def _assignments_done(cur: Cursor) -> Finding | None:
    row = first(
        cur.execute(
            f"WITH sub AS ({_SUBMITTED})"
            " SELECT a.id, a.done, a.rater, sub.seq, sub.rater FROM assignments a"
            " LEFT JOIN sub ON sub.assignment = a.id"
            " WHERE a.done <> (sub.seq IS NOT NULL) OR a.rater IS DISTINCT FROM"
            "  coalesce(sub.rater, a.rater) ORDER BY a.id LIMIT 1",
            {"submit": audit.RATING_SUBMIT.name},
        ).fetchall()
    )
    if row is None:
        return None
    assignment, done, rater, seq, recorded_rater = row
    if seq is None:
        return None, (
            f"assignment {assignment} is marked done, but no rating.submit event records its "
            "submission: it was altered around the store"
        )
    if not done:
        return seq, (
            f"assignment {assignment} is marked pending, but audit event {seq} recorded its "
            "submission: it was set back"
        )
    return seq, (
        f"assignment {assignment} belongs to rater {rater}, but audit event {seq} recorded "
        f"rater {recorded_rater}'s submission: it was given to another rater"
    )


def _current_ratings(cur: Cursor) -> Finding | None:
    row = audit.first_with_rating_values(
        cur,
        ", newest AS (SELECT assignment, slot, item_key, max(revision) AS revision,"
        "  arg_max(seq, revision) AS seq FROM ev GROUP BY ALL)"
        " SELECT n.assignment, n.slot, n.item_key, n.revision, n.seq, c.rating, r.revision"
        " FROM newest n LEFT JOIN current_ratings c ON c.assignment = n.assignment"
        "  AND c.slot = n.slot AND c.item_key = n.item_key"
        " LEFT JOIN ratings r ON r.id = c.rating AND r.assignment = n.assignment"
        "  AND r.slot = n.slot AND r.item_key = n.item_key"
        " WHERE r.revision IS DISTINCT FROM n.revision ORDER BY n.seq LIMIT 1",
    )
    if row is not None:
        assignment, slot, item, revision, seq, rating, stored_revision = row
        what = f"the current rating of assignment {assignment} (slot {slot}, item '{item}')"
        if rating is None:
            return seq, f"{what} is missing: audit event {seq} made revision {revision} current"
        return seq, (
            f"{what} points at rating {rating} (revision {stored_revision}), but audit event "
            f"{seq} made revision {revision} current"
        )
    extra = audit.first_with_rating_values(
        cur,
        "SELECT c.assignment, c.slot, c.item_key, c.rating FROM current_ratings c"
        " WHERE NOT EXISTS (SELECT 1 FROM ev WHERE ev.assignment = c.assignment"
        "  AND ev.slot = c.slot AND ev.item_key = c.item_key) ORDER BY 1, 2, 3 LIMIT 1",
    )
    if extra is not None:
        assignment, slot, item, rating = extra
        return None, (
            f"the current rating of assignment {assignment} (slot {slot}, item '{item}') points "
            f"at rating {rating}, which no rating event recorded: it was added around the store"
        )
    return None


# When a rating event recorded its submission time (``$.submitted_at``, since December 2026),
# the stored time must be it; before that, a submission's time was taken inside the
# transaction that appended the event, after the previous event was appended (writers are
# serialised), so it lies between the two events' times. Ratings imported from a file carry the
# file's times, which older import events did not record: those are not checked.
_SUBMITTED_AT_DIFFERS = """CASE
  WHEN json_extract_string(e.payload, '$.submitted_at') IS NOT NULL
    THEN {at} IS DISTINCT FROM TRY_CAST(json_extract_string(e.payload, '$.submitted_at') AS TIMESTAMP)
  WHEN json_extract_string(e.payload, '$.imported') IS NOT NULL THEN false
  ELSE {at} IS NULL OR {at} > e.occurred_at OR {at} < coalesce(p.occurred_at, {at})
END"""


def _ratings_as_recorded(cur: Cursor) -> Finding | None:
    """Each stored revision's status, actor, seconds on task and submission time against the
    rating event that recorded its value (the values themselves: ``audit_verify._coverage_fault``).

    Proves that no recorded rating was discarded, re-timed, given to another actor or given
    other seconds around the store. Not for ratings imported from a file: their submission
    times and per-row seconds come from the file and their events did not record them. Every rating an event records was submitted: no service
    discards one (a revision adds a row; the old one stays as history)."""
    row = audit.first_with_rating_values(
        cur,
        "SELECT r.id, r.assignment, r.item_key, r.revision, ev.seq, r.status, r.actor, e.actor,"
        " r.seconds_on_task, TRY_CAST(json_extract_string(e.payload, '$.seconds') AS DOUBLE),"
        f" {_SUBMITTED_AT_DIFFERS.format(at='r.submitted_at')}"
        " FROM ratings r JOIN ev ON ev.assignment = r.assignment AND ev.slot = r.slot"
        "  AND ev.item_key = r.item_key AND ev.revision = r.revision"
        " JOIN audit_events e ON e.seq = ev.seq LEFT JOIN audit_events p ON p.seq = ev.seq - 1"
        " WHERE r.status <> 'submitted' OR r.actor IS DISTINCT FROM e.actor"
        # an import records one time on task per assignment, the file's rows may differ
        "  OR (json_extract_string(e.payload, '$.imported') IS NULL AND r.seconds_on_task"
        "   IS DISTINCT FROM TRY_CAST(json_extract_string(e.payload, '$.seconds') AS DOUBLE))"
        f"  OR {_SUBMITTED_AT_DIFFERS.format(at='r.submitted_at')}"
        " ORDER BY r.id LIMIT 1",
    )
    if row is None:
        return None
    rating, assignment, item, revision, seq, status, actor, recorded_actor = row[:8]
    seconds, recorded_seconds, time_differs = row[8:]
    what = f"rating {rating} (assignment {assignment}, item '{item}', revision {revision})"
    if status != "submitted":
        return seq, f"{what} is {status}, but audit event {seq} recorded it submitted"
    if actor != recorded_actor:
        return seq, (
            f"{what} names actor {actor}, but audit event {seq} was {recorded_actor}'s: "
            "it was rewritten"
        )
    if time_differs:
        return seq, f"{what}'s submission time differs from audit event {seq}'s: it was altered"
    return seq, (
        f"{what} records {seconds} seconds on task, but audit event {seq} recorded "
        f"{recorded_seconds}: it was altered"
    )


_IMPORTED_VALUES = """
SELECT e.seq, TRY_CAST(e.object_id AS BIGINT) AS assignment, v.slot, v.item_key, v.revision,
       TRY_CAST(v.submitted_at AS TIMESTAMP) AS submitted_at, v.seconds_on_task,
       TRY_CAST(json_extract_string(e.payload, '$.done_at') AS TIMESTAMP) AS done_at
FROM (SELECT seq, object_id, payload, unnest(from_json(json_extract(payload, '$.values'),
        '[{"slot": "BIGINT", "item_key": "VARCHAR", "revision": "INTEGER",
           "submitted_at": "VARCHAR", "seconds_on_task": "DOUBLE"}]')) AS v
      FROM audit_events WHERE action = $submit
      AND json_extract_string(payload, '$.imported') IS NOT NULL
      AND json_extract_string(payload, '$.done_at') IS NOT NULL) e
"""
"""SQL: every value an import event recorded with its file's time and seconds ($submit), since
December 2026 (older import events did not record them; their rows are not checked so)."""


def _imported_ratings(cur: Cursor) -> Finding | None:
    """Ratings imported from a file: each stored revision's submission time and seconds, and
    its assignment's done time, against what the import event recorded from the file."""
    row = first(
        cur.execute(
            f"WITH iv AS ({_IMPORTED_VALUES}) SELECT r.id, r.assignment, r.item_key, iv.seq"
            " FROM ratings r JOIN iv ON iv.assignment = r.assignment AND iv.slot = r.slot"
            "  AND iv.item_key = r.item_key AND iv.revision = r.revision"
            " JOIN assignments a ON a.id = r.assignment"
            " WHERE r.submitted_at IS DISTINCT FROM iv.submitted_at"
            "  OR r.seconds_on_task IS DISTINCT FROM iv.seconds_on_task"
            "  OR a.done_at IS DISTINCT FROM iv.done_at ORDER BY r.id LIMIT 1",
            {"submit": audit.RATING_SUBMIT.name},
        ).fetchall()
    )
    if row is None:
        return None
    rating, assignment, item, seq = row
    return seq, (
        f"rating {rating} (assignment {assignment}, item '{item}'), imported, or its "
        f"assignment's done time, differs in time or seconds from what audit event {seq} "
        "recorded from the file: it was altered"
    )


def _undigested_phases(cur: Cursor) -> Finding | None:
    """Assignments whose phase no event digested (stored before December 2026): a calibration
    assignment must be of a calibration case of its study's newest protocol, and a repeat must
    repeat a live assignment of the same rater and case under a protocol that repeats. This is
    what an older database can still prove of a phase; a calibration case set to live, or an
    attempt number changed, it cannot."""
    rows = cur.execute(
        "SELECT a.id, a.study, a.case_id, a.phase, EXISTS (SELECT 1 FROM assignments l"
        "  WHERE l.study = a.study AND l.rater = a.rater AND l.case_id = a.case_id"
        "  AND l.phase = 'live') FROM assignments a WHERE a.phase <> 'live'"
        " AND NOT EXISTS (SELECT 1 FROM stored_digests d WHERE d.study = a.study"
        "  AND d.kind = 'assignment_phases' AND d.row_id = CAST(a.id AS VARCHAR))"
        " ORDER BY a.id",
    ).fetchall()
    protocols: dict[str, tuple[int | None, dict]] = {}
    for assignment, study, case, phase, has_live in rows:
        if study not in protocols:
            found = first(
                cur.execute(
                    "SELECT p.content, (SELECT max(seq) FROM audit_events e WHERE e.action = ?"
                    "  AND e.object_id = p.study || '@' || p.version) FROM protocols p"
                    " WHERE p.study = ? ORDER BY p.version DESC LIMIT 1",
                    [audit.PROTOCOL_LOCK.name, study],
                ).fetchall()
            )
            protocols[study] = (found[1], json.loads(found[0])) if found else (None, {})
        seq, content = protocols[study]
        calibration = (content.get("calibration") or {}).get("cases") or []
        if phase == "calibration" and case not in calibration:
            return seq, (
                f"assignment {assignment} of study {study} is a calibration assignment, but case "
                f"{case} is no calibration case of the protocol audit event {seq} locked: its "
                "phase was altered"
            )
        if phase == "repeat" and (content.get("repeats") is None or not has_live):
            return seq, (
                f"assignment {assignment} of study {study} is a repeat, but its protocol (audit "
                f"event {seq}) repeats nothing or its rater has no live assignment of case "
                f"{case}: its phase was altered"
            )
    return None


def _assignment_states(cur: Cursor) -> Finding | None:
    """Each assignment's state against its events: never withdrawn (no service withdraws; a
    withdrawal would need its own event), done at its first submission's time, first shown
    when its ``assignment.present`` event says. (Done or pending: ``_assignments_done``; its
    phase and attempt: their row digests, ``study.digests``.)"""
    withdrawn = first(
        cur.execute(
            "SELECT id, study FROM assignments WHERE status = 'withdrawn' ORDER BY id LIMIT 1"
        ).fetchall()
    )
    if withdrawn is not None:
        return None, (
            f"assignment {withdrawn[0]} of study {withdrawn[1]} is withdrawn, but no audit event "
            "withdrew it (no service withdraws an assignment): it was altered around the store"
        )
    late = first(
        cur.execute(
            f"WITH sub AS ({_SUBMITTED})"
            " SELECT a.id, sub.seq FROM assignments a JOIN sub ON sub.assignment = a.id"
            " JOIN audit_events e ON e.seq = sub.seq LEFT JOIN audit_events p ON p.seq = sub.seq - 1"
            f" WHERE {_SUBMITTED_AT_DIFFERS.format(at='a.done_at')} ORDER BY a.id LIMIT 1",
            {"submit": audit.RATING_SUBMIT.name},
        ).fetchall()
    )
    if late is not None:
        return late[1], (
            f"assignment {late[0]} was done at another time than its submission, audit event "
            f"{late[1]}: its done_at was altered"
        )
    shown = first(
        cur.execute(
            "WITH ev AS (SELECT TRY_CAST(object_id AS BIGINT) AS assignment, min(seq) AS seq,"
            "  arg_min(TRY_CAST(json_extract_string(payload, '$.presented_at') AS TIMESTAMP), seq)"
            "  AS at FROM audit_events WHERE action = ? GROUP BY 1)"
            " SELECT coalesce(a.id, ev.assignment), ev.seq FROM assignments a"
            " FULL JOIN ev ON ev.assignment = a.id"
            " WHERE a.presented_at IS DISTINCT FROM ev.at ORDER BY coalesce(a.id, ev.assignment)"
            " LIMIT 1",
            [audit.ASSIGNMENT_PRESENT.name],
        ).fetchall()
    )
    if shown is not None:
        assignment, seq = shown
        if seq is None:
            return None, (
                f"assignment {assignment} records a first showing, but no assignment.present "
                "event does: it was altered around the store"
            )
        return seq, (
            f"assignment {assignment}'s first showing differs from what audit event {seq} "
            "recorded: it was altered"
        )
    return None


def _safety_alerts(cur: Cursor) -> Finding | None:
    """The safety queue against the rating events: every severe-harm value an event recorded
    raising an alert (``$.safety_alerts``) has its alert stored, on the revision that event
    recorded, and no alert is stored that no event raised. Proves that no alert was deleted or
    slipped in around the store (whether a value should have raised one follows from the
    instrument, whose definition ``_instruments`` checks)."""
    row = audit.first_with_rating_values(
        cur,
        ", raised AS (SELECT e.seq, TRY_CAST(e.object_id AS BIGINT) AS assignment, a.slot,"
        "  a.item_key FROM audit_events e, unnest(from_json(json_extract(e.payload,"
        '  \'$.safety_alerts\'), \'[{"slot": "BIGINT", "item_key": "VARCHAR"}]\')) AS t(a)'
        "  WHERE e.action IN ($submit, $revise)"
        "  AND json_extract(e.payload, '$.safety_alerts') IS NOT NULL),"
        " expected AS (SELECT raised.seq, r.id AS rating, raised.assignment, raised.slot,"
        "  raised.item_key FROM raised JOIN ev ON ev.seq = raised.seq"
        "  AND ev.slot = raised.slot AND ev.item_key = raised.item_key"
        "  LEFT JOIN ratings r ON r.assignment = ev.assignment AND r.slot = ev.slot"
        "  AND r.item_key = ev.item_key AND r.revision = ev.revision)"
        " SELECT x.seq, x.assignment, x.slot, x.item_key, s.id, s.rating"
        " FROM expected x FULL JOIN safety_alerts s ON s.rating = x.rating"
        " WHERE x.seq IS NULL OR s.id IS NULL ORDER BY coalesce(x.seq, 0), s.id LIMIT 1",
    )
    if row is None:
        return None
    seq, assignment, slot, item, alert, rating = row
    if alert is None:
        return seq, (
            f"audit event {seq} raised a safety alert on the rating of assignment {assignment} "
            f"(slot {slot}, item '{item}'), but no such alert is stored: it was deleted"
        )
    return None, (
        f"safety alert {alert} (rating {rating}) was raised by no rating event: it was added "
        "around the store"
    )


def _acknowledgements(cur: Cursor) -> Finding | None:
    """Each safety alert's acknowledgement (who, when, note) against its
    ``safety.acknowledge`` event: none without the event, none lost after it."""
    row = first(
        cur.execute(
            "WITH ack AS (SELECT TRY_CAST(object_id AS BIGINT) AS alert, min(seq) AS seq,"
            "  arg_min(actor, seq) AS actor, arg_min(occurred_at, seq) AS at,"
            "  arg_min(json_extract_string(payload, '$.note'), seq) AS note"
            "  FROM audit_events WHERE action = ? GROUP BY 1)"
            " SELECT coalesce(s.id, ack.alert), ack.seq, s.acknowledged_at IS NULL, s.id IS NULL"
            " FROM safety_alerts s FULL JOIN ack ON ack.alert = s.id"
            " WHERE (s.acknowledged_at IS NOT NULL OR ack.seq IS NOT NULL) AND (ack.seq IS NULL"
            "  OR s.id IS NULL OR s.acknowledged_at IS NULL OR s.acknowledged_at > ack.at"
            "  OR s.acknowledged_by IS DISTINCT FROM ack.actor"
            "  OR s.note IS DISTINCT FROM ack.note)"
            " ORDER BY 1 LIMIT 1",
            [audit.SAFETY_ACKNOWLEDGE.name],
        ).fetchall()
    )
    if row is None:
        return None
    alert, seq, unacknowledged, gone = row
    if seq is None:
        return None, (
            f"safety alert {alert} is marked acknowledged, but no safety.acknowledge event "
            "records it: it was altered around the store"
        )
    if gone:
        return seq, (
            f"audit event {seq} acknowledged safety alert {alert}, which is no longer stored: "
            "it was deleted"
        )
    if unacknowledged:
        return seq, (
            f"safety alert {alert} is unacknowledged, but audit event {seq} acknowledged it: "
            "it was set back"
        )
    return seq, (
        f"safety alert {alert}'s acknowledgement (who, when or note) differs from what audit "
        f"event {seq} recorded: it was altered"
    )


def _flags(cur: Cursor) -> Finding | None:
    """Every case flag and skip an event recorded is stored as recorded (assignment, kind,
    reason, actor). Rows without their event: ``audit_verify._coverage_fault``."""
    row = first(
        cur.execute(
            "SELECT e.seq, e.object_id, f.id IS NULL FROM audit_events e"
            " LEFT JOIN case_flags f ON CAST(f.id AS VARCHAR) = e.object_id"
            " WHERE e.action IN (?, ?) AND (f.id IS NULL"
            "  OR f.kind <> split_part(e.action, '.', 2)"
            "  OR f.assignment IS DISTINCT FROM"
            "   TRY_CAST(json_extract_string(e.payload, '$.assignment') AS BIGINT)"
            "  OR f.reason IS DISTINCT FROM json_extract_string(e.payload, '$.reason')"
            "  OR f.actor IS DISTINCT FROM e.actor) ORDER BY e.seq LIMIT 1",
            [audit.CASE_FLAG.name, audit.CASE_SKIP.name],
        ).fetchall()
    )
    if row is None:
        return None
    seq, flag, gone = row
    if gone:
        return seq, (
            f"audit event {seq} recorded case flag {flag} (a flag or skip), which is no longer "
            "stored: it was deleted"
        )
    return seq, f"case flag {flag} differs from what audit event {seq} recorded: it was altered"


def _instruments(cur: Cursor) -> Finding | None:
    """Each library instrument's stored definition against the content hash its
    ``instrument.add`` event recorded, and its items (option labels included: they decide
    which values raise safety alerts) against that definition. Proves the instrument raters see
    and the safety queue reads is the one added; an instrument without its event is
    ``audit_verify._coverage_fault``'s."""
    rows = cur.execute(
        "SELECT i.key, i.version, i.definition, i.content_hash, min(e.seq),"
        " arg_min(json_extract_string(e.payload, '$.content_hash'), e.seq)"
        " FROM instruments i JOIN audit_events e ON e.action = ?"
        "  AND e.object_id = i.key || '@' || i.version GROUP BY ALL ORDER BY i.key, i.version",
        [audit.INSTRUMENT_ADD.name],
    ).fetchall()
    for key, version, definition, stored_hash, seq, recorded in rows:
        name = f"instrument {key}@{version}"
        parsed = json.loads(definition)
        if content_hash(parsed) != recorded:
            return seq, (
                f"{name}'s definition differs from what audit event {seq} added (content hash "
                f"{recorded}): it was altered"
            )
        if stored_hash != recorded:
            return seq, f"{name}'s stored hash differs from the one audit event {seq} recorded"
        expected = item_rows(Instrument.from_dict(parsed))
        stored = cur.execute(
            "SELECT item_key, position, type, level, required, direction, scope,"
            " CAST(options AS VARCHAR), CAST(definition AS VARCHAR) FROM items"
            " WHERE instrument_key = ? AND instrument_version = ? ORDER BY position",
            [key, version],
        ).fetchall()
        if stored != [tuple(r.values()) for r in expected]:
            differs = next(
                (
                    got[0]
                    for got, want in zip(stored, expected, strict=False)
                    if got != tuple(want.values())
                ),
                "(items added or removed)",
            )
            return seq, (
                f"{name}'s item {differs} differs from the definition audit event {seq} added "
                "(its options, labels or settings): it was altered"
            )
    return None


def _attachments(cur: Cursor) -> Finding | None:
    """Each study's attached instruments against its ``instrument.attach`` events (nothing
    detaches one: an attachment is only added, to a draft), and against the instruments and
    content hashes its protocol.lock event recorded (``$.instruments``, since December 2026).
    Proves no link was deleted or added around the store, nor pointed at another version."""
    row = first(
        cur.execute(
            "WITH ev AS (SELECT study, json_extract_string(payload, '$.key') AS key,"
            "  json_extract_string(payload, '$.version') AS version, min(seq) AS seq"
            "  FROM audit_events WHERE action = ? AND study IS NOT NULL"
            "  AND json_extract_string(payload, '$.key') IS NOT NULL GROUP BY ALL)"
            " SELECT coalesce(s.study, ev.study), coalesce(s.instrument_key, ev.key),"
            "  coalesce(s.instrument_version, ev.version), ev.seq"
            " FROM study_instruments s FULL JOIN ev ON ev.study = s.study"
            "  AND ev.key = s.instrument_key AND ev.version = s.instrument_version"
            " WHERE s.study IS NULL OR ev.seq IS NULL ORDER BY 1, 2 LIMIT 1",
            [audit.INSTRUMENT_ATTACH.name],
        ).fetchall()
    )
    if row is not None:
        study, key, version, seq = row
        if seq is None:
            return None, (
                f"instrument {key}@{version} is attached to study {study}, but no "
                "instrument.attach event attached it: it was linked around the store"
            )
        return seq, (
            f"audit event {seq} attached instrument {key}@{version} to study {study}, but the "
            "link is no longer stored: it was deleted"
        )
    locks = cur.execute(
        "SELECT seq, study, json_extract(payload, '$.instruments') FROM audit_events"
        " WHERE action = ? AND json_extract(payload, '$.instruments') IS NOT NULL ORDER BY seq",
        [audit.PROTOCOL_LOCK.name],
    ).fetchall()
    for seq, study, recorded in locks:
        stored = [
            {"key": k, "version": v, "content_hash": h}
            for k, v, h in cur.execute(
                "SELECT s.instrument_key, s.instrument_version, i.content_hash"
                " FROM study_instruments s JOIN instruments i ON i.key = s.instrument_key"
                " AND i.version = s.instrument_version WHERE s.study = ? ORDER BY s.position",
                [study],
            ).fetchall()
        ]
        if stored != json.loads(recorded):
            return seq, (
                f"study {study}'s attached instruments or their content hashes differ from what "
                f"its protocol locked (audit event {seq}): they were altered"
            )
    return None


def _studies(cur: Cursor) -> Finding | None:
    """Each study's name and synthetic flag against its ``study.create`` event, where the event
    recorded them (nothing renames a study or changes the flag)."""
    row = first(
        cur.execute(
            "SELECT s.id, e.seq FROM studies s JOIN audit_events e ON e.action = ?"
            # an event that recorded neither (written by hand, or by a tool that only counted
            # studies) proves nothing about them; the service records both
            " AND e.object_id = s.id WHERE (json_extract_string(e.payload, '$.name') IS NOT NULL"
            "  AND s.name IS DISTINCT FROM json_extract_string(e.payload, '$.name'))"
            " OR (json_extract_string(e.payload, '$.synthetic') IS NOT NULL"
            "  AND s.synthetic IS DISTINCT FROM"
            "  TRY_CAST(json_extract_string(e.payload, '$.synthetic') AS BOOLEAN))"
            " ORDER BY s.id LIMIT 1",
            [audit.STUDY_CREATE.name],
        ).fetchall()
    )
    if row is None:
        return None
    study, seq = row
    return seq, (
        f"study {study}'s name or synthetic flag differs from what audit event {seq} created: "
        "it was altered"
    )


def _lock_metadata(cur: Cursor) -> Finding | None:
    """Each protocol's locked_by, locked_at and reason against its ``protocol.lock`` event:
    the event's actor and reason; the time it recorded (``$.locked_at``, since December 2026)
    or, before that, a time between the previous event's and the lock event's own (the lock
    takes it in the transaction that appends the event)."""
    row = first(
        cur.execute(
            "SELECT p.study, p.version, e.seq FROM protocols p JOIN audit_events e"
            " ON e.action = ? AND e.object_id = p.study || '@' || p.version"
            " LEFT JOIN audit_events prev ON prev.seq = e.seq - 1"
            " WHERE p.locked_by IS DISTINCT FROM e.actor"
            "  OR p.reason IS DISTINCT FROM json_extract_string(e.payload, '$.reason')"
            "  OR CASE WHEN json_extract_string(e.payload, '$.locked_at') IS NOT NULL"
            "   THEN p.locked_at IS DISTINCT FROM"
            "    TRY_CAST(json_extract_string(e.payload, '$.locked_at') AS TIMESTAMP)"
            "   ELSE p.locked_at > e.occurred_at"
            "    OR p.locked_at < coalesce(prev.occurred_at, p.locked_at) END"
            " ORDER BY e.seq LIMIT 1",
            [audit.PROTOCOL_LOCK.name],
        ).fetchall()
    )
    if row is None:
        return None
    study, version, seq = row
    return seq, (
        f"protocol {study}@{version}'s lock metadata (locked_by, locked_at or reason) differs "
        f"from audit event {seq}, which locked it: it was altered"
    )


PEOPLE_SQL = """
WITH added AS (
  SELECT object_id AS id, min(seq) AS seq, arg_min(payload, seq) AS p
  FROM audit_events WHERE action = $add_kind GROUP BY 1),
mail AS (
  SELECT object_id AS id, max(seq) AS seq,
         arg_max(json_extract_string(payload, '$.email'), seq) AS email
  FROM audit_events WHERE action = $email_kind GROUP BY 1)
SELECT added.id, greatest(added.seq, coalesce(mail.seq, 0)) AS seq,
       CASE WHEN mail.seq IS NULL THEN json_extract_string(added.p, '$.email')
            ELSE mail.email END AS email,
       json_extract_string(added.p, '$.issuer') AS issuer,
       json_extract_string(added.p, '$.subject') AS subject,
       json_exists(added.p, '$.display_name') AS has_name,
       json_extract_string(added.p, '$.display_name') AS display_name,
       json_exists(added.p, '$.specialty') AS has_specialty,
       json_extract_string(added.p, '$.specialty') AS specialty
FROM added LEFT JOIN mail ON mail.id = added.id
"""
"""SQL: per person, what the chain vouches for ($add_kind, $email_kind: ``user.add`` and
``user.email``): the e-mail (the newest ``user.email``'s, else ``user.add``'s), issuer and
subject, and the name and specialty where ``user.add`` recorded them (since December 2026)."""


def people_kinds() -> dict[str, str]:
    """The parameters ``PEOPLE_SQL`` takes."""
    return {"add_kind": audit.USER_ADD.name, "email_kind": audit.USER_EMAIL.name}


def _people(cur: Cursor) -> Finding | None:
    """Each person's issuer, subject, e-mail, name and specialty against their events. Proves
    that no e-mail was rewritten to take a person over at sign-in (which binds only through
    the e-mail the chain vouches for, too). A person added before December 2026 has no
    recorded name or specialty: those two are not checked for them."""
    row = first(
        cur.execute(
            f"WITH v AS ({PEOPLE_SQL}) SELECT u.id, v.seq,"
            " u.email IS DISTINCT FROM v.email,"
            " u.issuer IS DISTINCT FROM v.issuer OR u.subject IS DISTINCT FROM v.subject"
            " FROM users u JOIN v ON v.id = u.id"
            " WHERE u.email IS DISTINCT FROM v.email OR u.issuer IS DISTINCT FROM v.issuer"
            "  OR u.subject IS DISTINCT FROM v.subject"
            "  OR (v.has_name AND u.display_name IS DISTINCT FROM v.display_name)"
            "  OR (v.has_specialty AND u.specialty IS DISTINCT FROM v.specialty)"
            " ORDER BY u.id LIMIT 1",
            people_kinds(),
        ).fetchall()
    )
    if row is None:
        return None
    user, seq, email, identity = row
    what = "e-mail" if email else "issuer or subject" if identity else "name or specialty"
    return seq, (
        f"user {user}'s {what} differs from what their events record (the newest, audit event "
        f"{seq}): it was rewritten around the store"
    )


def _roles(cur: Cursor) -> Finding | None:
    events = cur.execute(
        "SELECT seq, action, object_id, json_extract_string(payload, '$.role'),"
        " json_extract_string(payload, '$.study') FROM audit_events"
        " WHERE action IN (?, ?) ORDER BY seq",
        [audit.ROLE_GRANT.name, audit.ROLE_REVOKE.name],
    ).fetchall()
    in_force: dict[tuple[str, str, str], int] = {}  # (user, scope, role) -> seq of the grant
    revoked: dict[tuple[str, str, str], int] = {}
    for seq, action, user, role, study in events:
        held = (user, study if study is not None else "*", role)
        if action == audit.ROLE_GRANT.name:
            in_force[held] = seq
            revoked.pop(held, None)
        else:
            in_force.pop(held, None)
            revoked[held] = seq
    stored = {
        (user, scope, role)
        for user, scope, role in cur.execute("SELECT user_id, scope, role FROM roles").fetchall()
    }
    for held in sorted(stored - set(in_force)):
        user, scope, role = held
        where = "every study" if scope == "*" else f"study {scope}"
        seq = revoked.get(held)
        if seq is not None:
            return seq, (
                f"role {role} of user {user} in {where} is stored, but audit event {seq} "
                "revoked it: it was restored around the store"
            )
        return None, (
            f"role {role} of user {user} in {where} has no role.grant event: it was added "
            "around the store"
        )
    for held in sorted(set(in_force) - stored, key=in_force.get):
        user, scope, role = held
        where = "every study" if scope == "*" else f"study {scope}"
        seq = in_force[held]
        return seq, (
            f"role {role} of user {user} in {where}, granted by audit event {seq}, is no longer "
            "stored and no role.revoke event took it: it was removed around the store"
        )
    return None


_STATUS_AFTER = {
    audit.STUDY_CREATE.name: "draft",
    audit.STUDY_RATING.name: "rating",
    audit.STUDY_CLOSED.name: "closed",
    audit.STUDY_UNBLINDED.name: "unblinded",
}


def _statuses(cur: Cursor) -> Finding | None:
    events = cur.execute(
        "SELECT seq, action, study, json_extract_string(payload, '$.version') FROM audit_events"
        " WHERE study IS NOT NULL AND action IN (?, ?, ?, ?, ?) ORDER BY seq",
        [*_STATUS_AFTER, audit.PROTOCOL_LOCK.name],
    ).fetchall()
    status: dict[str, tuple[str, int]] = {}
    for seq, action, study, version in events:
        if action == audit.PROTOCOL_LOCK.name:
            if version == "1":
                status[study] = ("locked", seq)
        else:
            status[study] = (_STATUS_AFTER[action], seq)
    for study, stored in cur.execute("SELECT id, status FROM studies ORDER BY id").fetchall():
        expected, seq = status.get(study, (None, None))
        if expected is not None and stored != expected:
            return seq, (
                f"study {study} is {stored}, but its lifecycle events leave it {expected} "
                f"(the last, audit event {seq}): its status was altered"
            )
    return None


def _sealed_seeds(cur: Cursor, key: bytes | None) -> Finding | None:
    recorded = dict(
        cur.execute(
            "SELECT study, arg_max(json_extract_string(payload, '$.seed_commitment'), seq)"
            " FROM audit_events WHERE action IN (?, ?)"
            " AND json_extract_string(payload, '$.seed_commitment') IS NOT NULL GROUP BY study",
            [audit.PROTOCOL_LOCK.name, audit.ASSIGNMENTS_PERSIST.name],
        ).fetchall()
    )
    revealed = {
        study: (seq, seed, salt)
        for seq, study, seed, salt in cur.execute(
            "SELECT seq, study, json_extract_string(payload, '$.seed'),"
            " json_extract_string(payload, '$.salt') FROM audit_events WHERE action = ?"
            " AND json_extract_string(payload, '$.seed') IS NOT NULL",
            [audit.STUDY_UNBLINDED.name],
        ).fetchall()
    }
    sealed = cur.execute(
        "SELECT study, salt, sealed, commitment FROM sealed_seeds ORDER BY study"
    ).fetchall()
    for study, salt, box, commitment in sealed:
        if recorded.get(study) != commitment:
            return None, (
                f"the sealed seed of study {study} has commitment {commitment}, but its events "
                f"recorded {recorded.get(study)}: it was altered"
            )
        if study in revealed:
            seq, seed, shown_salt = revealed[study]
            if keyfile.commitment(int(seed), shown_salt) != commitment:
                return seq, (
                    f"the seed audit event {seq} revealed for study {study} does not match its "
                    "commitment"
                )
        elif key is not None and keyfile.commitment(keyfile.open_seed(key, box, salt), salt) != (
            commitment
        ):
            return None, (
                f"the sealed seed of study {study} does not open to its commitment: it was altered"
            )
    return None
