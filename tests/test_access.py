"""Who may call what: every public service against every role, and the probes that found the holes.

The permission table is iterated the way datasette's tests iterate over its declared settings:
every public function of ``study.services`` must be declared in ``access.PERMISSIONS`` (or be the
sign-in step), and each is called as each kind of caller. A refused call must raise
``PermissionDenied`` and leave an ``access.denied`` event naming the service.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import shutil
from pathlib import Path

import pytest
from conftest import OPERATOR, RATERS, add_person, full_values, make_draft, open_rating, sign_in

import study.services
from study import access, audit, audit_verify
from study.access import PERMISSIONS, SERVICE_PERMISSIONS, SIGN_IN_STEP, Caller
from study.errors import PermissionDenied, StateError, StudyError
from study.services import (
    content,
    design,
    exports,
    lifecycle,
    monitoring,
    people,
    rating,
    studies,
)
from study.store import Store

ROOT = Path(__file__).resolve().parent.parent
STUDY = "test-study"
OTHER = "other-study"


def public_services() -> dict[str, object]:
    """Every public function defined in a module of ``study.services`` (a package's modules
    included, e.g. ``analyses.results``), by "module.function" with the module's last name."""
    found = {}
    for info in pkgutil.walk_packages(study.services.__path__, "study.services."):
        last = info.name.rsplit(".", 1)[-1]
        if last.startswith("_") or info.ispkg:
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if name.startswith("_") or not inspect.isfunction(obj):
                continue
            if inspect.unwrap(obj).__module__ == module.__name__:
                found[f"{last}.{name}"] = obj
    return found


SERVICES = public_services()
GUARDED = {name: fn for name, fn in SERVICES.items() if name not in SIGN_IN_STEP}


def test_every_public_service_is_declared() -> None:
    undeclared = sorted(set(GUARDED) - set(SERVICE_PERMISSIONS))
    assert undeclared == [], f"declare these in study.access.PERMISSIONS: {undeclared}"


def test_every_declared_service_exists_and_is_guarded() -> None:
    assert set(SERVICE_PERMISSIONS) <= set(GUARDED)
    for name, fn in GUARDED.items():
        assert getattr(fn, "permissions", None) == SERVICE_PERMISSIONS[name], name


def test_the_sign_in_step_is_all_that_takes_no_caller() -> None:
    assert set(SIGN_IN_STEP) <= set(SERVICES)
    for name, fn in GUARDED.items():
        assert list(inspect.signature(fn).parameters)[:2] == ["store", "caller"], name


def test_an_undeclared_service_cannot_be_defined() -> None:
    def made_up(store, caller, study):  # noqa: ARG001
        return None

    made_up.__module__ = "study.services.rating"
    with pytest.raises(Exception, match="not declared"):
        access.guarded(made_up)


@pytest.mark.parametrize("name", list(PERMISSIONS))
def test_every_permission_is_in_the_administrators_guide(name: str) -> None:
    guide = (ROOT / "docs" / "administrator.md").read_text(encoding="utf-8")
    assert f"| `{name}` |" in guide


def test_a_caller_cannot_be_made_from_an_id() -> None:
    with pytest.raises(TypeError, match="sign-in step"):
        Caller("r1", None, "oidc")
    with pytest.raises(ValueError, match="unknown system actor"):
        access.system_caller("root")


# --- the world every service is tried in -----------------------------------------------------

ROLES_TRIED = {
    "rater": "r1",  # a rater of the study
    "coordinator": "coordinator",
    "statistician": "statistician",
    "admin": "boss",  # admin of every study
    "rater of another study": "outsider",
    "no role": "nobody",  # signed in, never granted anything
}


@pytest.fixture(scope="module")
def world_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``rating`` study, a second study with its own rater, an admin and a person with no
    role; built once, copied for each test."""
    folder = tmp_path_factory.mktemp("world")
    path = folder / "world.duckdb"
    with Store(path) as store:
        open_rating(store, make_draft(store, folder))
        for user_id in ("boss", "outsider", "nobody"):
            add_person(store, user_id)
        people.grant_role(store, OPERATOR, None, "boss", "admin")
        studies.create_study(store, OPERATOR, "Other study", study_id=OTHER)
        people.grant_role(store, OPERATOR, OTHER, "outsider", "rater")
    return path


@pytest.fixture
def world(world_template: Path, tmp_path: Path):
    path = tmp_path / "world.duckdb"
    shutil.copy(world_template, path)
    with Store(path) as store:
        yield store


def denials(store: Store) -> list[dict]:
    frame = store.read(
        "SELECT actor, object_id, study, payload FROM audit_events WHERE action = $k ORDER BY seq",
        {"k": audit.ACCESS_DENIED.name},
    )
    return [{**row, "payload": json.loads(row["payload"])} for row in frame.iter_rows(named=True)]


def expected_allowed(role: str, name: str) -> bool:
    """Whether the declaration says ``role`` may call service ``name`` on ``STUDY``, read from
    ``PERMISSIONS`` independently of ``access``'s own checks."""
    for permission in (PERMISSIONS[p] for p in SERVICE_PERMISSIONS[name]):
        if permission.links_arms:
            continue  # the world's study is rating: blind to arms for every person
        if role == "admin":
            if permission.admin:
                return True
            continue
        if role == "no role":
            continue
        if role == "rater of another study":
            if permission.scope == "any" and "rater" in permission.roles:
                return True
            continue
        if permission.scope == "study" and role in permission.roles:
            return True
        if permission.scope == "any" and role in permission.roles:
            return True
    return False


