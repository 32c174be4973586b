"""The services the Design screen added: a case previewed as a rater sees it, the power of a
design, the study's raters, and a dry run of a draft's calibration and repeats before the lock."""

from __future__ import annotations

import json

import polars as pl
import pytest
from conftest import RATERS, answers_rows, sign_in, write_jsonl

from study import audit_verify
from study.errors import NotFoundError, StateError, ValidationError
from study.keyfile import new_seed
from study.services import analyses, content, design, people


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


def test_the_study_raters_are_those_with_the_rater_role_there(store, draft):
    coordinator = sign_in(store, "coordinator")
    people.invite(store, coordinator, draft, "new@hospital.example", "rater")
    raters = people.study_raters(store, coordinator, draft)
    assert raters.get_column("id").to_list() == sorted([*RATERS, "new@hospital.example"])
    waiting = dict(raters.select("id", "waiting").iter_rows())
    assert waiting["new@hospital.example"] and not waiting["r1"]


def test_a_demo_rater_who_has_been_rating_is_not_waiting_for_a_sign_in(demo):
    """The demo's raters are picked from a list and never bind a sign-in of their own: one who
    has rated is no longer shown as "not signed in yet" (the Design screen ticked them all)."""
    from study.demo import COORDINATOR, DEMO_STUDY_ID

    coordinator = sign_in(demo, COORDINATOR["user_id"])
    raters = people.study_raters(demo, coordinator, DEMO_STUDY_ID)
    done = demo.read(
        "SELECT DISTINCT rater FROM assignments WHERE study = $s AND done", {"s": DEMO_STUDY_ID}
    ).get_column("rater")
    waiting = dict(raters.select("id", "waiting").iter_rows())
    assert done.len() and not any(waiting[r] for r in done)


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
