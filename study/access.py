"""Who is calling, and what they may do: the caller, the roles, and every permission declared once.

Every public service takes a ``Caller`` right after the store. A caller is made only by the
sign-in step (``study.services.people.sign_in``, or the demo picker's ``demo_sign_in``; at the
command line a person's personal access token, ``study.services.tokens.caller_for_token``) or as
a named system actor (``system_caller``: the command line, the demo builder); never from an id
that a page or a form passes. Roles live in the database, read afresh on every call, so a
revoked role stops working at once; ID-token claims never carry roles, and a personal access
token carries none either (it names its person, whose roles are read as for any caller).

``PERMISSIONS`` declares each permission once: the roles that hold it, where a role must be held
(in the study the call names, globally, or in any study), and the services that require it. The
``@guarded`` decorator looks a service up in that declaration and checks the caller before the
service's body runs; a service listed under two permissions needs either. A refused call raises
``PermissionDenied`` and appends an ``access.denied`` event to the audit chain, committed even
though the call fails. The services a rater calls on every case (``@guarded(in_query=True)``)
read the caller's roles in their own first statement instead of one of their own
(``with_grants``, ``check_grants``); the roles are still read afresh on every call. ``tests/test_access.py`` iterates over the declaration: every public
service is declared, every role is tried.

Who may see arms when: a permission marked ``links_arms`` returns answers (their text) beside
their arms, so that a rating outcome read while blind (the safety queue shows the rated answer's
text) could be joined to its arm. It is held only while the study can hold no blind outcome:
in ``draft`` and once ``unblinded`` (or later), never in ``BLIND_STATUSES``, for every person,
admin included. What a coordinator reads while blind names no arm beside a rating outcome
(``tests/test_blind_outcomes.py`` calls every service a coordinator holds during rating).

``admin`` holds every permission except those marked ``admin=False`` (rating, unblinding and
amending a locked protocol are a rater's, a statistician's and a coordinator's own acts). A system
actor acts as an admin that is no person: it is recorded as ``system:<name>`` in the audit trail.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn, ParamSpec, TypeVar

from study import audit
from study.errors import PermissionDenied, StudyError
from study.store import Store

ROLES = ("admin", "coordinator", "rater", "statistician")

SYSTEM_ACTORS: dict[str, str] = {
    "cli": "the local operator at the command line (who holds the database file)",
    "demo": "the demo builder, creating the synthetic demo study and its people",
    "sign-in": "the sign-in step, recording a person the first time they sign in",
    "local": "whoever runs the app on their own machine in the demo without sign-in",
}
"""Named system actors: callers that are no person, with what each stands for."""

_SYSTEM_PREFIX = "system:"

Scope = Literal["study", "global", "any"]

BLIND_STATUSES = frozenset({"locked", "rating", "closed"})
"""A study's statuses in which it may hold rating outcomes (ratings, safety alerts, flags; ratings
collected elsewhere are imported while it is locked) that nobody has unblinded yet: no person
reads an answer beside its arm then (``Permission.links_arms``)."""


@dataclass(frozen=True, slots=True)
class Permission:
    """One permission: the ``roles`` that hold it, where (``scope``), and its ``services``.

    ``scope``: ``"study"``, the role held in the study the call names (or globally);
    ``"global"``, held for every study; ``"any"``, held anywhere (a library-wide read).
    ``admin``: whether the admin role holds it too. ``services``: "module.function" names
    under ``study.services`` that require it. ``links_arms``: its services return answers beside
    their arms, so it is held only while the study is in none of ``BLIND_STATUSES`` (whoever
    the person; a system actor, which is no person, is not blinded: the operator holds the
    database file, the demo builder is code).
    """

    roles: frozenset[str]
    scope: Scope
    help: str
    services: tuple[str, ...]
    admin: bool = True
    links_arms: bool = False


PERMISSIONS: dict[str, Permission] = {
    "create_study": Permission(
        frozenset({"coordinator"}),
        "global",
        "create a study (a coordinator for every study, or an admin)",
        ("studies.create_study",),
    ),
    "list_studies": Permission(
        frozenset(ROLES),
        "any",
        "list the studies where one holds a role",
        ("studies.list_studies",),
    ),
    "view_study": Permission(
        frozenset(ROLES),
        "study",
        "see a study's name, status, instrument items and where its ratings come from",
        (
            "studies.get_study",
            "rating_imports.ratings_origin",
            "instrument_library.study_instruments",
            "instrument_library.study_items",
        ),
    ),
    "view_instruments": Permission(
        frozenset(ROLES),
        "any",
        "read an instrument of the library",
        ("instrument_library.get_instrument",),
    ),
    "manage_instruments": Permission(
        frozenset({"coordinator"}),
        "any",
        "add an instrument version to the library",
        ("instrument_library.add_instrument",),
    ),
    "view_design": Permission(
        frozenset({"coordinator", "statistician"}),
        "study",
        "see a study's cases and arms with their provenance, what it never recorded, the column "
        "mappings kept with it, each "
        "arm's coverage of the cases, and the power of its design",
        (
            "content.list_cases",
            "content.list_arms",
            "content.unknown_provenance",
            "content.list_mappings",
            "design.arm_coverage",
            "design.answered_cases",
            "power.design_power",
        ),
    ),
    "design_study": Permission(
        frozenset({"coordinator"}),
        "study",
        "import cases, arms and answers (HealthBench files, and any table through a column "
        "mapping, too), remove those a draft does not use, attach instruments, lock "
        "the first protocol, preview and make assignments, and keep a draft's design settings "
        "between sittings",
        (
            "content.import_cases",
            "content.import_arms",
            "content.import_answers",
            "content.import_healthbench",
            "content.preview_table",
            "content.import_table",
            "content.add_cases",
            "content.add_arms",
            "content.add_arm",
            "content.add_answers",
            "content.remove_cases",
            "content.remove_arms",
            "content.remove_answers",
            "instrument_library.attach_instrument",
            "design.lock_protocol",
            "design.persist_assignments",
            "design.make_assignments",
            "design.preview_assignments",
            "design.leak_report",
            "design.leak_pairs",
            "design.seed_is_sealed",
            "design.draw_seed",
            "design.save_design_draft",
            "design.design_draft",
        ),
    ),
    "view_answer_arms": Permission(
        frozenset({"coordinator"}),
        "study",
        "see answers with their arms and authors, and preview a case as raters will see it with "
        "the arm behind each label (while the study is a draft or once it is unblinded: never "
        "while it may hold blind ratings)",
        ("content.list_answers", "design.preview_view"),
        links_arms=True,
    ),
    "import_ratings": Permission(
        frozenset({"coordinator"}),
        "study",
        "import ratings collected elsewhere into a locked study (its raters must be people of "
        "the study)",
        ("rating_imports.import_ratings",),
    ),
    "amend_protocol": Permission(
        frozenset({"coordinator"}),
        "study",
        "lock a new protocol version after the first, with a reason",
        ("design.lock_protocol",),
        admin=False,
    ),
    "view_protocol": Permission(
        frozenset({"coordinator", "statistician"}),
        "study",
        "read the locked protocol (its assignment seed only once the study is unblinded)",
        ("design.get_protocol", "design.assignment_seed"),
    ),
    "run_study": Permission(
        frozenset({"coordinator"}),
        "study",
        "open and close rating",
        ("lifecycle.start_rating", "lifecycle.close_rating"),
    ),
    "monitor_study": Permission(
        frozenset({"coordinator", "statistician"}),
        "study",
        "see progress by rater and case, per-arm counts, the safety queue, flagged and skipped "
        "cases (opened: the case as the rater saw it, no arm), any rater's queue and calibration outcome (no results by arm), and the audit "
        "chain's head hash",
        (
            "exports.audit_head",
            "monitoring.study_status",
            "monitoring.arm_summary",
            "monitoring.cases_by_specialty",
            "monitoring.rater_progress",
            "monitoring.case_progress",
            "rating.rater_queue",
            "monitoring.safety_queue",
            "monitoring.case_flags",
            "monitoring.flagged_case",
            "monitoring.calibration_status",
            "monitoring.time_on_task",
            "monitoring.rater_flags",
            "interim.interim_agreement",
            "digest.ratings_digest",
        ),
    ),
    "decide_calibration": Permission(
        frozenset({"coordinator"}),
        "study",
        "let a rater who did not reach the calibration threshold try the calibration again, or "
        "pass them to live rating (never oneself)",
        ("calibration.retry_calibration", "calibration.pass_rater"),
    ),
    "acknowledge_safety": Permission(
        frozenset({"coordinator"}),
        "study",
        "acknowledge a safety alert with a note",
        ("monitoring.acknowledge_alert",),
    ),
    "rate": Permission(
        frozenset({"rater"}),
        "study",
        "rate one's own assignments, flag or skip their cases, and read one's own queue and "
        "standing (calibration, waiting, live, done)",
        (
            "rating.next_assignment",
            "rating.rater_status",
            "rating.mark_presented",
            "rating.assignment_view",
            "rating.submit_rating",
            "rating.rater_queue",
            "rating.flag_case",
            "rating.skip_case",
        ),
        admin=False,
    ),
    "export": Permission(
        frozenset({"statistician"}),
        "study",
        "export the ratings with their arms, their codebook, the study report and the "
        "reproducibility bundle, and analyse a rubric study by arm (a person: only once the "
        "study is unblinded)",
        (
            "exports.export_ratings_long",
            "exports.write_bundle",
            "exports.bundle_zip",
            "rubric.rubric_results",
        ),
    ),
    "analyze": Permission(
        frozenset({"statistician"}),
        "study",
        "read the analysis of an unblinded study from its locked plan: results by arm, "
        "agreement, pairwise preference, subgroups and sensitivity analyses",
        ("results.study_results", "results.results_rows"),
    ),
    "unblind": Permission(
        frozenset({"statistician"}),
        "study",
        "unblind a closed study",
        ("lifecycle.unblind",),
        admin=False,
    ),
    "manage_users": Permission(
        frozenset(),
        "global",
        "add and invite people, list them, change their e-mail, grant and revoke any role",
        (
            "people.ensure_user",
            "people.invite",
            "people.list_people",
            "people.find_user",
            "people.get_user",
            "people.list_users",
            "people.user_roles",
            "people.grant_role",
            "people.revoke_role",
            "people.change_email",
        ),
    ),
    "own_tokens": Permission(
        frozenset(ROLES),
        "any",
        "create, list and revoke one's own personal access tokens for the command line (an "
        "administrator: list and revoke anyone's)",
        ("tokens.create_token", "tokens.list_tokens", "tokens.revoke_token"),
    ),
    "demo_tokens": Permission(
        frozenset(),
        "global",
        "issue personal access tokens for the synthetic demo's people, on a demo database only "
        "(the command line's operator)",
        ("tokens.issue_demo_tokens",),
    ),
    "invite_raters": Permission(
        frozenset({"coordinator"}),
        "study",
        "invite people by e-mail as raters of one's own study, grant or revoke the rater role "
        "there, and list the study's raters",
        ("people.invite", "people.grant_role", "people.revoke_role", "people.study_raters"),
    ),
}
"""Every permission, declared once with the services that require it."""

SIGN_IN_STEP: dict[str, str] = {
    "people.sign_in": "makes the caller from a provider's verified identity",
    "people.demo_sign_in": "makes the caller for a synthetic demo person picked from a list",
    "people.demo_people": "lists the synthetic demo people for that picker",
    "tokens.caller_for_token": "makes the caller for the person whose personal access token is "
    "presented at the command line",
}
"""The public service functions that take no caller: they are the sign-in step that makes one."""

SERVICE_PERMISSIONS: dict[str, tuple[str, ...]] = {}
"""Service ("module.function") -> the permissions of which it needs one, from ``PERMISSIONS``."""
for _name, _permission in PERMISSIONS.items():
    for _service in _permission.services:
        SERVICE_PERMISSIONS.setdefault(_service, ())
        SERVICE_PERMISSIONS[_service] += (_name,)


# --- the caller ------------------------------------------------------------------------------

_MINT = object()  # only this module's factories hold it


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling a service: a signed-in person (``user_id``) or a named system actor.

    Made by ``study.services.people.sign_in`` / ``demo_sign_in``, by
    ``study.services.tokens.caller_for_token`` or by ``system_caller``; the constructor refuses
    anything else, so an id typed into a form can never become a caller. ``via`` says how the
    caller was made ("oidc", "demo", "token", "system"). ``actor`` is the name the audit trail
    records: a person acting through a personal access token is that person, and ``token`` (the
    token's id) is recorded beside it in each event (``study.audit.acting_via``).
    """

    user_id: str | None
    system: str | None
    via: str
    _mint: object = field(repr=False, compare=False, default=None)
    token: str | None = None

    def __post_init__(self) -> None:
        if self._mint is not _MINT:
            raise TypeError(
                "a Caller is made by the sign-in step or study.access.system_caller, not directly"
            )

    @property
    def actor(self) -> str:
        """The audit trail's name for this caller: the user id, or ``system:<name>``."""
        return self.user_id if self.user_id is not None else f"{_SYSTEM_PREFIX}{self.system}"

    @property
    def is_system(self) -> bool:
        return self.system is not None

    @property
    def is_operator(self) -> bool:
        """The local operator at the command line, who holds the database file itself."""
        return self.system is not None and self.system.split(":")[0] == "cli"

    def __str__(self) -> str:
        return self.actor


