"""An instrument: a versioned, hashed set of items with consistency rules between them.

``Instrument`` checks itself when built (key, version, title, unique item keys, rules) and is
identified by the SHA-256 of its canonical JSON; ``Instrument.from_dict`` builds one from a parsed
file and reports every problem at once. ``Rule`` says which ratings of two items go together;
``check_consistency``, ``broken_rules`` and ``rule_in_words`` judge one set of ratings against
them. ``item_rows`` gives the stored items table's rows, ``severe_values`` the values that report
severe harm.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from study.canonical import canonical_json, sha256_hex
from study.errors import NotFoundError, StudyError
from study.instrument_items import (
    MAX_LABEL,
    SCOPES,
    TYPES_WITH_OPTIONS,
    Fault,
    Item,
    instrument_error,
    item_from_dict,
    listing,
    normal_number,
    text_fault,
)

SCHEMA_VERSION = 1
"""The version of the instrument file format this code reads and writes."""

_INSTRUMENT_KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")
_VERSION = re.compile(r"[0-9]+(\.[0-9]+){0,2}")
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
                object.__setattr__(self, name, tuple(normal_number(v) for v in values))

    def to_dict(self) -> dict[str, Any]:
        return {
            "if_item": self.if_item,
            "if_values": list(self.if_values),
            "then_item": self.then_item,
            "then_values": list(self.then_values),
        }


def _rule_faults(rules: Any, items: tuple[Item, ...]) -> list[Fault]:
    """Problems of ``rules`` (a tuple of Rule) against ``items``; one ``rule #n`` fault each."""
    if not isinstance(rules, tuple):
        return [Fault(None, "rules", "must be a list of rule tables ([[rules]] in TOML)")]
    by_key = {item.key: item for item in items}
    faults: list[Fault] = []
    seen: dict[Rule, int] = {}
    for number, rule in enumerate(rules, 1):
        where = f"rule #{number}"
        if not isinstance(rule, Rule):
            faults.append(Fault(where, None, "is not a Rule(if_item, if_values, ...)"))
            continue
        found: dict[str, Item] = {}
        for side in ("if", "then"):
            key = getattr(rule, f"{side}_item")
            values = getattr(rule, f"{side}_values")
            item = by_key.get(key) if isinstance(key, str) else None
            if item is None:
                faults.append(
                    Fault(
                        where,
                        f"{side}_item",
                        f"{key!r} is not an item of this instrument; items: {listing(by_key)}",
                    )
                )
                continue
            if item.type not in TYPES_WITH_OPTIONS:
                faults.append(
                    Fault(
                        where, f"{side}_item", f"'{key}' is a {item.type} item; rules need options"
                    )
                )
                continue
            found[side] = item
            if not isinstance(values, tuple) or not values:
                faults.append(Fault(where, f"{side}_values", "must be a non-empty list of values"))
                continue
            unknown = [v for v in values if isinstance(v, bool) or v not in item.values]
            if unknown:
                faults.append(
                    Fault(
                        where,
                        f"{side}_values",
                        f"{unknown[0]!r} is not an option value of '{key}' "
                        f"({listing(repr(v) for v in item.values)})",
                    )
                )
            elif len(set(values)) != len(values):
                faults.append(Fault(where, f"{side}_values", "lists a value twice"))
        if len(found) == 2:
            if found["if"].key == found["then"].key:
                faults.append(Fault(where, "then_item", "must differ from if_item"))
            elif found["if"].scope != found["then"].scope:
                faults.append(
                    Fault(
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
            faults.append(Fault(where, None, f"repeats rule #{seen[rule]}"))
        else:
            seen[rule] = number
    return faults


def _rule_from_dict(raw: Any, number: int) -> tuple[Rule | None, list[Fault]]:
    where = f"rule #{number}"
    if not isinstance(raw, Mapping):
        return None, [Fault(where, None, f"must be a table with {listing(_RULE_FIELDS)}")]
    faults = [
        Fault(where, str(name), f"unknown field; allowed: {listing(_RULE_FIELDS)}")
        for name in raw
        if name not in _RULE_FIELDS
    ]
    faults.extend(Fault(where, name, "missing") for name in _RULE_FIELDS if name not in raw)
    for name in ("if_values", "then_values"):
        if name in raw and not isinstance(raw[name], list):
            faults.append(Fault(where, name, "must be a list of option values, e.g. [0]"))
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
        given, then = normal_number(given), normal_number(then)
        if given in rule.if_values and then not in rule.then_values:
            broken.append((rule, given, then))
    return broken


def rule_in_words(instrument: Instrument, rule: Rule, given: Any, then: Any) -> str:
    """A broken rule in the words a rater read: the items' prompts and the options' labels.

    >>> from study.builtin_instruments import get_builtin
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
            raise instrument_error(
                faults, f"instrument '{self.key}'" if isinstance(self.key, str) else None
            )

    # -- lookup --

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(item.key for item in self.items)

    def item(self, key: str) -> Item:
        for item in self.items:
            if item.key == key:
                return item
        raise NotFoundError(
            f"instrument '{self.key}' has no item '{key}'; its items are {listing(self.keys)}"
        )

    def items_for_scope(self, scope: str) -> tuple[Item, ...]:
        """Items rated per answer shown (``"answer"``) or once per assignment (``"case"``)."""
        if scope not in SCOPES:
            raise StudyError(f"unknown scope {scope!r}; allowed: {listing(SCOPES)}")
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
            raise instrument_error(
                [
                    Fault(
                        None, None, "an instrument file must hold one table/object at the top level"
                    )
                ],
                source,
            )
        faults: list[Fault] = []
        for name in data:
            if name not in _INSTRUMENT_FIELDS:
                faults.append(
                    Fault(None, str(name), f"unknown field; allowed: {listing(_INSTRUMENT_FIELDS)}")
                )
        schema = data.get("schema_version", SCHEMA_VERSION)
        if schema != SCHEMA_VERSION or isinstance(schema, bool):
            faults.append(
                Fault(
                    None,
                    "schema_version",
                    f"this Clinval reads schema_version {SCHEMA_VERSION}, got {schema!r}",
                )
            )
        for name in ("key", "version", "title"):
            if name not in data:
                faults.append(Fault(None, name, "missing"))

        items: list[Item] = []
        raw_items = data.get("items")
        if raw_items is None:
            faults.append(Fault(None, "items", "missing; add at least one [[items]] table"))
        elif not isinstance(raw_items, list):
            faults.append(Fault(None, "items", "must be a list of item tables ([[items]] in TOML)"))
        elif not raw_items:
            faults.append(Fault(None, "items", "an instrument needs at least one item"))
        else:
            for index, raw in enumerate(raw_items, 1):
                item, item_faults = item_from_dict(raw, index)
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
            faults.append(Fault(None, "rules", "must be a list of rule tables ([[rules]] in TOML)"))
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
            raise instrument_error(faults, source)
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


def _instrument_faults(inst: Instrument | _InstrumentFields, *, require_items: bool) -> list[Fault]:
    faults: list[Fault] = []

    def add(field: str, reason: str) -> None:
        faults.append(Fault(None, field, reason))

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
    if (reason := text_fault(inst.title, max_len=MAX_LABEL)) is not None:
        add("title", reason)
    if (reason := text_fault(inst.description, max_len=20_000, blank_ok=True)) is not None:
        add("description", reason)
    if (reason := text_fault(inst.citation, max_len=5_000, blank_ok=True)) is not None:
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


def _duplicate_key_faults(keys: list[Any]) -> list[Fault]:
    first: dict[str, int] = {}
    faults = []
    for index, key in enumerate(keys, 1):
        if not isinstance(key, str):
            continue
        if key in first:
            faults.append(
                Fault(
                    f"item '{key}'",
                    "key",
                    f"duplicate key: items #{first[key]} and #{index} both use it",
                )
            )
        else:
            first[key] = index
    return faults


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

    >>> from study.builtin_instruments import get_builtin
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
