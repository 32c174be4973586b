"""Equivalence of two arms' mean ratings by Schuirmann's two one-sided t-tests (TOST), paired or
independent (pooled variance or Welch).

H0: |delta| >= m versus H1: -m < delta < m; shown when the (1 - 2*alpha) interval lies inside
(-m, m). One row of ``RESULT_SCHEMA`` (``analysis._noninferiority_common``).

References: Schuirmann DJ (1987) J Pharmacokinet Biopharm 15:657-680.
"""

from __future__ import annotations

import math

import polars as pl
from scipy import stats

from analysis import columns as cols
from analysis._common import join_notes, result_row
from analysis._noninferiority_common import (
    STATISTIC_TOST,
    check_arm_sizes,
    check_options,
    dropped_notes,
    mean_and_se,
    num_text,
    p_text,
    pair_arms,
    pct_text,
    repeated_columns,
    result_rows_frame,
    signed_ratio,
    two_arms,
)


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
    check_options(margin=margin, alpha=alpha, direction="higher", zero_margin=False)
    needed = [arm, value] + ([pair] if pair is not None else [])
    frame, dropped = two_arms(
        df, arm=arm, value=value, test=test, reference=reference, columns=needed
    )
    if pair is not None:
        pairs = pair_arms(
            frame,
            unit=pair,
            arm=arm,
            value=value,
            test=test,
            reference=reference,
            dropped=dropped,
            units="pairs",
        )
        n = pairs.d.len()
        est, se = mean_and_se(pairs.d)
        dof = float(n - 1)
        variant, n_units, n_values, notes = "paired", n, pairs.used.height, pairs.notes
        if welch:
            notes.append("welch=True ignored: the paired design has one variance")
        how = f"paired t on the {n} per-{pair} differences of arm means"
    else:
        x = frame.filter(pl.col(arm) == test)[value].to_numpy()
        y = frame.filter(pl.col(arm) == reference)[value].to_numpy()
        n1, n2 = len(x), len(y)
        check_arm_sizes(n1, n2, test, reference)
        notes = dropped_notes(dropped)
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
    t_lower, t_upper = signed_ratio(est + margin, se), signed_ratio(est - margin, se)
    p_lower = float(stats.t.sf(t_lower, dof))  # H0: delta <= -margin
    p_upper = float(stats.t.cdf(t_upper, dof))  # H0: delta >= +margin
    p, t_used = (p_lower, t_lower) if p_lower >= p_upper else (p_upper, t_upper)
    shown = lo > -margin and hi < margin
    level = 1 - 2 * alpha
    delta = f"mean({test}) - mean({reference})"
    m, minus_m = num_text(margin), num_text(-margin)
    h0 = (
        f"H0: |{delta}| >= {m}: the arms differ by the margin {m} or more "
        f"(delta <= {minus_m} or delta >= {m})"
    )
    h1 = f"H1: {minus_m} < {delta} < {m}: the arms are equivalent within the margin {m}"
    verdict = "Equivalence shown" if shown else "Equivalence not shown"
    relation = "lies inside" if shown else "does not lie inside"
    conclusion = (
        f"{verdict} at one-sided alpha {num_text(alpha)} per side: the {pct_text(level)} CI "
        f"({num_text(lo)}, {num_text(hi)}) {relation} ({minus_m}, {m}); "
        f"TOST {p_text(p)} (the larger of {p_text(p_lower)} and {p_text(p_upper)})."
    )
    row = result_row(
        STATISTIC_TOST,
        **repeated_columns(
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
                f"TOST (Schuirmann 1987): two one-sided t-tests at alpha {num_text(alpha)} each, "
                f"{how}; {pct_text(level)} t interval"
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
    return result_rows_frame([row])
