"""Cases, arms and answers: imported from files (or validated frames) into a draft study.

Imports are all-or-nothing and idempotent: rows identical to stored ones are skipped, a stored
id with different content is a problem, and one audit event records the file's SHA-256 and the
counts. Reading and validating a file is ``study.importing``'s job; comparing with what is stored
and writing is this module's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import polars as pl

from study import audit, digests, healthbench, importing, mapping
from study.access import Caller, guarded
from study.errors import Problem, StateError, ValidationError
from study.services._common import column, constraint_reason, require_study
from study.store import ConstraintViolation, Cursor, Store, utc_now


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import did: ``rows`` read, ``added`` new, ``skipped`` identical to stored rows."""

    kind: str
    study: str
    file: str | None
    rows: int
    added: int
    skipped: int
    audit_seq: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return (
            f"{self.kind}: {self.rows} rows read, {self.added} added, "
            f"{self.skipped} already stored (identical)"
        )


@dataclass(frozen=True, slots=True)
class _Table:
    """What an import of one kind writes: its table, key column, word for a row, stored columns
    and their types, and the audit event kind that records it."""

    name: str
    key: str
    what: str
    columns: tuple[str, ...]
    schema: Mapping[str, Any]
    event: audit.EventKind


_TABLES = {
    "cases": _Table(
        "cases",
        "case_id",
        "case",
        importing.CASE_COLUMNS,
        importing.CASE_SCHEMA,
        audit.CASES_IMPORT,
    ),
    "arms": _Table(
        "arms",
        "arm_id",
        "arm",
        importing.ARM_COLUMNS,
        dict.fromkeys(importing.ARM_COLUMNS, pl.String),
        audit.ARMS_IMPORT,
    ),
    "answers": _Table(
        "answers",
        "answer_id",
        "answer",
        importing.ANSWER_COLUMNS,
        dict.fromkeys(importing.ANSWER_COLUMNS, pl.String),
        audit.ANSWERS_IMPORT,
    ),
}


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _conform(frame: pl.DataFrame, table: _Table) -> pl.DataFrame:
    """Select the table's columns in order, adding missing optional ones as typed nulls."""
    exprs = [
        pl.col(name).cast(dtype) if name in frame.columns else pl.lit(None, dtype=dtype).alias(name)
        for name, dtype in ((n, table.schema[n]) for n in table.columns)
    ]
    conformed = frame.select(exprs)
    if table.name == "cases":
        conformed = conformed.with_columns(pl.col("tags").fill_null([]))
    return conformed


@guarded
def import_cases(store: Store, caller: Caller, study: str, path: str | Path) -> ImportResult:
    """Import cases from a CSV/JSONL/Parquet file (see ``study.importing.read_cases``).

    Cases already stored with identical content are skipped; a stored case id with different
    content is a ``ValidationError`` problem. All-or-nothing, one audit event with the counts.
    """
    path = Path(path)
    return _import_frame(store, caller, study, "cases", importing.read_cases(path), source=path)


@guarded
def add_cases(
    store: Store, caller: Caller, study: str, cases: pl.DataFrame, *, source: Path | None = None
) -> ImportResult:
    """Store a validated cases frame (columns as ``importing.read_cases`` returns)."""
    return _import_frame(store, caller, study, "cases", cases, source=source)


@guarded
def import_arms(store: Store, caller: Caller, study: str, path: str | Path) -> ImportResult:
    """Import arms from a file (see ``study.importing.read_arms``); idempotent like cases."""
    path = Path(path)
    return _import_frame(store, caller, study, "arms", importing.read_arms(path), source=path)


@guarded
def add_arms(
    store: Store, caller: Caller, study: str, arms: pl.DataFrame, *, source: Path | None = None
) -> ImportResult:
    """Store a validated arms frame (columns as ``importing.read_arms`` returns)."""
    return _import_frame(store, caller, study, "arms", arms, source=source)


