"""``study.protocol``'s reading of the protocol's intended use (``intended_use``): what the study
validates the model for, locked with the rest and refused at the lock when it cannot be read."""

from __future__ import annotations

import pytest

from study.errors import ValidationError
from study.protocol import MAX_INTENDED_USE_CHARS, IntendedUse, parse


def test_the_intended_use_is_read_with_its_fields_in_words() -> None:
    plan = parse(
        {
            "intended_use": {
                "task": " replies to patient portal messages ",
                "setting": "primary care",
                "language": "English",
            }
        }
    )
    assert plan.intended_use == IntendedUse(
        task="replies to patient portal messages", setting="primary care", language="English"
    )
    assert plan.intended_use.described() == [
        ("Task", "replies to patient portal messages"),
        ("Setting", "primary care"),
        ("Language", "English"),
    ]


def test_a_protocol_without_an_intended_use_has_none() -> None:
    assert parse({}).intended_use is None
    assert parse({"intended_use": {}}).intended_use is None


@pytest.mark.parametrize(
    ("given", "field", "reason"),
    [
        ("portal replies", "intended_use", "an object naming the task"),
        ({"task": ""}, "intended_use.task", "a text, not empty"),
        ({"task": "   "}, "intended_use.task", "a text, not empty"),
        ({"language": 3}, "intended_use.language", "a text, not empty"),
        ({"colour": "blue"}, "intended_use.colour", "not a field of the intended use"),
        (
            {"setting": "x" * (MAX_INTENDED_USE_CHARS + 1)},
            "intended_use.setting",
            f"at most {MAX_INTENDED_USE_CHARS} characters (it has 501)",
        ),
    ],
)
def test_an_unreadable_intended_use_is_refused_naming_its_field(given, field, reason) -> None:
    with pytest.raises(ValidationError) as refused:
        parse({"intended_use": given})
    (problem,) = refused.value.problems
    assert problem.column == field
    assert reason in problem.reason
