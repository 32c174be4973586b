"""People and their roles: the sign-in step that makes a caller, people, invitations, grants and
revocations.

A person is keyed by (issuer, subject), the identity their provider vouches for. Roles live in
the database (``rater``, ``coordinator`` and ``statistician`` per study, ``admin`` everywhere),
never in token claims. Granting needs the admin role, or, for the rater role in one study, that
study's coordinator; nobody grants themselves anything.

An invited person (``invite``: an e-mail address and a role, before they ever signed in) is
stored under an identity that no provider vouches for: issuer ``invited`` (or ``demo`` for the
synthetic demo's people, who are invited the same way), subject the e-mail address. The first
sign-in whose ID token carries that e-mail with ``email_verified`` true binds the provider's
(issuer, subject) to that person (table ``identities``, event ``user.bind``); from then on only
that identity is that person, and an unverified e-mail binds nobody.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from study import audit, audit_state
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
from study.services._common import column, require_study
from study.store import Cursor, Store, first, utc_now

DEMO_ISSUER = "demo"
"""The issuer of the synthetic demo's people: the demo picker signs in only these."""

INVITED_ISSUER = "invited"
"""The issuer of a person invited by e-mail who has not signed in yet (subject: the e-mail)."""

UNBOUND_ISSUERS = (INVITED_ISSUER, DEMO_ISSUER)
"""Issuers that no provider vouches for: a person stored under one binds to the first sign-in
that carries their e-mail, verified."""

MAX_EMAIL_CHARS = 254
"""Longest e-mail address accepted (RFC 5321's limit on a forward path, less its brackets)."""


# --- the sign-in step ------------------------------------------------------------------------


def sign_in(
    store: Store,
    *,
    issuer: str,
    subject: str,
    email: str | None = None,
    email_verified: bool = False,
    display_name: str | None = None,
) -> Caller:
    """The caller for the identity (``issuer``, ``subject``) that a provider has vouched for.

    The sign-in step only: call it with claims from a verified ID token (the app passes
    ``st.user``'s ``iss``, ``sub``, ``email``, ``email_verified`` and ``name``). In order:

    1. a person stored under that identity, or bound to it, is that person;
    2. else, with ``email_verified`` true, a person invited under that e-mail who has not bound
       an identity yet is bound to this one (``user.bind``, as the system actor ``sign-in``);
    3. else a new person is recorded (``user.add``), with no role: they can call no service.

    The e-mail is recorded only when verified: an unverified address is a claim anyone could
    make, and invitations are matched on recorded addresses. The first sign-in's time is kept
    (``first_sign_in``). Raises ``ValidationError`` for an identity without issuer or subject,
    ``ConflictError`` when two unbound people were invited under the verified e-mail.
    """
    if not _is_text(issuer) or not _is_text(subject):
        raise ValidationError(
            [Problem("sign-in", None, "identity", "the ID token carries no issuer or subject")]
        )
    verified = email if email_verified is True and _is_text(email) else None
    cur = store.cursor()
    try:
        user_id = _user_by_identity(cur, issuer, subject)
    finally:
        cur.close()
    if user_id is None and verified is not None:
        user_id = _bind_invited(store, issuer, subject, verified)
    if user_id is None:  # a first sign-in of someone nobody invited
        user_id = ensure_user(
            store,
            system_caller("sign-in"),
            issuer=issuer,
            subject=subject,
            email=verified,
            display_name=display_name if _is_text(display_name) else None,
        )
    _note_first_sign_in(store, user_id)
    return person_caller(user_id, via="oidc")


