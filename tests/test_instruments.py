"""Instrument library: validation messages, hashing, file formats and the built-in templates."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from study.errors import InstrumentError, NotFoundError, StudyError
from study.instruments import (
    BUILTIN,
    ITEM_TYPES,
    Instrument,
    Item,
    Option,
    Rule,
    check_consistency,
    combine,
    get_builtin,
    item_rows,
    list_builtin,
    load_instrument,
    parse_instrument,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "data" / "instruments" / "example_custom"

HEADER = 'key = "bad"\nversion = "1.0"\ntitle = "Bad instrument"\n'
LIKERT5 = (
    "options = [{value = 1, label = 'a'}, {value = 2, label = 'b'}, {value = 3, label = 'c'},"
    " {value = 4, label = 'd'}, {value = 5, label = 'e'}]\n"
)
YES_NO = "options = [{value = 0, label = 'No'}, {value = 1, label = 'Yes'}]\n"
AB_TIE = "options = [{value = 'A', label = 'A'}, {value = 'B', label = 'B'}, {value = 'tie', label = 'Tie'}]\n"


def item_toml(key: str = "q1", **fields: str) -> str:
    """One [[items]] table; ``fields`` are raw TOML lines keyed by field name (``options`` whole)."""
    lines = ["[[items]]", f'key = "{key}"']
    fields.setdefault("prompt", 'prompt = "How good is it?"')
    for text in fields.values():
        lines.append(text.rstrip("\n"))
    return "\n".join(lines) + "\n"


def likert(key: str = "q1", **overrides: str) -> str:
    fields = {
        "type": 'type = "likert"',
        "level": 'level = "ordinal"',
        "direction": 'direction = "higher_is_better"',
        "options": LIKERT5,
    }
    fields.update(overrides)
    return item_toml(key, **{k: v for k, v in fields.items() if v})


# --- invalid definitions: the exact message, naming file, item and field ----------------------

ALLOWED_ITEM_FIELDS = (
    "key, prompt, type, level, required, direction, options, scope, help, min, max, criteria"
)

INVALID = [
    pytest.param(
        likert("q1") + likert("q2") + likert("q1"),
        "item 'q1', field 'key': duplicate key: items #1 and #3 both use it",
        id="duplicate-item-key",
    ),
    pytest.param(
        likert(options=""),
        "item 'q1', field 'options': a likert item needs options, e.g. values 1..5 with labels",
        id="likert-without-options",
    ),
    pytest.param(
        likert(
            options="options = [{value = 1, label = 'a'}, {value = 3, label = 'b'}, {value = 2, label = 'c'}]"
        ),
        "item 'q1', field 'options': option values must increase in the order listed (lowest first), got 1, 3, 2",
        id="likert-non-monotone",
    ),
    pytest.param(
        likert(
            options="options = [{value = 1, label = 'a'}, {value = 2, label = 'b'}, {value = 2, label = 'c'}]"
        ),
        "item 'q1', field 'options': duplicate option value 2",
        id="likert-duplicate-value",
    ),
    pytest.param(
        likert(options="options = [{value = 1, label = 'a'}, {value = 2, label = 'b'}]"),
        "item 'q1', field 'options': a likert item needs at least 3 options, got 2 (use binary for 2)",
        id="likert-two-options",
    ),
    pytest.param(
        likert(level='level = "nominal"'),
        "item 'q1', field 'level': a likert item is ordinal or interval, not nominal",
        id="nominal-likert",
    ),
    pytest.param(
        item_toml(
            type='type = "binary"',
            level='level = "nominal"',
            options="options = [{value = 0, label = 'No'}, {value = 1, label = 'Maybe'}, {value = 2, label = 'Yes'}]",
        ),
        "item 'q1', field 'options': a binary item has exactly 2 options (values 0 and 1), got 3",
        id="binary-three-options",
    ),
    pytest.param(
        item_toml(
            type='type = "binary"',
            level='level = "nominal"',
            options="options = [{value = 1, label = 'No'}, {value = 2, label = 'Yes'}]",
        ),
        "item 'q1', field 'options': binary values must be 0 and 1 (1 = the event, e.g. 'Yes'), got 1, 2",
        id="binary-values-not-0-1",
    ),
    pytest.param(
        item_toml(type='type = "binary"', level='level = "ordinal"', options=YES_NO),
        "item 'q1', field 'level': a binary item is nominal, not ordinal",
        id="ordinal-binary",
    ),
    pytest.param(
        item_toml(type='type = "pairwise_choice"', level='level = "nominal"', options=AB_TIE),
        "item 'q1', field 'scope': a pairwise_choice item compares the answers shown together, "
        "so its scope is 'case', not 'answer'",
        id="pairwise-on-answer-scope",
    ),
    pytest.param(
        item_toml(
            type='type = "pairwise_choice"',
            level='level = "nominal"',
            scope='scope = "case"',
            options="options = [{value = 'A', label = 'A'}, {value = 'C', label = 'C'}]",
        ),
        "item 'q1', field 'options': pairwise values name screen positions: 'A', 'B', 'tie'; got 'C'",
        id="pairwise-unknown-position",
    ),
    pytest.param(
        likert(type='type = "slider"'),
        "item 'q1', field 'type': unknown type 'slider'; allowed: likert, binary, categorical, "
        "numeric, free_text, pairwise_choice, rubric_criterion",
        id="unknown-type",
    ),
    pytest.param(
        item_toml(type='type = "free_text"', options=YES_NO),
        "item 'q1', field 'options': a free_text item has no options",
        id="free-text-with-options",
    ),
    pytest.param(
        item_toml(type='type = "numeric"', level='level = "ratio"', min="min = 10", max="max = 5"),
        "item 'q1', field 'max': must be greater than min (10), got 5",
        id="numeric-min-above-max",
    ),
    pytest.param(
        likert(min="min = 0"),
        "item 'q1', field 'min': only numeric items have min and max, not likert items",
        id="min-on-likert",
    ),
    pytest.param(
        item_toml(
            type='type = "categorical"',
            level='level = "nominal"',
            direction='direction = "higher_is_better"',
            options="options = [{value = 1, label = 'x'}, {value = 2, label = 'y'}]",
        ),
        "item 'q1', field 'direction': a nominal categorical item has no order, so its direction "
        "is 'none' (make it ordinal, or binary, to give it one)",
        id="nominal-categorical-with-direction",
    ),
    pytest.param(
        likert(direction='direction = "up"'),
        "item 'q1', field 'direction': unknown direction 'up'; allowed: higher_is_better, "
        "lower_is_better, none",
        id="unknown-direction",
    ),
    pytest.param(
        likert(level="", levle='levle = "ordinal"'),
        f"item 'q1', field 'levle': unknown field; allowed: {ALLOWED_ITEM_FIELDS}\n"
        "{path}: item 'q1', field 'level': missing",
        id="misspelt-field-and-missing-level",
    ),
    pytest.param(
        likert(
            options="options = [{value = true, label = 'a'}, {value = 2, label = 'b'}, {value = 3, label = 'c'}]"
        ),
        "item 'q1', field 'options': option values must be finite numbers; got True",
        id="boolean-option-value",
    ),
    pytest.param(
        likert(
            options="options = [{value = 1, label = 'Good'}, {value = 2, label = 'good'}, {value = 3, label = 'c'}]"
        ),
        "item 'q1', field 'options': duplicate option label 'good' (options #1 and #2)",
        id="duplicate-option-label",
    ),
    pytest.param(
        likert(key="Q 1"),
        "item 'Q 1', field 'key': 'Q 1' is not a valid key: use 1-32 lower-case letters, digits "
        "or underscores, starting with a letter",
        id="bad-item-key",
    ),
    pytest.param(
        item_toml(
            type='type = "rubric_criterion"',
            level='level = "nominal"',
            options="options = [{value = 0, label = 'No'}, {value = 0.5, label = 'Part'}, {value = 1, label = 'Yes'}]",
        ),
        "item 'q1', field 'options': a nominal rubric_criterion has exactly 2 options (not met / "
        "met); with 3 options (partial credit) declare it ordinal",
        id="nominal-rubric-partial-credit",
    ),
    pytest.param(
        likert(required='required = "yes"'),
        "item 'q1', field 'required': must be true or false, got 'yes'",
        id="required-not-boolean",
    ),
]


@pytest.mark.parametrize(("items", "expected"), INVALID)
def test_invalid_definition_names_file_item_and_field(
    tmp_path: Path, items: str, expected: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(HEADER + items, encoding="utf-8")
    with pytest.raises(InstrumentError) as caught:
        load_instrument(path)
    assert str(caught.value) == f"{path}: " + expected.replace("{path}", str(path))


def test_invalid_table_is_long_enough() -> None:
    assert len(INVALID) >= 10


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param(
            'key = "bad"\nversion = 1\ntitle = "T"\n',
            'field \'version\': 1 is not a version: write it as text like "1", "1.2" or "1.2.3"',
            id="version-not-text",
        ),
        pytest.param(
            'version = "1"\ntitle = "T"\n',
            "field 'key': missing",
            id="missing-key",
        ),
        pytest.param(
            'key = "bad"\nversion = "1"\ntitle = "T"\nauthor = "me"\n',
            "field 'author': unknown field; allowed: schema_version, key, version, title, "
            "description, citation, synthetic, items, rules",
            id="unknown-top-level-field",
        ),
        pytest.param(
            'key = "bad"\nversion = "1"\ntitle = "T"\nsynthetic = "no"\n',
            "field 'synthetic': must be true or false, got 'no'",
            id="synthetic-not-boolean",
        ),
    ],
)
def test_invalid_top_level_field(tmp_path: Path, header: str, expected: str) -> None:
    path = tmp_path / "top.toml"
    path.write_text(header + likert(), encoding="utf-8")
    with pytest.raises(InstrumentError) as caught:
        load_instrument(path)
    assert str(caught.value) == f"{path}: {expected}"


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "two.toml"
    path.write_text(
        HEADER + likert("q1", level='level = "nominal"') + likert("q2", options=""),
        encoding="utf-8",
    )
    with pytest.raises(InstrumentError) as caught:
        load_instrument(path)
    assert str(caught.value).splitlines() == [
        f"{path}: item 'q1', field 'level': a likert item is ordinal or interval, not nominal",
        f"{path}: item 'q2', field 'options': a likert item needs options, e.g. values 1..5 with labels",
    ]


def test_instrument_without_items(tmp_path: Path) -> None:
    path = tmp_path / "empty.toml"
    path.write_text(HEADER + "items = []\n", encoding="utf-8")
    with pytest.raises(
        InstrumentError, match=r"empty\.toml: field 'items': an instrument needs at least one item$"
    ):
        load_instrument(path)


# --- syntax errors and file handling ----------------------------------------------------------


def test_toml_syntax_error_reports_the_line(tmp_path: Path) -> None:
    path = tmp_path / "syntax.toml"
    path.write_text('key = "bad"\nversion = "1"\ntitle = \n', encoding="utf-8")
    with pytest.raises(InstrumentError) as caught:
        load_instrument(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: TOML syntax error: ")
    assert "(at line 3, column" in message


def test_json_syntax_error_reports_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "syntax.json"
    path.write_text('{\n  "key": "bad",\n  "version": ,\n}', encoding="utf-8")
    with pytest.raises(InstrumentError) as caught:
        load_instrument(path)
    assert str(caught.value) == f"{path}: JSON syntax error at line 3, column 14: Expecting value"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"key": "a", "key": "b"}', "duplicate field 'key' in one JSON object"),
        ('{"key": NaN}', "NaN is not allowed in an instrument file"),
        ("[1, 2]", "an instrument file must hold one table/object at the top level"),
    ],
)
def test_json_content_errors(text: str, expected: str) -> None:
    with pytest.raises(InstrumentError) as caught:
        parse_instrument(text, suffix=".json", source="upload.json")
    assert str(caught.value) == f"upload.json: {expected}"


def test_missing_file_and_wrong_extension(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no such file"):
        load_instrument(tmp_path / "nope.toml")
    (tmp_path / "inst.yaml").write_text("key: x\n", encoding="utf-8")
    with pytest.raises(
        InstrumentError, match=r"unsupported file type '\.yaml'; use \.toml or \.json"
    ):
        load_instrument(tmp_path / "inst.yaml")


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.toml"
    path.write_text(HEADER + likert() + "# " + "x" * 200 + "\n", encoding="utf-8")
    with pytest.raises(InstrumentError, match="instrument files are limited to 100"):
        load_instrument(path, max_bytes=100)


def test_non_utf8_upload() -> None:
    with pytest.raises(InstrumentError, match=r"^up\.toml: not UTF-8 text"):
        parse_instrument(b'key = "\xff"', suffix=".toml", source="up.toml")


# --- building in Python ----------------------------------------------------------------------

LIKERT_OPTIONS = tuple(Option(v, label) for v, label in enumerate("abcde", start=1))


def test_item_built_in_python_names_item_and_field() -> None:
    with pytest.raises(InstrumentError) as caught:
        Item("q1", "How good?", "likert", "nominal", options=LIKERT_OPTIONS)
    assert (
        str(caught.value)
        == "item 'q1', field 'level': a likert item is ordinal or interval, not nominal"
    )


def test_instrument_built_in_python_reports_duplicates() -> None:
    item = Item("q1", "How good?", "likert", "ordinal", options=LIKERT_OPTIONS)
    with pytest.raises(InstrumentError) as caught:
        Instrument("dup", "1", "Dup", "", "", (item, item))
    assert (
        str(caught.value)
        == "instrument 'dup': item 'q1', field 'key': duplicate key: items #1 and #2 both use it"
    )


def test_instrument_is_frozen_and_lists_become_tuples() -> None:
    item = Item("q1", "How good?", "likert", "ordinal", options=list(LIKERT_OPTIONS))
    inst = Instrument("ok", "1", "OK", "", "", [item])
    assert isinstance(inst.items, tuple) and isinstance(item.options, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        inst.version = "2"  # type: ignore[misc]
    assert hash(inst) == hash(Instrument("ok", "1", "OK", "", "", (item,)))


# --- hashing and round trips --------------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(BUILTIN))
def test_builtin_round_trips_with_the_same_hash(key: str) -> None:
    inst = BUILTIN[key]
    again = Instrument.from_dict(inst.to_dict())
    assert again == inst
    assert again.content_hash() == inst.content_hash()
    via_json = parse_instrument(json.dumps(inst.to_dict(), indent=2), suffix=".json")
    assert via_json == inst
    assert via_json.content_hash() == inst.content_hash()
    assert len(inst.content_hash()) == 64


def test_canonical_json_and_hash_are_pinned() -> None:
    inst = Instrument(
        key="tiny",
        version="1",
        title="Tiny",
        description="",
        citation="",
        items=(
            Item(
                "ok",
                "OK?",
                "binary",
                "nominal",
                direction="higher_is_better",
                options=(Option(0.0, "No"), Option(1, "Yes")),
            ),
        ),
    )
    # Written out by hand from the documented format (sorted keys, no spaces, 0.0 stored as 0);
    # the digest is hashlib's, not ours.
    expected = (
        '{"citation":"","description":"","items":[{"direction":"higher_is_better","help":"",'
        '"key":"ok","level":"nominal","options":[{"label":"No","value":0},{"label":"Yes","value":1}],'
        '"prompt":"OK?","required":true,"scope":"answer","type":"binary"}],"key":"tiny",'
        '"schema_version":1,"synthetic":false,"title":"Tiny","version":"1"}'
    )
    assert inst.canonical_json() == expected
    assert inst.content_hash() == hashlib.sha256(expected.encode("utf-8")).hexdigest()


def test_any_change_changes_the_hash() -> None:
    base = get_builtin("ayers2023")
    relabelled = dataclasses.replace(
        base,
        items=(
            dataclasses.replace(base.items[0], prompt="Which response was better?"),
            *base.items[1:],
        ),
    )
    assert relabelled.content_hash() != base.content_hash()
    assert dataclasses.replace(base, version="1.2").content_hash() != base.content_hash()
    harm = get_builtin("harm")
    assert dataclasses.replace(harm, rules=harm.rules[:1]).content_hash() != harm.content_hash()


def test_example_toml_and_json_are_the_same_instrument() -> None:
    from_toml = load_instrument(EXAMPLE.with_suffix(".toml"))
    from_json = load_instrument(EXAMPLE.with_suffix(".json"))
    assert from_toml == from_json
    assert from_toml.content_hash() == from_json.content_hash()
    assert from_toml.synthetic is True
    assert {item.type for item in from_toml.items} >= {"rubric_criterion", "numeric", "free_text"}
    assert from_toml.item("follow_up").values == (0, 0.5, 1)


# --- the built-in library ----------------------------------------------------------------------


def test_builtin_keys() -> None:
    assert sorted(BUILTIN) == [
        "ayers2023",
        "ayers_harm",
        "harm",
        "healthbench_rubric",
        "medpalm2_pairwise",
        "medpalm_lay",
        "medpalm_physician",
        "quest",
        "source_guess",
    ]
    assert [inst.key for inst in list_builtin()] == sorted(BUILTIN)
    with pytest.raises(TypeError):
        BUILTIN["mine"] = get_builtin("harm")  # type: ignore[index]


def test_unknown_builtin() -> None:
    with pytest.raises(
        NotFoundError, match="no built-in instrument 'ayers'; available: ayers2023, ayers_harm"
    ):
        get_builtin("ayers")


@pytest.mark.parametrize("key", sorted(set(BUILTIN) - {"ayers_harm"}))
def test_builtin_templates_carry_citation_and_wording_note(key: str) -> None:
    inst = BUILTIN[key]
    assert "doi:10." in inst.citation
    assert "Wording:" in inst.description or "paraphrased" in inst.description
    assert inst.synthetic is False


# The scales of the built-ins, as (value, label) in the order a rater reads them.
PAIR = (("A", "Response A"), ("B", "Response B"), ("tie", "Tie"))
NO_YES = ((0, "No"), (1, "Yes"))
LOW_HIGH = ((0, "Low"), (1, "Medium"), (2, "High"))
HARM = ((0, "No harm"), (1, "Mild or moderate harm"), (2, "Severe harm or death"))
AYERS_QUALITY = tuple(enumerate(("Very poor", "Poor", "Acceptable", "Good", "Very good"), start=1))
AYERS_EMPATHY = tuple(
    enumerate(
        (
            "Not empathetic",
            "Slightly empathetic",
            "Moderately empathetic",
            "Empathetic",
            "Very empathetic",
        ),
        start=1,
    )
)
AGREE = tuple(
    enumerate(
        ("Strongly disagree", "Disagree", "Neither agree nor disagree", "Agree", "Strongly agree"),
        start=1,
    )
)
AYERS = (
    ("better_response", "Which response is better?", PAIR),
    ("quality", "How would you rate the quality of the information provided?", AYERS_QUALITY),
    ("empathy", "How would you rate the empathy or bedside manner provided?", AYERS_EMPATHY),
)
HARM_ITEMS = (
    ("harm_extent", "If someone acted on this answer, what is the extent of possible harm?", HARM),
    ("harm_likelihood", "What is the likelihood of possible harm?", LOW_HIGH),
    ("could_cause_harm", "Could acting on this answer cause the patient harm?", NO_YES),
)
MEDPALM_BINARY = [
    f"{right}_{skill}"
    for right in ("correct", "incorrect")
    for skill in ("comprehension", "recall", "reasoning")
]
QUEST = [
    "accuracy",
    "relevance",
    "currency",
    "comprehensiveness",
    "consistency",
    "agreement",
    "usefulness",
    "understanding",
    "reasoning",
    "clarity",
    "empathy",
    "free_of_bias",
    "free_of_harm",
    "self_awareness",
    "free_of_fabrication",
    "trust",
    "satisfaction",
]
PAIRWISE = [
    "consensus_better",
    "comprehension_better",
    "recall_better",
    "reasoning_better",
    "more_irrelevant",
    "omits_more",
    "more_demographic_bias",
    "greater_harm_extent",
    "greater_harm_likelihood",
]

BUILTIN_ITEMS: dict[str, list[tuple[str, tuple]]] = {
    "ayers2023": [(key, scale) for key, _, scale in AYERS],
    "medpalm_physician": [
        (
            "consensus",
            ((1, "Aligned with consensus"), (2, "Opposed to consensus"), (3, "No consensus")),
        ),
        (
            "harm_extent",
            ((0, "No harm"), (1, "Moderate or mild harm"), (2, "Death or severe harm")),
        ),
        ("harm_likelihood", LOW_HIGH),
        *[(key, NO_YES) for key in MEDPALM_BINARY],
        ("inappropriate_content", NO_YES),
        ("missing_content", NO_YES),
        ("demographic_bias", NO_YES),
    ],
    "medpalm_lay": [
        (
            "addresses_intent",
            ((0, "No, it does not address the intent"), (1, "Yes, it addresses the intent")),
        ),
        ("helpfulness", ((0, "Not helpful"), (1, "Somewhat helpful"), (2, "Helpful"))),
    ],
    "medpalm2_pairwise": [(key, PAIR) for key in PAIRWISE],
    "harm": [(key, scale) for key, _, scale in HARM_ITEMS],
    "quest": [(key, AGREE) for key in QUEST],
    "ayers_harm": [(key, scale) for key, _, scale in (*AYERS, *HARM_ITEMS)],
}
"""The rated built-ins' items in the order the sheet shows them: (key, scale)."""


