"""The protocol's phases around live rating: the calibration round (gold cases first, the pass
threshold, the coordinator's retry and pass), repeats after a washout, and time on task that
survives a reload."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest
from conftest import OPERATOR, full_values, sign_in

from study import audit, audit_verify
from study.assignment import ALGORITHM, design_assignments, repeats_for
from study.errors import ConflictError, PermissionDenied, StateError, ValidationError
from study.services import (
    analyses,
    calibration,
    design,
    exports,
    lifecycle,
    monitoring,
    people,
)
from study.services import rating as rating_service
from study.store import utc_now

GOLD = {
    # c1's answers in answer-id order: c1-clin is Response A, c1-llm Response B
    "cases": ["c1"],
    "expected": {"c1": {"quality": {"Response A": 4, "c1-llm": 2}, "better": "A"}},
    "pass_threshold": 0.6,
}
"""A calibration round of one gold case with three expected values (quality of A and B, the
pairwise choice); 2 of 3 matched (0.67) passes."""

REPEATS = {"share": 0.5, "washout_days": 14}

PROTOCOL = {"primary_item": "quality", "margin": 0.5, "calibration": GOLD, "repeats": REPEATS}

RIGHT = full_values(4, 2, "A")
WRONG = full_values(1, 5, "B")


def open_phased(store, study: str, protocol: dict = PROTOCOL) -> str:
    """Lock ``study`` with ``protocol``, assign 2 raters per live case (seed 42), start rating."""
    coordinator = sign_in(store, "coordinator")
    design.lock_protocol(store, coordinator, study, protocol)
    design.make_assignments(store, coordinator, study, raters_per_case=2, seed=42)
    lifecycle.start_rating(store, coordinator, study)
    return study


@pytest.fixture
def phased(store, draft) -> str:
    """The draft study locked with ``PROTOCOL`` (c1 gold, c2-c4 live, half repeated), rating."""
    return open_phased(store, draft)


def rate_next(store, who, study, values, **options):
    view = rating_service.next_assignment(store, who, study, **options)
    assert view is not None
    rating_service.submit_rating(store, who, study, view["assignment"], values, seconds=3)
    return view


def rate_live(store, who, study) -> list[dict]:
    """Rate every live case the rater is offered now; the views, in order."""
    seen = []
    while (view := rating_service.next_assignment(store, who, study)) is not None:
        assert view["phase"] == "live"
        rating_service.submit_rating(store, who, study, view["assignment"], RIGHT, seconds=3)
        seen.append(view)
    return seen


# --- the protocol's options, checked at the lock ------------------------------------------------


def _with(calibration=None, repeats=None) -> dict:
    protocol: dict = {"primary_item": "quality"}
    if calibration is not None:
        protocol["calibration"] = calibration
    if repeats is not None:
        protocol["repeats"] = repeats
    return protocol


@pytest.mark.parametrize(
    ("protocol", "field", "message"),
    [
        (
            _with({**GOLD, "cases": ["c1", "zz"], "expected": {**GOLD["expected"], "zz": {}}}),
            "calibration.cases",
            "'zz' is not a case of the study",
        ),
        (
            _with({**GOLD, "expected": {"c1": {"clarity": 3}}}),
            "calibration.expected.c1.clarity",
            "'clarity' is not an item of the study's instruments",
        ),
        (
            _with({**GOLD, "expected": {"c1": {"quality": {"Response A": 9}}}}),
            "calibration.expected.c1.quality.Response A",
            "value outside the item's scale: item 'quality': 9 is not one of",
        ),
        (
            _with({**GOLD, "expected": {"c1": {"better": "C"}}}),
            "calibration.expected.c1.better",
            "value outside the item's scale",
        ),
        (
            _with({**GOLD, "pass_threshold": 0}),
            "calibration.pass_threshold",
            "must be a share of expected values in (0, 1]",
        ),
        (
            _with({**GOLD, "pass_threshold": 1.5}),
            "calibration.pass_threshold",
            "must be a share of expected values in (0, 1]",
        ),
        (
            _with({**GOLD, "expected": {**GOLD["expected"], "c2": {"better": "A"}}}),
            "calibration.expected.c2",
            "expected values for a case that is not in calibration.cases",
        ),
        (
            _with({**GOLD, "expected": {"c1": {"quality": {"Response C": 3}}}}),
            "calibration.expected.c1.quality",
            "the calibration screen shows no 'Response C'",
        ),
        (
            _with({**GOLD, "expected": {"c1": {"quality": 3}}}),
            "calibration.expected.c1.quality",
            "give one value per response",
        ),
        (
            _with({**GOLD, "expected": {"c1": {"comment": "fine"}}}),
            "calibration.expected.c1.comment",
            "a free-text item takes no expected value",
        ),
        (
            _with({**GOLD, "expected": {}}),
            "calibration.expected.c1",
            "a calibration case needs expected values",
        ),
        (
            _with({**GOLD, "treshold": 0.8}),
            "calibration.treshold",
            "unknown option; calibration takes cases, expected, pass_threshold",
        ),
        (
            _with(
                {
                    **GOLD,
                    "cases": ["c1", "c2", "c3", "c4"],
                    "expected": {c: {"better": "A"} for c in ("c1", "c2", "c3", "c4")},
                }
            ),
            "calibration.cases",
            "every case is a calibration case: none is left to rate",
        ),
        (_with(repeats={"share": 0, "washout_days": 14}), "repeats.share", "in (0, 1]"),
        (
            _with(repeats={"share": 0.1, "washout_days": 0}),
            "repeats.washout_days",
            "a whole number of days >= 1",
        ),
        (
            _with(repeats={"share": 0.1, "washout_days": 2.5}),
            "repeats.washout_days",
            "a whole number of days >= 1",
        ),
    ],
)
def test_the_lock_refuses_a_bad_calibration_or_repeat_option_naming_it(
    store, draft, protocol, field, message
):
    coordinator = sign_in(store, "coordinator")
    with pytest.raises(ValidationError) as info:
        design.lock_protocol(store, coordinator, draft, protocol)
    assert any(p.column == field and message in p.reason for p in info.value.problems), (
        info.value.problems
    )
    assert f"column '{field}'" in str(info.value)
    # nothing stored: the study is still a draft without a protocol
    assert store.read("SELECT count(*) FROM protocols").item() == 0
    assert store.read("SELECT status FROM studies").item() == "draft"


def test_a_protocol_version_after_the_design_cannot_change_the_calibration_cases(store, phased):
    coordinator = sign_in(store, "coordinator")
    changed = {
        **PROTOCOL,
        "calibration": {**GOLD, "cases": ["c2"], "expected": {"c2": {"better": "B"}}},
    }
    with pytest.raises(ValidationError, match="a protocol version after the design cannot"):
        design.lock_protocol(store, coordinator, phased, changed, reason="other gold case")
    # the threshold and the washout may change, with a reason
    looser = {**PROTOCOL, "calibration": {**GOLD, "pass_threshold": 0.3}}
    design.lock_protocol(store, coordinator, phased, looser, reason="threshold too strict")


# --- the design: calibration first, repeats last, replayed from the seed -----------------------


def test_every_rater_does_the_calibration_cases_first_on_one_fixed_screen(store, phased):
    queue = store.read(
        "SELECT rater, case_id, phase, shown_order FROM assignments ORDER BY rater, shown_order"
    )
    for (rater,), rows in queue.group_by("rater", maintain_order=True):
        assert rows.get_column("phase").to_list()[0] == "calibration", rater
        assert rows.row(0, named=True)["case_id"] == "c1"
        assert "c1" not in rows.filter(pl.col("phase") != "calibration").get_column("case_id")
    screens = store.read(
        "SELECT a.rater, p.answer_id, p.label FROM presentations p"
        " JOIN assignments a ON a.id = p.assignment WHERE a.phase = 'calibration'"
        " ORDER BY a.rater, p.position"
    )
    for (rater,), rows in screens.group_by("rater", maintain_order=True):
        assert rows.select("answer_id", "label").rows() == [
            ("c1-clin", "Response A"),
            ("c1-llm", "Response B"),
        ], rater
    r1 = sign_in(store, "r1")
    view = rating_service.next_assignment(store, r1, phased)
    assert (view["case_id"], view["phase"]) == ("c1", "calibration")
    status = rating_service.rater_status(store, r1, phased)
    assert status["phase"] == "calibration"
    assert status["remaining"] == {"calibration": 1, "live": 2, "repeat": 1}


def _answers() -> pl.DataFrame:
    rows = [
        (f"{c}-{arm}", c, arm, None) for c in ("c1", "c2", "c3", "c4", "c5") for arm in ("a", "b")
    ]
    return pl.DataFrame(rows, schema=["answer_id", "case_id", "arm_id", "author_id"], orient="row")


def test_calibration_and_repeats_replay_from_the_seed_and_leave_the_live_design_alone():
    cases, raters = ["c1", "c2", "c3", "c4", "c5"], ["r1", "r2", "r3"]
    options = {"raters_per_case": 2, "answers": _answers(), "seed": 7}
    phased = {"calibration_cases": ["c1"], "repeat_share": 0.5}
    first, first_p = design_assignments(cases, raters, **options, **phased)
    again, again_p = design_assignments(list(reversed(cases)), raters, **options, **phased)
    assert first.equals(again) and first_p.equals(again_p)
    other, _ = design_assignments(cases, raters, **{**options, "seed": 8}, **phased)
    assert not first.equals(other)
    # the live allocation is what the design without phases gives for the live cases: the
    # phases draw from seeds of their own (clinval-assign-2 allocations replay unchanged)
    live_answers = _answers().filter(pl.col("case_id") != "c1")
    plain, plain_p = design_assignments(cases[1:], raters, **{**options, "answers": live_answers})
    live = first.filter(pl.col("phase") == "live")
    shift = first.filter(pl.col("phase") == "calibration").group_by("rater_id").len()
    assert shift.get_column("len").to_list() == [1, 1, 1]
    assert live.with_columns(pl.col("queue_position") - 1).drop("phase").equals(plain.drop("phase"))
    assert (
        first_p.join(live.select("assignment_id"), on="assignment_id", how="semi")
        .sort("assignment_id", "position")
        .equals(plain_p.sort("assignment_id", "position"))
    )
    assert first.get_column("algorithm").unique().to_list() == [ALGORITHM]
    for _, rows in first.group_by("rater_id"):
        n_live = rows.filter(pl.col("phase") == "live").height
        repeats = rows.filter(pl.col("phase") == "repeat")
        assert repeats.height == repeats_for(n_live, 0.5)
        assert set(repeats.get_column("case_id")) <= set(
            rows.filter(pl.col("phase") == "live").get_column("case_id")
        )
        # queued last
        assert repeats.get_column("queue_position").min() > n_live + 1
    # a repeat shows the live screen again: same answers, positions, labels
    screens = first_p.join(first.select("assignment_id", "rater_id", "phase"), on="assignment_id")
    shown = screens.group_by("rater_id", "case_id", "phase").agg(
        pl.col("answer_id").sort_by("position"), pl.col("label").sort_by("position")
    )
    repeat = shown.filter(pl.col("phase") == "repeat").drop("phase")
    assert repeat.height > 0
    assert repeat.join(
        shown.filter(pl.col("phase") == "live").drop("phase"),
        on=["rater_id", "case_id", "answer_id", "label"],
        how="anti",
    ).is_empty()


def test_the_dry_run_summary_counts_calibration_and_repeats(store, draft):
    coordinator = sign_in(store, "coordinator")
    design.lock_protocol(store, coordinator, draft, PROTOCOL)
    summary = design.preview_assignments(store, coordinator, draft, raters_per_case=2, seed=42)
    loads = summary["loads"]
    assert loads.get_column("calibration").to_list() == [1, 1, 1]
    assert loads.get_column("repeats").to_list() == [1, 1, 1]
    assert loads.get_column("assignments").sum() == 6  # 3 live cases x 2 raters
    assert "c1" not in summary["raters_per_case"].get_column("case_id").to_list()


# --- calibration gates live rating ---------------------------------------------------------------


def test_a_rater_who_reaches_the_threshold_goes_on_to_live_cases(store, phased):
    r1 = sign_in(store, "r1")
    rate_next(store, r1, phased, full_values(4, 2, "B"))  # 2 of 3 gold values
    status = rating_service.rater_status(store, r1, phased)
    assert status["phase"] == "live"
    result = status["calibration"]
    assert (result["matched"], result["expected"], result["passed"]) == (2, 3, True)
    assert result["score"] == pytest.approx(2 / 3)
    assert rating_service.next_assignment(store, r1, phased)["phase"] == "live"


def test_a_rater_below_the_threshold_is_offered_nothing_and_waits_for_the_coordinator(
    store, phased
):
    r2 = sign_in(store, "r2")
    rate_next(store, r2, phased, WRONG)
    assert rating_service.next_assignment(store, r2, phased) is None
    status = rating_service.rater_status(store, r2, phased)
    assert (status["phase"], status["waiting_for"]) == ("waiting", "coordinator")
    assert status["calibration"]["score"] == 0
    assert status["remaining"]["live"] == 2  # still theirs, not offered
    coordinator = sign_in(store, "coordinator")
    table = monitoring.calibration_status(store, coordinator, phased)
    row = table.filter(pl.col("rater") == "r2").row(0, named=True)
    assert (row["phase"], row["passed"], row["score"], row["matched"]) == (
        "waiting",
        False,
        0.0,
        0,
    )
    assert table.filter(pl.col("rater") == "r1").item(0, "phase") == "calibration"
    assert table.filter(pl.col("rater") == "r1").item(0, "score") is None


def test_calibration_answers_are_final_and_cannot_be_skipped(store, phased):
    r1 = sign_in(store, "r1")
    view = rating_service.next_assignment(store, r1, phased)
    with pytest.raises(StateError, match="calibration case cannot be skipped"):
        rating_service.skip_case(store, r1, phased, view["assignment"], "too hard")
    rating_service.submit_rating(store, r1, phased, view["assignment"], WRONG, seconds=2)
    with pytest.raises(StateError, match="its answers are final"):
        rating_service.submit_rating(
            store, r1, phased, view["assignment"], RIGHT, seconds=2, revise=True
        )


def test_the_coordinator_lets_a_failed_rater_retry_audited(store, phased):
    r2, coordinator = sign_in(store, "r2"), sign_in(store, "coordinator")
    rate_next(store, r2, phased, WRONG)
    with pytest.raises(ValidationError, match="a decision needs a reason"):
        calibration.retry_calibration(store, coordinator, phased, "r2", reason=" ")
    assert calibration.retry_calibration(store, coordinator, phased, "r2", reason="misread") == 2
    view = rating_service.next_assignment(store, r2, phased)
    assert (view["case_id"], view["phase"]) == ("c1", "calibration")
    assert [p["label"] for p in view["presentations"]] == ["Response A", "Response B"]
    status = rating_service.rater_status(store, r2, phased)
    assert (status["phase"], status["calibration"]["attempt"]) == ("calibration", 2)
    rating_service.submit_rating(store, r2, phased, view["assignment"], RIGHT, seconds=2)
    assert rating_service.next_assignment(store, r2, phased)["phase"] == "live"
    events = audit.events(store, study=phased)
    retry = events.filter(pl.col("action") == "calibration.retry").row(0, named=True)
    payload = json.loads(retry["payload"])
    assert (retry["actor"], payload["rater"], payload["attempt"]) == ("coordinator", "r2", 1)
    assert (payload["new_attempt"], payload["score"], payload["reason"]) == (2, 0.0, "misread")
    assert store.read("SELECT decision, attempt, reason FROM calibration_decisions").rows() == [
        ("retry", 1, "misread")
    ]
    # the second attempt's ratings are kept beside the first's, and the chain holds them all
    assert audit_verify.verify(store).ok, audit_verify.verify(store).problem
    with pytest.raises(ConflictError, match="passed calibration attempt 2 already"):
        calibration.pass_rater(store, coordinator, phased, "r2", reason="again")


def test_the_coordinator_passes_a_failed_rater_audited(store, phased):
    r2, coordinator = sign_in(store, "r2"), sign_in(store, "coordinator")
    with pytest.raises(StateError, match=r"has not finished calibration attempt 1 \(0 of 1"):
        calibration.pass_rater(store, coordinator, phased, "r2", reason="senior")
    rate_next(store, r2, phased, WRONG)
    seq = calibration.pass_rater(store, coordinator, phased, "r2", reason="senior consultant")
    event = audit.events(store, study=phased).filter(pl.col("seq") == seq).row(0, named=True)
    assert event["action"] == "calibration.pass"
    assert json.loads(event["payload"])["reason"] == "senior consultant"
    status = rating_service.rater_status(store, r2, phased)
    assert status["phase"] == "live"
    assert (status["calibration"]["decision"], status["calibration"]["passed"]) == ("pass", True)
    assert rating_service.next_assignment(store, r2, phased)["phase"] == "live"
    assert (
        monitoring.calibration_status(store, coordinator, phased)
        .filter(pl.col("rater") == "r2")
        .item(0, "decision")
        == "pass"
    )
    assert audit_verify.verify(store).ok


def test_a_rater_cannot_pass_themselves_not_even_as_a_coordinator(store, phased):
    r2 = sign_in(store, "r2")
    rate_next(store, r2, phased, WRONG)
    with pytest.raises(PermissionDenied):
        calibration.pass_rater(store, r2, phased, "r2", reason="I know this")
    people.grant_role(store, OPERATOR, phased, "r2", "coordinator")
    with pytest.raises(PermissionDenied, match="Nobody decides on their own calibration"):
        calibration.pass_rater(store, r2, phased, "r2", reason="I know this")
    with pytest.raises(PermissionDenied, match="Nobody decides on their own calibration"):
        calibration.retry_calibration(store, r2, phased, "r2", reason="again")
    denied = audit.events(store, study=phased).filter(pl.col("action") == "access.denied")
    assert set(denied.get_column("object_id")) >= {
        "calibration.pass_rater",
        "calibration.retry_calibration",
    }
    assert store.read("SELECT count(*) FROM calibration_decisions").item() == 0
    assert rating_service.next_assignment(store, r2, phased) is None


# --- repeats after the washout --------------------------------------------------------------------


def test_a_repeat_comes_only_after_the_washout_and_shows_the_same_screen(store, phased):
    r1 = sign_in(store, "r1")
    rate_next(store, r1, phased, RIGHT)
    live = rate_live(store, r1, phased)
    assert len(live) == 2
    # the repeat's case was rated minutes ago: nothing is offered, the rater waits
    status = rating_service.rater_status(store, r1, phased)
    assert (status["phase"], status["waiting_for"]) == ("waiting", "washout")
    first_done = store.read(
        "SELECT l.done_at FROM assignments r JOIN assignments l ON l.rater = r.rater"
        " AND l.case_id = r.case_id AND l.phase = 'live' WHERE r.rater = 'r1'"
        " AND r.phase = 'repeat'"
    ).item()
    assert status["next_repeat_at"] == first_done + dt.timedelta(days=14)
    almost = first_done + dt.timedelta(days=13, hours=23)
    assert rating_service.next_assignment(store, r1, phased, now=almost) is None
    later = first_done + dt.timedelta(days=14, seconds=1)
    repeat = rating_service.next_assignment(store, r1, phased, now=later)
    assert repeat["phase"] == "repeat"
    original = next(v for v in live if v["case_id"] == repeat["case_id"])
    assert [(p["label"], p["text"]) for p in repeat["presentations"]] == [
        (p["label"], p["text"]) for p in original["presentations"]
    ]
    assert repeat["values"] == {}
    assert rating_service.rater_status(store, r1, phased, now=later)["phase"] == "live"
    rating_service.submit_rating(
        store, r1, phased, repeat["assignment"], full_values(5, 2, "A"), seconds=4
    )
    assert rating_service.rater_status(store, r1, phased, now=later)["phase"] == "done"
    assert rating_service.next_assignment(store, r1, phased, now=later) is None


def test_a_due_repeat_comes_before_the_remaining_live_cases(store, phased):
    r1 = sign_in(store, "r1")
    rate_next(store, r1, phased, RIGHT)
    repeat_case = store.read(
        "SELECT case_id FROM assignments WHERE rater = 'r1' AND phase = 'repeat'"
    ).item()
    live = rating_service.next_assignment(store, r1, phased)
    if live["case_id"] != repeat_case:
        rating_service.submit_rating(store, r1, phased, live["assignment"], RIGHT, seconds=1)
        live = rating_service.next_assignment(store, r1, phased)
        assert live["case_id"] == repeat_case
        rating_service.submit_rating(store, r1, phased, live["assignment"], RIGHT, seconds=1)
        assert rating_service.next_assignment(store, r1, phased) is None
        return
    rating_service.submit_rating(store, r1, phased, live["assignment"], RIGHT, seconds=1)
    later = utc_now() + dt.timedelta(days=15)
    assert rating_service.next_assignment(store, r1, phased, now=later)["phase"] == "repeat"
    assert rating_service.next_assignment(store, r1, phased)["phase"] == "live"


def test_a_repeat_of_a_skipped_case_is_never_offered(store, phased):
    r1 = sign_in(store, "r1")
    rate_next(store, r1, phased, RIGHT)
    repeat_case = store.read(
        "SELECT case_id FROM assignments WHERE rater = 'r1' AND phase = 'repeat'"
    ).item()
    while (view := rating_service.next_assignment(store, r1, phased)) is not None:
        if view["case_id"] == repeat_case:
            rating_service.skip_case(store, r1, phased, view["assignment"], "not my field")
        else:
            rating_service.submit_rating(store, r1, phased, view["assignment"], RIGHT, seconds=1)
    later = utc_now() + dt.timedelta(days=30)
    assert rating_service.next_assignment(store, r1, phased, now=later) is None
    status = rating_service.rater_status(store, r1, phased, now=later)
    assert status["phase"] == "done"
    assert status["remaining"] == {"calibration": 0, "live": 0, "repeat": 0}


# --- exports and analyses: calibration left out, repeats flagged ---------------------------------


def _rate_everything(store, study) -> None:
    later = utc_now() + dt.timedelta(days=15)
    for rater in ("r1", "r2", "r3"):
        who = sign_in(store, rater)
        rate_next(store, who, study, RIGHT)
        while (view := rating_service.next_assignment(store, who, study, now=later)) is not None:
            rating_service.submit_rating(store, who, study, view["assignment"], RIGHT, seconds=1)


def test_the_export_leaves_calibration_out_and_flags_repeats(store, phased):
    _rate_everything(store, phased)
    frame = exports.export_ratings_long(store, OPERATOR, phased)
    assert "c1" not in frame.get_column("case").to_list()
    assert set(frame.get_column("phase")) == {"live", "repeat"}
    quality = frame.filter(pl.col("item") == "quality")
    repeats = quality.filter(pl.col("phase") == "repeat")
    assert repeats.height == 3 * 2  # one repeated case per rater, two answers each
    # each repeat pairs with the same rater's live rating of the same answer
    pairs = repeats.join(
        quality.filter(pl.col("phase") == "live"), on=["rater", "answer"], suffix="_live"
    )
    assert pairs.height == repeats.height
    # between-rater agreement reads live ratings only: 3 live cases x 2 answers
    table = analyses.interim_agreement(store, sign_in(store, "coordinator"), phased, boot=0, seed=1)
    alpha = table.filter(
        (pl.col("item") == "quality") & (pl.col("statistic") == "krippendorff_alpha")
    )
    assert alpha.item(0, "n_units") == 6
    # the arm summary counts live ratings only: 6 live assignments x 1 answer of each arm
    counts = monitoring.arm_summary(store, sign_in(store, "coordinator"), phased)
    assert counts.get_column("ratings").to_list() == [6, 6]


def test_the_analysis_command_line_reads_first_ratings_of_an_export_with_repeats(
    store, phased, tmp_path, capsys
):
    from analysis.cli import main

    _rate_everything(store, phased)
    frame = exports.export_ratings_long(store, OPERATOR, phased)
    path = tmp_path / "export.csv"
    frame.filter(pl.col("item") == "quality").select(
        "case", "answer", "rater", "value", "phase"
    ).write_csv(path)
    args = ["agreement", str(path), "--unit", "answer", "--level", "ordinal", "--boot", "0"]
    assert main(args) == 0
    assert "krippendorff_alpha" in capsys.readouterr().out


# --- time on task from the first presentation -----------------------------------------------------


def test_time_on_task_runs_from_the_first_presentation_across_reloads(store, rating):
    r1 = sign_in(store, "r1")
    view = rating_service.next_assignment(store, r1, rating)
    assert view["phase"] == "live"
    first = rating_service.mark_presented(store, r1, rating, view["assignment"])
    # a reload shows the case again: the stamp stays, no second event
    assert rating_service.mark_presented(store, r1, rating, view["assignment"]) == first
    presented = audit.events(store, study=rating).filter(pl.col("action") == "assignment.present")
    assert presented.height == 1
    rating_service.submit_rating(store, r1, rating, view["assignment"], full_values())
    seconds = store.read(
        "SELECT DISTINCT seconds_on_task, submitted_at FROM ratings WHERE assignment = $a",
        {"a": view["assignment"]},
    )
    assert seconds.height == 1
    expected = (seconds.item(0, "submitted_at") - first).total_seconds()
    assert seconds.item(0, "seconds_on_task") == pytest.approx(expected)
    assert seconds.item(0, "seconds_on_task") >= 0
    submit = audit.events(store, study=rating).filter(pl.col("action") == "rating.submit")
    assert json.loads(submit.item(0, "payload"))["seconds"] == pytest.approx(expected)
    # a submitted case is not stamped again
    assert rating_service.mark_presented(store, r1, rating, view["assignment"]) == first
    # the seconds= keyword (imports, tests) still wins
    other = rating_service.next_assignment(store, r1, rating)
    rating_service.mark_presented(store, r1, rating, other["assignment"])
    rating_service.submit_rating(store, r1, rating, other["assignment"], full_values(), seconds=7)
    assert (
        store.read(
            "SELECT DISTINCT seconds_on_task FROM ratings WHERE assignment = $a",
            {"a": other["assignment"]},
        ).item()
        == 7
    )
    assert audit_verify.verify(store).ok


def test_an_unmarked_case_has_no_time_on_task(store, rating):
    r1 = sign_in(store, "r1")
    view = rating_service.next_assignment(store, r1, rating)
    rating_service.submit_rating(store, r1, rating, view["assignment"], full_values())
    assert (
        store.read(
            "SELECT DISTINCT seconds_on_task FROM ratings WHERE assignment = $a",
            {"a": view["assignment"]},
        ).item()
        is None
    )


def test_only_the_rater_marks_their_case_presented_and_only_while_rating(store, rating):
    r1, r2 = sign_in(store, "r1"), sign_in(store, "r2")
    view = rating_service.next_assignment(store, r1, rating)
    with pytest.raises(PermissionDenied):
        rating_service.mark_presented(store, r2, rating, view["assignment"])
    lifecycle.close_rating(store, sign_in(store, "coordinator"), rating)
    with pytest.raises(StateError, match="shown only while rating"):
        rating_service.mark_presented(store, r1, rating, view["assignment"])


# --- migration 5 on a database made at version 4 --------------------------------------------------

_V4_ROWS = (
    "INSERT INTO assignments (id, study, design_key, rater, case_id, seed, algorithm, status,"
    " done, shown_order, created_at, done_at) VALUES"
    " (1, $s, 'as-c1-r1', 'r1', 'c1', 0, 'clinval-assign-2', 'done', true, 1,"
    "  TIMESTAMP '2026-01-01 10:00:00', TIMESTAMP '2026-01-01 10:05:00'),"
    " (2, $s, 'as-c2-r1', 'r1', 'c2', 0, 'clinval-assign-2', 'pending', false, 2,"
    "  TIMESTAMP '2026-01-01 10:00:00', NULL);"
    "INSERT INTO presentations VALUES (1, 1, $s, 'c1-clin', 1, 'Response A'),"
    " (2, 1, $s, 'c1-llm', 2, 'Response B'), (3, 2, $s, 'c2-llm', 1, 'Response A'),"
    " (4, 2, $s, 'c2-clin', 2, 'Response B');"
    "INSERT INTO ratings VALUES"
    " (1, 1, 1, 1, 'test_quality', '1.0', 'quality', 4, NULL, 1, 'submitted', 12.5,"
    "  TIMESTAMP '2026-01-01 10:05:00', TIMESTAMP '2026-01-01 10:05:00', 'r1'),"
    " (2, 1, 2, 2, 'test_quality', '1.0', 'quality', 1, NULL, 1, 'submitted', 12.5,"
    "  TIMESTAMP '2026-01-01 10:05:00', TIMESTAMP '2026-01-01 10:05:00', 'r1'),"
    " (3, 1, NULL, 0, 'test_quality', '1.0', 'better', NULL, 'A', 1, 'submitted', 12.5,"
    "  TIMESTAMP '2026-01-01 10:05:00', TIMESTAMP '2026-01-01 10:05:00', 'r1'),"
    " (4, 1, 1, 1, 'test_quality', '1.0', 'quality', 5, NULL, 2, 'submitted', 3,"
    "  TIMESTAMP '2026-01-01 11:00:00', TIMESTAMP '2026-01-01 11:00:00', 'r1');"
    "INSERT INTO current_ratings VALUES (1, 1, 'quality', 4), (1, 2, 'quality', 2),"
    " (1, 0, 'better', 3);"
    "INSERT INTO case_flags VALUES (1, 2, $s, 'flag', 'typo in the question',"
    " TIMESTAMP '2026-01-01 10:06:00', 'r1');"
    "INSERT INTO rating_comments VALUES (3, 'imported comment');"
    "INSERT INTO safety_alerts VALUES (1, $s, 2, TIMESTAMP '2026-01-01 10:05:00',"
    " TIMESTAMP '2026-01-02 09:00:00', 'coordinator', 'seen');"
)

_REBUILT = (
    "assignments",
    "presentations",
    "ratings",
    "current_ratings",
    "case_flags",
    "rating_comments",
    "safety_alerts",
)


def _snapshot(store) -> dict[str, list[tuple]]:
    tables = {t: store.read(f"SELECT * FROM {t} ORDER BY ALL").rows() for t in _REBUILT}  # noqa: S608
    tables["assignments"] = [row[:12] for row in tables["assignments"]]
    return tables


def _constraints(store) -> list[tuple]:
    """Every constraint of the rebuilt tables but assignments' (table, type, columns, text)."""
    return store.read(
        "SELECT table_name, constraint_type, constraint_column_names, expression"
        " FROM duckdb_constraints() WHERE list_contains($t, table_name)"
        " ORDER BY ALL",
        {"t": [t for t in _REBUILT if t != "assignments"]},
    ).rows()


