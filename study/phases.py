"""The protocol's optional phases around live rating: a calibration round and repeats.

Pure (no DuckDB): reading and checking the protocol's ``calibration`` and ``repeats`` options,
and scoring a rater's calibration. The design (``study.assignment``) makes the assignments; the
services (``study.services.design``, ``rating``, ``calibration``) store and gate them.

The protocol's options, both optional::

    "calibration": {
        "cases": ["gold-1", "gold-2"],          # case ids of the study, each once
        "expected": {                           # every calibration case, at least one value
            "gold-1": {
                "quality": {"Response A": 4, "Response B": 2},  # answer-scope item: per response
                "better": "A"                                   # case-scope item: one value
            },
            "gold-2": {"quality": {"gold-2-llm": 5}}  # a response may be named by its answer id
        },
        "pass_threshold": 0.8                   # share of expected values matched, in (0, 1]
    },
    "repeats": {"share": 0.1, "washout_days": 14}

A calibration screen shows all of the case's answers in answer-id order ("Response A" is the
answer whose id sorts first), the same for every rater, so a label in ``expected`` names the same
answer for everyone. Values are checked like a rater's (``Item.validate_value``); free-text items
take no expected value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from study.errors import Problem, StudyError
from study.instruments import Item
from study.shuffle import neutral_label

_WHERE = "protocol"

CALIBRATION_KEYS = ("cases", "expected", "pass_threshold")
REPEAT_KEYS = ("share", "washout_days")


@dataclass(frozen=True, slots=True)
class Calibration:
    """The protocol's calibration round, as checked by ``calibration_of``.

    ``expected``: case -> item -> value (case-scope item) or {label or answer id: value}.
    """

    cases: tuple[str, ...]
    expected: Mapping[str, Mapping[str, Any]]
    pass_threshold: float


@dataclass(frozen=True, slots=True)
class Repeats:
    """The protocol's repeats: ``share`` of each rater's live cases (in (0, 1]) come back after
    ``washout_days`` (a whole number of days, >= 1) since the rater's first rating of the case."""

    share: float
    washout_days: int


def _problem(field: str, reason: str) -> Problem:
    return Problem(_WHERE, None, field, reason)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def shape_problems(protocol: Mapping[str, Any]) -> list[Problem]:
    """What is wrong with the shape of the protocol's ``calibration`` and ``repeats`` options,
    before the study's cases and items are looked at (empty when both are absent or well-formed).
    """
    problems: list[Problem] = []
    calibration = protocol.get("calibration")
    if calibration is not None:
        problems += _calibration_shape(calibration)
    repeats = protocol.get("repeats")
    if repeats is not None:
        problems += _repeats_shape(repeats)
    return problems


def _unknown_keys(given: Mapping[str, Any], known: Sequence[str], field: str) -> list[Problem]:
    return [
        _problem(f"{field}.{key}", f"unknown option; {field} takes {', '.join(known)}")
        for key in given
        if key not in known
    ]


def _calibration_shape(calibration: Any) -> list[Problem]:
    if not isinstance(calibration, Mapping):
        return [_problem("calibration", "must be an object with cases, expected, pass_threshold")]
    problems = _unknown_keys(calibration, CALIBRATION_KEYS, "calibration")
    cases = calibration.get("cases")
    if not isinstance(cases, list) or not cases or not all(isinstance(c, str) and c for c in cases):
        problems.append(_problem("calibration.cases", "must be a non-empty list of case ids"))
    elif len(set(cases)) != len(cases):
        twice = sorted({c for c in cases if cases.count(c) > 1})
        problems.append(_problem("calibration.cases", f"lists {', '.join(twice)} twice"))
    expected = calibration.get("expected")
    if not isinstance(expected, Mapping) or not all(
        isinstance(v, Mapping) for v in expected.values()
    ):
        problems.append(
            _problem(
                "calibration.expected",
                "must map each calibration case to its expected values {item: value}",
            )
        )
    threshold = calibration.get("pass_threshold")
    if not _is_number(threshold) or not 0 < threshold <= 1:
        problems.append(
            _problem(
                "calibration.pass_threshold",
                f"must be a share of expected values in (0, 1], e.g. 0.8; got {threshold!r}",
            )
        )
    return problems


def _repeats_shape(repeats: Any) -> list[Problem]:
    if not isinstance(repeats, Mapping):
        return [_problem("repeats", "must be an object with share and washout_days")]
    problems = _unknown_keys(repeats, REPEAT_KEYS, "repeats")
    share = repeats.get("share")
    if not _is_number(share) or not 0 < share <= 1:
        problems.append(
            _problem(
                "repeats.share",
                f"must be the share of each rater's live cases repeated, in (0, 1]; got {share!r}",
            )
        )
    days = repeats.get("washout_days")
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        problems.append(
            _problem(
                "repeats.washout_days",
                "must be a whole number of days >= 1 (a repeat never comes in the same sitting); "
                f"got {days!r}",
            )
        )
    return problems


def calibration_of(protocol: Mapping[str, Any] | None) -> Calibration | None:
    """The protocol's calibration round, or None when it has none (shape checked: a malformed
    one raises ``StudyError``; ``lock_protocol`` never stores one)."""
    given = (protocol or {}).get("calibration")
    if given is None:
        return None
    problems = _calibration_shape(given)
    if problems:
        raise StudyError(str(problems[0]))
    return Calibration(
        tuple(given["cases"]), dict(given["expected"]), float(given["pass_threshold"])
    )