@guarded
def add_arm(
    store: Store,
    caller: Caller,
    study: str,
    *,
    arm_id: str,
    kind: str,
    label: str,
    model_name: str | None = None,
    model_version: str | None = None,
    author_role: str | None = None,
) -> ImportResult:
    """Add one arm (an LLM at a pinned version, or a clinician group)."""
    row = {
        "arm_id": arm_id,
        "kind": kind,
        "label": label,
        "model_name": model_name,
        "model_version": model_version,
        "author_role": author_role,
    }
    problems = []
    if kind not in ("llm", "clinician"):
        problems.append(
            Problem("arm", None, "kind", f"kind must be llm or clinician, not {kind!r}")
        )
    if kind == "llm" and not (model_name and model_version):
        problems.append(
            Problem("arm", None, "model_version", "an LLM arm needs model_name and model_version")
        )
    if problems:
        raise ValidationError(problems)
    frame = pl.DataFrame([row], schema=_TABLES["arms"].schema)
    return _import_frame(store, caller, study, "arms", frame, source=None)


@guarded
def import_answers(store: Store, caller: Caller, study: str, path: str | Path) -> ImportResult:
    """Import answers (see ``study.importing.read_answers``); idempotent like cases.

    The study's cases and arms must be stored first; the reader checks every answer against
    them. An arm may answer some of the cases only (``design.arm_coverage`` reports how many).
    Stored answers are compared here, not by the reader: an identical row is skipped, a changed
    one is a ``ValidationError`` problem.
    """
    path = Path(path)
    cur = store.cursor()
    try:
        require_study(cur, study)
        case_ids = column(cur, "SELECT case_id FROM cases WHERE study = ?", [study])
        arms = _stored_arms(cur, study)
    finally:
        cur.close()
    frame = importing.read_answers(path, known_case_ids=case_ids, arms=arms)
    return _import_frame(store, caller, study, "answers", frame, source=path)


@guarded
def add_answers(
    store: Store, caller: Caller, study: str, answers: pl.DataFrame, *, source: Path | None = None
) -> ImportResult:
    """Store a validated answers frame (columns as ``importing.read_answers`` returns)."""
    return _import_frame(store, caller, study, "answers", answers, source=source)


@guarded
def import_healthbench(
    store: Store, caller: Caller, study: str, path: str | Path, *, arm: str = healthbench.ARM_ID
) -> list[ImportResult]:
    """Import a HealthBench JSONL file as published (see ``study.healthbench``) into a draft.

    Its conversations become cases with their rubrics as criteria; where a line has an ideal
    completion, it becomes the answer of the clinician arm ``arm`` (created with the first).
    The whole file is checked before anything is stored; then cases, the arm and the answers
    are stored as three imports (three audit events, each idempotent like ``import_cases``).
    Returns their results, cases first.
    """
    path = Path(path)
    data = healthbench.read_healthbench(path, arm=arm)
    results = [_import_frame(store, caller, study, "cases", data.cases, source=path)]
    if data.answers.height:
        results.append(_import_frame(store, caller, study, "arms", data.arms, source=path))
        results.append(_import_frame(store, caller, study, "answers", data.answers, source=path))
    return results


@dataclass(frozen=True, slots=True)
class TableImport:
    """What ``import_table`` did: the mapped table (``mapping.MappedTable``: rows read, folded,
    left out), one ``ImportResult`` per kind stored, and the name the mapping is kept under."""

    mapped: mapping.MappedTable
    results: list[ImportResult]
    mapping_name: str

    def __str__(self) -> str:
        done = "; ".join(str(r) for r in self.results)
        return f"{self.mapped.summary()}. Stored: {done}. Mapping kept as '{self.mapping_name}'."


@guarded
def preview_table(
    store: Store,
    caller: Caller,
    study: str,
    path: str | Path,
    mapping_text: str | bytes,
    *,
    mapping_source: str = "mapping.toml",
) -> mapping.MappedTable:
    """Map the table at ``path`` with ``mapping_text`` (TOML, see ``study.mapping``) and check
    it against the study's stored cases and arms, storing nothing.

    Raises ``ValidationError`` naming each wrong mapping key (unknown, missing, a column the
    table lacks, TOML that does not parse) or each problem of the mapped rows."""
    parsed = mapping.parse_mapping(mapping_text, source=mapping_source)
    mapped = _map_against_study(store, study, Path(path), parsed)
    # the stored rows are compared by the import itself: run it, then roll it back, so that
    # the preview refuses exactly what the import would (a stored case with another question)
    try:
        with store.transaction() as cur:
            _write_mapped(store, cur, caller, study, Path(path), mapped)
            raise _RollBack
    except _RollBack:
        pass
    return mapped


