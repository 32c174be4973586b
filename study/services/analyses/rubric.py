"""A rubric study's results on their own (``rubric_results``): HealthBench scores, agreement,
and non-inferiority by arm (``_criteria`` computes them; the results pipeline uses the same)."""

from __future__ import annotations

import polars as pl

from study.access import Caller, guarded
from study.errors import StudyError
from study.services._common import require_unblinded
from study.services.analyses._criteria import criterion_rows, rubric_frames
from study.services.analyses._long_format import criteria_items
from study.services.analyses._shared import stacked
from study.store import Store


@guarded
def rubric_results(
    store: Store,
    caller: Caller,
    study: str,
    *,
    test: str,
    reference: str,
    margin: float,
    alpha: float = 0.025,
    method: str = "t",
    boot: int = 1000,
    seed: int | None = None,
) -> pl.DataFrame:
    """A rubric study's results: HealthBench scores, agreement, and non-inferiority by arm.

    Reads the rubric items' current live labels with their arms (``criterion_rows``: one row
    per answer x criterion x rater; refused for a person before unblinding, as every result by
    arm is) and returns, stacked: ``analysis.rubric.rubric_score`` per
    arm, overall and per tag (criterion and case tags); ``analysis.rubric.healthbench_agreement``
    over the raters (no ``grader``: pass a model grader's rows to the CLI with ``--grader``); and
    ``analysis.noninferiority.mean_difference`` of arm ``test`` (e.g. the LLM) against
    ``reference`` (the clinicians) on each rater's HealthBench score of each answer, not clipped
    (clipping applies to a mean over cases, not to a paired difference), direction higher is
    better: H0 test - reference <= -margin, H1 test - reference > -margin, ``method`` "t",
    "bootstrap" or "mixed", one-sided ``alpha``. ``seed`` seeds every bootstrap (drawn and
    reported when None).
    """
    require_unblinded(store, caller, study, "a rubric study's results by arm are read")
    keys = criteria_items(store, study)
    if not keys:
        raise StudyError(f"Study '{study}' has no rubric item (criteria from the case).")
    rows = stacked([criterion_rows(store, study, key) for key in keys])
    if seed is None:
        from analysis._random import draw_seed

        seed = draw_seed()
    return rubric_frames(
        rows,
        test=test,
        reference=reference,
        margin=margin,
        alpha=alpha,
        method=method,
        boot=boot,
        seed=seed,
    )
