"""The synthetic demo: its files, the seeded rater model, and the study build_demo stores."""

from __future__ import annotations

import csv
import json

import polars as pl
import pytest
from conftest import OPERATOR, sign_in

from analysis.leakage import leak_report
from study import audit_verify, importing
from study.assignment import design_assignments
from study.demo import (
    DEMO_DIR,
    DEMO_STUDY_ID,
    DEMO_STUDY_NAME,
    ITEM_BETTER,
    ITEM_COULD_HARM,
    ITEM_EMPATHY,
    ITEM_HARM_EXTENT,
    ITEM_HARM_LIKELIHOOD,
    ITEM_QUALITY,
    REFERENCE_ARM,
    TEST_ARM,
    RaterModel,
    build_demo,
    read_answer_errors,
    read_raters,
    simulate_ratings,
    submissions,
)
from study.errors import StudyError
from study.services import content, exports, lifecycle, monitoring, rating, studies
from study.services import design as design_service
from study.store import Store

SEED = 2026


# --- the files -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_frames():
    cases = importing.read_cases(DEMO_DIR / "cases.jsonl")
    arms = importing.read_arms(DEMO_DIR / "arms.csv")
    answers = importing.read_answers(
        DEMO_DIR / "answers.jsonl",
        known_case_ids=set(cases.get_column("case_id")),
        arms=arms,
    )
    return cases, arms, answers


def test_demo_files_pass_the_importers_and_cover_enough_cases(demo_frames):
    cases, arms, answers = demo_frames
    assert cases.height >= 40
    assert cases.get_column("specialty").n_unique() >= 6
    assert sorted(arms.get_column("arm_id")) == [REFERENCE_ARM, TEST_ARM]
    # One answer per case and arm.
    per_case = answers.group_by("case_id").agg(pl.col("arm_id").sort())
    assert per_case.height == cases.height
    assert all(
        arms_ == [REFERENCE_ARM, TEST_ARM] for arms_ in per_case.get_column("arm_id").to_list()
    )


def test_every_demo_file_says_it_is_synthetic(demo_frames):
    cases, arms, _ = demo_frames
    readme = (DEMO_DIR / "README.md").read_text(encoding="utf-8")
    assert "Synthetic demo data written for Clinval; not real patients" in readme
    assert all("synthetic" in tags for tags in cases.get_column("tags"))
    assert all("synthetic" in label for label in arms.get_column("label"))
    assert all("(demo)" in r["display_name"] for r in read_raters())
    assert all(r["email"].endswith(".example") for r in read_raters())


def test_llm_answers_carry_full_provenance_and_clinician_answers_an_author(demo_frames):
    _, _, answers = demo_frames
    llm = answers.filter(pl.col("arm_id") == TEST_ARM)
    for column in ("model_name", "model_version", "generated_at", "prompt", "system_prompt"):
        assert llm.get_column(column).null_count() == 0, column
    assert llm.get_column("model_version").unique().to_list() == ["demo-llm-2026-06-01"]
    params = {json.loads(p)["temperature"] for p in llm.get_column("parameters")}
    assert params == {0.2}
    clinician = answers.filter(pl.col("arm_id") == REFERENCE_ARM)
    assert clinician.get_column("author_id").null_count() == 0
    assert clinician.get_column("author_role").null_count() == 0
    # Some clinician answers were written by demo raters, so exclusion is exercised.
    rater_ids = {r["user_id"] for r in read_raters()}
    assert 3 <= clinician.filter(pl.col("author_id").is_in(list(rater_ids))).height < 20


def test_llm_answers_are_longer_and_the_leak_report_sees_it(demo_frames):
    _, _, answers = demo_frames
    report = {r["arm_id"]: r for r in leak_report(answers).iter_rows(named=True)}
    assert report[TEST_ARM]["mean_words"] > 1.8 * report[REFERENCE_ARM]["mean_words"]
    assert report[TEST_ARM]["share_markdown"] > report[REFERENCE_ARM]["share_markdown"]
    assert report[TEST_ARM]["share_self_identifying"] > 0
    assert report[REFERENCE_ARM]["share_signature"] > 0


