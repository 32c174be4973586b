"""Personal access tokens: a person acting from a terminal as themselves.

Separation of duties holds at the command line too: unblinding is a statistician's own act,
opening, closing and amending a coordinator's, and the command line's operator (who holds the
database file) is no person. A statistician working in R or Python, or a scripted pipeline,
therefore presents a personal access token (``python -m study --token ...``), which makes the
caller that person (``via="token"``); every event of what they do records the person as the
actor and the token's id beside it (``study.audit.acting_via``).

A token reads ``clv_<id>_<secret>``: ``id`` (12 hexadecimal digits) is not secret and finds the
row; the secret is 256 bits from ``secrets``. Only the SHA-256 of the whole token is stored, so
the database never holds what would let anyone act as the person; the token is shown once, when
it is created. Each token has a name, an expiry (1 to ``MAX_DAYS`` days) and may be revoked; a
token works only while its person still holds a role. Creating and revoking are audited
(``token.create``, ``token.revoke``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from study import audit
from study.access import Caller, allowed, guarded, refuse, token_caller
from study.errors import ConflictError, NotFoundError, PermissionDenied, StudyError
from study.services.people import DEMO_ISSUER
from study.store import Cursor, Store, first, utc_now

TOKEN_PREFIX = "clv"
"""The first part of every token, so that a leaked one is recognisable (secret scanners)."""

DEFAULT_DAYS = 30
MAX_DAYS = 365
"""Longest a token may live: a forgotten token stops working within a year at most."""

MAX_NAME_CHARS = 80

DEMO_STUDY_ID = "demo-patient-questions"
"""``study.demo.DEMO_STUDY_ID``, repeated: study.demo imports the services, not the reverse.
``tests/test_tokens.py`` checks that the two agree."""

_ID_HEX = 12
_SHAPE = re.compile(rf"^{TOKEN_PREFIX}_([0-9a-f]{{{_ID_HEX}}})_([A-Za-z0-9_-]{{20,200}})$")

TOKEN_COLUMNS = (
    "id",
    "user_id",
    "name",
    "created_at",
    "expires_at",
    "last_used_at",
    "revoked_at",
    "status",
)
"""Columns of ``list_tokens``; ``status`` is ``active``, ``expired`` or ``revoked``."""


class TokenRefused(PermissionDenied):
    """A presented token does not make a caller: unknown, malformed, expired, revoked, or its
    person holds no role. The message never repeats the secret."""


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token just created: ``token`` is the only copy of the secret there will ever be."""

    id: str
    user_id: str
    name: str
    token: str
    expires_at: dt.datetime

    def __repr__(self) -> str:  # keep the secret out of logs and tracebacks
        return f"IssuedToken(id={self.id!r}, user_id={self.user_id!r}, name={self.name!r})"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _check_name(name: object) -> str:
    text = name.strip() if isinstance(name, str) else ""
    if not text:
        raise StudyError("Give the token a name that says where it is used (e.g. 'R on laptop').")
    if len(text) > MAX_NAME_CHARS or not text.isprintable():
        raise StudyError(
            f"A token's name is one line of at most {MAX_NAME_CHARS} printable characters."
        )
    return text


def _check_days(days: object) -> int:
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise StudyError(f"A token lives 1 to {MAX_DAYS} days; {days!r} is not that.")
    return days


