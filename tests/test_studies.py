"""Studies (``study.services.studies``): creating a draft, reading it back, study ids."""

from __future__ import annotations

import pytest
from conftest import OPERATOR

from study import audit_verify
from study.errors import ConflictError, NotFoundError, ValidationError
from study.services import studies


def test_create_study_and_read_it_back(store):
    study = studies.create_study(store, OPERATOR, "Statin questions 2026", description="d")
    assert study == "statin-questions-2026"
    row = studies.get_study(store, OPERATOR, study)
    assert (row["name"], row["status"], row["synthetic"]) == (
        "Statin questions 2026",
        "draft",
        False,
    )
    assert studies.list_studies(store, OPERATOR).get_column("id").to_list() == [study]
    with pytest.raises(ConflictError):
        studies.create_study(store, OPERATOR, "Statin questions 2026")
    with pytest.raises(NotFoundError):
        studies.get_study(store, OPERATOR, "nope")


@pytest.mark.parametrize(
    ("study_id", "reason"),
    [
        ("*", "every study"),
        ("", "non-empty"),
        ("a b", "spaces or control"),
        ("a\tb", "spaces or control"),
        ("a\x00b", "spaces or control"),
        ("x" * 201, "at most 200"),
    ],
)
def test_study_ids_are_validated(store, study_id, reason):
    with pytest.raises(ValidationError) as info:
        studies.create_study(store, OPERATOR, "Named", study_id=study_id)
    assert reason in info.value.problems[0].reason
    assert studies.list_studies(store, OPERATOR).height == 0
    assert audit_verify.verify(store).events == 0


def test_a_study_id_of_200_characters_is_accepted(store):
    assert studies.create_study(store, OPERATOR, "Long", study_id="x" * 200) == "x" * 200
