"""Provenance that was never recorded: given as the text ``not recorded``, stored as unknown
(never as a value), listed with what it means; an empty field stays an error."""

from __future__ import annotations

import json

import polars as pl
import pytest
from conftest import CASES, new_study, run_app, sign_in, write_jsonl

from study import importing
from study.errors import ValidationError
from study.services import content

ARMS = [
    {"arm_id": "docs", "kind": "clinician", "label": "Physicians"},
    {"arm_id": "gpt4", "kind": "llm", "model_name": "gpt-4", "model_version": "not recorded"},
]


def _answer(case: str, arm: str, **fields: str) -> dict:
    return {"case_id": case, "arm_id": arm, "text": f"{arm} on {case}", **fields}


def _answers() -> list[dict]:
    return [
        _answer("c1", "docs", author_id="not recorded", author_role="not recorded"),
        _answer("c2", "docs", author_id="d7", author_role="GP"),
        _answer("c1", "gpt4", generated_at="not recorded", prompt="not recorded"),
        _answer("c2", "gpt4", generated_at="2024-01-05", prompt="not recorded"),
    ]


def _write(tmp_path, name: str, rows: list[dict], fmt: str):
    if fmt == "jsonl":
        return write_jsonl(tmp_path / f"{name}.jsonl", rows)
    frame = pl.DataFrame(rows).select(pl.all().cast(pl.String))
    path = tmp_path / f"{name}.{fmt}"
    frame.write_csv(path) if fmt == "csv" else frame.write_parquet(path)
    return path


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_not_recorded_is_stored_as_unknown_and_listed(store, tmp_path, fmt) -> None:
    study = new_study(store, "Retrospective")
    coordinator = sign_in(store, "coordinator")
    content.import_arms(store, coordinator, study, _write(tmp_path, "arms", ARMS, fmt))
    content.import_cases(store, coordinator, study, write_jsonl(tmp_path / "c.jsonl", CASES))
    content.import_answers(store, coordinator, study, _write(tmp_path, "answers", _answers(), fmt))
    answers = content.list_answers(store, coordinator, study)
    # nothing invented: the unknown fields are null, the recorded ones kept
    assert answers.select("answer_id", "generated_at", "prompt", "author_id").rows() == [
        ("c1:docs", None, None, None),
        ("c1:gpt4", None, None, None),
        ("c2:docs", None, None, "d7"),
        ("c2:gpt4", "2024-01-05", None, None),
    ]
    unknown = content.unknown_provenance(store, coordinator, study)
    assert unknown.select("arm_id", "field", "level", "answers").rows() == [
        ("docs", "author_id", "answer", 1),
        ("docs", "author_role", "answer", 1),
        ("gpt4", "generated_at", "answer", 1),
        ("gpt4", "model_version", "arm", 2),
        ("gpt4", "prompt", "answer", 2),
    ]
    consequence = dict(zip(unknown["field"], unknown["consequence"], strict=True))
    assert consequence["model_version"] == (
        "model version not recorded: results cannot be tied to a pinned version"
    )


def test_an_empty_field_stays_an_error_and_names_the_marker(tmp_path) -> None:
    arms = pl.DataFrame(ARMS[:1] + [{"arm_id": "x", "kind": "llm", "model_name": "m"}])
    path = tmp_path / "arms.csv"
    arms.write_csv(path)
    with pytest.raises(ValidationError) as info:
        importing.read_arms(path)
    (problem,) = info.value.problems
    assert (problem.row, problem.column) == (2, "model_version")
    assert "write 'not recorded' if the source never recorded it" in problem.reason


@pytest.mark.parametrize(
    ("row", "column"),
    [
        (
            {"arm_id": "docs", "author_id": "d1", "author_role": "GP", "prompt": "not recorded"},
            "prompt",
        ),
        (
            {
                "arm_id": "gpt4",
                "generated_at": "2024-01-05",
                "prompt": "p",
                "author_id": "not recorded",
            },
            "author_id",
        ),
        (
            {
                "arm_id": "docs",
                "author_id": "d1",
                "author_role": "GP",
                "model_version": "not recorded",
            },
            "model_version",
        ),
    ],
)
def test_not_recorded_only_where_the_field_belongs(tmp_path, row, column) -> None:
    arms = importing.read_arms(write_jsonl(tmp_path / "arms.jsonl", ARMS))
    answer = {"case_id": "c1", "text": "t", **row}
    path = tmp_path / "answers.jsonl"
    path.write_text(json.dumps(answer) + "\n", encoding="utf-8")
    with pytest.raises(ValidationError) as info:
        importing.read_answers(path, known_case_ids=["c1"], arms=arms)
    assert [p.column for p in info.value.problems] == [column]


def test_only_the_exact_text_marks_a_field_unknown(tmp_path) -> None:
    arms = importing.read_arms(write_jsonl(tmp_path / "arms.jsonl", ARMS))
    answer = _answer("c1", "gpt4", generated_at="Not Recorded", prompt="p")
    with pytest.raises(ValidationError, match="is not an ISO 8601 date"):
        importing.read_answers(
            write_jsonl(tmp_path / "a.jsonl", [answer]), known_case_ids=["c1"], arms=arms
        )


def test_the_overview_lists_what_was_not_recorded(store, tmp_path, monkeypatch) -> None:

    study = new_study(store, "Retrospective")
    coordinator = sign_in(store, "coordinator")
    content.import_arms(store, coordinator, study, _write(tmp_path, "arms", ARMS, "csv"))
    content.import_cases(store, coordinator, study, write_jsonl(tmp_path / "c.jsonl", CASES))
    content.import_answers(store, coordinator, study, _write(tmp_path, "a", _answers(), "csv"))
    db = store.path
    store.close()  # one process at a time: the app opens the file itself
    at = run_app(monkeypatch, db)
    assert not at.exception, [e.message for e in at.exception]
    assert "Not recorded by the sources" in [s.value for s in at.subheader]
    (table,) = [d.value for d in at.dataframe if "consequence" in d.value.columns]
    assert "model version not recorded: results cannot be tied to a pinned version" in list(
        table["consequence"]
    )


def test_an_arms_unrecorded_author_role_stands_for_its_answers(store, tmp_path) -> None:
    study = new_study(store, "Reader study")
    coordinator = sign_in(store, "coordinator")
    arms = [{"arm_id": "expert", "kind": "clinician", "author_role": "not recorded"}]
    content.import_arms(store, coordinator, study, _write(tmp_path, "arms", arms, "csv"))
    content.import_cases(store, coordinator, study, write_jsonl(tmp_path / "c.jsonl", CASES))
    answers = [_answer("c1", "expert", author_id="not recorded")]
    content.import_answers(store, coordinator, study, _write(tmp_path, "a", answers, "csv"))
    unknown = content.unknown_provenance(store, coordinator, study)
    assert unknown.select("arm_id", "field", "level").rows() == [
        ("expert", "author_id", "answer"),
        ("expert", "author_role", "arm"),
    ]
