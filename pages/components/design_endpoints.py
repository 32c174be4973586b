"""The endpoints of the Design screen's analysis plan (step 5), without widgets: each endpoint's
unit, its defaults from its item, the protocol entry its settings make, and what stops the lock
(``check_plan``: ``study.protocol.parse`` of the assembled protocol, the item checks, and a
field left empty), with each tested endpoint's H0 and H1 as ``analyses.endpoint_hypotheses`` states them.

A margin is entered in the endpoint's own units: rating points for a scale item, percentage
points for a binary one. A risk difference's margin is a share in the protocol (0.05), so the
percentage points typed (5) are divided by 100 there; the draft keeps what was typed, so that a
reload shows the same number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from study.errors import Problem, ValidationError
from study.protocol import ITEM_DIRECTIONS, METHODS, Endpoint, item_problems, parse
from study.services.analyses import DEFAULT_METHODS, endpoint_hypotheses

RATING_POINTS = "rating points"
PERCENTAGE_POINTS = "percentage points"

# where the primary endpoint sits in the protocol (and in ``parse``'s problems)
PRIMARY = "primary_endpoint"

# ``study.protocol.METHODS`` in words a coordinator can choose between
METHOD_NAMES = {
    "t": "Paired t over cases (each case's raters averaged)",
    "bootstrap": "Bootstrap over cases and raters",
    "mixed": "Mixed model (case and rater as random effects)",
    "newcombe": "Newcombe's hybrid score interval",
    "farrington-manning": "Farrington-Manning score test",
    "miettinen-nurminen": "Miettinen-Nurminen score test",
}


def statistic_of(item: Mapping[str, Any] | None) -> str:
    """How an item is compared between arms: "risk_difference" for a binary item, "win_rates"
    for a pairwise choice (descriptive), "mean_difference" otherwise."""
    kind = (item or {}).get("type")
    return {"binary": "risk_difference", "pairwise_choice": "win_rates"}.get(
        kind, "mean_difference"
    )


def unit_of(item: Mapping[str, Any] | None) -> str:
    """The unit a margin of ``item`` is typed in."""
    return PERCENTAGE_POINTS if statistic_of(item) == "risk_difference" else RATING_POINTS


def methods_for(item: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The methods an endpoint on ``item`` may name (none for a descriptive one)."""
    return METHODS.get(statistic_of(item), ())


def declared_direction(item: Mapping[str, Any] | None) -> str | None:
    """The item's declared way of being better, as an endpoint names it; None when it declares
    none: then the coordinator must choose, nothing is assumed."""
    return ITEM_DIRECTIONS.get((item or {}).get("direction") or "")


def new_secondary(item: Mapping[str, Any] | None) -> dict[str, Any]:
    """A secondary endpoint's settings when it is first chosen: no margin (a margin is the
    coordinator's clinical judgement, and the primary's is in other units or for another
    question), the item's declared direction, the statistic's usual method."""
    return {
        "margin": None,
        "direction": declared_direction(item),
        "method": DEFAULT_METHODS.get(statistic_of(item)),
    }


def as_share(margin: float | None, item: Mapping[str, Any] | None) -> float | None:
    """The protocol's margin of a typed one: percentage points / 100 for a binary item (rounded
    so that 5 is 0.05, not 0.05000000000000001), rating points as typed."""
    if margin is None or unit_of(item) != PERCENTAGE_POINTS:
        return margin
    return round(float(margin) / 100, 10)


def endpoint_entry(
    key: str, item: Mapping[str, Any] | None, fields: Mapping[str, Any]
) -> dict[str, Any]:
    """A secondary endpoint as the protocol holds it (``study.demo.demo_protocol``'s shape):
    {"item", "statistic" (binary: risk_difference), "margin", "direction", "method"}; a pairwise
    item {"item", "statistic": "win_rates"}. A field not set is left out, for ``check_plan`` to
    name."""
    statistic = statistic_of(item)
    if statistic == "win_rates":
        return {"item": key, "statistic": statistic}
    entry: dict[str, Any] = {"item": key}
    if statistic == "risk_difference":
        entry["statistic"] = statistic
    margin = as_share(fields.get("margin"), item)
    if margin is not None:
        entry["margin"] = margin
    for name in ("direction", "method"):
        if fields.get(name) is not None:
            entry[name] = fields[name]
    return entry


def where_of(index: int | None) -> str:
    """An endpoint's place in the protocol: the primary (None) or secondary number ``index``."""
    return PRIMARY if index is None else f"secondary_endpoints[{index}]"


@dataclass(frozen=True)
class EndpointCheck:
    """One endpoint of the assembled protocol: where it is, its item, what is wrong with it
    by field ("margin", "direction", "method", ...; "" for the endpoint as a whole), and, when
    nothing is and it is tested, its (H0, H1) in words."""

    where: str
    item: str
    problems: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    hypotheses: tuple[str, str] | None = None

    def on(self, name: str) -> tuple[str, ...]:
        """The problems of field ``name``."""
        return self.problems.get(name, ())