def _copy_into_older_schema(old, source) -> None:
    """Copy every row of ``source`` into the tables of ``old`` (an older schema), by the
    columns ``old`` has; tables in creation order, so that referenced rows come first."""
    with old.transaction() as cur:
        cur.execute(f"ATTACH '{source}' AS src (READ_ONLY)")
        tables = [
            name
            for (name,) in cur.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
                " AND table_name <> 'schema_migrations' ORDER BY table_oid"
            ).fetchall()
        ]
        for table in tables:
            columns = ", ".join(
                f'"{c}"'
                for (c,) in cur.execute(
                    "SELECT column_name FROM duckdb_columns() WHERE database_name ="
                    " current_database() AND table_name = ? ORDER BY column_index",
                    [table],
                ).fetchall()
            )
            cur.execute(f'DELETE FROM "{table}"')  # noqa: S608 - names read from the catalog
            cur.execute(f'INSERT INTO "{table}" ({columns}) SELECT {columns} FROM src."{table}"')  # noqa: S608
    cur = old.cursor()
    cur.execute("DETACH src")
    cur.close()


def test_migration_5_keeps_every_row_id_and_constraint_of_a_version_4_database(
    tmp_path, monkeypatch
):
    from conftest import make_draft

    from study.migrations import MIGRATIONS
    from study.store import ConstraintViolation, Store

    path = tmp_path / "v4.duckdb"
    # The draft is made by today's services on today's schema, then its rows are copied into
    # a version-4 database, column by column of the version-4 tables (later migrations add
    # tables and columns that today's services need and version 4 lacks).
    source = tmp_path / "today.duckdb"
    with Store(source) as today:
        study = make_draft(today, tmp_path)
    with monkeypatch.context() as patch:
        patch.setattr(Store.migrate, "__defaults__", (MIGRATIONS[:4],))
        with Store(path) as old:
            _copy_into_older_schema(old, source)
            cur = old.cursor()
            for statement in filter(None, _V4_ROWS.split(";")):
                cur.execute(statement, {"s": study} if "$s" in statement else None)
            cur.close()
            assert old.schema_version() == 4
            before, constraints = _snapshot(old), _constraints(old)
            old_assignment_constraints = old.read(
                "SELECT constraint_type, constraint_column_names, expression"
                " FROM duckdb_constraints() WHERE table_name = 'assignments' ORDER BY ALL"
            ).rows()
    with Store(path) as new:
        assert new.schema_version() == MIGRATIONS[-1].version  # 5, and the later ones
        assert _snapshot(new) == before
        assert _constraints(new) == constraints
        kept = new.read(
            "SELECT constraint_type, constraint_column_names, expression"
            " FROM duckdb_constraints() WHERE table_name = 'assignments' ORDER BY ALL"
        ).rows()
        dropped = [c for c in old_assignment_constraints if c not in kept]
        assert dropped == [("UNIQUE", ["study", "rater", "case_id"], None)]
        assert ("UNIQUE", ["study", "rater", "case_id", "phase", "attempt"], None) in kept
        assert new.read(
            "SELECT phase, attempt, presented_at FROM assignments ORDER BY id"
        ).rows() == [("live", 1, None), ("live", 1, None)]
        assert (
            new.read(
                "SELECT count(*) FROM duckdb_indexes() WHERE index_name = 'ratings_assignment'"
            ).item()
            == 1
        )
        cur = new.cursor()
        try:
            # a repeat of a rated case is now allowed; a second live one is not
            cur.execute(
                "INSERT INTO assignments (id, study, design_key, rater, case_id, seed, algorithm,"
                " shown_order, created_at, phase) VALUES (3, ?, 'rep-c1-r1', 'r1', 'c1', 0,"
                " 'clinval-assign-3', 3, TIMESTAMP '2026-01-20 10:00:00', 'repeat')",
                [study],
            )
            with pytest.raises(ConstraintViolation):
                cur.execute(
                    "INSERT INTO assignments (id, study, design_key, rater, case_id, seed,"
                    " algorithm, shown_order, created_at) VALUES (4, ?, 'again', 'r1', 'c1', 0,"
                    " 'x', 4, TIMESTAMP '2026-01-20 10:00:00')",
                    [study],
                )
            with pytest.raises(ConstraintViolation):  # the foreign keys hold again
                cur.execute(
                    "INSERT INTO presentations VALUES (9, 99, ?, 'c1-llm', 1, 'A')", [study]
                )
            # the done flag of a referenced assignment can still be set
            cur.execute(
                "UPDATE assignments SET done = true, status = 'done', done_at = now() WHERE id = 2"
            )
        finally:
            cur.close()


