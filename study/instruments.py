"""Versioned rating instruments: items, their levels of measurement, and built-in templates.

An **instrument** is a versioned, hashed set of **items** that raters answer. Each item declares
its type, its level of measurement (which fixes the agreement statistics that apply), its
direction (which way is better, needed for non-inferiority) and its scope (rated once per answer
shown, or once per case). Nothing here touches storage or the UI: instruments are frozen values,
validated when they are built, and identified by the SHA-256 of their canonical JSON so a locked
protocol can name exactly the instrument it used.

Public API
----------
``Option(value, label)``; ``Item(key, prompt, type, level, required=True, direction="none",
options=(), scope="answer", help="", min=None, max=None)``; ``Instrument(key, version, title,
description, citation, items, synthetic=False)`` with ``to_dict()``, ``from_dict(data,
source=...)``, ``canonical_json()``, ``content_hash()``, ``item(key)``, ``keys``,
``items_for_scope(scope)``; ``Item.validate_value(value)`` checks one rating and returns it in
canonical form, ``Item.label_for(value)`` gives the label shown for a stored value.
``load_instrument(path)`` reads ``.toml`` or ``.json``; ``parse_instrument(text, suffix=...)``
does the same for uploaded bytes. ``BUILTIN`` (read-only mapping key -> Instrument),
``get_builtin(key)``, ``list_builtin()``, ``combine(key, title, *instruments)``.
``Rule(if_item, if_values, then_item, then_values)`` is a declarative consistency rule held in
``Instrument.rules``; ``check_consistency(instrument, values) -> list[str]`` lists the rules that
one set of ratings breaks.
Every invalid definition raises ``InstrumentError`` whose message lists each problem as
``<file>: item '<key>', field '<field>': <reason>`` (one line per problem, all problems at once).

Item types and what they require
--------------------------------
=================  ==================  ========================================================
type               level               options
=================  ==================  ========================================================
likert             ordinal | interval  >= 3, integer values, increasing (1..5, 0..10)
binary             nominal             exactly 2: values 0 then 1 (1 = the event, e.g. "Yes")
categorical        nominal | ordinal   >= 2 numeric codes; increasing if ordinal; a nominal
                                       categorical item has direction "none"
numeric            interval | ratio    none; optional ``min`` and ``max``
free_text          none                none; direction "none"
pairwise_choice    nominal             values drawn from "A", "B", "tie" (A and B required);
                                       scope "case" (compares the answers shown together)
rubric_criterion   nominal | ordinal   >= 2 numeric values = points awarded, increasing
                                       (0 not met / 1 met; 0 / 0.5 / 1 for partial credit);
                                       nominal only with exactly 2 options;
                   nominal             with ``criteria = "case"``: none (see below)
=================  ==================  ========================================================

A ``rubric_criterion`` item with ``criteria = "case"`` takes its criteria from the case (a
HealthBench-style rubric: each case has its own criteria with points, negative for behaviour to
avoid; see ``study.case_json``). It is nominal, scope ``answer`` and has no options: for each answer
shown, every criterion of the case is rated met (``True``) or not met (``False``), checked by
``Item.validate_criteria`` and stored as one JSON object per answer (``{"c1": true, "c2":
false}``). The built-in ``healthbench_rubric`` is such an item.

``direction`` is ``higher_is_better``, ``lower_is_better`` or ``none``. For a binary item it says
whether value 1 is good (``higher_is_better``) or bad (``lower_is_better``, e.g. "could cause
harm"). For a pairwise item it says what being chosen means: ``higher_is_better`` = the chosen
response is the better one ("which is better?"), ``lower_is_better`` = the chosen response is the
worse one ("which has greater harm?"). Pairwise values "A" and "B" are screen positions, matching
the neutral labels "Response A" / "Response B" of ``study.shuffle``; a pairwise item therefore
needs exactly two answers per case.

Custom instrument files (TOML; JSON has the same fields)
--------------------------------------------------------
::

    key = "discharge_rubric"          # lower-case letters, digits, _; starts with a letter
    version = "1.0"                   # "1", "1.2" or "1.2.3"; bump it on any change
    title = "Discharge advice rubric"
    description = "What the instrument measures, and where its wording comes from."
    citation = "Author A, et al. Journal. Year;Vol:pages. doi:..."   # optional
    synthetic = false                 # true for made-up example content

    [[items]]
    key = "red_flags"                 # <= 32 characters (Stata variable names)
    prompt = "Does the answer tell the patient which symptoms need urgent care?"
    type = "rubric_criterion"
    level = "nominal"                 # required except for free_text
    direction = "higher_is_better"    # default "none"
    scope = "answer"                  # default "answer"; "case" = once per assignment
    required = true                   # default true
    help = "Shown under the prompt."  # optional
    options = [
      { value = 0, label = "Not met" },
      { value = 1, label = "Met" },
    ]

    [[items]]
    key = "reading_minutes"
    prompt = "How many minutes would a patient need to read this answer?"
    type = "numeric"
    level = "ratio"
    min = 0
    max = 60

Consistency rules (optional) say which ratings of two items go together: "if ``if_item`` is one
of ``if_values`` then ``then_item`` must be one of ``then_values``". Both items take options and
have the same scope; every value must be an option value of its item. ::

    [[rules]]                         # could_cause_harm "No" -> harm_extent must be "No harm"
    if_item = "could_cause_harm"
    if_values = [0]
    then_item = "harm_extent"
    then_values = [0]

An instrument without rules has no ``rules`` field in ``to_dict()``, so adding the feature left
the hash of every rule-less instrument unchanged.

A JSON file holds the object that ``Instrument.to_dict()`` returns (``schema_version`` optional).
Unknown fields are errors (a misspelt ``levle`` is caught, not ignored); JSON NaN/Infinity and
duplicate keys are rejected. Values such as ``1.0`` are stored as ``1``, so the same instrument
written in TOML or JSON has the same hash.
"""