class _RollBack(Exception):
    """Raised to roll a preview's transaction back."""


def _write_mapped(
    store: Store, cur: Cursor, caller: Caller, study: str, path: Path, mapped: mapping.MappedTable
) -> list[ImportResult]:
    """Store a mapped table's cases, arms (where it has them) and answers in ``cur``'s
    transaction, each kind as its own import (compared with the stored rows, audited)."""
    digest: Future[str] = Future()
    digest.set_result(_file_digest(path))
    results = []
    for kind, frame in (
        ("cases", mapped.cases),
        ("arms", mapped.arms),
        ("answers", mapped.answers),
    ):
        if frame.height:
            spec = _TABLES[kind]
            results.append(
                _write_frame(
                    store,
                    cur,
                    caller,
                    study,
                    spec,
                    _conform(frame, spec),
                    path.name,
                    digest,
                    None,
                    _unknown_fields(frame, spec),
                )
            )
    return results


@guarded
def import_table(
    store: Store,
    caller: Caller,
    study: str,
    path: str | Path,
    mapping_text: str | bytes,
    *,
    name: str,
    mapping_source: str = "mapping.toml",
) -> TableImport:
    """Import a table through a column mapping: its cases, arms and answers in one transaction
    (all or nothing; one audit event per kind, as their own imports write), and the mapping kept
    with the study under ``name`` (``list_mappings``; saved again under its name, it replaces the
    text; audited as ``mapping.save``). Rows identical to stored ones are skipped, as in
    ``import_cases``."""
    parsed = mapping.parse_mapping(mapping_text, source=mapping_source)
    if not name or len(name) > importing.MAX_ID_CHARS or name != name.strip():
        raise ValidationError(
            [Problem("mapping", None, "name", "give the mapping a name (1-200 characters)")]
        )
    path = Path(path)
    mapped = _map_against_study(store, study, path, parsed)
    with store.transaction() as cur:
        results = _write_mapped(store, cur, caller, study, path, mapped)
        _keep_mapping(cur, caller, study, name, parsed.text, path.name)
    return TableImport(mapped, results, name)


@guarded
def list_mappings(store: Store, caller: Caller, study: str) -> pl.DataFrame:
    """The mappings kept with ``study``: ``name``, ``mapping`` (the TOML text as given),
    ``sha256``, ``saved_at``, ``saved_by``; by name."""
    cur = store.cursor()
    try:
        require_study(cur, study)
        return cur.sql(
            "SELECT name, mapping, sha256, saved_at, saved_by FROM import_mappings"
            " WHERE study = $s ORDER BY name",
            params={"s": study},
        ).pl()
    finally:
        cur.close()


def _map_against_study(
    store: Store, study: str, path: Path, parsed: mapping.TableMapping
) -> mapping.MappedTable:
    cur = store.cursor()
    try:
        require_study(cur, study)
        case_ids = column(cur, "SELECT case_id FROM cases WHERE study = ?", [study])
        arms = _stored_arms(cur, study)
    finally:
        cur.close()
    return mapping.map_table(path, parsed, known_case_ids=case_ids, known_arms=arms)


def _stored_arms(cur: Cursor, study: str) -> pl.DataFrame:
    """The study's arms as ``importing.read_arms`` returns them, with ``not_recorded``."""
    return cur.sql(
        "SELECT r.*, list(u.field) FILTER (WHERE u.field IS NOT NULL) AS not_recorded"
        f" FROM ({_STORED_SELECT['arms']}) r LEFT JOIN unknown_provenance u"
        "  ON u.study = $s AND u.object_type = 'arm' AND u.object_id = r.arm_id"
        " GROUP BY ALL ORDER BY r.arm_id",
        params={"s": study},
    ).pl()


