"""Non-inferiority of a proportion (0/1 ratings), risk difference p(test) - p(reference):
Newcombe's hybrid score interval, and the Farrington-Manning and Miettinen-Nurminen score tests
with their inverted intervals, from the closed-form restricted maximum likelihood estimate.

Hypotheses (margin 0 <= m < 1): ``direction="higher"`` H0: p_test - p_ref <= -m vs
H1: p_test - p_ref > -m; ``direction="lower"`` H0: p_test - p_ref >= m vs H1: p_test - p_ref < m.
The restricted MLE is computed here because statsmodels 0.15's score test is wrong for a
non-zero margin (statsmodels issue #10269).

References: Newcombe RG (1998) Stat Med 17:873-890; Farrington CP, Manning G (1990) Stat Med
9:1447-1454; Miettinen O, Nurminen M (1985) Stat Med 4:213-226; Mee RW (1984) Biometrics
40:1175-1176.
"""

from __future__ import annotations

import math

import polars as pl
from scipy import optimize, stats

from analysis import columns as cols
from analysis._common import wilson_interval
from analysis._noninferiority_common import (
    STATISTIC_RISK,
    Estimate,
    check_arm_sizes,
    check_options,
    counted,
    dropped_notes,
    ni_frame,
    pct_text,
    signed_ratio,
    two_arms,
)
from analysis.errors import AnalysisError

RISK_METHODS = ("newcombe", "farrington-manning", "miettinen-nurminen")


def risk_difference(
    df: pl.DataFrame,
    *,
    arm: str = cols.ARM,
    value: str = cols.VALUE,
    test: object,
    reference: object,
    margin: float,
    direction: str = "higher",
    method: str = "newcombe",
    alpha: float = 0.025,
    case: str = cols.CASE,
    rater: str = cols.RATER,
) -> pl.DataFrame:
    """Non-inferiority of a proportion (0/1 ratings): risk difference p(test) - p(reference).

    ``direction="higher"`` (default, as in ``mean_difference`` and SAS PROC FREQ RISKDIFF NONINF;
    e.g. "answer is correct", higher is better): H0: p_test - p_ref <= -margin versus
    H1: p_test - p_ref > -margin.
    ``direction="lower"`` (pass it for harm rates, e.g. "could cause harm", lower is better):
    H0: p_test - p_ref >= margin versus H1: p_test - p_ref < margin.

    Methods (the interval is two-sided at 1 - 2*alpha):

    - ``"newcombe"``: Newcombe's (1998) hybrid score interval, method 10 (Wilson score limits of
      each proportion combined by the square-and-add rule). It has no test of its own; the
      one-sided ``p_value`` is obtained by inverting the interval (the alpha at which its bound
      touches the margin), so it agrees with the interval by construction.
    - ``"farrington-manning"``: the score test of Farrington & Manning (1990), variance from the
      maximum likelihood estimates restricted to p_test - p_ref = margin (closed-form cubic root of
      Miettinen & Nurminen 1985), and the interval from inverting that test (= Mee 1984).
    - ``"miettinen-nurminen"``: the same score statistic with the variance multiplied by
      N / (N - 1) (N = all ratings), as in Miettinen & Nurminen (1985), SAS CL=MN and R PropCIs.

    Every rating counts as one Bernoulli trial; when raters rate the same answer several times the
    note says so, because the interval then ignores that clustering.

    Raises AnalysisError for values other than 0/1 (booleans are accepted), a missing arm or
    column, fewer than 3 ratings in an arm, margin < 0 or margin >= 1 (0: superiority).
    """
    check_options(margin=margin, alpha=alpha, direction=direction)
    if margin >= 1:
        raise AnalysisError(f"margin must be below 1 for a risk difference; got {margin!r}")
    if method not in RISK_METHODS:
        raise AnalysisError(f"unknown method {method!r}; choose one of: {', '.join(RISK_METHODS)}")
    frame, dropped = two_arms(
        df, arm=arm, value=value, test=test, reference=reference, columns=[arm, value], binary=True
    )
    x1, n1 = _count(frame, arm, value, test)
    x0, n0 = _count(frame, arm, value, reference)
    check_arm_sizes(n1, n0, test, reference)
    notes = dropped_notes(dropped)
    if case in frame.columns:
        per_answer = frame.group_by(case, arm).len()["len"]
        if per_answer.max() > 1:
            notes.append(
                f"ratings treated as independent trials, but there are up to {per_answer.max()} "
                f"ratings per case and arm (mean {per_answer.mean():.1f}); the interval ignores "
                "this clustering (mean_difference with method 'bootstrap' on the 0/1 values "
                "respects it)"
            )
    est = x1 / n1 - x0 / n0
    level = 1 - 2 * alpha
    z = float(stats.norm.ppf(1 - alpha))
    bound = -margin if direction == "higher" else margin
    if method == "newcombe":
        lo, hi = newcombe_interval(x1, n1, x0, n0, z=z)
        p = _newcombe_p(x1, n1, x0, n0, bound=bound, direction=direction)
        stat_value = None
        how = (
            "Newcombe (1998) hybrid score interval, method 10 (Wilson limits combined); "
            "one-sided p by inverting the interval"
        )
    else:
        mn = method == "miettinen-nurminen"
        lo, hi = score_interval(x1, n1, x0, n0, z=z, mn=mn)
        stat_value = score_statistic(x1, n1, x0, n0, delta=bound, mn=mn)
        p = float(
            stats.norm.sf(stat_value) if direction == "higher" else stats.norm.cdf(stat_value)
        )
        how = (
            "Miettinen-Nurminen (1985) score test and inverted score interval, variance under "
            "the restricted MLE times N/(N-1)"
            if mn
            else "Farrington-Manning (1990) score test, variance under the restricted MLE, and "
            "the inverted score interval (Mee 1984)"
        )
    # every rating is one trial: the units are the ratings, all of which frame holds
    options = {"test": test, "reference": reference, "margin": margin, "direction": direction}
    common = {**counted(frame, rater=rater, alpha=alpha, **options), "n_units": n1 + n0}
    how = f"{how}; {pct_text(level)} interval; {x1}/{n1} vs {x0}/{n0}"
    found = Estimate(method, est, lo, hi, p, how, notes, stat_value=stat_value)
    return ni_frame(STATISTIC_RISK, found, **common)