from __future__ import annotations

import json
import math
import numbers
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from study.canonical import canonical_json, sha256_hex
from study.errors import InstrumentError, NotFoundError, StudyError

SCHEMA_VERSION = 1

ITEM_TYPES = (
    "likert",
    "binary",
    "categorical",
    "numeric",
    "free_text",
    "pairwise_choice",
    "rubric_criterion",
)
LEVELS = ("nominal", "ordinal", "interval", "ratio", "none")
DIRECTIONS = ("higher_is_better", "lower_is_better", "none")
SCOPES = ("answer", "case")
PAIRWISE_VALUES = ("A", "B", "tie")

LEVELS_BY_TYPE: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "likert": ("ordinal", "interval"),
        "binary": ("nominal",),
        "categorical": ("nominal", "ordinal"),
        "numeric": ("interval", "ratio"),
        "free_text": ("none",),
        "pairwise_choice": ("nominal",),
        "rubric_criterion": ("nominal", "ordinal"),
    }
)
_TYPES_WITH_OPTIONS = frozenset(
    {"likert", "binary", "categorical", "pairwise_choice", "rubric_criterion"}
)

_ITEM_KEY = re.compile(r"[a-z][a-z0-9_]{0,31}")
_INSTRUMENT_KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")
_VERSION = re.compile(r"[0-9]+(\.[0-9]+){0,2}")
_MAX_PROMPT = 2000
_MAX_LABEL = 200
_MAX_FREE_TEXT = 20_000
MAX_FILE_BYTES = 1_000_000

_ITEM_FIELDS = (
    "key",
    "prompt",
    "type",
    "level",
    "required",
    "direction",
    "options",
    "scope",
    "help",
    "min",
    "max",
    "criteria",
)
CRITERIA_SOURCES = ("item", "case")
"""Where a rubric_criterion item's criteria come from: the item itself is one criterion
(``item``, the default), or the item stands for every criterion of the case (``case``)."""
_INSTRUMENT_FIELDS = (
    "schema_version",
    "key",
    "version",
    "title",
    "description",
    "citation",
    "synthetic",
    "items",
    "rules",
)
_RULE_FIELDS = ("if_item", "if_values", "then_item", "then_values")


# --- problems and errors -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Fault:
    """One problem: ``where`` names the item ("item 'q1'" or "item #3"), ``field`` the field."""

    where: str | None
    field: str | None
    reason: str

    def render(self, source: str | None) -> str:
        place = ", ".join(
            part for part in (self.where, f"field '{self.field}'" if self.field else None) if part
        )
        head = ": ".join(part for part in (source, place) if part)
        return f"{head}: {self.reason}" if head else self.reason


def _error(faults: list[_Fault], source: str | None) -> InstrumentError:
    err = InstrumentError("\n".join(f.render(source) for f in faults))
    err.faults = list(faults)  # type: ignore[attr-defined]  # the loader re-renders with a file
    return err


def _is_number(value: Any) -> bool:
    # bool is an int subclass; a True in a TOML options list is a mistake, not the number 1.
    # numbers.Real also admits numpy scalars, which is what values read from frames are.
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _normal_number(value: Any) -> Any:
    """``2.0`` -> ``2`` (and numpy scalars -> Python numbers) so TOML ``2`` and JSON ``2.0`` hash
    alike; anything that is not a finite number is returned unchanged."""
    if not _is_number(value):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    value = float(value)
    return int(value) if value.is_integer() else value


def _listing(values: Iterable[Any]) -> str:
    return ", ".join(str(v) for v in values)


# --- values ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Option:
    """One answer choice: the stored ``value`` (a number, or "A"/"B"/"tie" for pairwise items)
    and the ``label`` the rater sees."""

    value: int | float | str
    label: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", _normal_number(self.value))

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "label": self.label}