def _keep_mapping(cur: Cursor, caller: Caller, study: str, name: str, text: str, file: str) -> None:
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    now = utc_now()
    cur.execute("DELETE FROM import_mappings WHERE study = ? AND name = ?", [study, name])
    cur.execute(
        "INSERT INTO import_mappings (study, name, mapping, sha256, saved_at, saved_by)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [study, name, text, digest, now, caller.actor],
    )
    audit.append(
        cur,
        actor=caller.actor,
        kind=audit.MAPPING_SAVE,
        object_type="mapping",
        object_id=name,
        study=study,
        payload={"name": name, "sha256": digest, "file": file},
    )


# identifiers come from the table specs above, values are parameters
_STORED_SELECT = {
    kind: f"SELECT {', '.join(t.columns)} FROM {t.name} WHERE study = $s"
    for kind, t in _TABLES.items()
}


_MAX_PROBLEMS = importing.MAX_PROBLEMS_PER_KIND
"""Problems of one kind listed one by one; the rest are counted in one summary problem."""


def _import_frame(
    store: Store,
    caller: Caller,
    study_id: str,
    kind: str,
    frame: pl.DataFrame,
    *,
    source: Path | None,
) -> ImportResult:
    """Compare ``frame`` (rows of ``kind``) with the stored rows and insert the new ones.

    The incoming rows are registered as an Arrow view, so neither the stored rows (which may be
    hundreds of megabytes of text) nor row-by-row inserts pass through Python.
    """
    file = source.name if source is not None else kind
    spec = _TABLES[kind]
    unknown = _unknown_fields(frame, spec)
    conformed = _conform(frame, spec)
    cur = store.cursor()
    try:
        types = digests.column_types(cur, kind)
    finally:
        cur.close()
    # Two jobs beside the transaction, on threads (hashlib and DuckDB release the GIL): the
    # file's SHA-256, and the rows' digests for audit verify (to_json and SHA-256 of 300,000
    # answers cost about as much CPU as storing them; computed in the transaction they were
    # 1.9x DuckDB's own loader's time, beside it the import stays within it)
    pool = ThreadPoolExecutor(max_workers=2)
    try:
        digest = pool.submit(_file_digest, source) if source is not None else None
        rows = pool.submit(digests.of_frame, kind, conformed, types)
        result = _store_frame(store, caller, study_id, spec, conformed, file, digest, rows, unknown)
    except BaseException:
        # a refused import answers at once; the threads' work is thrown away when done
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return result


_UNKNOWN_SCHEMA = {"object_id": pl.String, "field": pl.String}


def _unknown_fields(frame: pl.DataFrame, table: _Table) -> pl.DataFrame:
    """(object_id, field) for every field the file gave as not recorded (see
    ``importing.NOT_RECORDED``); empty for a frame without a ``not_recorded`` column."""
    if "not_recorded" not in frame.columns or table.name not in _UNKNOWN_OBJECT:
        return pl.DataFrame(schema=_UNKNOWN_SCHEMA)
    return (
        frame.select(pl.col(table.key).alias("object_id"), pl.col("not_recorded").alias("field"))
        .explode("field")
        .drop_nulls("field")
    )


_UNKNOWN_OBJECT = {"arms": "arm", "answers": "answer"}
"""The tables whose rows may carry provenance that was not recorded: the object type stored."""


def _store_frame(
    store: Store,
    caller: Caller,
    study_id: str,
    spec: _Table,
    frame: pl.DataFrame,
    file: str,
    digest: Future[str] | None,
    rows: Future[digests.FrameDigests],
    unknown: pl.DataFrame,
) -> ImportResult:
    """``_import_frame`` once the file's digest is under way in ``digest`` and the rows' digests
    in ``rows``; ``unknown`` holds the (object_id, field) pairs given as not recorded."""
    with store.transaction() as cur:
        return _write_frame(store, cur, caller, study_id, spec, frame, file, digest, rows, unknown)