def _count(frame, arm, value, label) -> tuple[int, int]:
    v = frame.filter(pl.col(arm) == label)[value]
    return int(v.sum()), v.len()


def newcombe_interval(x1: int, n1: int, x0: int, n0: int, *, z: float) -> tuple[float, float]:
    """Newcombe's (1998) hybrid score interval (method 10) for p1 - p0 at normal quantile z.

    Newcombe (1998), Table II, example (a): 56/70 vs 48/80 gives 0.0524 to 0.3339 (95%).

    >>> [round(limit, 4) for limit in newcombe_interval(56, 70, 48, 80, z=1.959964)]
    [0.0524, 0.3339]
    """
    p1, p0 = x1 / n1, x0 / n0
    l1, u1 = wilson_interval(x1, n1, z=z)
    l0, u0 = wilson_interval(x0, n0, z=z)
    d = p1 - p0
    return (
        d - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2),
        d + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2),
    )


def restricted_mle(x1: int, n1: int, x0: int, n0: int, delta: float) -> tuple[float, float]:
    """Maximum likelihood (p1, p0) of two binomials under the constraint p1 - p0 = delta.

    Closed-form root of the cubic score equation (Miettinen & Nurminen 1985, Appendix 1;
    Farrington & Manning 1990, eq. 13 with theta = n0 / n1). Falls back to a bounded numeric
    maximisation where the trigonometric form is degenerate.
    """
    p1h, p0h = x1 / n1, x0 / n0
    theta = n0 / n1
    a = 1 + theta
    b = -(1 + theta + p1h + theta * p0h + delta * (theta + 2))
    c = delta * delta + delta * (2 * p1h + theta + 1) + p1h + theta * p0h
    d = -p1h * delta * (1 + delta)
    v = b**3 / (27 * a**3) - b * c / (6 * a * a) + d / (2 * a)
    radicand = b * b / (9 * a * a) - c / (3 * a)
    lo, hi = max(0.0, delta), min(1.0, 1.0 + delta)  # feasible range of p1
    if radicand > 0:
        u = math.copysign(math.sqrt(radicand), v) if v != 0 else math.sqrt(radicand)
        w = (math.pi + math.acos(max(-1.0, min(1.0, v / u**3)))) / 3
        p1 = 2 * u * math.cos(w) - b / (3 * a)
        if lo - 1e-9 <= p1 <= hi + 1e-9:
            p1 = min(max(p1, lo), hi)
            return p1, min(max(p1 - delta, 0.0), 1.0)
    return _restricted_mle_numeric(x1, n1, x0, n0, delta, lo, hi)


