"""Monitoring's interim agreement on a rubric study: the raters' agreement on each criterion's
met / not met, pooled over raters and arms (the study stays blind), beside the other items.

Reference: HealthBench's balanced F1 (Arora et al. 2025, arXiv:2505.08775, section on the
meta-evaluation; simple-evals ``healthbench_meta_eval``): the mean of the F1 for "met" and the
F1 for "not met". With two raters and every ordered pair pooled, each F1 is the Dice
coefficient of the two label sets, 2 n11 / (2 n11 + n10 + n01) (and 2 n00 / (2 n00 + n10 +
n01)), counted here by hand from the stored labels.
"""

from __future__ import annotations

import json
import math

import polars as pl
from conftest import ROOT

from study.access import system_caller
from study.demo import RUBRIC_RATERS, RUBRIC_SIMULATED, RUBRIC_STUDY_ID, STATISTICIAN
from study.services import analyses, content, lifecycle, people, rating

CLI = system_caller("cli")
NEWCOMER = next(r for r in RUBRIC_RATERS if r != RUBRIC_SIMULATED)


def test_interim_agreement_pools_the_rubric_criteria_without_arms(demo):
    newcomer = people.demo_sign_in(demo, NEWCOMER)
    while (view := rating.next_assignment(demo, newcomer, RUBRIC_STUDY_ID)) is not None:
        keys = [c["key"] for c in view["criteria"]]
        met = {p["label"]: {k: k in {"c1", "c3"} for k in keys} for p in view["presentations"]}
        rating.submit_rating(demo, newcomer, RUBRIC_STUDY_ID, view["assignment"], {"rubric": met})

    table = analyses.interim_agreement(demo, CLI, RUBRIC_STUDY_ID, boot=0, seed=3)
    rubric = table.filter(pl.col("item") == "rubric")
    assert set(rubric["statistic"]) == {"healthbench_agreement"}
    assert set(rubric["rater"]) == {"clinicians"}  # pooled only: no rater's own row
    assert rubric.filter(pl.col("applicable")).height == 7

    # nothing in the table names an arm or an answer's author
    arms = set(content.list_answers(demo, CLI, RUBRIC_STUDY_ID)["arm_id"].to_list())
    assert "arm" not in table.columns
    cells = {str(v) for column in table.columns for v in table[column].to_list()}
    assert not arms & cells

    # the balanced F1, counted from the stored labels of both raters
    labels = _stored_labels(demo)
    n = {"11": 0, "10": 0, "01": 0, "00": 0}
    for (answer, rater), marks in labels.items():
        if rater != RUBRIC_SIMULATED:
            continue
        other = labels[(answer, NEWCOMER)]
        for criterion, mark in marks.items():
            n[f"{int(mark)}{int(other[criterion])}"] += 1
    f1_met = 2 * n["11"] / (2 * n["11"] + n["10"] + n["01"])
    f1_not_met = 2 * n["00"] / (2 * n["00"] + n["10"] + n["01"])
    balanced = rubric.filter(pl.col("variant") == "balanced_f1")["estimate"][0]
    assert math.isclose(balanced, (f1_met + f1_not_met) / 2, abs_tol=1e-12)


def _stored_labels(store) -> dict[tuple[str, str], dict[str, bool]]:
    """(answer, rater) -> {criterion: met}: the stored labels, read directly (no service reads
    them without arms)."""
    frame = store.read(
        "SELECT p.answer_id, s.rater, r.value_text FROM current_ratings c"
        " JOIN ratings r ON r.id = c.rating JOIN assignments s ON s.id = c.assignment"
        " JOIN presentations p ON p.id = r.presentation"
        " WHERE s.study = $s AND r.item_key = 'rubric' AND r.status = 'submitted'",
        {"s": RUBRIC_STUDY_ID},
    )
    return {(a, r): json.loads(t) for a, r, t in frame.iter_rows()}


def _screen(db, monkeypatch, script: str, key: str):
    """``script`` as the local operator (who sees every study) on the rubric study."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CLINVAL_DB", str(db))
    monkeypatch.setenv("CLINVAL_DEMO_ON_START", "0")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params["person"] = "0"
    at.run()
    at.switch_page(script).run()
    return at.selectbox(key=key).set_value(RUBRIC_STUDY_ID).run()


def test_monitoring_shows_a_rubric_study_whose_agreement_cannot_be_computed_yet(
    demo_db, monkeypatch
):
    # one of the two rubric raters has rated: no pair of raters yet, so no agreement row has
    # an estimate (the frame has no estimate column at all)
    at = _screen(demo_db, monkeypatch, "pages/monitor.py", "monitor_study")
    assert not at.exception, [e.message for e in at.exception]
    shown = [d.value for d in at.dataframe if "statistic" in d.value.columns]
    assert shown and "healthbench_agreement" in shown[-1]["statistic"].to_list()


def test_the_analysis_screen_tests_a_rubric_study_on_its_healthbench_scores(demo_db, monkeypatch):
    from study.store import Store

    statistician = STATISTICIAN["user_id"]
    with Store(demo_db) as store:
        lifecycle.close_rating(store, CLI, RUBRIC_STUDY_ID)
        people.grant_role(store, CLI, RUBRIC_STUDY_ID, statistician, "statistician")
        caller = people.demo_sign_in(store, statistician)
        lifecycle.unblind(store, caller, RUBRIC_STUDY_ID)
        found = analyses.study_results(store, caller, RUBRIC_STUDY_ID, seed=7)
        alone = analyses.rubric_results(
            store, caller, RUBRIC_STUDY_ID, test="llm_a", reference="clinician", margin=0.1,
            boot=200, seed=7,
        )  # fmt: skip
    # the screen's primary is the rubric service's comparison: per-answer HealthBench scores
    primary = found["results"].filter(pl.col("role") == "primary").row(0, named=True)
    reference = alone.filter(pl.col("statistic") == "mean_difference").row(0, named=True)
    assert primary["applicable"] and primary["statistic"] == "mean_difference"
    for key in ("estimate", "ci_low", "ci_high", "n_units"):
        assert math.isclose(primary[key], reference[key], abs_tol=1e-12), key
    assert "rubric" in found["summary"]["item"].to_list()

    at = _screen(demo_db, monkeypatch, "pages/analyze.py", "analyze_study")
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert [m.value for m in (*at.success, *at.warning) if "non-inferior" in m.value.lower()]
