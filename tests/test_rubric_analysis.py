"""HealthBench rubric scores and agreement (``analysis.rubric``) and ``python -m analysis rubric``.

References:
- the score: simple-evals ``healthbench_eval.py`` (openai/simple-evals, commit 9e2fafd):
  ``calculate_score`` = sum of the points of met criteria (negatives included) / sum of positive
  points, None when there are no positive points; ``_compute_clipped_stats`` clips the mean over
  examples to [0, 1]; rubric-tag scores use the criteria with the tag, on the examples where
  ``calculate_score`` is not None. The values below are worked by hand from those definitions.
- the agreement: simple-evals ``healthbench_meta_eval_test.py``
  (``test_compute_agreement_for_rater_by_class``) publishes expected precision and recall for a
  rater whose labels [T, F, T] meet other raters' [[T, T, F], [T, F], [F]]: met precision
  (2+0+0)/(3+0+1), met recall (2+0+0)/(2+1+0), not-met precision (0+1+0)/(0+2+0), not-met recall
  (0+1+0)/(1+1+1), F1 per class and the balanced F1 their mean. ``grader_agreement.csv`` is that
  example, the grader being the rater and c1, c2, c3 the others.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from analysis.cli import main
from analysis.errors import AnalysisError
from analysis.rubric import case_scores, healthbench_agreement, met_labels, rubric_score

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "rubric"
RATINGS = DATA / "rubric_ratings.csv"
GRADER = DATA / "grader_agreement.csv"


def cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def rows(*args: str) -> list[dict]:
    code, out, err = cli(*args, "--format", "json")
    assert code == 0, err
    payload = json.loads(out)
    assert list(payload) == ["results"]
    return payload["results"]


def pick(results: list[dict], **where) -> dict:
    found = [r for r in results if all(r.get(k) == v for k, v in where.items())]
    assert len(found) == 1, (where, found)
    return found[0]


# --- the score, worked by hand -------------------------------------------------------------
#
# rubric_ratings.csv, arm llm, raters r1 and r2:
#   case c1: k1 +5 (accuracy), k2 +3 (completeness), k3 -4 (accuracy; a negative criterion);
#            every criterion also carries the example tag theme:dosing
#     r1: k1 met, k2 not, k3 met -> (5 - 4) / (5 + 3) = 0.125
#     r2: k1 met, k2 met, k3 not -> 8 / 8 = 1
#     case c1 = (0.125 + 1) / 2 = 0.5625
#   case c2: k1 +2 (accuracy), k2 -6 (communication: a tag with no positive points)
#     r1 and r2: k1 not, k2 met -> -6 / 2 = -3; case c2 = -3
#   overall: (0.5625 - 3) / 2 = -1.21875, clipped to 0
#   axis:accuracy: c1 r1 (5 - 4) / 5 = 0.2, r2 5 / 5 = 1 -> 0.6; c2 0 / 2 = 0 -> mean 0.3
#   axis:completeness: c1 only: r1 0 / 3, r2 3 / 3 -> 0.5 over 1 case
#   axis:communication: positive points nowhere -> no score (not applicable)
#   theme:dosing: c1 only, all of its criteria: 0.5625
# arm clin:
#   c1: r1 and r2 meet k1 and k2, not k3: 8 / 8 = 1
#   c2: r1 meets k1, not k2: 2 / 2 = 1; r2 left k1 unrated and did not meet k2: no positive
#       points among what r2 rated, so r2 has no c2 score; case c2 = 1
#   overall 1; accuracy 1 (c1: 5/5 both; c2: r1 2/2); completeness 1; dosing 1.


HAND = {
    ("llm", "overall"): (0.0, -1.21875, 2),
    ("llm", "axis:accuracy"): (0.3, 0.3, 2),
    ("llm", "axis:completeness"): (0.5, 0.5, 1),
    ("llm", "theme:dosing"): (0.5625, 0.5625, 1),
    ("clin", "overall"): (1.0, 1.0, 2),
    ("clin", "axis:accuracy"): (1.0, 1.0, 2),
    ("clin", "axis:completeness"): (1.0, 1.0, 1),
    ("clin", "theme:dosing"): (1.0, 1.0, 1),
}


def test_rubric_scores_match_the_hand_computed_healthbench_scores():
    df = pl.read_csv(RATINGS)
    result = rubric_score(
        df, unit="unit", rater="rater", met="met", case="case", points="points",
        arm="arm", tag="tags", boot=200, seed=3,
    )  # fmt: skip
    got = {(r["arm"], r["variant"]): r for r in result.to_dicts()}
    for key, (estimate, unclipped, n_cases) in HAND.items():
        row = got[key]
        assert row["applicable"], row
        assert row["estimate"] == pytest.approx(estimate, abs=1e-12), key
        assert row["unclipped_mean"] == pytest.approx(unclipped, abs=1e-12), key
        assert row["n_cases"] == n_cases, key
        assert 0 <= row["ci_low"] <= row["estimate"] + 1e-12 <= row["ci_high"] + 2e-12 <= 1 + 2e-12
    clipped = got[("llm", "overall")]
    assert "clipped" in clipped["note"]
    for arm in ("llm", "clin"):
        row = got[(arm, "axis:communication")]
        assert row["applicable"] is False and "positive points" in row["note"]


def test_case_scores_leave_out_a_rater_without_positive_points():
    scores = case_scores(
        pl.read_csv(RATINGS), unit="unit", rater="rater", met="met", case="case",
        points="points", arm="arm",
    )  # fmt: skip
    clin_c2 = scores.filter((pl.col("arm") == "clin") & (pl.col("case") == "c2"))
    assert clin_c2["rater"].to_list() == ["r1"]
    llm_c1 = scores.filter((pl.col("arm") == "llm") & (pl.col("case") == "c1")).sort("rater")
    assert llm_c1["achieved"].to_list() == [1.0, 8.0]
    assert llm_c1["possible"].to_list() == [8.0, 8.0]
    assert llm_c1["score"].to_list() == [0.125, 1.0]


def test_a_score_above_one_cannot_happen_but_a_negative_case_is_clipped_only_in_the_mean():
    # one case scores -1 (met only its -2 criterion against 2 positive points), another 1:
    # the mean is 0, not clipped; each case's score is kept as it is, as in simple-evals.
    df = pl.DataFrame(
        {
            "unit": ["a1", "a2", "b1"],
            "rater": ["r", "r", "r"],
            "met": [False, True, True],
            "case": ["a", "a", "b"],
            "points": [2.0, -2.0, 4.0],
        }
    )
    row = rubric_score(df, unit="unit", rater="rater", met="met", boot=0).row(0, named=True)
    assert row["estimate"] == 0.0 and row["unclipped_mean"] == 0.0 and row["note"] is None


# --- agreement ---------------------------------------------------------------------------------


def test_grader_agreement_matches_simple_evals_published_example():
    result = healthbench_agreement(pl.read_csv(GRADER), grader="grader")
    grader = {r["variant"]: r for r in result.to_dicts() if r["rater"] == "grader"}
    p_met, r_met = (2 + 0 + 0) / (3 + 0 + 1), (2 + 0 + 0) / (2 + 1 + 0)
    p_not, r_not = (0 + 1 + 0) / (0 + 2 + 0), (0 + 1 + 0) / (1 + 1 + 1)
    f1_met = 2 * p_met * r_met / (p_met + r_met)
    f1_not = 2 * p_not * r_not / (p_not + r_not)
    expected = {
        "precision_met": p_met,
        "recall_met": r_met,
        "precision_not_met": p_not,
        "recall_not_met": r_not,
        "f1_met": f1_met,
        "f1_not_met": f1_not,
        "balanced_f1": (f1_met + f1_not) / 2,
    }
    for variant, value in expected.items():
        assert grader[variant]["estimate"] == pytest.approx(value, abs=1e-12), variant
    # the published denominators ("n"): 4 and 2 pairs for precision, 3 and 3 for recall
    assert [grader[v]["n_pairs"] for v in ("precision_met", "precision_not_met")] == [4, 2]
    assert [grader[v]["n_pairs"] for v in ("recall_met", "recall_not_met")] == [3, 3]


def test_balanced_f1_pooled_over_clinicians_worked_by_hand():
    # grader_agreement.csv without the grader: u1 c1 T, c2 T, c3 F; u2 c1 T, c2 F; u3 c3 only.
    # Ordered pairs (self, other) over clinicians:
    #   u1: (c1,c2) TT, (c1,c3) TF, (c2,c1) TT, (c2,c3) TF, (c3,c1) FT, (c3,c2) FT
    #   u2: (c1,c2) TF, (c2,c1) FT;  u3: no pair
    #   TT 2, TF 3, FT 3, FF 0
    # precision_met = TT/(TT+TF) = 2/5; recall_met = TT/(TT+FT) = 2/5; F1 met = 0.4
    # precision_not_met = FF/(FF+FT) = 0/3; recall_not_met = FF/(FF+TF) = 0/3; F1 not met = 0
    # balanced F1 = (0.4 + 0) / 2 = 0.2
    # c1 alone: (c1,c2) TT, (c1,c3) TF, u2 (c1,c2) TF: TT 1, TF 2, FT 0, FF 0
    #   precision_met 1/3, recall_met 1/1, F1 met 0.5; precision_not_met 0/0: undefined, so
    #   F1 not met and the balanced F1 are undefined (as simple-evals leaves them out)
    result = healthbench_agreement(pl.read_csv(GRADER), grader="grader")
    pooled = {r["variant"]: r for r in result.to_dicts() if r["rater"] == "clinicians"}
    assert pooled["precision_met"]["estimate"] == pytest.approx(0.4)
    assert pooled["recall_met"]["estimate"] == pytest.approx(0.4)
    assert pooled["f1_met"]["estimate"] == pytest.approx(0.4)
    assert pooled["precision_not_met"]["estimate"] == 0.0
    assert pooled["f1_not_met"]["estimate"] == 0.0
    assert pooled["balanced_f1"]["estimate"] == pytest.approx(0.2)
    c1 = {r["variant"]: r for r in result.to_dicts() if r["rater"] == "c1"}
    assert c1["precision_met"]["estimate"] == pytest.approx(1 / 3)
    assert c1["recall_met"]["estimate"] == 1.0
    assert c1["f1_met"]["estimate"] == pytest.approx(0.5)
    for variant in ("precision_not_met", "f1_not_met", "balanced_f1"):
        assert c1[variant]["applicable"] is False and c1[variant]["estimate"] is None
    assert c1["recall_not_met"]["estimate"] == 0.0


def test_agreement_on_the_rubric_file_by_hand():
    # r1 against r2 over the 9 units both rated (c2:clin:k1 has r1 only):
    # TT 4 (llm c1k1, c2k2; clin c1k1, c1k2), TF 1 (llm c1k3), FT 1 (llm c1k2),
    # FF 3 (llm c2k1; clin c1k3, c2k2): precision = recall = 0.8 for met, 0.75 for not met,
    # balanced F1 (0.8 + 0.75) / 2 = 0.775; the pooled rows count each pair from both sides.
    result = rows(
        "rubric", RATINGS, "--unit", "unit", "--rater", "rater", "--met", "met", "--boot", "0"
    )
    for who in ("r1", "r2", "clinicians"):
        row = pick(result, statistic="healthbench_agreement", variant="balanced_f1", rater=who)
        assert row["estimate"] == pytest.approx(0.775)
        assert row["n_units"] == 9
    assert not [r for r in result if r["statistic"] == "rubric_score"]


def test_agreement_matches_percent_agreement_of_the_existing_functions():
    # For two raters, pooled precision_met = 2 TT / (2 TT + TF + FT) is the positive specific
    # agreement, and overall agreement (TT + FF) / n is percent_agreement of analysis.agreement;
    # checked here on the same file against those functions' output for consistency of units.
    from analysis.agreement import agreement_table

    df = pl.read_csv(RATINGS).with_columns(met_labels(pl.read_csv(RATINGS)["met"]).cast(pl.Int64))
    table = agreement_table(
        df.drop_nulls("met"), unit="unit", rater="rater", value="met", level="nominal", boot=0
    )
    percent = table.filter(pl.col("statistic") == "percent_agreement")["estimate"][0]
    assert percent == pytest.approx(7 / 9)  # TT 4 + FF 3 of 9 units


# --- the command line --------------------------------------------------------------------------


def test_cli_contract_scores_and_agreement_with_a_grader(tmp_path):
    # the file with a model grader added on the llm answers of case c1 (agreeing with r2)
    df = pl.read_csv(RATINGS)
    grader = df.filter(
        pl.col("rater") == "r2", pl.col("unit").str.starts_with("c1:llm")
    ).with_columns(pl.lit("model-grader").alias("rater"))
    path = tmp_path / "with_grader.parquet"
    pl.concat([df, grader]).write_parquet(path)
    done = subprocess.run(
        [sys.executable, "-m", "analysis", "rubric", str(path), "--unit", "unit", "--rater",
         "rater", "--met", "met", "--case", "case", "--points", "points", "--arm", "arm",
         "--tag", "tags", "--grader", "model-grader", "--boot", "100", "--seed", "7",
         "--format", "json"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)["results"]
    score = pick(result, statistic="rubric_score", arm="clin", variant="overall")
    assert score["estimate"] == 1.0 and score["seed"] == 7 and score["ci_level"] == 0.95
    # the score averages every rater of a case, a grader included (the contract's score has no
    # grader option): on llm c1 three raters count, the grader scoring as r2 did
    assert pick(result, statistic="rubric_score", arm="llm", variant="theme:dosing")[
        "unclipped_mean"
    ] == pytest.approx((0.125 + 1 + 1) / 3)
    raters = {r["rater"] for r in result if r["statistic"] == "healthbench_agreement"}
    assert raters == {"r1", "r2", "clinicians", "model-grader"}
    # grader vs clinicians on llm c1: grader = r2's labels. Pairs (grader, r1): k1 TT, k2 TF,
    # k3 FT; (grader, r2): k1 TT, k2 TT, k3 FF -> TT 3, TF 1, FT 1, FF 1: precision_met 3/4
    assert pick(result, variant="precision_met", rater="model-grader")["estimate"] == 0.75
    assert pick(result, variant="recall_not_met", rater="model-grader")["estimate"] == 0.5
    for row in result:
        assert {"statistic", "variant", "estimate", "ci_low", "ci_high", "ci_level", "p_value",
                "method", "applicable", "note"} <= set(row)  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--case", "case"], "--case and --points go together"),
        (["--arm", "arm"], "--arm would be ignored"),
        (["--grader", "nobody"], "grader 'nobody' is not a rater"),
        (["--boot", "0", "--seed", "1"], "--seed has no effect"),
        (["--case", "case", "--points", "tags"], "points must be numbers"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(args, message):
    code, out, err = cli(
        "rubric", RATINGS, "--unit", "unit", "--rater", "rater", "--met", "met", *args
    )
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1


def test_met_values_outside_true_false_name_the_row():
    with pytest.raises(AnalysisError, match="row 2"):
        met_labels(pl.Series("met", ["yes", "maybe"]))
    with pytest.raises(AnalysisError, match="rated unit 'u' 2 times"):
        healthbench_agreement(
            pl.DataFrame({"unit": ["u", "u"], "rater": ["a", "a"], "met": [1, 0]})
        )


def test_points_must_be_constant_within_a_unit():
    df = pl.read_csv(RATINGS).with_columns(
        pl.when(pl.col("rater") == "r2").then(pl.col("points") + 1).otherwise(pl.col("points"))
    )
    with pytest.raises(AnalysisError, match="more than one value in column 'points'"):
        rubric_score(df, unit="unit", rater="rater", met="met", boot=0)


def test_one_rater_gives_scores_and_says_why_there_is_no_agreement(tmp_path):
    path = tmp_path / "one_rater.csv"
    pl.read_csv(RATINGS).filter(pl.col("rater") == "r1").write_csv(path)
    base = ["rubric", path, "--unit", "unit", "--rater", "rater", "--met", "met"]
    result = rows(*base, "--case", "case", "--points", "points", "--arm", "arm", "--boot", "0")
    # r1 alone on llm: c1 0.125, c2 -3 -> mean -1.4375, clipped to 0
    llm = pick(result, statistic="rubric_score", variant="overall", arm="llm")
    assert (llm["estimate"], llm["unclipped_mean"]) == (0.0, -1.4375)
    agreement = pick(result, statistic="healthbench_agreement")
    assert agreement["applicable"] is False and "at least two" in agreement["note"]
    code, _, err = cli(*base)  # agreement alone was asked for: bad input
    assert code == 2 and "agreement needs at least two" in err


def test_a_rated_row_without_a_unit_is_named():
    df = pl.DataFrame({"unit": ["u1", None], "rater": ["a", "b"], "met": ["yes", "no"]})
    with pytest.raises(AnalysisError, match="column 'unit' is empty on rated row 2"):
        healthbench_agreement(df)