def system_caller(name: str, detail: str | None = None) -> Caller:
    """The caller for the named system actor ``name`` (a key of ``SYSTEM_ACTORS``).

    ``detail`` is recorded after the name, e.g. the OS account of the command line's operator:

    >>> operator = system_caller("cli", "alice")
    >>> operator.actor, operator.is_operator, operator.user_id
    ('system:cli:alice', True, None)
    >>> system_caller("demo").is_operator
    False
    """
    if name not in SYSTEM_ACTORS:
        raise ValueError(f"unknown system actor {name!r}; declared: {', '.join(SYSTEM_ACTORS)}")
    return Caller(None, f"{name}:{detail}" if detail else name, "system", _MINT)


def person_caller(user_id: str, *, via: str) -> Caller:
    """The caller for the person ``user_id``; for the sign-in step only (``services.people``)."""
    if not user_id:
        raise ValueError("a person's caller needs their user id")
    return Caller(user_id, None, via, _MINT)


def token_caller(user_id: str, token_id: str) -> Caller:
    """The caller for the person ``user_id`` acting through their personal access token
    ``token_id``; for ``study.services.tokens.caller_for_token`` only, once it checked the token."""
    if not user_id or not token_id:
        raise ValueError("a token's caller needs the person's user id and the token's id")
    return Caller(user_id, None, "token", _MINT, token_id)


