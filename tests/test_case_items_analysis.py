"""Items rated once per case (scope ``case``) with numeric values in the statistician's results.

A reader study such as ClinSumm (Van Veen et al., Nat Med 2024) asks each reader one comparative
score per case and attribute, -2 (the expert's summary much better) to +2 (the LLM's much
better), and such studies reach Clinval through ``import-ratings`` with an empty ``arm_id``.
Those ratings belong to no presentation: the analyses that found a rating's answer and arm
through its presentation used to drop them, so the Analysis screen showed no agreement and no
distribution for them, and a plan whose endpoints were such items stopped the screen with a
polars error. Agreement is checked against the ``krippendorff`` package (Castro 2017, the
reference implementation of Krippendorff 2011's formulas) on the same reliability matrix.
"""

from __future__ import annotations

import json
from pathlib import Path

import krippendorff
import numpy as np
import polars as pl
import pytest
from conftest import OPERATOR, ROOT, make_draft, sign_in
from streamlit.testing.v1 import AppTest

from study.instruments import Instrument, Item, Option
from study.services import (
    analyses,
    design,
    exports,
    lifecycle,
    monitoring,
    rating_imports,
)
from study.services import instrument_library as instruments
from study.store import Store

COMPARE = tuple(
    Option(v, label)
    for v, label in zip(
        range(-2, 3),
        (
            "Clinician's much better",
            "Clinician's better",
            "Same",
            "LLM's better",
            "LLM's much better",
        ),
        strict=True,
    )
)
COMPARATIVE = Instrument(
    key="test_compare",
    version="1.0",
    title="Comparative scores",
    description="Made up for tests: one score per case, LLM vs clinician.",
    citation="",
    synthetic=True,
    items=tuple(
        Item(
            key=key,
            prompt=f"Which answer is better on {key}?",
            type="likert",
            level="ordinal",
            direction="higher_is_better",
            scope="case",
            options=COMPARE,
        )
        for key in ("completeness", "conciseness")
    ),
)
SCORES = {  # (case, rater) -> (completeness, conciseness), already LLM vs clinician
    ("c1", "r1"): (2, 0), ("c1", "r2"): (1, 0), ("c1", "r3"): (2, 1),
    ("c2", "r1"): (-1, 0), ("c2", "r2"): (-1, -1), ("c2", "r3"): (0, 0),
    ("c3", "r1"): (0, 1), ("c3", "r2"): (1, 1), ("c3", "r3"): (0, 0),
    ("c4", "r1"): (1, -2), ("c4", "r2"): (2, 0),
}  # fmt: skip
"""c4 lacks r3's scores: a missing rating is an absent row."""


def comparative_study(store, folder: Path, plan: dict) -> str:
    """A study whose only rated items are per case (``SCORES``, imported), locked with ``plan``,
    closed and unblinded."""
    study = make_draft(store, folder)
    coordinator = sign_in(store, "coordinator")
    instruments.add_instrument(store, coordinator, COMPARATIVE)
    instruments.attach_instrument(store, coordinator, study, COMPARATIVE.key, COMPARATIVE.version)
    design.lock_protocol(store, coordinator, study, plan)
    rows = [
        {"case_id": case, "rater_id": rater, "item": item, "value": str(value)}
        for (case, rater), values in SCORES.items()
        for item, value in zip(("completeness", "conciseness"), values, strict=True)
    ]
    path = folder / "ratings.csv"
    pl.DataFrame(rows).write_csv(path)
    rating_imports.import_ratings(store, coordinator, study, path)
    lifecycle.start_rating(store, coordinator, study)
    lifecycle.close_rating(store, coordinator, study)
    lifecycle.unblind(store, sign_in(store, "statistician"), study)
    return study


@pytest.fixture
def unblinded(store, tmp_path: Path) -> str:
    """``comparative_study`` whose plan names the items as endpoints without saying that their
    values are test minus reference."""
    plan = {
        "primary_endpoint": {"item": "completeness", "margin": 0.5},
        "secondary_endpoints": [{"item": "conciseness", "margin": 0.5}],
    }
    return comparative_study(store, tmp_path, plan)


ONE_SAMPLE_PLAN = {
    "arms": {"test": "llm", "reference": "clin"},
    "primary_endpoint": {
        "item": "completeness",
        "margin": 0.5,
        "statistic": analyses.ONE_SAMPLE,
        "sensitivity_methods": ["bootstrap"],
    },
    "secondary_endpoints": [
        {"item": "conciseness", "margin": 0.5, "statistic": analyses.ONE_SAMPLE}
    ],
}
"""A plan that declares the scores test minus reference."""


@pytest.fixture
def one_sample(store, tmp_path: Path) -> str:
    """``comparative_study`` whose plan declares the scores test minus reference."""
    return comparative_study(store, tmp_path, ONE_SAMPLE_PLAN)


