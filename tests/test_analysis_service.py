"""``analyses.study_results``: the locked plan run on an unblinded study, only after the audited
unblinding step, with the plan's parameters handed to the analysis library unchanged.

The statistics themselves are checked against published values in the analysis library's own
tests (test_noninferiority, test_agreement, test_preference); here the reference is the library
called directly on the study's exported long frame (``exports.export_ratings_long``, a separate
query), so what is tested is that the service reads the right ratings and the right plan.
"""

from __future__ import annotations

import polars as pl
import pytest
from conftest import OPERATOR, sign_in

from analysis.noninferiority import mean_difference, risk_difference
from analysis.preference import win_rates
from study.errors import PermissionDenied, StateError
from study.services import analyses, exports, lifecycle

DEMO = "demo-patient-questions"


@pytest.fixture
def unblinded(demo):
    lifecycle.close_rating(demo, sign_in(demo, "demo-coordinator"), DEMO)
    lifecycle.unblind(demo, sign_in(demo, "demo-statistician"), DEMO)
    return demo


@pytest.fixture
def results(unblinded):
    return analyses.study_results(unblinded, sign_in(unblinded, "demo-statistician"), DEMO)


def _exported(store) -> pl.DataFrame:
    return exports.export_ratings_long(store, OPERATOR, DEMO)


def test_results_by_arm_wait_for_the_unblinding_step(demo):
    statistician = sign_in(demo, "demo-statistician")
    with pytest.raises(StateError, match="after the audited unblinding step"):
        analyses.study_results(demo, statistician, DEMO)
    lifecycle.close_rating(demo, sign_in(demo, "demo-coordinator"), DEMO)
    with pytest.raises(StateError, match="is closed"):
        analyses.study_results(demo, statistician, DEMO)


@pytest.mark.parametrize("person", ["demo-coordinator", "demo-rater-01"])
def test_only_a_statistician_reads_the_results(unblinded, person):
    with pytest.raises(PermissionDenied):
        analyses.study_results(unblinded, sign_in(unblinded, person), DEMO)


def test_the_plan_is_the_locked_protocols(results):
    plan = results["plan"]
    assert {k: plan[k] for k in ("item", "margin", "direction", "alpha", "method")} == {
        "item": "quality",
        "margin": 0.5,
        "direction": "higher",
        "alpha": 0.025,
        "method": "mixed",
    }
    assert (plan["test"], plan["reference"]) == ("llm_a", "clinician")
    assert plan["seed"] == int(plan["protocol_hash"][:8], 16)


def test_the_primary_result_is_the_library_on_the_exported_ratings(unblinded, results):
    frame = _exported(unblinded).filter(pl.col("item") == "quality")
    common = dict(test="llm_a", reference="clinician", margin=0.5, direction="higher", alpha=0.025)
    rows = results["results"]
    primary = rows.filter(pl.col("role") == "primary")
    expected = mean_difference(frame, method="mixed", **common)
    for column in ("estimate", "ci_low", "ci_high", "p_value", "n_units", "n_values"):
        assert primary.item(0, column) == pytest.approx(expected.item(0, column), rel=1e-9)
    assert primary.item(0, "h0") == expected.item(0, "h0")
    sensitivity = rows.filter(pl.col("role") == "sensitivity")
    assert sensitivity.get_column("analysis").to_list() == [
        "sensitivity (locked plan): paired t",
        "sensitivity (not in the plan): two-way bootstrap",
    ]
    t = mean_difference(frame, method="t", **common)
    assert sensitivity.item(0, "estimate") == pytest.approx(t.item(0, "estimate"), rel=1e-12)
    assert sensitivity.item(0, "ci_low") == pytest.approx(t.item(0, "ci_low"), rel=1e-12)
    boot = mean_difference(
        frame, method="bootstrap", boot=1000, seed=results["plan"]["seed"], **common
    )
    assert sensitivity.item(1, "ci_low") == pytest.approx(boot.item(0, "ci_low"), rel=1e-12)


