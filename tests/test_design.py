"""A study's design before rating opens (``study.services.design``, with the design's power from
``analyses.design_power`` and its raters from ``people.study_raters``): the protocol and its lock;
the assignment of raters to cases, which never shows a rater their own answer; a case previewed
as a rater sees it; the dry run of a draft's calibration and repeats, whose seed the lock keeps;
the settings a draft keeps between sittings; and the blinding leak report."""

from __future__ import annotations

import json

import polars as pl
import pytest
from conftest import (
    ARMS,
    CASES,
    INSTRUMENT,
    ISSUER,
    OPERATOR,
    RATERS,
    answers_rows,
    new_study,
    sign_in,
    write_jsonl,
)

from study import audit_verify
from study.errors import NotFoundError, PermissionDenied, StateError, ValidationError
from study.keyfile import new_seed
from study.services import analyses, content, design, people, studies
from study.services import instrument_library as instruments


def _answers_frame(rows):
    # add_answers takes frames as the reader returns them (generated_at the ISO text as
    # written); the reader itself would refuse these deliberately incomplete files
    return pl.DataFrame(rows, infer_schema_length=None)


def _study_with(store, tmp_path, answers, *, attach=True, name="Gaps"):
    """A draft study with CASES, ARMS, the given answer rows and (optionally) the instrument,
    set up by its coordinator."""
    study = new_study(store, name)
    coordinator = sign_in(store, "coordinator")
    content.add_arms(store, coordinator, study, pl.DataFrame(ARMS))
    content.add_cases(store, coordinator, study, pl.DataFrame(CASES))
    if answers:
        content.add_answers(store, coordinator, study, _answers_frame(answers))
    if attach:
        instruments.add_instrument(store, coordinator, INSTRUMENT)
        instruments.attach_instrument(store, coordinator, study, INSTRUMENT.key, INSTRUMENT.version)
    return study


# --- the protocol and its lock ------------------------------------------------------------------


def test_lock_needs_content_and_a_later_version_needs_a_reason(store, draft):
    coordinator = sign_in(store, "coordinator")
    empty = new_study(store, "Empty")
    with pytest.raises(StateError, match="no arm; it has no case; it has no attached instrument"):
        design.lock_protocol(store, coordinator, empty, {})
    digest = design.lock_protocol(store, coordinator, draft, {"margin": 0.5})
    assert studies.get_study(store, coordinator, draft)["status"] == "locked"
    protocol = design.get_protocol(store, coordinator, draft)
    assert (protocol["version"], protocol["content"], protocol["content_hash"]) == (
        1,
        {"margin": 0.5},
        digest,
    )
    with pytest.raises(StateError, match="needs a reason"):
        design.lock_protocol(store, coordinator, draft, {"margin": 0.4})
    design.lock_protocol(store, coordinator, draft, {"margin": 0.4}, reason="DSMB advice")
    assert design.get_protocol(store, coordinator, draft)["version"] == 2
    assert design.get_protocol(store, coordinator, draft, version=1)["content"] == {"margin": 0.5}


@pytest.mark.parametrize(
    ("keep", "expected"),
    [
        # the LLM arm answered nothing: an arm without answers, and no case has two to compare
        (
            lambda r: r["arm_id"] != "llm",
            [
                "arms without any answer (import their answers or remove the arms): 'llm'",
                "4 case(s) have fewer than 2 answers (a pairwise item compares two): "
                "'c1' (1), 'c2' (1), 'c3' (1), 'c4' (1)",
                "Coverage per arm: clin 4/4; llm 0/4.",
            ],
        ),
        # one case lacks the clinicians' answer: the pairwise item needs two on every case
        (
            lambda r: r["answer_id"] != "c3-clin",
            [
                "1 case(s) have fewer than 2 answers (a pairwise item compares two): 'c3' (1)",
                "Coverage per arm: clin 3/4; llm 4/4.",
            ],
        ),
        # a case with no answer from any arm: nothing to rate on it
        (
            lambda r: r["case_id"] != "c2",
            ["1 case(s) have fewer than 1 answers (nothing to rate): 'c2' (0)"],
        ),
    ],
)
def test_lock_refuses_a_design_with_missing_answers(store, tmp_path, keep, expected):
    rows = [r for r in answers_rows() if keep(r)]
    study = _study_with(store, tmp_path, rows)
    coordinator = sign_in(store, "coordinator")
    with pytest.raises(StateError) as info:
        design.lock_protocol(store, coordinator, study, {})
    for text in expected:
        assert text in str(info.value)
    assert studies.get_study(store, coordinator, study)["status"] == "draft"
    # the study can still be completed and locked
    missing = [r for r in answers_rows() if not keep(r)]
    content.add_answers(store, coordinator, study, _answers_frame(missing))
    design.lock_protocol(store, coordinator, study, {})
    assert studies.get_study(store, coordinator, study)["status"] == "locked"


