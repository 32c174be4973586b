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

from study.access import system_caller
from study.demo import RUBRIC_RATERS, RUBRIC_SIMULATED, RUBRIC_STUDY_ID
from study.services import analyses, content, people, rating

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
