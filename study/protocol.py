"""The locked protocol, read in one place: a ``Plan`` of frozen ``Endpoint`` s.

A protocol is the coordinator's JSON, frozen and hashed at the lock (``services.design.
lock_protocol``). It is stored exactly as given, so that its hash stays what was locked; this
module is the only reader of it (``protocols.content``): every service that needs the analysis
plan, the display mode, the calibration round or the arms compared asks ``read_plan`` for a
``Plan`` and reads its attributes. ``parse`` is also what the lock runs, so a protocol that
cannot be read here is refused at the lock with the field named, never half-read later.

The shape (every key optional; older spellings in brackets are still read)::

    {
      "title": "...",
      "arms": {"test": "llm_a", "reference": "clinician"},
      "primary_endpoint": {                    # ["primary_item": key, "margin": m] or a bare key
        "item": "quality",                     # an item of an attached instrument
        "statistic": "mean_difference",        # | risk_difference | mean_difference_one_sample
        "margin": 0.5,                         # >= 0, in the item's units (a share for binary)
        "direction": "higher",                 # | "lower"; default: the item's declaration
        "alpha": 0.025,                        # one-sided, in (0, 0.5)
        "method": "mixed",                     # analysis.noninferiority's methods
        "sensitivity_methods": ["t"]
      },
      "secondary_endpoints": [                 # each as the primary (no sensitivity methods),
        {"item": "could_cause_harm", "statistic": "risk_difference", "margin": 0.05,
         "direction": "lower"},
        {"item": "better_response", "statistic": "win_rates"}   # descriptive: no margin
      ],
      "multiplicity": "holm (secondary endpoints)",
      "display": "markdown", "single_answer_cases": false,
      "calibration": {...}, "repeats": {...}   # study.phases
    }

An endpoint with a margin is a planned non-inferiority test ("tested"); one without is
descriptive. The direction of a tested endpoint is the protocol's, else the item's declared
direction (``higher_is_better`` / ``lower_is_better``), never assumed: with neither, the lock
refuses it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from study.canonical import seed_from_hash
from study.errors import Problem, ValidationError

ROLES = ("primary", "secondary", "sensitivity")
"""An analysis's role in the plan: the primary endpoint, a secondary endpoint (Holm-adjusted),
or a sensitivity analysis of the primary."""

DIRECTIONS = ("higher", "lower")
"""Which way is better for an endpoint."""

ONE_SAMPLE = "mean_difference_one_sample"
"""An endpoint's ``statistic`` for an item rated once per case whose values are already test
minus reference (a comparative score such as ClinSumm's -2..+2): the mean of the values is tested
against the margin. Never assumed: a case-level score that compares "Response A" with "Response
B" changes sign with their order, so only the protocol can say the values are oriented test
minus reference."""

STATISTICS = ("mean_difference", "risk_difference", ONE_SAMPLE, "win_rates")
"""What an endpoint may estimate; ``win_rates`` (a pairwise item) is descriptive."""

METHODS = {
    "mean_difference": ("t", "bootstrap", "mixed"),
    "risk_difference": ("newcombe", "farrington-manning", "miettinen-nurminen"),
    ONE_SAMPLE: ("t", "bootstrap", "mixed"),
}
"""The methods each tested statistic may name (``analysis.noninferiority``'s ``MEAN_METHODS``
and ``RISK_METHODS``)."""

DEFAULT_ALPHA = 0.025

ITEM_DIRECTIONS = {"higher_is_better": "higher", "lower_is_better": "lower"}
"""An instrument item's declared direction, as an endpoint names it."""

_WHERE = "protocol"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One endpoint of the plan.

    ``direction`` is what the protocol states (None: unstated); ``Plan.resolve`` fills it from
    the item's declaration. ``margin`` None makes the endpoint descriptive (no test). ``alpha``
    is one-sided. ``statistic`` None: from the item (0/1 items a risk difference, others a mean
    difference).
    """

    item: str
    role: str
    statistic: str | None = None
    margin: float | None = None
    direction: str | None = None
    alpha: float = DEFAULT_ALPHA
    method: str | None = None
    sensitivity_methods: tuple[str, ...] = ()
    name: str | None = None

    @property
    def tested(self) -> bool:
        """Whether the plan tests this endpoint against a margin (else it is descriptive)."""
        return self.margin is not None and self.statistic != "win_rates"

    def resolved(self, item_direction: str | None) -> Endpoint:
        """This endpoint with its direction from the item's declaration when the protocol
        states none (``item_direction``: "higher_is_better", "lower_is_better", "none"/None)."""
        if self.direction is not None:
            return self
        return replace(self, direction=ITEM_DIRECTIONS.get(item_direction or ""))


@dataclass(frozen=True, slots=True)
class IntendedUse:
    """What the study validates the model for, as the protocol states it (``intended_use``):
    the task (e.g. replies to patient portal messages), the setting (e.g. primary care, a
    hospital's patient portal), the specialty or population, and the language; each free text,
    None where the protocol leaves it out. What a validation register files the result under."""

    task: str | None = None
    setting: str | None = None
    population: str | None = None
    language: str | None = None

    def described(self) -> list[tuple[str, str]]:
        """(field in words, value) of the fields stated, in order."""
        words = dict(zip(INTENDED_USE_FIELDS, INTENDED_USE_WORDS, strict=True))
        return [(words[f], v) for f in INTENDED_USE_FIELDS if (v := getattr(self, f))]


INTENDED_USE_FIELDS = ("task", "setting", "population", "language")
"""The fields of the protocol's ``intended_use`` object, in the order they are shown."""

INTENDED_USE_WORDS = ("Task", "Setting", "Specialty or population", "Language")
"""How each field of ``INTENDED_USE_FIELDS`` is named on a screen or in the report."""

MAX_INTENDED_USE_CHARS = 500
"""The longest text a field of the intended use may hold (a sentence or two, not a document)."""


@dataclass(frozen=True, slots=True)
class Plan:
    """A locked protocol, parsed (``parse``) and, once read from the store, with its row.

    ``content`` is the protocol exactly as locked (read-only), for display and the hash.
    ``endpoints``: the primary first (when there is one), then the secondary ones in order.
    ``test_arm`` / ``reference_arm``: as the protocol names them (None: unnamed; ``arms_for``
    falls back to the study's only LLM and only clinician arm).
    """

    content: Mapping[str, Any]
    endpoints: tuple[Endpoint, ...] = ()
    test_arm: str | None = None
    reference_arm: str | None = None
    multiplicity: str = "holm"
    display: str | None = None
    single_answer_cases: bool = False
    intended_use: IntendedUse | None = None
    version: int | None = None
    content_hash: str | None = None
    reason: str | None = None
    locked_at: dt.datetime | None = None
    locked_by: str | None = None

    @property
    def primary(self) -> Endpoint | None:
        return next((e for e in self.endpoints if e.role == "primary"), None)

    @property
    def secondary(self) -> tuple[Endpoint, ...]:
        return tuple(e for e in self.endpoints if e.role == "secondary")

    @property
    def seed(self) -> int | None:
        """The analyses' bootstrap seed: from the content hash (``canonical.seed_from_hash``),
        so one plan on one set of ratings gives one set of figures wherever it is shown."""
        return seed_from_hash(self.content_hash) if self.content_hash else None

    @property
    def calibration(self):  # -> study.phases.Calibration | None
        from study.phases import calibration_of

        return calibration_of(self.content)

    @property
    def repeats(self):  # -> study.phases.Repeats | None
        from study.phases import repeats_of

        return repeats_of(self.content)

    @property
    def has_phases(self) -> bool:
        """Whether the protocol names a calibration round or repeats (without parsing them)."""
        return self.content.get("calibration") is not None or (
            self.content.get("repeats") is not None
        )

    def endpoint(self, item: str) -> Endpoint | None:
        """The endpoint on ``item`` (the first, when the plan names it twice)."""
        return next((e for e in self.endpoints if e.item == item), None)

    def arms_for(self, kinds: Mapping[str, str]) -> tuple[str | None, str | None]:
        """(test arm, reference arm): the protocol's, else the study's only LLM arm and only
        clinician arm (``kinds``: arm id -> "llm" | "clinician" | ...)."""
        test, reference = self.test_arm, self.reference_arm
        llm = [a for a, k in kinds.items() if k == "llm"]
        clinician = [a for a, k in kinds.items() if k == "clinician"]
        if test is None and len(llm) == 1:
            test = llm[0]
        if reference is None and len(clinician) == 1:
            reference = clinician[0]
        return test, reference

    def resolve(self, item_directions: Mapping[str, str | None]) -> Plan:
        """This plan with every endpoint's direction filled from its item's declaration where
        the protocol states none (``item_directions``: item key -> declared direction)."""
        return replace(
            self,
            endpoints=tuple(e.resolved(item_directions.get(e.item)) for e in self.endpoints),
        )


def parse(content: Mapping[str, Any] | None, **row: Any) -> Plan:
    """The ``Plan`` of protocol ``content`` (a dict); ``row``: the stored row's version,
    content_hash, reason, locked_at, locked_by.

    Raises ``ValidationError`` naming each field it cannot read (e.g.
    ``secondary_endpoints[1].margin``): a margin that is not a number >= 0 (below 1 for a risk
    difference), a direction other than "higher"/"lower", an alpha outside (0, 0.5), an unknown
    statistic or method, an endpoint without an item, arms that are not {test, reference}.
    """
    content = {} if content is None else content
    if not isinstance(content, Mapping):
        raise ValidationError([_problem("", "a protocol is a JSON object ({...})")])
    problems: list[Problem] = []
    endpoints = []
    primary = primary_spec(content)
    if primary is not None:
        endpoints.append(_endpoint(primary[1], "primary", primary[0], problems))
    secondary = content.get("secondary_endpoints")
    if secondary is not None and not isinstance(secondary, list):
        problems.append(_problem("secondary_endpoints", "a list of endpoints ([...])"))
        secondary = []
    for i, given in enumerate(secondary or ()):
        spec = {"item": given} if isinstance(given, str) else given
        endpoints.append(_endpoint(spec, "secondary", f"secondary_endpoints[{i}]", problems))
    arms = content.get("arms", {})
    if not isinstance(arms, Mapping) or any(
        k not in ("test", "reference") or not isinstance(v, str) for k, v in arms.items()
    ):
        problems.append(
            _problem("arms", 'names the compared arms: {"test": arm id, "reference": arm id}')
        )
        arms = {}
    display = content.get("display")
    if display is not None and not isinstance(display, str):
        problems.append(_problem("display", "a word (plain, markdown or markdown_breaks)"))
    single = content.get("single_answer_cases", False)
    if not isinstance(single, bool):
        problems.append(_problem("single_answer_cases", "true or false"))
    intended_use = _intended_use(content.get("intended_use"), problems)
    if problems:
        raise ValidationError(problems)
    multiplicity = content.get("multiplicity") or "holm"
    return Plan(
        content=MappingProxyType(dict(content)),
        endpoints=tuple(e for e in endpoints if e is not None),
        test_arm=arms.get("test"),
        reference_arm=arms.get("reference"),
        multiplicity=str(multiplicity),
        display=display,
        single_answer_cases=single,
        intended_use=intended_use,
        version=row.get("version"),
        content_hash=row.get("content_hash"),
        reason=row.get("reason"),
        locked_at=row.get("locked_at"),
        locked_by=row.get("locked_by"),
    )


def item_problems(plan: Plan, items: Mapping[str, Mapping[str, Any]]) -> list[Problem]:
    """What the lock refuses of ``plan`` given the study's items (key -> {type, direction,
    scope, ...}): an endpoint on an item no attached instrument has, a method that is not one of
    the endpoint's statistic (a risk method on a scale item, say), and a tested endpoint whose
    direction neither the protocol nor the item states."""
    problems = []
    for where, endpoint in _located(plan):
        item = items.get(endpoint.item)
        if item is None:
            known = ", ".join(sorted(items)) or "none"
            problems.append(
                _problem(
                    f"{where}.item",
                    f"'{endpoint.item}' is no item of the study's instruments (items: {known})",
                )
            )
            continue
        statistic = endpoint.statistic or (
            "risk_difference" if item.get("type") == "binary" else "mean_difference"
        )
        allowed = METHODS.get(statistic, ())
        for method in (endpoint.method, *endpoint.sensitivity_methods):
            if method is not None and method not in allowed:
                problems.append(
                    _problem(
                        f"{where}.method",
                        f"'{method}' is no method of a {statistic.replace('_', ' ')} (item "
                        f"'{endpoint.item}' is {item.get('type')}); one of {', '.join(allowed)}",
                    )
                )
        if endpoint.tested and endpoint.resolved(item.get("direction")).direction is None:
            problems.append(
                _problem(
                    f"{where}.direction",
                    f"item '{endpoint.item}' declares no direction, so the endpoint must say "
                    'whether "higher" or "lower" is better',
                )
            )
    return problems


def read_plan(cur: Any, study: str, *, version: int | None = None) -> Plan | None:
    """The study's locked protocol ``version`` (default: the newest) as a ``Plan``, or None
    before the lock. ``cur``: a ``Store`` cursor (or anything with ``execute().fetchall()``).

    A locked protocol is never changed (an amendment is a new version), so a caller may keep
    the plan of a given version as long as it likes.
    """
    sql = (
        "SELECT version, content, content_hash, reason, locked_at, locked_by FROM protocols"
        " WHERE study = ?"
    )
    params: list[Any] = [study]
    if version is not None:
        sql += " AND version = ?"
        params.append(int(version))
    rows = cur.execute(sql + " ORDER BY version DESC LIMIT 1", params).fetchall()
    if not rows:
        return None
    number, text, digest, reason, locked_at, locked_by = rows[0]
    return parse_stored(
        text,
        version=number,
        content_hash=digest,
        reason=reason,
        locked_at=locked_at,
        locked_by=locked_by,
    )


def read_plans(cur: Any, study: str) -> list[Plan]:
    """Every locked version of the study's protocol, oldest first (``read_plan``'s plans)."""
    rows = cur.execute(
        "SELECT version, content, content_hash, reason, locked_at, locked_by FROM protocols"
        " WHERE study = ? ORDER BY version",
        [study],
    ).fetchall()
    return [
        parse_stored(t, version=v, content_hash=h, reason=r, locked_at=at, locked_by=by)
        for v, t, h, r, at, by in rows
    ]


NEWEST_VERSION_SQL = "(SELECT max(version) FROM protocols WHERE study = $study)"
"""A scalar subquery for the newest locked version of study ``$study`` (NULL before the lock),
for a statement that reads it together with other things (the rating screen's one statement
per case); ``read_plan`` then reads that version's plan."""


def newest_hash(cur: Any, study: str) -> str | None:
    """The newest locked version's content hash (None before the lock)."""
    rows = cur.execute(
        "SELECT max_by(content_hash, version) FROM protocols WHERE study = ?", [study]
    ).fetchall()
    return rows[0][0] if rows else None


def newest_version(cur: Any, study: str) -> int | None:
    """The newest locked version's number (None before the lock): a cheap check of whether a
    kept plan is still the current one."""
    rows = cur.execute("SELECT max(version) FROM protocols WHERE study = ?", [study]).fetchall()
    return rows[0][0] if rows else None


def parse_stored(text: str | None, **row: Any) -> Plan:
    """``parse`` of a stored protocol's JSON text. A protocol locked before this module read
    every field (one this version would refuse) is still shown: its unreadable endpoints are
    left out, and the analyses say the plan names none, rather than the study going dark."""
    content = json.loads(text) if text else {}
    try:
        return parse(content, **row)
    except ValidationError:
        return Plan(
            content=MappingProxyType(dict(content) if isinstance(content, Mapping) else {}),
            **{k: v for k, v in row.items() if k in _ROW_FIELDS},
        )


_ROW_FIELDS = ("version", "content_hash", "reason", "locked_at", "locked_by")


def _located(plan: Plan) -> list[tuple[str, Endpoint]]:
    located, secondary = [], 0
    for endpoint in plan.endpoints:
        if endpoint.role == "primary":
            located.append(("primary_endpoint", endpoint))
        else:
            located.append((f"secondary_endpoints[{secondary}]", endpoint))
            secondary += 1
    return located


def primary_spec(content: Mapping[str, Any]) -> tuple[str, Any] | None:
    """(field, spec) of the primary endpoint in any of its spellings, as the protocol states it
    (a bare item key is ``{"item": key}``), or None when it names none."""
    given = content.get("primary_endpoint")
    if given is None and content.get("primary_item") is not None:
        spec = {"item": content["primary_item"]}
        for key in ("margin", "direction", "alpha", "method", "statistic"):
            if content.get(key) is not None:
                spec[key] = content[key]
        return "primary_item", spec
    if given is None or given == {}:
        return None
    return "primary_endpoint", {"item": given} if isinstance(given, str) else given


def _endpoint(spec: Any, role: str, where: str, problems: list[Problem]) -> Endpoint | None:
    if not isinstance(spec, Mapping):
        problems.append(_problem(where, 'an endpoint is {"item": key, ...} or an item key'))
        return None
    found = len(problems)
    item = spec.get("item")
    if not isinstance(item, str) or not item.strip():
        problems.append(_problem(f"{where}.item", "the endpoint names no item"))
    statistic = spec.get("statistic")
    if statistic is not None and statistic not in STATISTICS:
        problems.append(_problem(f"{where}.statistic", f"one of {', '.join(STATISTICS)}"))
    margin = spec.get("margin")
    if margin is not None:
        if not _number(margin) or margin < 0:
            problems.append(_problem(f"{where}.margin", f"a number >= 0; got {margin!r}"))
        elif statistic == "risk_difference" and margin >= 1:
            problems.append(
                _problem(
                    f"{where}.margin",
                    f"a risk difference's margin is a share below 1 (0.05 is 5 percentage "
                    f"points); got {margin!r}",
                )
            )
    direction = spec.get("direction")
    if direction is not None and direction not in DIRECTIONS:
        problems.append(_problem(f"{where}.direction", f'"higher" or "lower"; got {direction!r}'))
    alpha = spec.get("alpha", DEFAULT_ALPHA)
    if alpha is None:
        alpha = DEFAULT_ALPHA
    if not _number(alpha) or not 0 < alpha < 0.5:
        problems.append(_problem(f"{where}.alpha", f"a one-sided alpha in (0, 0.5); got {alpha!r}"))
    allowed = METHODS.get(statistic) if statistic else None
    every = sorted({m for ms in METHODS.values() for m in ms})
    method = spec.get("method")
    if method is not None and method not in (allowed or every):
        problems.append(_problem(f"{where}.method", f"one of {', '.join(allowed or every)}"))
    sensitivity = spec.get("sensitivity_methods") or []
    if not isinstance(sensitivity, list) or any(m not in (allowed or every) for m in sensitivity):
        problems.append(
            _problem(f"{where}.sensitivity_methods", f"a list of {', '.join(allowed or every)}")
        )
        sensitivity = []
    name = spec.get("name")
    if len(problems) > found:
        return None
    return Endpoint(
        item=item,
        role=role,
        statistic=statistic,
        margin=None if margin is None else float(margin),
        direction=direction,
        alpha=float(alpha),
        method=method,
        sensitivity_methods=tuple(sensitivity) if role == "primary" else (),
        name=name if isinstance(name, str) else None,
    )


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def _intended_use(given: Any, problems: list[Problem]) -> IntendedUse | None:
    """The protocol's ``intended_use`` object read (None when it has none); each field it cannot
    read is a problem named ``intended_use.<field>``."""
    if given is None:
        return None
    if not isinstance(given, Mapping):
        problems.append(
            _problem("intended_use", "an object naming the task, setting, population, language")
        )
        return None
    for key in given:
        if key not in INTENDED_USE_FIELDS:
            problems.append(
                _problem(
                    f"intended_use.{key}",
                    "not a field of the intended use (task, setting, population, language)",
                )
            )
    fields: dict[str, str | None] = {}
    for name in INTENDED_USE_FIELDS:
        value = given.get(name)
        if value is None:
            fields[name] = None
        elif not isinstance(value, str) or not value.strip():
            problems.append(_problem(f"intended_use.{name}", "a text, not empty"))
        elif len(value) > MAX_INTENDED_USE_CHARS:
            problems.append(
                _problem(
                    f"intended_use.{name}",
                    f"at most {MAX_INTENDED_USE_CHARS} characters (it has {len(value):,})",
                )
            )
        else:
            fields[name] = value.strip()
    return IntendedUse(**fields) if any(fields.values()) else None


def _problem(field_name: str, reason: str) -> Problem:
    return Problem(_WHERE, None, field_name or "(whole protocol)", reason)


def described(plans: Sequence[Plan]) -> list[dict[str, Any]]:
    """The stored rows of ``plans`` as plain dicts (version, content, content_hash, reason,
    locked_at, locked_by), for a report or a manifest."""
    return [
        {
            "version": p.version,
            "content": dict(p.content),
            "content_hash": p.content_hash,
            "reason": p.reason,
            "locked_at": p.locked_at,
            "locked_by": p.locked_by,
        }
        for p in plans
    ]