def _reference_alpha(item: int) -> float:
    """Krippendorff's ordinal alpha of ``SCORES``' ``item``-th score by the krippendorff
    package: raters x units with NaN for a missing rating, the declared values as domain."""
    raters, cases = ("r1", "r2", "r3"), ("c1", "c2", "c3", "c4")
    matrix = np.array(
        [[SCORES.get((c, r), (np.nan, np.nan))[item] for c in cases] for r in raters],
        dtype=float,
    )
    return krippendorff.alpha(
        reliability_data=matrix, level_of_measurement="ordinal", value_domain=[-2, -1, 0, 1, 2]
    )


def test_results_of_a_study_rated_per_case_are_shown_not_a_crash(store, unblinded) -> None:
    found = analyses.study_results(store, sign_in(store, "statistician"), unblinded, boot=200)
    endpoints = found["results"]
    assert set(endpoints["role"]) >= {"primary", "secondary"}
    assert not endpoints["applicable"].any()
    # what a statistician reads instead of a result: why, and what to do
    assert all("once per case" in note for note in endpoints["note"])
    assert all("--one-sample" in note for note in endpoints["note"])


@pytest.mark.parametrize(("item", "index"), [("completeness", 0), ("conciseness", 1)])
def test_agreement_on_an_item_rated_per_case_takes_the_case_as_unit(
    store, unblinded, item, index
) -> None:
    found = analyses.study_results(store, sign_in(store, "statistician"), unblinded, boot=200)
    alpha = found["agreement"].filter(
        (pl.col("item") == item) & (pl.col("statistic") == "krippendorff_alpha")
    )
    assert alpha.height == 1 and alpha.item(0, "applicable")
    assert alpha.item(0, "n_units") == 4 and alpha.item(0, "n_raters") == 3
    assert alpha.item(0, "estimate") == pytest.approx(_reference_alpha(index), abs=1e-9)
    # the coordinator's pooled view while the study is blind counts the same units
    interim = analyses.interim_agreement(store, OPERATOR, unblinded, boot=0).filter(
        (pl.col("item") == item) & (pl.col("statistic") == "krippendorff_alpha")
    )
    assert interim.item(0, "estimate") == pytest.approx(_reference_alpha(index), abs=1e-9)


def test_distribution_and_summary_of_an_item_rated_per_case(store, unblinded) -> None:
    found = analyses.study_results(store, sign_in(store, "statistician"), unblinded, boot=0)
    shares = found["distribution"].filter(pl.col("item") == "completeness")
    counts = dict(zip(shares["value"].to_list(), shares["n"].to_list(), strict=True))
    assert counts == {-1.0: 2, 0.0: 3, 1.0: 3, 2.0: 3}
    assert shares["arm"].unique().to_list() == [analyses.PER_CASE]
    summary = found["summary"].filter(pl.col("item") == "completeness").row(0, named=True)
    assert summary["arm"] == analyses.PER_CASE
    # 11 scores summing to 7
    assert (summary["n"], summary["mean"]) == (11, pytest.approx(7 / 11))


def test_the_bundles_results_take_the_case_as_unit_too(store, unblinded) -> None:
    folder = store_folder(store)
    exports.write_bundle(store, OPERATOR, unblinded, folder, formats=["csv"], boot=0)
    tested = pl.read_csv(folder / "results.csv")
    assert tested.height and not tested["applicable"].any()
    assert all("once per case" in note for note in tested["note"])


def _reference_t(item: int, margin: float) -> tuple[float, float, float, float]:
    """(mean, 95% CI low, high, one-sided p against -margin) of the per-case means of
    ``SCORES``' ``item``-th score by scipy's one-sample t (``ttest_1samp``, ``t.interval``)."""
    from scipy import stats

    cases: dict[str, list[float]] = {}
    for (case, _), values in SCORES.items():
        cases.setdefault(case, []).append(values[item])
    means = np.array([np.mean(v) for v in cases.values()])
    test = stats.ttest_1samp(means, popmean=-margin, alternative="greater")
    low, high = stats.t.interval(
        0.95, len(means) - 1, loc=means.mean(), scale=stats.sem(means, ddof=1)
    )
    return float(means.mean()), float(low), float(high), float(test.pvalue)


