"""What the non-inferiority and equivalence tests share: the result schema, option and input
checks, the two arms' numeric values and per-unit means, and the row that states H0, H1, the
decision and the conclusion in words and numbers.

Used by ``analysis.mean_difference``, ``analysis.risk_difference``, ``analysis.equivalence``
and ``analysis.multiplicity``; imports none of them nor the façade ``analysis.noninferiority``.
The difference is always test arm minus reference arm; ``alpha`` is one-sided and intervals are
two-sided at 1 - 2*alpha.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import polars as pl

from analysis import columns as cols
from analysis._common import (
    DIRECTIONS,
    RESULT_COLUMNS_SCHEMA,
    join_notes,
    require_columns,
    result_frame,
    result_row,
)
from analysis._pivot import MISSING_TOKENS
from analysis.errors import AnalysisError

MIN_UNITS = 3  # fewer cases (or ratings per arm) than this cannot support a variance estimate

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
"""Columns of every frame the non-inferiority and equivalence tests return, in order."""


def check_options(*, margin: float, alpha: float, direction: str, zero_margin: bool = True) -> None:
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


def numeric_values(df: pl.DataFrame, value: str) -> tuple[pl.DataFrame, int]:
    """``df`` with ``value`` as Float64 and its missing values (null, NaN) dropped; (frame,
    dropped). Text that is not a number raises ``AnalysisError`` naming an example."""
    col = df[value]
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
    frame = df.with_columns(numeric.fill_nan(None).alias(value))
    dropped = frame[value].null_count()
    return frame.filter(pl.col(value).is_not_null()), dropped


def two_arms(df, *, arm, value, test, reference, columns, binary=False):
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
    frame, dropped = numeric_values(df.filter(pl.col(arm).is_in([test, reference])), value)
    if binary:
        bad = frame.filter(~pl.col(value).is_in([0.0, 1.0]))[value]
        if bad.len():
            raise AnalysisError(
                f"column {value!r} must hold 0/1 for a risk difference; found {bad[0]:g} "
                f"({bad.len()} value(s) other than 0 or 1)"
            )
    return frame, dropped


class Paired(NamedTuple):
    """The units rated in both arms: ``d`` (n,) each unit's mean test rating minus its mean
    reference rating, ``used`` the ratings of those units, ``notes`` on what was left out."""

    d: pl.Series
    used: pl.DataFrame
    notes: list[str]


def pair_arms(frame, *, unit, arm, value, test, reference, dropped, units="cases") -> Paired:
    """The units of ``frame`` (column ``unit``) rated in both arms, with the notes on what was
    left out: ``dropped`` missing values (counted by the caller), units rated in one arm only.
    Fewer than ``MIN_UNITS`` such units raise ``AnalysisError`` (naming them ``units``)."""
    paired, n_seen = _paired_means(
        frame, unit=unit, arm=arm, value=value, test=test, reference=reference
    )
    n = paired.height
    if n < MIN_UNITS:
        raise AnalysisError(
            f"too few {units} rated in both arms {test!r} and {reference!r}: {n} "
            f"(need at least {MIN_UNITS}; {'pair' if units == 'pairs' else 'unit'} column {unit!r})"
        )
    # Every unit paired (none null, none in one arm only): the semi join would return frame as is.
    used = frame if n_seen == n else frame.join(paired.select(unit), on=unit, how="semi")
    return Paired(paired["d"], used, dropped_notes(dropped, n_seen - n, unit))


def mean_and_se(d: pl.Series) -> tuple[float, float]:
    """The mean of the n differences ``d`` and its standard error sd(d) / sqrt(n) (ddof 1)."""
    values = d.to_numpy()
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values)))


def check_arm_sizes(n_test: int, n_reference: int, test: object, reference: object) -> None:
    """Refuse fewer than ``MIN_UNITS`` ratings in either arm."""
    if min(n_test, n_reference) < MIN_UNITS:
        raise AnalysisError(
            f"too few ratings: {n_test} for {test!r} and {n_reference} for {reference!r} "
            f"(need at least {MIN_UNITS} in each arm)"
        )


def counted(used: pl.DataFrame, *, rater: str, **options: object) -> dict[str, object]:
    """``options`` (test, reference, margin, direction, alpha) and two of the counts a row
    repeats, for the ratings ``used``: raters (null without a ``rater`` column) and ratings."""
    return {
        **options,
        "n_raters": used[rater].n_unique() if rater in used.columns else None,
        "n_values": used.height,
    }


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


def dropped_notes(dropped: int, unpaired: int = 0, unit: str = "") -> list[str]:
    """The notes on what was left out: ``dropped`` missing values, ``unpaired`` units (named by
    the column ``unit``) rated in one arm only."""
    notes = []
    if dropped:
        notes.append(f"{dropped} missing value(s) ignored")
    if unpaired:
        notes.append(f"{unpaired} {unit}(s) rated in one arm only were left out")
    return notes


def hypotheses(direction, margin, test, reference, quantity, delta=None) -> tuple[str, str]:
    """H0 and H1 of a non-inferiority test in words and numbers (``quantity``: "mean" or "p");
    ``delta`` names the difference (default: the difference of the two arms' ``quantity``). A
    margin of 0 is a superiority test, and says so."""
    delta = delta or f"{quantity}({test}) - {quantity}({reference})"
    m = num_text(margin)
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
        worse = num_text(-margin)
        return (
            f"H0: {delta} <= {worse}: {test!r} is worse than {reference!r} by the margin "
            f"{m} or more (higher is better)",
            f"H1: {delta} > {worse}: {test!r} is worse than {reference!r} by less than "
            f"{m}, i.e. non-inferior",
        )
    return (
        f"H0: {delta} >= {m}: {test!r} is higher than {reference!r} by the margin {m} or more "
        "(lower is better, so worse)",
        f"H1: {delta} < {m}: {test!r} is higher than {reference!r} by less than {m}, i.e. "
        "non-inferior",
    )


def _ni_conclusion(shown, direction, margin, lo, hi, p, alpha) -> str:
    level = pct_text(1 - 2 * alpha)
    claim = "Superiority" if margin == 0 else "Non-inferiority"
    verdict = f"{claim} shown" if shown else f"{claim} not shown"
    if direction == "higher":
        bound = f"the lower bound of the {level} CI ({num_text(lo)})"
        below = num_text(-margin) if margin else "0"  # not "-0" for a superiority test
        relation = f"lies above {below}" if shown else f"does not lie above {below}"
    else:
        bound = f"the upper bound of the {level} CI ({num_text(hi)})"
        above = num_text(margin)
        relation = f"lies below {above}" if shown else f"does not lie below {above}"
    return (
        f"{verdict} at one-sided alpha {num_text(alpha)}: {bound} {relation}; "
        f"one-sided {p_text(p)}."
    )


def _ni_shown(direction, margin, lo, hi) -> bool:
    """Non-inferiority is shown when the interval's bound on the worse side clears the margin."""
    return lo > -margin if direction == "higher" else hi < margin


class Estimate(NamedTuple):
    """What one method found, before a row states it: ``variant`` (the method), the estimate with
    its two-sided (1 - 2*alpha) interval (lo, hi) and one-sided ``p`` against the margin, ``how``
    the method in words, ``notes``, and where there are any the test statistic, its degrees of
    freedom and a bootstrap's seed."""

    variant: str
    est: float
    lo: float
    hi: float
    p: float
    how: str
    notes: list[str]
    stat_value: float | None = None
    dof: float | None = None
    seed: int | None = None


def ni_frame(
    statistic: str, found: Estimate, *, delta: str | None = None, **common
) -> pl.DataFrame:
    """The one-row result frame of a non-inferiority test: ``statistic`` (``STATISTIC_MEAN`` or
    ``STATISTIC_RISK``, a difference of means or of proportions p) and what its method found.

    ``common``: test, reference, margin, direction, alpha, n_units, n_raters, n_values (the
    keyword-only arguments of ``repeated_columns``, which refuses any other). ``delta``: the
    words for the difference when it is not the two arms' (the one-sample design).
    """
    variant, est, lo, hi, p, how, notes, stat_value, dof, seed = found
    test, reference = common["test"], common["reference"]
    margin, direction, alpha = common["margin"], common["direction"], common["alpha"]
    quantity = "p" if statistic == STATISTIC_RISK else "mean"
    h0, h1 = hypotheses(direction, margin, test, reference, quantity, delta)
    shown = _ni_shown(direction, margin, lo, hi)
    row = result_row(
        statistic,
        **repeated_columns(**common),
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
    return result_rows_frame([row])


def repeated_columns(
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


def result_rows_frame(rows: list[dict]) -> pl.DataFrame:
    """Result rows as one frame of ``RESULT_SCHEMA``."""
    # Non-finite values are kept: a t or z of +-inf (standard error 0) is reported as such.
    return result_frame(rows, schema=RESULT_SCHEMA, nonfinite_to_null=False)


def wald_test(
    est: float, se: float, dist, *, margin: float, direction: str, alpha: float
) -> tuple[float, float, float, float]:
    """Interval and one-sided test against the margin of an estimate with standard error ``se``.

    ``dist``: the reference distribution, frozen (``scipy.stats.t(df)`` or ``scipy.stats.norm()``).
    Interval: est -/+ q se, q its 1 - alpha quantile (two-sided 1 - 2*alpha). Test, "higher":
    statistic (est + margin) / se, p = P(X > statistic); "lower": (est - margin) / se,
    p = P(X < statistic). Returns (lo, hi, statistic, p).
    """
    q = float(dist.ppf(1 - alpha))
    lo, hi = est - q * se, est + q * se
    if direction == "higher":
        statistic = signed_ratio(est + margin, se)
        return lo, hi, statistic, float(dist.sf(statistic))
    statistic = signed_ratio(est - margin, se)
    return lo, hi, statistic, float(dist.cdf(statistic))


def signed_ratio(num: float, den: float) -> float:
    """num / den for den > 0; with den 0 (a standard error of 0), 0 or +-inf by the sign of num."""
    if den > 0:
        return num / den
    if num == 0:
        return 0.0
    return math.copysign(math.inf, num)


def num_text(x: float) -> str:
    """A number as the words of a row show it: 4 significant digits."""
    return f"{x:.4g}"


def p_text(p: float) -> str:
    """'p = 0.0123' or 'p < 0.0001'."""
    return "p < 0.0001" if p < 1e-4 else f"p = {p:.4f}"


def pct_text(level: float) -> str:
    """A level as a percentage: 0.95 -> '95%'."""
    return f"{100 * level:g}%"