def test_planted_errors_name_real_answers_with_a_known_severity(demo_frames):
    _, _, answers = demo_frames
    errors = read_answer_errors()
    assert set(errors) <= set(answers.get_column("answer_id"))
    assert set(errors.values()) <= {"mild", "moderate", "severe"}
    assert 5 <= len(errors) <= 12
    with open(DEMO_DIR / "answer_errors.csv", newline="", encoding="utf-8") as handle:
        assert all(len(row["error"]) > 40 for row in csv.DictReader(handle))


def test_raters_file_has_six_demo_raters_with_identity_columns():
    raters = read_raters()
    assert len(raters) == 6
    assert len({r["user_id"] for r in raters}) == 6
    assert {r["issuer"] for r in raters} == {"demo"}
    assert all(r["subject"] and r["specialty"] for r in raters)


# --- the rater model (pure) ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def design(demo_frames):
    cases, _, answers = demo_frames
    raters = [r["user_id"] for r in read_raters()]
    return design_assignments(
        cases.get_column("case_id").to_list(),
        raters,
        raters_per_case=3,
        answers=answers.select("answer_id", "case_id", "arm_id", "author_id"),
        seed=SEED,
    )


def test_simulation_is_deterministic_for_a_seed_and_changes_with_it(design):
    a, p = design
    errors = read_answer_errors()
    first = simulate_ratings(a, p, errors=errors, seed=1)
    again = simulate_ratings(a, p, errors=errors, seed=1)
    other = simulate_ratings(a, p, errors=errors, seed=2)
    assert first.equals(again)
    assert not first.equals(other)


@pytest.mark.parametrize("share", [0.0, 0.25, 0.6, 1.0])
def test_exactly_the_requested_share_is_rated_each_rater_from_the_front_of_the_queue(design, share):
    a, p = design
    sim = simulate_ratings(a, p, seed=3, model=RaterModel(rated_share=share))
    rated = set(sim.get_column("assignment_id"))
    assert len(rated) == round(share * a.height)
    for _, queue in a.group_by("rater_id"):
        flags = [x in rated for x in queue.sort("queue_position").get_column("assignment_id")]
        # rated ones form a prefix of the queue: True...True False...False
        assert flags == sorted(flags, reverse=True)


def test_simulated_values_lie_on_the_instrument_scales_and_harm_items_agree(design):
    a, p = design
    sim = simulate_ratings(a, p, errors=read_answer_errors(), seed=SEED)
    values = {item: set(g.get_column("value")) for (item,), g in sim.group_by("item")}
    assert values[ITEM_QUALITY] <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert values[ITEM_EMPATHY] <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert values[ITEM_HARM_EXTENT] <= {0.0, 1.0, 2.0}
    assert values[ITEM_HARM_LIKELIHOOD] <= {0.0, 1.0, 2.0}
    assert values[ITEM_COULD_HARM] <= {0.0, 1.0}
    assert set(sim.filter(pl.col("item") == ITEM_BETTER).get_column("value_text")) <= {
        "A",
        "B",
        "tie",
    }
    wide = sim.filter(pl.col("label").is_not_null()).pivot(
        on="item", index=["assignment_id", "label"], values="value"
    )
    assert wide.filter((pl.col(ITEM_COULD_HARM) == 1) != (pl.col(ITEM_HARM_EXTENT) > 0)).is_empty()
    assert wide.filter(
        (pl.col(ITEM_HARM_EXTENT) == 0) & (pl.col(ITEM_HARM_LIKELIHOOD) > 0)
    ).is_empty()
    assert (sim.get_column("seconds") > 0).all()


