"""Small helpers every analysis module shares: argument checks, the Wilson interval, result rows
and the frames built from them.

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
    """``wilson_interval`` at two-sided confidence level ``ci`` instead of a normal quantile.

    Newcombe (1998a, Stat Med 17:857), Table I, Wilson score method: 81/263 gives 0.2553 to
    0.3662, 15/148 gives 0.0624 to 0.1605, and 0/20 gives 0 to 0.1611.

    >>> [[round(limit, 4) for limit in wilson_interval_ci(x, n, 0.95)]
    ...  for x, n in ((81, 263), (15, 148), (0, 20))]
    [[0.2553, 0.3662], [0.0624, 0.1605], [0.0, 0.1611]]
    """
    from scipy import stats  # here, not at module level: see the module docstring

    return wilson_interval(x, n, z=float(stats.norm.ppf(0.5 + ci / 2)))


RESULT_COLUMNS_SCHEMA: dict[str, pl.DataType] = {
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
"""Types of ``RESULT_COLUMNS``, the columns every result frame starts with; a module that
declares its whole frame extends this (``{**RESULT_COLUMNS_SCHEMA, LEVEL: pl.String(), ...}``)."""


def result_row(statistic: str, **columns: Any) -> dict[str, Any]:
    """One result row: ``statistic``, applicable, and ``columns`` keyed by column name.

    Pass columns by their constants, ``result_row("icc", **{ESTIMATE: 0.8, CI_LOW: 0.6})``;
    a column not given is null in the frame. ``result_frame`` turns rows into a frame.
    """
    return {STATISTIC: statistic, APPLICABLE: True, **columns}


def not_applicable(statistic: str, *, reason: str, **columns: Any) -> dict[str, Any]:
    """A row for a statistic that does not apply to the data: applicable False, ``reason`` as
    its note and no estimate, interval or p-value, whatever ``columns`` says about those; the
    other ``columns`` (variant, method, counts, parameters) are kept as for ``result_row``.
    """
    return result_row(statistic, **columns) | {
        APPLICABLE: False,
        ESTIMATE: None,
        CI_LOW: None,
        CI_HIGH: None,
        P_VALUE: None,
        NOTE: reason,
    }


def join_notes(notes: Iterable[str | None]) -> str | None:
    """The notes that say something, joined by "; " (one ``note`` cell), or None."""
    kept = [note for note in notes if note]
    return "; ".join(kept) if kept else None


def result_frame(
    rows: Sequence[dict[str, Any]],
    *,
    schema: dict[str, pl.DataType] | None = None,
    nonfinite_to_null: bool = True,
) -> pl.DataFrame:
    """Rows (dicts keyed by column name) -> a typed result frame.

    With ``schema``: exactly its columns, in its order and types (a key outside it is a
    programming error: ``KeyError``). Without: ``RESULT_COLUMNS`` first, typed, then the other
    keys in the order they first appear, their types inferred. numpy scalars become Python
    numbers; with ``nonfinite_to_null`` NaN and infinities in the typed columns become null.
    """
    if schema is None:
        typed: dict[str, pl.DataType] = RESULT_COLUMNS_SCHEMA
        extra: list[str] = []
        for row in rows:
            extra.extend(k for k in row if k not in typed and k not in extra)
    else:
        typed, extra = schema, []
        unknown = {key for row in rows for key in row} - set(schema)
        if unknown:
            raise KeyError(", ".join(sorted(unknown)))

    def typed_cell(value: Any) -> Any:
        value = value.item() if isinstance(value, np.generic) else value
        if nonfinite_to_null and isinstance(value, float) and not math.isfinite(value):
            return None
        return value

    columns = [
        pl.Series(name, [typed_cell(row.get(name)) for row in rows], dtype=dtype)
        for name, dtype in typed.items()
    ]
    columns += [pl.Series(name, [row.get(name) for row in rows], strict=False) for name in extra]
    return pl.DataFrame(columns)