def is_system_id(user_id: str) -> bool:
    """Whether ``user_id`` would read as a system actor's name in the audit trail."""
    return user_id.startswith(_SYSTEM_PREFIX)


# --- roles and checks ------------------------------------------------------------------------


def roles_of(store: Store, user_id: str, *, study: str | None = None) -> set[str]:
    """Roles ``user_id`` holds in ``study`` (global roles included), or global roles only."""
    frame = store.read(
        "SELECT DISTINCT role FROM roles WHERE user_id = $u AND (study IS NULL OR study = $s)",
        {"u": user_id, "s": study},
    )
    return set(frame.get_column("role").to_list())


def roles_anywhere(store: Store, caller: Caller) -> set[str]:
    """Every role ``caller`` holds in any study or globally (a system actor: ``{"admin"}``);
    what the app's navigation is built from (each service checks again)."""
    if caller.is_system:
        return {"admin"}
    return {role for _, role in _grants(store, caller.user_id) or []}


def has_role(store: Store, user_id: str, role: str, *, study: str | None = None) -> bool:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    return role in roles_of(store, user_id, study=study)


def _grants(store: Store, user_id: str) -> list[tuple[str | None, str]] | None:
    """(study or None for every study, role) held by ``user_id``; None if no such user."""
    cur = store.cursor()
    try:
        rows = cur.execute(
            "SELECT r.study, r.role, u.id FROM users u LEFT JOIN roles r ON r.user_id = u.id"
            " WHERE u.id = ?",
            [user_id],
        ).fetchall()
    finally:
        cur.close()
    if not rows:
        return None
    return [(study, role) for study, role, _ in rows if role is not None]