def call_with_placeholders(fn, store: Store, caller: Caller):
    """Call ``fn`` as ``caller`` on ``STUDY`` with None for every other argument it requires:
    the guard runs before any argument is used."""
    params = list(inspect.signature(fn).parameters.values())[2:]
    args, kwargs = [], {}
    for p in params:
        if p.default is not inspect.Parameter.empty:
            continue
        value = STUDY if p.name == "study" else None
        if p.kind is inspect.Parameter.KEYWORD_ONLY:
            kwargs[p.name] = value
        else:
            args.append(value)
    return fn(store, caller, *args, **kwargs)


@pytest.mark.parametrize("name", sorted(GUARDED))
def test_each_role_gets_exactly_what_the_declaration_gives(world: Store, name: str) -> None:
    fn = GUARDED[name]
    for role, user_id in ROLES_TRIED.items():
        caller = sign_in(world, user_id)
        before = len(denials(world))
        refused = False
        try:
            call_with_placeholders(fn, world, caller)
        except PermissionDenied:
            refused = True
        except Exception:  # noqa: BLE001, S110 - placeholders: past the guard anything may fail
            pass
        guard_events = [
            d
            for d in denials(world)[before:]
            if d["object_id"] == name and d["payload"]["permissions"] == list(fn.permissions)
        ]
        if expected_allowed(role, name):
            assert guard_events == [], f"{role} was refused {name}"
        else:
            assert refused, f"{role} was let into {name}"
            assert len(guard_events) == 1, f"no access.denied event for {role} on {name}"
            assert guard_events[0]["actor"] == user_id


@pytest.mark.parametrize("name", sorted(GUARDED))
def test_a_rater_of_another_study_and_a_person_with_no_role_are_refused(
    world: Store, name: str
) -> None:
    scopes = {PERMISSIONS[p].scope for p in SERVICE_PERMISSIONS[name]}
    outsiders = ["nobody"] if "any" in scopes else ["nobody", "outsider"]
    for user_id in outsiders:
        before = len(denials(world))
        with pytest.raises(PermissionDenied):
            call_with_placeholders(GUARDED[name], world, sign_in(world, user_id))
        assert [d["object_id"] for d in denials(world)[before:]] == [name]
    assert audit_verify.verify(world).ok


def test_a_system_actor_is_refused_what_only_a_person_may_do(world: Store) -> None:
    for fn in (rating.submit_rating, lifecycle.unblind):
        with pytest.raises(PermissionDenied):
            call_with_placeholders(fn, world, OPERATOR)


# --- the probes that found the holes (issue "One door per job") --------------------------------


def _first_assignment(store: Store, rater: str) -> int:
    view = rating.next_assignment(store, sign_in(store, rater), STUDY)
    return view["assignment"]


def test_a_rater_cannot_submit_or_revise_another_raters_assignment(world: Store) -> None:
    r1, r2 = sign_in(world, "r1"), sign_in(world, "r2")
    theirs = _first_assignment(world, "r1")
    with pytest.raises(PermissionDenied, match="another rater"):
        rating.submit_rating(world, r2, STUDY, theirs, full_values())
    rating.submit_rating(world, r1, STUDY, theirs, full_values())
    with pytest.raises(PermissionDenied, match="another rater"):
        rating.submit_rating(world, r2, STUDY, theirs, {"quality": {"Response A": 1}}, revise=True)
    values = world.read(
        "SELECT count(*) FROM ratings r JOIN assignments a ON a.id = r.assignment"
        " WHERE a.id = $a AND r.actor = 'r2'",
        {"a": theirs},
    ).item()
    assert values == 0
    assert [d["actor"] for d in denials(world)] == ["r2", "r2"]


def test_an_id_that_is_no_signed_in_person_cannot_submit(world: Store) -> None:
    assignment = _first_assignment(world, "r1")
    for impostor in ("r1", "ghost", None):
        with pytest.raises(PermissionDenied):
            rating.submit_rating(world, impostor, STUDY, assignment, full_values())
    assert world.read("SELECT count(*) FROM ratings").item() == 0
    assert len(denials(world)) == 3


