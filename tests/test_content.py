"""Cases, arms and answers (``study.services.content``): idempotent, all-or-nothing imports from
files and frames, provenance, and every refused row counted."""

from __future__ import annotations

import json

import polars as pl
import pytest
from conftest import (
    ARMS,
    CASES,
    answers_rows,
    new_study,
    sign_in,
    write_jsonl,
)

from study.errors import StateError, ValidationError
from study.services import content, monitoring


def test_importing_the_same_files_twice_duplicates_nothing(store, draft, tmp_path):
    coordinator = sign_in(store, "coordinator")
    again = content.import_cases(store, coordinator, draft, tmp_path / "cases.jsonl")
    assert (again.rows, again.added, again.skipped) == (4, 0, 4)
    again = content.import_answers(store, coordinator, draft, tmp_path / "answers.jsonl")
    assert (again.rows, again.added, again.skipped) == (8, 0, 8)
    again = content.import_arms(store, coordinator, draft, tmp_path / "arms.jsonl")
    assert (again.added, again.skipped) == (0, 2)
    status = monitoring.study_status(store, coordinator, draft)
    assert (status["cases"], status["arms"], status["answers"]) == (4, 2, 8)


def test_a_stored_case_with_changed_content_is_a_problem_and_nothing_is_added(
    store, draft, tmp_path
):
    coordinator = sign_in(store, "coordinator")
    rows = [*CASES, {"case_id": "c9", "question": "New?"}]
    rows[1] = dict(rows[1], question="Changed wording?")
    with pytest.raises(ValidationError) as info:
        content.import_cases(
            store, coordinator, draft, write_jsonl(tmp_path / "changed.jsonl", rows)
        )
    (problem,) = info.value.problems
    assert (problem.file, problem.row, problem.column) == ("changed.jsonl", 2, "question")
    assert "c2" in problem.reason
    assert monitoring.study_status(store, coordinator, draft)["cases"] == 4  # c9 not added either


def test_a_second_answer_for_a_stored_case_and_arm_is_a_problem(store, draft, tmp_path):
    rows = [dict(answers_rows()[0], answer_id="c1-clin-v2")]
    with pytest.raises(ValidationError, match="already has answer 'c1-clin'"):
        content.import_answers(
            store, sign_in(store, "coordinator"), draft, write_jsonl(tmp_path / "dup.jsonl", rows)
        )


def test_answers_keep_their_provenance(store, draft):
    answers = content.list_answers(store, sign_in(store, "coordinator"), draft)
    llm = answers.filter(pl.col("answer_id") == "c1-llm").row(0, named=True)
    assert (llm["model_name"], llm["model_version"]) == ("m", "v1")  # filled from the arm
    assert str(llm["generated_at"]) == "2026-01-02"
    assert json.loads(llm["parameters"]) == {"temperature": 0}
    clin = answers.filter(pl.col("answer_id") == "c1-clin").row(0, named=True)
    assert (clin["author_id"], clin["author_role"]) == ("dr.who@example.org", "GP")


def test_add_frames_directly_is_all_or_nothing(store):
    study = new_study(store, "Frames")
    coordinator = sign_in(store, "coordinator")
    content.add_arm(store, coordinator, study, arm_id="a", kind="clinician", label="A")
    cases = pl.DataFrame({"case_id": ["x", "y"], "question": ["q?", "q?"]})
    content.add_cases(store, coordinator, study, cases)
    bad = pl.DataFrame(
        {
            "answer_id": ["1", "2"],
            "case_id": ["x", "missing"],
            "arm_id": ["a", "a"],
            "text": ["t", "t"],
        }
    )
    with pytest.raises(ValidationError, match="refused"):
        content.add_answers(store, coordinator, study, bad)
    assert content.list_answers(store, coordinator, study).height == 0


def test_llm_arm_needs_a_pinned_model(store):
    study = new_study(store, "Arms")
    coordinator = sign_in(store, "coordinator")
    with pytest.raises(ValidationError, match="model_name and model_version"):
        content.add_arm(
            store, coordinator, study, arm_id="g", kind="llm", label="G", model_name="m"
        )