def test_lock_lists_a_bounded_number_of_missing_answers(store):
    study = new_study(store, "Many")
    coordinator = sign_in(store, "coordinator")
    content.add_arms(store, coordinator, study, pl.DataFrame(ARMS))
    many = [{"case_id": f"k{i:03d}", "question": "Q?"} for i in range(60)]
    content.add_cases(store, coordinator, study, pl.DataFrame(many))
    with pytest.raises(StateError) as info:
        design.lock_protocol(store, coordinator, study, {})
    message = str(info.value)
    assert "arms without any answer (import their answers or remove the arms): 'clin', 'llm'" in (
        message
    )
    assert "60 case(s) have fewer than 1 answers (nothing to rate): 'k000' (0)" in message
    assert message.count(" (0), ") == 2 * 19  # twenty cases named per reason, then a count
    assert "(and 40 more)" in message
    assert "no attached instrument" in message


def test_lock_needs_an_attached_instrument(store, tmp_path):
    study = _study_with(store, tmp_path, answers_rows(), attach=False)
    with pytest.raises(StateError, match="no attached instrument"):
        design.lock_protocol(store, sign_in(store, "coordinator"), study, {})


@pytest.mark.parametrize(
    ("content", "endpoint", "test_arm", "reference_arm"),
    [
        pytest.param({}, {}, None, None, id="names nothing"),
        pytest.param({"primary_endpoint": "quality"}, {"item": "quality"}, None, None, id="key"),
        pytest.param(
            {"primary_endpoint": {"item": "quality", "margin": 0.5}, "arms": {"test": "llm"}},
            {"item": "quality", "margin": 0.5},
            "llm",
            None,
            id="dict, test arm only",
        ),
        pytest.param(
            {"arms": {"test": "llm", "reference": "clin"}}, {}, "llm", "clin", id="arms only"
        ),
    ],
)
def test_get_protocol_reads_the_endpoint_and_arms_in_one_shape(
    store, draft, content, endpoint, test_arm, reference_arm
):
    coordinator = sign_in(store, "coordinator")
    design.lock_protocol(store, coordinator, draft, content)
    protocol = design.get_protocol(store, coordinator, draft)
    assert protocol["content"] == content  # as locked, untouched
    assert protocol["primary_endpoint"] == endpoint
    assert (protocol["test_arm"], protocol["reference_arm"]) == (test_arm, reference_arm)


@pytest.mark.parametrize(
    ("content", "field"),
    [
        pytest.param({"arms": ["llm", "clin"]}, "arms", id="arms not a mapping"),
        pytest.param(
            {"primary_endpoint": {"item": "quality", "margin": -0.5}},
            "primary_endpoint.margin",
            id="negative margin",
        ),
        pytest.param(
            {"primary_endpoint": {"item": "quality", "margin": 0.5, "direction": "up"}},
            "primary_endpoint.direction",
            id="unknown direction",
        ),
        pytest.param(
            {"primary_endpoint": {"item": "quality", "margin": 0.5, "method": "newcombe"}},
            "primary_endpoint.method",
            id="risk method on a scale item",
        ),
        pytest.param(
            {"primary_endpoint": {"item": "nosuch", "margin": 0.5}},
            "primary_endpoint.item",
            id="item no instrument has",
        ),
        pytest.param(
            {
                "secondary_endpoints": [
                    {"item": "quality", "margin": 5, "statistic": "risk_difference"}
                ]
            },
            "secondary_endpoints[0].margin",
            id="risk margin as points",
        ),
    ],
)
def test_a_protocol_the_plan_cannot_read_is_refused_at_the_lock_naming_the_field(
    store, draft, content, field
):
    """``study.protocol`` is what every service reads the plan with: what it cannot read is
    refused when the coordinator locks it, with the field named, and nothing is stored."""
    coordinator = sign_in(store, "coordinator")
    with pytest.raises(ValidationError) as refused:
        design.lock_protocol(store, coordinator, draft, content)
    assert [p.column for p in refused.value.problems] == [field]
    with pytest.raises(NotFoundError):
        design.get_protocol(store, coordinator, draft)


