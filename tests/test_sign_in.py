"""The sign-in step and invitations (``study.services.people``), and a rater's isolation at the
service layer: whatever ids a rater passes, they read and write only their own rows."""

from __future__ import annotations

import pytest
from conftest import OPERATOR, RATERS, full_values, sign_in

from study import access, audit, audit_verify
from study.errors import (
    ConflictError,
    NotFoundError,
    PermissionDenied,
    StudyError,
    ValidationError,
)
from study.services import people, studies
from study.services import rating as rates

IDP = "https://login.hospital.example"


def verified(store, subject: str, email: str, *, issuer: str = IDP):
    return people.sign_in(store, issuer=issuer, subject=subject, email=email, email_verified=True)


def events(store, kind: str) -> list[tuple]:
    return store.read(
        "SELECT actor, object_id FROM audit_events WHERE action = $k ORDER BY seq",
        {"k": kind},
    ).rows()


# --- invitations and binding -----------------------------------------------------------------


def test_an_invited_person_binds_to_the_first_verified_sign_in_with_their_address(store):
    study = studies.create_study(store, OPERATOR, "Trial", study_id="trial")
    made = people.invite(store, OPERATOR, study, " Ana.Rater@Hospital.example ", "rater")
    assert made == {"user_id": "ana.rater@hospital.example", "created": True, "granted": True}
    listed = people.list_people(store, OPERATOR).row(0, named=True)
    assert (listed["roles"], listed["signed_in"], listed["waiting"]) == (
        "rater in trial",
        False,
        True,
    )

    caller = verified(store, "sub-ana", "ANA.RATER@hospital.example")
    assert caller.user_id == "ana.rater@hospital.example"
    assert access.roles_of(store, caller.user_id, study=study) == {"rater"}
    assert events(store, "user.bind") == [("system:sign-in", "ana.rater@hospital.example")]
    listed = people.list_people(store, OPERATOR).row(0, named=True)
    assert (listed["signed_in"], listed["waiting"]) == (True, False)
    assert listed["first_sign_in"] is not None

    # from then on only that identity is that person
    again = verified(store, "sub-ana", "ana.rater@hospital.example")
    assert again == caller
    someone_else = verified(store, "sub-mallory", "ana.rater@hospital.example")
    assert someone_else.user_id != caller.user_id
    assert access.roles_of(store, someone_else.user_id) == set()
    other_idp = verified(store, "sub-ana", "ana.rater@hospital.example", issuer="https://evil")
    assert other_idp.user_id not in {caller.user_id, someone_else.user_id}
    assert len(events(store, "user.bind")) == 1


def test_an_unverified_address_binds_nobody_and_is_not_recorded(store):
    people.invite(store, OPERATOR, None, "boss@hospital.example", "admin")
    caller = people.sign_in(
        store, issuer=IDP, subject="sub-x", email="boss@hospital.example", email_verified=False
    )
    assert caller.user_id == "sub-x"
    assert access.roles_anywhere(store, caller) == set()
    row = people.get_user(store, OPERATOR, "sub-x")
    assert row["email"] is None
    # a claim that is not exactly True (a string "true", a missing claim) is no verification
    text_true = people.sign_in(
        store, issuer=IDP, subject="sub-y", email="boss@hospital.example", email_verified="true"
    )
    assert access.roles_anywhere(store, text_true) == set()
    assert events(store, "user.bind") == []
    # the invited admin is still waiting for their own verified sign-in
    assert verified(store, "sub-boss", "boss@hospital.example").user_id == "boss@hospital.example"


def test_the_demos_people_bind_like_invited_people_and_leave_the_picker(store):
    people.ensure_user(
        store,
        OPERATOR,
        issuer=people.DEMO_ISSUER,
        subject="demo-rater-01",
        user_id="demo-rater-01",
        email="ada.example@demo.clinval.example",
    )
    assert people.demo_people(store).get_column("id").to_list() == ["demo-rater-01"]
    caller = verified(store, "ada-at-idp", "ada.example@demo.clinval.example")
    assert caller.user_id == "demo-rater-01"
    assert people.demo_people(store).height == 0
    with pytest.raises(NotFoundError):
        people.demo_sign_in(store, "demo-rater-01")


def test_inviting_an_address_already_recorded_grants_the_role_to_that_person(store):
    study = studies.create_study(store, OPERATOR, "Trial", study_id="trial")
    first = verified(store, "sub-1", "Dr.B@hospital.example")  # signed in before being invited
    made = people.invite(store, OPERATOR, study, "dr.b@HOSPITAL.example", "rater")
    assert made == {"user_id": first.user_id, "created": False, "granted": True}
    again = people.invite(store, OPERATOR, study, "dr.b@hospital.example", "rater")
    assert again["granted"] is False
    assert people.list_users(store, OPERATOR).height == 1