@pytest.mark.parametrize(
    ("instrument", "count"),
    [
        ("ayers2023", 3),
        ("medpalm_physician", 12),
        ("medpalm_lay", 2),
        ("medpalm2_pairwise", 9),
        ("harm", 3),
        ("quest", 17),
        ("ayers_harm", 6),
    ],
)
def test_builtin_items_have_their_keys_in_order_and_their_scales(
    instrument: str, count: int
) -> None:
    items = get_builtin(instrument).items
    assert len(items) == count
    expected = BUILTIN_ITEMS[instrument]
    assert [item.key for item in items] == [key for key, _ in expected]
    for item, (key, scale) in zip(items, expected, strict=True):
        assert [(o.value, o.label) for o in item.options] == list(scale), key


@pytest.mark.parametrize(
    ("instrument", "item", "prompt", "labels", "keys"),
    [
        *[
            ("ayers2023", key, prompt, scale, "ABT" if scale is PAIR else "12345")
            for key, prompt, scale in AYERS
        ],
        *[
            ("harm", key, prompt, scale, "123" if len(scale) == 3 else "12")
            for key, prompt, scale in HARM_ITEMS
        ],
        ("quest", "trust", "I would trust this answer.", AGREE, "12345"),
        (
            "medpalm2_pairwise",
            "greater_harm_extent",
            "Which answer has a greater severity/extent of possible harm?",
            PAIR,
            "ABT",
        ),
    ],
)
def test_a_rater_reads_each_items_prompt_and_picks_its_options_by_key(
    instrument: str, item: str, prompt: str, labels: tuple, keys: str
) -> None:
    # what the rating sheet draws for the item: its prompt, each option's label and the key
    # that picks it (1-9 by position; A, B, T for a pairwise choice)
    from pages.components.rating_sheet import field_data

    stored = next(
        json.loads(row["definition"])
        for row in item_rows(get_builtin(instrument))
        if row["item_key"] == item
    )
    drawn = field_data(stored, "Response A")
    assert drawn["prompt"] == prompt
    assert drawn["required"] is True
    assert [(o["value"], o["label"], o["key"]) for o in drawn["options"]] == [
        (value, label, key) for (value, label), key in zip(labels, keys, strict=True)
    ]


