"""The assignment seed's seal: drawn for a draft, sealed at the lock (or with the first stored
design), opened only by the services that make a design and, after unblinding, shown.

The design's services (``study.services.design``) check the caller; these functions do the work.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from study import audit, keyfile
from study.errors import NotFoundError, Problem, StateError, ValidationError
from study.services._common import require_study, sealed_seed
from study.store import Cursor, Store, first

MAX_SEED = 2**63 - 1
"""Largest assignment seed (the schema's BIGINT)."""


def draw_seed() -> int:
    """A fresh assignment seed for a draft's dry run (``keyfile.new_seed``: the operating
    system's random source), in 0..``MAX_SEED``."""
    return keyfile.new_seed()


def refuse_public_seed(protocol: Mapping[str, Any]) -> None:
    """Refuse a protocol that carries a seed in its content: it would be shown to everyone who
    reads the protocol, and with it the allocation could be replayed before unblinding."""

    def holds_seed(value: Any) -> bool:
        if isinstance(value, Mapping):
            return any(k == "seed" or holds_seed(v) for k, v in value.items())
        if isinstance(value, list | tuple):
            return any(holds_seed(v) for v in value)
        return False

    if holds_seed(protocol):
        raise ValidationError(
            [
                Problem(
                    "protocol",
                    None,
                    "seed",
                    "the assignment seed must not be in the protocol's content (everyone who "
                    "reads the protocol would see it); pass it as the lock's seed, which seals "
                    "it until unblinding",
                )
            ]
        )


def new_seal(store: Store, seed: int) -> dict[str, str]:
    """Salt, sealed seed and commitment for ``seed`` under the store's audit key."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ValidationError(
            [Problem("protocol", None, "seed", f"must be a whole number in 0..{MAX_SEED}")]
        )
    key = store.audit_key
    if key is None:
        raise audit.AuditKeyError(
            "The assignment seed cannot be sealed: this installation has no audit key "
            "(setting CLINVAL_AUDIT_KEY_FILE)."
        )
    salt = keyfile.new_salt()
    return {
        "salt": salt,
        "sealed": keyfile.seal_seed(key, seed, salt),
        "commitment": keyfile.commitment(seed, salt),
    }


def store_seal(cur: Cursor, study: str, seal: Mapping[str, str]) -> None:
    """Keep ``seal`` (``new_seal``'s) as the study's one sealed seed; a second is refused."""
    if first(cur.execute("SELECT 1 FROM sealed_seeds WHERE study = ?", [study]).fetchall()):
        raise StateError(f"Study '{study}' sealed its assignment seed already; it cannot change.")
    cur.execute(
        "INSERT INTO sealed_seeds (study, salt, sealed, commitment) VALUES (?, ?, ?, ?)",
        [study, seal["salt"], seal["sealed"], seal["commitment"]],
    )


def assignment_seed(store: Store, study: str) -> int:
    """The study's assignment seed once it is unblinded (``design.assignment_seed``)."""
    cur = store.cursor()
    try:
        status = require_study(cur, study)["status"]
        if status != "unblinded":
            raise StateError(
                f"Study '{study}' is {status}: its assignment seed is sealed until unblinding."
            )
        seed = sealed_seed(store, cur, study)
    finally:
        cur.close()
    if seed is None:
        raise NotFoundError(f"Study '{study}' sealed no assignment seed.")
    return seed


def seed_is_sealed(store: Store, study: str) -> bool:
    """Whether the study sealed an assignment seed (``design.seed_is_sealed``)."""
    cur = store.cursor()
    try:
        return bool(cur.execute("SELECT 1 FROM sealed_seeds WHERE study = ?", [study]).fetchall())
    finally:
        cur.close()


def seed_for(store: Store, study: str, seed: int | None) -> int:
    """``seed``, or the one sealed at the lock when None."""
    if seed is not None:
        return seed
    cur = store.cursor()
    try:
        sealed = sealed_seed(store, cur, study)
    finally:
        cur.close()
    if sealed is None:
        raise StateError(f"Study '{study}' sealed no assignment seed; give the design's seed.")
    return sealed
