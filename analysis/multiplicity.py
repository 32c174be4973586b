"""Multiplicity for secondary items: Holm's step-down adjusted p-values, and the frame of
non-inferiority results with roles and adjusted p-values (the primary item is tested alone).

References: Holm S (1979) Scand J Stat 6:65-70.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import polars as pl

from analysis import columns as cols
from analysis._common import require_columns
from analysis._noninferiority_common import num_text, p_text
from analysis.errors import AnalysisError


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
    rows are one family, as when each row is one planned secondary endpoint). If ``primary`` is
    None, an existing ``role`` column is used, and without one all rows are secondary. For
    secondary rows ``shown`` is re-decided as p_adjusted < alpha and the conclusion says so.
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
                    f"item(s) (adjusted {p_text(pa)}, alpha {num_text(rec[cols.ALPHA])}). "
                    f"Unadjusted: {rec.get(cols.CONCLUSION) or ''}"
                ).strip()
        else:
            rec[cols.P_ADJUSTED] = rec[cols.P_VALUE]
        rows.append(rec)
    out = pl.DataFrame(
        rows, schema_overrides={cols.P_ADJUSTED: pl.Float64}, infer_schema_length=None
    )
    return out.drop("__row")