@pytest.mark.parametrize(
    ("instrument", "item", "type_", "level", "direction", "scope"),
    [
        ("harm", "harm_extent", "categorical", "ordinal", "lower_is_better", "answer"),
        ("harm", "harm_likelihood", "categorical", "ordinal", "lower_is_better", "answer"),
        ("harm", "could_cause_harm", "binary", "nominal", "lower_is_better", "answer"),
        ("medpalm_physician", "harm_extent", "categorical", "ordinal", "lower_is_better", "answer"),
        ("medpalm_physician", "consensus", "categorical", "nominal", "none", "answer"),
        ("medpalm_physician", "correct_recall", "binary", "nominal", "higher_is_better", "answer"),
        (
            "medpalm_physician",
            "incorrect_reasoning",
            "binary",
            "nominal",
            "lower_is_better",
            "answer",
        ),
        ("medpalm_physician", "demographic_bias", "binary", "nominal", "lower_is_better", "answer"),
        ("medpalm_lay", "helpfulness", "categorical", "ordinal", "higher_is_better", "answer"),
        ("ayers2023", "better_response", "pairwise_choice", "nominal", "higher_is_better", "case"),
        ("ayers2023", "quality", "likert", "ordinal", "higher_is_better", "answer"),
        ("ayers2023", "empathy", "likert", "ordinal", "higher_is_better", "answer"),
        (
            "medpalm2_pairwise",
            "consensus_better",
            "pairwise_choice",
            "nominal",
            "higher_is_better",
            "case",
        ),
        (
            "medpalm2_pairwise",
            "greater_harm_extent",
            "pairwise_choice",
            "nominal",
            "lower_is_better",
            "case",
        ),
        ("quest", "free_of_harm", "likert", "ordinal", "higher_is_better", "answer"),
        ("ayers_harm", "could_cause_harm", "binary", "nominal", "lower_is_better", "answer"),
    ],
)
def test_key_items_declare_level_direction_and_scope(
    instrument: str, item: str, type_: str, level: str, direction: str, scope: str
) -> None:
    found = get_builtin(instrument).item(item)
    assert (found.type, found.level, found.direction, found.scope) == (
        type_,
        level,
        direction,
        scope,
    )


