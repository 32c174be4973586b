"""The audit chain's event kinds, declared once, and appending an event to the chain.

Every change to a study, and every sensitive read or refused call, appends one event to
``audit_events`` in the same transaction as the change, so a failure leaves neither. Each event
stores the SHA-256 digest of its canonical JSON payload, the hash of the previous event and its
own hash over all of its fields: a hash chain. The hashes are HMAC-SHA256 under the audit key
(``study.keyfile``, a file outside the database), and the head is sealed with it, so that whoever
can write the database but cannot read the key can neither recompute the chain nor cut its tail.
``head`` gives the chain's newest hash, the anchor to record outside the database; ``events``
reads the trail. Checking the chain is ``study.audit_verify``'s job (and, for the stored rows
against their events, ``study.audit_state``'s); both import this module, never the reverse.

Each kind is declared once below (``EVENT_KINDS``), with what it records and which stored rows
it covers; the README's table of event kinds is checked against this declaration.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import polars as pl

from study import keyfile
from study.canonical import canonical_json, sha256_hex
from study.errors import StudyError
from study.store import Cursor, MissingTable, Store, active_audit_key, first, utc_now

GENESIS_HASH = "0" * 64
"""``prev_hash`` of the first audit event."""


@dataclass(frozen=True, slots=True)
class EventKind:
    """One kind of audit event: its ``name`` (stored as ``audit_events.action``), what it
    records (``help``) and which stored rows ``verify`` checks against it (``covers``; empty for
    a kind that stands for a read or a refusal, with no rows behind it)."""

    name: str
    help: str
    covers: str = ""

    def __str__(self) -> str:
        return self.name


EVENT_KINDS: dict[str, EventKind] = {}
"""Every kind of event, by name, in the order declared."""


def _kind(name: str, help: str, covers: str = "") -> EventKind:
    kind = EventKind(name, help, covers)
    EVENT_KINDS[name] = kind
    return kind


STUDY_CREATE = _kind(
    "study.create",
    "a study was created as a draft",
    "studies: one event per study; the name and synthetic flag against it",
)
CASES_IMPORT = _kind(
    "cases.import",
    "cases were imported (file, its SHA-256, rows read, added, skipped, digest of what is stored)",
    "cases: the rows added, counted per study; each row against its digest",
)
ARMS_IMPORT = _kind(
    "arms.import",
    "arms were imported (file, its SHA-256, rows read, added, skipped, digest of what is stored)",
    "arms: the rows added, counted per study; each row (provenance) against its digest",
)
ANSWERS_IMPORT = _kind(
    "answers.import",
    "answers were imported (file, its SHA-256, rows read, added, skipped, digest of what is stored)",
    "answers: the rows added, counted per study; each row (text, provenance) against its digest",
)
MAPPING_SAVE = _kind(
    "mapping.save",
    "a table's column mapping was saved with the study (its name, the SHA-256 of its TOML, the "
    "file it was used on)",
)
INSTRUMENT_ADD = _kind(
    "instrument.add",
    "an instrument version was added to the library (key, version, content hash)",
    "instruments: one event per key and version; the definition against the content hash; items (options and labels) against the definition",
)
INSTRUMENT_ATTACH = _kind(
    "instrument.attach",
    "an instrument version was attached to a draft study (key, version, content hash)",
    "study_instruments: exactly the links these events made (none is ever removed)",
)
DESIGN_DRAFT = _kind(
    "design.draft",
    "a draft's design settings were saved before the lock (the settings changed, with their new "
    "values; the lock's protocol is the record of what was frozen)",
)
USER_ADD = _kind(
    "user.add",
    "a person was added (issuer, subject, e-mail, name, specialty)",
    "users: one event per user; issuer, subject and e-mail (unless a user.email changed it) against it; name and specialty where recorded",
)
USER_EMAIL = _kind(
    "user.email",
    "an administrator changed a person's e-mail address (the new address, the previous one)",
    "users: the e-mail, against the newest of these or else the user.add event; sign-in binds "
    "an invited person only through that address",
)
USER_BIND = _kind(
    "user.bind",
    "a person invited by e-mail signed in for the first time: the provider's identity (issuer, "
    "subject) and the verified e-mail it carried were bound to them",
    "identities: each bound identity against its event (person, issuer, subject)",
)
ROLE_GRANT = _kind(
    "role.grant",
    "a role was granted to a person (role, study or every study)",
    "roles: exactly those the grant and revoke events leave in force",
)
ROLE_REVOKE = _kind(
    "role.revoke",
    "a role was taken from a person (role, study or every study)",
    "roles: as role.grant",
)
PROTOCOL_LOCK = _kind(
    "protocol.lock",
    "a protocol version was locked (version, content hash, time, reason for a later version, the attached instruments with their content hashes, commitment of a sealed seed)",
    "protocols: one event per study and version, and no event without its protocol; the content against the hash; locked_by, locked_at and reason against the event; study_instruments: the instruments and hashes recorded; studies: the status (locked)",
)
ASSIGNMENTS_PERSIST = _kind(
    "assignments.persist",
    "an assignment design was stored (seed commitment, algorithm, assignments, presentations, digests of what is stored)",
    "assignments and presentations: the rows stored, counted per study; each row (rater, which answer behind which label; phase and attempt) against its digest",
)
STUDY_RATING = _kind("study.rating", "rating was opened (locked -> rating)", "studies: the status")
STUDY_CLOSED = _kind("study.closed", "rating was closed (rating -> closed)", "studies: the status")
STUDY_UNBLINDED = _kind(
    "study.unblinded",
    "the study was unblinded (closed -> unblinded; the sealed seed and its salt revealed)",
    "studies: the status; sealed seeds: the revealed seed against its commitment",
)
RATING_SUBMIT = _kind(
    "rating.submit",
    "a rater submitted an assignment (rater, seconds on task, submission time, every value with its revision, the safety alerts raised)",
    "ratings: every stored revision equals a recorded value, submitted, by the event's actor, with its seconds and time, and every recorded value is stored; the newest revision is current; assignments: done, at that time, by the recorded rater, never withdrawn; safety_alerts: exactly those the events raised",
)
RATING_REVISE = _kind(
    "rating.revise",
    "a rater revised a submitted assignment (the new revisions, as for rating.submit)",
    "ratings: as rating.submit",
)
CASE_FLAG = _kind(
    "case.flag",
    "a rater flagged a case as faulty (reason)",
    "case_flags of kind flag: one event per row; the row (assignment, reason, actor) as recorded",
)
CASE_SKIP = _kind(
    "case.skip",
    "a rater skipped a case, which leaves their queue (reason)",
    "case_flags of kind skip: one event per row; the row (assignment, reason, actor) as recorded",
)
CASES_REMOVE = _kind(
    "cases.remove",
    "cases that nothing used were removed from a draft (ids, how many)",
    "cases: the rows removed, subtracted from those imported",
)
ARMS_REMOVE = _kind(
    "arms.remove",
    "arms without answers were removed from a draft (ids, how many)",
    "arms: the rows removed, subtracted from those imported",
)
ANSWERS_REMOVE = _kind(
    "answers.remove",
    "answers that no assignment showed were removed from a draft (ids, how many)",
    "answers: the rows removed, subtracted from those imported",
)
SAFETY_ACKNOWLEDGE = _kind(
    "safety.acknowledge",
    "a coordinator acknowledged a safety alert of a severe-harm rating (alert, note)",
    "safety_alerts: acknowledged exactly when one of these records it, by its actor, with its note",
)
RATINGS_IMPORT = _kind(
    "ratings.import",
    "ratings collected elsewhere were imported, not collected blind in Clinval (file, its "
    "SHA-256, rows, assignments, raters; each assignment's values are in its rating.submit event)",
)
RATINGS_EXPORT = _kind(
    "ratings.export", "a sensitive read: the ratings were exported with their arms (rows)"
)
ASSIGNMENT_PRESENT = _kind(
    "assignment.present",
    "a case was first shown to its rater: time on task starts (rater, time)",
    "assignments: the first showing's time against it",
)
CALIBRATION_PASS = _kind(
    "calibration.pass",
    "the coordinator passed a rater whose calibration attempt fell below the threshold (rater, "
    "attempt, score, reason)",
    "calibration_decisions of decision pass: one event per row",
)
CALIBRATION_RETRY = _kind(
    "calibration.retry",
    "the coordinator gave a rater the calibration cases again as a new attempt (rater, attempt, "
    "score, reason; the new assignments are in the assignments.persist event of the same "
    "transaction)",
    "calibration_decisions of decision retry: one event per row",
)
ACCESS_DENIED = _kind(
    "access.denied",
    "a service refused a caller (service, the permission it needs, study)",
)
TOKEN_CREATE = _kind(
    "token.create",
    "a person created a personal access token for the command line (its id, name, expiry; "
    "never the secret)",
    "personal_tokens: one event per token",
)
TOKEN_REVOKE = _kind(
    "token.revoke",
    "a personal access token was revoked, by its person or an administrator (its id, whose)",
)

VIA_TOKEN = "via_token"
"""Payload key naming the personal access token through which the actor acted (absent when the
actor acted in the app or is a system actor); see ``acting_via``."""

_VIA: contextvars.ContextVar[str | None] = contextvars.ContextVar("clinval_via_token", default=None)


@contextmanager
def acting_via(token_id: str | None) -> Iterator[None]:
    """Within the block, every event appended records that its actor acted through the personal
    access token ``token_id`` (payload key ``VIA_TOKEN``); None records nothing.

    The guard (``study.access.guarded``) opens this around every service a token's caller calls,
    so the 22 places that append events need not know how the caller came. The token's id goes
    into the payload rather than a column of its own: the payload's digest is hashed into the
    event, so the mark is as tamper-evident as the rest, and neither the table, the hash nor the
    verifier changes (events written before tokens existed verify as they did).
    """
    if token_id is None:
        yield
        return
    reset = _VIA.set(token_id)
    try:
        yield
    finally:
        _VIA.reset(reset)


EVENT_FIELDS = (
    "seq",
    "occurred_at",
    "actor",
    "action",
    "object_type",
    "object_id",
    "study",
    "payload",
    "payload_digest",
    "prev_hash",
    "hash",
)
"""Columns of ``audit_events`` that make up an event, in the order ``audit_verify.verify`` reads them."""

# the hash covers the payload through its digest, and of course not itself
_HASHED_FIELDS = tuple(f for f in EVENT_FIELDS if f not in ("payload", "hash"))


def event_hash(event: Mapping[str, Any], key: bytes | None = None) -> str:
    """The event's hash over its fields: HMAC-SHA256 under ``key``, or plain SHA-256 for an
    event written before the chain was keyed (``key`` None)."""
    fields = {name: event[name] for name in _HASHED_FIELDS}
    fields["occurred_at"] = fields["occurred_at"].isoformat(timespec="microseconds")
    text = canonical_json(fields)
    return keyfile.mac(key, text) if key is not None else sha256_hex(text)


class AuditKeyError(StudyError):
    """New events cannot be keyed: the key file is missing, or holds another database's key."""