def _write_frame(
    store: Store,
    cur: Cursor,
    caller: Caller,
    study_id: str,
    spec: _Table,
    frame: pl.DataFrame,
    file: str,
    digest: Future[str] | None,
    rows: Future[digests.FrameDigests] | None,
    unknown: pl.DataFrame,
) -> ImportResult:
    """``_store_frame``'s work inside the caller's transaction ``cur`` (several kinds imported
    together are stored all or nothing). ``rows``: the new rows' digests being computed beside
    the transaction (``digests.of_frame``), or None to compute them here from the stored rows."""
    kind, table, key, what = spec.name, spec.name, spec.key, spec.what
    duplicated = frame.filter(pl.col(key).is_duplicated()).get_column(key).unique().sort()
    if duplicated.len():
        problems = [
            Problem(file, None, key, f"{what} id '{k}' appears more than once")
            for k in duplicated.head(_MAX_PROBLEMS)
        ]
        if duplicated.len() > _MAX_PROBLEMS:
            problems.append(Problem.summary(file, key, duplicated.len() - _MAX_PROBLEMS))
        raise ValidationError(problems)
    columns = [c for c in frame.columns if c != key]
    incoming = frame.with_row_index("_row", offset=1)
    with store.registered(cur, "incoming", incoming):
        study = require_study(cur, study_id)
        # identifiers below come from the constants above, values are parameters
        differs = ", ".join(
            f"(i.{c}::VARCHAR IS DISTINCT FROM s.{c}::VARCHAR) AS {c}"
            if c == "parameters"
            else f"(i.{c} IS DISTINCT FROM s.{c}) AS {c}"
            for c in columns
        )
        matched = cur.sql(
            f"SELECT i._row, i.{key}, {differs} FROM incoming i JOIN {table} s"
            f" ON s.study = $s AND s.{key} = i.{key} ORDER BY i._row",
            params={"s": study_id},
        ).pl()
        changed = matched.filter(pl.any_horizontal(columns)) if columns else matched.clear()
        problems = [
            Problem(
                file,
                row["_row"],
                c,
                f"{what} '{row[key]}' is stored already with a different {c}; "
                "give it a new id or correct the file",
            )
            for row in changed.head(_MAX_PROBLEMS).iter_rows(named=True)
            for c in columns
            if row[c]
        ]
        unlisted = changed.slice(_MAX_PROBLEMS)
        problems += [
            Problem.summary(file, c, n) for c in columns if (n := int(unlisted.get_column(c).sum()))
        ]
        if table == "answers":
            problems += _answer_slot_conflicts(cur, study_id, file)
        if problems:
            raise ValidationError(problems)
        added = frame.height - matched.height
        if added and study["status"] != "draft":
            raise StateError(
                f"Study '{study_id}' is {study['status']}: {kind} can be added only while it is "
                "a draft (a locked protocol does not change)."
            )
        if added:
            names = ", ".join([key, *columns])
            sql = f"INSERT INTO {table} (study, {names}) SELECT $s, {names} FROM incoming i"
            if matched.height:  # skip the stored rows; a first import needs no anti-join
                sql += (
                    f" WHERE NOT EXISTS (SELECT 1 FROM {table} s"
                    f" WHERE s.study = $s AND s.{key} = i.{key})"
                )
            try:
                cur.execute(sql, {"s": study_id})
            except ConstraintViolation as exc:
                raise ValidationError([Problem(file, None, None, constraint_reason(exc))]) from None
        if unknown.height:
            with store.registered(cur, "unknown_incoming", unknown):
                cur.execute(
                    "INSERT INTO unknown_provenance (study, object_type, object_id, field)"
                    " SELECT $s, $t, object_id, field FROM unknown_incoming"
                    " ON CONFLICT DO NOTHING",
                    {"s": study_id, "t": _UNKNOWN_OBJECT[table]},
                )
        seq = audit.append(
            cur,
            actor=caller.actor,
            kind=spec.event,
            object_type=kind,
            object_id=study_id,
            study=study_id,
            payload={
                "file": file,
                "sha256": None if digest is None else digest.result(),
                "rows": frame.height,
                "added": added,
                "skipped": matched.height,
                "not_recorded": unknown.height,
                # what is stored, for audit verify (the file's SHA-256 says what was read)
                "stored_sha256": (
                    digests.record(cur, study_id, kind)
                    if rows is None
                    else digests.record_frame(cur, study_id, kind, rows.result())
                ),
            },
        )
    return ImportResult(kind, study_id, file, frame.height, added, matched.height, seq)


