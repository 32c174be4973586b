"""Studies: create one as a draft, read it, list the studies a caller may see."""

from __future__ import annotations

import re

import polars as pl

from study import audit
from study.access import Caller, guarded
from study.errors import ConflictError, NotFoundError, Problem, ValidationError
from study.services._common import study_row
from study.store import Store, utc_now

_MAX_ID_LENGTH = 200


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:60] or "study"


def _check_study_id(study_id: str) -> None:
    """Refuse a study id the importers would refuse for a case or answer id, and '*'.

    '*' is the scope of a role held for every study, so it can never name one study.
    """
    reason = None
    if not isinstance(study_id, str) or not study_id:
        reason = "a study id must be non-empty text"
    elif len(study_id) > _MAX_ID_LENGTH:
        reason = f"a study id has at most {_MAX_ID_LENGTH} characters, not {len(study_id)}"
    elif any(ch.isspace() or not ch.isprintable() for ch in study_id):
        reason = f"study id {study_id!r} contains spaces or control characters"
    elif study_id == "*":
        reason = "'*' means every study and cannot be a study id"
    if reason:
        raise ValidationError([Problem("study", None, "id", reason)])


@guarded
def create_study(
    store: Store,
    caller: Caller,
    name: str,
    *,
    study_id: str | None = None,
    synthetic: bool = False,
    description: str | None = None,
) -> str:
    """Create a study in ``draft``; return its id (``study_id``, or a slug of ``name``).

    A given ``study_id`` must be non-empty, at most 200 characters, without spaces or control
    characters, and not ``*`` (``ValidationError`` otherwise).
    """
    if not name or not name.strip():
        raise ValidationError([Problem("study", None, "name", "a study needs a name")])
    study_id = _slug(name) if study_id is None else study_id
    _check_study_id(study_id)
    with store.transaction() as cur:
        if study_row(cur, study_id) is not None:
            raise ConflictError(f"A study with id '{study_id}' exists already.")
        cur.execute(
            "INSERT INTO studies (id, name, status, synthetic, description, created_at,"
            " created_by) VALUES (?, ?, 'draft', ?, ?, ?, ?)",
            [study_id, name.strip(), bool(synthetic), description, utc_now(), caller.actor],
        )
        audit.append(
            cur,
            actor=caller.actor,
            kind=audit.STUDY_CREATE,
            object_type="study",
            object_id=study_id,
            study=study_id,
            payload={"name": name.strip(), "synthetic": bool(synthetic)},
        )
    return study_id


@guarded
def get_study(store: Store, caller: Caller, study: str) -> dict:
    """The study's row as a dict (id, name, status, synthetic, description, created_at, ...)."""
    cur = store.cursor()
    try:
        row = study_row(cur, study)
    finally:
        cur.close()
    if row is None:
        raise NotFoundError(f"There is no study '{study}'.")
    return row


@guarded
def list_studies(store: Store, caller: Caller) -> pl.DataFrame:
    """The studies ``caller`` holds a role in (all of them for a global role or a system actor),
    newest first; columns of ``studies``."""
    if caller.is_system:
        return store.read("SELECT * FROM studies ORDER BY created_at DESC, id")
    return store.read(
        "SELECT * FROM studies s WHERE EXISTS (SELECT 1 FROM roles r WHERE r.user_id = $u"
        " AND (r.study IS NULL OR r.study = s.id)) ORDER BY created_at DESC, id",
        {"u": caller.user_id},
    )