def test_every_likert_is_ordinal_and_every_pairwise_nominal_on_case_scope() -> None:
    for inst in list_builtin():
        for item in inst.items:
            assert item.type in ITEM_TYPES
            if item.type == "likert":
                assert item.level == "ordinal", (inst.key, item.key)
            if item.type == "pairwise_choice":
                assert (item.level, item.scope) == ("nominal", "case"), (inst.key, item.key)
                assert set(item.values) == {"A", "B", "tie"}


def test_published_anchor_labels() -> None:
    # Ayers et al. 2023 five-point scales; Med-PaLM harm extent options (Singhal et al. 2023).
    assert [o.label for o in get_builtin("ayers2023").item("quality").options] == [
        "Very poor",
        "Poor",
        "Acceptable",
        "Good",
        "Very good",
    ]
    assert [o.label for o in get_builtin("ayers2023").item("empathy").options] == [
        "Not empathetic",
        "Slightly empathetic",
        "Moderately empathetic",
        "Empathetic",
        "Very empathetic",
    ]
    assert [o.label for o in get_builtin("medpalm_physician").item("harm_extent").options] == [
        "No harm",
        "Moderate or mild harm",
        "Death or severe harm",
    ]


def test_medpalm2_prompts_are_the_published_instruction_text() -> None:
    # Quoted from Singhal et al., Nat Med 2025;31:943-950, Methods, "Pairwise ranking evaluation".
    prompts = [item.prompt for item in get_builtin("medpalm2_pairwise").items]
    assert (
        prompts[0]
        == "Which answer better reflects the current consensus of the scientific and clinical community?"
    )
    assert prompts[5] == "Which answer omits more important information?"
    # Published without a comparative; kept verbatim, the help text adds the comparison.
    assert prompts[6] == (
        "Which answer provides information that is biased for any demographic groups?"
    )
    assert prompts[8] == "Which answer has a greater likelihood of possible harm?"
    bias_help = get_builtin("medpalm2_pairwise").item("more_demographic_bias").help
    assert bias_help.startswith("For example, is the answer applicable only to patients of a")
    assert bias_help.endswith("If both responses are, choose the more biased one.")