def test_secondary_endpoints_are_tested_and_holm_adjusted(unblinded, results):
    planned = results["results"].filter(pl.col("role") == "secondary")
    assert planned.get_column("item").to_list() == [
        "empathy",
        "could_cause_harm",
        "better_response",
    ]
    # the pairwise secondary is descriptive: the test arm's win share, no margin, no test
    wins = planned.filter(pl.col("item") == "better_response").row(0, named=True)
    assert (wins["statistic"], wins["margin"], wins["p_value"]) == ("win_rate", None, None)
    assert wins["in_plan"] and wins["test_arm"] == "llm_a"
    secondary = planned.filter(pl.col("statistic") != "win_rate")
    harm = _exported(unblinded).filter(pl.col("item") == "could_cause_harm")
    expected = risk_difference(
        harm, test="llm_a", reference="clinician", margin=0.05, direction="lower", alpha=0.025
    )
    row = secondary.filter(pl.col("item") == "could_cause_harm")
    assert row.item(0, "estimate") == pytest.approx(expected.item(0, "estimate"), rel=1e-12)
    # Holm with two p-values: the smaller doubled, the larger kept (if above it)
    p = sorted(secondary.get_column("p_value").to_list())
    adjusted = sorted(secondary.get_column("p_adjusted").to_list())
    assert adjusted[0] == pytest.approx(min(1.0, 2 * p[0]))
    assert adjusted[1] == pytest.approx(max(adjusted[0], p[1]))


def test_agreement_is_the_interim_agreement_at_the_plans_seed(unblinded, results):
    interim = analyses.interim_agreement(
        unblinded, sign_in(unblinded, "demo-statistician"), DEMO, seed=results["plan"]["seed"]
    )
    keys = ["item", "statistic", "variant", "rater_a", "rater_b"]
    # the results add the pairwise item (unit: the case, value: the chosen arm), which the blind
    # interim agreement cannot know
    got = results["agreement"].filter(pl.col("item") != "better_response")
    assert results["agreement"].filter(pl.col("item") == "better_response").height
    got = got.sort(keys, nulls_last=True)
    want = interim.sort(keys, nulls_last=True)
    assert got.select(keys).equals(want.select(keys))
    assert got.get_column("estimate").to_list() == want.get_column("estimate").to_list()
    assert got.get_column("ci_low").to_list() == want.get_column("ci_low").to_list()


def test_distributions_are_counts_per_item_and_arm(unblinded, results):
    distribution = results["distribution"]
    exported = _exported(unblinded).filter(pl.col("item") == "quality")
    counts = exported.group_by("arm", "value").len().sort("arm", "value")
    quality = distribution.filter(pl.col("item") == "quality").sort("arm", "value")
    assert quality.select("arm", "value", pl.col("n").cast(pl.UInt32)).rows() == counts.rows()
    sums = distribution.group_by("item", "arm").agg(pl.col("share").sum())
    assert sums.get_column("share").to_list() == pytest.approx([1.0] * sums.height)


def test_pairwise_win_rates_count_the_arm_each_rater_chose(unblinded, results):
    exported = _exported(unblinded).filter(pl.col("item") == "better_response")
    comparisons = exported.select(
        pl.lit("llm_a").alias("a"),
        pl.lit("clinician").alias("b"),
        pl.when(pl.col("value_text").str.to_lowercase() == "tie")
        .then(pl.lit("tie"))
        .otherwise(pl.col("chosen_arm"))
        .alias("winner"),
    )
    expected = win_rates(comparisons, focus="llm_a")
    got = results["pairwise"].filter(pl.col("statistic") == "win_rate")
    assert (
        got.select("variant", "wins", "ties", "losses").rows()
        == expected.select("variant", "wins", "ties", "losses").rows()
    )
    assert {"bradley_terry", "position_bias"} <= set(results["pairwise"]["statistic"])


def test_subgroups_cover_case_specialty_case_tags_and_rater_specialty(results):
    subgroups = results["subgroups"]
    assert set(subgroups.get_column("subgroup")) == {
        "case specialty",
        "case tag",
        "rater specialty",
    }
    # a group too small to compare says why instead of failing the page
    small = subgroups.filter(~pl.col("applicable"))
    assert small.height and small.get_column("note").is_not_null().all(), (
        small["note"].unique().to_list()
    )