def test_a_plan_that_declares_the_scores_test_minus_reference_tests_them_one_sample(
    store, one_sample
) -> None:
    found = analyses.study_results(store, sign_in(store, "statistician"), one_sample, boot=200)
    endpoints = found["results"]
    primary = endpoints.filter(pl.col("role") == "primary").row(0, named=True)
    mean, low, high, p = _reference_t(0, 0.5)
    assert primary["applicable"] and primary["method"] == "t"
    assert (primary["estimate"], primary["ci_low"], primary["ci_high"]) == (
        pytest.approx(mean),
        pytest.approx(low),
        pytest.approx(high),
    )
    assert primary["p_value"] == pytest.approx(p)
    assert primary["n_units"] == 4 and primary["n_raters"] == 3
    assert "one-sample" in primary["method_description"]
    sensitivity = endpoints.filter(pl.col("role") == "sensitivity")
    assert set(sensitivity["method"]) == {"bootstrap", "mixed"}
    secondary = endpoints.filter(pl.col("role") == "secondary").row(0, named=True)
    mean, low, high, p = _reference_t(1, 0.5)
    assert secondary["estimate"] == pytest.approx(mean)
    assert secondary["p_value"] == pytest.approx(p)
    assert secondary["p_adjusted"] == pytest.approx(p)  # Holm over one secondary: unchanged
    # every case has specialty "gp" and tag "t", no rater a specialty: no subgroup to compare
    assert found["subgroups"].height == 0
    # the bundle's results give the same primary row
    folder = store_folder(store)
    exports.write_bundle(store, OPERATOR, one_sample, folder, formats=["csv"], boot=0)
    first = json.loads((folder / "results.json").read_text())["results"][0]
    assert (first["item"], first["estimate"], first["p_value"]) == (
        "completeness",
        pytest.approx(_reference_t(0, 0.5)[0]),
        pytest.approx(_reference_t(0, 0.5)[3]),
    )


def test_a_one_sample_plan_on_an_item_rated_per_answer_is_refused_with_the_reason(
    store, tmp_path
) -> None:
    plan = {
        "primary_endpoint": {"item": "quality", "margin": 0.5, "statistic": analyses.ONE_SAMPLE}
    }
    study = comparative_study(store, tmp_path, plan)
    found = analyses.study_results(store, sign_in(store, "statistician"), study, boot=0)
    primary = found["results"].row(0, named=True)
    assert not primary["applicable"]
    assert "rated per answer" in primary["note"]


def test_the_screen_and_the_bundles_report_give_the_same_bootstrap_intervals(
    store, one_sample
) -> None:
    """The report and the screen draw their bootstraps with the protocol's seed: with a seed of
    its own (20260101) the report showed the same plan with other intervals (ClinSumm's alpha for
    completeness: 0.181 to 0.364 on the screen, 0.183 to 0.369 in the report)."""
    screen = analyses.study_results(store, sign_in(store, "statistician"), one_sample, boot=200)
    seed = screen["plan"]["seed"]
    manifest = exports.write_bundle(
        store, OPERATOR, one_sample, store_folder(store), formats=["csv"], boot=200
    )
    assert manifest["seeds"]["analysis_bootstrap"]["seed"] == seed
    folder = Path(store.path).parent / "bundle"
    report = pl.read_csv(folder / "results.csv")
    boot_screen = screen["results"].filter(pl.col("method") == "bootstrap").row(0, named=True)
    boot_report = report.filter(pl.col("method") == "bootstrap").row(0, named=True)
    assert (boot_screen["ci_low"], boot_screen["ci_high"]) == pytest.approx(
        (boot_report["ci_low"], boot_report["ci_high"])
    )


def store_folder(store) -> Path:
    """An empty folder beside the store's database, for a bundle."""
    folder = Path(store.path).parent / "bundle"
    folder.mkdir()
    return folder


def test_progress_by_case_counts_imported_ratings_that_recorded_no_time(store, unblinded) -> None:
    """The Monitoring screen's "by case: raters done" read the times on task, which imported
    ratings do not have: ClinSumm's 500 done assignments showed as "No case rated yet"."""
    assert monitoring.time_on_task(store, OPERATOR, unblinded).height == 0
    progress = monitoring.case_progress(store, OPERATOR, unblinded)
    done = dict(zip(progress["case_id"].to_list(), progress["done"].to_list(), strict=True))
    assert done == {"c1": 3, "c2": 3, "c3": 3, "c4": 2}
    assert progress["assigned"].to_list() == progress["done"].to_list()


def test_the_analysis_screen_shows_a_one_sample_endpoint_with_its_own_hypotheses(
    monkeypatch, tmp_path: Path
) -> None:
    db = tmp_path / "screen.duckdb"
    with Store(db) as store:
        comparative_study(store, tmp_path, ONE_SAMPLE_PLAN)
    monkeypatch.setenv("CLINVAL_DB", str(db))
    monkeypatch.setenv("CLINVAL_DEMO_ON_START", "0")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params["person"] = "0"  # the demo picker's local operator (an admin)
    at.run()
    at.switch_page("pages/analyze.py").run()
    assert not at.exception, [e.value for e in at.exception]
    text = "\n".join(m.value for m in at.markdown)
    # a comparative score is no difference of two arms' means: H0 says what is tested
    # (in the analysis library's words, as the report and the bundle state it)
    assert "**H0:** mean(llm - clin) <= -0.5" in text
    assert "**H1:** mean(llm - clin) > -0.5" in text
    assert "falls short of" not in text
