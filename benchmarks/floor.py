"""The floor for a rated case: the rating screen's per-case work reduced to plain SQL.

Used by ``bench_rating.py``'s floor page (runs (c) and (d), served by Streamlit) and by
``profile_submit.py`` (in process), so that both measure the same statements. On the benchmark's
database and schema, one transaction inserts the case's rating rows and current-rating pointers,
marks the assignment done and appends one audit event row and head (a hash of the payload, no
chain key for the event, but the head sealed with the audit key as the app seals it, one HMAC:
an unsealed head makes the app refuse to write to the database afterwards, as it must for a
chain cut or downgraded behind its back); then the next assignment's case and answers are read
back. No access check, no
validation, no instrument rules, no blinding: the least a rating screen can do per case.

Plain DuckDB only (no ``study`` import): the floor must not share the code it is a floor for.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any

ITEMS_SQL = (
    "SELECT i.instrument_key, i.instrument_version, i.item_key, i.scope FROM items i"
    " JOIN study_instruments s ON s.instrument_key = i.instrument_key"
    " AND s.instrument_version = i.instrument_version WHERE s.study = ? ORDER BY i.position"
)
"""(instrument key, version, item key, scope) of the study's items, in order (``study``)."""


def next_case(cur: Any, study: str, rater: str) -> tuple[int, str, list[tuple]] | None:
    """(assignment id, question, [(presentation id, label, answer text)] in screen order) of the
    rater's next unrated assignment, or None when none is left."""
    row = cur.execute(
        "SELECT id, case_id FROM assignments WHERE study = ? AND rater = ? AND NOT done"
        " ORDER BY shown_order LIMIT 1",
        [study, rater],
    ).fetchall()
    if not row:
        return None
    assignment, case_id = row[0]
    question = cur.execute(
        "SELECT question FROM cases WHERE study = ? AND case_id = ?", [study, case_id]
    ).fetchall()
    shown = cur.execute(
        "SELECT p.id, p.label, a.text FROM presentations p JOIN answers a"
        " ON a.study = p.study AND a.answer_id = p.answer_id WHERE p.assignment = ?"
        " ORDER BY p.position",
        [assignment],
    ).fetchall()
    return assignment, question[0][0], shown


def store_case(cur: Any, assignment: int, presentations: list[int], items: list[tuple]) -> int:
    """Store a rated case in one transaction: a rating row and a current-rating pointer per
    (presentation, answer item) and per case item, the assignment done, one audit event and the
    head. Each column goes as one list, unnested side by side, as ``Store.insert_rows`` does
    (DuckDB's cheapest insert of a few rows; ``executemany`` runs one statement per row). Returns
    the rows stored. The caller serialises writers (one at a time, as Clinval's store does)."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    slots = [(p, it) for p in presentations for it in items if it[3] == "answer"]
    slots += [(0, it) for it in items if it[3] == "case"]
    cur.execute("BEGIN TRANSACTION")
    first = cur.execute("SELECT max(id) FROM ratings").fetchall()[0][0] + 1
    rows = [
        (first + n, assignment, slot or None, slot, key, version, item, 1.0, None, 1,
         "submitted", 3.0, now, now, "floor")
        for n, (slot, (key, version, item, _)) in enumerate(slots)
    ]  # fmt: skip
    columns = [list(c) for c in zip(*rows, strict=True)]
    cur.execute(
        "INSERT INTO ratings (id, assignment, presentation, slot, instrument_key,"
        " instrument_version, item_key, value_num, value_text, revision, status,"
        " seconds_on_task, created_at, submitted_at, actor) SELECT "
        + ", ".join(f"unnest(${n + 1})" for n in range(len(columns))),
        columns,
    )
    cur.execute(
        "INSERT INTO current_ratings SELECT unnest($1), unnest($2), unnest($3), unnest($4)",
        [[assignment] * len(rows), columns[3], columns[6], columns[0]],
    )
    cur.execute(
        "UPDATE assignments SET done = true, status = 'done', done_at = ? WHERE id = ?",
        [now, assignment],
    )
    seq, prev = cur.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchall()[0]
    payload = json.dumps([r[6] for r in rows])
    digest = hashlib.sha256(payload.encode()).hexdigest()
    event = hashlib.sha256((prev + digest + str(seq + 1)).encode()).hexdigest()
    cur.execute(
        "INSERT INTO audit_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [seq + 1, now, "floor", "rating.submit", "assignment", str(assignment), None,
         payload, digest, prev, event],
    )  # fmt: skip
    cur.execute(
        "UPDATE audit_head SET seq = ?, hash = ?, mac = ? WHERE id = 1",
        [seq + 1, event, _head_seal(cur, seq + 1, event)],
    )
    cur.execute("COMMIT")
    return len(rows)


_CHAIN: dict[str, Any] = {}
"""The audit key (``CLINVAL_AUDIT_KEY_FILE``: 64 hex digits), its fingerprint and the chain's
first keyed seq, read once per process: none changes while a benchmark runs."""


def _head_seal(cur: Any, seq: int, event_hash: str) -> str | None:
    """The head's seal as the app writes it (``study.keyfile.head_seal``: HMAC-SHA256 of the head
    and the chain's metadata under the audit key), or None without a key (an unkeyed chain)."""
    if not _CHAIN:
        path = os.environ.get("CLINVAL_AUDIT_KEY_FILE")
        key = (
            bytes.fromhex(Path(path).read_text().strip()) if path and Path(path).is_file() else None
        )
        keyed_from = cur.execute("SELECT keyed_from FROM audit_chain WHERE id = 1").fetchall()[0][0]
        fingerprint = (
            hmac.new(key, b"clinval audit key id", hashlib.sha256).hexdigest()[:16] if key else None
        )
        _CHAIN.update(key=key, keyed_from=keyed_from, key_id=fingerprint)
    key = _CHAIN["key"]
    if key is None:
        return None
    text = f"audit head:{seq}:{event_hash}:keyed_from={_CHAIN['keyed_from']}:key={_CHAIN['key_id']}"
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()
