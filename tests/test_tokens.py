"""Personal access tokens (study.services.tokens): stored as a hash, bounded in time, revocable,
audited, and acting as their person with the token named in every event."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest
from conftest import OPERATOR, sign_in

from study import audit, audit_verify
from study.demo import COORDINATOR, DEMO_STUDY_ID, STATISTICIAN
from study.errors import ConflictError, PermissionDenied, StudyError
from study.services import lifecycle, people, tokens
from study.store import Store


def events(store: Store, kind: audit.EventKind) -> list[dict]:
    frame = store.read(
        "SELECT actor, object_id, payload FROM audit_events WHERE action = $k ORDER BY seq",
        {"k": kind.name},
    )
    return [{**r, "payload": json.loads(r["payload"])} for r in frame.iter_rows(named=True)]


def everything_stored(store: Store) -> str:
    """Every row of the tokens table and the audit trail, as text: where a secret must not be."""
    rows = store.read("SELECT * FROM personal_tokens").rows()
    trail = store.read("SELECT * FROM audit_events").rows()
    return repr(rows) + repr(trail)


def test_a_token_is_stored_as_its_hash_and_acts_as_its_person(store: Store, rating: str) -> None:
    statistician = sign_in(store, "statistician")
    issued = tokens.create_token(store, statistician, name="R on laptop", days=30)
    assert issued.token.startswith(f"clv_{issued.id}_")
    assert len(issued.token.split("_", 2)[2]) >= 40  # 256 bits, URL-safe base64
    assert issued.token not in repr(issued)  # kept out of logs and tracebacks

    stored = everything_stored(store)
    assert issued.token not in stored and issued.token.split("_", 2)[2] not in stored
    digest = store.read(
        "SELECT secret_hash FROM personal_tokens WHERE id = $i", {"i": issued.id}
    ).item()
    assert digest == hashlib.sha256(issued.token.encode()).hexdigest()

    caller = tokens.caller_for_token(store, issued.token)
    assert (caller.user_id, caller.via, caller.token) == ("statistician", "token", issued.id)
    assert caller.actor == "statistician" and not caller.is_system
    (created,) = events(store, audit.TOKEN_CREATE)
    assert created["actor"] == "statistician" and created["object_id"] == issued.id
    assert created["payload"]["name"] == "R on laptop" and created["payload"]["days"] == 30
    assert audit_verify.verify(store).ok


def test_every_act_through_a_token_is_audited_as_the_person_with_the_token(
    store: Store, rating: str
) -> None:
    coordinator = sign_in(store, "coordinator")
    issued = tokens.create_token(store, coordinator, name="pipeline")
    through = tokens.caller_for_token(store, issued.token)
    lifecycle.close_rating(store, through, rating)
    with pytest.raises(PermissionDenied):  # a coordinator's token never unblinds
        lifecycle.unblind(store, through, rating)
    lifecycle.unblind(store, tokens.caller_for_token(store, _token(store, "statistician")), rating)

    (closed,) = events(store, audit.STUDY_CLOSED)
    assert closed["actor"] == "coordinator"
    assert closed["payload"][audit.VIA_TOKEN] == issued.id
    denied = events(store, audit.ACCESS_DENIED)[-1]
    assert denied["actor"] == "coordinator" and denied["payload"][audit.VIA_TOKEN] == issued.id
    (unblinded,) = events(store, audit.STUDY_UNBLINDED)
    assert unblinded["actor"] == "statistician" and audit.VIA_TOKEN in unblinded["payload"]
    # the same acts in the app name no token
    opened = events(store, audit.STUDY_RATING)
    assert opened and all(audit.VIA_TOKEN not in e["payload"] for e in opened)
    assert audit_verify.verify(store).ok


def _token(store: Store, user_id: str) -> str:
    return tokens.create_token(store, sign_in(store, user_id), name=f"{user_id}'s").token


def test_last_use_is_recorded(store: Store, rating: str) -> None:
    token = _token(store, "coordinator")
    assert store.read("SELECT last_used_at FROM personal_tokens").item() is None
    tokens.caller_for_token(store, token)
    (row,) = tokens.list_tokens(store, sign_in(store, "coordinator")).iter_rows(named=True)
    assert row["last_used_at"] is not None and row["status"] == "active"


@pytest.mark.parametrize("days", [0, -1, tokens.MAX_DAYS + 1, True, 2.5, "30", None])
def test_a_lifetime_outside_its_bounds_is_refused(store: Store, rating: str, days) -> None:
    with pytest.raises(StudyError, match=f"1 to {tokens.MAX_DAYS} days"):
        tokens.create_token(store, sign_in(store, "coordinator"), name="x", days=days)
    assert store.read("SELECT count(*) FROM personal_tokens").item() == 0


@pytest.mark.parametrize("name", ["", "   ", "a\nb", "x" * (tokens.MAX_NAME_CHARS + 1), None])
def test_a_token_needs_a_one_line_name(store: Store, rating: str, name) -> None:
    with pytest.raises(StudyError, match="name"):
        tokens.create_token(store, sign_in(store, "coordinator"), name=name)


def test_an_expired_token_is_refused(store: Store, rating: str, monkeypatch) -> None:
    issued = tokens.create_token(store, sign_in(store, "coordinator"), name="short", days=1)
    later = issued.expires_at + dt.timedelta(seconds=1)
    monkeypatch.setattr(tokens, "utc_now", lambda: later)
    with pytest.raises(tokens.TokenRefused, match="expired") as refused:
        tokens.caller_for_token(store, issued.token)
    assert issued.token.split("_", 2)[2] not in str(refused.value)
    (row,) = tokens.list_tokens(store, sign_in(store, "coordinator")).iter_rows(named=True)
    assert row["status"] == "expired"


def test_a_revoked_token_is_refused_at_once(store: Store, rating: str) -> None:
    coordinator = sign_in(store, "coordinator")
    issued = tokens.create_token(store, coordinator, name="laptop")
    tokens.revoke_token(store, coordinator, issued.id)
    with pytest.raises(tokens.TokenRefused, match="revoked"):
        tokens.caller_for_token(store, issued.token)
    with pytest.raises(ConflictError, match="revoked already"):
        tokens.revoke_token(store, coordinator, issued.id)
    (revoked,) = events(store, audit.TOKEN_REVOKE)
    assert revoked["actor"] == "coordinator" and revoked["object_id"] == issued.id
    assert revoked["payload"] == {"user": "coordinator"}
    assert audit_verify.verify(store).ok


def test_a_person_can_neither_revoke_nor_list_anothers_tokens_but_an_admin_can(
    store: Store, rating: str
) -> None:
    theirs = tokens.create_token(store, sign_in(store, "coordinator"), name="theirs")
    r1 = sign_in(store, "r1")
    with pytest.raises(PermissionDenied, match="only your own"):
        tokens.revoke_token(store, r1, theirs.id)
    with pytest.raises(PermissionDenied, match="only your own"):
        tokens.list_tokens(store, r1, user_id="coordinator")
    assert tokens.list_tokens(store, r1).is_empty()  # their own: none
    denied = events(store, audit.ACCESS_DENIED)
    assert [d["payload"]["service"] for d in denied] == [
        "tokens.revoke_token",
        "tokens.list_tokens",
    ]
    assert tokens.caller_for_token(store, theirs.token).user_id == "coordinator"  # still works

    boss_id = people.ensure_user(store, OPERATOR, issuer="https://idp.example", subject="boss")
    people.grant_role(store, OPERATOR, None, boss_id, "admin")
    boss = people.sign_in(store, issuer="https://idp.example", subject="boss")
    listed = tokens.list_tokens(store, boss, user_id="coordinator")
    assert listed["id"].to_list() == [theirs.id]
    assert "secret_hash" not in listed.columns
    tokens.revoke_token(store, boss, theirs.id)
    assert events(store, audit.TOKEN_REVOKE)[0]["actor"] == boss_id


def test_a_person_with_no_role_left_is_refused(store: Store, rating: str) -> None:
    token = _token(store, "r1")
    people.revoke_role(store, OPERATOR, rating, "r1", "rater")
    with pytest.raises(tokens.TokenRefused, match="holds no role"):
        tokens.caller_for_token(store, token)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # a wrong secret
        lambda t: "clv_000000000000_" + t.split("_", 2)[2],  # an unknown id
        lambda t: t.split("_", 2)[2],  # the secret alone
        lambda t: "",
        lambda t: "clv_" + "x" * 300,
    ],
    ids=["wrong secret", "unknown id", "no prefix", "empty", "too long"],
)
def test_a_wrong_token_is_refused_without_repeating_it(store: Store, rating: str, mangle) -> None:
    presented = mangle(_token(store, "coordinator"))
    with pytest.raises(tokens.TokenRefused) as refused:
        tokens.caller_for_token(store, presented)
    # the secret: what follows clv_<id>_, or all that was presented when it has no such shape
    parts = presented.split("_", 2)
    secret = parts[2] if len(parts) == 3 else presented
    assert not secret or secret not in str(refused.value)


def test_neither_the_operator_nor_a_token_makes_a_token(store: Store, rating: str) -> None:
    with pytest.raises(PermissionDenied, match="signed in to the app"):
        tokens.create_token(store, OPERATOR, name="ops")
    through = tokens.caller_for_token(store, _token(store, "coordinator"))
    with pytest.raises(PermissionDenied, match="signed in to the app"):
        tokens.create_token(store, through, name="another")
    assert store.read("SELECT count(*) FROM personal_tokens").item() == 1


def test_demo_tokens_only_on_a_demo_database_and_only_for_the_operator(
    store: Store, rating: str, demo: Store
) -> None:
    assert tokens.DEMO_STUDY_ID == DEMO_STUDY_ID  # repeated there, to keep imports one-way
    written: list[dict] = []
    # the `rating` study is synthetic too, but it is not the demo study
    with pytest.raises(StudyError, match="not a demo database"):
        tokens.issue_demo_tokens(store, OPERATOR, write=written.append)
    assert written == [] and store.read("SELECT count(*) FROM personal_tokens").item() == 0

    with pytest.raises(PermissionDenied):
        tokens.issue_demo_tokens(demo, sign_in(demo, "demo-coordinator"), write=written.append)
    issued = tokens.issue_demo_tokens(demo, OPERATOR, write=written.append)
    assert written == [issued]
    assert COORDINATOR["email"] in issued
    assert STATISTICIAN["email"] in issued
    assert tokens.caller_for_token(demo, issued[STATISTICIAN["email"]]).user_id == (
        "demo-statistician"
    )

    def fail(_: dict) -> None:
        raise OSError("disk full")

    before = demo.read("SELECT count(*) FROM personal_tokens").item()
    with pytest.raises(OSError):
        tokens.issue_demo_tokens(demo, OPERATOR, write=fail)
    assert demo.read("SELECT count(*) FROM personal_tokens").item() == before
