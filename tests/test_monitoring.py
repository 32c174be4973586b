"""Monitoring a study (``study.services.monitoring``): counts, progress by rater, cases by
specialty and per-arm counts, never a result by arm; time on task and the raters flagged
(straight-lining, implausibly fast; flagged, never excluded); the safety queue's acknowledgement
with a note (audited); flagged cases opened as their rater saw them; and the ratings digest
(``analyses.ratings_digest``) the screens cache results by."""

from __future__ import annotations

import polars as pl
import pytest
from conftest import ARMS, CASES, OPERATOR, full_values, new_study, sign_in

from study import audit
from study.errors import ConflictError, NotFoundError, PermissionDenied, ValidationError
from study.services import analyses, content, monitoring
from study.services import rating as rating_service

DEMO = "demo-patient-questions"


def _submit_first(store, rater: str, study: str) -> None:
    """``rater`` submits ``full_values()`` for the first assignment in their queue."""
    caller = sign_in(store, rater)
    view = rating_service.next_assignment(store, caller, study)
    rating_service.submit_rating(store, caller, study, view["assignment"], full_values())


def _rate_all(store, study: str, rater: str, values, seconds: float) -> int:
    """``rater`` submits ``values(n)`` for every assignment in their queue; returns how many."""
    caller = sign_in(store, rater)
    queue = rating_service.rater_queue(store, caller, study)
    for n, assignment in enumerate(queue.get_column("assignment").to_list()):
        rating_service.submit_rating(store, caller, study, assignment, values(n), seconds=seconds)
    return queue.height


# --- counts and progress ------------------------------------------------------------------------


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


# --- time on task and raters to look at (flagged, never excluded) -------------------------------


def test_time_on_task_is_one_row_per_rated_case_without_an_arm(store, rating):
    done = _rate_all(store, rating, "r1", lambda n: full_values(), seconds=42.5)
    times = monitoring.time_on_task(store, sign_in(store, "coordinator"), rating)
    assert times.columns == ["rater", "name", "case_id", "seconds"]
    assert times.height == done
    assert times.get_column("seconds").to_list() == [42.5] * done


def test_straight_lining_and_fast_raters_are_flagged_and_varied_slow_ones_are_not(store, rating):
    # r1: the same value on every item of every case, 4 s a case; r2: varied values, 90 s
    _rate_all(store, rating, "r1", lambda n: full_values(4, 4, "A"), seconds=4.0)
    _rate_all(
        store, rating, "r2", lambda n: full_values(1 + n % 5, 5 - n % 5, "AB"[n % 2]), seconds=90
    )
    flags = monitoring.rater_flags(store, sign_in(store, "coordinator"), rating, min_cases=2)
    by_rater = {row["rater"]: row for row in flags.iter_rows(named=True)}
    assert set(by_rater) == {"r1", "r2"}  # r3 rated nothing: not judged
    r1, r2 = by_rater["r1"], by_rater["r2"]
    assert r1["straight_lining"] and r1["fast"] and r1["flagged"]
    assert "same value" in r1["reason"] and "median 4.0 s" in r1["reason"]
    assert not (r2["straight_lining"] or r2["fast"] or r2["flagged"]) and r2["reason"] == ""
    assert r2["median_seconds"] == 90


def test_too_few_cases_flag_nobody(store, rating):
    _rate_all(store, rating, "r1", lambda n: full_values(4, 4, "A"), seconds=1.0)
    flags = monitoring.rater_flags(store, sign_in(store, "coordinator"), rating)
    assert not flags.get_column("flagged").any()  # fewer than MIN_CASES_FOR_FLAGS cases


# --- the safety queue: acknowledged with a note, audited ----------------------------------------


def _open_alert(store) -> int:
    queue = monitoring.safety_queue(store, sign_in(store, "demo-coordinator"), DEMO)
    return int(queue.filter(pl.col("acknowledged_at").is_null()).item(0, "alert"))