@dataclass(frozen=True, slots=True)
class Item:
    """One question put to the rater about an answer (scope "answer") or a case (scope "case").

    ``level`` is the level of measurement used by every agreement statistic on this item;
    ``direction`` says which way is better (see the module docstring for binary and pairwise
    items); ``min``/``max`` bound numeric items only. Raises ``InstrumentError`` when invalid.
    """

    key: str
    prompt: str
    type: str
    level: str
    required: bool = True
    direction: str = "none"
    options: tuple[Option, ...] = ()
    scope: str = "answer"
    help: str = ""
    min: float | None = None
    max: float | None = None
    criteria: str = "item"

    def __post_init__(self) -> None:
        if not isinstance(self.options, tuple):
            options = self.options
            if isinstance(options, str | bytes | Mapping) or not isinstance(options, Iterable):
                options = (options,)
            object.__setattr__(self, "options", tuple(options))
        object.__setattr__(self, "min", _normal_number(self.min))
        object.__setattr__(self, "max", _normal_number(self.max))
        faults = _item_faults(self)
        if faults:
            raise _error(faults, None)

    @property
    def values(self) -> tuple[int | float | str, ...]:
        """The allowed option values, in the order listed (empty for numeric and free text)."""
        return tuple(option.value for option in self.options)

    def label_for(self, value: Any) -> str:
        """The label of the option whose value is ``value``."""
        for option in self.options:
            if option.value == value and not isinstance(value, bool):
                return option.label
        raise StudyError(f"item '{self.key}': {value!r} is not one of {_listing(self.values)}")

    def validate_value(self, value: Any) -> int | float | str | None:
        """Check one rating value for this item and return it in canonical form.

        ``None`` means "not answered" and is accepted only for items with ``required=False``.
        Option items accept exactly an option value (``4.0`` is returned as ``4``); numeric items
        a finite number within ``min``/``max``; free-text items a string of at most 20,000
        characters. Raises ``StudyError`` with a sentence the rater can act on.
        """
        if self.per_case_criteria:
            raise StudyError(
                f"item '{self.key}' is rated per criterion of the case; use validate_criteria"
            )
        if value is None:
            if self.required:
                raise StudyError(f"item '{self.key}' is required.")
            return None
        if self.type == "free_text":
            if not isinstance(value, str):
                raise StudyError(f"item '{self.key}' takes text, got {type(value).__name__}.")
            if len(value) > _MAX_FREE_TEXT:
                raise StudyError(
                    f"item '{self.key}': the text is {len(value)} characters; "
                    f"at most {_MAX_FREE_TEXT} are kept."
                )
            return value
        if self.type == "numeric":
            if not _is_number(value):
                raise StudyError(f"item '{self.key}' takes a number, got {value!r}.")
            if self.min is not None and value < self.min:
                raise StudyError(f"item '{self.key}': {value} is below the minimum {self.min}.")
            if self.max is not None and value > self.max:
                raise StudyError(f"item '{self.key}': {value} is above the maximum {self.max}.")
            return _normal_number(value)
        if self.type == "pairwise_choice":
            if isinstance(value, str) and value in self.values:
                return value
        elif _is_number(value):
            for allowed in self.values:
                if allowed == value:
                    return allowed
        raise StudyError(f"item '{self.key}': {value!r} is not one of {_listing(self.values)}.")

    @property
    def per_case_criteria(self) -> bool:
        """A rubric item whose criteria come from the case (``criteria = "case"``)."""
        return self.criteria == "case"

    def validate_criteria(self, value: Any, keys: Iterable[str]) -> str:
        """Check one answer's met / not-met labels for the case's criteria ``keys``; return them
        as canonical JSON text (what is stored), e.g. ``{"c1":true,"c2":false}``.

        ``value`` maps every criterion key to ``True`` (met) or ``False`` (not met); 1 and 0 are
        accepted as well. Every criterion needs a label (a criterion left out would count as
        not met in the score without anyone having judged it); a key that is not a criterion
        of the case is refused. Raises ``StudyError`` naming the criterion.
        """
        keys = list(keys)
        if not isinstance(value, Mapping):
            raise StudyError(
                f"item '{self.key}' takes met / not met per criterion, e.g. "
                f"{{'{keys[0] if keys else 'c1'}': True}}; got {type(value).__name__}"
            )
        unknown = [k for k in value if k not in keys]
        if unknown:
            raise StudyError(
                f"item '{self.key}': {unknown[0]!r} is not a criterion of this case "
                f"({_listing(keys)})"
            )
        labels: dict[str, bool] = {}
        for key in keys:
            label = value.get(key)
            if label is None:
                raise StudyError(f"item '{self.key}': criterion {key!r} needs met or not met")
            if isinstance(label, bool):
                labels[key] = label
            elif _is_number(label) and label in (0, 1):
                labels[key] = bool(label)
            else:
                raise StudyError(
                    f"item '{self.key}': criterion {key!r} is met (true) or not met (false), "
                    f"not {label!r}"
                )
        return canonical_json(labels)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "key": self.key,
            "prompt": self.prompt,
            "type": self.type,
            "level": self.level,
            "required": self.required,
            "direction": self.direction,
            "scope": self.scope,
            "help": self.help,
            "options": [option.to_dict() for option in self.options],
        }
        if self.min is not None:
            out["min"] = self.min
        if self.max is not None:
            out["max"] = self.max
        if self.criteria != "item":  # absent by default: older instruments keep their hash
            out["criteria"] = self.criteria
        return out


def _text_fault(value: Any, *, max_len: int, blank_ok: bool = False) -> str | None:
    if not isinstance(value, str):
        return f"must be text, got {type(value).__name__}"
    if not blank_ok and not value.strip():
        return "must not be empty"
    if len(value) > max_len:
        return f"is {len(value)} characters; at most {max_len} are allowed"
    return None


def _item_faults(item: Item) -> list[_Fault]:
    where = f"item '{item.key}'" if isinstance(item.key, str) and item.key else "item"
    faults: list[_Fault] = []

    def add(field: str, reason: str) -> None:
        faults.append(_Fault(where, field, reason))

    if not isinstance(item.key, str) or not _ITEM_KEY.fullmatch(item.key):
        add(
            "key",
            f"{item.key!r} is not a valid key: use 1-32 lower-case letters, digits or "
            "underscores, starting with a letter",
        )
    if (reason := _text_fault(item.prompt, max_len=_MAX_PROMPT)) is not None:
        add("prompt", reason)
    if (reason := _text_fault(item.help, max_len=_MAX_PROMPT, blank_ok=True)) is not None:
        add("help", reason)
    if not isinstance(item.required, bool):
        add("required", f"must be true or false, got {item.required!r}")
    if item.scope not in SCOPES:
        add("scope", f"unknown scope {item.scope!r}; allowed: {_listing(SCOPES)}")
    if item.direction not in DIRECTIONS:
        add("direction", f"unknown direction {item.direction!r}; allowed: {_listing(DIRECTIONS)}")
    if item.type not in ITEM_TYPES:
        add("type", f"unknown type {item.type!r}; allowed: {_listing(ITEM_TYPES)}")
        return faults  # every remaining rule depends on the type

    kind = item.type
    allowed_levels = LEVELS_BY_TYPE[kind]
    if item.level not in LEVELS:
        add("level", f"unknown level {item.level!r}; allowed: {_listing(LEVELS)}")
    elif item.level not in allowed_levels:
        add("level", f"a {kind} item is {' or '.join(allowed_levels)}, not {item.level}")

    if kind not in ("numeric",):
        for name in ("min", "max"):
            if getattr(item, name) is not None:
                add(name, f"only numeric items have min and max, not {kind} items")

    if kind == "free_text" and item.direction != "none":
        add("direction", "a free_text item has no direction; use 'none'")
    if kind == "categorical" and item.level == "nominal" and item.direction not in ("none",):
        add(
            "direction",
            "a nominal categorical item has no order, so its direction is 'none' "
            "(make it ordinal, or binary, to give it one)",
        )
    if kind == "pairwise_choice" and item.scope != "case":
        add(
            "scope",
            "a pairwise_choice item compares the answers shown together, so its scope is "
            "'case', not 'answer'",
        )

    if item.criteria not in CRITERIA_SOURCES:
        add("criteria", f"unknown source {item.criteria!r}; allowed: {_listing(CRITERIA_SOURCES)}")
        return faults
    if item.per_case_criteria:
        if kind != "rubric_criterion":
            add(
                "criteria",
                f"only rubric_criterion items take their criteria from the case, not {kind}",
            )
        if item.level != "nominal":
            add("level", "a rubric item with the case's criteria is nominal (met / not met)")
        if item.scope != "answer":
            add("scope", "a rubric item with the case's criteria is rated per answer ('answer')")
        if item.options:
            add(
                "options",
                "a rubric item with the case's criteria has no options: each criterion is met "
                "or not met, and its points come from the case",
            )
        return faults
    if kind == "numeric":
        _numeric_bounds(item, add)
    if kind not in _TYPES_WITH_OPTIONS:
        if item.options:
            add("options", f"a {kind} item has no options")
        return faults
    if not item.options:
        add("options", f"a {kind} item needs options, e.g. {_option_example(kind)}")
        return faults
    _option_faults(item, add)
    return faults