def repeats_of(protocol: Mapping[str, Any] | None) -> Repeats | None:
    """The protocol's repeats, or None when it has none (shape checked as ``calibration_of``)."""
    given = (protocol or {}).get("repeats")
    if given is None:
        return None
    problems = _repeats_shape(given)
    if problems:
        raise StudyError(str(problems[0]))
    return Repeats(float(given["share"]), int(given["washout_days"]))


def content_problems(
    calibration: Calibration,
    *,
    cases: Sequence[str],
    answers: Mapping[str, Sequence[str]],
    items: Mapping[str, Item],
) -> list[Problem]:
    """What is wrong with the calibration's cases and expected values for this study.

    ``cases``: the study's case ids; ``answers``: case -> its answer ids; ``items``: item key ->
    item of the study's instruments. Checks: every calibration case is a case of the study with
    answers, and not every case is one (live rating needs some); ``expected`` names calibration
    cases only and gives each at least one value; every item is an item of the study, not free
    text; an answer-scope item gets {response: value} naming responses the screen shows (labels
    "Response A".. in answer-id order, or answer ids); a case-scope item gets one value, and a
    pairwise item needs a screen of exactly two answers; every value is on the item's scale.
    """
    problems: list[Problem] = []
    known = set(cases)
    gold = list(calibration.cases)
    for case in gold:
        if case not in known:
            problems.append(_problem("calibration.cases", f"'{case}' is not a case of the study"))
        elif not answers.get(case):
            problems.append(_problem("calibration.cases", f"case '{case}' has no answers"))
    if known and known <= set(gold):
        problems.append(
            _problem("calibration.cases", "every case is a calibration case: none is left to rate")
        )
    for case in calibration.expected:
        if case not in gold:
            problems.append(
                _problem(
                    f"calibration.expected.{case}",
                    "expected values for a case that is not in calibration.cases",
                )
            )
    for case in gold:
        values = calibration.expected.get(case)
        if not values:
            problems.append(
                _problem(f"calibration.expected.{case}", "a calibration case needs expected values")
            )
            continue
        if case not in known or not answers.get(case):
            continue
        shown = sorted(answers[case])
        for key, value in values.items():
            problems += _value_problems(case, key, value, items.get(key), shown)
    return problems


def screen_labels(answer_ids: Sequence[str]) -> dict[str, str]:
    """answer id -> the label a calibration screen shows it under (answer-id order)."""
    return {a: neutral_label(n) for n, a in enumerate(sorted(answer_ids), start=1)}


def _value_problems(
    case: str, key: str, value: Any, item: Item | None, shown: list[str]
) -> list[Problem]:
    field = f"calibration.expected.{case}.{key}"
    if item is None:
        return [_problem(field, f"'{key}' is not an item of the study's instruments")]
    if item.type == "free_text":
        return [_problem(field, "a free-text item takes no expected value")]
    if item.scope == "case":
        if isinstance(value, Mapping):
            return [_problem(field, "a case-level item takes one value, not one per response")]
        problems = []
        if item.type == "pairwise_choice" and len(shown) != 2:
            problems.append(
                _problem(field, f"a pairwise item compares two answers; the case has {len(shown)}")
            )
        return problems + _on_scale(field, item, value)
    if not isinstance(value, Mapping):
        if len(shown) == 1:
            return _on_scale(field, item, value)
        return [
            _problem(field, "give one value per response, e.g. {'Response A': 4, 'Response B': 2}")
        ]
    labels = screen_labels(shown)
    names = set(labels) | set(labels.values())
    problems = []
    for name, one in value.items():
        if name not in names:
            problems.append(
                _problem(
                    field,
                    f"the calibration screen shows no '{name}' (it shows "
                    f"{', '.join(sorted(labels.values()))}, answers {', '.join(shown)})",
                )
            )
        else:
            problems += _on_scale(f"{field}.{name}", item, one)
    return problems


def _on_scale(field: str, item: Item, value: Any) -> list[Problem]:
    try:
        item.validate_value(value)
    except StudyError as exc:
        return [_problem(field, f"value outside the item's scale: {exc}")]
    if value is None:
        return [_problem(field, "an expected value cannot be empty")]
    return []


def gold_values(
    calibration: Calibration,
    case: str,
    screen: Mapping[str, str],
    *,
    case_items: set[str] | frozenset[str],
) -> dict[tuple[str, str | None], Any]:
    """(item, label; None for a case-level item) -> expected value, for one calibration case
    whose screen shows ``screen`` (answer id -> label); ``case_items``: the keys of the
    case-level items (a bare value of any other item is the value of a one-answer screen)."""
    out: dict[tuple[str, str | None], Any] = {}
    for key, value in calibration.expected.get(case, {}).items():
        if key in case_items:
            out[(key, None)] = value
        elif isinstance(value, Mapping):
            for name, one in value.items():
                out[(key, screen.get(name, name))] = one
        else:
            out[(key, next(iter(screen.values()), None))] = value
    return out


def score(
    expected: Mapping[tuple[str, str | None], Any], given: Mapping[tuple[str, str | None], Any]
) -> tuple[int, int]:
    """(matched, expected) over one rater's calibration: an expected value is matched when the
    rater's submitted value for the same item and response equals it (numbers compared as
    numbers, 4 == 4.0; text exactly); a value not given counts as not matched."""
    matched = 0
    for where, value in expected.items():
        got = given.get(where)
        if got is None:
            continue
        if _is_number(value) and _is_number(got):
            matched += float(value) == float(got)
        else:
            matched += value == got
    return matched, len(expected)
