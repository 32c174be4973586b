"""What is stored, against what the audit events say: the state half of ``audit verify``.

``audit.verify`` first checks the chain (every event whole, linked and keyed) and that audited
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
from study.store import Cursor, first

Finding = tuple[int | None, str]


def state_fault(cur: Cursor, *, key: bytes | None, migrated: bool = True) -> Finding | None:
    """The first stored row that differs from what the events say, or None.

    ``migrated``: False for a database opened read-only before migration 2, which has no row
    digests and no sealed seeds yet (their checks are skipped; the rest apply)."""
    checks: tuple[Callable[[], Finding | None], ...] = (
        lambda: _protocols(cur),
        lambda: _digests(cur) if migrated else None,
        lambda: _assignments_done(cur),
        lambda: _current_ratings(cur),
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
}
"""Per digested kind, the events that change its rows (an import adds, a removal takes away):
each records the total over the study's digests after it."""


def _recorded_total_path(kind: str) -> str:
    return (
        f"$.stored_sha256.{kind}" if kind in ("assignments", "presentations") else "$.stored_sha256"
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