def _held(grants: list[tuple[str | None, str]], permission: Permission, study: str | None) -> bool:
    everywhere = {role for where, role in grants if where is None}
    if permission.admin and "admin" in everywhere:
        return True
    if permission.scope == "any":
        held = {role for _, role in grants}
    elif permission.scope == "global":
        held = everywhere
    else:
        held = everywhere | {role for where, role in grants if where is not None and where == study}
    return bool(held & permission.roles)


def allowed(store: Store, caller: Caller, action: str, *, study: str | None = None) -> bool:
    """Whether ``caller`` holds the permission ``action`` (a key of ``PERMISSIONS``).

    Never for something that is not a ``Caller`` or for a person no longer stored; roles are
    read afresh, so a revoked role counts no more.
    """
    return _allowed_any(store, caller, (action,), study)


def _allowed_any(store: Store, caller: Caller, actions: tuple[str, ...], study: str | None) -> bool:
    for action in actions:
        if action not in PERMISSIONS:
            raise ValueError(f"unknown permission {action!r}")
    if not isinstance(caller, Caller):
        return False
    if caller.is_system:
        return any(PERMISSIONS[a].admin for a in actions)
    grants = _grants(store, caller.user_id)
    if grants is None:
        return False
    held = [a for a in actions if _held(grants, PERMISSIONS[a], study)]
    if held and all(PERMISSIONS[a].links_arms for a in held):
        return study is not None and _study_status(store, study) not in BLIND_STATUSES
    return bool(held)