def test_a_coordinator_acknowledges_an_alert_with_a_note_and_it_is_audited(demo):
    coordinator = sign_in(demo, "demo-coordinator")
    alert = _open_alert(demo)
    monitoring.acknowledge_alert(demo, coordinator, DEMO, alert, note="  Called the rater.  ")
    row = monitoring.safety_queue(demo, coordinator, DEMO).filter(pl.col("alert") == alert)
    assert row.item(0, "acknowledged_by") == "demo-coordinator"
    assert row.item(0, "note") == "Called the rater."
    assert row.item(0, "acknowledged_at") is not None
    event = demo.read(
        "SELECT actor, object_id, payload FROM audit_events WHERE action = $k",
        {"k": audit.SAFETY_ACKNOWLEDGE.name},
    )
    assert event.height == 1 and event.item(0, "actor") == "demo-coordinator"
    assert event.item(0, "object_id") == str(alert) and "Called the rater." in event.item(
        0, "payload"
    )
    with pytest.raises(ConflictError, match="acknowledged already"):
        monitoring.acknowledge_alert(demo, coordinator, DEMO, alert, note="Again.")


@pytest.mark.parametrize("note", ["", "   ", None])
def test_an_acknowledgement_without_a_note_is_refused_and_stores_nothing(demo, note):
    coordinator = sign_in(demo, "demo-coordinator")
    alert = _open_alert(demo)
    with pytest.raises(ValidationError, match="needs a note"):
        monitoring.acknowledge_alert(demo, coordinator, DEMO, alert, note=note)
    row = monitoring.safety_queue(demo, coordinator, DEMO).filter(pl.col("alert") == alert)
    assert row.item(0, "acknowledged_at") is None


def test_an_unknown_alert_is_not_found(demo):
    with pytest.raises(NotFoundError, match="no safety alert 999999"):
        monitoring.acknowledge_alert(
            demo, sign_in(demo, "demo-coordinator"), DEMO, 999999, note="x"
        )


@pytest.mark.parametrize("person", ["demo-statistician", "demo-rater-01"])
def test_only_a_coordinator_acknowledges(demo, person):
    with pytest.raises(PermissionDenied):
        monitoring.acknowledge_alert(demo, sign_in(demo, person), DEMO, _open_alert(demo), note="x")


# --- the ratings digest the screens cache results by --------------------------------------------


def test_the_ratings_digest_moves_with_a_rating_and_only_then(store, rating):
    coordinator = sign_in(store, "coordinator")
    before = analyses.ratings_digest(store, coordinator, rating)
    assert len(before) == 64
    assert analyses.ratings_digest(store, coordinator, rating) == before
    caller = sign_in(store, "r1")
    view = rating_service.next_assignment(store, caller, rating)
    rating_service.submit_rating(store, caller, rating, view["assignment"], full_values())
    after = analyses.ratings_digest(store, coordinator, rating)
    assert after != before
    rating_service.submit_rating(
        store, caller, rating, view["assignment"], full_values(quality_a=1), revise=True
    )
    assert analyses.ratings_digest(store, coordinator, rating) not in (before, after)


# --- flagged and skipped cases, opened without an arm -------------------------------------------


def test_a_flagged_case_opens_as_its_rater_saw_it_without_an_arm(store, rating):
    r1 = sign_in(store, "r1")
    view = rating_service.next_assignment(store, r1, rating)
    rating_service.flag_case(store, r1, rating, view["assignment"], "Response B is cut off.")
    coordinator = sign_in(store, "coordinator")
    flags = monitoring.case_flags(store, coordinator, rating)
    assert flags.columns == ["flag", "kind", "case_id", "rater", "reason", "created_at"]
    opened = monitoring.flagged_case(store, coordinator, rating, flags.item(0, "flag"))
    assert set(opened) == {
        "flag",
        "kind",
        "case_id",
        "rater",
        "reason",
        "created_at",
        "question",
        "context",
        "conversation",
        "responses",
    }
    assert (opened["kind"], opened["case_id"], opened["rater"], opened["reason"]) == (
        "flag",
        view["case_id"],
        "r1",
        "Response B is cut off.",
    )
    assert opened["question"] == view["question"]
    assert opened["responses"] == [
        {"label": p["label"], "text": p["text"]} for p in view["presentations"]
    ]
    arms = set(store.read("SELECT arm_id FROM arms")["arm_id"])
    assert not arms & {str(v) for r in opened["responses"] for v in r.values()}
    with pytest.raises(NotFoundError, match="no flagged or skipped case 999"):
        monitoring.flagged_case(store, coordinator, rating, 999)
    with pytest.raises(PermissionDenied):
        monitoring.flagged_case(store, r1, rating, flags.item(0, "flag"))
