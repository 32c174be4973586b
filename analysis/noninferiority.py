"""Non-inferiority and equivalence of a test arm (an LLM) against a reference arm (clinicians).

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

Methods (``method`` column says which was used, in words):

- :func:`mean_difference` for Likert / continuous items: ``"t"`` paired by case (each arm's ratings
  averaged within a case, then a paired t on the case differences), ``"bootstrap"`` a two-way
  cluster bootstrap over cases and raters (Owen's pigeonhole bootstrap), ``"mixed"`` a linear mixed
  model ``value ~ arm + (1|case) + (1|rater)`` with crossed random intercepts (statsmodels MixedLM,
  REML, Wald interval).
- :func:`risk_difference` for 0/1 items: Newcombe's hybrid score interval (Newcombe 1998, method
  10), the Farrington-Manning score test with its inverted interval (= Mee 1984) and the
  Miettinen-Nurminen version (the same with the N/(N-1) variance factor). The constrained maximum
  likelihood estimate is computed here from the closed-form cubic solution, because statsmodels
  0.15's score test is wrong for a non-zero margin (statsmodels issue #10269).
- :func:`tost` Schuirmann's two one-sided t-tests, paired or independent (pooled or Welch).
- :func:`holm` and :func:`adjust_secondary` for secondary items.

References: Newcombe RG (1998) Stat Med 17:873-890; Farrington CP, Manning G (1990) Stat Med
9:1447-1454; Miettinen O, Nurminen M (1985) Stat Med 4:213-226; Mee RW (1984) Biometrics
40:1175-1176; Schuirmann DJ (1987) J Pharmacokinet Biopharm 15:657-680; Owen AB (2007) Ann Appl
Stat 1:495-519; Holm S (1979) Scand J Stat 6:65-70.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import polars as pl
from scipy import optimize, sparse, stats

from analysis import columns as cols
from analysis._common import (
    DIRECTIONS,
    RESULT_COLUMNS_SCHEMA,
    join_notes,
    not_applicable,
    require_columns,
    result_frame,
    result_row,
    wilson_interval,
)
from analysis._pivot import MISSING_TOKENS
from analysis._random import Seed, resolve_seed, seed_text
from analysis.errors import AnalysisError

MEAN_METHODS = ("t", "bootstrap", "mixed")
RISK_METHODS = ("newcombe", "farrington-manning", "miettinen-nurminen")
MIN_UNITS = 3  # fewer cases (or ratings per arm) than this cannot support a variance estimate
FEW_RATERS = 10  # below this many raters (or FEW_CASES cases) the two-way bootstrap is conservative
FEW_CASES = 20

STATISTIC_MEAN = "mean_difference"
STATISTIC_RISK = "risk_difference"
STATISTIC_TOST = "tost"

RESULT_SCHEMA: dict[str, pl.DataType] = {
    **RESULT_COLUMNS_SCHEMA,
    cols.TEST_ARM: pl.String(),
    cols.REFERENCE_ARM: pl.String(),
    cols.MARGIN: pl.Float64(),
    cols.DIRECTION: pl.String(),
    cols.ALPHA: pl.Float64(),
    cols.H0: pl.String(),
    cols.H1: pl.String(),
    cols.SHOWN: pl.Boolean(),
    cols.CONCLUSION: pl.String(),
    cols.N_UNITS: pl.Int64(),
    cols.N_RATERS: pl.Int64(),
    cols.N_VALUES: pl.Int64(),
    cols.STATISTIC_VALUE: pl.Float64(),
    cols.DF1: pl.Float64(),
    cols.SEED: pl.Int64(),
}
"""Columns of every frame this module returns, in order."""


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def mean_difference(
    df: pl.DataFrame,
    *,
    arm: str = cols.ARM,
    value: str = cols.VALUE,
    test: object,
    reference: object,
    margin: float,
    direction: str = "higher",
    method: str = "t",
    case: str = cols.CASE,
    rater: str = cols.RATER,
    pair: str | None = None,
    alpha: float = 0.025,
    boot: int = 2000,
    seed: Seed = None,
) -> pl.DataFrame:
    """Non-inferiority of the mean rating of ``test`` versus ``reference`` (test - reference).

    Parameters
    ----------
    df : long frame, one row per rating, with columns ``arm``, ``value`` (numeric, e.g. a 1-5
        Likert score), ``case`` and, for ``"bootstrap"`` and ``"mixed"``, ``rater``.
    test, reference : the two arm labels (values of ``arm``) to compare.
    margin : the non-inferiority margin (>= 0), on the scale of ``value``; 0 makes it a
        superiority test (H0: delta <= 0, H1: delta > 0 for ``"higher"``), named as such.
    direction : ``"higher"`` (higher is better; H0: delta <= -margin, H1: delta > -margin) or
        ``"lower"`` (lower is better; H0: delta >= margin, H1: delta < margin).
    method :
        ``"t"``: each arm's ratings are averaged within a case (or within ``pair`` if given), and
        a paired t-test and t interval are computed on the per-case differences (df = n - 1).
        ``"bootstrap"``: the same estimate; cases and raters are resampled independently with
        replacement (two-way "pigeonhole" bootstrap, Owen 2007), ``boot`` replicates, percentile
        interval; ``p_value`` = share of replicates on the null side of the margin.
        ``"mixed"``: REML fit of ``value ~ arm + (1|case) + (1|rater)`` with crossed random
        intercepts (statsmodels MixedLM with variance components on one all-encompassing group);
        the arm coefficient with a Wald (normal) interval and one-sided Wald p-value.
    pair : optional column that pairs the two arms instead of ``case`` (``"t"`` only).
    alpha : one-sided significance level; the interval is two-sided at 1 - 2*alpha.
    boot, seed : bootstrap replicates and seed (``"bootstrap"`` only). ``seed`` None draws a seed
        from OS entropy; the seed used is recorded in ``method`` and in the ``seed`` column.

    Returns
    -------
    One-row frame with ``RESULT_SCHEMA`` columns: statistic ``"mean_difference"``, variant =
    method, estimate (test - reference, units of ``value``), ci_low/ci_high at ci_level = 1 -
    2*alpha, p_value (one-sided, against the margin), h0/h1 in words and numbers, shown,
    conclusion, n_units (cases compared), n_raters, n_values (ratings used), statistic_value (t
    or z) and df1 (degrees of freedom of the t method).

    Raises
    ------
    AnalysisError : a missing column or arm, non-numeric values, margin < 0, fewer than 3 cases
        rated in both arms, an unknown method or direction.
    """
    _check_options(margin=margin, alpha=alpha, direction=direction)
    if method not in MEAN_METHODS:
        raise AnalysisError(f"unknown method {method!r}; choose one of: {', '.join(MEAN_METHODS)}")
    needed = [arm, value, pair or case] + ([rater] if method != "t" else [])
    if method != "t" and pair is not None:
        raise AnalysisError(f"pair (--pair) applies to method 't' only, not {method!r}")
    frame, dropped = _two_arms(
        df, arm=arm, value=value, test=test, reference=reference, columns=needed
    )
    unit = pair or case
    paired, n_seen = _paired_means(
        frame, unit=unit, arm=arm, value=value, test=test, reference=reference
    )
    n = paired.height
    if n < MIN_UNITS:
        raise AnalysisError(
            f"too few cases rated in both arms {test!r} and {reference!r}: {n} "
            f"(need at least {MIN_UNITS}; unit column {unit!r})"
        )
    # Every unit paired (none null, none in one arm only): the semi join would return frame as is.
    used = frame if n_seen == n else frame.join(paired.select(unit), on=unit, how="semi")
    notes = _dropped_notes(dropped, n_seen - n, unit)
    n_raters = used[rater].n_unique() if rater in used.columns else None
    common = dict(
        test=test,
        reference=reference,
        margin=margin,
        direction=direction,
        alpha=alpha,
        n_units=n,
        n_raters=n_raters,
        n_values=used.height,
    )
    if method == "t":
        d = paired["d"].to_numpy()
        est = float(d.mean())
        se = float(d.std(ddof=1) / math.sqrt(n))
        return _mean_t_row(est=est, se=se, df=n - 1, unit=unit, notes=notes, **common)
    if method == "bootstrap":
        return _mean_bootstrap_row(
            used,
            case=case,
            rater=rater,
            arm=arm,
            value=value,
            boot=boot,
            seed=seed,
            est=float(paired["d"].mean()),
            notes=notes,
            **common,
        )
    return _mean_mixed_row(
        used, case=case, rater=rater, arm=arm, value=value, notes=notes, **common
    )


def mean_difference_one_sample(
    df: pl.DataFrame,
    *,
    value: str = cols.VALUE,
    margin: float,
    direction: str = "higher",
    method: str = "t",
    case: str = cols.CASE,
    rater: str = cols.RATER,
    alpha: float = 0.025,
    boot: int = 2000,
    seed: Seed = None,
    test: object = "test",
    reference: object = "reference",
) -> pl.DataFrame:
    """Non-inferiority of a rating that is already a difference, test minus reference.

    For reader studies whose raters scored the comparison itself (e.g. -2 "reference much
    better" to +2 "test much better", ClinSumm's design) there is no rating per arm to subtract:
    ``value`` is delta for one (case, rater). The hypotheses are those of ``mean_difference``
    for the mean delta: ``direction="higher"``: H0: delta <= -margin versus H1: delta > -margin;
    ``"lower"``: H0: delta >= margin versus H1: delta < margin; ``margin=0`` is a superiority
    test, named as such. ``test`` and ``reference`` only label the two sides in the hypotheses.

    method :
        ``"t"``: ratings averaged within each case, one-sample t on the n case means (df n - 1).
        ``"bootstrap"``: cases and raters resampled independently with replacement (Owen 2007),
        ``boot`` replicates of the mean over resampled cases of each case's mean over its
        resampled raters; percentile interval, p = share of replicates on the null side.
        ``"mixed"``: REML fit of ``value ~ 1 + (1|case) + (1|rater)`` (only the intercept is
        fixed; statsmodels MixedLM, crossed variance components); Wald interval and z-test of the
        intercept. A made-up zero arm must not stand in for the reference: it has no case or
        rater variance and so shrinks the standard error.

    Returns the one-row frame of ``mean_difference`` (``RESULT_SCHEMA``; statistic
    ``"mean_difference"``, variant = method; n_units cases, n_raters, n_values ratings used).
    Raises ``AnalysisError`` for a missing column, non-numeric values, a negative margin,
    fewer than 3 cases, an unknown method or direction.
    """
    _check_options(margin=margin, alpha=alpha, direction=direction)
    if method not in MEAN_METHODS:
        raise AnalysisError(f"unknown method {method!r}; choose one of: {', '.join(MEAN_METHODS)}")
    needed = [value, case] + ([rater] if method != "t" else [])
    if not isinstance(df, pl.DataFrame):
        raise AnalysisError(f"expected a polars DataFrame, got {type(df).__name__}")
    require_columns(df, needed)
    frame, dropped = _numeric_values(df, value)
    means = frame.group_by(case, maintain_order=True).agg(pl.col(value).mean().alias("d"))
    n = means.height
    if n < MIN_UNITS:
        raise AnalysisError(
            f"too few cases with a value: {n} (need at least {MIN_UNITS}; case column {case!r})"
        )
    notes = [f"{dropped} missing value(s) ignored"] if dropped else []
    common = dict(
        test=test,
        reference=reference,
        margin=margin,
        direction=direction,
        alpha=alpha,
        n_units=n,
        n_raters=frame[rater].n_unique() if rater in frame.columns else None,
        n_values=frame.height,
    )
    delta = f"mean({test} - {reference})"
    if method == "t":
        d = means["d"].to_numpy()
        row = _mean_t_row(
            est=float(d.mean()),
            se=float(d.std(ddof=1) / math.sqrt(n)),
            df=n - 1,
            unit=case,
            notes=notes,
            delta=delta,
            **common,
        )
        return row.with_columns(
            pl.lit(
                "one-sample t on a value that is already test - reference: ratings averaged "
                f"within each {case}, t on the {n} per-{case} means (df {n - 1}); "
                f"{_pct(1 - 2 * alpha)} t interval"
            ).alias(cols.METHOD)
        )
    if method == "bootstrap":
        return _mean_bootstrap_row(
            frame,
            case=case,
            rater=rater,
            arm=None,
            value=value,
            boot=boot,
            seed=seed,
            est=float(means["d"].mean()),
            notes=notes,
            delta=delta,
            **common,
        )
    return _mean_mixed_row(
        frame, case=case, rater=rater, arm=None, value=value, notes=notes, delta=delta, **common
    )


def _numeric_values(df: pl.DataFrame, value: str) -> tuple[pl.DataFrame, int]:
    """``df`` with ``value`` as Float64 and its missing values dropped; (frame, dropped)."""
    col = df[value]
    if col.dtype == pl.Boolean or col.dtype.is_numeric():
        numeric = col.cast(pl.Float64)
    else:
        numeric = col.cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)
        bad = col.is_not_null() & numeric.is_null()
        if bad.any():
            raise AnalysisError(
                f"column {value!r} has non-numeric values, e.g. {col.filter(bad)[0]!r} "
                f"({int(bad.sum())} value(s))"
            )
    frame = df.with_columns(numeric.fill_nan(None).alias(value))
    dropped = frame[value].null_count()
    return frame.filter(pl.col(value).is_not_null()), dropped


def tost(
    df: pl.DataFrame,
    *,
    arm: str = cols.ARM,
    value: str = cols.VALUE,
    test: object,
    reference: object,
    margin: float,
    pair: str | None = None,
    welch: bool = False,
    alpha: float = 0.025,
) -> pl.DataFrame:
    """Equivalence of the means by two one-sided t-tests (TOST, Schuirmann 1987).

    H0: |mean(test) - mean(reference)| >= margin versus H1: -margin < difference < margin.
    Each one-sided test is at level ``alpha``; equivalence is shown when both reject, i.e. when the
    two-sided (1 - 2*alpha) t interval lies inside (-margin, margin). ``p_value`` is the larger of
    the two one-sided p-values and ``statistic_value`` its t statistic.

    ``pair`` given: paired design; ratings are averaged within (pair, arm) and a one-sample t is
    computed on the differences (df = n - 1). ``pair`` None: independent samples of all ratings of
    each arm, pooled variance (df = n1 + n2 - 2) or, with ``welch=True``, Welch's unequal-variance
    t with Satterthwaite df.

    Returns a one-row frame with ``RESULT_SCHEMA`` columns, statistic ``"tost"``, variant
    ``"paired"``, ``"pooled"`` or ``"welch"``, direction null.
    """
    # equivalence within a margin of 0 can never be shown: the margin must be positive
    _check_options(margin=margin, alpha=alpha, direction="higher", zero_margin=False)
    needed = [arm, value] + ([pair] if pair is not None else [])
    frame, dropped = _two_arms(
        df, arm=arm, value=value, test=test, reference=reference, columns=needed
    )
    notes = [f"{dropped} missing value(s) ignored"] if dropped else []
    if pair is not None:
        paired, n_seen = _paired_means(
            frame, unit=pair, arm=arm, value=value, test=test, reference=reference
        )
        n = paired.height
        if n < MIN_UNITS:
            raise AnalysisError(
                f"too few pairs rated in both arms {test!r} and {reference!r}: {n} "
                f"(need at least {MIN_UNITS}; pair column {pair!r})"
            )
        d = paired["d"].to_numpy()
        est, se, dof = float(d.mean()), float(d.std(ddof=1) / math.sqrt(n)), float(n - 1)
        variant, n_units = "paired", n
        n_values = (
            frame.height
            if n_seen == n
            else frame.join(paired.select(pair), on=pair, how="semi").height
        )
        if n_seen > n:
            notes.append(f"{n_seen - n} {pair}(s) rated in one arm only were left out")
        if welch:
            notes.append("welch=True ignored: the paired design has one variance")
        how = f"paired t on the {n} per-{pair} differences of arm means"
    else:
        x = frame.filter(pl.col(arm) == test)[value].to_numpy()
        y = frame.filter(pl.col(arm) == reference)[value].to_numpy()
        n1, n2 = len(x), len(y)
        if min(n1, n2) < MIN_UNITS:
            raise AnalysisError(
                f"too few ratings: {n1} for {test!r} and {n2} for {reference!r} "
                f"(need at least {MIN_UNITS} in each arm)"
            )
        est = float(x.mean() - y.mean())
        v1, v2 = float(x.var(ddof=1)), float(y.var(ddof=1))
        if welch:
            se = math.sqrt(v1 / n1 + v2 / n2)
            dof = (
                (v1 / n1 + v2 / n2) ** 2 / ((v1 / n1) ** 2 / (n1 - 1) + (v2 / n2) ** 2 / (n2 - 1))
                if se > 0
                else float(n1 + n2 - 2)
            )
            variant, how = "welch", "Welch t (unequal variances, Satterthwaite df)"
        else:
            pooled = ((n1 - 1) * v1 + (n2 - 1) * v2) / (n1 + n2 - 2)
            se = math.sqrt(pooled * (1 / n1 + 1 / n2))
            dof = float(n1 + n2 - 2)
            variant, how = "pooled", "two-sample t with pooled variance"
        n_units = n_values = n1 + n2
    tcrit = float(stats.t.ppf(1 - alpha, dof))
    lo, hi = est - tcrit * se, est + tcrit * se
    t_lower, t_upper = _ratio(est + margin, se), _ratio(est - margin, se)
    p_lower = float(stats.t.sf(t_lower, dof))  # H0: delta <= -margin
    p_upper = float(stats.t.cdf(t_upper, dof))  # H0: delta >= +margin
    p, t_used = (p_lower, t_lower) if p_lower >= p_upper else (p_upper, t_upper)
    shown = lo > -margin and hi < margin
    level = 1 - 2 * alpha
    delta = f"mean({test}) - mean({reference})"
    h0 = (
        f"H0: |{delta}| >= {_f(margin)}: the arms differ by the margin {_f(margin)} or more "
        f"(delta <= {_f(-margin)} or delta >= {_f(margin)})"
    )
    h1 = (
        f"H1: {_f(-margin)} < {delta} < {_f(margin)}: the arms are equivalent within the "
        f"margin {_f(margin)}"
    )
    verdict = "Equivalence shown" if shown else "Equivalence not shown"
    relation = "lies inside" if shown else "does not lie inside"
    conclusion = (
        f"{verdict} at one-sided alpha {_f(alpha)} per side: the {_pct(level)} CI "
        f"({_f(lo)}, {_f(hi)}) {relation} ({_f(-margin)}, {_f(margin)}); "
        f"TOST {_p(p)} (the larger of {_p(p_lower)} and {_p(p_upper)})."
    )
    row = result_row(
        STATISTIC_TOST,
        **_repeated_columns(
            test=test,
            reference=reference,
            margin=margin,
            direction=None,
            alpha=alpha,
            n_units=n_units,
            n_raters=None,
            n_values=n_values,
        ),
        **{
            cols.VARIANT: variant,
            cols.ESTIMATE: est,
            cols.CI_LOW: lo,
            cols.CI_HIGH: hi,
            cols.P_VALUE: p,
            cols.METHOD: (
                f"TOST (Schuirmann 1987): two one-sided t-tests at alpha {_f(alpha)} each, {how}; "
                f"{_pct(level)} t interval"
            ),
            cols.NOTE: join_notes(notes),
            cols.H0: h0,
            cols.H1: h1,
            cols.SHOWN: shown,
            cols.CONCLUSION: conclusion,
            cols.STATISTIC_VALUE: float(t_used),
            cols.DF1: float(dof),
        },
    )
    return _frame([row])


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
    _check_options(margin=margin, alpha=alpha, direction=direction)
    if margin >= 1:
        raise AnalysisError(f"margin must be below 1 for a risk difference; got {margin!r}")
    if method not in RISK_METHODS:
        raise AnalysisError(f"unknown method {method!r}; choose one of: {', '.join(RISK_METHODS)}")
    frame, dropped = _two_arms(
        df, arm=arm, value=value, test=test, reference=reference, columns=[arm, value], binary=True
    )
    x1, n1 = _count(frame, arm, value, test)
    x0, n0 = _count(frame, arm, value, reference)
    if min(n1, n0) < MIN_UNITS:
        raise AnalysisError(
            f"too few ratings: {n1} for {test!r} and {n0} for {reference!r} "
            f"(need at least {MIN_UNITS} in each arm)"
        )
    notes = [f"{dropped} missing value(s) ignored"] if dropped else []
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
    common = dict(
        test=test,
        reference=reference,
        margin=margin,
        direction=direction,
        alpha=alpha,
        n_units=n1 + n0,
        n_raters=frame[rater].n_unique() if rater in frame.columns else None,
        n_values=n1 + n0,
    )
    return _ni_frame(
        statistic=STATISTIC_RISK,
        quantity="p",
        variant=method,
        est=est,
        lo=lo,
        hi=hi,
        p=p,
        how=f"{how}; {_pct(level)} interval; {x1}/{n1} vs {x0}/{n0}",
        stat_value=stat_value,
        dof=None,
        notes=notes,
        **common,
    )


def holm(p_values: Sequence[float | None]) -> list[float]:
    """Holm's (1979) step-down adjusted p-values, in the input order.

    Missing p-values (None or NaN) stay NaN and do not count towards the number of tests. The
    adjusted value of the i-th smallest of m p-values is max over j <= i of min(1, (m - j + 1) *
    p_(j)).

    Three tests: 0.01 * 3, then max(0.03, 0.03 * 2), then max(0.06, 0.04 * 1); a missing p-value
    stays missing and does not count.

    >>> holm([0.01, 0.04, 0.03])
    [0.03, 0.06, 0.06]
    >>> holm([0.01, None, 0.04])
    [0.02, nan, 0.04]
    """
    p = np.array([np.nan if v is None else float(v) for v in p_values], dtype=float)
    if np.any((p < 0) | (p > 1)):
        raise AnalysisError("p-values must lie between 0 and 1")
    out = np.full(p.shape, np.nan)
    present = np.flatnonzero(~np.isnan(p))
    m = len(present)
    if m == 0:
        return out.tolist()
    order = present[np.argsort(p[present], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out.tolist()


def adjust_secondary(
    frame: pl.DataFrame,
    *,
    primary: object | None = None,
    item: str = cols.ITEM,
    family: Sequence[str] = (cols.STATISTIC, cols.VARIANT),
) -> pl.DataFrame:
    """Add ``role`` and ``p_adjusted`` (Holm) to a frame of per-item non-inferiority results.

    The primary item (``item == primary``) keeps its unadjusted p-value (it is tested alone at the
    full alpha) and role ``"primary"``; every other row is ``"secondary"`` and gets Holm-adjusted
    p-values, one family per value of the ``family`` columns (default: per (statistic, variant),
    so that two methods reported for the same items are not mixed; ``family=()``: all secondary
    rows are one family, as when each row is one planned secondary endpoint). If ``primary`` is None, an existing ``role`` column is used, and without one all
    rows are secondary. For secondary rows ``shown`` is re-decided as p_adjusted < alpha and the
    conclusion says so.
    """
    require_columns(frame, (cols.P_VALUE, cols.STATISTIC, cols.ALPHA))
    if primary is not None:
        require_columns(frame, (item,))
        roles = (
            pl.when(pl.col(item) == primary).then(pl.lit("primary")).otherwise(pl.lit("secondary"))
        )
        frame = frame.with_columns(roles.alias(cols.ROLE))
    elif cols.ROLE not in frame.columns:
        frame = frame.with_columns(pl.lit("secondary").alias(cols.ROLE))
    frame = frame.with_row_index("__row")
    family_cols = [c for c in family if c in frame.columns]
    adjusted: dict[int, float] = {}
    sizes: dict[int, int] = {}
    secondary = frame.filter(pl.col(cols.ROLE) == "secondary")
    groups = (
        [group for _, group in secondary.group_by(family_cols, maintain_order=True)]
        if family_cols
        else [secondary]
    )
    for group in groups:
        adj = holm(group[cols.P_VALUE].to_list())
        k = int(group[cols.P_VALUE].is_not_null().sum())
        for r, a in zip(group["__row"].to_list(), adj, strict=True):
            adjusted[r] = a
            sizes[r] = k
    rows = []
    for rec in frame.iter_rows(named=True):
        r = rec["__row"]
        if rec[cols.ROLE] == "secondary" and r in adjusted:
            pa = adjusted[r]
            rec[cols.P_ADJUSTED] = None if math.isnan(pa) else pa
            if rec[cols.P_ADJUSTED] is not None and cols.SHOWN in rec:
                rec[cols.SHOWN] = bool(pa < rec[cols.ALPHA])
                verdict = "shown" if rec[cols.SHOWN] else "not shown"
                rec[cols.CONCLUSION] = (
                    f"Secondary item: {verdict} after Holm adjustment over {sizes[r]} secondary "
                    f"item(s) (adjusted {_p(pa)}, alpha {_f(rec[cols.ALPHA])}). "
                    f"Unadjusted: {rec.get(cols.CONCLUSION) or ''}"
                ).strip()
        else:
            rec[cols.P_ADJUSTED] = rec[cols.P_VALUE]
        rows.append(rec)
    out = pl.DataFrame(
        rows, schema_overrides={cols.P_ADJUSTED: pl.Float64}, infer_schema_length=None
    )
    return out.drop("__row")


# ---------------------------------------------------------------------------------------------
# Proportions: Wilson, Newcombe, score statistic with the restricted MLE
# ---------------------------------------------------------------------------------------------


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
    return _ratio(x1 / n1 - x0 / n0 - delta, math.sqrt(max(var, 0.0)))


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


# ---------------------------------------------------------------------------------------------
# Means: t, bootstrap, mixed model
# ---------------------------------------------------------------------------------------------


def _mean_t_row(
    *,
    est,
    se,
    df,
    unit,
    notes,
    delta=None,
    **common,
) -> pl.DataFrame:
    """``common``: test, reference, margin, direction, alpha, n_units, n_raters, n_values."""
    margin, direction, alpha = common["margin"], common["direction"], common["alpha"]
    tcrit = float(stats.t.ppf(1 - alpha, df))
    lo, hi = est - tcrit * se, est + tcrit * se
    if direction == "higher":
        t = _ratio(est + margin, se)
        p = float(stats.t.sf(t, df))
    else:
        t = _ratio(est - margin, se)
        p = float(stats.t.cdf(t, df))
    if se == 0:
        notes = [*notes, "all case differences are equal (standard error 0)"]
    how = (
        f"paired t: each arm's ratings averaged within each {unit}, t on the {common['n_units']} "
        f"per-{unit} differences (df {df}); {_pct(1 - 2 * alpha)} t interval"
    )
    return _ni_frame(
        statistic=STATISTIC_MEAN,
        quantity="mean",
        variant="t",
        est=est,
        lo=lo,
        hi=hi,
        p=p,
        how=how,
        stat_value=t,
        dof=float(df),
        notes=notes,
        delta=delta,
        **common,
    )


def _mean_bootstrap_row(
    used,
    *,
    case,
    rater,
    arm,
    value,
    boot,
    seed,
    est,
    notes,
    delta=None,
    **common,
) -> pl.DataFrame:
    """``common``: test, reference, margin, direction, alpha, n_units, n_raters, n_values.
    ``arm`` None: ``value`` is already the difference (one sample)."""
    margin, direction, alpha = common["margin"], common["direction"], common["alpha"]
    if not isinstance(boot, int) or boot < 100:
        raise AnalysisError(f"boot must be an integer of at least 100; got {boot!r}")
    cells = _case_rater_cells(
        used, case=case, rater=rater, arm=arm, value=value, test=common["test"]
    )
    nc, nr = cells.n_cases, cells.n_raters
    rng, used_seed = resolve_seed(seed)
    reps = _pigeonhole_replicates(cells, boot=boot, rng=rng)
    finite = reps[np.isfinite(reps)]
    if len(finite) < boot:
        notes = [
            *notes,
            f"{boot - len(finite)} replicate(s) without a case rated in both arms were discarded",
        ]
    # inverted_cdf quantiles make 'bound beyond the margin' equivalent to 'p < alpha'.
    lo = float(np.quantile(finite, alpha, method="inverted_cdf"))
    hi = float(np.quantile(finite, 1 - alpha, method="inverted_cdf"))
    if direction == "higher":
        p = float(np.mean(finite <= -margin))
    else:
        p = float(np.mean(finite >= margin))
    if p == 0:
        notes = [*notes, f"p = 0 means p < 1/{len(finite)} (no replicate on the null side)"]
    few = [f"{nr} raters"] if nr < FEW_RATERS else []
    if nc < FEW_CASES:
        few.append(f"{nc} cases")
    if few:
        # Owen (2007): the pigeonhole bootstrap overestimates the variance (it adds the
        # case x rater variance to both factors); with few levels of a factor that is large.
        notes = [
            *notes,
            f"only {' and '.join(few)}: the two-way bootstrap is "
            "conservative (Owen 2007), its interval wider than the sampling variation; see the "
            "t and mixed results",
        ]
    how = (
        f"two-way cluster bootstrap (Owen 2007 pigeonhole): {nc} cases and {nr} raters resampled "
        f"independently with replacement, {boot} replicates, {seed_text(used_seed, seed)}; percentile "
        f"{_pct(1 - 2 * alpha)} interval; p = share of replicates on the null side of the margin; "
        + (
            "estimate = mean over cases of the within-case difference of arm means"
            if arm is not None
            else "one sample: estimate = mean over cases of the within-case mean of the value, "
            "already test - reference"
        )
    )
    return _ni_frame(
        statistic=STATISTIC_MEAN,
        quantity="mean",
        variant="bootstrap",
        est=est,
        lo=lo,
        hi=hi,
        p=p,
        how=how,
        stat_value=None,
        dof=None,
        notes=notes,
        seed=used_seed,
        delta=delta,
        **common,
    )


class _Cells(NamedTuple):
    """Ratings summed per (case, rater) cell, cases and raters numbered by first appearance.

    ``sums`` is a sparse (k * n_cases, n_raters) CSR matrix of k stacked case x rater blocks:
    k = 2, [S_test - S_ref; N] when every cell has as many test as reference ratings (``balanced``;
    then both arms share the denominator N), else k = 4, [S_test; N_test; S_ref; N_ref]. S holds
    sums of ratings, N counts of ratings.
    """

    n_cases: int
    n_raters: int
    balanced: bool
    sums: sparse.csr_array


def _case_rater_cells(used, *, case, rater, arm, value, test) -> _Cells:
    """Sparse per-(case, rater) sums and counts of each arm's ratings (see :class:`_Cells`).

    ``arm`` None: one sample, the value is already the difference; the blocks are then
    [S; N] (``balanced``), which the replicates read as the mean of the value."""
    ids = []
    for column in (case, rater):
        # First-appearance numbering: the documented order that bootstrap draws index into.
        levels = used.select(pl.col(column).unique(maintain_order=True)).with_row_index("__i")
        index = used.select(column).join(
            levels, on=column, how="left", maintain_order="left", nulls_equal=True
        )["__i"]
        ids.append((index.to_numpy().astype(np.int64), levels.height))
    (ci, nc), (ri, nr) = ids
    one_sample = arm is None
    is_test = np.ones(used.height, dtype=bool) if one_sample else (used[arm] == test).to_numpy()
    values = used[value].to_numpy()
    cell, row_cell = np.unique(ci * nr + ri, return_inverse=True)  # sorted by (case, rater)
    k = len(cell)
    # bincount adds in row order, so the float sums are reproducible run to run.
    s_t = np.bincount(row_cell, weights=np.where(is_test, values, 0.0), minlength=k)
    s_r = np.bincount(row_cell, weights=np.where(is_test, 0.0, values), minlength=k)
    n_t = np.bincount(row_cell, weights=is_test.astype(np.float64), minlength=k)
    n_r = np.bincount(row_cell, weights=(~is_test).astype(np.float64), minlength=k)
    balanced = one_sample or bool(np.array_equal(n_t, n_r))
    blocks = [s_t - s_r, n_t] if balanced else [s_t, n_t, s_r, n_r]  # s_r is 0 for one sample
    cell_case, cell_rater = cell // nr, cell % nr
    per_case = np.bincount(cell_case, minlength=nc)
    indptr = np.concatenate([[0], np.cumsum(np.tile(per_case, len(blocks)))])
    sums = sparse.csr_array(
        (np.concatenate(blocks), np.tile(cell_rater, len(blocks)), indptr),
        shape=(len(blocks) * nc, nr),
    )
    return _Cells(nc, nr, balanced, sums)


_BOOT_BLOCK = 1 << 19  # cases x replicates handled at once: ~4 MB per float array


def _pigeonhole_replicates(cells: _Cells, *, boot: int, rng: np.random.Generator) -> np.ndarray:
    """``boot`` two-way bootstrap replicates of the mean within-case arm difference, shape (boot,).

    Replicate i draws, in this order, ``n_cases`` case indices ``rng.integers(0, n_cases,
    n_cases)`` and ``n_raters`` rater indices ``rng.integers(0, n_raters, n_raters)`` (numbered
    by first appearance). With w_c, v_r the number of times case c and rater r were drawn, the
    replicate is

        sum_c w_c e_c d_c / sum_c w_c e_c,   d_c = T_c / NT_c - R_c / NR_c,

    T_c = sum_r v_r S_test[c, r], NT_c = sum_r v_r N_test[c, r] (the same for the reference arm),
    and e_c = 1 when NT_c > 0 and NR_c > 0 (the case has a drawn rating in both arms), else 0:
    the mean over the resampled cases of the difference of arm means over their resampled
    ratings. NaN when no resampled case has both arms. Replicates are computed in blocks of
    columns: the rater step is one sparse (cases x raters) @ (raters x block) product, the case
    step a weighted column sum; the result does not depend on the block size.
    """
    nc, nr = cells.n_cases, cells.n_raters
    block = max(1, min(boot, 256, _BOOT_BLOCK // nc))
    reps = np.empty(boot)
    for start in range(0, boot, block):
        b = min(block, boot - start)
        # Flat index of (drawn case, replicate) and (drawn rater, replicate) in column-major blocks.
        case_key = np.empty((b, nc), dtype=np.int64)
        rater_key = np.empty((b, nr), dtype=np.int64)
        for j in range(b):
            np.multiply(rng.integers(0, nc, nc), b, out=case_key[j])
            case_key[j] += j
            np.multiply(rng.integers(0, nr, nr), b, out=rater_key[j])
            rater_key[j] += j
        v = np.bincount(rater_key.ravel(), minlength=nr * b).reshape(nr, b).astype(np.float64)
        w = np.bincount(case_key.ravel(), minlength=nc * b).reshape(nc, b).astype(np.float64)
        sums = cells.sums @ v  # (k * nc, b)
        # Counts are whole numbers, so min(count, 1) is the 0/1 "has a drawn rating" indicator
        # and max(count, 1) a divisor that leaves real means unchanged (the sum is 0 when it is 0).
        if cells.balanced:
            d, count = sums[:nc], sums[nc:]
            both = np.minimum(count, 1.0)
            np.maximum(count, 1.0, out=count)
            np.divide(d, count, out=d)
        else:
            s_t, n_t, s_r, n_r = (sums[i * nc : (i + 1) * nc] for i in range(4))
            both = np.minimum(n_t, 1.0) * np.minimum(n_r, 1.0)
            np.maximum(n_t, 1.0, out=n_t)
            np.maximum(n_r, 1.0, out=n_r)
            d = s_t / n_t - s_r / n_r
            d *= both
        with np.errstate(invalid="ignore", divide="ignore"):
            reps[start : start + b] = np.einsum("cb,cb->b", w, d) / np.einsum("cb,cb->b", w, both)
    return reps


def _mean_mixed_row(
    used,
    *,
    case,
    rater,
    arm,
    value,
    notes,
    delta=None,
    **common,
) -> pl.DataFrame:
    """``common``: test, reference, margin, direction, alpha, n_units, n_raters, n_values.
    ``arm`` None: one sample, ``value ~ 1 + (1|case) + (1|rater)``: the intercept is the mean
    difference."""
    margin, direction, alpha = common["margin"], common["direction"], common["alpha"]
    one_sample = arm is None
    pdf = used.select(
        pl.col(case).cast(pl.String).alias("case"),
        pl.col(rater).cast(pl.String).alias("rater"),
        (pl.lit(1.0) if one_sample else (pl.col(arm) == common["test"]).cast(pl.Float64)).alias(
            "arm_test"
        ),
        pl.col(value).cast(pl.Float64).alias("value"),
    ).to_pandas()
    formula, coefficient = (
        ("value ~ 1", "Intercept") if one_sample else ("value ~ arm_test", "arm_test")
    )
    crossed = [c for c in ("case", "rater") if pdf[c].nunique() > 1]
    if "rater" not in crossed:
        notes = [*notes, "one rater only: the rater random intercept was left out"]
    z = float(stats.norm.ppf(1 - alpha))
    try:
        result, caught = _fit_crossed(pdf, formula, crossed)
        est = float(result.fe_params[coefficient])
        se = float(result.bse_fe[coefficient])
    except (np.linalg.LinAlgError, ValueError) as exc:
        return _mixed_not_applicable(reason=f"mixed model could not be fitted: {exc}", **common)
    if not math.isfinite(se):
        return _mixed_not_applicable(
            reason=f"mixed model gave no standard error for the {coefficient}", **common
        )
    notes = [*notes, *caught]
    if not result.converged:
        notes.append("the optimiser reported no convergence")
    vcomp = dict(zip(crossed, np.atleast_1d(result.vcomp), strict=True))
    parts = ", ".join(f"{k} {_f(v)}" for k, v in vcomp.items())
    lo, hi = est - z * se, est + z * se
    if direction == "higher":
        zs = _ratio(est + margin, se)
        p = float(stats.norm.sf(zs))
    else:
        zs = _ratio(est - margin, se)
        p = float(stats.norm.cdf(zs))
    model = (
        "value ~ 1 + (1|case) + (1|rater), only the intercept fixed (one sample: the value is "
        "already test - reference)"
        if one_sample
        else "value ~ arm + (1|case) + (1|rater)"
    )
    how = (
        f"linear mixed model {model}, crossed random intercepts "
        "(statsmodels MixedLM, REML, variance components on one group); Wald "
        f"{_pct(1 - 2 * alpha)} interval and one-sided Wald z-test of the "
        f"{'intercept' if one_sample else 'arm coefficient'}; "
        f"variances: {parts}, residual {_f(result.scale)}"
    )
    return _ni_frame(
        statistic=STATISTIC_MEAN,
        quantity="mean",
        variant="mixed",
        est=est,
        lo=lo,
        hi=hi,
        p=p,
        how=how,
        stat_value=zs,
        dof=None,
        notes=notes,
        delta=delta,
        **common,
    )


def _fit_crossed(pdf, formula: str, crossed: Sequence[str], *, reml: bool = True):
    """Fit ``formula`` with crossed random intercepts for each column in ``crossed``.

    statsmodels MixedLM nests random effects in groups; crossed factors are expressed as variance
    components of a single group that holds every row (the statsmodels documentation's device).
    Returns the fitted result and the warning messages raised while fitting.
    """
    from statsmodels.regression.mixed_linear_model import MixedLM

    data = pdf.assign(_one_group=1)
    vc = {name: f"0 + C({name})" for name in crossed}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = MixedLM.from_formula(
            formula, groups="_one_group", re_formula="0", vc_formula=vc, data=data
        )
        # L-BFGS first: statsmodels' default BFGS stalls on crossed variance components; the
        # simplex is the fallback when the gradient method does not converge.
        result = model.fit(reml=reml, method=["lbfgs", "nm"])
    messages = sorted({str(w.message).splitlines()[0] for w in caught})
    return result, messages


# ---------------------------------------------------------------------------------------------
# Input checks and shaping
# ---------------------------------------------------------------------------------------------


def _check_options(
    *, margin: float, alpha: float, direction: str, zero_margin: bool = True
) -> None:
    """Refuse bad options; a margin of 0 (superiority) only where ``zero_margin``."""
    if (
        isinstance(margin, bool)
        or not isinstance(margin, int | float)
        or not math.isfinite(margin)
        or margin < 0
        or (margin == 0 and not zero_margin)
    ):
        also = "" if not zero_margin else ", or 0 for a superiority test"
        raise AnalysisError(f"margin must be a positive number{also}; got {margin!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha < 0.5:
        raise AnalysisError(f"alpha (one-sided) must lie between 0 and 0.5; got {alpha!r}")
    if direction not in DIRECTIONS:
        raise AnalysisError(
            f"direction must be 'higher' (higher is better) or 'lower' (lower is better); "
            f"got {direction!r}"
        )


def _two_arms(df, *, arm, value, test, reference, columns, binary=False):
    """Rows of the two arms with a Float64 ``value``; (frame, number of missing values dropped)."""
    if not isinstance(df, pl.DataFrame):
        raise AnalysisError(f"expected a polars DataFrame, got {type(df).__name__}")
    require_columns(df, columns)
    if test == reference:
        raise AnalysisError(f"test and reference arm are the same: {test!r}")
    arms = df[arm].unique().to_list()
    for label, which in ((test, "test"), (reference, "reference")):
        if label not in arms:
            shown = ", ".join(repr(a) for a in sorted(arms, key=str)[:10])
            raise AnalysisError(
                f"{which} arm {label!r} not found in column {arm!r}; arms are: {shown}"
            )
    frame = df.filter(pl.col(arm).is_in([test, reference]))
    col = frame[value]
    if col.dtype == pl.Boolean or col.dtype.is_numeric():
        numeric = col.cast(pl.Float64)
    else:
        numeric = col.cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)
        bad = col.is_not_null() & numeric.is_null()
        if bad.any():
            example = col.filter(bad)[0]
            marker = (
                "; it marks a missing value in exported files: make those values null "
                f"(polars: read_csv(..., null_values={list(MISSING_TOKENS)!r}))"
                if str(example).strip() in MISSING_TOKENS
                else ""
            )
            raise AnalysisError(
                f"column {value!r} has non-numeric values, e.g. {example!r} "
                f"({int(bad.sum())} value(s)){marker}"
            )
    numeric = numeric.fill_nan(None)
    frame = frame.with_columns(numeric.alias(value))
    dropped = frame[value].null_count()
    frame = frame.filter(pl.col(value).is_not_null())
    if binary:
        bad = frame.filter(~pl.col(value).is_in([0.0, 1.0]))[value]
        if bad.len():
            raise AnalysisError(
                f"column {value!r} must hold 0/1 for a risk difference; found {bad[0]:g} "
                f"({bad.len()} value(s) other than 0 or 1)"
            )
    return frame, dropped


def _paired_means(frame, *, unit, arm, value, test, reference) -> tuple[pl.DataFrame, int]:
    """Per ``unit``: mean rating of each arm and d = test - reference, units rated in both; and
    the number of distinct units in ``frame`` (a null unit counts once and is never paired).
    """
    # Ordered group-by and join keep float sums bit-for-bit reproducible from run to run.
    means = frame.group_by(unit, arm, maintain_order=True).agg(pl.col(value).mean().alias("m"))
    t = means.filter(pl.col(arm) == test).select(unit, pl.col("m").alias("mt"))
    r = means.filter(pl.col(arm) == reference).select(unit, pl.col("m").alias("mr"))
    paired = t.join(r, on=unit, how="inner", maintain_order="left").with_columns(
        (pl.col("mt") - pl.col("mr")).alias("d")
    )
    # means has a row per (unit, arm) of frame: the same distinct units in a third of the rows
    return paired, means.get_column(unit).n_unique()


def _dropped_notes(dropped: int, unpaired: int, unit: str) -> list[str]:
    notes = []
    if dropped:
        notes.append(f"{dropped} missing value(s) ignored")
    if unpaired:
        notes.append(f"{unpaired} {unit}(s) rated in one arm only were left out")
    return notes


def _count(frame, arm, value, label) -> tuple[int, int]:
    v = frame.filter(pl.col(arm) == label)[value]
    return int(v.sum()), v.len()


# ---------------------------------------------------------------------------------------------
# Rows, words and numbers
# ---------------------------------------------------------------------------------------------


def hypotheses(direction, margin, test, reference, quantity, delta=None) -> tuple[str, str]:
    """H0 and H1 of a non-inferiority test in words and numbers (``quantity``: "mean" or "p"); ``delta`` names the difference (default: the difference
    of the two arms' ``quantity``). A margin of 0 is a superiority test, and says so."""
    delta = delta or f"{quantity}({test}) - {quantity}({reference})"
    m = _f(margin)
    if margin == 0:
        if direction == "higher":
            return (
                f"H0: {delta} <= 0: {test!r} is not better than {reference!r} (higher is better)",
                f"H1: {delta} > 0: {test!r} is better than {reference!r}, i.e. superior "
                "(margin 0: a superiority test)",
            )
        return (
            f"H0: {delta} >= 0: {test!r} is not better than {reference!r} (lower is better)",
            f"H1: {delta} < 0: {test!r} is lower, i.e. better than {reference!r}, i.e. superior "
            "(margin 0: a superiority test)",
        )
    if direction == "higher":
        return (
            f"H0: {delta} <= {_f(-margin)}: {test!r} is worse than {reference!r} by the margin "
            f"{m} or more (higher is better)",
            f"H1: {delta} > {_f(-margin)}: {test!r} is worse than {reference!r} by less than "
            f"{m}, i.e. non-inferior",
        )
    return (
        f"H0: {delta} >= {m}: {test!r} is higher than {reference!r} by the margin {m} or more "
        "(lower is better, so worse)",
        f"H1: {delta} < {m}: {test!r} is higher than {reference!r} by less than {m}, i.e. "
        "non-inferior",
    )


def _ni_conclusion(shown, direction, margin, lo, hi, p, alpha) -> str:
    level = _pct(1 - 2 * alpha)
    claim = "Superiority" if margin == 0 else "Non-inferiority"
    verdict = f"{claim} shown" if shown else f"{claim} not shown"
    if direction == "higher":
        bound = f"the lower bound of the {level} CI ({_f(lo)})"
        below = _f(-margin) if margin else "0"  # not "-0" for a superiority test
        relation = f"lies above {below}" if shown else f"does not lie above {below}"
    else:
        bound = f"the upper bound of the {level} CI ({_f(hi)})"
        relation = f"lies below {_f(margin)}" if shown else f"does not lie below {_f(margin)}"
    return f"{verdict} at one-sided alpha {_f(alpha)}: {bound} {relation}; one-sided {_p(p)}."


def _ni_shown(direction, margin, lo, hi) -> bool:
    """Non-inferiority is shown when the interval's bound on the worse side clears the margin."""
    return lo > -margin if direction == "higher" else hi < margin


def _ni_frame(
    *,
    statistic,
    quantity,
    variant,
    est,
    lo,
    hi,
    p,
    how,
    stat_value,
    dof,
    notes,
    seed=None,
    delta=None,
    **common,
) -> pl.DataFrame:
    """The one-row result frame of a non-inferiority test of ``quantity`` ("mean" or "p").

    ``common``: test, reference, margin, direction, alpha, n_units, n_raters, n_values (the
    keyword-only arguments of ``_repeated_columns``, which refuses any other). ``delta``: the
    words for the difference when it is not the two arms' (the one-sample design).
    """
    test, reference = common["test"], common["reference"]
    margin, direction, alpha = common["margin"], common["direction"], common["alpha"]
    h0, h1 = hypotheses(direction, margin, test, reference, quantity, delta)
    shown = _ni_shown(direction, margin, lo, hi)
    row = result_row(
        statistic,
        **_repeated_columns(**common),
        **{
            cols.VARIANT: variant,
            cols.ESTIMATE: est,
            cols.CI_LOW: lo,
            cols.CI_HIGH: hi,
            cols.P_VALUE: p,
            cols.METHOD: how,
            cols.NOTE: join_notes(notes),
            cols.H0: h0,
            cols.H1: h1,
            cols.SHOWN: shown,
            cols.CONCLUSION: _ni_conclusion(shown, direction, margin, lo, hi, p, alpha),
            cols.STATISTIC_VALUE: None if stat_value is None else float(stat_value),
            cols.DF1: None if dof is None else float(dof),
            cols.SEED: seed,
        },
    )
    return _frame([row])


def _mixed_not_applicable(*, reason, **common) -> pl.DataFrame:
    """The one-row frame of a mixed model that could not be fitted, saying why; ``common`` as
    for ``_ni_frame``."""
    h0, h1 = hypotheses(
        common["direction"], common["margin"], common["test"], common["reference"], "mean"
    )
    row = not_applicable(
        STATISTIC_MEAN,
        reason=reason,
        **_repeated_columns(**common),
        **{
            cols.VARIANT: "mixed",
            cols.METHOD: "linear mixed model value ~ arm + (1|case) + (1|rater)",
            cols.H0: h0,
            cols.H1: h1,
            cols.CONCLUSION: f"Not computed: {reason}.",
        },
    )
    return _frame([row])


def _repeated_columns(
    *, test, reference, margin, direction, alpha, n_units, n_raters, n_values
) -> dict[str, object]:
    """What every row of this module repeats: the arms, margin, direction and one-sided alpha it
    was run with, the interval's level 1 - 2*alpha, and the counts of cases, raters, ratings."""
    return {
        cols.CI_LEVEL: 1 - 2 * alpha,
        cols.TEST_ARM: str(test),
        cols.REFERENCE_ARM: str(reference),
        cols.MARGIN: float(margin),
        cols.DIRECTION: direction,
        cols.ALPHA: float(alpha),
        cols.N_UNITS: n_units,
        cols.N_RATERS: n_raters,
        cols.N_VALUES: n_values,
    }


def _frame(rows: list[dict]) -> pl.DataFrame:
    # Non-finite values are kept: a t or z of +-inf (standard error 0) is reported as such.
    return result_frame(rows, schema=RESULT_SCHEMA, nonfinite_to_null=False)


def _ratio(num: float, den: float) -> float:
    if den > 0:
        return num / den
    if num == 0:
        return 0.0
    return math.copysign(math.inf, num)


def _f(x: float) -> str:
    return f"{x:.4g}"


def _p(p: float) -> str:
    """'p = 0.0123' or 'p < 0.0001'."""
    return "p < 0.0001" if p < 1e-4 else f"p = {p:.4f}"


def _pct(level: float) -> str:
    return f"{100 * level:g}%"