def _study_status(store: Store, study: str) -> str | None:
    """The study's status, None when there is no such study (the service says so itself)."""
    cur = store.cursor()
    try:
        found = cur.execute("SELECT status FROM studies WHERE id = ?", [study]).fetchall()
    finally:
        cur.close()
    return found[0][0] if found else None


def require(
    store: Store,
    caller: Caller,
    *actions: str,
    study: str | None = None,
    service: str | None = None,
) -> None:
    """Raise ``PermissionDenied`` unless ``caller`` holds one of ``actions`` (audited refusal).

    A caller that is not a ``Caller`` (an id passed as text) or names no stored person is
    refused too. The refusal is recorded as an ``access.denied`` event in its own transaction,
    so it stays in the trail although the call fails.
    """
    if _allowed_any(store, caller, actions, study):
        return
    who = caller.actor if isinstance(caller, Caller) else f"unverified:{caller!r}"[:200]
    _deny(store, who, actions, study, service)


def _deny(
    store: Store, who: str, actions: tuple[str, ...], study: str | None, service: str | None
) -> NoReturn:
    """Record the refusal (``access.denied``) and raise it, naming what the caller may not do."""
    _record_denial(store, who, actions, study, service)
    what = " or ".join(PERMISSIONS[a].help for a in actions)
    where = f" in study '{study}'" if study else ""
    raise PermissionDenied(f"You may not {what}{where}.")