def test_a_revoked_rater_is_refused_at_once(world: Store) -> None:
    r1 = sign_in(world, "r1")  # signed in before the revocation, as a running session would be
    assignment = _first_assignment(world, "r1")
    rating.mark_presented(world, r1, STUDY, assignment)
    assert people.revoke_role(world, sign_in(world, "coordinator"), STUDY, "r1", "rater")
    with pytest.raises(PermissionDenied):
        rating.submit_rating(world, r1, STUDY, assignment, full_values())
    with pytest.raises(PermissionDenied):
        rating.next_assignment(world, r1, STUDY)
    # every service that reads the caller's roles in its own statement reads them afresh too
    for call in (
        lambda: rating.mark_presented(world, r1, STUDY, assignment),
        lambda: rating.assignment_view(world, r1, STUDY, assignment),
        lambda: rating.flag_case(world, r1, STUDY, assignment, "typo"),
        lambda: rating.skip_case(world, r1, STUDY, assignment, "cannot judge"),
    ):
        with pytest.raises(PermissionDenied):
            call()
    assert [d["object_id"] for d in denials(world) if d["actor"] == "r1"] == [
        "rating.submit_rating",
        "rating.next_assignment",
        "rating.mark_presented",
        "rating.assignment_view",
        "rating.flag_case",
        "rating.skip_case",
    ]
    assert world.read("SELECT count(*) FROM ratings").item() == 0
    assert world.read("SELECT count(*) FROM case_flags").item() == 0


def _stand_in(body):
    """``body`` as if it were the service ``rating.rater_status`` (the ``rate`` permission),
    guarded as checking the caller in its own query (``guarded(in_query=True)``)."""
    body.__module__ = "study.services.rating"
    body.__name__ = body.__qualname__ = "rater_status"
    return access.guarded(in_query=True)(body)


def test_a_service_checking_in_its_query_that_never_checks_is_still_guarded(world: Store) -> None:
    @_stand_in
    def answers_without_checking(store, caller, study):  # noqa: ARG001
        return "the queue"

    @_stand_in
    def fails_before_checking(store, caller, study):  # noqa: ARG001
        raise StateError("an error that tells the caller something")

    assert answers_without_checking(world, sign_in(world, "r1"), STUDY) == "the queue"
    with pytest.raises(StateError):
        fails_before_checking(world, sign_in(world, "r1"), STUDY)
    for user_id in ("nobody", "outsider"):
        for service in (answers_without_checking, fails_before_checking):
            before = len(denials(world))
            with pytest.raises(PermissionDenied):
                service(world, sign_in(world, user_id), STUDY)
            assert [d["object_id"] for d in denials(world)[before:]] == ["rating.rater_status"]
    with pytest.raises(PermissionDenied):  # a system actor never rates: refused before it runs
        answers_without_checking(world, OPERATOR, STUDY)


def test_the_in_query_check_reads_the_roles_the_statement_read(world: Store) -> None:
    @_stand_in
    def checks(store, caller, study):
        cur = store.cursor()
        try:
            grants, known, one = cur.execute(
                access.with_grants("SELECT 1 AS one"), {"caller": caller.user_id}
            ).fetchall()[0]
        finally:
            cur.close()
        access.check_grants(store, caller, grants, known)
        return one

    assert checks(world, sign_in(world, "r1"), STUDY) == 1
    assert checks(world, sign_in(world, "outsider"), OTHER) == 1
    for user_id in ("outsider", "nobody", "boss"):  # boss: an admin, who never rates
        with pytest.raises(PermissionDenied):
            checks(world, sign_in(world, user_id), STUDY)
    with pytest.raises(StudyError, match="in_query"):
        access.check_grants(world, sign_in(world, "r1"), [(STUDY, "rater")], True)


def test_a_rater_cannot_grant_themselves_a_role_nor_unblind(world: Store) -> None:
    r1 = sign_in(world, "r1")
    with pytest.raises(PermissionDenied):
        people.grant_role(world, r1, STUDY, "r1", "statistician")
    assert not access.has_role(world, "r1", "statistician", study=STUDY)
    lifecycle.close_rating(world, sign_in(world, "coordinator"), STUDY)
    with pytest.raises(PermissionDenied):
        lifecycle.unblind(world, r1, STUDY)
    assert studies.get_study(world, OPERATOR, STUDY)["status"] == "closed"


