"""People and their roles: the sign-in step that makes a caller, people, grants and revocations.

A person is keyed by (issuer, subject), the identity their provider vouches for. Roles live in
the database (``rater``, ``coordinator`` and ``statistician`` per study, ``admin`` everywhere),
never in token claims. Granting needs the admin role, or, for the rater role in one study, that
study's coordinator; nobody grants themselves anything.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from study import audit
from study.access import (
    ROLES,
    Caller,
    guarded,
    is_system_id,
    person_caller,
    refuse,
    require,
    system_caller,
)
from study.errors import ConflictError, NotFoundError, Problem, ValidationError
from study.services._common import require_study
from study.store import Cursor, Store, first, utc_now

DEMO_ISSUER = "demo"
"""The issuer of the synthetic demo's people: the demo picker signs in only these."""


# --- the sign-in step ------------------------------------------------------------------------


def sign_in(
    store: Store,
    *,
    issuer: str,
    subject: str,
    email: str | None = None,
    display_name: str | None = None,
) -> Caller:
    """The caller for the identity (``issuer``, ``subject``) that a provider has vouched for.

    The sign-in step only: call it with claims from a verified ID token (or from the demo
    picker, through ``demo_sign_in``). A first sign-in records the person, with no role, as the
    system actor ``sign-in``; a person with no role can call no service.
    """
    cur = store.cursor()
    try:
        user_id = _user_by_identity(cur, issuer, subject)
    finally:
        cur.close()
    if user_id is None:  # a first sign-in: the only case that writes
        user_id = ensure_user(
            store,
            system_caller("sign-in"),
            issuer=issuer,
            subject=subject,
            email=email,
            display_name=display_name,
        )
    return person_caller(user_id, via="oidc")


def demo_sign_in(store: Store, user_id: str) -> Caller:
    """The caller for one of the synthetic demo's people, picked from a list (no real sign-in).

    Only people of the demo's issuer (``DEMO_ISSUER``) can be picked; anyone else is a
    ``NotFoundError``, so the picker cannot become anyone's identity.
    """
    cur = store.cursor()
    try:
        row = first(
            cur.execute(
                "SELECT id FROM users WHERE id = ? AND issuer = ?", [user_id, DEMO_ISSUER]
            ).fetchall()
        )
    finally:
        cur.close()
    if row is None:
        raise NotFoundError(f"There is no demo person '{user_id}'.")
    return person_caller(row[0], via="demo")


def demo_people(store: Store) -> pl.DataFrame:
    """The demo's people for the picker: id, display_name, and their roles (text), by id.

    Read by the sign-in step, before there is a caller: it lists only people of the demo's
    issuer, whose names and roles are synthetic and public.
    """
    return store.read(
        "SELECT u.id, coalesce(u.display_name, u.id) AS display_name,"
        " coalesce(string_agg(DISTINCT r.role, ', ' ORDER BY r.role), 'no role') AS roles"
        " FROM users u LEFT JOIN roles r ON r.user_id = u.id WHERE u.issuer = $i"
        " GROUP BY u.id, u.display_name ORDER BY u.id",
        {"i": DEMO_ISSUER},
    )


# --- people ----------------------------------------------------------------------------------


@guarded
def get_user(store: Store, caller: Caller, user_id: str) -> dict[str, Any]:
    """The person's row (id, issuer, subject, email, display_name, specialty, created_at)."""
    frame = store.read("SELECT * FROM users WHERE id = $id", {"id": user_id})
    if frame.height == 0:
        raise NotFoundError(f"There is no user '{user_id}'.")
    return frame.row(0, named=True)


@guarded
def find_user(store: Store, caller: Caller, issuer: str, subject: str) -> dict[str, Any] | None:
    """The person signed in as (issuer, subject), or None."""
    frame = store.read(
        "SELECT * FROM users WHERE issuer = $i AND subject = $s", {"i": issuer, "s": subject}
    )
    return frame.row(0, named=True) if frame.height else None


@guarded
def list_users(store: Store, caller: Caller) -> pl.DataFrame:
    """Every person, by id; columns of ``users``."""
    return store.read("SELECT * FROM users ORDER BY id")