def _record_denial(
    store: Store, who: str, actions: tuple[str, ...], study: str | None, service: str | None
) -> None:
    # A refusal inside a caller's open transaction would roll back with it; write it on its own
    # when no transaction is open on this thread, else join (the demo builder is never refused).
    known_study = study if study is not None and _study_exists(store, study) else None
    with store.transaction() as cur:
        audit.append(
            cur,
            actor=who,
            kind=audit.ACCESS_DENIED,
            object_type="service",
            object_id=service,
            study=known_study,
            payload={"service": service, "permissions": list(actions), "study": study},
        )


def _study_exists(store: Store, study: str) -> bool:
    cur = store.cursor()
    try:
        return bool(cur.execute("SELECT 1 FROM studies WHERE id = ?", [study]).fetchall())
    finally:
        cur.close()


P = ParamSpec("P")
R = TypeVar("R")


def guarded(
    fn: Callable[P, R] | None = None, *, in_query: bool = False
) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
    """Check the caller against the service's declared permissions before ``fn`` runs.

    ``fn`` must be declared in ``PERMISSIONS`` (as "module.function" under ``study.services``)
    and take ``(store, caller, ...)``; a study-scoped permission also needs ``study`` as its third
    parameter. Refuses at import time otherwise, so an undeclared service cannot exist.

    ``@guarded(in_query=True)``: for the few services a rater calls on every case, the caller's
    roles are read by the service's own first statement (``with_grants``) and checked there
    (``check_grants``) before anything else, saving a statement per call. The guard still
    answers for the check: when ``fn`` ends, normally or by an exception, without having called
    ``check_grants`` for a person, the guard runs its own check then (a refusal replaces what
    ``fn`` returned or raised), so no path of ``fn`` can answer a caller who may not call it.
    A caller that is no person (a system actor, or not a ``Caller`` at all) is checked before
    ``fn`` runs, as for every service.
    """
    if fn is None:
        return functools.partial(guarded, in_query=in_query)  # type: ignore[return-value]
    name = f"{fn.__module__.rsplit('.', 1)[-1]}.{fn.__name__}"
    actions = SERVICE_PERMISSIONS.get(name)
    if not actions:
        raise StudyError(f"service {name} is not declared in study.access.PERMISSIONS")
    params = list(inspect.signature(fn).parameters)
    if params[:2] != ["store", "caller"]:
        raise TypeError(f"service {name} must take (store, caller, ...), not {params[:2]}")
    scoped = any(PERMISSIONS[a].scope == "study" for a in actions)
    if in_query and any(PERMISSIONS[a].links_arms for a in actions):
        # check_grants reads no status: a service that shows arms is checked before it runs
        raise TypeError(f"service {name} shows arms and cannot be checked in its own query")
    if scoped and (len(params) < 3 or params[2] != "study"):
        raise TypeError(f"service {name} is study-scoped and must take the study third")

    @functools.wraps(fn)
    def check_then_call(store: Store, caller: Caller, *args: Any, **kwargs: Any) -> R:
        study = (args[0] if args else kwargs.get("study")) if scoped else None
        with audit.acting_via(_token_of(caller)):
            require(store, caller, *actions, study=study, service=name)
            return fn(store, caller, *args, **kwargs)

    @functools.wraps(fn)
    def call_then_check(store: Store, caller: Caller, *args: Any, **kwargs: Any) -> R:
        with audit.acting_via(_token_of(caller)):
            return _call_then_check(store, caller, *args, **kwargs)

    def _call_then_check(store: Store, caller: Caller, *args: Any, **kwargs: Any) -> R:
        study = (args[0] if args else kwargs.get("study")) if scoped else None
        if not isinstance(caller, Caller) or caller.is_system:
            # no roles to read: decided without a statement, as the plain guard does
            require(store, caller, *actions, study=study, service=name)
            return fn(store, caller, *args, **kwargs)
        check = _InQueryCheck(name, actions, study)
        token = _IN_QUERY.set(check)
        try:
            result = fn(store, caller, *args, **kwargs)
        except PermissionDenied:
            raise
        except Exception:
            if not check.done:
                require(store, caller, *actions, study=study, service=name)
            raise
        finally:
            _IN_QUERY.reset(token)
        if not check.done:
            require(store, caller, *actions, study=study, service=name)
        return result

    wrapper = call_then_check if in_query else check_then_call
    wrapper.permissions = actions  # type: ignore[attr-defined]
    wrapper.service_name = name  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def _token_of(caller: object) -> str | None:
    """The id of the personal access token ``caller`` acts through, if any: what the guard marks
    every event of the call with (``audit.acting_via``), refusals included."""
    return caller.token if isinstance(caller, Caller) else None


