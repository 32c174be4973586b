"""Analysis (statistician): the audited unblinding step, then every result of the locked plan.

Before unblinding the screen shows only the plan (what will be tested, and how) and where the
study stands; the results by arm exist on this screen only once ``lifecycle.unblind`` has been
recorded in the audit trail. Results come from ``analyses.study_results`` (the locked plan, the
``analysis`` library) and are cached by ``analyses.ratings_digest``: recomputed only when the
ratings, the status or the protocol change.
"""

from __future__ import annotations

import plotly.express as px
import plotly.graph_objects as go
import polars as pl
import streamlit as st

from pages.components.agreement_plot import alpha_figure, alpha_rows
from pages.components.confirm import confirmed_step
from pages.components.handover import store_and_caller
from pages.components.plain import plain
from pages.components.progress import pick_study_with_status
from pages.components.results_cache import study_results
from pages.components.status import status_words
from study.errors import NotFoundError
from study.rendering import markdown_code, markdown_text
from study.services import analyses, design, lifecycle

store, caller = store_and_caller()

st.title("Analysis")

study_id, study_name, status = pick_study_with_status(
    store,
    caller,
    "analyze",
    key="analyze_study",
    none="You analyse no study: the statistician's role in a study opens this screen.",
)

try:
    protocol = design.get_protocol(store, caller, study_id)
except NotFoundError:
    st.info("The protocol is not locked yet: there is no analysis plan to run.")
    st.stop()
st.subheader("The locked plan", anchor=False)
planned = protocol["plan"].primary
st.caption(
    f"Protocol version {protocol['version']}, SHA-256 `{protocol['content_hash']}`. "
    + (
        f"Primary item `{planned.item}`, margin {planned.margin if planned.tested else '—'}, "
        f"{planned.direction or '(direction not stated)'} is better, one-sided α = "
        f"{planned.alpha}, method {planned.method or 'default'}."
        if planned
        else "The plan names no primary endpoint."
    )
)

# --- the audited unblinding step -------------------------------------------------------------

if status["status"] != "unblinded":
    st.subheader("Unblinding", anchor=False)
    if status["status"] != "closed":
        st.info(
            f"The study is {status_words(status['status'])}: results by arm are shown after the coordinator "
            "closes rating and you unblind it here. Until then, the monitoring screen shows "
            "progress and agreement pooled over arms.",
            icon=":material/lock:",
        )
        st.stop()
    st.markdown(
        "Unblinding reveals which arm wrote each response and the sealed assignment seed. It is "
        "recorded in the audit trail under your name and cannot be undone."
    )
    confirmed_step(
        f"I am the study's statistician and unblind {markdown_text(study_name)} now.",
        "Unblind the study",
        lambda: lifecycle.unblind(store, caller, study_id),
        "Study unblinded; the step is in the audit trail.",
        key="unblind",
    )
    st.stop()


# --- results (unblinded only) ----------------------------------------------------------------


found = study_results(store, caller, study_id, analyses.ratings_digest(store, caller, study_id))
plan = found["plan"]
endpoints = found["results"]


def forest(rows: pl.DataFrame, label: str, margin: float, direction: str, key: str) -> None:
    """A forest plot: one estimate with its interval per row, the margin as a dashed line."""
    if "estimate" not in rows.columns:  # no row could be analysed: the notes say why
        return
    usable = rows.filter(pl.col("applicable") & pl.col("estimate").is_not_null())
    if usable.height == 0:
        return
    bound = -margin if direction != "lower" else margin
    figure = go.Figure(
        go.Scatter(
            x=usable["estimate"].to_list(),
            y=usable[label].to_list(),
            mode="markers",
            marker={"size": 10, "color": "#1565c0"},
            error_x={
                "type": "data",
                "symmetric": False,
                "array": (usable["ci_high"] - usable["estimate"]).to_list(),
                "arrayminus": (usable["estimate"] - usable["ci_low"]).to_list(),
            },
            name="estimate",
        )
    )
    figure.add_vline(x=0, line_color="#777")
    figure.add_vline(
        x=bound,
        line_dash="dash",
        line_color="#c62828",
        annotation_text=f"margin {bound:+g}",
        annotation_position="top",
    )
    figure.update_layout(
        height=max(220, 60 * usable.height + 80),
        xaxis_title=f"Δ = {plan['test']} − {plan['reference']}",
        yaxis={"autorange": "reversed"},
        margin={"l": 0, "r": 0, "t": 30, "b": 0},
        showlegend=False,
    )
    st.plotly_chart(figure, key=key)