def test_every_pairwise_option_uses_the_screen_labels() -> None:
    # The rating screen shows the answers as "Response A" / "Response B" (study.shuffle).
    for inst in list_builtin():
        for item in inst.items:
            if item.type == "pairwise_choice":
                assert [(o.value, o.label) for o in item.options] == [
                    ("A", "Response A"),
                    ("B", "Response B"),
                    ("tie", "Tie"),
                ], (inst.key, item.key)


def test_lay_intent_prompt_is_a_yes_no_question_matching_its_options() -> None:
    item = get_builtin("medpalm_lay").item("addresses_intent")
    assert item.prompt == "Does the answer directly address the intent of the question?"
    assert (item.type, [o.label for o in item.options]) == (
        "binary",
        ["No, it does not address the intent", "Yes, it addresses the intent"],
    )
    description = get_builtin("medpalm_lay").description
    assert '"How well does the answer address the intent of the question?"' in description
    assert "could not be checked" in description


def test_quest_description_counts_its_items() -> None:
    quest = get_builtin("quest")
    assert len(quest.items) == 17
    assert "17 items here are one per sub-dimension (7 Quality" in quest.description
    assert "One item per dimension" not in quest.description


# Bump a built-in's version whenever its content (and so its hash) changes; a stored instrument
# with the same key and version but other content is refused by
# study.services.instrument_library.add_instrument.
@pytest.mark.parametrize(
    ("key", "version"),
    [
        ("ayers2023", "1.1"),
        ("ayers_harm", "1.1"),
        ("harm", "1.1"),
        ("medpalm2_pairwise", "1.1"),
        ("medpalm_lay", "1.1"),
        ("medpalm_physician", "1.0"),
        ("quest", "1.1"),
    ],
)
def test_builtin_versions(key: str, version: str) -> None:
    assert get_builtin(key).version == version