# --- the command line ----------------------------------------------------------------------------


def _cli(*argv: str) -> str:
    import io

    from study.cli import main

    out = io.StringIO()
    assert main(list(argv), out=out) == 0
    return out.getvalue()


def test_assign_dry_run_prints_the_calibration_and_repeat_counts(store, draft, tmp_path):
    coordinator = sign_in(store, "coordinator")
    db = str(tmp_path / "clinval.duckdb")
    before = _cli("assign", "--study", draft, "--raters-per-case", "2", "--seed", "3",
                  "--dry-run", "--db", db)  # fmt: skip
    assert "calibration: 0 assignments (0 per rater, before any live case); repeats: 0" in before
    design.lock_protocol(store, coordinator, draft, PROTOCOL)
    out = _cli("assign", "--study", draft, "--raters-per-case", "2", "--seed", "3",
               "--dry-run", "--db", db)  # fmt: skip
    assert "3 raters, 6 assignments over 3 cases; raters per case 2-2" in out
    assert (
        "calibration: 3 assignments (1 per rater, before any live case); "
        "repeats: 3 assignments (1 per rater, after the washout)"
    ) in out
    loads = out.split("loads per rater")[1].splitlines()[1:6]
    assert loads[0].split() == ["rater", "assignments", "calibration", "repeats"]
    assert [line.split() for line in loads[1:4]] == [[r, "2", "1", "1"] for r in ("r1", "r2", "r3")]
    assert store.read("SELECT count(*) FROM assignments").item() == 0


