"""The one door from ``study`` into the ``analysis`` library: a study's ratings, read once, in
the long format whose column names ``analysis.columns`` declares, and the analyses a service
runs on them. ``analysis`` knows nothing of studies or databases; this package hands it frames
and turns its ``AnalysisError`` into a row that says why something could not be analysed.

One module per job:

- ``results``: the unblinded results of the locked plan, the one results table and what
  describes it (``study_results``), shown alike by the Analysis screen, the report, the bundle
  and the command line;
- ``endpoints``: the endpoint runner behind that table (``results_table``, ``RESULT_COLUMNS``);
- ``interim``: agreement pooled over arms while the study is blind (``interim_agreement``);
- ``rubric``: rubric items scored HealthBench's way (``rubric_results``);
- ``power``: the power of a design (``design_power``);
- ``digest``: the results' cache key (``ratings_digest``);
- ``long_format``: the long format exports and analyses read, rubric ratings one row per
  criterion (``per_criterion``; ``criteria_items``, the one query naming the rubric items).

The door also passes on ``analysis.leakage``'s blinding leak report (``leak_report``,
``pairwise_format_auc``, ``AUC_WARNING``), which the Design screen and the report compute from
a study's answers.
"""

from __future__ import annotations

from analysis.leakage import AUC_WARNING, leak_report, pairwise_format_auc
from analysis.noninferiority import MEAN_METHODS, RISK_METHODS
from study.protocol import ONE_SAMPLE
from study.services.analyses._endpoints import (
    DEFAULT_METHODS,
    MIXED_MAX_LEVELS,
    RESULT_COLUMNS,
    endpoint_hypotheses,
)
from study.services.analyses._long_format import LONG_FORMAT
from study.services.analyses.digest import ratings_digest
from study.services.analyses.interim import interim_agreement
from study.services.analyses.power import POWER_TARGETS, design_power
from study.services.analyses.results import (
    GUESS_CODES,
    PAIRWISE_KEYS,
    PER_CASE,
    SUBGROUP_METHOD,
    results_rows,
    study_results,
)
from study.services.analyses.rubric import rubric_results

PLAN_METHODS = {
    "mean_difference": MEAN_METHODS,
    "risk_difference": RISK_METHODS,
    ONE_SAMPLE: MEAN_METHODS,
}
"""The methods a plan may name for an endpoint, by its statistic (``analysis.noninferiority``):
for a design screen's choices."""

__all__ = [
    "AUC_WARNING",
    "DEFAULT_METHODS",
    "GUESS_CODES",
    "LONG_FORMAT",
    "MIXED_MAX_LEVELS",
    "ONE_SAMPLE",
    "PAIRWISE_KEYS",
    "PER_CASE",
    "PLAN_METHODS",
    "POWER_TARGETS",
    "RESULT_COLUMNS",
    "SUBGROUP_METHOD",
    "design_power",
    "endpoint_hypotheses",
    "interim_agreement",
    "leak_report",
    "pairwise_format_auc",
    "ratings_digest",
    "results_rows",
    "rubric_results",
    "study_results",
]
