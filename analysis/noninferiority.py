"""Non-inferiority and equivalence of a test arm (an LLM) against a reference arm (clinicians):
the door the services, the CLI and the tests import them through.

Every function takes the long rating frame (one row per rating: ``case, arm, rater, value``, names
configurable) and returns a tidy polars frame with one row per estimate. The difference is always
**test arm minus reference arm**, and every row states its hypotheses in words and numbers:

- ``direction="higher"`` (higher is better, e.g. a 1-5 quality score), margin ``m > 0``:
  H0: delta <= -m (test worse by the margin or more) versus H1: delta > -m (non-inferior).
  Non-inferiority is shown when the lower bound of the two-sided (1 - 2*alpha) interval lies above
  ``-m``.
- ``direction="lower"`` (lower is better, e.g. the rate of "could cause harm"):
  H0: delta >= m versus H1: delta < m; shown when the upper bound lies below ``m``.
- Equivalence (:func:`tost`): H0: |delta| >= m versus H1: -m < delta < m; shown when the
  (1 - 2*alpha) interval lies inside ``(-m, m)``.

``alpha`` is one-sided (0.025 by default, so intervals are 95%); ``p_value`` is one-sided against
the margin (TOST: the larger of the two one-sided p-values); ``shown`` is the decision, which
always agrees with the interval.

The methods live by family, each module citing its sources (``method`` column says which was
used, in words):

- ``analysis.mean_difference``: :func:`mean_difference` for Likert / continuous items, ``"t"``
  paired by case, ``"bootstrap"`` a two-way cluster bootstrap over cases and raters (Owen's
  pigeonhole bootstrap), ``"mixed"`` a linear mixed model with crossed random intercepts; and
  :func:`mean_difference_one_sample` for a rating that is already a difference.
- ``analysis.risk_difference``: :func:`risk_difference` for 0/1 items (Newcombe's hybrid score
  interval, Farrington-Manning and Miettinen-Nurminen score tests).
- ``analysis.equivalence``: :func:`tost`, Schuirmann's two one-sided t-tests.
- ``analysis.multiplicity``: :func:`holm` and :func:`adjust_secondary` for secondary items.
- ``analysis._noninferiority_common``: the result schema, input checks and the row in words.
"""

from __future__ import annotations

from analysis._noninferiority_common import (
    MIN_UNITS,
    RESULT_SCHEMA,
    STATISTIC_MEAN,
    STATISTIC_RISK,
    STATISTIC_TOST,
    hypotheses,
)
from analysis.equivalence import tost
from analysis.mean_difference import (
    FEW_CASES,
    FEW_RATERS,
    MEAN_METHODS,
    _case_rater_cells,  # the tests check the vectorised bootstrap against a loop through here
    _fit_crossed,  # and the mixed model's fit against R's lme4
    _pigeonhole_replicates,
    mean_difference,
    mean_difference_one_sample,
)
from analysis.multiplicity import adjust_secondary, holm
from analysis.risk_difference import (
    RISK_METHODS,
    newcombe_interval,
    restricted_mle,
    risk_difference,
    score_interval,
    score_statistic,
)

__all__ = [
    "FEW_CASES",
    "FEW_RATERS",
    "MEAN_METHODS",
    "MIN_UNITS",
    "RESULT_SCHEMA",
    "RISK_METHODS",
    "STATISTIC_MEAN",
    "STATISTIC_RISK",
    "STATISTIC_TOST",
    "_case_rater_cells",
    "_fit_crossed",
    "_pigeonhole_replicates",
    "adjust_secondary",
    "holm",
    "hypotheses",
    "mean_difference",
    "mean_difference_one_sample",
    "newcombe_interval",
    "restricted_mle",
    "risk_difference",
    "score_interval",
    "score_statistic",
    "tost",
]