def test_nobody_grants_themselves_anything_not_even_an_admin(world: Store) -> None:
    boss = sign_in(world, "boss")
    with pytest.raises(PermissionDenied, match="themselves"):
        people.grant_role(world, boss, STUDY, "boss", "statistician")
    coordinator = sign_in(world, "coordinator")
    with pytest.raises(PermissionDenied, match="themselves"):
        people.grant_role(world, coordinator, STUDY, "coordinator", "rater")
    assert denials(world)[-1]["payload"]["service"] == "people.grant_role"


def test_a_coordinator_grants_only_the_rater_role_in_their_own_study(world: Store) -> None:
    coordinator = sign_in(world, "coordinator")
    assert people.grant_role(world, coordinator, STUDY, "nobody", "rater")
    for where, role in ((STUDY, "statistician"), (STUDY, "coordinator"), (OTHER, "rater")):
        with pytest.raises(PermissionDenied):
            people.grant_role(world, coordinator, where, "outsider", role)
    with pytest.raises(PermissionDenied):
        people.grant_role(world, coordinator, None, "outsider", "rater")  # every study
    assert access.roles_of(world, "outsider", study=STUDY) == set()
    assert people.grant_role(world, sign_in(world, "boss"), STUDY, "outsider", "statistician")


def test_a_person_with_no_role_cannot_create_users_or_build_a_study(world: Store) -> None:
    nobody = sign_in(world, "nobody")
    with pytest.raises(PermissionDenied):
        people.ensure_user(world, nobody, issuer="x", subject="y")
    with pytest.raises(PermissionDenied):
        studies.create_study(world, nobody, "Mine")
    with pytest.raises(PermissionDenied):
        design.lock_protocol(world, nobody, OTHER, {"margin": 1})
    with pytest.raises(PermissionDenied):
        lifecycle.start_rating(world, nobody, OTHER)
    assert studies.list_studies(world, OPERATOR).height == 2
    assert len(denials(world)) == 4


def test_only_the_coordinator_amends_a_locked_protocol_and_the_reason_is_kept(
    world: Store,
) -> None:
    for user_id in ("r1", "statistician", "boss"):
        with pytest.raises(PermissionDenied):
            design.lock_protocol(
                world, sign_in(world, user_id), STUDY, {"margin": 2.0}, reason="looser"
            )
    assert design.get_protocol(world, OPERATOR, STUDY)["content"]["margin"] == 0.5
    coordinator = sign_in(world, "coordinator")
    design.lock_protocol(world, coordinator, STUDY, {"margin": 0.4}, reason="DSMB advice")
    protocol = design.get_protocol(world, OPERATOR, STUDY)
    assert (protocol["version"], protocol["reason"], protocol["locked_by"]) == (
        2,
        "DSMB advice",
        "coordinator",
    )
    event = audit.events(world, study=STUDY, limit=1).row(0, named=True)
    assert event["action"] == "protocol.lock"
    assert json.loads(event["payload"])["reason"] == "DSMB advice"


def test_while_blind_nobody_reads_ratings_or_answers_by_arm(world: Store) -> None:
    r1 = sign_in(world, "r1")
    rating.submit_rating(world, r1, STUDY, _first_assignment(world, "r1"), full_values())
    for fn in (exports.export_ratings_long, content.list_answers, monitoring.arm_summary):
        with pytest.raises(PermissionDenied):
            fn(world, r1, STUDY)
    with pytest.raises(PermissionDenied):
        rating.rater_queue(world, r1, STUDY, rater="r2")
    # the statistician sees arm-level ratings only after the audited unblinding
    statistician = sign_in(world, "statistician")
    with pytest.raises(PermissionDenied):
        content.list_answers(world, statistician, STUDY)
    with pytest.raises(StateError, match="unblinding"):
        exports.export_ratings_long(world, statistician, STUDY)
    lifecycle.close_rating(world, sign_in(world, "coordinator"), STUDY)
    lifecycle.unblind(world, statistician, STUDY)
    assert exports.export_ratings_long(world, statistician, STUDY).height > 0


def test_a_rater_reads_only_their_own_queue_and_next_case(world: Store) -> None:
    for rater in RATERS:
        caller = sign_in(world, rater)
        queue = rating.rater_queue(world, caller, STUDY)
        owners = world.read(
            "SELECT DISTINCT rater FROM assignments WHERE list_contains($ids, id)",
            {"ids": queue.get_column("assignment").to_list()},
        )
        assert owners.get_column("rater").to_list() == [rater]
        view = rating.next_assignment(world, caller, STUDY)
        assert view["assignment"] in queue.get_column("assignment").to_list()
        assert not any("arm" in key for p in view["presentations"] for key in p)


def test_a_coordinator_reads_any_raters_queue(world: Store) -> None:
    queue = rating.rater_queue(world, sign_in(world, "coordinator"), STUDY, rater="r2")
    assert queue.height > 0