def _is_text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _bind_invited(store: Store, issuer: str, subject: str, email: str) -> str | None:
    """Bind (issuer, subject) to the one unbound person invited under ``email``; their id, or
    None when nobody was invited under it.

    Invited under it means: the person's row holds the address and so do their events (the
    ``user.add``, or the newest ``user.email``, ``audit_state.PEOPLE_SQL``). A row rewritten
    around the store to an attacker's address binds nobody; ``audit verify`` names it."""
    with store.transaction() as cur:
        # the address must be the one the person's events record, not just the one in their
        # row: someone who can write the file but not the audit chain must not be able to
        # rewrite an e-mail and then sign in at it as that person
        waiting = column(
            cur,
            f"WITH v AS ({audit_state.PEOPLE_SQL}) SELECT u.id FROM users u"
            " JOIN v ON v.id = u.id WHERE u.issuer IN (SELECT unnest($issuers))"
            " AND lower(trim(u.email)) = $address AND lower(trim(v.email)) = $address"
            " AND NOT EXISTS (SELECT 1 FROM identities i WHERE i.user_id = u.id) ORDER BY u.id",
            {
                "issuers": list(UNBOUND_ISSUERS),
                "address": email.strip().lower(),
                **audit_state.people_kinds(),
            },
        )
        if not waiting:
            return None
        if len(waiting) > 1:
            raise ConflictError(
                f"Several people were invited under {email} ({', '.join(waiting)}); an "
                "administrator must remove all but one before you can sign in."
            )
        user_id = waiting[0]
        cur.execute(
            "INSERT INTO identities (issuer, subject, user_id, email, bound_at)"
            " VALUES (?, ?, ?, ?, ?)",
            [issuer, subject, user_id, email, utc_now()],
        )
        audit.append(
            cur,
            actor=system_caller("sign-in").actor,
            kind=audit.USER_BIND,
            object_type="user",
            object_id=user_id,
            payload={"issuer": issuer, "subject": subject, "email": email},
        )
    return user_id


def _note_first_sign_in(store: Store, user_id: str) -> None:
    cur = store.cursor()
    try:
        signed_in = first(
            cur.execute("SELECT first_sign_in FROM users WHERE id = ?", [user_id]).fetchall()
        )
    finally:
        cur.close()
    if signed_in is not None and signed_in[0] is None:
        with store.transaction() as cur:
            cur.execute(
                "UPDATE users SET first_sign_in = ? WHERE id = ? AND first_sign_in IS NULL",
                [utc_now(), user_id],
            )