class ChainMarkError(AuditKeyError):
    """The chain's own metadata (``audit_chain``, the head's seal) was altered or removed:
    nothing more is written to a chain that may have been downgraded."""


def chain_marker(cur: Cursor) -> tuple[int | None, str | None]:
    """(first keyed seq, key fingerprint) of the chain; (None, None) for a schema before the
    chain was keyed (a database opened read-only that was never migrated). ``ChainMarkError``
    when the table is there but its one row is not: the migration always writes it, so only
    someone writing around the store removes it (to pass every event off as unkeyed)."""
    try:
        row = first(
            cur.execute("SELECT keyed_from, key_id FROM audit_chain WHERE id = 1").fetchall()
        )
    except MissingTable:
        return None, None
    if row is None:
        raise ChainMarkError(
            "The audit trail cannot be trusted: the chain's metadata row (table audit_chain) is "
            "missing, so its keying cannot be known. Nothing was stored."
        )
    return row[0], row[1]


def seal_fault(
    key: bytes,
    head: tuple[int, str, str | None] | None,
    marker: tuple[int | None, str | None],
) -> str | None:
    """Why the chain's head and metadata are not what ``key`` sealed, or None when they are.

    ``head``: (seq, hash, seal) of ``audit_head`` (None for an empty chain); ``marker``:
    (keyed_from, key_id). Once a chain is keyed its key mark is set and its head sealed over
    (seq, hash, keyed_from, key_id) (``keyfile.head_seal``; a keyed head sealed by older code
    carries ``keyfile.legacy_head_seal``). What this proves, with the key: the tail was not cut,
    and ``keyed_from`` and the key mark were not moved or cleared to pass keyed events off as
    written before keying (a downgrade). What it cannot: a database keyed by code older than
    December 2026 and never written since carries no key mark and reads as downgraded (writing
    is then refused; restore it from a backup or ask for its chain to be re-marked by hand)."""
    keyed_from, key_id = marker
    if head is None or keyed_from is None:
        return None
    seq, own_hash, seal = head
    if keyed_from > seq + 1:
        return (
            f"the chain's metadata says events are keyed from {keyed_from} on, past its end "
            f"(event {seq}): keyed_from was moved to pass the events off as unkeyed (a downgrade)"
        )
    if key_id is None:
        return (
            "the chain carries no key mark (audit_chain.key_id) although its key is at hand: the "
            "mark was cleared and the events passed off as unkeyed (a downgrade)"
        )
    if key_id != keyfile.fingerprint(key):
        return None  # another key: told apart by the caller, not a seal fault
    if seal == keyfile.head_seal(key, seq, own_hash, keyed_from, key_id):
        return None
    if seq >= keyed_from and seal == keyfile.legacy_head_seal(key, seq, own_hash):
        return None
    if seq < keyed_from:
        return (
            f"the chain's metadata (keyed from {keyed_from}, key {key_id}) is not what the key "
            f"sealed at event {seq}: keyed_from was moved and the events rewritten as unkeyed "
            "(a downgrade)"
        )
    return (
        f"the chain's head (event {seq}) or its metadata (keyed from {keyed_from}) is not what "
        "the key sealed: the tail was cut and the head moved back, or keyed_from was moved"
    )