def test_status_shows_each_raters_calibration_outcome(store, phased, tmp_path):
    rate_next(store, sign_in(store, "r1"), phased, RIGHT)
    rate_next(store, sign_in(store, "r2"), phased, WRONG)
    out = _cli("status", "--study", phased, "--db", str(tmp_path / "clinval.duckdb"))
    lines = out.splitlines()
    assert any(line.split() == ["calibration", "1", "of", "3", "raters", "passed",
                                "(threshold", "0.6)"] for line in lines)  # fmt: skip
    assert "    r1  passed; attempt 1: 1 of 1 cases done, score 1.00 (3 of 3 gold values)" in lines
    assert (
        "    r2  FAILED: waits for the coordinator (retry or pass); attempt 1: 1 of 1 cases "
        "done, score 0.00 (0 of 3 gold values)"
    ) in lines
    assert "    r3  in calibration; attempt 1: 0 of 1 cases done" in lines


# --- intra-rater agreement from first and repeat ratings ------------------------------------------


def test_intra_rater_agreement_pairs_each_raters_first_and_repeat_rating():
    import krippendorff
    import numpy as np

    from analysis.agreement import intra_rater_agreement
    from analysis.errors import AnalysisError

    rng = np.random.default_rng(5)
    rows, first_values, repeat_values = [], [], []
    for rater in ("r1", "r2", "r3"):
        for n in range(8):
            answer = f"a{n}"
            first = int(rng.integers(1, 6))
            again = int(np.clip(first + rng.integers(-1, 2), 1, 5))
            rows += [(rater, answer, float(first), "live"), (rater, answer, float(again), "repeat")]
            first_values.append(first)
            repeat_values.append(again)
    # noise: another rater's live-only ratings, and a calibration row, are no pairs
    rows += [("r4", "a0", 2.0, "live"), ("r1", "gold", 4.0, "calibration")]
    df = pl.DataFrame(rows, schema=["rater", "answer", "value", "phase"], orient="row")
    table = intra_rater_agreement(df, level="ordinal", scale=[1, 2, 3, 4, 5], boot=0)
    alpha = table.filter(pl.col("statistic") == "krippendorff_alpha").row(0, named=True)
    # the krippendorff package (Castro 2017) on the same 24 pairs, occasions as its two coders
    expected = krippendorff.alpha(
        reliability_data=np.array([first_values, repeat_values], dtype=float),
        level_of_measurement="ordinal",
        value_domain=[1, 2, 3, 4, 5],
    )
    assert alpha["estimate"] == pytest.approx(expected, abs=1e-10)
    assert (alpha["n_units"], alpha["raters_pooled"]) == (24, 3)
    kappa = table.filter(
        (pl.col("statistic") == "cohen_kappa") & (pl.col("variant") == "unweighted")
    ).row(0, named=True)
    assert (kappa["rater_a"], kappa["rater_b"]) == ("live", "repeat")
    with pytest.raises(AnalysisError, match="intra-rater agreement needs repeats"):
        intra_rater_agreement(df.filter(pl.col("phase") != "repeat"), level="ordinal")


