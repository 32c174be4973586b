"""A draft's design settings between sittings: the Design screen's form values kept with the
study so that the coordinator finds them again in another sitting or on another device.

Nothing here is the protocol: the lock freezes the protocol made from them. The design's
services (``study.services.design``) check the caller; these functions do the work.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from study import audit
from study.access import Caller
from study.canonical import canonical_json
from study.errors import Problem, ValidationError
from study.services._common import require_study
from study.store import Store, first, utc_now

MAX_DRAFT_BYTES = 64 * 1024
"""The largest draft settings kept (bytes of canonical JSON): a screen's form values, never data."""


def save_design_draft(
    store: Store, caller: Caller, study: str, settings: Mapping[str, Any]
) -> list[str]:
    """Keep a draft study's design settings (``design.save_design_draft``); returns the
    names of the settings that changed, sorted."""
    text = _draft_text(settings)
    with store.transaction() as cur:
        require_study(cur, study, ("draft",))
        row = first(
            cur.execute("SELECT settings FROM design_drafts WHERE study = ?", [study]).fetchall()
        )
        before: dict[str, Any] = json.loads(row[0]) if row else {}
        after: dict[str, Any] = json.loads(text)
        changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        if not changed:
            return []
        now = utc_now()
        if row:
            cur.execute(
                "UPDATE design_drafts SET settings = ?, saved_at = ?, saved_by = ? WHERE study = ?",
                [text, now, caller.actor, study],
            )
        else:
            cur.execute(
                "INSERT INTO design_drafts (study, settings, saved_at, saved_by)"
                " VALUES (?, ?, ?, ?)",
                [study, text, now, caller.actor],
            )
        audit.append(
            cur,
            actor=caller.actor,
            kind=audit.DESIGN_DRAFT,
            object_type="study",
            object_id=study,
            study=study,
            payload={"changed": {k: after.get(k) for k in changed}},
        )
    return changed


def design_draft(store: Store, study: str) -> dict[str, Any] | None:
    """The design settings kept for ``study``, or None (``design.design_draft``)."""
    cur = store.cursor()
    try:
        require_study(cur, study)
        row = first(
            cur.execute(
                "SELECT settings, saved_at, saved_by FROM design_drafts WHERE study = ?", [study]
            ).fetchall()
        )
    finally:
        cur.close()
    if row is None:
        return None
    return {"settings": json.loads(row[0]), "saved_at": row[1], "saved_by": row[2]}


def _draft_text(settings: Any) -> str:
    """``settings`` as canonical JSON text, or ``ValidationError`` naming what is wrong: not an
    object, a key that is not a non-empty string, a value JSON cannot hold, a seed, too big."""

    def problem(column: str | None, reason: str) -> ValidationError:
        return ValidationError([Problem("design settings", None, column, reason)])

    if not isinstance(settings, Mapping):
        raise problem(
            None, f"the settings must be an object of name -> value, not {type(settings).__name__}"
        )
    for key in settings:
        if not isinstance(key, str) or not key.strip():
            raise problem(None, f"{key!r} is not a setting's name (a non-empty string)")
    if "seed" in settings:
        raise problem(
            "seed",
            "the assignment seed is never kept with a draft's settings: it is drawn for the "
            "dry run and sealed at the lock",
        )
    try:
        text = canonical_json(dict(settings))
    except (TypeError, ValueError) as error:
        raise problem(None, f"a value cannot be kept as JSON: {error}") from None
    size = len(text.encode("utf-8"))
    if size > MAX_DRAFT_BYTES:
        raise problem(
            None, f"the settings take {size:,} bytes, more than the {MAX_DRAFT_BYTES:,} kept"
        )
    return text