@pytest.mark.parametrize(
    "email",
    [
        "",
        "   ",
        "no-at-sign",
        "two@@example.org",
        "a@b",
        "@example.org",
        "a b@example.org",
        "a@exa\u200bmple.org",
        "x" * 250 + "@example.org",
    ],  # fmt: skip
)
def test_an_address_that_is_none_is_refused_and_nothing_is_stored(store, email):
    before = audit.events(store).height
    with pytest.raises(ValidationError, match="is not an e-mail address"):
        people.invite(store, OPERATOR, None, email, "admin")
    assert people.list_users(store, OPERATOR).height == 0
    assert audit.events(store).height == before


def test_a_coordinator_invites_raters_of_their_own_study_only(store):
    trial = studies.create_study(store, OPERATOR, "Trial", study_id="trial")
    other = studies.create_study(store, OPERATOR, "Other", study_id="other")
    people.invite(store, OPERATOR, trial, "coord@hospital.example", "coordinator")
    coordinator = verified(store, "sub-c", "coord@hospital.example")
    made = people.invite(store, coordinator, trial, "new.rater@hospital.example", "rater")
    assert made["created"] and made["granted"]
    for study, role in ((trial, "statistician"), (other, "rater"), (None, "rater")):
        with pytest.raises(PermissionDenied):
            people.invite(store, coordinator, study, "x@hospital.example", role)
    assert "x@hospital.example" not in people.list_users(store, OPERATOR)["id"].to_list()
    with pytest.raises(PermissionDenied):  # nobody grants themselves anything
        people.invite(store, coordinator, trial, "coord@hospital.example", "rater")
    with pytest.raises(NotFoundError):
        people.invite(store, OPERATOR, "no-such-study", "y@hospital.example", "rater")


def test_two_unbound_people_under_one_address_refuse_the_sign_in(store):
    for issuer, uid in ((people.DEMO_ISSUER, "demo-x"), (people.INVITED_ISSUER, "inv-x")):
        people.ensure_user(
            store, OPERATOR, issuer=issuer, subject=uid, user_id=uid, email="same@example.org"
        )
    with pytest.raises(ConflictError, match="Several people were invited"):
        verified(store, "sub-s", "same@example.org")
    assert people.list_users(store, OPERATOR).height == 2


@pytest.mark.parametrize(("issuer", "subject"), [("", "s"), (IDP, ""), (None, "s"), (IDP, "  ")])
def test_an_identity_without_issuer_or_subject_signs_in_nobody(store, issuer, subject):
    with pytest.raises(ValidationError, match="no issuer or subject"):
        people.sign_in(store, issuer=issuer, subject=subject)
    assert people.list_users(store, OPERATOR).height == 0


# --- isolation: a rater's calls, whatever ids they pass ----------------------------------------


def _others(store, study: str, rater: str) -> list[int]:
    return store.read(
        "SELECT id FROM assignments WHERE study = $s AND rater <> $r ORDER BY id",
        {"s": study, "r": rater},
    )["id"].to_list()


def _state(store) -> tuple:
    return tuple(
        store.read(f"SELECT count(*) FROM {table}").item()  # noqa: S608 (fixed table names)
        for table in ("ratings", "case_flags", "assignments")
    ) + (store.read("SELECT count(*) FROM assignments WHERE done").item(),)


def test_a_rater_cannot_read_or_write_another_raters_rows_whatever_ids_they_pass(store, rating):
    other_study = studies.create_study(store, OPERATOR, "Elsewhere", study_id="elsewhere")
    people.grant_role(store, OPERATOR, other_study, "r1", "rater")
    r1 = sign_in(store, "r1")
    theirs = _others(store, rating, "r1")
    assert theirs, "the fixture gives other raters assignments"
    before, denied_before = _state(store), len(events(store, "access.denied"))
    for assignment in theirs:
        for study in (rating, other_study):
            calls = (
                lambda a=assignment, s=study: rating_view(store, r1, s, a),
                lambda a=assignment, s=study: rates.submit_rating(store, r1, s, a, full_values()),
                lambda a=assignment, s=study: rates.submit_rating(
                    store, r1, s, a, full_values(), revise=True
                ),
                lambda a=assignment, s=study: rates.flag_case(store, r1, s, a, "looks wrong"),
                lambda a=assignment, s=study: rates.skip_case(store, r1, s, a, "not mine"),
            )
            for call in calls:
                with pytest.raises((PermissionDenied, NotFoundError, StudyError)):
                    call()
    for rater in set(RATERS) - {"r1"}:
        with pytest.raises(PermissionDenied):
            rates.rater_queue(store, r1, rating, rater=rater)
    assert _state(store) == before
    # every refusal that got past "no such assignment" is in the audit trail
    assert len(events(store, "access.denied")) > denied_before
    # and what r1 reads is theirs alone
    own = rates.rater_queue(store, r1, rating)["assignment"].to_list()
    assert set(own).isdisjoint(theirs)
    assert rates.next_assignment(store, r1, rating)["assignment"] in own


