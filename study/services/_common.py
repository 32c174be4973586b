"""Small pieces several services share: the study row and its state, who wrote an answer, the
event that records a stored design."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import polars as pl

from study import audit, digests, keyfile
from study.audit import AuditKeyError
from study.errors import NotFoundError, StateError
from study.store import Cursor, Store, first

if TYPE_CHECKING:
    from study.access import Caller

MAX_LISTED = 20
"""How many offending things a refusal names before it says "(and N more)"."""


def study_row(cur: Cursor, study_id: str) -> dict[str, Any] | None:
    """The study's row as a dict, or None."""
    frame = cur.sql("SELECT * FROM studies WHERE id = $id", params={"id": study_id}).pl()
    return frame.row(0, named=True) if frame.height else None


def require_study(cur: Cursor, study_id: str, allowed: Iterable[str] | None = None) -> dict:
    """The study's row; ``NotFoundError`` if there is none, ``StateError`` if its status is not
    one of ``allowed`` (when given)."""
    row = study_row(cur, study_id)
    if row is None:
        raise NotFoundError(f"There is no study '{study_id}'.")
    if allowed is not None:
        allowed = tuple(allowed)
        if row["status"] not in allowed:
            raise StateError(
                f"Study '{study_id}' is {row['status']}; this needs it to be "
                f"{' or '.join(allowed)}."
            )
    return row


def column(cur: Cursor, sql: str, params: list[Any]) -> list[Any]:
    """The first column of a query's rows, as a list."""
    return [row[0] for row in cur.execute(sql, params).fetchall()]


def constraint_reason(exc: Exception) -> str:
    """A database constraint's refusal as one line for the person who sent the rows."""
    text = str(exc).split("\n")[0]
    return f"the database refused the rows: {text}"


def author_owner_sql() -> str:
    """SQL condition: answer ``a`` was written by user ``u``.

    An answer is a rater's own when its author_id names the rater by id, e-mail or subject,
    ignoring case and edge spaces (author ids are typed by people: "DR1 " is dr1). The one
    definition used wherever own answers are kept from their author.
    """
    return (
        f"{person_key_sql('a.author_id')} IN ({person_key_sql('u.id')},"
        f" {person_key_sql('u.email')}, {person_key_sql('u.subject')})"
    )


def person_key_sql(column: str) -> str:
    """SQL: ``column`` (a code constant) as ``author_owner_sql`` compares names of people, so a
    service that reads the keys once can compare them again by plain equality (the same rule)."""
    return f"lower(trim({column}))"


def audit_design(
    cur: Cursor,
    caller: Caller,
    study: str,
    seed_commitment: str | None,
    assignments: pl.DataFrame,
    presentations: pl.DataFrame,
    *,
    design: Mapping[str, Any] | None = None,
) -> int:
    """Record stored assignments and presentations (an ``assignments.persist`` event, whose
    counts and row digests ``audit verify`` checks the rows against; the seed only as its
    commitment, or None for a design that had none); ``assignments`` has an ``algorithm``
    column. ``design``: the parameters the design was made with (mode, raters per case, raters,
    ...), recorded so that the allocation can be replayed from the seed at unblinding. Returns
    the event's seq."""
    return audit.append(
        cur,
        actor=caller.actor,
        kind=audit.ASSIGNMENTS_PERSIST,
        object_type="study",
        object_id=study,
        study=study,
        payload={
            "seed_commitment": seed_commitment,
            "assignments": assignments.height,
            "presentations": presentations.height,
            "algorithm": sorted(set(assignments.get_column("algorithm").to_list())),
            "design": dict(design or {}),
            # which answer is behind which label, for audit verify
            "stored_sha256": {
                kind: digests.record(cur, study, kind)
                for kind in ("assignments", "presentations", "assignment_phases")
            },
        },
    )


def sealed_seed(store: Store, cur: Cursor, study: str) -> int | None:
    """The study's sealed seed, opened with the audit key; None when none was sealed."""
    row = first(
        cur.execute("SELECT salt, sealed FROM sealed_seeds WHERE study = ?", [study]).fetchall()
    )
    if row is None:
        return None
    if store.audit_key is None:
        raise AuditKeyError(
            "The sealed assignment seed cannot be opened: this installation has no audit key "
            "(setting CLINVAL_AUDIT_KEY_FILE)."
        )
    return keyfile.open_seed(store.audit_key, row[1], row[0])


def revealed_seed(store: Store, cur: Cursor, study: str) -> dict[str, Any] | None:
    """For the unblinding step (inside its transaction): the sealed seed and its salt, to be
    recorded in the unblinding event; None when the study sealed none."""
    seed = sealed_seed(store, cur, study)
    if seed is None:
        return None
    salt = cur.execute("SELECT salt FROM sealed_seeds WHERE study = ?", [study]).fetchall()[0][0]
    return {"seed": seed, "salt": salt}


def require_unblinded(store: Store, caller: Caller, study: str, what: str) -> str:
    """The study's status; ``StateError`` for a person before the audited unblinding step (the
    arms are the blinding's secret until then). The command line's operator, who holds the
    database file itself, may read them at any time. ``what``: what is refused, in words
    ("its results by arm are read", ...)."""
    cur = store.cursor()
    try:
        status = require_study(cur, study)["status"]
    finally:
        cur.close()
    if status != "unblinded" and not caller.is_operator:
        raise StateError(
            f"Study '{study}' is {status}: {what} only after the audited unblinding step."
        )
    return status


def rubric_items(cur: Cursor, study: str) -> list[str]:
    """Keys of the study's items rated per criterion of the case (rubric items, ``criteria =
    "case"``), in the order of their instruments: the one query that says which items are
    rubric items."""
    return column(
        cur,
        "SELECT i.item_key FROM study_instruments s JOIN items i"
        " ON i.instrument_key = s.instrument_key AND i.instrument_version = s.instrument_version"
        " WHERE s.study = ? AND json_extract_string(i.definition, '$.criteria') = 'case'"
        " ORDER BY s.position, i.position",
        [study],
    )