def _signing_key(
    cur: Cursor, seq: int, marker: tuple[int | None, str | None] | None = None
) -> bytes | None:
    """The key event ``seq`` must be hashed with (None before the chain was keyed); binds the
    chain to the key at its first keyed event. ``marker``: ``chain_marker(cur)``, when read already."""
    keyed_from, key_id = chain_marker(cur) if marker is None else marker
    if keyed_from is None or seq < keyed_from:
        return None
    key = active_audit_key()
    if key is None:
        raise AuditKeyError(
            "The audit trail cannot be written: this installation has no audit key "
            "(setting CLINVAL_AUDIT_KEY_FILE). Nothing was stored. Restore the key file, or, for "
            "a database that was never keyed, run `python -m study init` to create one."
        )
    if key_id is None:
        cur.execute("UPDATE audit_chain SET key_id = ? WHERE id = 1", [keyfile.fingerprint(key)])
    elif key_id != keyfile.fingerprint(key):
        raise AuditKeyError(
            "The audit trail cannot be written: the audit key file (CLINVAL_AUDIT_KEY_FILE) "
            "holds another database's key. Nothing was stored."
        )
    return key


def append(
    cur: Cursor,
    *,
    actor: str,
    kind: EventKind,
    object_type: str,
    object_id: str | None = None,
    study: str | None = None,
    payload: Any = None,
) -> int:
    """Append one event to the audit chain on ``cur`` (inside the caller's transaction).

    Returns the event's ``seq``. ``payload`` is any JSON-able value; its canonical JSON is stored
    and its SHA-256 digest enters the event's hash. Inside ``acting_via(token)`` the payload also
    names the personal access token the actor acted through (``VIA_TOKEN``).
    """
    if not actor:
        raise StudyError("Every change needs an actor: who made it.")
    if EVENT_KINDS.get(str(kind)) is not kind:
        raise ValueError(f"{kind!r} is not a declared audit event kind (study.audit.EVENT_KINDS)")
    action = kind.name
    payload = payload if payload is not None else {}
    via = _VIA.get()
    if via is not None:
        # every payload written is an object; anything else is kept whole under "value"
        payload = (
            {**payload, VIA_TOKEN: via}
            if isinstance(payload, Mapping)
            else {
                "value": payload,
                VIA_TOKEN: via,
            }
        )
    payload_text = canonical_json(payload)
    head, marker = _head_and_marker(cur)
    seq, prev_hash = (head[0] + 1, head[1]) if head else (1, GENESIS_HASH)
    _refuse_downgraded(head, marker)
    event = {
        "seq": seq,
        "occurred_at": utc_now(),
        "actor": actor,
        "action": action,
        "object_type": object_type,
        "object_id": None if object_id is None else str(object_id),
        "study": study,
        "payload_digest": sha256_hex(payload_text),
        "prev_hash": prev_hash,
    }
    key = _signing_key(cur, seq, marker)
    own_hash = event_hash(event, key)
    cur.execute(
        "INSERT INTO audit_events (seq, occurred_at, actor, action, object_type, object_id, study,"
        " payload, payload_digest, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            event["seq"],
            event["occurred_at"],
            actor,
            action,
            object_type,
            event["object_id"],
            study,
            payload_text,
            event["payload_digest"],
            prev_hash,
            own_hash,
        ],
    )
    mac = (
        None
        if key is None
        else keyfile.head_seal(key, seq, own_hash, marker[0], keyfile.fingerprint(key))
    )
    # a plain UPDATE once the head row exists: DuckDB's upsert costs several times more, and
    # this runs for every rating stored
    if head:
        cur.execute(
            "UPDATE audit_head SET seq = ?, hash = ?, mac = ? WHERE id = 1", [seq, own_hash, mac]
        )
    else:
        cur.execute(
            "INSERT INTO audit_head (id, seq, hash, mac) VALUES (1, ?, ?, ?)",
            [seq, own_hash, mac],
        )
    return seq