def _answer_slot_conflicts(cur: Cursor, study_id: str, file: str) -> list[Problem]:
    """Incoming answers whose (case, arm) already has a stored answer with another id."""
    clash = cur.execute(
        "SELECT i._row, i.answer_id, i.case_id, i.arm_id, s.answer_id, count(*) OVER ()"
        " FROM incoming i"
        " JOIN answers s ON s.study = $s AND s.case_id = i.case_id AND s.arm_id = i.arm_id"
        " WHERE s.answer_id <> i.answer_id ORDER BY i._row LIMIT $n",
        {"s": study_id, "n": _MAX_PROBLEMS},
    ).fetchall()
    problems = [
        Problem(
            file,
            row,
            "answer_id",
            f"case '{case}' already has answer '{stored}' from arm '{arm}'; "
            f"'{answer}' would be a second one",
        )
        for row, answer, case, arm, stored, _ in clash
    ]
    if clash and clash[0][5] > len(clash):
        problems.append(Problem.summary(file, "answer_id", clash[0][5] - len(clash)))
    return problems


@guarded
def list_cases(store: Store, caller: Caller, study: str) -> pl.DataFrame:
    """The study's cases: case_id, question, context, specialty, tags, conversation, criteria
    (the last two canonical JSON text or null; see ``study.case_json``)."""
    return store.read(_STORED_SELECT["cases"] + " ORDER BY case_id", {"s": study})


@guarded
def list_arms(store: Store, caller: Caller, study: str) -> pl.DataFrame:
    """The study's arms, columns as ``importing.read_arms`` returns."""
    return store.read(_STORED_SELECT["arms"] + " ORDER BY arm_id", {"s": study})


@guarded
def list_answers(store: Store, caller: Caller, study: str) -> pl.DataFrame:
    """The study's answers with provenance, columns as ``importing.read_answers`` returns."""
    return store.read(_STORED_SELECT["answers"] + " ORDER BY case_id, arm_id", {"s": study})


# --- removing what a draft does not use ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Removal:
    """What a removal deletes: its table and key, the word for a row, what makes a row used
    (SQL naming the first few used ids among $ids, with the reason), and its audit kind."""

    table: str
    key: str
    what: str
    used_sql: str
    event: audit.EventKind


_REMOVALS = {
    "cases": _Removal(
        "cases",
        "case_id",
        "case",
        "SELECT case_id, 'it has answers (remove them first)' FROM answers"
        " WHERE study = $s AND list_contains($ids, case_id)"
        " UNION SELECT case_id, 'raters are assigned to it' FROM assignments"
        " WHERE study = $s AND list_contains($ids, case_id)",
        audit.CASES_REMOVE,
    ),
    "arms": _Removal(
        "arms",
        "arm_id",
        "arm",
        "SELECT arm_id, 'it has answers (remove them first)' FROM answers"
        " WHERE study = $s AND list_contains($ids, arm_id)",
        audit.ARMS_REMOVE,
    ),
    "answers": _Removal(
        "answers",
        "answer_id",
        "answer",
        "SELECT answer_id, 'it is shown in an assignment' FROM presentations"
        " WHERE study = $s AND list_contains($ids, answer_id)",
        audit.ANSWERS_REMOVE,
    ),
}


@guarded
def remove_cases(store: Store, caller: Caller, study: str, case_ids: list[str]) -> int:
    """Remove cases that nothing uses from a draft (audited); return how many were removed.

    A case is used while it has answers (remove them first with ``remove_answers``) or raters
    are assigned to it. Unknown ids, used cases and a study that is no draft are refused, and
    then nothing is removed.
    """
    return _remove(store, caller, study, _REMOVALS["cases"], case_ids)


@guarded
def remove_arms(store: Store, caller: Caller, study: str, arm_ids: list[str]) -> int:
    """Remove arms without answers from a draft (audited); return how many were removed.

    Remove an arm's answers first (``remove_answers``): DuckDB cannot delete a row and the rows
    that referenced it in one transaction, so each removal is its own audited step.
    """
    return _remove(store, caller, study, _REMOVALS["arms"], arm_ids)


@guarded
def remove_answers(store: Store, caller: Caller, study: str, answer_ids: list[str]) -> int:
    """Remove answers that no assignment shows from a draft (audited); return how many.

    With them go the records of their provenance that was not recorded.
    """
    return _remove(store, caller, study, _REMOVALS["answers"], answer_ids)