def _option_example(kind: str) -> str:
    return {
        "likert": "values 1..5 with labels",
        "binary": "value 0 'No' and value 1 'Yes'",
        "categorical": "numeric codes with labels",
        "pairwise_choice": "values 'A', 'B' and 'tie'",
        "rubric_criterion": "value 0 'Not met' and value 1 'Met'",
    }[kind]


def _numeric_bounds(item: Item, add: Any) -> None:
    for name in ("min", "max"):
        bound = getattr(item, name)
        if bound is not None and not _is_number(bound):
            add(name, f"must be a finite number, got {bound!r}")
    if _is_number(item.min) and _is_number(item.max) and not item.min < item.max:
        add("max", f"must be greater than min ({item.min}), got {item.max}")


def _option_faults(item: Item, add: Any) -> None:
    kind = item.type
    options = item.options
    bad_shape = [i for i, option in enumerate(options, 1) if not isinstance(option, Option)]
    if bad_shape:
        add("options", f"option #{bad_shape[0]} is not an Option(value, label)")
        return

    seen_labels: dict[str, int] = {}
    for i, option in enumerate(options, 1):
        if (reason := _text_fault(option.label, max_len=_MAX_LABEL)) is not None:
            add("options", f"option #{i}: label {reason}")
        elif (folded := option.label.strip().casefold()) in seen_labels:
            add(
                "options",
                f"duplicate option label {option.label!r} (options #{seen_labels[folded]} and #{i})",
            )
        else:
            seen_labels[folded] = i

    values = [option.value for option in options]
    if kind == "pairwise_choice":
        unknown = [v for v in values if not isinstance(v, str) or v not in PAIRWISE_VALUES]
        if unknown:
            add(
                "options",
                f"pairwise values name screen positions: {_listing(repr(v) for v in PAIRWISE_VALUES)}; "
                f"got {unknown[0]!r}",
            )
            return
        if len(set(values)) != len(values):
            add("options", f"duplicate option value in {_listing(repr(v) for v in values)}")
            return
        if not {"A", "B"} <= set(values):
            add("options", "a pairwise_choice item needs both 'A' and 'B' (and may offer 'tie')")
        return

    not_numbers = [v for v in values if not _is_number(v)]
    if not_numbers:
        add("options", f"option values must be finite numbers; got {not_numbers[0]!r}")
        return
    duplicates = sorted({v for v in values if values.count(v) > 1})
    if duplicates:
        add("options", f"duplicate option value {duplicates[0]}")
        return

    ordered = kind in ("likert", "binary", "rubric_criterion") or item.level == "ordinal"
    if ordered and any(b <= a for a, b in zip(values, values[1:], strict=False)):
        add(
            "options",
            f"option values must increase in the order listed (lowest first), got {_listing(values)}",
        )
        return
    if kind == "likert":
        if len(values) < 3:
            add(
                "options",
                f"a likert item needs at least 3 options, got {len(values)} (use binary for 2)",
            )
        elif any(not isinstance(v, int) for v in values):
            add("options", f"likert values must be whole numbers, got {_listing(values)}")
    elif kind == "binary":
        if len(values) != 2:
            add(
                "options",
                f"a binary item has exactly 2 options (values 0 and 1), got {len(values)}",
            )
        elif values != [0, 1]:
            add(
                "options",
                f"binary values must be 0 and 1 (1 = the event, e.g. 'Yes'), got {_listing(values)}",
            )
    elif kind in ("categorical", "rubric_criterion"):
        if len(values) < 2:
            add("options", f"a {kind} item needs at least 2 options, got {len(values)}")
        elif kind == "rubric_criterion" and item.level == "nominal" and len(values) != 2:
            add(
                "options",
                f"a nominal rubric_criterion has exactly 2 options (not met / met); with "
                f"{len(values)} options (partial credit) declare it ordinal",
            )


# --- consistency rules -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rule:
    """If item ``if_item`` is rated one of ``if_values``, item ``then_item`` must be rated one of
    ``then_values`` (option values of the two items; lists become tuples, ``1.0`` becomes ``1``).

    Checked against its instrument's items when the instrument is built; a rule breaks only when
    both items are rated (``None`` or absent values are skipped: ``required`` handles those).
    """

    if_item: str
    if_values: tuple[int | float | str, ...]
    then_item: str
    then_values: tuple[int | float | str, ...]

    def __post_init__(self) -> None:
        for name in ("if_values", "then_values"):
            values = getattr(self, name)
            if isinstance(values, list | tuple):
                object.__setattr__(self, name, tuple(_normal_number(v) for v in values))

    def to_dict(self) -> dict[str, Any]:
        return {
            "if_item": self.if_item,
            "if_values": list(self.if_values),
            "then_item": self.then_item,
            "then_values": list(self.then_values),
        }