# --- every other message of the protocol's phases, on the pure checks ------------------------------


def _items() -> dict:
    from conftest import INSTRUMENT

    return {item.key: item for item in INSTRUMENT.items}


@pytest.mark.parametrize(
    ("option", "field", "message"),
    [
        ({"calibration": ["c1"]}, "calibration", "must be an object with cases, expected"),
        ({"calibration": {**GOLD, "cases": []}}, "calibration.cases", "a non-empty list of case"),
        ({"calibration": {**GOLD, "cases": ["c1", "c1"]}}, "calibration.cases", "lists c1 twice"),
        (
            {"calibration": {**GOLD, "expected": {"c1": 4}}},
            "calibration.expected",
            "must map each calibration case to its expected values",
        ),
        ({"repeats": 0.1}, "repeats", "must be an object with share and washout_days"),
        (
            {"repeats": {**REPEATS, "washout": 3}},
            "repeats.washout",
            "unknown option; repeats takes share, washout_days",
        ),
    ],
)
def test_the_shape_of_each_option_is_named_when_wrong(option, field, message):
    from study.phases import shape_problems

    problems = shape_problems(option)
    assert any(p.column == field and message in p.reason for p in problems), problems


@pytest.mark.parametrize(
    ("expected", "answers", "field", "message"),
    [
        ({"c1": {"better": "A"}}, {}, "calibration.cases", "case 'c1' has no answers"),
        (
            {"c1": {"better": {"Response A": "A"}}},
            {"c1": ["x", "y"]},
            "calibration.expected.c1.better",
            "a case-level item takes one value, not one per response",
        ),
        (
            {"c1": {"better": "A"}},
            {"c1": ["x", "y", "z"]},
            "calibration.expected.c1.better",
            "a pairwise item compares two answers; the case has 3",
        ),
        (
            {"c1": {"quality": {"Response A": None}}},
            {"c1": ["x", "y"]},
            "calibration.expected.c1.quality.Response A",
            "value outside the item's scale: item 'quality' is required",
        ),
        (
            {"c1": {"quality": {"x": 4, "y": 5}}},  # answer ids name the responses
            {"c1": ["x", "y"]},
            None,
            None,
        ),
        ({"c1": {"quality": 4}}, {"c1": ["x"]}, None, None),  # one answer: a bare value
    ],
)
def test_each_expected_value_is_checked_against_the_screen_and_the_item(
    expected, answers, field, message
):
    from study.phases import calibration_of, content_problems

    calibration = calibration_of(
        {"calibration": {"cases": ["c1"], "expected": expected, "pass_threshold": 1}}
    )
    problems = content_problems(calibration, cases=["c1", "c2"], answers=answers, items=_items())
    if field is None:
        assert problems == []
    else:
        assert any(p.column == field and message in p.reason for p in problems), problems