def _remove(store: Store, caller: Caller, study: str, spec: _Removal, ids: list[str]) -> int:
    ids = sorted(set(ids))
    if not ids:
        raise ValidationError([Problem(spec.table, None, spec.key, f"name the {spec.what}s")])
    with store.transaction() as cur:
        require_study(cur, study, ("draft",))
        # identifiers come from the constants above, values are parameters
        stored = set(
            column(
                cur,
                f"SELECT {spec.key} FROM {spec.table} WHERE study = ? AND list_contains(?, {spec.key})",
                [study, ids],
            )
        )
        problems = [
            Problem(spec.table, None, spec.key, f"study '{study}' has no {spec.what} '{i}'")
            for i in ids
            if i not in stored
        ]
        used = cur.execute(spec.used_sql + " ORDER BY 1", {"s": study, "ids": ids}).fetchall()
        problems += [
            Problem(spec.table, None, spec.key, f"{spec.what} '{i}' is in use: {why}")
            for i, why in used[:_MAX_PROBLEMS]
        ]
        if problems:
            raise ValidationError(problems)
        if spec.table in _UNKNOWN_OBJECT:
            cur.execute(
                "DELETE FROM unknown_provenance WHERE study = ? AND object_type = ?"
                " AND list_contains(?, object_id)",
                [study, _UNKNOWN_OBJECT[spec.table], ids],
            )
        cur.execute(
            f"DELETE FROM {spec.table} WHERE study = ? AND list_contains(?, {spec.key})",
            [study, ids],
        )
        # the removed rows' digests go too; the event records the total over what remains
        cur.execute(
            "DELETE FROM stored_digests WHERE study = ? AND kind = ? AND list_contains(?, row_id)",
            [study, spec.table, ids],
        )
        audit.append(
            cur,
            actor=caller.actor,
            kind=spec.event,
            object_type=spec.table,
            object_id=study,
            study=study,
            payload={
                "ids": ids,
                "removed": len(ids),
                "stored_sha256": digests.total(cur, study, spec.table),
            },
        )
    return len(ids)


# --- what was never recorded -----------------------------------------------------------------

UNKNOWN_CONSEQUENCES = {
    "model_name": "model not recorded: results cannot be tied to a named model",
    "model_version": "model version not recorded: results cannot be tied to a pinned version",
    "generated_at": "generation date not recorded: the answers cannot be placed in time, "
    "nor the model's knowledge cut-off judged",
    "prompt": "prompt not recorded: the answers cannot be regenerated or the prompt reviewed",
    "author_id": "author not recorded: a rater may be shown an answer they wrote themselves",
    "author_role": "author role not recorded: who the reference clinicians were is unknown",
}
"""Per provenance field, what it means for the results that it was not recorded."""


@guarded
def unknown_provenance(store: Store, caller: Caller, study: str) -> pl.DataFrame:
    """What the study's sources never recorded, one row per arm and field.

    Columns: arm_id, field (one of ``importing.NOT_RECORDABLE``), level (``"arm"``: the arm's
    own field; ``"answer"``: some of its answers' field), answers (Int64: how many of the arm's
    answers it concerns; all of them for an arm-level field), consequence (a sentence for the
    reader of the results, ``UNKNOWN_CONSEQUENCES``). Empty when everything was recorded.
    """
    frame = store.read(
        "SELECT r.arm_id, u.field, 'arm' AS level,"
        " (SELECT count(*) FROM answers a WHERE a.study = r.study AND a.arm_id = r.arm_id)"
        "  AS answers"
        " FROM unknown_provenance u JOIN arms r ON r.study = u.study AND r.arm_id = u.object_id"
        " WHERE u.study = $s AND u.object_type = 'arm'"
        " UNION ALL SELECT a.arm_id, u.field, 'answer', count(*)"
        " FROM unknown_provenance u JOIN answers a ON a.study = u.study"
        "  AND a.answer_id = u.object_id"
        " WHERE u.study = $s AND u.object_type = 'answer' GROUP BY a.arm_id, u.field"
        " ORDER BY 1, 2",
        {"s": study},
    )
    return frame.with_columns(
        pl.col("answers").cast(pl.Int64),
        pl.col("field").replace_strict(UNKNOWN_CONSEQUENCES).alias("consequence"),
    )