def _rule_faults(rules: Any, items: tuple[Item, ...]) -> list[_Fault]:
    """Problems of ``rules`` (a tuple of Rule) against ``items``; one ``rule #n`` fault each."""
    if not isinstance(rules, tuple):
        return [_Fault(None, "rules", "must be a list of rule tables ([[rules]] in TOML)")]
    by_key = {item.key: item for item in items}
    faults: list[_Fault] = []
    seen: dict[Rule, int] = {}
    for number, rule in enumerate(rules, 1):
        where = f"rule #{number}"
        if not isinstance(rule, Rule):
            faults.append(_Fault(where, None, "is not a Rule(if_item, if_values, ...)"))
            continue
        found: dict[str, Item] = {}
        for side in ("if", "then"):
            key = getattr(rule, f"{side}_item")
            values = getattr(rule, f"{side}_values")
            item = by_key.get(key) if isinstance(key, str) else None
            if item is None:
                faults.append(
                    _Fault(
                        where,
                        f"{side}_item",
                        f"{key!r} is not an item of this instrument; items: {_listing(by_key)}",
                    )
                )
                continue
            if item.type not in _TYPES_WITH_OPTIONS:
                faults.append(
                    _Fault(
                        where, f"{side}_item", f"'{key}' is a {item.type} item; rules need options"
                    )
                )
                continue
            found[side] = item
            if not isinstance(values, tuple) or not values:
                faults.append(_Fault(where, f"{side}_values", "must be a non-empty list of values"))
                continue
            unknown = [v for v in values if isinstance(v, bool) or v not in item.values]
            if unknown:
                faults.append(
                    _Fault(
                        where,
                        f"{side}_values",
                        f"{unknown[0]!r} is not an option value of '{key}' "
                        f"({_listing(repr(v) for v in item.values)})",
                    )
                )
            elif len(set(values)) != len(values):
                faults.append(_Fault(where, f"{side}_values", "lists a value twice"))
        if len(found) == 2:
            if found["if"].key == found["then"].key:
                faults.append(_Fault(where, "then_item", "must differ from if_item"))
            elif found["if"].scope != found["then"].scope:
                faults.append(
                    _Fault(
                        where,
                        "then_item",
                        f"'{found['then'].key}' has scope '{found['then'].scope}' but "
                        f"'{found['if'].key}' has scope '{found['if'].scope}'; a rule compares "
                        "ratings given together, so both need the same scope",
                    )
                )
        if not all(isinstance(v, tuple) for v in (rule.if_values, rule.then_values)):
            continue  # reported above; unhashable values cannot be compared for repeats
        if rule in seen:
            faults.append(_Fault(where, None, f"repeats rule #{seen[rule]}"))
        else:
            seen[rule] = number
    return faults


def _rule_from_dict(raw: Any, number: int) -> tuple[Rule | None, list[_Fault]]:
    where = f"rule #{number}"
    if not isinstance(raw, Mapping):
        return None, [_Fault(where, None, f"must be a table with {_listing(_RULE_FIELDS)}")]
    faults = [
        _Fault(where, str(name), f"unknown field; allowed: {_listing(_RULE_FIELDS)}")
        for name in raw
        if name not in _RULE_FIELDS
    ]
    faults.extend(_Fault(where, name, "missing") for name in _RULE_FIELDS if name not in raw)
    for name in ("if_values", "then_values"):
        if name in raw and not isinstance(raw[name], list):
            faults.append(_Fault(where, name, "must be a list of option values, e.g. [0]"))
    if faults:
        return None, faults
    return Rule(raw["if_item"], raw["if_values"], raw["then_item"], raw["then_values"]), []


def check_consistency(instrument: Instrument, values: Mapping[str, Any]) -> list[str]:
    """The instrument's consistency rules that one set of ratings breaks, as sentences.

    ``values`` maps item key -> rated value for ratings given together: one answer's
    answer-scope items, or one assignment's case-scope items (a merged mapping works too, since a
    rule's two items share a scope). Values should already have passed ``Item.validate_value``.
    A rule is skipped unless both of its items are present and not ``None``. Returns one message
    per broken rule, in rule order, e.g. ``"could_cause_harm is 'No' but harm_extent is
    'Mild or moderate harm'"``; an empty list means consistent. Pure: raises nothing for
    unknown keys in ``values``.
    """
    if not isinstance(instrument, Instrument):
        raise StudyError(f"check_consistency needs an Instrument, got {type(instrument).__name__}")
    if not isinstance(values, Mapping):
        raise StudyError(
            f"check_consistency needs a mapping of item key -> value, got {type(values).__name__}"
        )
    return [
        f"{rule.if_item} is {_shown(instrument.item(rule.if_item), given)} but "
        f"{rule.then_item} is {_shown(instrument.item(rule.then_item), then)}"
        for rule, given, then in broken_rules(instrument, values)
    ]


def broken_rules(instrument: Instrument, values: Mapping[str, Any]) -> list[tuple[Rule, Any, Any]]:
    """The rules of ``instrument`` that ``values`` break, as (rule, value of its if-item, value
    of its then-item), in rule order: what ``check_consistency`` and ``rule_in_words`` word."""
    broken = []
    for rule in instrument.rules:
        given = values.get(rule.if_item)
        then = values.get(rule.then_item)
        if given is None or then is None or isinstance(given, bool) or isinstance(then, bool):
            continue
        given, then = _normal_number(given), _normal_number(then)
        if given in rule.if_values and then not in rule.then_values:
            broken.append((rule, given, then))
    return broken