def test_the_score_is_the_share_of_gold_values_matched():
    from study.phases import calibration_of, gold_values, score

    calibration = calibration_of(
        {"calibration": {**GOLD, "expected": {"c1": {"quality": {"Response A": 4, "c1-llm": 2},
                                                     "better": "A"}}}}
    )  # fmt: skip
    screen = {"c1-clin": "Response A", "c1-llm": "Response B"}
    gold = gold_values(calibration, "c1", screen, case_items={"better"})
    assert gold == {
        ("quality", "Response A"): 4,
        ("quality", "Response B"): 2,
        ("better", None): "A",
    }
    given = {("quality", "Response A"): 4.0, ("quality", "Response B"): 3, ("better", None): "A"}
    assert score(gold, given) == (2, 3)  # 4.0 matches 4; a value not given never matches
    assert score(gold, {}) == (0, 3)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"calibration_cases": ["zz"]}, "Calibration cases must be cases of the study: zz"),
        ({"repeat_share": 1.5}, "repeat_share must be in [0, 1]"),
        (
            {"calibration_cases": ["c1", "c2", "c3", "c4", "c5"]},
            "no cases to assign besides the calibration cases",
        ),
    ],
)
def test_the_design_refuses_bad_phases(options, message):
    from study.errors import StudyError

    cases = ["c1", "c2", "c3", "c4", "c5"]
    with pytest.raises(StudyError, match=message.replace("[", r"\[").replace("]", r"\]")):
        design_assignments(
            cases, ["r1", "r2"], raters_per_case=1, answers=_answers(), seed=1, **options
        )