def _insert(cur: Cursor, actor: str, user_id: str, name: str, days: int) -> IssuedToken:
    """Store a new token of ``user_id`` (its hash only) and its ``token.create`` event."""
    token_id = secrets.token_hex(_ID_HEX // 2)
    token = f"{TOKEN_PREFIX}_{token_id}_{secrets.token_urlsafe(32)}"
    now = utc_now()
    expires = now + dt.timedelta(days=days)
    cur.execute(
        "INSERT INTO personal_tokens (id, user_id, name, secret_hash, created_at, expires_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [token_id, user_id, name, _digest(token), now, expires],
    )
    audit.append(
        cur,
        actor=actor,
        kind=audit.TOKEN_CREATE,
        object_type="token",
        object_id=token_id,
        payload={
            "user": user_id,
            "name": name,
            "days": days,
            "expires_at": expires.isoformat(timespec="seconds"),
        },
    )
    return IssuedToken(token_id, user_id, name, token, expires)


@guarded
def create_token(
    store: Store, caller: Caller, *, name: str, days: int = DEFAULT_DAYS
) -> IssuedToken:
    """A new personal access token for the caller, named ``name``, valid for ``days`` days.

    Only a person signed in to the app makes one: a system actor is no person, and a token
    does not mint further tokens (whoever holds one could otherwise outlive its revocation).
    Returns the token once; only its hash is stored. Audited (``token.create``).
    """
    if caller.user_id is None or caller.via == "token":
        refuse(
            store,
            caller,
            "A personal access token is made by its person, signed in to the app (Account "
            "screen); not by the command line's operator, nor with another token.",
            study=None,
            service="tokens.create_token",
        )
    name, days = _check_name(name), _check_days(days)
    with store.transaction() as cur:
        return _insert(cur, caller.actor, caller.user_id, name, days)


def _owner_or_admin(store: Store, caller: Caller, user_id: str, service: str) -> None:
    """Refuse (audited) unless ``user_id`` is the caller or the caller manages people."""
    if user_id != caller.user_id and not allowed(store, caller, "manage_users"):
        refuse(
            store,
            caller,
            "You may see and revoke only your own personal access tokens.",
            study=None,
            service=service,
        )


@guarded
def list_tokens(store: Store, caller: Caller, *, user_id: str | None = None) -> pl.DataFrame:
    """The personal access tokens of ``user_id`` (default: the caller's own), newest first, with
    ``TOKEN_COLUMNS``; never a secret or its hash. Someone else's need the ``manage_users``
    permission (an administrator; the command line's operator); a system actor that names
    nobody sees everyone's."""
    if user_id is None and caller.user_id is not None:
        user_id = caller.user_id
    if user_id is not None:
        _owner_or_admin(store, caller, user_id, "tokens.list_tokens")
    return store.read(
        "SELECT id, user_id, name, created_at, expires_at, last_used_at, revoked_at,"
        " CASE WHEN revoked_at IS NOT NULL THEN 'revoked' WHEN expires_at <= $now THEN 'expired'"
        "  ELSE 'active' END AS status"
        " FROM personal_tokens WHERE $u IS NULL OR user_id = $u ORDER BY created_at DESC, id",
        {"u": user_id, "now": utc_now()},
    )


@guarded
def revoke_token(store: Store, caller: Caller, token_id: str) -> None:
    """Revoke the token ``token_id``: it stops working at once. The caller's own token, or
    anyone's for an administrator (``manage_users``). Audited (``token.revoke``)."""
    cur = store.cursor()
    try:
        row = first(
            cur.execute(
                "SELECT user_id, revoked_at FROM personal_tokens WHERE id = ?", [str(token_id)]
            ).fetchall()
        )
    finally:
        cur.close()
    if row is None:
        raise NotFoundError(f"There is no personal access token '{token_id}'.")
    owner, revoked = row
    _owner_or_admin(store, caller, owner, "tokens.revoke_token")
    if revoked is not None:
        raise ConflictError(f"The token '{token_id}' was revoked already ({revoked:%Y-%m-%d}).")
    with store.transaction() as cur:
        cur.execute(
            "UPDATE personal_tokens SET revoked_at = ?, revoked_by = ? WHERE id = ?",
            [utc_now(), caller.actor, token_id],
        )
        audit.append(
            cur,
            actor=caller.actor,
            kind=audit.TOKEN_REVOKE,
            object_type="token",
            object_id=token_id,
            payload={"user": owner},
        )


def caller_for_token(store: Store, presented: str) -> Caller:
    """The caller for the person whose personal access token ``presented`` is (``via="token"``).

    The sign-in step of the command line. Raises ``TokenRefused`` for a text that is no token,
    an unknown token (or a wrong secret), a revoked or expired one, or one whose person holds no
    role any more; the message names at most the token's id, never its secret. Records the
    token's last use, unless the database is open read-only.
    """
    shape = _SHAPE.match(presented.strip()) if isinstance(presented, str) else None
    if shape is None:
        raise TokenRefused(
            f"That is not a Clinval personal access token (one reads {TOKEN_PREFIX}_..., as the "
            "Account screen showed it when it was made)."
        )
    token_id = shape.group(1)
    cur = store.cursor()
    try:
        row = first(
            cur.execute(
                "SELECT t.user_id, t.name, t.secret_hash, t.expires_at, t.revoked_at,"
                " EXISTS (SELECT 1 FROM roles r WHERE r.user_id = t.user_id)"
                " FROM personal_tokens t WHERE t.id = ?",
                [token_id],
            ).fetchall()
        )
    finally:
        cur.close()
    # an unknown id and a wrong secret read alike: neither tells a guesser which ids exist
    if row is None or not hmac.compare_digest(row[2], _digest(presented.strip())):
        raise TokenRefused(
            "That personal access token is unknown to this database; check it was copied whole, "
            "or create one on the Account screen."
        )
    user_id, name, _, expires, revoked, has_role = row
    now = utc_now()
    if revoked is not None:
        raise TokenRefused(
            f"The personal access token {token_id} ('{name}') was revoked on {revoked:%Y-%m-%d}; "
            "create a new one on the Account screen."
        )
    if expires <= now:
        raise TokenRefused(
            f"The personal access token {token_id} ('{name}') expired on {expires:%Y-%m-%d}; "
            "create a new one on the Account screen."
        )
    if not has_role:
        raise TokenRefused(
            f"The person of the personal access token {token_id} holds no role any more; ask an "
            "administrator for access."
        )
    if not store.read_only:
        with store.transaction() as cur:
            cur.execute("UPDATE personal_tokens SET last_used_at = ? WHERE id = ?", [now, token_id])
    return token_caller(user_id, token_id)


@guarded
def issue_demo_tokens(
    store: Store,
    caller: Caller,
    *,
    write: Callable[[dict[str, str]], None],
    days: int = DEFAULT_DAYS,
) -> dict[str, str]:
    """A fresh token for each of the synthetic demo's people who holds a role, by e-mail.

    For trying the command line as those people (``python -m study demo --tokens FILE``): only
    a system actor (the operator) calls it, and only on a demo database, one holding the
    synthetic demo study; the demo's people (issuer ``demo``, never bound to a real sign-in)
    are public anyway, the demo picker lets anyone act as them. ``write`` receives the tokens
    inside the transaction that stores them: if it fails, no token is stored. Each token is
    audited (``token.create``, by the caller).
    """
    if not caller.is_system:
        refuse(
            store,
            caller,
            "Tokens for the demo's people are issued by the command line's operator only.",
            study=None,
            service="tokens.issue_demo_tokens",
        )
    days = _check_days(days)
    with store.transaction() as cur:
        demo = first(
            cur.execute("SELECT synthetic FROM studies WHERE id = ?", [DEMO_STUDY_ID]).fetchall()
        )
        if demo is None or not demo[0]:
            raise StudyError(
                f"This is not a demo database: it holds no synthetic demo study "
                f"'{DEMO_STUDY_ID}'. Tokens for the demo's people are issued only there "
                "(build one with `python -m study demo --db NEW_FILE`)."
            )
        people = cur.execute(
            "SELECT u.id, u.email FROM users u WHERE u.issuer = ? AND u.email IS NOT NULL"
            " AND NOT EXISTS (SELECT 1 FROM identities i WHERE i.user_id = u.id)"
            " AND EXISTS (SELECT 1 FROM roles r WHERE r.user_id = u.id) ORDER BY u.email",
            [DEMO_ISSUER],
        ).fetchall()
        issued = {
            email: _insert(cur, caller.actor, user_id, "demo", days).token
            for user_id, email in people
        }
        write(issued)
    return issued
