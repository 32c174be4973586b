"""Digests of the rows an audit event stored, so that ``audit verify`` can name a changed row.

When a service stores cases, arms, answers, assignments or presentations, it records one SHA-256
digest per new row in ``stored_digests`` (with the seq of the event that stores them) and puts
the digest over all of the study's digests of that kind into the event's payload
(``stored_sha256``). ``study.audit_state`` recomputes both: a row edited in place no longer
matches its digest (the row is named), and a digest edited to match no longer adds up to what the
keyed event recorded (the event is named).

A row's digest is SHA-256 of the JSON of the columns below (DuckDB's ``to_json`` of a struct, so
the database computes it the same way when storing and when verifying). Columns that change by
design (an assignment's done flag) are not in it; ``audit_state`` checks those against events.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from study.store import Cursor, Store, first, scratch_query


@dataclass(frozen=True, slots=True)
class Digested:
    """One kind of stored row: its table, the column that names a row, and the columns digested."""

    table: str
    row_id: str
    columns: tuple[str, ...]
    # columns added later: digested only in rows where one of them is set, so that the digests
    # of rows stored before they existed (all null there) stay what their events recorded
    later: tuple[str, ...] = ()

    def row_digest_sql(self) -> str:
        """SQL expression: the digest of one row of ``table`` (aliased ``t``)."""
        struct = ", ".join(f"'{c}': t.{c}" for c in self.columns)
        plain = f"sha256(to_json({{{struct}}})::VARCHAR)"
        if not self.later:
            return plain
        wider = ", ".join(f"'{c}': t.{c}" for c in (*self.columns, *self.later))
        unset = " AND ".join(f"t.{c} IS NULL" for c in self.later)
        return f"CASE WHEN {unset} THEN {plain} ELSE sha256(to_json({{{wider}}})::VARCHAR) END"

    def frame_sql(self, types: Mapping[str, str]) -> str:
        """SQL over a frame ``incoming`` of rows about to be stored in ``table``: (row_id, the
        JSON that ``row_digest_sql`` hashes). Each column is cast to its stored type first
        (``types``: column -> DuckDB type name), since ``to_json`` writes a JSON column as JSON
        and text as a string."""
        cast = ", ".join(
            f"CAST(i.{c} AS {types[c]}) AS {c}" for c in (self.row_id, *self.columns, *self.later)
        )
        digested = self.row_digest_sql().replace("sha256(", "(")
        return (
            f"SELECT CAST(t.{self.row_id} AS VARCHAR) AS row_id, {digested} AS json"
            f" FROM (SELECT {cast} FROM incoming i) t"
        )

    def rows_sql(self) -> str:
        """SQL: (row_id, digest) of the study's rows ($study)."""
        return (
            f"SELECT CAST(t.{self.row_id} AS VARCHAR) AS row_id, {self.row_digest_sql()} AS digest"
            f" FROM {self.table} t WHERE t.study = $study"
        )


DIGESTED: dict[str, Digested] = {
    "cases": Digested(
        "cases",
        "case_id",
        ("question", "context", "specialty", "tags"),
        later=("conversation", "criteria"),
    ),
    "arms": Digested(
        "arms", "arm_id", ("kind", "label", "model_name", "model_version", "author_role")
    ),
    "answers": Digested(
        "answers",
        "answer_id",
        (
            "case_id",
            "arm_id",
            "text",
            "model_name",
            "model_version",
            "generated_at",
            "prompt",
            "system_prompt",
            "parameters",
            "author_role",
            "author_id",
        ),
    ),
    "assignments": Digested(
        "assignments", "id", ("design_key", "rater", "case_id", "shown_order", "algorithm")
    ),
    "presentations": Digested(
        "presentations", "id", ("assignment", "answer_id", "position", "label")
    ),
    # an assignment's phase and attempt decide whether its ratings count (a live rating set to
    # calibration drops out of the results), so they are digested too: as a kind of their own,
    # recorded by assignments.persist since December 2026, because adding them to the
    # assignments' digest would change the digests that older events recorded
    "assignment_phases": Digested("assignments", "id", ("phase", "attempt")),
}
"""Every kind of row that carries a digest, by kind (the table's name, or for a later set of
a table's columns, a name of its own)."""

TOTAL_SQL = (
    "SELECT sha256(coalesce(string_agg(row_id || ':' || digest, ',' ORDER BY row_id), ''))"
    " FROM stored_digests WHERE study = $study AND kind = $kind"
)
"""SQL: the digest over a study's stored digests of one kind (what the event records)."""


