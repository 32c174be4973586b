"""What every agreement statistic shares: the result schema and frame, the category text of a
note, the low-prevalence warning, and reading ratings at a level of measurement.

Used by ``analysis.krippendorff_alpha``, ``analysis.kappa``, ``analysis.icc`` and the façade
``analysis.agreement``; imports none of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from analysis import columns as C
from analysis._common import RESULT_COLUMNS_SCHEMA, result_frame
from analysis._pivot import Ratings, read_ratings

RESULT_SCHEMA: dict[str, pl.DataType] = {
    **RESULT_COLUMNS_SCHEMA,
    C.LEVEL: pl.String(),
    C.N_UNITS: pl.Int64(),
    C.N_RATERS: pl.Int64(),
    C.N_VALUES: pl.Int64(),
    C.RATER_A: pl.String(),
    C.RATER_B: pl.String(),
    C.MCGRAW_WONG_NAME: pl.String(),
    C.STATISTIC_VALUE: pl.Float64(),
    C.DF1: pl.Float64(),
    C.DF2: pl.Float64(),
    C.SEED: pl.Int64(),
}
"""Columns and types of every frame the agreement statistics return, in this order."""

LOW_PREVALENCE_SHARE = 0.9
"""Above this share of all ratings in one category, kappa-type rows carry a prevalence warning."""


def agreement_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Result rows (``result_row``, ``not_applicable``) as one frame of ``RESULT_SCHEMA``."""
    return result_frame(rows, schema=RESULT_SCHEMA)


def category_text(x: Any) -> str:
    """A category as a note shows it: floats without trailing zeros (3.0 -> "3")."""
    return f"{x:g}" if isinstance(x, float) else str(x)


def prevalence_note(rat: Ratings) -> str | None:
    """Warn when one category holds most ratings: kappa-type statistics then mislead (the 'kappa
    paradox', Feinstein & Cicchetti 1990), while percent agreement, AC1 and Randolph do not."""
    share = rat.category_counts() / rat.n_ratings
    top = int(np.argmax(share))
    if share[top] > LOW_PREVALENCE_SHARE:
        return (
            f"low prevalence: {category_text(rat.categories[top])!s} is {share[top]:.0%} of "
            "ratings, so chance-corrected kappa-type values can be low despite high agreement; "
            "read them with percent agreement, Gwet's AC1 and Randolph's kappa"
        )
    return None


def read_at_level(
    df: pl.DataFrame,
    *,
    unit: str,
    rater: str,
    value: str,
    level: str,
    scale: Sequence[Any] | None,
) -> Ratings:
    """``read_ratings`` with what ``level`` demands: numbers at interval and ratio level, ordered
    categories (numbers, or text with a declared scale) at ordinal level."""
    return read_ratings(
        df,
        unit=unit,
        rater=rater,
        value=value,
        scale=scale,
        need_numeric=f"{level} level" if level in ("interval", "ratio") else None,
        need_order=f"{level} level" if level == "ordinal" else None,
    )