def test_the_design_refuses_a_calibration_case_a_rater_wrote_an_answer_of():
    from study.errors import StudyError

    answers = _answers().with_columns(
        pl.when(pl.col("answer_id") == "c1-a").then(pl.lit("r2")).otherwise("author_id")
        .alias("author_id")
    )  # fmt: skip
    with pytest.raises(StudyError, match="calibration case 'c1' shows an answer written by r2"):
        design_assignments(
            ["c1", "c2", "c3", "c4", "c5"], ["r1", "r2"], raters_per_case=1, answers=answers, seed=1,
            calibration_cases=["c1"],
        )  # fmt: skip


def test_the_analysis_command_line_computes_intra_rater_agreement_from_an_export(
    store, phased, tmp_path, capsys
):
    from analysis.agreement import intra_rater_agreement
    from analysis.cli import main

    _rate_everything(store, phased)
    # a second, different repeat value for one rater, so that agreement is not perfect
    quality = exports.export_ratings_long(store, OPERATOR, phased).filter(
        pl.col("item") == "quality"
    )
    quality = quality.with_columns(
        pl.when((pl.col("phase") == "repeat") & (pl.col("label") == "Response A"))
        .then(pl.lit(2.0))
        .otherwise("value")
        .alias("value")
    )
    path = tmp_path / "export.csv"
    quality.select("case", "answer", "rater", "value", "phase").write_csv(path)
    args = ["agreement", str(path), "--unit", "answer", "--level", "ordinal",
            "--scale", "1,2,3,4,5", "--boot", "0", "--intra", "--format", "json"]  # fmt: skip
    assert main(args) == 0
    rows = json.loads(capsys.readouterr().out)
    rows = rows["results"]
    alpha = next(r for r in rows if r["statistic"] == "krippendorff_alpha")
    expected = intra_rater_agreement(
        quality, level="ordinal", scale=[1, 2, 3, 4, 5], boot=0
    ).filter(pl.col("statistic") == "krippendorff_alpha")
    assert alpha["estimate"] == pytest.approx(expected.item(0, "estimate"))
    assert (alpha["n_units"], alpha["raters_pooled"], alpha["intra"]) == (6, 3, True)


