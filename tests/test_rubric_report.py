"""A rubric study's planned results and report: the rubric item is scored the HealthBench way
(points of met criteria over positive points, per arm), not as a 0/1 mean of its criteria, and
the report shows those scores and the raters' agreement.

The reference is HealthBench's scoring rule written out here from its definition (simple-evals,
``healthbench_eval.calculate_score``: sum of the points of the criteria met over the sum of the
positive points; the overall score the mean over examples, clipped to [0, 1]; Arora et al. 2025,
arXiv:2505.08775), computed on the exported rows by hand, not by ``analysis.rubric``.
"""

from __future__ import annotations

import math

import polars as pl
from conftest import sign_in

from study.access import system_caller
from study.demo import RUBRIC_RATERS, RUBRIC_SIMULATED, RUBRIC_STUDY_ID, STATISTICIAN
from study.services import analyses, exports, lifecycle, people, rating
from study.services.analyses._long_format import CRITERION, POINTS

CLI = system_caller("cli")
NEWCOMER = next(r for r in RUBRIC_RATERS if r != RUBRIC_SIMULATED)


def healthbench_by_hand(rows: pl.DataFrame) -> dict[str, float]:
    """Per arm: each (answer, rater)'s points met over positive points, mean over the raters of
    a case, mean over cases, clipped to [0, 1]."""
    per_rating: dict[tuple, list[float]] = {}
    for r in rows.iter_rows(named=True):
        got, best = per_rating.setdefault((r["arm"], r["case"], r["rater"]), [0.0, 0.0])
        per_rating[(r["arm"], r["case"], r["rater"])] = [
            got + (r[POINTS] if r["value"] == 1.0 else 0.0),
            best + max(r[POINTS], 0.0),
        ]
    per_case: dict[tuple, list[float]] = {}
    for (arm, case, _), (got, best) in per_rating.items():
        per_case.setdefault((arm, case), []).append(got / best)
    per_arm: dict[str, list[float]] = {}
    for (arm, _), scores in per_case.items():
        per_arm.setdefault(arm, []).append(sum(scores) / len(scores))
    return {arm: min(1.0, max(0.0, sum(v) / len(v))) for arm, v in per_arm.items()}


def test_a_rubric_study_is_reported_by_healthbench_scores_per_arm(demo, tmp_path):
    # the demo's second rubric rater marks c1 and c2 met everywhere, so that agreement has pairs
    newcomer = people.demo_sign_in(demo, NEWCOMER)
    while (view := rating.next_assignment(demo, newcomer, RUBRIC_STUDY_ID)) is not None:
        keys = [c["key"] for c in view["criteria"]]
        met = {p["label"]: {k: k in {"c1", "c2"} for k in keys} for p in view["presentations"]}
        rating.submit_rating(demo, newcomer, RUBRIC_STUDY_ID, view["assignment"], {"rubric": met})
    # the rubric demo has raters only: the operator closes it and names its statistician
    lifecycle.close_rating(demo, CLI, RUBRIC_STUDY_ID)
    people.grant_role(demo, CLI, RUBRIC_STUDY_ID, STATISTICIAN["user_id"], "statistician")
    lifecycle.unblind(demo, sign_in(demo, STATISTICIAN["user_id"]), RUBRIC_STUDY_ID)
    frame = exports.export_ratings_long(demo, CLI, RUBRIC_STUDY_ID)
    results = analyses.study_results(demo, CLI, RUBRIC_STUDY_ID, boot=200, seed=7)

    criteria = frame.filter(pl.col(CRITERION).is_not_null() & (pl.col("phase") == "live"))
    expected = healthbench_by_hand(criteria)
    scores = results["rubric"].filter(
        (pl.col("statistic") == "rubric_score") & (pl.col("variant") == "overall")
    )
    assert dict(zip(scores["arm"], scores["estimate"], strict=True)) == {
        arm: _approx(value) for arm, value in expected.items()
    }

    # the primary endpoint compares per-answer scores, a paired difference of means of
    # HealthBench scores: not the mean of 0/1 criterion values it used to be
    primary = results["results"].filter(pl.col("role") == "primary").row(0, named=True)
    assert primary["item"] == "rubric" and primary["applicable"]
    assert primary["margin"] == 0.1 and primary["test_arm"] == "llm_a"
    met_share = criteria.group_by("arm").agg(pl.col("value").mean())
    share = dict(met_share.iter_rows())
    assert not math.isclose(primary["estimate"], share["llm_a"] - share["clinician"], abs_tol=1e-9)
    # the same comparison as the rubric service makes on its own read
    alone = analyses.rubric_results(
        demo, CLI, RUBRIC_STUDY_ID, test="llm_a", reference="clinician", margin=0.1,
        boot=200, seed=7,
    )  # fmt: skip
    assert primary["estimate"] == _approx(
        alone.filter(pl.col("statistic") == "mean_difference")["estimate"][0]
    )
    # no generic per-item agreement over a rubric's 0/1 criterion rows: HealthBench's only
    rubric_agreement = results["agreement"].filter(pl.col("item") == "rubric")
    assert rubric_agreement.height
    assert "krippendorff_alpha" not in rubric_agreement["statistic"].to_list()
    # the summary describes the per-answer HealthBench scores, never 0/1 criterion values
    summary = results["summary"].filter(pl.col("item") == "rubric")
    assert summary["max"].max() <= 1.0 and summary["n"].sum() < criteria.height

    folder = tmp_path / "bundle"
    folder.mkdir()
    exports.write_bundle(demo, CLI, RUBRIC_STUDY_ID, folder, formats=["csv"], boot=200, seed=7)
    html = (folder / "report.html").read_text(encoding="utf-8")
    assert "Rubric scores (HealthBench)" in html
    assert "balanced_f1" in html


class _approx(float):
    """A float equal to another within 1e-9 (for dict comparison)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, float) and math.isclose(self, other, abs_tol=1e-9)

    __hash__ = float.__hash__