st.subheader("Primary result", anchor=False)
primary = endpoints.filter(pl.col("role") == "primary")
if primary.height == 0:
    st.info("The locked plan names no primary endpoint.")
else:
    row = primary.row(0, named=True)
    if row.get("h0"):
        # the analysis library's words, as the report and the bundle state them
        st.markdown(
            f"**H0:** {row['h0'].removeprefix('H0: ')}  \n**H1:** {row['h1'].removeprefix('H1: ')}"
        )
    if row.get("applicable"):
        (st.success if row["shown"] else st.warning)(row["conclusion"])
        st.caption(row.get("method_description") or "")
    else:
        st.error(plain(f"The primary analysis could not be run: {row['note']}"))
same_item = endpoints.filter(
    pl.col("role").is_in(["primary", "sensitivity"]) & pl.col("estimate").is_not_null()
)
if plan["margin"] is not None and same_item.height:
    forest(same_item, "analysis", float(plan["margin"]), plan["direction"], "forest_primary")


def p_text(column: str) -> pl.Expr:
    """A p-value as people read it: two significant digits, "< 0.0001" below that."""
    return (
        pl.col(column)
        .map_elements(
            lambda p: "< 0.0001" if p < 1e-4 else f"{p:.2g}",
            return_dtype=pl.String,
            skip_nulls=True,
        )
        .alias(column)
    )


shown_endpoints = endpoints.with_columns(
    p_text(c) for c in ("p_value", "p_adjusted") if c in endpoints.columns
)
st.dataframe(
    shown_endpoints.select(
        c
        for c in (
            "role",
            "in_plan",
            "analysis",
            "item",
            "method",
            "margin",
            "direction",
            "estimate",
            "ci_low",
            "ci_high",
            "ci_level",
            "p_value",
            "p_adjusted",
            "shown",
            "n_units",
            "n_raters",
            "n_values",
            "note",
        )
        if c in shown_endpoints.columns
    ),
    hide_index=True,
    key="analyze_endpoints",
)

st.subheader("Agreement per item", anchor=False)
agreement = found["agreement"]
if agreement.height and "statistic" in agreement.columns:
    alpha = alpha_rows(agreement)
    if alpha.height:
        figure = alpha_figure(alpha, label="Krippendorff's alpha (95% CI)")
        st.plotly_chart(figure, key="analyze_agreement")
    # a rubric item's rows (HealthBench's agreement) name a pooled "rater" and no n_raters; an
    # item not analysable yet has no estimate columns at all
    shown = ("item", "statistic", "variant", "rater", "estimate", "ci_low", "ci_high", "n_units")
    columns = [c for c in shown if c in agreement.columns]
    usable = agreement.filter(pl.col("applicable"))
    pairs = pl.col("rater_a").is_not_null() if "rater_a" in usable.columns else pl.lit(False)
    per_pair = usable.filter(pairs)
    st.dataframe(
        usable.filter(~pairs).select(*columns, *[c for c in ("n_raters",) if c in usable.columns]),
        hide_index=True,
        key="analyze_agreement_table",
    )
    refused = agreement.filter(~pl.col("item").is_in(usable["item"].implode()))
    for item, note in refused.select("item", "note").unique(maintain_order=True).iter_rows():
        st.caption(f"{markdown_code(item)}: no agreement yet: {markdown_text(note)}")
    # a toggle, not an expander: an expander's table is built and sent on every rerun even when
    # closed, and 300 raters make ~45,000 pairs per item
    if per_pair.height and st.toggle(
        f"Show Cohen's kappa per pair of raters ({per_pair.height:,} rows)",
        key="analyze_show_pairs",
    ):
        st.dataframe(
            per_pair.select(*columns, "rater_a", "rater_b"),
            hide_index=True,
            key="analyze_agreement_pairs",
        )
