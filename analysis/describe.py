"""Descriptive statistics of a value, per arm and per group: what a statistician looks at first.

One function, :func:`describe`: long frame in, one row per (group, arm) out.
"""

from __future__ import annotations

import polars as pl

from analysis._common import require_columns
from analysis.errors import AnalysisError

DESCRIBE_COLUMNS = ("n", "missing", "mean", "sd", "median", "q1", "q3", "min", "max")
"""The statistics :func:`describe` reports, in order, after the grouping columns."""


def describe(
    df: pl.DataFrame,
    *,
    value: str,
    arm: str | None = None,
    by: str | None = None,
) -> pl.DataFrame:
    """n, missing, mean, SD, median and quartiles of ``value`` per ``by`` group and ``arm``.

    Parameters
    ----------
    df : long frame, one row per rating; ``value`` numeric (or text holding numbers; a missing
        value is null).
    arm, by : optional grouping columns (e.g. the arm, and the item of a long export).

    Returns
    -------
    One row per (``by``, ``arm``) in order of first appearance, with those columns (when given)
    then ``n`` (non-missing values), ``missing`` (null values), ``mean``, ``sd`` (sample
    standard deviation, n - 1 in the denominator; null for n < 2), ``median``, ``q1`` and
    ``q3`` (25th and 75th percentiles by linear interpolation between order statistics: R's
    default type 7 (Hyndman & Fan 1996), numpy's ``linear``), ``min``, ``max``; in the units of
    ``value``.

    Example: 1, 2, 3, 4 and a missing value; quartiles 1.75 and 3.25 as R's ``quantile()``.

    >>> frame = pl.DataFrame({"score": [1.0, 2.0, 3.0, 4.0, None]})
    >>> describe(frame, value="score").select("n", "missing", "median", "q1", "q3").row(0)
    (4, 1, 2.5, 1.75, 3.25)
    """
    groups = [c for c in (by, arm) if c is not None]
    require_columns(df, [value, *groups])
    if len(set(groups)) < len(groups) or value in groups:
        raise AnalysisError("--value, --arm and --by must name different columns")
    column = df[value]
    if not (column.dtype.is_numeric() or column.dtype in (pl.Boolean, pl.Null)):
        numbers = column.cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)
        bad = column.is_not_null() & numbers.is_null()
        if bad.any():
            raise AnalysisError(
                f"column '{value}' holds non-numeric values such as '{column.filter(bad)[0]}'; "
                "describe needs numbers"
            )
        column = numbers
    frame = df.with_columns(column.cast(pl.Float64).fill_nan(None).alias(value)).select(
        *groups, value
    )
    x = pl.col(value)
    stats = [
        x.count().cast(pl.Int64).alias("n"),
        x.null_count().cast(pl.Int64).alias("missing"),
        x.mean().alias("mean"),
        x.std(ddof=1).alias("sd"),
        x.median().alias("median"),
        x.quantile(0.25, interpolation="linear").alias("q1"),
        x.quantile(0.75, interpolation="linear").alias("q3"),
        x.min().alias("min"),
        x.max().alias("max"),
    ]
    if not groups:
        return frame.select(stats)
    return frame.group_by(groups, maintain_order=True).agg(stats)