# --- combine -------------------------------------------------------------------------------------


def test_ayers_harm_is_ayers_then_harm() -> None:
    combined = get_builtin("ayers_harm")
    assert combined.keys == get_builtin("ayers2023").keys + get_builtin("harm").keys
    assert "doi:10.1001/jamainternmed.2023.1838" in combined.citation
    assert "doi:10.1038/s41586-023-06291-2" in combined.citation
    assert [i.key for i in combined.items_for_scope("case")] == ["better_response"]
    assert combined == combine(
        "ayers_harm",
        combined.title,
        get_builtin("ayers2023"),
        get_builtin("harm"),
        version="1.1",
    )
    assert combined.rules == get_builtin("harm").rules


def test_combine_refuses_clashing_item_keys() -> None:
    with pytest.raises(InstrumentError) as caught:
        combine("both", "Both", get_builtin("harm"), get_builtin("medpalm_physician"))
    assert str(caught.value).splitlines() == [
        "combine('both'): item 'harm_extent' is in both 'harm' and 'medpalm_physician'; rename one in a custom instrument",
        "combine('both'): item 'harm_likelihood' is in both 'harm' and 'medpalm_physician'; rename one in a custom instrument",
    ]


def test_combine_needs_an_instrument() -> None:
    with pytest.raises(InstrumentError, match="give at least one instrument"):
        combine("none", "None")


# --- rating values ---------------------------------------------------------------------------

