"""One rating item and its answer choices: ``Option``, ``Item``, and every check an item passes.

An ``Item`` checks itself when it is built (type, level, direction, scope, options) and checks
each rating given to it (``validate_value``, ``validate_criteria``). ``item_from_dict`` builds one
from a parsed file's table. Problems are collected as ``Fault`` values and raised together as one
``InstrumentError`` (``instrument_error``). The rules are told in ``study.instruments``.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from study.canonical import canonical_json
from study.errors import InstrumentError, StudyError

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
TYPES_WITH_OPTIONS = frozenset(
    {"likert", "binary", "categorical", "pairwise_choice", "rubric_criterion"}
)
"""The item types whose values are a list of options."""

_ITEM_KEY = re.compile(r"[a-z][a-z0-9_]{0,31}")
_MAX_PROMPT = 2000
MAX_LABEL = 200
"""Longest option label or instrument title accepted."""
_MAX_FREE_TEXT = 20_000

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


@dataclass(frozen=True, slots=True)
class Fault:
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


def instrument_error(faults: list[Fault], source: str | None) -> InstrumentError:
    """One ``InstrumentError`` listing ``faults`` a line each, prefixed by ``source``."""
    err = InstrumentError("\n".join(f.render(source) for f in faults))
    err.faults = list(faults)  # type: ignore[attr-defined]  # the loader re-renders with a file
    return err


def is_number(value: Any) -> bool:
    """A finite real number that is not a bool (numpy scalars included)."""
    # bool is an int subclass; a True in a TOML options list is a mistake, not the number 1.
    # numbers.Real also admits numpy scalars, which is what values read from frames are.
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def normal_number(value: Any) -> Any:
    """``2.0`` -> ``2`` (and numpy scalars -> Python numbers) so TOML ``2`` and JSON ``2.0`` hash
    alike; anything that is not a finite number is returned unchanged."""
    if not is_number(value):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    value = float(value)
    return int(value) if value.is_integer() else value


def listing(values: Iterable[Any]) -> str:
    """``values`` joined with commas, for a message."""
    return ", ".join(str(v) for v in values)


@dataclass(frozen=True, slots=True)
class Option:
    """One answer choice: the stored ``value`` (a number, or "A"/"B"/"tie" for pairwise items)
    and the ``label`` the rater sees."""

    value: int | float | str
    label: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", normal_number(self.value))

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
        object.__setattr__(self, "min", normal_number(self.min))
        object.__setattr__(self, "max", normal_number(self.max))
        faults = _item_faults(self)
        if faults:
            raise instrument_error(faults, None)

    @property
    def values(self) -> tuple[int | float | str, ...]:
        """The allowed option values, in the order listed (empty for numeric and free text)."""
        return tuple(option.value for option in self.options)

    def label_for(self, value: Any) -> str:
        """The label of the option whose value is ``value``."""
        for option in self.options:
            if option.value == value and not isinstance(value, bool):
                return option.label
        raise StudyError(f"item '{self.key}': {value!r} is not one of {listing(self.values)}")

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
            if not is_number(value):
                raise StudyError(f"item '{self.key}' takes a number, got {value!r}.")
            if self.min is not None and value < self.min:
                raise StudyError(f"item '{self.key}': {value} is below the minimum {self.min}.")
            if self.max is not None and value > self.max:
                raise StudyError(f"item '{self.key}': {value} is above the maximum {self.max}.")
            return normal_number(value)
        if self.type == "pairwise_choice":
            if isinstance(value, str) and value in self.values:
                return value
        elif is_number(value):
            for allowed in self.values:
                if allowed == value:
                    return allowed
        raise StudyError(f"item '{self.key}': {value!r} is not one of {listing(self.values)}.")

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
                f"({listing(keys)})"
            )
        labels: dict[str, bool] = {}
        for key in keys:
            label = value.get(key)
            if label is None:
                raise StudyError(f"item '{self.key}': criterion {key!r} needs met or not met")
            if isinstance(label, bool):
                labels[key] = label
            elif is_number(label) and label in (0, 1):
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


def text_fault(value: Any, *, max_len: int, blank_ok: bool = False) -> str | None:
    """Why ``value`` is not acceptable text of at most ``max_len`` characters, or None."""
    if not isinstance(value, str):
        return f"must be text, got {type(value).__name__}"
    if not blank_ok and not value.strip():
        return "must not be empty"
    if len(value) > max_len:
        return f"is {len(value)} characters; at most {max_len} are allowed"
    return None


def _item_faults(item: Item) -> list[Fault]:
    where = f"item '{item.key}'" if isinstance(item.key, str) and item.key else "item"
    faults: list[Fault] = []

    def add(field: str, reason: str) -> None:
        faults.append(Fault(where, field, reason))

    if not isinstance(item.key, str) or not _ITEM_KEY.fullmatch(item.key):
        add(
            "key",
            f"{item.key!r} is not a valid key: use 1-32 lower-case letters, digits or "
            "underscores, starting with a letter",
        )
    if (reason := text_fault(item.prompt, max_len=_MAX_PROMPT)) is not None:
        add("prompt", reason)
    if (reason := text_fault(item.help, max_len=_MAX_PROMPT, blank_ok=True)) is not None:
        add("help", reason)
    if not isinstance(item.required, bool):
        add("required", f"must be true or false, got {item.required!r}")
    if item.scope not in SCOPES:
        add("scope", f"unknown scope {item.scope!r}; allowed: {listing(SCOPES)}")
    if item.direction not in DIRECTIONS:
        add("direction", f"unknown direction {item.direction!r}; allowed: {listing(DIRECTIONS)}")
    if item.type not in ITEM_TYPES:
        add("type", f"unknown type {item.type!r}; allowed: {listing(ITEM_TYPES)}")
        return faults  # every remaining rule depends on the type

    kind = item.type
    allowed_levels = LEVELS_BY_TYPE[kind]
    if item.level not in LEVELS:
        add("level", f"unknown level {item.level!r}; allowed: {listing(LEVELS)}")
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
        add("criteria", f"unknown source {item.criteria!r}; allowed: {listing(CRITERIA_SOURCES)}")
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
    if kind not in TYPES_WITH_OPTIONS:
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
        if bound is not None and not is_number(bound):
            add(name, f"must be a finite number, got {bound!r}")
    if is_number(item.min) and is_number(item.max) and not item.min < item.max:
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
        if (reason := text_fault(option.label, max_len=MAX_LABEL)) is not None:
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
                f"pairwise values name screen positions: {listing(repr(v) for v in PAIRWISE_VALUES)}; "
                f"got {unknown[0]!r}",
            )
            return
        if len(set(values)) != len(values):
            add("options", f"duplicate option value in {listing(repr(v) for v in values)}")
            return
        if not {"A", "B"} <= set(values):
            add("options", "a pairwise_choice item needs both 'A' and 'B' (and may offer 'tie')")
        return

    not_numbers = [v for v in values if not is_number(v)]
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
            f"option values must increase in the order listed (lowest first), got {listing(values)}",
        )
        return
    if kind == "likert":
        if len(values) < 3:
            add(
                "options",
                f"a likert item needs at least 3 options, got {len(values)} (use binary for 2)",
            )
        elif any(not isinstance(v, int) for v in values):
            add("options", f"likert values must be whole numbers, got {listing(values)}")
    elif kind == "binary":
        if len(values) != 2:
            add(
                "options",
                f"a binary item has exactly 2 options (values 0 and 1), got {len(values)}",
            )
        elif values != [0, 1]:
            add(
                "options",
                f"binary values must be 0 and 1 (1 = the event, e.g. 'Yes'), got {listing(values)}",
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


def item_from_dict(raw: Any, index: int) -> tuple[Item | None, list[Fault]]:
    """The item a file's ``index``-th item table describes, or None and every fault found."""
    if not isinstance(raw, Mapping):
        return None, [
            Fault(f"item #{index}", None, "must be a table with key, prompt, type, level, ...")
        ]
    key = raw.get("key")
    where = f"item '{key}'" if isinstance(key, str) and key else f"item #{index}"
    faults: list[Fault] = []
    for name in raw:
        if name not in _ITEM_FIELDS:
            faults.append(
                Fault(where, str(name), f"unknown field; allowed: {listing(_ITEM_FIELDS)}")
            )
    required = ["key", "prompt", "type"]
    if raw.get("type") != "free_text":
        required.append("level")
    for name in required:
        if name not in raw:
            faults.append(Fault(where, name, "missing"))

    options: list[Option] = []
    raw_options = raw.get("options", [])
    if not isinstance(raw_options, list):
        faults.append(Fault(where, "options", "must be a list of {value, label} tables"))
    else:
        for number, entry in enumerate(raw_options, 1):
            if not isinstance(entry, Mapping) or set(entry) != {"value", "label"}:
                faults.append(
                    Fault(
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
        return None, [Fault(where, f.field, f.reason) for f in exc.faults]  # type: ignore[attr-defined]
    return item, []