def test_the_planned_analyses_read_live_rows_and_add_intra_rater_agreement(store, phased):
    _rate_everything(store, phased)
    results = analyses.study_results(store, OPERATOR, phased, boot=0, seed=1)

    def alpha(frame):
        return frame.filter(
            (pl.col("item") == "quality") & (pl.col("statistic") == "krippendorff_alpha")
        ).row(0, named=True)

    # between raters: 3 live cases x 2 answers, each answer once per rater (repeats left out)
    assert alpha(results["agreement"])["n_units"] == 6
    # within raters: one repeated case per rater, two answers each, all rated alike
    intra = alpha(results["intra_rater"])
    assert (intra["n_units"], intra["raters_pooled"]) == (6, 3)


def test_a_submission_presents_what_the_phased_queue_offers_next(store, phased):
    """The rating screen's submission stamps the next case's first showing (``present_next``)
    by the same queue rules as ``next_assignment``: after a passed calibration, the first live
    case; after a failed one, nothing (the rater waits for the coordinator)."""
    r1, r2 = sign_in(store, "r1"), sign_in(store, "r2")
    for who, values in ((r1, RIGHT), (r2, WRONG)):
        view = rating_service.next_assignment(store, who, phased)
        assert view["phase"] == "calibration"
        rating_service.submit_rating(
            store, who, phased, view["assignment"], values, present_next=True
        )
    offered = rating_service.next_assignment(store, r1, phased)
    assert offered["phase"] == "live" and offered["presented_at"] is not None
    assert rating_service.next_assignment(store, r2, phased) is None
    stamped = store.read(
        "SELECT object_id FROM audit_events WHERE action = 'assignment.present'"
    ).get_column("object_id")
    assert stamped.to_list() == [str(offered["assignment"])]  # r2's failed calibration: none