def record(cur: Cursor, study: str, kind: str) -> str:
    """Record the digest of every row of ``kind`` in ``study`` that has none yet; return the
    digest over all of the study's digests of that kind, for the storing event's payload.

    Call inside the transaction that stores the rows, just before appending its event.
    """
    spec = DIGESTED[kind]
    cur.execute(
        f"INSERT INTO stored_digests (study, kind, row_id, digest)"
        f" SELECT $study, $kind, r.row_id, r.digest FROM ({spec.rows_sql()}) r"
        " WHERE NOT EXISTS (SELECT 1 FROM stored_digests d WHERE d.study = $study"
        "  AND d.kind = $kind AND d.row_id = r.row_id)",
        {"study": study, "kind": kind},
    )
    return total(cur, study, kind)


@dataclass(frozen=True, slots=True)
class FrameDigests:
    """The digests of rows about to be stored (``of_frame``): ``rows`` (row_id, digest) and
    ``total``, the digest over them alone, which is the study's total when it holds no digest
    of the kind yet (its first import of the kind)."""

    rows: pl.DataFrame
    total: str


def of_frame(kind: str, frame: pl.DataFrame, types: Mapping[str, str]) -> FrameDigests:
    """The digest of each row of ``frame``, rows of ``kind`` about to be stored, as ``record``
    would compute them from the stored rows; ``types`` maps each stored column to its DuckDB
    type. Computed apart from the database (``to_json`` in a scratch DuckDB, SHA-256 with
    hashlib, which uses the CPU's SHA instructions): an import runs it on a second thread while
    its transaction inserts the rows, then stores the result with ``record_frame``."""
    json = scratch_query(DIGESTED[kind].frame_sql(types), {"incoming": frame})
    sha256 = hashlib.sha256
    rows = pl.DataFrame(
        {
            "row_id": json.get_column("row_id"),
            "digest": [sha256(text.encode()).hexdigest() for text in json.get_column("json")],
        },
        schema={"row_id": pl.String, "digest": pl.String},
    )
    # TOTAL_SQL over these rows alone: row ids in code-point order (DuckDB orders VARCHAR by
    # its UTF-8 bytes, which is the same order)
    pairs = sorted(zip(rows.get_column("row_id"), rows.get_column("digest"), strict=True))
    joined = ",".join(f"{row_id}:{digest}" for row_id, digest in pairs)
    return FrameDigests(rows, sha256(joined.encode()).hexdigest())


def record_frame(cur: Cursor, study: str, kind: str, computed: FrameDigests) -> str:
    """``record`` with the digests already computed (``of_frame``) for the rows the
    transaction stores: digests of rows that have one already are not stored again. Returns the
    digest over all of the study's digests of ``kind``."""
    (held,) = first(
        cur.execute(
            "SELECT count(*) FROM stored_digests WHERE study = $study AND kind = $kind",
            {"study": study, "kind": kind},
        ).fetchall()
    )
    with Store.registered(cur, "new_digests", computed.rows):
        cur.execute(
            "INSERT INTO stored_digests (study, kind, row_id, digest)"
            " SELECT $study, $kind, r.row_id, r.digest FROM new_digests r"
            " WHERE NOT EXISTS (SELECT 1 FROM stored_digests d WHERE d.study = $study"
            "  AND d.kind = $kind AND d.row_id = r.row_id)",
            {"study": study, "kind": kind},
        )
    if held:
        return total(cur, study, kind)
    spec = DIGESTED[kind]
    (stored,) = first(
        cur.execute(
            f"SELECT count(*) FROM {spec.table} WHERE study = $study", {"study": study}
        ).fetchall()
    )
    if stored == computed.rows.height:
        # the study's first rows of the kind, all digested here: its total is theirs (an
        # import's row ids are distinct, it refuses a file that repeats one)
        return computed.total
    # rows stored before digests were kept (a database from before migration 0004): digest
    # them now, as the first import after the upgrade always has
    return record(cur, study, kind)


def column_types(cur: Cursor, kind: str) -> dict[str, str]:
    """Column -> DuckDB type name of the table that holds rows of ``kind``."""
    rows = cur.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = $t",
        {"t": DIGESTED[kind].table},
    ).fetchall()
    return dict(rows)


def total(cur: Cursor, study: str, kind: str) -> str:
    """The digest over ``study``'s stored digests of ``kind``."""
    row = first(cur.execute(TOTAL_SQL, {"study": study, "kind": kind}).fetchall())
    return str(row[0])


CURRENT_RATINGS_SQL = (
    "SELECT count(*), coalesce(sum(hash(c.rating)), 0), coalesce(max(c.rating), 0)"
    " FROM current_ratings c JOIN assignments a ON a.id = c.assignment WHERE a.study = $study"
)
"""SQL: (count, sum of hashes, newest id) of a study's current submitted ratings ($study): a
fingerprint of which ratings are current, in one aggregate pass, that any new rating or revision
changes (each moves a pointer to a new rating id). A cache key, not a seal: sums of 64-bit hashes
can be made to collide on purpose, which the audit chain, not this, guards against."""