def rating_view(store, caller, study, assignment):
    return rates.assignment_view(store, caller, study, assignment)


@pytest.mark.parametrize("bogus", [-1, 0, 10**9])
def test_an_assignment_id_that_does_not_exist_reads_nothing(store, rating, bogus):
    r1 = sign_in(store, "r1")
    with pytest.raises(NotFoundError):
        rates.assignment_view(store, r1, rating, bogus)
    with pytest.raises(NotFoundError):
        rates.submit_rating(store, r1, rating, bogus, full_values())


def test_audit_verify_names_an_identity_bound_without_its_event(store):
    people.invite(store, OPERATOR, None, "ana@hospital.example", "admin")
    verified(store, "sub-ana", "ana@hospital.example")
    assert audit_verify.verify(store).ok
    # someone with write access to the file binds their own identity to the admin
    people.invite(store, OPERATOR, None, "boss@hospital.example", "admin")
    with store.transaction() as cur:
        cur.execute(
            "INSERT INTO identities VALUES ('https://evil', 'me', 'boss@hospital.example',"
            " 'boss@hospital.example', now())"
        )
    report = audit_verify.verify(store)
    assert not report.ok
    assert "identity (https://evil, me) of user boss@hospital.example has no user.bind" in str(
        report
    )
    # and signing in with it makes nobody the admin
    evil = people.sign_in(store, issuer="https://evil", subject="me")
    assert evil.user_id != "boss@hospital.example"
    assert access.roles_of(store, evil.user_id) == set()


def test_a_subject_rewritten_around_the_store_takes_nobody_over(store):
    people.invite(store, OPERATOR, None, "ana@hospital.example", "admin")
    ana = verified(store, "sub-ana", "ana@hospital.example")
    people.ensure_user(store, OPERATOR, issuer=IDP, subject="sub-cole", user_id="cole")
    # someone with write access to the file gives cole's row the attacker's identity
    store.cursor().execute("UPDATE users SET subject = 'sub-mallory' WHERE id = 'cole'")
    assert "user cole's issuer or subject differs" in audit_verify.verify(store).problem
    with pytest.raises(ConflictError, match="no audit event records it"):
        people.sign_in(store, issuer=IDP, subject="sub-mallory")
    assert verified(store, "sub-ana", "ana@hospital.example") == ana


# --- the e-mail a person binds through is the one the audit chain vouches for ----------------


def test_an_email_rewritten_around_the_store_takes_nobody_over_and_verify_names_it(demo):
    # the demo's people are invited under the demo issuer: the statistician waits to bind
    victim = "demo-statistician"
    cur = demo.cursor()
    cur.execute("UPDATE users SET email = 'mallory@evil.example' WHERE id = ?", [victim])
    mallory = verified(demo, "sub-mallory", "mallory@evil.example")
    assert mallory.user_id != victim
    assert access.roles_of(demo, mallory.user_id) == set()
    assert events(demo, "user.bind") == []
    report = audit_verify.verify(demo)
    assert not report.ok
    assert f"user {victim}'s e-mail differs" in report.problem, report.problem


def test_an_administrator_changes_an_email_audited_and_the_person_binds_at_the_new_one(store):
    study = studies.create_study(store, OPERATOR, "Trial", study_id="trial")
    people.invite(store, OPERATOR, study, "old@hospital.example", "rater")
    assert people.change_email(store, OPERATOR, "old@hospital.example", " New@Hospital.example ")
    assert not people.change_email(store, OPERATOR, "old@hospital.example", "new@hospital.example")
    assert events(store, "user.email") == [(OPERATOR.actor, "old@hospital.example")]
    assert audit_verify.verify(store).ok
    # the old address binds nobody now; the new one binds the invited person
    assert verified(store, "sub-old", "old@hospital.example").user_id != "old@hospital.example"
    assert verified(store, "sub-new", "new@hospital.example").user_id == "old@hospital.example"
    assert audit_verify.verify(store).ok


def test_only_an_administrator_changes_an_email_and_a_refusal_is_audited(store):
    study = studies.create_study(store, OPERATOR, "Trial", study_id="trial")
    people.invite(store, OPERATOR, study, "ana@hospital.example", "rater")
    people.invite(store, OPERATOR, study, "cole@hospital.example", "coordinator")
    coordinator = verified(store, "sub-cole", "cole@hospital.example")
    with pytest.raises(PermissionDenied):
        people.change_email(store, coordinator, "ana@hospital.example", "x@hospital.example")
    assert events(store, "user.email") == []
    assert events(store, "access.denied")[-1][0] == coordinator.actor
    with pytest.raises(ConflictError):
        people.change_email(store, OPERATOR, "ana@hospital.example", "cole@hospital.example")
    with pytest.raises(NotFoundError):
        people.change_email(store, OPERATOR, "nobody", "x@hospital.example")
    with pytest.raises(ValidationError):
        people.change_email(store, OPERATOR, "ana@hospital.example", "not an address")
    assert events(store, "user.email") == []