def _restricted_mle_numeric(x1, n1, x0, n0, delta, lo, hi) -> tuple[float, float]:
    def negloglik(p1: float) -> float:
        p0 = p1 - delta
        return -(
            _xlogy(x1, p1) + _xlogy(n1 - x1, 1 - p1) + _xlogy(x0, p0) + _xlogy(n0 - x0, 1 - p0)
        )

    res = optimize.minimize_scalar(
        negloglik, bounds=(lo, hi), method="bounded", options={"xatol": 1e-12}
    )
    return float(res.x), float(res.x - delta)


def _xlogy(x: float, y: float) -> float:
    if x == 0:
        return 0.0
    return x * math.log(y) if y > 0 else -math.inf


def score_statistic(x1: int, n1: int, x0: int, n0: int, *, delta: float, mn: bool) -> float:
    """Score z for H0: p1 - p0 = delta (Farrington-Manning; ``mn`` adds the N/(N-1) factor).

    z = (p1_hat - p0_hat - delta) / sqrt(V), V = p1~(1-p1~)/n1 + p0~(1-p0~)/n0 at the restricted
    MLE (p1~, p0~). Positive z favours p1 - p0 > delta.
    """
    p1t, p0t = restricted_mle(x1, n1, x0, n0, delta)
    var = p1t * (1 - p1t) / n1 + p0t * (1 - p0t) / n0
    if mn:
        total = n1 + n0
        var *= total / (total - 1)
    return signed_ratio(x1 / n1 - x0 / n0 - delta, math.sqrt(max(var, 0.0)))


def score_interval(
    x1: int, n1: int, x0: int, n0: int, *, z: float, mn: bool
) -> tuple[float, float]:
    """Interval for p1 - p0 by inverting the score test: all delta with |score z| < z."""
    est = x1 / n1 - x0 / n0
    eps = 1e-12

    def f(delta: float, target: float) -> float:
        return score_statistic(x1, n1, x0, n0, delta=delta, mn=mn) - target

    # The score z falls as delta rises; a bound at -1 or 1 means the test never rejects there.
    lower_end, upper_end = -1 + eps, 1 - eps
    if est <= lower_end or f(lower_end, z) <= 0:
        lo = -1.0
    else:
        lo = optimize.brentq(f, lower_end, est, args=(z,), xtol=1e-12)
    if est >= upper_end or f(upper_end, -z) >= 0:
        hi = 1.0
    else:
        hi = optimize.brentq(f, est, upper_end, args=(-z,), xtol=1e-12)
    return float(lo), float(hi)


def _newcombe_p(x1: int, n1: int, x0: int, n0: int, *, bound: float, direction: str) -> float:
    """One-sided p from the Newcombe interval: 1 - Phi(z) for the z whose bound hits ``bound``.

    For ``higher`` the lower limit L(z) falls from the estimate as z grows; p = 1 - Phi(z*) where
    L(z*) = bound. When the estimate is already on the null side, the upper limit U(z*) = bound and
    p = Phi(z*) >= 0.5. ``lower`` mirrors this. 0 or 1 when the bound is never reached.
    """
    est = x1 / n1 - x0 / n0
    zmax = 40.0

    def lower(z: float) -> float:
        return newcombe_interval(x1, n1, x0, n0, z=z)[0]

    def upper(z: float) -> float:
        return newcombe_interval(x1, n1, x0, n0, z=z)[1]

    def solve(limit, side: float) -> float | None:
        g = lambda z: limit(z) - bound  # noqa: E731
        if g(1e-12) * side < 0 or g(zmax) * side > 0:
            return None
        return optimize.brentq(g, 1e-12, zmax, xtol=1e-12)

    favourable = est > bound if direction == "higher" else est < bound
    if est == bound:
        return 0.5
    if direction == "higher":
        if favourable:
            zs = solve(lower, 1.0)
            return 0.0 if zs is None else float(stats.norm.sf(zs))
        zs = solve(upper, -1.0)
        return 1.0 if zs is None else float(stats.norm.cdf(zs))
    if favourable:
        zs = solve(upper, -1.0)
        return 0.0 if zs is None else float(stats.norm.sf(zs))
    zs = solve(lower, 1.0)
    return 1.0 if zs is None else float(stats.norm.cdf(zs))
