"""Verifying the audit chain: every event whole, linked and keyed, every audited row covered.

``verify`` walks the chain that ``study.audit`` appends to and names the first event that was
altered or removed; checks that every event is of a declared kind and that the audited rows
(studies, imports, assignments, ratings, ...) have their events, so a trail cut short is caught
too; then asks ``study.audit_state`` whether what is stored is what the events say. Its
``head_hash`` is the value to record outside the database (``verify(..., expect=HASH)`` checks
the chain still holds it). ``python -m study audit verify`` prints its report.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from study import audit_state, keyfile
from study.audit import (
    ANSWERS_IMPORT,
    ANSWERS_REMOVE,
    ARMS_IMPORT,
    ARMS_REMOVE,
    ASSIGNMENTS_PERSIST,
    CALIBRATION_PASS,
    CALIBRATION_RETRY,
    CASE_FLAG,
    CASE_SKIP,
    CASES_IMPORT,
    CASES_REMOVE,
    EVENT_FIELDS,
    EVENT_KINDS,
    GENESIS_HASH,
    INSTRUMENT_ADD,
    PROTOCOL_LOCK,
    STUDY_CREATE,
    TOKEN_CREATE,
    USER_ADD,
    USER_BIND,
    ChainMarkError,
    chain_marker,
    event_hash,
    first_with_rating_values,
    seal_fault,
)
from study.canonical import sha256_hex
from study.store import Cursor, Store, first

_ACTION = EVENT_FIELDS.index("action")


@dataclass(frozen=True, slots=True)
class AuditReport:
    """Result of ``verify``: ``ok`` is True when the whole chain checks out.

    Otherwise ``seq`` is the first event found altered or missing (None when no one event is to
    blame, e.g. an anchor the chain no longer holds) and ``problem`` says what, naming the row
    and the event. ``head_hash`` is the hash of the chain's last event (``GENESIS_HASH`` for an
    empty chain): record it outside the database to be able to show later that the chain was not
    rewritten as a whole. ``counts`` maps every declared kind's name to the number of its events
    in the chain (0 for a kind that never occurred), whenever the chain itself is whole (also
    when rows and events disagree). ``unchecked`` says what could not be checked (no audit key
    at hand: the keyed hashes, the head's seal and the sealed seeds), or is None. ``unkeyed``:
    how many events (from the first) carry plain SHA-256 hashes because they were written before
    the chain was keyed; a chain made keyed that shows many is one rewritten as unkeyed.
    """

    ok: bool
    events: int
    seq: int | None = None
    problem: str | None = None
    head_hash: str | None = None
    counts: Mapping[str, int] = field(default_factory=dict)
    unchecked: str | None = None
    unkeyed: int = 0

    def __str__(self) -> str:
        if self.ok:
            return f"audit trail intact: {self.events} events, head hash {self.head_hash}"
        return self.problem or "audit trail broken"


_STORE_KEY: Any = object()


def verify(
    store: Store, *, key: bytes | None = _STORE_KEY, expect: str | None = None
) -> AuditReport:
    """Walk the audit chain from the first event; report the first event altered or removed,
    then the first stored row that differs from what the events say.

    The chain: for each event, in seq order, seq follows the previous one without a gap; the
    payload's digest matches the stored payload; the event's hash matches its fields (seq
    included, so an event moved to another place fails itself and is named) under the audit key
    (``key``, default the store's; events written before the chain was keyed have plain
    SHA-256 hashes); ``prev_hash`` equals the previous event's ``hash``. The chain's end must
    match ``audit_head``, whose seal (an HMAC of seq and hash) must match under the key.

    Coverage and state (checked when the chain is whole): audited rows must have their events,
    so a trail cut short or emptied is caught; and what is stored must be what the events say
    (``study.audit_state``: ratings, assignments, presentations, the protocol, cases, arms,
    answers, roles, the study's status, the sealed seed). A problem blames the event that
    recorded the row, or, for a row with no event at all, the seq after the chain's end.

    ``expect``: a head hash recorded outside the database earlier; the chain must still hold
    it (a genuine chain that grew since does), else the chain was rewritten or cut back.

    Without the key (``key=None``, or no key file), the keyed hashes and the head's seal cannot
    be checked: someone who can write the file could then recompute a consistent chain, or cut
    its tail. ``unchecked`` says so; ``expect`` still catches both.
    """
    if key is _STORE_KEY:
        key = store.audit_key
    cur = store.cursor()
    try:
        rows = cur.execute(
            "SELECT " + ", ".join(EVENT_FIELDS) + " FROM audit_events ORDER BY seq"
        ).fetchall()
        head_row = first(cur.execute("SELECT * FROM audit_head WHERE id = 1").fetchall())
        try:
            keyed_from, key_id = chain_marker(cur)
        except ChainMarkError:
            # never a note: without the row every event would pass as unkeyed and the row
            # checks would be skipped as for a database never migrated
            return AuditReport(
                False,
                len(rows),
                head_row[1] if head_row else None,
                "the audit chain's metadata row (table audit_chain: keyed_from, key id) is "
                "missing: it was deleted to pass the keyed events off as unkeyed; the chain "
                "cannot be vouched for",
                unchecked=None if key is not None else unchecked_without_key(len(rows)),
            )
        chain = _Chain(keyed_from, key_id, key)
        report = chain.verify(rows, head_row)
        if report.ok and chain.wrong_key:
            # the key at hand did not write this chain, or the chain's key mark was rewritten:
            # either way nothing keyed can be vouched for
            report = AuditReport(
                False,
                len(rows),
                keyed_from,
                "the audit key at hand is not the key this chain records (its key mark "
                f"{key_id}): the key file is another database's, or the mark was altered; the "
                f"keyed events (from {keyed_from} on) cannot be vouched for",
            )
        elif report.ok:
            counts = dict.fromkeys(EVENT_KINDS, 0)
            for row in rows:
                counts[row[_ACTION]] += 1
            fault = _coverage_fault(cur) or audit_state.state_fault(
                cur, key=chain.key, migrated=keyed_from is not None
            )
            if fault is not None:
                seq, problem = fault
                blamed = len(rows) + 1 if seq is None else seq
                report = AuditReport(False, len(rows), blamed, problem, counts=counts)
            elif expect is not None and not _holds(rows, expect):
                report = AuditReport(
                    False,
                    len(rows),
                    None,
                    f"the chain no longer holds the head hash {expect[:64]} recorded earlier: "
                    "it was rewritten or cut back since",
                    counts=counts,
                )
            else:
                report = AuditReport(True, len(rows), head_hash=report.head_hash, counts=counts)
    finally:
        cur.close()
    return AuditReport(
        report.ok,
        report.events,
        report.seq,
        report.problem,
        report.head_hash,
        report.counts,
        chain.unchecked(),
        sum(1 for row in rows if not chain.keyed(row[0])),
    )


def _holds(rows: list[tuple], expect: str) -> bool:
    expect = expect.strip().lower()
    return expect == GENESIS_HASH or any(row[-1] == expect for row in rows)


def unchecked_without_key(events: int) -> str:
    """What verify without the audit key leaves unproven (``AuditReport.unchecked``)."""
    return (
        f"could not check the keys of {events} events, the head's seal over "
        "the chain's metadata (keyed_from, key id) or the sealed seeds: no audit key at hand "
        "(setting CLINVAL_AUDIT_KEY_FILE). Without it verify cannot tell a chain recomputed "
        "by someone who can write the database (events rehashed, keyed_from moved to pass "
        "them off as unkeyed, the tail cut) from a true one, nor rows changed together "
        "with the events that record them; only --expect with a head hash recorded earlier "
        "catches that"
    )


class _Chain:
    """The chain's keying: which events carry keyed hashes and whether the key is at hand."""

    def __init__(self, keyed_from: int | None, key_id: str | None, key: bytes | None) -> None:
        self.keyed_from = keyed_from
        self.key_id = key_id
        self.given = key
        # a key that is not this chain's checks nothing; verify says so rather than calling
        # every keyed event altered
        self.wrong_key = (
            key is not None and key_id is not None and keyfile.fingerprint(key) != key_id
        )
        self.key = None if self.wrong_key else key
        self.unkeyed_checked = 0
        # no key at hand for a chain with events: verify must say what that leaves unproven
        self.withheld = False

    def keyed(self, seq: int) -> bool:
        return self.keyed_from is not None and seq >= self.keyed_from

    def unchecked(self) -> str | None:
        if not (self.unkeyed_checked or self.withheld):
            return None
        return unchecked_without_key(self.unkeyed_checked)

    def verify(self, rows: list[tuple], head: tuple | None) -> AuditReport:
        n = len(rows)
        prev_seq, prev_hash = 0, GENESIS_HASH
        for row in rows:
            event = dict(zip(EVENT_FIELDS, row, strict=True))
            seq = event["seq"]
            if seq != prev_seq + 1:
                missing = prev_seq + 1
                problem = f"audit event {missing} is missing: seq jumps {prev_seq} -> {seq}"
                return AuditReport(False, n, missing, problem)
            # the event's own checks first: an event edited or moved to another seq fails here
            # and is named, before its link to the (intact) predecessor is looked at
            if sha256_hex(event["payload"]) != event["payload_digest"]:
                problem = f"audit event {seq} was altered: its payload does not match its digest"
                return AuditReport(False, n, seq, problem)
            if not self._hash_matches(event):
                problem = f"audit event {seq} was altered: its hash does not match its contents"
                return AuditReport(False, n, seq, problem)
            if event["action"] not in EVENT_KINDS:
                problem = (
                    f"audit event {seq} is of kind '{event['action']}', which this code does not "
                    "declare: it was written around the store"
                )
                return AuditReport(False, n, seq, problem)
            if event["prev_hash"] != prev_hash:
                # both events match their own hashes but not the link that event seq recorded:
                # prev_seq was rewritten with a recomputed hash (or seq's link was, with its hash)
                first_bad = prev_seq if prev_seq else seq
                return AuditReport(
                    False,
                    n,
                    first_bad,
                    f"audit event {first_bad} was altered: event {seq} records a different hash "
                    f"for its predecessor (prev_hash mismatch between events {prev_seq} and {seq})",
                )
            prev_seq, prev_hash = seq, event["hash"]
        head_seq, head_hash = head[1:3] if head else (0, GENESIS_HASH)
        if head_seq > prev_seq:
            return AuditReport(
                False,
                n,
                prev_seq + 1,
                f"audit event {prev_seq + 1} is missing: the chain ends at {prev_seq} but "
                f"{head_seq} events were written",
            )
        if head_seq < prev_seq or head_hash != prev_hash:
            return AuditReport(
                False,
                n,
                prev_seq,
                f"audit event {prev_seq} was altered or added outside the store: it does not "
                "match the recorded head of the chain",
            )
        if head is not None and self.keyed_from is not None:
            if self.keyed_from > head_seq + 1 or self.key is not None:
                found = self._seal_fault(head_seq, head_hash, head[3] if len(head) > 3 else None)
                if found is not None:
                    return AuditReport(False, n, found[0], found[1])
            if self.key is None:
                self.withheld = True
        return AuditReport(True, n, head_hash=prev_hash)

    def _seal_fault(
        self, head_seq: int, head_hash: str, seal: str | None
    ) -> tuple[int, str] | None:
        """(seq to blame, problem) when the head's seal or the chain's metadata fails.

        ``keyed_from`` past the chain's end is a failure with or without the key (no honest
        chain has it: the migration sets it to the next seq, and every later event is keyed);
        the seal itself needs the key."""
        keyed_from = self.keyed_from or 1
        if self.key is None:
            # only the structure can be read: keyed_from past the end
            if keyed_from <= head_seq + 1:
                return None
            return head_seq, (
                f"the chain's metadata says events are keyed from {keyed_from} on, past its "
                f"end (event {head_seq}): keyed_from was moved to pass the events off as unkeyed "
                "(a downgrade)"
            )
        fault = seal_fault(self.key, (head_seq, head_hash, seal), (keyed_from, self.key_id))
        if fault is None:
            return None
        if self.key_id is not None and head_seq >= self.keyed_from:
            # the usual way to lose the seal of a keyed head: events cut off the tail
            return head_seq + 1, (
                f"audit events are missing from {head_seq + 1} on: the chain ends at event "
                f"{head_seq}, but its head was not sealed there (the tail was cut and the head "
                "moved back), or the chain's metadata (keyed from "
                f"{self.keyed_from}) was altered"
            )
        return head_seq, fault

    def _hash_matches(self, event: Mapping[str, Any]) -> bool:
        if not self.keyed(event["seq"]):
            return event_hash(event) == event["hash"]
        if self.key is None:
            self.unkeyed_checked += 1
            return True
        return event_hash(event, self.key) == event["hash"]


# Rows that must have an audit event: (SQL giving a description of the first row without one,
# taking the kind's name as $kind; the kind).
_MISSING_EVENT_SQL = (
    (
        "studies",
        "SELECT 'study ' || id || ' has no ' || $kind || ' event' FROM studies s"
        " WHERE NOT EXISTS (SELECT 1 FROM audit_events e WHERE e.action = $kind"
        "  AND e.object_id = s.id) ORDER BY id LIMIT 1",
        STUDY_CREATE,
    ),
    (
        "users",
        "SELECT 'user ' || id || ' has no ' || $kind || ' event' FROM users u"
        " WHERE NOT EXISTS (SELECT 1 FROM audit_events e WHERE e.action = $kind"
        "  AND e.object_id = u.id) ORDER BY id LIMIT 1",
        USER_ADD,
    ),
    (
        "personal_tokens",
        "SELECT 'personal access token ' || id || ' of user ' || user_id || ' has no ' || $kind"
        " || ' event' FROM personal_tokens t WHERE NOT EXISTS (SELECT 1 FROM audit_events e"
        "  WHERE e.action = $kind AND e.object_id = t.id) ORDER BY id LIMIT 1",
        TOKEN_CREATE,
    ),
    (
        "identities",
        "SELECT 'identity (' || issuer || ', ' || subject || ') of user ' || user_id || ' has no '"
        " || $kind || ' event' FROM identities i WHERE NOT EXISTS (SELECT 1 FROM audit_events e"
        "  WHERE e.action = $kind AND e.object_id = i.user_id"
        "  AND json_extract_string(e.payload, '$.issuer') = i.issuer"
        "  AND json_extract_string(e.payload, '$.subject') = i.subject) ORDER BY user_id LIMIT 1",
        USER_BIND,
    ),
    (
        "instruments",
        "SELECT 'instrument ' || key || '@' || version || ' has no ' || $kind || ' event'"
        " FROM instruments i WHERE NOT EXISTS (SELECT 1 FROM audit_events e"
        "  WHERE e.action = $kind AND e.object_id = i.key || '@' || i.version)"
        " ORDER BY key, version LIMIT 1",
        INSTRUMENT_ADD,
    ),
    (
        "protocols",
        "SELECT 'protocol ' || study || '@' || version || ' has no ' || $kind || ' event'"
        " FROM protocols p WHERE NOT EXISTS (SELECT 1 FROM audit_events e"
        "  WHERE e.action = $kind AND e.object_id = p.study || '@' || p.version)"
        " ORDER BY study, version LIMIT 1",
        PROTOCOL_LOCK,
    ),
    *(
        (
            "case_flags",
            "SELECT 'case flag ' || id || ' has no ' || $kind || ' event' FROM case_flags f"
            " WHERE f.kind = split_part($kind, '.', 2) AND NOT EXISTS (SELECT 1 FROM audit_events"
            "  e WHERE e.action = $kind AND e.object_id = CAST(f.id AS VARCHAR)) ORDER BY id LIMIT 1",
            kind,
        )
        for kind in (CASE_FLAG, CASE_SKIP)
    ),
    *(
        (
            "calibration_decisions",
            "SELECT 'calibration decision ' || id || ' has no ' || $kind || ' event'"
            " FROM calibration_decisions d WHERE d.decision = split_part($kind, '.', 2)"
            " AND NOT EXISTS (SELECT 1 FROM audit_events e WHERE e.action = $kind"
            "  AND e.object_id = CAST(d.id AS VARCHAR)) ORDER BY id LIMIT 1",
            kind,
        )
        for kind in (CALIBRATION_PASS, CALIBRATION_RETRY)
    ),
)

# Per study, stored row counts against the counts the events recorded:
# (table, event kind, payload field, the kind whose "removed" counts are subtracted, or None).
_COUNTED = (
    ("cases", CASES_IMPORT, "added", CASES_REMOVE),
    ("arms", ARMS_IMPORT, "added", ARMS_REMOVE),
    ("answers", ANSWERS_IMPORT, "added", ANSWERS_REMOVE),
    ("assignments", ASSIGNMENTS_PERSIST, "assignments", None),
    ("presentations", ASSIGNMENTS_PERSIST, "presentations", None),
)


def _coverage_fault(cur: Cursor) -> tuple[int | None, str] | None:
    """(seq to blame, or None for "missing after the chain's end"; problem) for the first
    audited row without its event or event without its row; None when all is covered."""
    cut = ": the audit trail was cut short or emptied, or the row was written around the store"
    tables = {
        r[0] for r in cur.execute("SELECT table_name FROM information_schema.tables").fetchall()
    }
    for table, sql, kind in _MISSING_EVENT_SQL:
        if table not in tables:
            continue
        row = first(cur.execute(sql, {"kind": kind.name}).fetchall())
        if row is not None:
            return None, f"audit events are missing: {row[0]}{cut}"
    orphan = first(
        cur.execute(
            "SELECT seq, object_id FROM audit_events e WHERE action = ?"
            " AND NOT EXISTS (SELECT 1 FROM protocols p"
            "  WHERE e.object_id = p.study || '@' || p.version) ORDER BY seq LIMIT 1",
            [PROTOCOL_LOCK.name],
        ).fetchall()
    )
    if orphan is not None:
        seq, name = orphan
        return seq, f"audit event {seq} records protocol {name}, which is no longer stored"
    for table, kind, payload_field, removal in _COUNTED:
        # the table name is one of the constants above; the rest are parameters
        row = first(
            cur.execute(
                "SELECT coalesce(r.study, e.study), coalesce(r.n, 0), coalesce(e.n, 0) FROM"
                f' (SELECT study, count(*) AS n FROM "{table}" GROUP BY study) r'
                " FULL JOIN (SELECT study, sum(CASE WHEN action = ?"
                "  THEN CAST(json_extract_string(payload, ?) AS BIGINT)"
                "  ELSE -CAST(json_extract_string(payload, '$.removed') AS BIGINT) END)"
                "  AS n FROM audit_events WHERE action IN (?, ?) GROUP BY study) e"
                " ON e.study = r.study"
                " WHERE coalesce(r.n, 0) <> coalesce(e.n, 0) ORDER BY 1 LIMIT 1",
                [kind.name, f"$.{payload_field}", kind.name, getattr(removal, "name", None)],
            ).fetchall()
        )
        if row is not None:
            study, stored, recorded = row
            if stored > recorded:
                return None, (
                    f"audit events are missing: study {study} stores {stored} {table} but its "
                    f"{kind} events record {recorded}{cut}"
                )
            return None, (
                f"study {study} stores {stored} {table} but its {kind} events record "
                f"{recorded}: rows were removed around the store"
            )
    unmatched = first_with_rating_values(
        cur,
        "SELECT r.id, r.assignment, r.item_key, r.revision,"
        "  (SELECT min(seq) FROM ev WHERE ev.assignment = r.assignment AND ev.slot = r.slot"
        "   AND ev.item_key = r.item_key AND ev.revision = r.revision)"
        " FROM ratings r WHERE NOT EXISTS (SELECT 1 FROM ev WHERE ev.assignment = r.assignment"
        "  AND ev.slot = r.slot AND ev.item_key = r.item_key AND ev.revision = r.revision"
        "  AND ev.value_num IS NOT DISTINCT FROM r.value_num"
        "  AND ev.value_text IS NOT DISTINCT FROM r.value_text)"
        " ORDER BY r.id LIMIT 1",
    )
    if unmatched is not None:
        rating, assignment, item, revision, seq = unmatched
        what = f"rating {rating} (assignment {assignment}, item '{item}', revision {revision})"
        if seq is None:
            return None, f"audit events are missing: {what} has no rating event{cut}"
        return seq, f"{what} differs from the value audit event {seq} recorded: it was altered"
    gone = first_with_rating_values(
        cur,
        "SELECT ev.seq, ev.assignment, ev.item_key, ev.revision FROM ev"
        " WHERE NOT EXISTS (SELECT 1 FROM ratings r WHERE ev.assignment = r.assignment"
        "  AND ev.slot = r.slot AND ev.item_key = r.item_key AND ev.revision = r.revision)"
        " ORDER BY ev.seq LIMIT 1",
    )
    if gone is not None:
        seq, assignment, item, revision = gone
        return seq, (
            f"audit event {seq} records a rating (assignment {assignment}, item '{item}', "
            f"revision {revision}) that is no longer stored"
        )
    return None
