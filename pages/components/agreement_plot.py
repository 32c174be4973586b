"""Krippendorff's alpha per item with its interval, as one plotly figure (Monitoring, Analysis).

Both screens show the same dot-and-whisker plot of the agreement table's alpha rows; the
monitoring screen adds the 0.667 line below which Krippendorff (2004) advises against even
tentative conclusions.
"""

from __future__ import annotations

import plotly.express as px
import plotly.graph_objects as go
import polars as pl

# Krippendorff's (2004) lowest alpha for tentative conclusions
TENTATIVE_ALPHA = 0.667


def alpha_rows(agreement: pl.DataFrame) -> pl.DataFrame:
    """The applicable Krippendorff's alpha rows of an agreement table (none when the table has
    no estimates yet: an item not analysable is a row without estimate columns)."""
    if not agreement.height or "statistic" not in agreement.columns:
        return agreement.clear()
    return agreement.filter((pl.col("statistic") == "krippendorff_alpha") & pl.col("applicable"))


def alpha_figure(alpha: pl.DataFrame, *, label: str, tentative_line: bool = False) -> go.Figure:
    """Alpha per item (y) with its CI as whiskers; ``alpha``: rows of ``alpha_rows`` (columns
    item, estimate, ci_low, ci_high), ``label``: the x axis's title."""
    figure = px.scatter(
        alpha.select("item", "estimate", "ci_low", "ci_high").to_pandas(),
        x="estimate",
        y="item",
        error_x=(alpha["ci_high"] - alpha["estimate"]).to_list(),
        error_x_minus=(alpha["estimate"] - alpha["ci_low"]).to_list(),
        labels={"estimate": label, "item": ""},
    )
    figure.update_layout(
        height=max(200, 50 * alpha.height), margin={"l": 0, "r": 0, "t": 10, "b": 0}
    )
    if tentative_line:
        figure.add_vline(x=TENTATIVE_ALPHA, line_dash="dot", line_color="#888")
    return figure
