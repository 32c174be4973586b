"""A study's lifecycle after the lock: open rating, close it, unblind it.

``locked`` -> ``rating`` (``start_rating``) -> ``closed`` (``close_rating``) -> ``unblinded``
(``unblind``). Each step is one audited transition; unblinding is a statistician's own act.
"""

from __future__ import annotations

from typing import Any

from study import audit
from study.access import Caller, guarded
from study.errors import StateError
from study.services._common import require_study, revealed_seed
from study.store import Store

_EVENT = {
    "rating": audit.STUDY_RATING,
    "closed": audit.STUDY_CLOSED,
    "unblinded": audit.STUDY_UNBLINDED,
}


def _transition(store: Store, caller: Caller, study: str, source: str, target: str) -> None:
    with store.transaction() as cur:
        require_study(cur, study, (source,))
        if target == "rating":
            n = cur.execute("SELECT count(*) FROM assignments WHERE study = ?", [study]).fetchall()[
                0
            ][0]
            if n == 0:
                raise StateError(f"Study '{study}' has no assignments; persist them first.")
        cur.execute("UPDATE studies SET status = ? WHERE id = ?", [target, study])
        payload: dict[str, Any] = {"from": source, "to": target}
        if target == "unblinded":
            # the seed sealed at the lock is revealed by this step, and only by it
            payload.update(revealed_seed(store, cur, study) or {})
        audit.append(
            cur,
            actor=caller.actor,
            kind=_EVENT[target],
            object_type="study",
            object_id=study,
            study=study,
            payload=payload,
        )


@guarded
def start_rating(store: Store, caller: Caller, study: str) -> None:
    """``locked`` -> ``rating``: raters may now submit (needs assignments)."""
    _transition(store, caller, study, "locked", "rating")


@guarded
def close_rating(store: Store, caller: Caller, study: str) -> None:
    """``rating`` -> ``closed``: no more ratings are accepted."""
    _transition(store, caller, study, "rating", "closed")


@guarded
def unblind(store: Store, caller: Caller, study: str) -> None:
    """``closed`` -> ``unblinded``: arm-level results become readable (a statistician's act),
    and the assignment seed sealed at the lock is revealed in the unblinding event."""
    _transition(store, caller, study, "closed", "unblinded")