# --- assignments --------------------------------------------------------------------------------


def test_assignments_never_show_a_rater_their_own_answer(store, draft):
    # the answers name their author "dr.who@example.org"; the user signed up as Dr.Who@...
    who = people.find_user(store, OPERATOR, ISSUER, "who")["id"]
    coordinator = sign_in(store, "coordinator")
    design.lock_protocol(store, coordinator, draft, {})
    design.make_assignments(
        store, coordinator, draft, raters=["r1", "r2", who], raters_per_case=2, seed=3
    )
    loads = dict(store.read("SELECT rater, count(*) FROM assignments GROUP BY rater").rows())
    assert loads == {"r1": 4, "r2": 4}  # the author wrote an answer in every case


def test_persisting_a_design_that_shows_a_rater_their_own_answer_is_refused(store, draft):
    who = people.find_user(store, OPERATOR, ISSUER, "who")["id"]
    coordinator = sign_in(store, "coordinator")
    design.lock_protocol(store, coordinator, draft, {})
    assignments = pl.DataFrame(
        {"assignment_id": ["x1"], "case_id": ["c1"], "rater_id": [who], "queue_position": [1]}
    )
    presentations = pl.DataFrame(
        {
            "assignment_id": ["x1", "x1"],
            "answer_id": ["c1-clin", "c1-llm"],
            "position": [1, 2],
            "label": ["Response A", "Response B"],
        }
    )
    with pytest.raises(PermissionDenied, match="their own answer"):
        design.persist_assignments(store, coordinator, draft, assignments, presentations, seed=1)
    assert store.read("SELECT count(*) FROM assignments").item() == 0


def test_persisting_unknown_raters_is_refused(store, draft):
    assignments = pl.DataFrame(
        {"assignment_id": ["x1"], "case_id": ["c1"], "rater_id": ["ghost"], "queue_position": [1]}
    )
    presentations = pl.DataFrame(
        {"assignment_id": ["x1"], "answer_id": ["c1-llm"], "position": [1], "label": ["Response A"]}
    )
    with pytest.raises(NotFoundError, match="ghost"):
        design.persist_assignments(
            store, sign_in(store, "coordinator"), draft, assignments, presentations, seed=1
        )


def test_make_assignments_names_cases_without_answers(store, tmp_path):
    # locking refuses this design, so build the state the old code allowed directly: the
    # assignment step must say what is wrong, not "add raters"
    study = _study_with(store, tmp_path, [r for r in answers_rows() if r["case_id"] != "c2"])
    for name in ("r1", "r2"):
        people.ensure_user(store, OPERATOR, issuer="i", subject=name, user_id=name)
    with pytest.raises(StateError) as info:
        design.make_assignments(
            store,
            sign_in(store, "coordinator"),
            study,
            raters=["r1", "r2"],
            raters_per_case=1,
            seed=1,
        )
    assert "1 case(s) have no answers to rate: 'c2'" in str(info.value)
    assert "Add raters" not in str(info.value)


@pytest.mark.parametrize("author", ["R1", " r1 ", "R1@Example.org", "SUB-R1", " sub-r1"])
def test_own_answers_match_id_email_and_subject_ignoring_case_and_spaces(store, tmp_path, author):
    rows = answers_rows(author=author)
    study = _study_with(store, tmp_path, rows)
    people.ensure_user(
        store, OPERATOR, issuer="i", subject="sub-r1", user_id="r1", email="r1@example.org"
    )
    people.ensure_user(store, OPERATOR, issuer="i", subject="r2", user_id="r2")
    coordinator = sign_in(store, "coordinator")
    design.lock_protocol(store, coordinator, study, {})
    # the design keeps r1 away from every case (r1 wrote a clinician answer in each)
    design.make_assignments(
        store, coordinator, study, raters=["r1", "r2"], raters_per_case=1, seed=1
    )
    assert store.read("SELECT DISTINCT rater FROM assignments").rows() == [("r2",)]
    # and a hand-made design that shows r1 their own answer is refused
    assignments = pl.DataFrame(
        {"assignment_id": ["x1"], "case_id": ["c1"], "rater_id": ["r1"], "queue_position": [1]}
    )
    presentations = pl.DataFrame(
        {
            "assignment_id": ["x1", "x1"],
            "answer_id": ["c1-clin", "c1-llm"],
            "position": [1, 2],
            "label": ["Response A", "Response B"],
        }
    )
    with pytest.raises(PermissionDenied, match="their own answer"):
        design.persist_assignments(store, coordinator, study, assignments, presentations, seed=1)