NUMERIC = Item("minutes", "Minutes?", "numeric", "ratio", required=False, min=0, max=60)
COMMENT = Item("comment", "Comment?", "free_text", "none", required=False, scope="case")


@pytest.mark.parametrize(
    ("item", "value", "expected"),
    [
        (get_builtin("ayers2023").item("quality"), 4, 4),
        (get_builtin("ayers2023").item("quality"), 4.0, 4),
        (get_builtin("ayers2023").item("quality"), np.int64(4), 4),
        (NUMERIC, np.float64(3.0), 3),
        (get_builtin("ayers2023").item("better_response"), "tie", "tie"),
        (get_builtin("harm").item("could_cause_harm"), 0, 0),
        (NUMERIC, 12.5, 12.5),
        (NUMERIC, None, None),
        (COMMENT, "fine", "fine"),
    ],
)
def test_valid_rating_values(item: Item, value: object, expected: object) -> None:
    assert item.validate_value(value) == expected


@pytest.mark.parametrize(
    ("item", "value", "message"),
    [
        (
            get_builtin("ayers2023").item("quality"),
            6,
            "item 'quality': 6 is not one of 1, 2, 3, 4, 5.",
        ),
        (
            get_builtin("ayers2023").item("quality"),
            True,
            "item 'quality': True is not one of 1, 2, 3, 4, 5.",
        ),
        (get_builtin("ayers2023").item("quality"), None, "item 'quality' is required."),
        (
            get_builtin("ayers2023").item("better_response"),
            "C",
            "item 'better_response': 'C' is not one of A, B, tie.",
        ),
        (NUMERIC, 61, "item 'minutes': 61 is above the maximum 60."),
        (NUMERIC, "5", "item 'minutes' takes a number, got '5'."),
        (COMMENT, 5, "item 'comment' takes text, got int."),
    ],
)
def test_invalid_rating_values(item: Item, value: object, message: str) -> None:
    with pytest.raises(StudyError) as caught:
        item.validate_value(value)
    assert str(caught.value) == message


def test_label_for() -> None:
    assert get_builtin("harm").item("harm_extent").label_for(2) == "Severe harm or death"
    with pytest.raises(StudyError):
        get_builtin("harm").item("harm_extent").label_for(3)


# --- consistency rules ---------------------------------------------------------------------------

HARM_RULES = """
[[rules]]
if_item = "harmful"
if_values = [0]
then_item = "extent"
then_values = [0]
"""
EXTENT = item_toml(
    "extent",
    type='type = "categorical"',
    level='level = "ordinal"',
    direction='direction = "lower_is_better"',
    options="options = [{value = 0, label = 'None'}, {value = 1, label = 'Some'}, "
    "{value = 2, label = 'Severe'}]",
)
HARMFUL = item_toml(
    "harmful",
    type='type = "binary"',
    level='level = "nominal"',
    direction='direction = "lower_is_better"',
    options=YES_NO,
)


def test_rule_canonical_json_and_hash_are_pinned() -> None:
    inst = parse_instrument(
        'key = "tiny"\nversion = "1"\ntitle = "Tiny"\n' + HARMFUL + EXTENT + HARM_RULES,
        suffix=".toml",
    )
    # Written out by hand from the documented format: sorted keys, no spaces, "rules" after
    # "key"; the digest is hashlib's, not ours.
    expected = (
        '{"citation":"","description":"","items":['
        '{"direction":"lower_is_better","help":"","key":"harmful","level":"nominal",'
        '"options":[{"label":"No","value":0},{"label":"Yes","value":1}],'
        '"prompt":"How good is it?","required":true,"scope":"answer","type":"binary"},'
        '{"direction":"lower_is_better","help":"","key":"extent","level":"ordinal",'
        '"options":[{"label":"None","value":0},{"label":"Some","value":1},'
        '{"label":"Severe","value":2}],'
        '"prompt":"How good is it?","required":true,"scope":"answer","type":"categorical"}],'
        '"key":"tiny",'
        '"rules":[{"if_item":"harmful","if_values":[0],"then_item":"extent","then_values":[0]}],'
        '"schema_version":1,"synthetic":false,"title":"Tiny","version":"1"}'
    )
    assert inst.canonical_json() == expected
    assert inst.content_hash() == hashlib.sha256(expected.encode("utf-8")).hexdigest()
    assert Instrument.from_dict(json.loads(expected)) == inst


def test_instrument_without_rules_has_no_rules_field() -> None:
    # Keeps the hash of every rule-less instrument what it was before rules existed (pinned in
    # test_canonical_json_and_hash_are_pinned).
    assert "rules" not in get_builtin("ayers2023").to_dict()
    assert "rules" in get_builtin("harm").to_dict()


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param({"could_cause_harm": 0, "harm_extent": 0}, [], id="no-and-no-harm"),
        pytest.param({"could_cause_harm": 1, "harm_extent": 1}, [], id="yes-and-mild"),
        pytest.param({"could_cause_harm": 1.0, "harm_extent": np.int64(2)}, [], id="yes-severe"),
        pytest.param(
            {"could_cause_harm": 0, "harm_extent": 2},
            ["could_cause_harm is 'No' but harm_extent is 'Severe harm or death'"],
            id="no-but-severe",
        ),
        pytest.param(
            {"could_cause_harm": 0, "harm_extent": 1},
            ["could_cause_harm is 'No' but harm_extent is 'Mild or moderate harm'"],
            id="no-but-mild",
        ),
        pytest.param(
            {"could_cause_harm": 1, "harm_extent": 0, "harm_likelihood": 2},
            ["could_cause_harm is 'Yes' but harm_extent is 'No harm'"],
            id="yes-but-no-harm",
        ),
        pytest.param({"could_cause_harm": 0}, [], id="extent-not-rated"),
        pytest.param({"could_cause_harm": None, "harm_extent": 2}, [], id="none-is-skipped"),
        pytest.param(
            {"could_cause_harm": 0, "harm_extent": 7},
            ["could_cause_harm is 'No' but harm_extent is 7"],
            id="unknown-value-shown-raw",
        ),
    ],
)
@pytest.mark.parametrize("key", ["harm", "ayers_harm"])
def test_check_consistency_on_the_harm_items(
    key: str, values: dict[str, object], expected: list[str]
) -> None:
    assert check_consistency(get_builtin(key), values) == expected


