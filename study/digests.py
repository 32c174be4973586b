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

from dataclasses import dataclass

from study.store import Cursor, first


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
