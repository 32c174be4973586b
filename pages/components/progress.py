"""Where a study stands, drawn the same on every screen that shows it: the study picked with its
status badge, and the assignments done and to do per rater (screen code, like the pages)."""

from __future__ import annotations

import plotly.express as px
import plotly.graph_objects as go
import polars as pl
import streamlit as st

from pages.components.study_picker import pick_study
from study.access import Caller
from study.rendering import markdown_code
from study.services import monitoring
from study.store import Store

# a rater's assignments by state, in this order: green for done, grey for still to do
DONE_COLOURS = {"done": "#2e7d32", "to do": "#cfd8dc"}


def pick_study_with_status(
    store: Store, caller: Caller, permission: str, *, key: str, none: str
) -> tuple[str, str, dict]:
    """The chosen study's (id, name, status) as ``pick_study`` picks it (``permission``, ``key``,
    ``none`` as it takes them), with its status badge and id shown under the picker. ``status``
    is ``monitoring.study_status`` without the per-arm counts, so a blind screen can use it."""
    study_id, study_name = pick_study(store, caller, permission, key=key, none=none)
    status = monitoring.study_status(store, caller, study_id, per_arm=False)
    st.markdown(
        f":blue-badge[:material/flag: {status['status'].capitalize()}] study id "
        + markdown_code(study_id)
    )
    return study_id, study_name, status


def rater_progress_figure(per_rater: pl.DataFrame) -> go.Figure:
    """A horizontal bar per rater, split into assignments done and to do.

    ``per_rater``: one row per rater with columns ``name``, ``done`` and ``to_do`` (counts), as
    ``monitoring.rater_progress`` returns it; at least one row. Raters are listed by name from
    the top; the height grows by 28 px a rater (at least 240 px).
    """
    long = per_rater.unpivot(
        index="name", on=["done", "to_do"], variable_name="state", value_name="assignments"
    ).with_columns(pl.col("state").replace({"to_do": "to do"}))
    figure = px.bar(
        long.to_pandas(),
        x="assignments",
        y="name",
        color="state",
        orientation="h",
        category_orders={"state": list(DONE_COLOURS)},
        color_discrete_map=DONE_COLOURS,
        labels={"assignments": "Assignments", "name": "", "state": ""},
    )
    figure.update_layout(
        height=max(240, 28 * per_rater.height),
        yaxis={"categoryorder": "category descending"},
        margin={"l": 0, "r": 0, "t": 10, "b": 0},
        legend={"orientation": "h", "y": -0.3},
    )
    return figure


def show_rater_progress(per_rater: pl.DataFrame, *, key: str) -> None:
    """Draw ``rater_progress_figure(per_rater)`` under the widget key ``key``, or say that there
    are no assignments yet when ``per_rater`` has no row."""
    if per_rater.height:
        st.plotly_chart(rater_progress_figure(per_rater), key=key)
    else:
        st.caption("No assignments yet: they are made when the protocol is locked.")