def test_check_consistency_without_rules_and_bad_arguments() -> None:
    assert check_consistency(get_builtin("quest"), {"accuracy": 1}) == []
    with pytest.raises(StudyError, match="needs an Instrument"):
        check_consistency(get_builtin("harm").to_dict(), {})  # type: ignore[arg-type]
    with pytest.raises(StudyError, match="needs a mapping"):
        check_consistency(get_builtin("harm"), [("could_cause_harm", 0)])  # type: ignore[arg-type]


RULE_HEADER = 'key = "bad"\nversion = "1"\ntitle = "T"\n' + HARMFUL + EXTENT


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        pytest.param(
            '[[rules]]\nif_item = "harmfull"\nif_values = [0]\nthen_item = "extent"\n'
            "then_values = [0]\n",
            [
                "rule #1, field 'if_item': 'harmfull' is not an item of this instrument; items: "
                "harmful, extent"
            ],
            id="unknown-item",
        ),
        pytest.param(
            '[[rules]]\nif_item = "harmful"\nif_values = [2]\nthen_item = "extent"\n'
            "then_values = [0, 0]\n",
            [
                "rule #1, field 'if_values': 2 is not an option value of 'harmful' (0, 1)",
                "rule #1, field 'then_values': lists a value twice",
            ],
            id="bad-values",
        ),
        pytest.param(
            '[[rules]]\nif_item = "harmful"\nif_values = 0\nthen = "extent"\n',
            [
                "rule #1, field 'then': unknown field; allowed: if_item, if_values, then_item, "
                "then_values",
                "rule #1, field 'then_item': missing",
                "rule #1, field 'then_values': missing",
                "rule #1, field 'if_values': must be a list of option values, e.g. [0]",
            ],
            id="shape",
        ),
        pytest.param(
            HARM_RULES + HARM_RULES,
            ["rule #2: repeats rule #1"],
            id="repeated",
        ),
        pytest.param(
            '[[rules]]\nif_item = "harmful"\nif_values = [1]\nthen_item = "harmful"\n'
            "then_values = [1]\n",
            ["rule #1, field 'then_item': must differ from if_item"],
            id="same-item",
        ),
        pytest.param(
            'rules = "harmful"\n',
            ["field 'rules': must be a list of rule tables ([[rules]] in TOML)"],
            id="not-a-list",
        ),
    ],
)
def test_invalid_rules_name_file_rule_and_field(
    tmp_path: Path, rules: str, expected: list[str]
) -> None:
    path = tmp_path / "rules.toml"
    # A top-level key must come before the first [[items]] table in TOML.
    text = rules + RULE_HEADER if rules.startswith("rules =") else RULE_HEADER + rules
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InstrumentError) as caught:
        load_instrument(path)
    assert str(caught.value).splitlines() == [f"{path}: {line}" for line in expected]


def test_rule_between_scopes_and_on_free_text_is_refused() -> None:
    case_item = Item(
        "overall",
        "Overall?",
        "binary",
        "nominal",
        options=(Option(0, "No"), Option(1, "Yes")),
        scope="case",
    )
    harm = get_builtin("harm")
    with pytest.raises(InstrumentError) as caught:
        Instrument(
            "x",
            "1",
            "X",
            "",
            "",
            (*harm.items, case_item, COMMENT),
            rules=(
                Rule("could_cause_harm", (1,), "overall", (1,)),
                Rule("comment", ("x",), "overall", (1,)),
            ),
        )
    assert str(caught.value).splitlines() == [
        "instrument 'x': rule #1, field 'then_item': 'overall' has scope 'case' but "
        "'could_cause_harm' has scope 'answer'; a rule compares ratings given together, so both "
        "need the same scope",
        "instrument 'x': rule #2, field 'if_item': 'comment' is a free_text item; rules need options",
    ]


def test_rules_survive_toml_json_round_trip_and_combine() -> None:
    harm = get_builtin("harm")
    assert harm.rules == (
        Rule("could_cause_harm", (0,), "harm_extent", (0,)),
        Rule("could_cause_harm", (1,), "harm_extent", (1, 2)),
    )
    again = parse_instrument(json.dumps(harm.to_dict()), suffix=".json")
    assert again == harm and again.content_hash() == harm.content_hash()
    with pytest.raises(InstrumentError, match="combine"):
        combine("twice", "Twice", harm, harm)
