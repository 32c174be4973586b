"""The instrument library and a study's instruments (``study.services.instrument_library``); the
instrument definitions themselves are ``tests/test_instruments.py``'s."""

from __future__ import annotations

import pytest
from conftest import INSTRUMENT, OPERATOR, sign_in

from study.errors import ConflictError, NotFoundError, StudyError
from study.services import instrument_library as instruments


def test_instrument_versions_are_immutable(store):
    assert instruments.add_instrument(store, OPERATOR, INSTRUMENT) == ("test_quality", "1.0")
    assert instruments.add_instrument(store, OPERATOR, INSTRUMENT.to_dict()) == (
        "test_quality",
        "1.0",
    )
    changed = INSTRUMENT.to_dict()
    changed["title"] = "Other title"
    with pytest.raises(ConflictError, match="new version"):
        instruments.add_instrument(store, OPERATOR, changed)
    assert instruments.get_instrument(store, OPERATOR, "test_quality", "1.0") == INSTRUMENT
    items = store.read("SELECT item_key, scope, level FROM items ORDER BY position")
    assert items.rows() == [
        ("quality", "answer", "ordinal"),
        ("better", "case", "nominal"),
        ("comment", "answer", "none"),
    ]


def test_attaching_needs_a_stored_instrument_and_a_draft(store, draft):
    coordinator = sign_in(store, "coordinator")
    with pytest.raises(NotFoundError):
        instruments.attach_instrument(store, coordinator, draft, "missing", "1")
    assert instruments.study_instruments(store, coordinator, draft) == [INSTRUMENT]
    assert instruments.study_items(store, coordinator, draft).get_column("item_key").to_list() == [
        "quality",
        "better",
        "comment",
    ]


def test_an_invalid_instrument_definition_is_refused(store):
    broken = INSTRUMENT.to_dict()
    broken["items"][0]["level"] = "ordinalish"
    with pytest.raises(StudyError, match="level"):
        instruments.add_instrument(store, OPERATOR, broken)
    assert store.read("SELECT count(*) FROM instruments").item() == 0


def test_study_items_carry_each_items_prompt(store, draft):
    items = instruments.study_items(store, sign_in(store, "coordinator"), draft)
    assert items.get_column("prompt").to_list() == [item.prompt for item in INSTRUMENT.items]