@dataclass(frozen=True)
class PlanCheck:
    """``check_plan``'s answer: the endpoints in protocol order (primary first) and every
    problem as ``Problem`` rows (column: the protocol field, e.g. ``secondary_endpoints[0].
    margin``)."""

    endpoints: tuple[EndpointCheck, ...]
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        """Whether the lock may be offered."""
        return not self.problems

    def endpoint(self, where: str) -> EndpointCheck | None:
        return next((e for e in self.endpoints if e.where == where), None)

    def field_in_words(self, column: str | None) -> str:
        """A problem's protocol field as a coordinator finds it on step 5: "Secondary endpoint
        empathy: margin" for ``secondary_endpoints[0].margin``; any other field as named."""
        endpoint = self.endpoint(_location(column))
        if endpoint is None:
            return column or "(whole protocol)"
        role = "Primary endpoint" if endpoint.where == PRIMARY else "Secondary endpoint"
        name = _field(column)
        return f"{role} {endpoint.item}" + (f": {name.replace('_', ' ')}" if name else "")


def check_plan(
    protocol: Mapping[str, Any],
    items: Mapping[str, Mapping[str, Any]],
    *,
    test: str,
    reference: str,
) -> PlanCheck:
    """What stops ``protocol`` (as ``design_common.protocol_of`` assembles it) from being locked,
    and each endpoint's hypotheses.

    Three sources, in words a coordinator can act on: a margin or a direction not entered (an
    endpoint left without a margin would silently be descriptive, and one without a direction
    has no H0); ``study.protocol.parse`` of the whole protocol (what the plan's readers refuse);
    ``study.protocol.item_problems`` (an item no attached instrument has, a direction neither the
    endpoint nor the item states). One problem per field: the first source that names it.
    ``test`` / ``reference``: the compared arms' names, as the hypotheses say them.
    """
    located = _endpoints(protocol)
    found: list[Problem] = []
    for where, entry in located:
        found += _unentered(where, entry, items.get(entry.get("item") or ""))
    try:
        plan = parse(protocol)
    except ValidationError as error:
        found += error.problems
    else:
        found += item_problems(plan, items)
    problems = _first_per_field(found)
    checks = []
    for where, entry in located:
        own = [p for p in problems if _location(p.column) == where]
        by_field: dict[str, tuple[str, ...]] = {}
        for p in own:
            name = _field(p.column)
            by_field[name] = (*by_field.get(name, ()), p.reason)
        item = items.get(entry.get("item") or "")
        hypotheses = None if own else _hypotheses(where, entry, item, test, reference)
        checks.append(EndpointCheck(where, str(entry.get("item")), by_field, hypotheses))
    return PlanCheck(tuple(checks), tuple(problems))


def _endpoints(protocol: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    located = []
    if isinstance(protocol.get(PRIMARY), Mapping):
        located.append((PRIMARY, protocol[PRIMARY]))
    for i, entry in enumerate(protocol.get("secondary_endpoints") or ()):
        if isinstance(entry, Mapping):
            located.append((where_of(i), entry))
    return located


def _unentered(
    where: str, entry: Mapping[str, Any], item: Mapping[str, Any] | None
) -> list[Problem]:
    """A tested endpoint's fields left empty on the screen."""
    if item is None or entry.get("statistic") == "win_rates":
        return []  # an unknown item is item_problems' to name; win rates need neither
    problems = []
    if entry.get("margin") is None:
        problems.append(
            Problem(
                "protocol",
                None,
                f"{where}.margin",
                f"enter a margin in {unit_of(item)}: how much worse the test arm may be and "
                "still count as non-inferior (0 asks for superiority)",
            )
        )
    if entry.get("direction") is None and declared_direction(item) is None:
        problems.append(
            Problem(
                "protocol",
                None,
                f"{where}.direction",
                f"choose which way is better: item '{entry.get('item')}' does not say whether "
                "a higher or a lower value is better",
            )
        )
    return problems


def _first_per_field(problems: Sequence[Problem]) -> list[Problem]:
    seen: set[str | None] = set()
    kept = []
    for problem in problems:
        if problem.column in seen:
            continue
        seen.add(problem.column)
        kept.append(problem)
    return kept


def _location(column: str | None) -> str:
    return (column or "").split(".", 1)[0]


def _field(column: str | None) -> str:
    parts = (column or "").split(".", 1)
    return parts[1] if len(parts) == 2 else ""


def _hypotheses(
    where: str,
    entry: Mapping[str, Any],
    item: Mapping[str, Any] | None,
    test: str,
    reference: str,
) -> tuple[str, str] | None:
    """(H0, H1) of one endpoint that passed every check, in the words its results row will
    use (``analyses.endpoint_hypotheses``)."""
    content = {PRIMARY: entry} if where == PRIMARY else {"secondary_endpoints": [entry]}
    (parsed,) = parse(content).endpoints
    endpoint: Endpoint = parsed.resolved((item or {}).get("direction"))
    if not endpoint.tested or endpoint.direction is None:
        return None
    binary = statistic_of(item) == "risk_difference"
    return endpoint_hypotheses(endpoint, test, reference, binary=binary)