def test_cases_cannot_be_added_once_locked_but_identical_reimport_is_fine(store, rating, tmp_path):
    coordinator = sign_in(store, "coordinator")
    assert content.import_cases(store, coordinator, rating, tmp_path / "cases.jsonl").added == 0
    with pytest.raises(StateError, match="only while it is a draft"):
        content.add_cases(
            store, coordinator, rating, pl.DataFrame({"case_id": ["new"], "question": ["q?"]})
        )


def test_answers_for_new_cases_need_not_repeat_stored_ones(store, draft, tmp_path):
    coordinator = sign_in(store, "coordinator")
    content.add_cases(
        store, coordinator, draft, pl.DataFrame({"case_id": ["c5"], "question": ["New?"]})
    )
    top_up = [
        {"answer_id": "c5-clin", "case_id": "c5", "arm_id": "clin", "text": "t", "author_id": "x"},
        {
            "answer_id": "c5-llm",
            "case_id": "c5",
            "arm_id": "llm",
            "text": "t",
            "generated_at": "2026-01-03",
            "prompt": "p",
        },
    ]
    result = content.import_answers(
        store, coordinator, draft, write_jsonl(tmp_path / "top.jsonl", top_up)
    )
    assert (result.added, result.skipped) == (2, 0)
    assert content.import_answers(store, coordinator, draft, tmp_path / "top.jsonl").skipped == 2
    # a case that no arm answers yet does not stop a file of answers to other cases
    content.add_cases(
        store, coordinator, draft, pl.DataFrame({"case_id": ["c6"], "question": ["?"]})
    )
    assert content.import_answers(store, coordinator, draft, tmp_path / "top.jsonl").skipped == 2
    assert monitoring.study_status(store, coordinator, draft)["answers"] == 10


# --- every refused row is counted ---------------------------------------------------------------

MANY = 250  # more than the 200 problems of one kind listed one by one


def _many_cases(n=MANY, question="Q?"):
    return pl.DataFrame({"case_id": [f"k{i:03d}" for i in range(n)], "question": [question] * n})


def _many_answers(suffix=""):
    return pl.DataFrame(
        {
            "answer_id": [f"k{i:03d}-clin{suffix}" for i in range(MANY)],
            "case_id": [f"k{i:03d}" for i in range(MANY)],
            "arm_id": ["clin"] * MANY,
            "text": ["t"] * MANY,
        }
    )


def _refused_with_changed_questions(store, caller, study):
    content.add_cases(store, caller, study, _many_cases(question="Changed?"))


def _refused_with_duplicate_ids(store, caller, study):
    content.add_cases(store, caller, study, pl.concat([_many_cases(), _many_cases()]))


def _refused_with_second_answers(store, caller, study):
    content.add_answers(store, caller, study, _many_answers(suffix="-v2"))


@pytest.mark.parametrize(
    ("refuse", "column"),
    [
        pytest.param(_refused_with_changed_questions, "question", id="changed stored cases"),
        pytest.param(_refused_with_duplicate_ids, "case_id", id="ids repeated in the input"),
        pytest.param(_refused_with_second_answers, "answer_id", id="second answer per slot"),
    ],
)
def test_every_refused_row_is_counted_beyond_the_listed_ones(store, refuse, column):
    study = new_study(store, "Many problems")
    coordinator = sign_in(store, "coordinator")
    content.add_arms(store, coordinator, study, pl.DataFrame(ARMS))
    content.add_cases(store, coordinator, study, _many_cases())
    content.add_answers(store, coordinator, study, _many_answers())
    with pytest.raises(ValidationError) as info:
        refuse(store, coordinator, study)
    error = info.value
    assert error.total == MANY
    assert len(error.problems) == 201  # 200 listed and one summary counting the rest
    summary = error.problems[-1]
    assert (summary.row, summary.column, summary.repeats) == (None, column, MANY - 200)
    assert summary.reason == "... and 50 more rows with the same problem"
    assert str(error).startswith("250 problems found")