def rule_in_words(instrument: Instrument, rule: Rule, given: Any, then: Any) -> str:
    """A broken rule in the words a rater read: the items' prompts and the options' labels.

    >>> harm = get_builtin("harm")
    >>> [(rule, given, then)] = broken_rules(harm, {"could_cause_harm": 0, "harm_extent": 1})
    >>> print(rule_in_words(harm, rule, given, then))
    You answered "No" to "Could acting on this answer cause the patient harm?", so "If someone \
acted on this answer, what is the extent of possible harm?" cannot be "Mild or moderate harm": \
pick "No harm", or change the first answer.
    """
    if_item, then_item = instrument.item(rule.if_item), instrument.item(rule.then_item)

    def label(item: Item, value: Any) -> str:
        return next((f'"{o.label}"' for o in item.options if o.value == value), repr(value))

    allowed = " or ".join(label(then_item, value) for value in rule.then_values)
    return (
        f'You answered {label(if_item, given)} to "{if_item.prompt}", so "{then_item.prompt}"'
        f" cannot be {label(then_item, then)}: pick {allowed}, or change the first answer."
    )


def _shown(item: Item, value: Any) -> str:
    """``'label'`` for an option value; the raw value for anything else."""
    for option in item.options:
        if option.value == value:
            return f"'{option.label}'"
    return repr(value)