def test_unknown_presentations_and_raters_are_counted_beyond_the_listed_ones(store, draft):
    coordinator = sign_in(store, "coordinator")
    assignments = pl.DataFrame(
        {"assignment_id": ["x1"], "case_id": ["c1"], "rater_id": ["r1"], "queue_position": [1]}
    )
    orphans = pl.DataFrame(
        {
            "assignment_id": [f"ghost{i:02d}" for i in range(25)],
            "answer_id": ["c1-llm"] * 25,
            "position": [1] * 25,
            "label": ["Response A"] * 25,
        }
    )
    with pytest.raises(ValidationError) as info:
        design.persist_assignments(store, coordinator, draft, assignments, orphans, seed=1)
    assert info.value.total == 25
    assert info.value.problems[-1].repeats == 5

    ghosts = assignments.select(
        pl.lit([f"x{i}" for i in range(23)]).explode().alias("assignment_id"),
        pl.lit("c1").alias("case_id"),
        pl.lit([f"ghost{i:02d}" for i in range(23)]).explode().alias("rater_id"),
        pl.lit(1).alias("queue_position"),
    )
    with pytest.raises(NotFoundError) as info:
        design.persist_assignments(store, coordinator, draft, ghosts, orphans.clear(), seed=1)
    assert "ghost19 (and 3 more)" in str(info.value)
    assert "ghost20" not in str(info.value)


def test_the_stored_design_records_what_replays_it(store, draft):
    # the parameters go into the assignments.persist event; with the seed revealed at unblinding
    # they give the same allocation again (study.assignment is pure and seeded)
    import json

    from study import audit
    from study.assignment import design_assignments

    coordinator = sign_in(store, "coordinator")
    design.lock_protocol(store, coordinator, draft, {"primary_item": "quality", "margin": 0.5})
    design.make_assignments(store, coordinator, draft, raters_per_case=2, seed=11, mode="pairwise")
    event = audit.events(store, study=draft).filter(pl.col("action") == "assignments.persist")
    recorded = json.loads(event.item(0, "payload"))["design"]
    assert recorded == {
        "mode": "pairwise",
        "raters_per_case": 2,
        "match_specialty": False,
        "raters": ["r1", "r2", "r3"],
    }
    # read as the operator: a locked study is blind, no person reads answers beside their arms
    answers = content.list_answers(store, OPERATOR, draft).select(
        "answer_id", "case_id", "arm_id", "author_id"
    )
    cases = content.list_cases(store, coordinator, draft).get_column("case_id").to_list()
    again, _ = design_assignments(
        cases,
        list(reversed(recorded["raters"])),  # the order given does not matter
        raters_per_case=recorded["raters_per_case"],
        answers=answers,
        seed=11,
        mode=recorded["mode"],
    )
    stored = store.read("SELECT case_id, rater, shown_order FROM assignments ORDER BY 2, 3")
    assert (
        stored.rows()
        == again.select("case_id", "rater_id", "queue_position")
        .sort("rater_id", "queue_position")
        .rows()
    )


# --- a case previewed as a rater sees it --------------------------------------------------------


def test_a_case_is_previewed_under_neutral_labels_and_nothing_is_stored(store, draft):
    coordinator = sign_in(store, "coordinator")
    before = audit_verify.verify(store).head_hash
    view = design.preview_view(store, coordinator, draft, case_id="c2")
    assert view["case_id"] == "c2" and view["question"] == "Question 2?"
    # answer-id order: c2-clin sorts before c2-llm
    assert [p["label"] for p in view["presentations"]] == ["Response A", "Response B"]
    assert [p["text"] for p in view["presentations"]] == ["Clinician answer.", "LLM answer."]
    assert view["arms"] == {"Response A": "clin", "Response B": "llm"}
    assert view["values"] == {} and view["done"] is False
    assert design.preview_view(store, coordinator, draft)["case_id"] == "c1"  # the first case
    separate = design.preview_view(store, coordinator, draft, mode="separate")
    assert [p["label"] for p in separate["presentations"]] == ["Response A"]
    assert audit_verify.verify(store).head_hash == before
    with pytest.raises(NotFoundError, match="no case with answers"):
        design.preview_view(store, coordinator, draft, case_id="c9")
    with pytest.raises(ValidationError):
        design.preview_view(store, coordinator, draft, mode="sideways")