def test_answers_with_planted_errors_draw_most_of_the_harm_flags(design):
    a, p = design
    errors = read_answer_errors()
    sim = simulate_ratings(a, p, errors=errors, seed=SEED, model=RaterModel(rated_share=1.0))
    flags = sim.filter(pl.col("item") == ITEM_COULD_HARM).with_columns(
        pl.col("answer_id").is_in(list(errors)).alias("planted")
    )
    rate = dict(flags.group_by("planted").agg(pl.col("value").mean()).iter_rows())
    assert rate[True] > 0.5
    assert rate[False] < 0.1
    severe = flags.filter(
        pl.col("answer_id").is_in([k for k, v in errors.items() if v == "severe"])
    )
    extents = sim.filter(
        (pl.col("item") == ITEM_HARM_EXTENT)
        & pl.col("answer_id").is_in(severe["answer_id"].to_list())
    )
    assert (extents.get_column("value") == 2).sum() > 0


def test_submissions_group_values_the_way_submit_rating_takes_them(design):
    a, p = design
    sim = simulate_ratings(a, p, seed=SEED)
    subs = submissions(sim)
    assert len(subs) == sim.get_column("assignment_id").n_unique()
    one = subs[0]
    assert one["values"][ITEM_BETTER] in {"A", "B", "tie"}
    assert set(one["values"][ITEM_QUALITY]) == {"Response A", "Response B"}
    assert all(isinstance(v, int) for v in one["values"][ITEM_QUALITY].values())


def test_simulation_rejects_unknown_severity_and_share(design):
    a, p = design
    with pytest.raises(StudyError, match="severities"):
        simulate_ratings(a, p, errors={"demo-001-llm_a": "catastrophic"}, seed=1)
    with pytest.raises(StudyError, match="rated_share"):
        simulate_ratings(a, p, seed=1, model=RaterModel(rated_share=1.5))


# --- build_demo through the services -------------------------------------------------------------


@pytest.fixture
def built(demo):
    # the session's demo database (default seed, SEED) on a private copy
    yield demo, DEMO_STUDY_ID


def test_build_demo_stores_a_synthetic_study_in_rating(built):
    store, study_id = built
    study = studies.get_study(store, OPERATOR, study_id)
    assert study["name"] == DEMO_STUDY_NAME
    assert study["synthetic"] is True
    assert study["status"] == "rating"
    protocol = design_service.get_protocol(store, OPERATOR, study_id)["content"]
    primary = protocol["primary_endpoint"]
    assert (primary["item"], primary["margin"], primary["direction"], primary["alpha"]) == (
        ITEM_QUALITY,
        0.5,
        "higher",
        0.025,
    )
    assert protocol["assignment"]["raters_per_case"] == 3
    # the seed is sealed until unblinding (issue 12): the protocol shows its commitment only
    assert "seed" not in protocol["assignment"]
    assert len(protocol["assignment_seed_commitment"]) == 64


def test_build_demo_cases_arms_and_provenance(built):
    store, study_id = built
    cases = content.list_cases(store, OPERATOR, study_id)
    assert cases.height >= 40
    assert cases.get_column("specialty").n_unique() >= 5
    arms = content.list_arms(store, OPERATOR, study_id)
    assert arms.height == 2
    llm = arms.filter(pl.col("kind") == "llm").row(0, named=True)
    assert (llm["model_name"], llm["model_version"]) == ("demo-llm", "demo-llm-2026-06-01")
    clinician = arms.filter(pl.col("kind") == "clinician").row(0, named=True)
    assert clinician["author_role"]
    answers = content.list_answers(store, OPERATOR, study_id)
    llm_answers = answers.filter(pl.col("arm_id") == llm["arm_id"])
    assert llm_answers.height == cases.height
    for column in ("model_version", "generated_at", "prompt", "system_prompt", "parameters"):
        assert llm_answers.get_column(column).null_count() == 0, column


def _queues(store, study_id) -> pl.DataFrame:
    raters = [r["user_id"] for r in read_raters()]
    frames = [
        rating.rater_queue(store, sign_in(store, rater), study_id).with_columns(
            pl.lit(rater).alias("rater")
        )
        for rater in raters
    ]
    return pl.concat(frames)