def demo_sign_in(store: Store, user_id: str) -> Caller:
    """The caller for one of the synthetic demo's people, picked from a list (no real sign-in).

    Only people of the demo's issuer (``DEMO_ISSUER``) can be picked, and only while no real
    sign-in has bound them (then only that identity is them); anyone else is a
    ``NotFoundError``, so the picker cannot become anyone's identity.
    """
    cur = store.cursor()
    try:
        row = first(
            cur.execute(
                "SELECT id FROM users u WHERE id = ? AND issuer = ?"
                " AND NOT EXISTS (SELECT 1 FROM identities i WHERE i.user_id = u.id)",
                [user_id, DEMO_ISSUER],
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
    issuer (not bound to a real sign-in), whose names and roles are synthetic and public.
    """
    return store.read(
        "SELECT u.id, coalesce(u.display_name, u.id) AS display_name,"
        " coalesce(string_agg(DISTINCT r.role, ', ' ORDER BY r.role), 'no role') AS roles"
        " FROM users u LEFT JOIN roles r ON r.user_id = u.id WHERE u.issuer = $i"
        " AND NOT EXISTS (SELECT 1 FROM identities i WHERE i.user_id = u.id)"
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
    if user_id is not None and not user_id.isprintable():
        # a control character (an ANSI escape, a bell) would act on every terminal that lists
        # the person, and an invisible one would make the id read as another's
        raise ValidationError(
            [Problem("user", None, "id", f"{user_id!r} holds control or invisible characters")]
        )
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
        # stored, but no event vouches for it: a row rewritten around the store; refused
        # rather than guessed at (verify names the row)
        unvouched = first(
            cur.execute(
                "SELECT id FROM users WHERE issuer = ? AND subject = ?", [issuer, subject]
            ).fetchall()
        )
        if unvouched is not None:
            raise ConflictError(
                f"The identity {subject} at {issuer} is stored for {unvouched[0]}, but no audit "
                "event records it: the database was altered. An administrator must run "
                "`python -m study audit verify`."
            )
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
            # name and specialty too: audit verify holds the person's row to all of it
            payload={
                "issuer": issuer,
                "subject": subject,
                "email": email,
                "display_name": display_name,
                "specialty": specialty,
            },
        )
    return wanted


def _user_by_identity(cur: Cursor, issuer: str, subject: str) -> str | None:
    """The person stored under (issuer, subject), or bound to it, or None.

    Only where the audit chain vouches for it: the person's ``user.add`` event recorded that
    identity, or a ``user.bind`` event bound it to them. A row rewritten around the store (a
    person's subject set to an attacker's, an identity row inserted) makes nobody that person;
    ``audit verify`` names the row. Runs once per session, so the events' scan is affordable."""
    row = first(
        cur.execute(
            "SELECT u.id FROM users u WHERE u.issuer = $issuer AND u.subject = $subject"
            " AND EXISTS (SELECT 1 FROM audit_events e WHERE e.action = $add"
            "  AND e.object_id = u.id AND json_extract_string(e.payload, '$.issuer') = $issuer"
            "  AND json_extract_string(e.payload, '$.subject') = $subject)"
            " UNION ALL SELECT i.user_id FROM identities i WHERE i.issuer = $issuer"
            " AND i.subject = $subject AND EXISTS (SELECT 1 FROM audit_events e"
            "  WHERE e.action = $bind AND e.object_id = i.user_id"
            "  AND json_extract_string(e.payload, '$.issuer') = $issuer"
            "  AND json_extract_string(e.payload, '$.subject') = $subject)",
            {
                "issuer": issuer,
                "subject": subject,
                "add": audit.USER_ADD.name,
                "bind": audit.USER_BIND.name,
            },
        ).fetchall()
    )
    return None if row is None else row[0]


# --- invitations -----------------------------------------------------------------------------


@guarded
def invite(
    store: Store,
    caller: Caller,
    study: str | None,
    email: str,
    role: str,
    *,
    display_name: str | None = None,
) -> dict[str, Any]:
    """Give the person with ``email`` the ``role`` in ``study`` (None: every study), recording
    them first if nobody has that address (audited: ``user.add``, then ``role.grant``).

    The new person is stored under the ``invited`` issuer with the e-mail as subject (and as id)
    until their first sign-in with that e-mail verified binds them (see ``sign_in``). Someone
    already recorded with that address (case and edge spaces ignored) gets the role instead: no
    second person. The same permissions as ``grant_role``: an admin, or a study's coordinator
    for the rater role there. Returns ``{"user_id", "created", "granted"}`` (``granted`` False
    when the role was held already). ``ValidationError`` for an address that is not one,
    ``ConflictError`` when several people share it.
    """
    _check_grant(store, caller, study, "", role, "people.invite")
    address = _checked_email(email)
    name = display_name.strip() if display_name and display_name.strip() else None
    with store.transaction() as cur:
        if study is not None:
            require_study(cur, study)
        holders = column(
            cur,
            "SELECT id FROM users WHERE lower(trim(email)) = ? ORDER BY id",
            [address],
        )
        if len(holders) > 1:
            raise ConflictError(
                f"Several people have the address {address} ({', '.join(holders)}); grant the "
                "role to one of them by id."
            )
        created = not holders
        if created:
            if first(cur.execute("SELECT 1 FROM users WHERE id = ?", [address]).fetchall()):
                raise ConflictError(
                    f"User id '{address}' is taken by someone with another address."
                )
            cur.execute(
                "INSERT INTO users (id, issuer, subject, email, display_name, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [address, INVITED_ISSUER, address, address, name, utc_now()],
            )
            audit.append(
                cur,
                actor=caller.actor,
                kind=audit.USER_ADD,
                object_type="user",
                object_id=address,
                payload={
                    "issuer": INVITED_ISSUER,
                    "subject": address,
                    "email": address,
                    "display_name": name,
                    "specialty": None,
                },
            )
        user_id = address if created else holders[0]
    granted = grant_role(store, caller, study, user_id, role)
    return {"user_id": user_id, "created": created, "granted": granted}


@guarded
def change_email(store: Store, caller: Caller, user_id: str, email: str) -> bool:
    """Give the person ``user_id`` the e-mail address ``email`` (trimmed, lower case); an
    administrator's act, audited as ``user.email`` with the new and the previous address.

    Returns False when the person had that address already (nothing is written). An invited
    person not bound yet then binds at their first sign-in with the new address verified, and
    no longer with the old one. ``NotFoundError`` for an unknown person, ``ValidationError`` for
    an address that is not one, ``ConflictError`` when someone else has it.
    """
    address = _checked_email(email)
    with store.transaction() as cur:
        row = first(cur.execute("SELECT email FROM users WHERE id = ?", [user_id]).fetchall())
        if row is None:
            raise NotFoundError(f"There is no person '{user_id}'.")
        if row[0] == address:
            return False
        other = column(
            cur,
            "SELECT id FROM users WHERE lower(trim(email)) = ? AND id <> ? ORDER BY id",
            [address, user_id],
        )
        if other:
            raise ConflictError(f"{address} is the address of {', '.join(other)} already.")
        cur.execute("UPDATE users SET email = ? WHERE id = ?", [address, user_id])
        audit.append(
            cur,
            actor=caller.actor,
            kind=audit.USER_EMAIL,
            object_type="user",
            object_id=user_id,
            payload={"email": address, "previous": row[0]},
        )
    return True


def _checked_email(email: str) -> str:
    """``email`` trimmed and in lower case; ``ValidationError`` unless it reads as one address
    (one ``@`` with text on both sides, a dot in the domain, no spaces or control characters)."""
    address = email.strip().lower() if isinstance(email, str) else ""
    local, _, domain = address.partition("@")
    if (
        not local
        or "@" in domain
        or "." not in domain.strip(".")
        or len(address) > MAX_EMAIL_CHARS
        or any(c.isspace() or not c.isprintable() for c in address)
    ):
        shown = repr(email)[:80]
        raise ValidationError(
            [Problem("user", None, "email", f"{shown} is not an e-mail address (name@domain)")]
        )
    return address


@guarded
def list_people(store: Store, caller: Caller) -> pl.DataFrame:
    """Every person with their roles and whether they have signed in, by id.

    Columns: id, display_name, email, roles (text: "admin" for a role in every study,
    "rater in S" for one study, "; "-separated, "" for none), signed_in (bool), first_sign_in
    (UTC, null before), waiting (bool: invited, or one of the demo's people, and not yet bound
    to a sign-in).
    """
    return store.read(
        "SELECT u.id, u.display_name, u.email,"
        " coalesce(string_agg(CASE WHEN r.study IS NULL THEN r.role"
        "  ELSE r.role || ' in ' || r.study END, '; ' ORDER BY r.scope, r.role), '') AS roles,"
        " u.first_sign_in IS NOT NULL AS signed_in, u.first_sign_in,"
        " (u.issuer IN (SELECT unnest($unbound)) AND NOT EXISTS"
        "  (SELECT 1 FROM identities i WHERE i.user_id = u.id)) AS waiting"
        " FROM users u LEFT JOIN roles r ON r.user_id = u.id"
        " GROUP BY u.id, u.display_name, u.email, u.first_sign_in, u.issuer ORDER BY u.id",
        {"unbound": list(UNBOUND_ISSUERS)},
    )


@guarded
def study_raters(store: Store, caller: Caller, study: str) -> pl.DataFrame:
    """The people holding the rater role in ``study`` itself (not those who rate every study),
    by id: id, display_name, email, specialty, waiting (bool: invited, or one of the demo's
    people, not yet bound to a sign-in, and with nothing rated in the study: a demo rater
    picked from the demo's list has rated without a sign-in of their own and is not waiting).
    Who a design assigns (``design.make_assignments`` without ``raters``)."""
    return store.read(
        "SELECT u.id, u.display_name, u.email, u.specialty,"
        " (u.issuer IN (SELECT unnest($unbound)) AND u.first_sign_in IS NULL AND NOT EXISTS"
        "  (SELECT 1 FROM identities i WHERE i.user_id = u.id) AND NOT EXISTS"
        "  (SELECT 1 FROM assignments a WHERE a.rater = u.id AND a.study = $s AND a.done))"
        " AS waiting"
        " FROM users u WHERE EXISTS (SELECT 1 FROM roles r WHERE r.user_id = u.id"
        "  AND r.study = $s AND r.role = 'rater') ORDER BY u.id",
        {"s": study, "unbound": list(UNBOUND_ISSUERS)},
    )


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