# --- the power of a design ----------------------------------------------------------------------


def test_the_power_of_a_design_matches_chow_shao_wang(store, draft):
    # Chow, Shao & Wang (2008), Sample Size Calculations in Clinical Research, 2nd ed.,
    # Example 3.1.4: one-sided alpha 0.05, sd 1, true difference 0.5, margin 0.5, power 0.8 -> 7
    coordinator = sign_in(store, "coordinator")
    found = analyses.design_power(
        store,
        coordinator,
        draft,
        margin=0.5,
        sd=1.0,
        icc=0.0,
        raters_per_case=1,
        alpha=0.05,
        expected_difference=0.5,
    )
    assert found["cases"] == 4  # the draft's cases
    assert [t["cases"] for t in found["targets"]] == [7, 9]
    # 4 cases: Phi(1 * sqrt(4) - z_0.95) = Phi(0.355) (normal table: 0.639)
    assert found["power"] == pytest.approx(0.6388, abs=1e-4)
    with pytest.raises(ValidationError, match="expected difference"):
        analyses.design_power(
            store, coordinator, draft, margin=0.5, sd=1, icc=0, raters_per_case=2,
            expected_difference=-0.6,
        )  # fmt: skip


# --- the study's raters -------------------------------------------------------------------------


def test_the_study_raters_are_those_with_the_rater_role_there(store, draft):
    coordinator = sign_in(store, "coordinator")
    people.invite(store, coordinator, draft, "new@hospital.example", "rater")
    raters = people.study_raters(store, coordinator, draft)
    assert raters.get_column("id").to_list() == sorted([*RATERS, "new@hospital.example"])
    waiting = dict(raters.select("id", "waiting").iter_rows())
    assert waiting["new@hospital.example"] and not waiting["r1"]


def test_a_demo_rater_who_has_been_rating_is_not_waiting_for_a_sign_in(demo):
    """The demo's raters are picked from a list and never bind a sign-in of their own: one who
    has rated is not shown as "not signed in yet" on the Design screen's list of raters."""
    from study.demo import COORDINATOR, DEMO_STUDY_ID

    coordinator = sign_in(demo, COORDINATOR["user_id"])
    raters = people.study_raters(demo, coordinator, DEMO_STUDY_ID)
    done = demo.read(
        "SELECT DISTINCT rater FROM assignments WHERE study = $s AND done", {"s": DEMO_STUDY_ID}
    ).get_column("rater")
    waiting = dict(raters.select("id", "waiting").iter_rows())
    assert done.len() and not any(waiting[r] for r in done)


# --- the dry run before the lock, and its seed --------------------------------------------------


def test_a_draft_dry_runs_its_calibration_and_repeats_and_the_lock_keeps_its_seed(store, draft):
    coordinator = sign_in(store, "coordinator")
    seed = new_seed()
    options = {"raters_per_case": 2, "mode": "side_by_side", "match_specialty": False}
    summary = design.preview_assignments(
        store, coordinator, draft, seed=seed, calibration_cases=["c1"], repeat_share=0.5, **options
    )
    loads = summary["loads"]
    assert loads.get_column("calibration").to_list() == [1, 1, 1]
    assert loads.get_column("assignments").sum() == 6  # 3 live cases x 2 raters
    assert loads.get_column("repeats").sum() > 0
    # one coverage row per assignment, every phase
    assert summary["coverage"].height == sum(
        loads.get_column(c).sum() for c in ("assignments", "calibration", "repeats")
    )
    # the lock seals the seed the dry run used: the stored design is the one previewed
    plain = design.preview_assignments(store, coordinator, draft, seed=seed, **options)
    design.lock_protocol(store, coordinator, draft, {"primary_item": "quality"}, seed=seed)
    design.make_assignments(store, coordinator, draft, **options)
    rows = store.read(
        "SELECT rater AS rater_id, case_id FROM assignments WHERE study = $s ORDER BY 1, 2",
        {"s": draft},
    )
    assert rows.rows() == plain["coverage"].select("rater_id", "case_id").rows()


