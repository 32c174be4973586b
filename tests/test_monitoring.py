"""Monitoring a study (``study.services.monitoring``): counts, progress by rater, cases by
specialty and per-arm counts, never a result by arm."""

from __future__ import annotations

import polars as pl
import pytest
from conftest import ARMS, CASES, OPERATOR, full_values, new_study, sign_in

from study.errors import NotFoundError
from study.services import content, monitoring
from study.services import rating as rating_service


def _submit_first(store, rater: str, study: str) -> None:
    """``rater`` submits ``full_values()`` for the first assignment in their queue."""
    caller = sign_in(store, rater)
    view = rating_service.next_assignment(store, caller, study)
    rating_service.submit_rating(store, caller, study, view["assignment"], full_values())


def test_status_counts(store, rating):
    for rater in ("r1", "r2"):
        _submit_first(store, rater, rating)
    status = monitoring.study_status(store, sign_in(store, "coordinator"), rating)
    assert status == {
        "study": rating,
        "status": "rating",
        "cases": 4,
        "arms": 2,
        "answers": 8,
        "raters": 3,
        "assignments": 8,
        "done": 2,
        "ratings_submitted": 6,  # per assignment: quality x 2 responses + better
        "per_arm": {"clin": {"answers": 4, "ratings": 2}, "llm": {"answers": 4, "ratings": 2}},
    }


def test_status_of_an_empty_study(store):
    study = new_study(store, "Empty")
    status = monitoring.study_status(store, sign_in(store, "coordinator"), study)
    assert {k: v for k, v in status.items() if k not in ("study", "status")} == {
        "cases": 0,
        "arms": 0,
        "answers": 0,
        "raters": 0,
        "assignments": 0,
        "done": 0,
        "ratings_submitted": 0,
        "per_arm": {},
    }


def test_status_of_an_unknown_study_is_not_found(store):
    with pytest.raises(NotFoundError, match="no study 'nope'"):
        monitoring.study_status(store, OPERATOR, "nope")


def test_cases_by_specialty_counts_the_imported_cases(store, draft):
    table = monitoring.cases_by_specialty(store, sign_in(store, "coordinator"), draft)
    assert table.to_dicts() == [{"specialty": "gp", "cases": len(CASES)}]


def test_rater_progress_agrees_with_each_raters_queue(store, rating):
    _submit_first(store, "r1", rating)
    table = monitoring.rater_progress(store, sign_in(store, "coordinator"), rating)
    progress = {row["rater"]: row for row in table.to_dicts()}
    assert set(progress) == {"r1", "r2", "r3"}
    for rater, row in progress.items():
        queue = rating_service.rater_queue(store, sign_in(store, rater), rating)
        done = int(queue.get_column("done").sum())
        assert (row["done"], row["to_do"]) == (done, queue.height - done)
    assert progress["r1"]["done"] == 1


def test_arm_summary_counts_answers_and_ratings_per_arm(store, rating):
    _submit_first(store, "r1", rating)
    coordinator = sign_in(store, "coordinator")
    summary = monitoring.arm_summary(store, coordinator, rating)
    assert summary.columns == [
        "arm_id",
        "kind",
        "label",
        "model_name",
        "model_version",
        "author_role",
        "answers",
        "ratings",
    ]
    # one quality rating per response shown; the pairwise choice belongs to no arm
    assert summary.select("arm_id", "answers", "ratings").rows() == [("clin", 4, 1), ("llm", 4, 1)]
    assert summary.drop("answers", "ratings").equals(content.list_arms(store, coordinator, rating))
    status = monitoring.study_status(store, coordinator, rating)
    assert status["per_arm"] == {
        "clin": {"answers": 4, "ratings": 1},
        "llm": {"answers": 4, "ratings": 1},
    }
    assert "per_arm" not in monitoring.study_status(store, coordinator, rating, per_arm=False)


def test_arm_summary_of_arms_without_answers_counts_zero(store):
    study = new_study(store, "No answers yet")
    coordinator = sign_in(store, "coordinator")
    content.add_arms(store, coordinator, study, pl.DataFrame(ARMS))
    summary = monitoring.arm_summary(store, coordinator, study)
    assert summary.select("arm_id", "answers", "ratings").rows() == [("clin", 0, 0), ("llm", 0, 0)]