@guarded
def ensure_user(
    store: Store,
    caller: Caller,
    *,
    issuer: str,
    subject: str,
    email: str | None = None,
    display_name: str | None = None,
    specialty: str | None = None,
    user_id: str | None = None,
    exists_ok: bool = True,
) -> str:
    """The id of the person (issuer, subject), created if needed (audited).

    ``user_id`` defaults to the e-mail address (lower case), else the subject (else
    ``subject@issuer`` when that is taken). With ``exists_ok=False`` a person who exists
    already is a ``ConflictError``.
    """
    if not issuer or not subject:
        raise ValidationError([Problem("user", None, "subject", "needs an issuer and a subject")])
    if user_id is not None and is_system_id(user_id):
        raise ValidationError(
            [Problem("user", None, "id", f"'{user_id}' would read as a system actor's name")]
        )
    with store.transaction() as cur:
        known = _user_by_identity(cur, issuer, subject)
        if known is not None and not exists_ok:
            raise ConflictError(f"A user signed in as {subject} at {issuer} exists already.")
        if known is not None:
            return known
        wanted = user_id or (email.strip().lower() if email else subject)
        taken = first(cur.execute("SELECT 1 FROM users WHERE id = ?", [wanted]).fetchall())
        if taken is not None or is_system_id(wanted):
            if user_id:
                raise ConflictError(f"User id '{user_id}' is taken.")
            wanted = f"{subject}@{issuer}"
        cur.execute(
            "INSERT INTO users (id, issuer, subject, email, display_name, specialty, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [wanted, issuer, subject, email, display_name, specialty, utc_now()],
        )
        audit.append(
            cur,
            actor=caller.actor,
            kind=audit.USER_ADD,
            object_type="user",
            object_id=wanted,
            payload={"issuer": issuer, "subject": subject, "email": email},
        )
    return wanted


def _user_by_identity(cur: Cursor, issuer: str, subject: str) -> str | None:
    row = first(
        cur.execute(
            "SELECT id FROM users WHERE issuer = ? AND subject = ?", [issuer, subject]
        ).fetchall()
    )
    return None if row is None else row[0]


# --- roles -----------------------------------------------------------------------------------


def _check_grant(
    store: Store, caller: Caller, study: str | None, user_id: str, role: str, service: str
) -> None:
    """The checks beyond the guard: a coordinator may only move the rater role of their own
    study; nobody changes their own roles upward."""
    if role not in ROLES:
        raise ValidationError(
            [Problem("role", None, "role", f"role must be one of {', '.join(ROLES)}; not {role!r}")]
        )
    if role != "rater" or study is None:
        require(store, caller, "manage_users", service=service)


@guarded
def grant_role(store: Store, caller: Caller, study: str | None, user_id: str, role: str) -> bool:
    """Give ``user_id`` the ``role`` in ``study`` (None: every study); False if already held.

    Needs the admin role, or, for ``rater`` in ``study``, that study's coordinator. Nobody
    grants themselves anything (``PermissionDenied``, audited).
    """
    _check_grant(store, caller, study, user_id, role, "people.grant_role")
    if caller.user_id is not None and caller.user_id == user_id:
        refuse(
            store,
            caller,
            "Nobody may grant themselves a role; ask an administrator.",
            study=study,
            service="people.grant_role",
        )
    with store.transaction() as cur:
        if not cur.execute("SELECT 1 FROM users WHERE id = ?", [user_id]).fetchall():
            raise NotFoundError(f"There is no user '{user_id}'.")
        if study is not None:
            require_study(cur, study)
        scope = study if study is not None else "*"
        held = first(
            cur.execute(
                "SELECT 1 FROM roles WHERE user_id = ? AND scope = ? AND role = ?",
                [user_id, scope, role],
            ).fetchall()
        )
        if held is not None:
            return False
        cur.execute(
            "INSERT INTO roles (user_id, study, scope, role, granted_at, granted_by)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [user_id, study, scope, role, utc_now(), caller.actor],
        )
        _audit_role(cur, caller, audit.ROLE_GRANT, user_id, role, study)
    return True


@guarded
def revoke_role(store: Store, caller: Caller, study: str | None, user_id: str, role: str) -> bool:
    """Take ``role`` in ``study`` (None: every study) from ``user_id``; False if not held.

    The same permissions as ``grant_role``; the revoked role stops working at once.
    """
    _check_grant(store, caller, study, user_id, role, "people.revoke_role")
    scope = study if study is not None else "*"
    with store.transaction() as cur:
        held = first(
            cur.execute(
                "SELECT 1 FROM roles WHERE user_id = ? AND scope = ? AND role = ?",
                [user_id, scope, role],
            ).fetchall()
        )
        if held is None:
            return False
        cur.execute(
            "DELETE FROM roles WHERE user_id = ? AND scope = ? AND role = ?",
            [user_id, scope, role],
        )
        _audit_role(cur, caller, audit.ROLE_REVOKE, user_id, role, study)
    return True


def _audit_role(
    cur: Cursor,
    caller: Caller,
    kind: audit.EventKind,
    user_id: str,
    role: str,
    study: str | None,
) -> None:
    audit.append(
        cur,
        actor=caller.actor,
        kind=kind,
        object_type="user",
        object_id=user_id,
        study=study,
        payload={"role": role, "study": study},
    )


@guarded
def user_roles(store: Store, caller: Caller, user_id: str) -> pl.DataFrame:
    """Roles of ``user_id``: columns study (null = every study), role."""
    return store.read(
        "SELECT study, role FROM roles WHERE user_id = $u ORDER BY scope, role", {"u": user_id}
    )