def _refuse_downgraded(
    head: tuple[int, str, str | None] | None, marker: tuple[int | None, str | None]
) -> None:
    """Write nothing more to a chain whose metadata was moved or cleared: the app's next keyed
    event would otherwise seal a forger's downgrade as its own (one HMAC per event)."""
    key = active_audit_key()
    if key is None or head is None:
        return
    fault = seal_fault(key, head, marker)
    if fault is not None:
        raise ChainMarkError(
            f"The audit trail cannot be written: {fault}. Nothing was stored. Run "
            "`python -m study audit verify` and restore the database from a backup."
        )


def _head_and_marker(
    cur: Cursor,
) -> tuple[tuple[int, str, str | None] | None, tuple[int | None, str | None]]:
    """(the head's (seq, hash, seal) or None for an empty chain, ``chain_marker``) in one statement:
    this runs for every event appended."""
    row = first(
        cur.execute(
            "SELECT h.seq, h.hash, h.mac, c.keyed_from, c.key_id FROM audit_head h, audit_chain c"
            " WHERE h.id = 1 AND c.id = 1"
        ).fetchall()
    )
    if row is None:  # an empty chain (no head yet), or the chain's row removed: the two apart
        head = first(cur.execute("SELECT seq, hash, mac FROM audit_head WHERE id = 1").fetchall())
        return head, chain_marker(cur)
    return (row[0], row[1], row[2]), (row[3], row[4])