@dataclass(slots=True)
class _InQueryCheck:
    """The check a ``@guarded(in_query=True)`` service owes: its name, permissions and study."""

    service: str
    actions: tuple[str, ...]
    study: str | None
    done: bool = False


_IN_QUERY: contextvars.ContextVar[_InQueryCheck | None] = contextvars.ContextVar(
    "clinval_in_query_check", default=None
)


def with_grants(sql: str) -> str:
    """SQL for one row: the caller's grants (``$caller``: their user id), then ``sql``'s columns.

    ``grants``: a list of (study or NULL for every study, role), NULL when the caller holds no
    role; ``known``: whether the caller is a stored person. ``sql`` (one row at most; its own
    parameters named) is joined on, so its columns are NULL when it finds no row: the caller is
    checked before the service says whether what it asked for exists.
    """
    return (
        "SELECT (SELECT list((r.study, r.role)) FROM roles r WHERE r.user_id = $caller) AS grants,"
        " EXISTS (SELECT 1 FROM users WHERE id = $caller) AS known, q.*"
        f" FROM (SELECT 1) AS one LEFT JOIN ({sql}) AS q ON true"
    )


def check_grants(
    store: Store,
    caller: Caller,
    grants: list[tuple[str | None, str]] | None,
    known: bool,
) -> None:
    """The guard's check for a ``@guarded(in_query=True)`` service, on the ``grants`` and
    ``known`` its statement read (``with_grants``), the same moment's roles: a revoked role
    counts no more. Raise ``PermissionDenied`` (audited, in its own transaction) as the guard
    does; call it before the service opens a transaction or uses its arguments."""
    check = _IN_QUERY.get()
    if check is None:
        raise StudyError("check_grants is for a service decorated @guarded(in_query=True)")
    held = [(where, role) for where, role in (grants or [])] if known else None
    check.done = True
    if held is not None and any(_held(held, PERMISSIONS[a], check.study) for a in check.actions):
        return
    _deny(store, caller.actor, check.actions, check.study, check.service)


def studies_for(store: Store, user_id: str, role: str) -> list[str]:
    """Study ids where ``user_id`` holds ``role``; all studies if the role is held globally."""
    frame = store.read(
        "SELECT DISTINCT s.id FROM studies s JOIN roles r ON r.study IS NULL OR r.study = s.id"
        " WHERE r.user_id = $u AND r.role = $r ORDER BY s.id",
        {"u": user_id, "r": role},
    )
    return frame.get_column("id").to_list()


def refuse(
    store: Store, caller: Caller, message: str, *, study: str | None, service: str
) -> NoReturn:
    """Record a refusal that a service decided itself (e.g. a self-grant) and raise it."""
    _record_denial(store, caller.actor, (), study, service)
    raise PermissionDenied(message)