def test_a_seed_is_a_whole_number_the_lock_can_seal():
    seeds = {new_seed() for _ in range(20)}
    assert len(seeds) == 20
    assert all(0 <= s <= design.MAX_SEED for s in seeds)


# --- the design settings kept between sittings --------------------------------------------------


def test_a_drafts_design_settings_are_kept_between_sittings_and_audited(store, draft):
    coordinator = sign_in(store, "coordinator")
    assert design.design_draft(store, coordinator, draft) is None
    plan = {"mode": "pairwise", "raters_per_case": 3, "margin": 0.5, "secondary": ["empathy"]}
    assert design.save_design_draft(store, coordinator, draft, plan) == [
        "margin",
        "mode",
        "raters_per_case",
        "secondary",
    ]
    kept = design.design_draft(store, coordinator, draft)
    assert kept["settings"] == plan and kept["saved_by"] == coordinator.actor
    # the same settings again write nothing: no row change, no event
    head = audit_verify.verify(store).head_hash
    assert design.save_design_draft(store, coordinator, draft, dict(plan)) == []
    assert audit_verify.verify(store).head_hash == head
    # a change records only what changed, a dropped setting as null
    changed = {"mode": "pairwise", "raters_per_case": 2, "margin": 0.5}
    assert design.save_design_draft(store, coordinator, draft, changed) == [
        "raters_per_case",
        "secondary",
    ]
    event = store.read(
        "SELECT actor, payload FROM audit_events WHERE action = 'design.draft' ORDER BY seq DESC"
        " LIMIT 1"
    ).row(0)
    assert event[0] == coordinator.actor
    assert json.loads(event[1]) == {"changed": {"raters_per_case": 2, "secondary": None}}
    assert design.design_draft(store, coordinator, draft)["settings"] == changed
    assert audit_verify.verify(store).ok


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        (["mode", "pairwise"], "must be an object"),
        ({"": 1}, "is not a setting's name"),
        ({"seed": 12345}, "seed is never kept"),
        ({"margin": float("nan")}, "cannot be kept as JSON"),
        ({"margin": object()}, "cannot be kept as JSON"),
        ({"notes": "x" * (design.MAX_DRAFT_BYTES + 1)}, "more than the 65,536 kept"),
    ],
)
def test_bad_draft_settings_are_refused_with_the_reason_and_nothing_is_kept(
    store, draft, settings, reason
):
    coordinator = sign_in(store, "coordinator")
    design.save_design_draft(store, coordinator, draft, {"mode": "separate"})
    head = audit_verify.verify(store).head_hash
    with pytest.raises(ValidationError, match=reason) as refused:
        design.save_design_draft(store, coordinator, draft, settings)
    assert refused.value.problems[0].file == "design settings"
    assert design.design_draft(store, coordinator, draft)["settings"] == {"mode": "separate"}
    assert audit_verify.verify(store).head_hash == head


def test_only_a_drafts_settings_change_and_the_last_draft_stays_readable(store, rating):
    coordinator = sign_in(store, "coordinator")
    with pytest.raises(StateError, match="is rating; this needs it to be draft"):
        design.save_design_draft(store, coordinator, rating, {"mode": "pairwise"})
    assert design.design_draft(store, coordinator, rating) is None


# --- the blinding leak report -------------------------------------------------------------------


def test_the_leak_report_is_kept_until_the_answers_change(store, draft, tmp_path):
    # kept per answers' fingerprint: the same answers give the very same frame, a changed answer
    # (same count, other text) a new report
    coordinator = sign_in(store, "coordinator")
    first = design.leak_report(store, coordinator, draft)
    assert design.leak_report(store, coordinator, draft) is first
    assert first.filter(pl.col("arm_id") == "llm").get_column("mean_words").item() == 2
    design_rows = [
        row | {"answer_id": "c1-llm-long", "text": "A much longer LLM answer, in seven words."}
        for row in answers_rows()
        if row["answer_id"] == "c1-llm"
    ]
    content.remove_answers(store, coordinator, draft, ["c1-llm"])
    content.import_answers(
        store, coordinator, draft, write_jsonl(tmp_path / "a.jsonl", design_rows)
    )
    again = design.leak_report(store, coordinator, draft)
    assert again is not first
    llm = again.filter(pl.col("arm_id") == "llm")
    assert (
        llm.get_column("n_answers").item()
        == first.filter(pl.col("arm_id") == "llm").get_column("n_answers").item()
    )
    assert llm.get_column("mean_words").item() > 2