def test_build_demo_assigns_three_raters_per_case_balanced_never_to_own_answers(built):
    store, study_id = built
    queues = _queues(store, study_id)
    assert queues.get_column("rater").n_unique() == 6
    per_case = queues.group_by("case_id").agg(pl.col("rater").n_unique().alias("n"), pl.len())
    assert set(per_case.get_column("n")) == {3}
    assert set(per_case.get_column("len")) == {3}
    answers = content.list_answers(store, OPERATOR, study_id)
    own = queues.join(
        answers.select("case_id", pl.col("author_id").alias("rater")), on=["case_id", "rater"]
    )
    assert own.is_empty()
    # The exclusion actually bit: some rater authored an answer in the study.
    assert (
        answers.get_column("author_id").is_in(queues.get_column("rater").unique().to_list()).any()
    )
    loads = queues.group_by("rater").agg(pl.len()).get_column("len")
    assert loads.max() - loads.min() <= 1


def test_build_demo_rates_about_sixty_percent_and_the_llm_is_more_empathetic(built):
    store, study_id = built
    status = monitoring.study_status(store, OPERATOR, study_id)
    assert status["raters"] == 6
    assert status["assignments"] == status["cases"] * 3
    share = status["done"] / status["assignments"]
    assert 0.5 <= share <= 0.7
    long = exports.export_ratings_long(store, OPERATOR, study_id)
    empathy = dict(
        long.filter(pl.col("item") == ITEM_EMPATHY)
        .group_by("arm")
        .agg(pl.col("value").mean())
        .iter_rows()
    )
    assert empathy[TEST_ARM] > empathy[REFERENCE_ARM]
    harm = long.filter((pl.col("item") == ITEM_COULD_HARM) & (pl.col("value") == 1))
    assert harm.height > 0
    better = long.filter(pl.col("item") == ITEM_BETTER)
    assert better.height == status["done"]
    assert set(better.get_column("value_text")) <= {"A", "B", "tie"}


def _fingerprint(store, study_id) -> tuple:
    status = monitoring.study_status(store, OPERATOR, study_id)
    long = (
        exports.export_ratings_long(store, OPERATOR, study_id)
        .select("case", "rater", "answer", "item", "value", "value_text", "position", "seconds")
        .sort("case", "rater", "item", "position", nulls_last=False)
    )
    return status, long


def test_build_demo_is_deterministic_for_a_seed(built, tmp_path):
    store, study_id = built
    with Store(tmp_path / "again.duckdb") as again:
        other = build_demo(again, seed=SEED)
        status_a, long_a = _fingerprint(store, study_id)
        status_b, long_b = _fingerprint(again, other)
    assert status_a == status_b
    assert long_a.equals(long_b)


def test_build_demo_refuses_to_overwrite_an_existing_demo(built):
    store, _ = built
    with pytest.raises(StudyError, match="exists already"):
        build_demo(store, seed=SEED)


def test_build_demo_with_the_default_seed_gives_the_documented_counts(tmp_path):
    # the figures the README and the app's first start show
    with Store(tmp_path / "default.duckdb") as store:
        status = monitoring.study_status(store, OPERATOR, build_demo(store))
    assert (status["cases"], status["assignments"], status["ratings_submitted"]) == (42, 126, 836)
    assert round(100 * status["done"] / status["assignments"], 1) == 60.3


def _traces(store) -> tuple[int, int, int, int]:
    return store.read(
        "SELECT (SELECT count(*) FROM studies), (SELECT count(*) FROM audit_events),"
        " (SELECT count(*) FROM users), (SELECT count(*) FROM answers)"
    ).row(0)


@pytest.mark.parametrize("error", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_an_interrupted_build_leaves_nothing_and_the_next_build_succeeds(
    tmp_path, monkeypatch, error
):
    def fail(*args, **kwargs):
        raise error

    with Store(tmp_path / "interrupted.duckdb") as store:
        # start_rating comes after the imports, the instrument, the lock and the assignments
        with monkeypatch.context() as patch:
            patch.setattr(lifecycle, "start_rating", fail)
            with pytest.raises(type(error)):
                build_demo(store, seed=SEED)
        assert _traces(store) == (0, 0, 0, 0)
        assert audit_verify.verify(store).ok
        study_id = build_demo(store, seed=SEED)
        assert studies.get_study(store, OPERATOR, study_id)["status"] == "rating"
        assert audit_verify.verify(store).ok