# --- instruments -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Instrument:
    """A versioned set of items; identified by ``key`` + ``version`` and by ``content_hash()``.

    ``citation`` names the source the wording comes from; ``description`` says what is measured
    and where wording was paraphrased or added; ``synthetic`` marks made-up example content;
    ``rules`` are consistency rules between items (see ``check_consistency``).
    """

    key: str
    version: str
    title: str
    description: str
    citation: str
    items: tuple[Item, ...]
    synthetic: bool = False
    rules: tuple[Rule, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.items, list):
            object.__setattr__(self, "items", tuple(self.items))
        if isinstance(self.rules, list):
            object.__setattr__(self, "rules", tuple(self.rules))
        faults = _instrument_faults(self, require_items=True)
        if not faults:
            faults = _rule_faults(self.rules, self.items)
        if faults:
            raise _error(faults, f"instrument '{self.key}'" if isinstance(self.key, str) else None)

    # -- lookup --

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(item.key for item in self.items)

    def item(self, key: str) -> Item:
        for item in self.items:
            if item.key == key:
                return item
        raise NotFoundError(
            f"instrument '{self.key}' has no item '{key}'; its items are {_listing(self.keys)}"
        )

    def items_for_scope(self, scope: str) -> tuple[Item, ...]:
        """Items rated per answer shown (``"answer"``) or once per assignment (``"case"``)."""
        if scope not in SCOPES:
            raise StudyError(f"unknown scope {scope!r}; allowed: {_listing(SCOPES)}")
        return tuple(item for item in self.items if item.scope == scope)

    # -- serialisation --

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON types only); ``from_dict(to_dict())`` gives an equal instrument.

        ``rules`` appears only when there are rules, so rule-less instruments keep the hash they
        had before rules existed.
        """
        out: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "key": self.key,
            "version": self.version,
            "title": self.title,
            "description": self.description,
            "citation": self.citation,
            "synthetic": self.synthetic,
            "items": [item.to_dict() for item in self.items],
        }
        if self.rules:
            out["rules"] = [rule.to_dict() for rule in self.rules]
        return out

    def canonical_json(self) -> str:
        """Sorted keys, no whitespace, UTF-8 text: the bytes that ``content_hash`` digests."""
        return canonical_json(self.to_dict())

    def content_hash(self) -> str:
        """Hex SHA-256 of ``canonical_json()`` encoded as UTF-8 (64 characters)."""
        return sha256_hex(self.canonical_json())

    @classmethod
    def from_dict(cls, data: Any, *, source: str | None = None) -> Instrument:
        """Build and validate an instrument from plain data (a parsed TOML or JSON document).

        ``source`` (a file name) prefixes every problem line. All problems found are reported
        together in one ``InstrumentError``.
        """
        if not isinstance(data, Mapping):
            raise _error(
                [
                    _Fault(
                        None, None, "an instrument file must hold one table/object at the top level"
                    )
                ],
                source,
            )
        faults: list[_Fault] = []
        for name in data:
            if name not in _INSTRUMENT_FIELDS:
                faults.append(
                    _Fault(
                        None, str(name), f"unknown field; allowed: {_listing(_INSTRUMENT_FIELDS)}"
                    )
                )
        schema = data.get("schema_version", SCHEMA_VERSION)
        if schema != SCHEMA_VERSION or isinstance(schema, bool):
            faults.append(
                _Fault(
                    None,
                    "schema_version",
                    f"this Clinval reads schema_version {SCHEMA_VERSION}, got {schema!r}",
                )
            )
        for name in ("key", "version", "title"):
            if name not in data:
                faults.append(_Fault(None, name, "missing"))

        items: list[Item] = []
        raw_items = data.get("items")
        if raw_items is None:
            faults.append(_Fault(None, "items", "missing; add at least one [[items]] table"))
        elif not isinstance(raw_items, list):
            faults.append(
                _Fault(None, "items", "must be a list of item tables ([[items]] in TOML)")
            )
        elif not raw_items:
            faults.append(_Fault(None, "items", "an instrument needs at least one item"))
        else:
            for index, raw in enumerate(raw_items, 1):
                item, item_faults = _item_from_dict(raw, index)
                faults.extend(item_faults)
                if item is not None:
                    items.append(item)
            faults.extend(
                _duplicate_key_faults(
                    [raw.get("key") if isinstance(raw, Mapping) else None for raw in raw_items]
                )
            )

        rules: list[Rule] = []
        raw_rules = data.get("rules", [])
        if not isinstance(raw_rules, list):
            faults.append(
                _Fault(None, "rules", "must be a list of rule tables ([[rules]] in TOML)")
            )
        else:
            for number, raw in enumerate(raw_rules, 1):
                rule, rule_faults = _rule_from_dict(raw, number)
                faults.extend(rule_faults)
                if rule is not None:
                    rules.append(rule)
            # Checking rules against a partial item list would report items as missing that
            # are only invalid; the item faults above already say what to fix first.
            if not faults and len(rules) == len(raw_rules):
                faults.extend(_rule_faults(tuple(rules), tuple(items)))

        fields = {
            "key": data.get("key", ""),
            "version": data.get("version", ""),
            "title": data.get("title", ""),
            "description": data.get("description", ""),
            "citation": data.get("citation", ""),
            "synthetic": data.get("synthetic", False),
        }
        # Field-level checks on the top level; the item list was checked above.
        probe = _InstrumentFields(**fields, items=tuple(items))
        faults.extend(
            f
            for f in _instrument_faults(probe, require_items=False)
            if f.field not in ("key", "version", "title") or f.field in data
        )
        if faults:
            raise _error(faults, source)
        return cls(**fields, items=tuple(items), rules=tuple(rules))


@dataclass(frozen=True, slots=True)
class _InstrumentFields:
    """The fields of an instrument before it is built, so one checker serves both paths."""

    key: Any
    version: Any
    title: Any
    description: Any
    citation: Any
    items: tuple[Item, ...]
    synthetic: Any = False


def _instrument_faults(
    inst: Instrument | _InstrumentFields, *, require_items: bool
) -> list[_Fault]:
    faults: list[_Fault] = []

    def add(field: str, reason: str) -> None:
        faults.append(_Fault(None, field, reason))

    if not isinstance(inst.key, str) or not _INSTRUMENT_KEY.fullmatch(inst.key):
        add(
            "key",
            f"{inst.key!r} is not a valid key: use 1-64 lower-case letters, digits or "
            "underscores, starting with a letter",
        )
    if not isinstance(inst.version, str) or not _VERSION.fullmatch(inst.version):
        add(
            "version",
            f'{inst.version!r} is not a version: write it as text like "1", "1.2" or "1.2.3"',
        )
    if (reason := _text_fault(inst.title, max_len=_MAX_LABEL)) is not None:
        add("title", reason)
    if (reason := _text_fault(inst.description, max_len=20_000, blank_ok=True)) is not None:
        add("description", reason)
    if (reason := _text_fault(inst.citation, max_len=5_000, blank_ok=True)) is not None:
        add("citation", reason)
    if not isinstance(inst.synthetic, bool):
        add("synthetic", f"must be true or false, got {inst.synthetic!r}")
    if require_items:
        if not isinstance(inst.items, tuple) or not inst.items:
            add("items", "an instrument needs at least one item")
        elif not all(isinstance(item, Item) for item in inst.items):
            add("items", "every entry must be an Item")
        else:
            faults.extend(_duplicate_key_faults([item.key for item in inst.items]))
    return faults


def _duplicate_key_faults(keys: list[Any]) -> list[_Fault]:
    first: dict[str, int] = {}
    faults = []
    for index, key in enumerate(keys, 1):
        if not isinstance(key, str):
            continue
        if key in first:
            faults.append(
                _Fault(
                    f"item '{key}'",
                    "key",
                    f"duplicate key: items #{first[key]} and #{index} both use it",
                )
            )
        else:
            first[key] = index
    return faults


def _item_from_dict(raw: Any, index: int) -> tuple[Item | None, list[_Fault]]:
    if not isinstance(raw, Mapping):
        return None, [
            _Fault(f"item #{index}", None, "must be a table with key, prompt, type, level, ...")
        ]
    key = raw.get("key")
    where = f"item '{key}'" if isinstance(key, str) and key else f"item #{index}"
    faults: list[_Fault] = []
    for name in raw:
        if name not in _ITEM_FIELDS:
            faults.append(
                _Fault(where, str(name), f"unknown field; allowed: {_listing(_ITEM_FIELDS)}")
            )
    required = ["key", "prompt", "type"]
    if raw.get("type") != "free_text":
        required.append("level")
    for name in required:
        if name not in raw:
            faults.append(_Fault(where, name, "missing"))

    options: list[Option] = []
    raw_options = raw.get("options", [])
    if not isinstance(raw_options, list):
        faults.append(_Fault(where, "options", "must be a list of {value, label} tables"))
    else:
        for number, entry in enumerate(raw_options, 1):
            if not isinstance(entry, Mapping) or set(entry) != {"value", "label"}:
                faults.append(
                    _Fault(
                        where,
                        "options",
                        f"option #{number} must be a table with exactly 'value' and 'label'",
                    )
                )
            else:
                options.append(Option(entry["value"], entry["label"]))
    if faults:
        return None, faults
    try:
        item = Item(
            key=raw["key"],
            prompt=raw["prompt"],
            type=raw["type"],
            level=raw.get("level", "none"),
            required=raw.get("required", True),
            direction=raw.get("direction", "none"),
            options=tuple(options),
            scope=raw.get("scope", "answer"),
            help=raw.get("help", ""),
            min=raw.get("min"),
            max=raw.get("max"),
            criteria=raw.get("criteria", "item"),
        )
    except InstrumentError as exc:
        return None, [_Fault(where, f.field, f.reason) for f in exc.faults]  # type: ignore[attr-defined]
    return item, []


# --- files -------------------------------------------------------------------------------------


def parse_instrument(text: str | bytes, *, suffix: str, source: str = "<instrument>") -> Instrument:
    """Parse an instrument from TOML (``suffix=".toml"``) or JSON (``".json"``) text or bytes.

    For uploads that arrive as bytes rather than a path; ``source`` names them in errors.
    Syntax errors report the line and column.
    """
    suffix = suffix.lower()
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InstrumentError(
                f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})"
            ) from None
    text = text.removeprefix("\ufeff")
    if suffix == ".toml":
        try:
            data: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InstrumentError(f"{source}: TOML syntax error: {exc}") from None
    elif suffix == ".json":
        try:
            data = json.loads(
                text,
                parse_constant=_reject_json_constant,
                object_pairs_hook=_json_object_without_duplicates,
            )
        except json.JSONDecodeError as exc:
            raise InstrumentError(
                f"{source}: JSON syntax error at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            ) from None
        except _JsonContentError as exc:
            raise InstrumentError(f"{source}: {exc}") from None
    else:
        raise InstrumentError(
            f"{source}: unsupported file type {suffix or '(none)'!r}; use .toml or .json"
        )
    return Instrument.from_dict(data, source=source)


def load_instrument(path: str | Path, *, max_bytes: int = MAX_FILE_BYTES) -> Instrument:
    """Read and validate an instrument file (``.toml`` or ``.json``, chosen by extension).

    Errors name the file, the item and the field; a missing file raises ``NotFoundError``.
    """
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise InstrumentError(
            f"{file}: unsupported file type {suffix or '(none)'!r}; use .toml or .json"
        )
    try:
        size = file.stat().st_size
    except FileNotFoundError:
        raise NotFoundError(f"{file}: no such file") from None
    if size > max_bytes:
        raise InstrumentError(
            f"{file}: the file is {size} bytes; instrument files are limited to {max_bytes}"
        )
    return parse_instrument(file.read_bytes(), suffix=suffix, source=str(file))


class _JsonContentError(ValueError):
    pass


def _reject_json_constant(name: str) -> Any:
    raise _JsonContentError(f"{name} is not allowed in an instrument file")


def _json_object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name in out:
            raise _JsonContentError(f"duplicate field {name!r} in one JSON object")
        out[name] = value
    return out


# --- combining and the built-in library --------------------------------------------------------


def combine(
    key: str,
    title: str,
    *instruments: Instrument,
    version: str = "1.0",
    description: str | None = None,
    citation: str | None = None,
) -> Instrument:
    """One instrument holding the items of ``instruments`` in order (e.g. Ayers + harm).

    Item keys must be unique across the parts (the parts' consistency rules are kept); ``citation`` defaults to the parts' citations,
    one per line, and ``description`` to a list of the parts with their versions and hashes.
    """
    if not instruments:
        raise InstrumentError(f"combine('{key}'): give at least one instrument to combine")
    owner: dict[str, str] = {}
    clashes = []
    for part in instruments:
        if not isinstance(part, Instrument):
            raise InstrumentError(f"combine('{key}'): {part!r} is not an Instrument")
        for item in part.items:
            if item.key in owner:
                clashes.append(
                    f"combine('{key}'): item '{item.key}' is in both '{owner[item.key]}' and "
                    f"'{part.key}'; rename one in a custom instrument"
                )
            else:
                owner[item.key] = part.key
    if clashes:
        raise InstrumentError("\n".join(clashes))
    if description is None:
        description = (
            "Combines, in this order: "
            + "; ".join(
                f"{part.key} v{part.version} ({part.title}; sha256 {part.content_hash()[:12]})"
                for part in instruments
            )
            + "."
        )
    if citation is None:
        citations: list[str] = []
        for part in instruments:
            for line in part.citation.splitlines():
                if line.strip() and line not in citations:
                    citations.append(line)
        citation = "\n".join(citations)
    return Instrument(
        key=key,
        version=version,
        title=title,
        description=description,
        citation=citation,
        items=tuple(item for part in instruments for item in part.items),
        synthetic=any(part.synthetic for part in instruments),
        rules=tuple(rule for part in instruments for rule in part.rules),
    )


TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"


def _load_builtin() -> Mapping[str, Instrument]:
    found: dict[str, Instrument] = {}
    for file in sorted(TEMPLATE_DIR.glob("*.toml")):
        instrument = load_instrument(file)
        if instrument.key != file.stem:
            raise InstrumentError(
                f"{file}: field 'key': {instrument.key!r} must match the file name {file.stem!r}"
            )
        found[instrument.key] = instrument
    found["ayers_harm"] = combine(
        "ayers_harm",
        "Ayers et al. 2023 preference, quality and empathy, with possible harm",
        found["ayers2023"],
        found["harm"],
        version="1.1",
    )
    return MappingProxyType(dict(sorted(found.items())))


BUILTIN: Mapping[str, Instrument] = _load_builtin()


def get_builtin(key: str) -> Instrument:
    """The built-in instrument ``key``; ``NotFoundError`` lists the available keys."""
    try:
        return BUILTIN[key]
    except KeyError:
        raise NotFoundError(
            f"no built-in instrument '{key}'; available: {_listing(BUILTIN)}"
        ) from None


def list_builtin() -> list[Instrument]:
    """Every built-in instrument, sorted by key."""
    return list(BUILTIN.values())


def item_rows(instrument: Instrument) -> list[dict[str, Any]]:
    """The ``items`` table's rows of ``instrument``, one per item in order (item_key, position,
    type, level, required, direction, scope, options, definition): what adding it stores, and
    what ``audit verify`` derives again from its stored definition to find an edited option
    label or item."""
    return [
        {
            "item_key": item.key,
            "position": position,
            "type": item.type,
            "level": item.level,
            "required": item.required,
            "direction": item.direction,
            "scope": item.scope,
            "options": canonical_json([o.to_dict() for o in item.options])
            if item.options
            else None,
            "definition": canonical_json(item.to_dict()),
        }
        for position, item in enumerate(instrument.items, start=1)
    ]


def severe_values(instruments: Iterable[Instrument]) -> dict[str, set]:
    """Item key -> the values that report severe harm: those whose option label says "severe".

    The built-in harm scales label their top option "Severe harm or death"; a custom instrument
    opts in the same way. A rating with such a value enters the coordinator's safety queue.

    >>> severe_values([get_builtin("harm")])
    {'harm_extent': {2}}
    """
    found: dict[str, set] = {}
    for inst in instruments:
        for item in inst.items:
            values = {o.value for o in item.options if "severe" in o.label.lower()}
            if values:
                found[item.key] = values
    return found