def head(store: Store) -> tuple[int, str]:
    """(seq, hash) of the chain's newest event; (0, ``GENESIS_HASH``) for an empty chain.

    The hash is the anchor to record outside the database (every export carries it):
    ``python -m study audit verify --expect HASH`` fails once the chain no longer holds it.
    """
    cur = store.cursor()
    try:
        row = first(cur.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchall())
    finally:
        cur.close()
    return (int(row[0]), str(row[1])) if row else (0, GENESIS_HASH)


# Every value a rating event recorded, one row each ($submit, $revise: the two kinds' names).
_RATING_EVENT_VALUES = """
SELECT seq, CAST(object_id AS BIGINT) AS assignment, v.slot, v.item_key, v.revision,
       v.value_num, v.value_text
FROM (SELECT seq, object_id, unnest(from_json(json_extract(payload, '$.values'),
        '[{"slot": "BIGINT", "item_key": "VARCHAR", "revision": "INTEGER",
           "value_num": "DOUBLE", "value_text": "VARCHAR"}]')) AS v
      FROM audit_events WHERE action IN ($submit, $revise))
"""
_RATING_KINDS = {"submit": RATING_SUBMIT.name, "revise": RATING_REVISE.name}


def first_with_rating_values(cur: Cursor, sql: str) -> tuple | None:
    """The first row of ``sql``, which reads every value the rating events recorded as ``ev``
    (seq, assignment, slot, item_key, revision, value_num, value_text; one row per value)."""
    return first(
        cur.execute(f"WITH ev AS ({_RATING_EVENT_VALUES}) {sql}", _RATING_KINDS).fetchall()
    )


def events(store: Store, *, study: str | None = None, limit: int | None = None) -> pl.DataFrame:
    """Audit events, newest first, optionally for one study; columns as in ``audit_events``."""
    sql = "SELECT * FROM audit_events"
    params: dict[str, Any] = {}
    if study is not None:
        sql += " WHERE study = $study"
        params["study"] = study
    sql += " ORDER BY seq DESC"
    if limit is not None:
        sql += " LIMIT $limit"
        params["limit"] = int(limit)
    return store.read(sql, params or None)
