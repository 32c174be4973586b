"""Small helpers every analysis module shares: argument checks, the Wilson interval, result rows.

No scipy at module level: the CLI imports this to check a command line before it loads the
statistics modules (and with them scipy), so that bad input fails fast.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import polars as pl

from analysis.columns import (
    APPLICABLE,
    CI_HIGH,
    CI_LEVEL,
    CI_LOW,
    ESTIMATE,
    METHOD,
    NOTE,
    P_VALUE,
    RESULT_COLUMNS,
    STATISTIC,
    VARIANT,
)
from analysis.errors import AnalysisError

DIRECTIONS = ("higher", "lower")
"""Which way is better for a non-inferiority comparison: higher values, or lower ones."""


def require_columns(df: pl.DataFrame, columns: Iterable[str]) -> None:
    """Raise ``AnalysisError`` naming the first of ``columns`` missing from ``df``."""
    for column in columns:
        if column not in df.columns:
            raise AnalysisError(
                f"column '{column}' not found; columns are: {', '.join(df.columns) or '(none)'}"
            )


def check_ci(ci: float) -> float:
    """``ci`` as a float if it is a two-sided confidence level in (0, 1); else ``AnalysisError``."""
    if not (isinstance(ci, float | int) and 0 < ci < 1):
        raise AnalysisError(f"ci must be a confidence level between 0 and 1, e.g. 0.95; got {ci!r}")
    return float(ci)


def wilson_interval(x: float, n: float, *, z: float) -> tuple[float, float]:
    """Wilson (1927) score interval for ``x`` successes in ``n`` trials at normal quantile ``z``.

    No continuity correction; clipped to [0, 1]; (nan, nan) when ``n <= 0``.
    """
    if n <= 0:
        return (float("nan"), float("nan"))
    p = x / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (float(max(0.0, centre - half)), float(min(1.0, centre + half)))


def wilson_interval_ci(x: float, n: float, ci: float = 0.95) -> tuple[float, float]:
    """``wilson_interval`` at two-sided confidence level ``ci`` instead of a normal quantile."""
    from scipy import stats  # here, not at module level: see the module docstring

    return wilson_interval(x, n, z=float(stats.norm.ppf(0.5 + ci / 2)))


_RESULT_SCHEMA: dict[str, pl.DataType] = {
    STATISTIC: pl.String(),
    VARIANT: pl.String(),
    ESTIMATE: pl.Float64(),
    CI_LOW: pl.Float64(),
    CI_HIGH: pl.Float64(),
    CI_LEVEL: pl.Float64(),
    P_VALUE: pl.Float64(),
    METHOD: pl.String(),
    APPLICABLE: pl.Boolean(),
    NOTE: pl.String(),
}


def result_frame(rows: Sequence[dict[str, Any]]) -> pl.DataFrame:
    """Rows (dicts) -> a frame with ``RESULT_COLUMNS`` first, typed, then the other keys in order.

    Non-finite floats in the result columns become null.
    """
    extra: list[str] = []
    for row in rows:
        extra.extend(k for k in row if k not in _RESULT_SCHEMA and k not in extra)
    data = {
        name: [
            _finite_or_none(row.get(name)) if name in _RESULT_SCHEMA else row.get(name)
            for row in rows
        ]
        for name in (*RESULT_COLUMNS, *extra)
    }
    columns = [pl.Series(name, data[name], dtype=_RESULT_SCHEMA[name]) for name in RESULT_COLUMNS]
    columns += [pl.Series(name, data[name], strict=False) for name in extra]
    return pl.DataFrame(columns)


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float | np.floating) and not np.isfinite(value):
        return None
    return value
