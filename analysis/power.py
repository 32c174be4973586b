"""Planning a non-inferiority study: how many cases and raters, and the power of a given design.

Design assumed (the one Clinval runs): every case has one answer from the test arm (the LLM) and
one from the reference arm (clinicians); each of ``m`` raters of the case rates both answers. The
primary analysis (``analysis.noninferiority.mean_difference``, method ``"t"``) averages each arm's
ratings within a case and runs a paired t-test on the per-case differences.

Let ``d`` be one rater's difference (test rating - reference rating) for one case, with standard
deviation ``sd`` and intraclass correlation ``icc`` between the differences of two raters of the
same case. The mean of ``m`` such differences has variance ``sd^2 (1 + (m - 1) icc) / m``: the
design effect ``DE = 1 + (m - 1) icc`` (Kish 1965; Donner & Klar 2000) of the ``m`` ratings of a
case.

Normal-approximation sample size for a one-sided test at level ``alpha`` with power ``1 - beta``
(Chow, Shao & Wang 2008, Sample Size Calculations in Clinical Research, 2nd ed., sec. 3.1,
one-sample / paired non-inferiority)::

    n_independent = (z_{1-alpha} + z_{1-beta})^2 sd^2 / (expected_difference + margin)^2
    cases         = ceil(n_independent * DE / m)

for ``direction="higher"`` (H0: delta <= -margin); for ``"lower"`` (H0: delta >= margin) the
distance is ``margin - expected_difference``. ``simulate_power`` checks a design by simulating
whole studies and analysing each with the same ``mean_difference`` the study will use.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import polars as pl
from scipy import stats

from analysis import columns as C
from analysis._common import DIRECTIONS, wilson_interval_ci
from analysis._random import resolve_seed
from analysis.errors import AnalysisError


@dataclass(frozen=True, slots=True)
class SampleSize:
    """Result of ``noninferiority_sample_size``; ``as_dict()`` for tables and JSON."""

    cases: int
    raters_per_case: int
    raters: int
    ratings_per_arm: int
    ratings_total: int
    n_independent: float
    design_effect: float
    achieved_power: float
    margin: float
    expected_difference: float
    sd: float
    icc: float
    alpha: float
    power: float
    direction: str
    method: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class PowerSimulation:
    """Result of ``simulate_power``: the share of simulated studies that showed non-inferiority."""

    power: float
    ci_low: float
    ci_high: float
    n_sim: int
    n_shown: int
    formula_power: float
    cases: int
    raters_per_case: int
    method: str
    seed: int | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _distance(
    margin: float, expected_difference: float, direction: str, *, strict: bool = True
) -> float:
    if direction not in DIRECTIONS:
        raise AnalysisError(f"direction must be 'higher' or 'lower', got '{direction}'")
    if not margin > 0:
        raise AnalysisError(f"margin must be positive, got {margin}")
    distance = (
        expected_difference + margin if direction == "higher" else margin - expected_difference
    )
    if strict and distance <= 0:
        side = "above -margin" if direction == "higher" else "below margin"
        raise AnalysisError(
            f"the expected difference {expected_difference} must lie {side} ({margin}); "
            "otherwise non-inferiority cannot be shown whatever the sample size"
        )
    return distance


def _check_design(sd: float, icc: float, raters_per_case: int, alpha: float) -> None:
    if not sd > 0:
        raise AnalysisError(f"sd must be positive, got {sd}")
    if not 0 <= icc <= 1:
        raise AnalysisError(f"icc must lie in [0, 1], got {icc}")
    if raters_per_case < 1 or int(raters_per_case) != raters_per_case:
        raise AnalysisError(f"raters_per_case must be a whole number >= 1, got {raters_per_case}")
    if not 0 < alpha < 0.5:
        raise AnalysisError(f"alpha is one-sided and must lie in (0, 0.5), got {alpha}")


def noninferiority_power(
    *,
    cases: int,
    margin: float,
    expected_difference: float,
    sd: float,
    icc: float,
    raters_per_case: int,
    alpha: float = 0.025,
    direction: str = "higher",
) -> float:
    """Normal-approximation power of the paired design with ``cases`` cases:
    Phi(distance * sqrt(cases * m / DE) / sd - z_{1-alpha})."""
    _check_design(sd, icc, raters_per_case, alpha)
    distance = _distance(margin, expected_difference, direction, strict=False)
    if cases < 1:
        raise AnalysisError(f"cases must be at least 1, got {cases}")
    design_effect = 1 + (raters_per_case - 1) * icc
    se = sd * math.sqrt(design_effect / (cases * raters_per_case))
    return float(stats.norm.cdf(distance / se - stats.norm.isf(alpha)))


def noninferiority_sample_size(
    *,
    margin: float,
    expected_difference: float,
    sd: float,
    icc: float,
    raters_per_case: int,
    alpha: float = 0.025,
    power: float = 0.8,
    direction: str = "higher",
    cases_per_rater: int | None = None,
) -> SampleSize:
    """Cases (and raters) needed to show non-inferiority of the test arm's mean rating.

    Parameters
    ----------
    margin : non-inferiority margin (> 0), in rating units (e.g. 0.3 points on a 1-5 scale).
    expected_difference : the true test - reference difference assumed for power (often 0).
    sd : standard deviation of one rater's paired difference (test - reference) for one case.
    icc : intraclass correlation of those differences between raters of the same case, [0, 1].
    raters_per_case : m, raters who rate each case (both of its answers).
    alpha : one-sided significance level (0.025 for a 95% two-sided interval).
    power : target power, 1 - beta.
    direction : ``higher`` (higher is better; H0: delta <= -margin, H1: delta > -margin) or
        ``lower`` (lower is better; H0: delta >= margin, H1: delta < margin).
    cases_per_rater : most cases one rater can take on; sets ``raters`` = the size of the rater
        pool, max(m, ceil(cases * m / cases_per_rater)). Without it ``raters`` = m.

    Returns
    -------
    ``SampleSize`` with ``cases`` (rounded up), ``raters``, ``ratings_per_arm`` (cases * m),
    ``ratings_total`` (both arms), the unrounded ``n_independent`` (independent paired
    differences needed), ``design_effect`` and the ``achieved_power`` of the rounded design.

    Examples
    --------
    Chow, Shao & Wang (2008), Example 3.1.4: alpha 0.05, power 0.8, sd 1, true difference 0.5,
    margin 0.5 -> 7.

    >>> noninferiority_sample_size(margin=0.5, expected_difference=0.5, sd=1, icc=0,
    ...                            raters_per_case=1, alpha=0.05).cases
    7
    """
    _check_design(sd, icc, raters_per_case, alpha)
    if not 0 < power < 1:
        raise AnalysisError(f"power must lie in (0, 1), got {power}")
    distance = _distance(margin, expected_difference, direction)
    z = stats.norm.isf(alpha) + stats.norm.isf(1 - power)
    n_independent = float(z * z * sd * sd / (distance * distance))
    design_effect = 1 + (raters_per_case - 1) * icc
    # round() first so that 7.000000000001 from floating point does not become 8
    cases = max(2, math.ceil(round(n_independent * design_effect / raters_per_case, 9)))
    if cases_per_rater is not None:
        if cases_per_rater < 1:
            raise AnalysisError(f"cases_per_rater must be at least 1, got {cases_per_rater}")
        raters = max(raters_per_case, math.ceil(cases * raters_per_case / cases_per_rater))
    else:
        raters = raters_per_case
    return SampleSize(
        cases=cases,
        raters_per_case=raters_per_case,
        raters=raters,
        ratings_per_arm=cases * raters_per_case,
        ratings_total=2 * cases * raters_per_case,
        n_independent=n_independent,
        design_effect=design_effect,
        achieved_power=noninferiority_power(
            cases=cases,
            margin=margin,
            expected_difference=expected_difference,
            sd=sd,
            icc=icc,
            raters_per_case=raters_per_case,
            alpha=alpha,
            direction=direction,
        ),
        margin=margin,
        expected_difference=expected_difference,
        sd=sd,
        icc=icc,
        alpha=alpha,
        power=power,
        direction=direction,
        method="normal approximation, paired by case, design effect 1 + (m - 1) * ICC "
        "(Chow, Shao & Wang 2008, sec. 3.1)",
    )


def simulate_study(
    rng: np.random.Generator,
    *,
    cases: int,
    raters_per_case: int,
    expected_difference: float,
    sd: float,
    icc: float,
    raters: int | None = None,
) -> pl.DataFrame:
    """One simulated study in long format: columns case, arm ("test"/"reference"), rater, value.

    Model (rater j of case c)::

        reference[c, j] = u_c + v_j + w_cj
        test[c, j]      = reference[c, j] + expected_difference + b_c + e_cj

    with b_c ~ N(0, icc sd^2) and e_cj ~ N(0, (1 - icc) sd^2), so the paired difference has SD
    ``sd`` and ICC ``icc``; the nuisance case effect u_c ~ N(0, sd^2), rater effect
    v_j ~ N(0, sd^2 / 4) and noise w_cj ~ N(0, sd^2 / 4) cancel in that difference. Raters come
    from a pool of ``raters`` (default: enough that each rater takes about 20 cases), assigned
    round-robin so the m raters of a case are distinct.
    """
    m = raters_per_case
    pool = raters if raters is not None else max(m, math.ceil(cases * m / 20))
    if pool < m:
        raise AnalysisError(f"a pool of {pool} raters cannot give {m} distinct raters per case")
    case_idx = np.repeat(np.arange(cases), m)
    rater_idx = (case_idx * m + np.tile(np.arange(m), cases)) % pool
    u = rng.normal(0.0, sd, cases)[case_idx]
    v = rng.normal(0.0, sd / 2, pool)[rater_idx]
    w = rng.normal(0.0, sd / 2, case_idx.size)
    b = rng.normal(0.0, sd * math.sqrt(icc), cases)[case_idx]
    e = rng.normal(0.0, sd * math.sqrt(1 - icc), case_idx.size)
    reference = u + v + w
    test = reference + expected_difference + b + e
    n = case_idx.size
    return pl.DataFrame(
        {
            C.CASE: np.concatenate([case_idx, case_idx]),
            C.ARM: ["test"] * n + ["reference"] * n,
            C.RATER: np.concatenate([rater_idx, rater_idx]),
            C.VALUE: np.concatenate([test, reference]),
        }
    )


def simulate_power(
    *,
    cases: int,
    raters_per_case: int,
    margin: float,
    expected_difference: float,
    sd: float,
    icc: float,
    alpha: float = 0.025,
    direction: str = "higher",
    method: str = "t",
    n_sim: int = 1000,
    seed: int | None = None,
    raters: int | None = None,
    boot: int = 200,
) -> PowerSimulation:
    """Power of a design by simulation: ``n_sim`` studies from ``simulate_study``, each analysed
    with ``analysis.noninferiority.mean_difference(method=method)``; power = share of studies in
    which non-inferiority was shown (column ``shown``).

    The formula of ``noninferiority_sample_size`` is for ``method="t"``; ``bootstrap`` and
    ``mixed`` also run (slowly: ``boot`` replicates per study for the bootstrap). The returned
    ``ci_low``/``ci_high`` is the 95% Wilson interval of the Monte Carlo estimate (its simulation
    error, not a property of the design); ``formula_power`` is ``noninferiority_power`` for the
    same design, for comparison. ``seed=None`` draws a seed; the result's ``seed`` is the one
    used, so any simulation can be repeated exactly.
    """
    from analysis.noninferiority import mean_difference

    _check_design(sd, icc, raters_per_case, alpha)
    _distance(margin, expected_difference, direction, strict=False)
    if n_sim < 1:
        raise AnalysisError(f"n_sim must be at least 1, got {n_sim}")
    rng, used_seed = resolve_seed(seed)
    shown = 0
    for _ in range(n_sim):
        study = simulate_study(
            rng,
            cases=cases,
            raters_per_case=raters_per_case,
            expected_difference=expected_difference,
            sd=sd,
            icc=icc,
            raters=raters,
        )
        result = mean_difference(
            study,
            test="test",
            reference="reference",
            margin=margin,
            direction=direction,
            method=method,
            alpha=alpha,
            boot=boot,
            seed=int(rng.integers(2**63 - 1)),
        )
        shown += bool(result[C.SHOWN][0])
    low, high = wilson_interval_ci(shown, n_sim, 0.95)
    return PowerSimulation(
        power=shown / n_sim,
        ci_low=low,
        ci_high=high,
        n_sim=n_sim,
        n_shown=shown,
        formula_power=noninferiority_power(
            cases=cases,
            margin=margin,
            expected_difference=expected_difference,
            sd=sd,
            icc=icc,
            raters_per_case=raters_per_case,
            alpha=alpha,
            direction=direction,
        ),
        cases=cases,
        raters_per_case=raters_per_case,
        method=method,
        seed=used_seed,
    )
