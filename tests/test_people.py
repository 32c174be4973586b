"""People and roles (``study.services.people``, with ``study.access``'s checks): people keyed by
issuer and subject, roles per study or global, revocation that holds at once."""

from __future__ import annotations

import pytest
from conftest import OPERATOR, sign_in

from study import access, audit, audit_verify
from study.errors import ConflictError, NotFoundError, PermissionDenied, ValidationError
from study.services import people, studies


def test_users_are_keyed_by_issuer_and_subject(store):
    uid = people.ensure_user(store, OPERATOR, issuer="iss", subject="abc", email="A@B.org")
    assert uid == "a@b.org"
    assert people.ensure_user(store, OPERATOR, issuer="iss", subject="abc") == uid
    assert people.find_user(store, OPERATOR, "iss", "abc")["id"] == uid
    # another issuer with the same e-mail gets a different id
    other = people.ensure_user(store, OPERATOR, issuer="iss2", subject="abc", email="a@b.org")
    assert other != uid
    with pytest.raises(ConflictError):
        people.ensure_user(store, OPERATOR, issuer="iss", subject="abc", exists_ok=False)


@pytest.mark.parametrize("user_id", ["r\x07x", "\x1b[31mr7", "r\u202e7", "r\u200b7"])
def test_a_user_id_with_control_or_invisible_characters_is_refused(store, user_id):
    # issue 19: add-raters stored an id with a bell in it; the service refuses it for every caller
    before = audit_verify.verify(store).events
    with pytest.raises(ValidationError, match="control or invisible characters"):
        people.ensure_user(store, OPERATOR, issuer="iss", subject="s", user_id=user_id)
    assert store.read("SELECT * FROM users").is_empty()
    assert audit_verify.verify(store).events == before


@pytest.mark.parametrize(
    ("grant_study", "ask_study", "action", "expected"),
    [
        ("s", "s", "rate", True),
        ("s", "other", "rate", False),
        (None, "other", "rate", True),  # a global role holds in every study
        ("s", "s", "export", False),
    ],
)
def test_roles_per_study_or_global(store, grant_study, ask_study, action, expected):
    for study_id in ("s", "other"):
        studies.create_study(store, OPERATOR, study_id, study_id=study_id)
    uid = people.ensure_user(store, OPERATOR, issuer="i", subject="u", user_id="u")
    assert people.grant_role(store, OPERATOR, grant_study, uid, "rater")
    assert not people.grant_role(store, OPERATOR, grant_study, uid, "rater")
    assert access.allowed(store, sign_in(store, uid), action, study=ask_study) is expected


def test_admin_may_manage_but_not_rate_and_revocation_works(store):
    uid = people.ensure_user(store, OPERATOR, issuer="i", subject="a", user_id="adm")
    people.grant_role(store, OPERATOR, None, uid, "admin")
    admin = sign_in(store, uid)
    assert access.allowed(store, admin, "manage_users")
    assert not access.allowed(store, admin, "rate")
    assert people.revoke_role(store, OPERATOR, None, uid, "admin")
    with pytest.raises(PermissionDenied):
        access.require(store, admin, "manage_users")
    with pytest.raises(ValidationError):
        people.grant_role(store, OPERATOR, None, uid, "superuser")


def test_studies_for_lists_where_a_user_holds_a_role(store):
    for study_id in ("a", "b"):
        studies.create_study(store, OPERATOR, study_id, study_id=study_id)
    uid = people.ensure_user(store, OPERATOR, issuer="i", subject="u", user_id="u")
    people.grant_role(store, OPERATOR, "b", uid, "rater")
    assert access.studies_for(store, uid, "rater") == ["b"]
    people.grant_role(store, OPERATOR, None, uid, "rater")
    assert access.studies_for(store, uid, "rater") == ["a", "b"]
    assert access.roles_of(store, uid, study="a") == {"rater"}


def test_a_first_sign_in_records_a_person_with_no_role_and_a_second_writes_nothing(store):
    caller = people.sign_in(
        store, issuer="https://login.example", subject="s-1", email="E@x.org", email_verified=True
    )
    assert (caller.user_id, caller.via, caller.is_system) == ("e@x.org", "oidc", False)
    events = audit.events(store)
    assert events.select("action", "actor").rows() == [("user.add", "system:sign-in")]
    assert access.roles_of(store, "e@x.org") == set()
    again = people.sign_in(store, issuer="https://login.example", subject="s-1")
    assert again == caller
    assert audit.events(store).height == 1
    # the same e-mail at another issuer is another person
    other = people.sign_in(
        store, issuer="https://evil.example", subject="s-1", email="e@x.org", email_verified=True
    )
    assert other.user_id != caller.user_id


def test_the_demo_picker_signs_in_only_the_demos_people(store):
    people.ensure_user(store, OPERATOR, issuer=people.DEMO_ISSUER, subject="d", user_id="d")
    people.ensure_user(store, OPERATOR, issuer="https://idp", subject="real", user_id="real")
    assert people.demo_sign_in(store, "d").via == "demo"
    with pytest.raises(NotFoundError, match="no demo person"):
        people.demo_sign_in(store, "real")
    assert people.demo_people(store).get_column("id").to_list() == ["d"]