else:
    st.caption("No item could be analysed for agreement.")

st.subheader("Each item by arm", anchor=False)
distribution = found["distribution"]
if distribution.height:
    figure = px.bar(
        distribution.to_pandas(),
        x="value",
        y="share",
        color="arm",
        barmode="group",
        facet_col="item",
        facet_col_wrap=3,
        labels={"value": "Value", "share": "Share of the arm's ratings", "arm": "Arm"},
    )
    figure.update_xaxes(matches=None, dtick=1)
    # each facet titled by the item's key alone, not plotly's "item=key"
    figure.for_each_annotation(lambda note: note.update(text=note.text.split("=", 1)[-1]))
    figure.update_layout(height=320 * ((distribution["item"].n_unique() + 2) // 3))
    st.plotly_chart(figure, key="analyze_distribution")
with st.expander("Summary statistics per item and arm"):
    st.dataframe(found["summary"], hide_index=True, key="analyze_summary")

pairwise = found["pairwise"]
if pairwise.height and "statistic" in pairwise.columns:
    st.subheader("Pairwise preference", anchor=False)
    wins = pairwise.filter((pl.col("statistic") == "win_rate") & pl.col("applicable"))
    if wins.height:
        figure = px.bar(
            wins.to_pandas(),
            x="estimate",
            y="item",
            color="variant",
            orientation="h",
            text_auto=".0%",
            color_discrete_map={"win": "#2e7d32", "tie": "#b0bec5", "loss": "#c62828"},
            labels={"estimate": "Share of comparisons", "item": "", "variant": ""},
        )
        figure.update_layout(height=220, margin={"l": 0, "r": 0, "t": 10, "b": 0})
        st.plotly_chart(figure, key="analyze_pairwise")
        first = wins.row(0, named=True)
        st.caption(
            f"From the side of {markdown_text(first['competitor'])} against "
            f"{markdown_text(first['opponent'])}."
        )
    st.dataframe(
        pairwise.select(
            c
            for c in (
                *analyses.PAIRWISE_KEYS,
                "estimate",
                "ci_low",
                "ci_high",
                "p_value",
                "n_comparisons",
                "note",
            )
            if c in pairwise.columns
        ),
        hide_index=True,
        key="analyze_pairwise_table",
    )

subgroups = found["subgroups"]
if subgroups.height:
    st.subheader("Subgroups", anchor=False)
    st.caption(
        "The primary comparison within each subgroup (t interval over cases): descriptive, "
        "not part of the locked test; small groups give wide intervals or none."
    )
    shown = subgroups.with_columns(
        label=pl.concat_str([pl.col("subgroup"), pl.col("group")], separator=": ")
    )
    if plan["margin"] is not None:
        forest(shown, "label", float(plan["margin"]), plan["direction"], "forest_subgroups")
    st.dataframe(
        shown.select(
            c
            for c in ("subgroup", "group", "estimate", "ci_low", "ci_high", "n_units", "note")
            if c in shown.columns
        ),
        hide_index=True,
        key="analyze_subgroups",
    )

st.caption(
    f"Computed from protocol version {plan['protocol_version']} (SHA-256 "
    f"`{plan['protocol_hash']}`), bootstrap seed {plan['seed']}; recomputed when the ratings "
    "change."
)
