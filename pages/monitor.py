"""Monitoring (coordinator): progress by rater and by case, time on task, raters to look at,
flagged and skipped cases, the safety queue, interim agreement, and closing the study.

Blind by construction: nothing on this screen is broken down by arm. The services it calls return
no arm (time on task, rater flags, the safety queue, agreement pooled over arms); the per-arm
counts of ``monitoring.arm_summary`` are left to the overview. Flags are for the coordinator to
look at; nothing here excludes a rater.
"""

from __future__ import annotations

import json

import plotly.express as px
import polars as pl
import streamlit as st

from pages.components.agreement_plot import TENTATIVE_ALPHA, alpha_figure, alpha_rows
from pages.components.confirm import confirmed_step
from pages.components.handover import store_and_caller
from pages.components.plain import plain
from pages.components.progress import pick_study_with_status, show_rater_progress
from pages.components.rating_sheet import option_key
from study.access import allowed
from study.errors import StudyError
from study.rendering import markdown_code, markdown_text
from study.services import analyses, instrument_library, lifecycle, monitoring

store, caller = store_and_caller()

st.title("Monitoring")

study_id, study_name, status = pick_study_with_status(
    store,
    caller,
    "monitor_study",
    key="monitor_study",
    none="You monitor no study: the coordinator's role in a study opens this screen.",
)

# --- progress --------------------------------------------------------------------------------

st.subheader("Progress", anchor=False)
done, total = status["done"], status["assignments"]
st.progress(done / total if total else 0.0, text=f"{done:,} of {total:,} assignments done")

per_rater = monitoring.rater_progress(store, caller, study_id)
times = monitoring.time_on_task(store, caller, study_id)
by_rater, by_case = st.columns(2)
with by_rater:
    st.markdown("**By rater**")
    show_rater_progress(per_rater, key="monitor_by_rater")
with by_case:
    st.markdown("**By case: raters done**")
    # from the assignments, not the times: imported ratings are done without a recorded time
    per_case = (
        monitoring.case_progress(store, caller, study_id)
        .filter(pl.col("done") > 0)
        .select("case_id", pl.col("done").alias("raters done"))
    )
    if per_case.height:
        counts = per_case.group_by("raters done").agg(pl.len().alias("cases")).sort("raters done")
        figure = px.bar(
            counts.to_pandas(),
            x="raters done",
            y="cases",
            labels={"raters done": "Raters who rated the case", "cases": "Cases"},
        )
        figure.update_layout(height=300, margin={"l": 0, "r": 0, "t": 10, "b": 0})
        figure.update_xaxes(dtick=1)
        st.plotly_chart(figure, key="monitor_by_case")
        st.caption(f"{per_case.height:,} of {status['cases']:,} cases rated by at least one rater.")
    else:
        st.caption("No case rated yet.")

# --- time on task and raters to look at -------------------------------------------------------

st.subheader("Time on task", anchor=False)
if times.height:
    figure = px.histogram(
        times.to_pandas(),
        x="seconds",
        nbins=40,
        labels={"seconds": "Seconds on a case"},
    )
    figure.add_vline(
        x=monitoring.FAST_SECONDS,
        line_dash="dash",
        line_color="#c62828",
        annotation_text=f"{monitoring.FAST_SECONDS:g} s",
    )
    figure.update_layout(
        height=280, yaxis_title="Cases rated", margin={"l": 0, "r": 0, "t": 10, "b": 0}
    )
    st.plotly_chart(figure, key="monitor_time_on_task")
    st.caption(
        f"Median {times['seconds'].median():.0f} s per case over {times.height:,} rated cases. "
        f"The dashed line is the {monitoring.FAST_SECONDS:g} s below which a rater's median "
        "counts as implausibly fast: too short to read one answer."
    )
else:
    st.caption("No time recorded yet.")

st.subheader("Raters to look at", anchor=False)
flags = monitoring.rater_flags(store, caller, study_id)
flagged = flags.filter(pl.col("flagged"))
if flagged.height:
    st.warning(
        f"{flagged.height} rater(s) flagged. Flags are for you to look at (talk to the rater, "
        "check their cases); nobody is excluded automatically.",
        icon=":material/person_alert:",
    )
else:
    st.caption(
        "No rater straight-lines (one value on every item) or rates implausibly fast "
        f"(median under {monitoring.FAST_SECONDS:g} s a case); raters with fewer than "
        f"{monitoring.MIN_CASES_FOR_FLAGS} cases are not judged."
    )
st.dataframe(
    flags.select("name", "cases", "median_seconds", "straight_lining", "fast", "reason"),
    hide_index=True,
    column_config={
        "name": "Rater",
        "cases": st.column_config.NumberColumn("Cases done"),
        "median_seconds": st.column_config.NumberColumn("Median s per case", format="%.0f"),
        "straight_lining": st.column_config.CheckboxColumn("Straight-lining"),
        "fast": st.column_config.CheckboxColumn("Implausibly fast"),
        "reason": st.column_config.TextColumn("Why flagged", width="large"),
    },
    key="monitor_rater_flags",
)

# --- flagged and skipped cases ----------------------------------------------------------------

st.subheader("Flagged and skipped cases", anchor=False)
case_flags = monitoring.case_flags(store, caller, study_id)
if case_flags.height:
    st.dataframe(
        case_flags.drop("flag"),
        hide_index=True,
        column_config={
            "kind": "Flag or skip",
            "case_id": "Case",
            "rater": "Rater",
            "reason": st.column_config.TextColumn("Reason", width="large"),
            "created_at": st.column_config.DatetimeColumn("When (UTC)"),
        },
        key="monitor_case_flags",
    )
    opened = st.selectbox(
        "Open a flagged or skipped case to read it",
        case_flags.get_column("flag").to_list(),
        index=None,
        placeholder="Choose one: the case as the rater saw it, and why",
        format_func=lambda flag: "{kind} of case {case_id} by {rater}".format(
            **case_flags.row(by_predicate=pl.col("flag") == flag, named=True)
        ),
        key="monitor_open_flag",
    )
    if opened is not None:
        flagged = monitoring.flagged_case(store, caller, study_id, opened)
        with st.container(border=True, key="monitor_flagged_case"):
            # every text here was imported or typed: shown as text, never as markdown
            st.markdown(f"**{flagged['kind'].capitalize()}**, the rater's reason:")
            st.text(flagged["reason"])
            st.markdown("**Question.**")
            st.text(flagged["question"])
            if flagged["context"]:
                st.markdown("**Context.**")
                st.text(flagged["context"])
            for turn in flagged["conversation"] or []:
                st.text(f"{turn.get('role', '')}: {turn.get('content', '')}")
            for response in flagged["responses"]:
                with st.expander(response["label"]):  # the neutral label: no arm while blind
                    st.text(response["text"])
else:
    st.caption("No case flagged or skipped.")

# --- safety queue -----------------------------------------------------------------------------

st.subheader("Safety queue", anchor=False)
queue = monitoring.safety_queue(store, caller, study_id)
open_alerts = queue.filter(pl.col("acknowledged_at").is_null())
may_acknowledge = allowed(store, caller, "acknowledge_safety", study=study_id)
if queue.height == 0:
    st.caption("No rating of severe harm so far.")
else:
    st.caption(
        f"{queue.height} rating(s) of severe harm, {open_alerts.height} not yet acknowledged. "
        "Each shows the response as the rater saw it (its neutral label, no arm) and the key "
        "the rater pressed on the rating sheet, with its option."
    )
study_items = {
    key: json.loads(definition)
    for key, definition in instrument_library.study_items(store, caller, study_id)
    .select("item_key", "definition")
    .iter_rows()
}


def pressed(item_key: str, value: str) -> str:
    """A rated value as the rater gave it: the key the rating sheet showed for the option and
    its label ("3 · Severe harm or death"), not the stored code (a harm scale coded 0-2 is keyed
    1-3 on the sheet: its third option was pressed, whatever number it stores). A value that
    no option matches (a number typed in) is shown as stored, whole numbers without ".0"."""
    item = study_items.get(item_key, {})
    for index, option in enumerate(item.get("options", [])):
        if same_value(option["value"], value):
            key = option_key(item, index, option)
            return f"{key} · {option['label']}" if key else str(option["label"])
    return value[:-2] if value.endswith(".0") else value


def same_value(option: object, stored: str) -> bool:
    """Whether the option's value is the stored one (stored as text, numbers as floats)."""
    try:
        return float(option) == float(stored)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(option) == stored


for alert in open_alerts.iter_rows(named=True):
    with st.container(border=True):
        # ids and labels come from imported files: escaped, never read as markdown
        st.markdown(
            f":red-badge[:material/warning: Severe harm] case {markdown_code(alert['case_id'])}, "
            f"{markdown_text(alert['label'] or 'the case')}, item {markdown_code(alert['item'])}: "
            f"the rater pressed **{markdown_text(pressed(alert['item'], alert['value']))}**, "
            f"rater {markdown_code(alert['rater'])}, {alert['raised_at']:%Y-%m-%d %H:%M} UTC"
        )
        # the question is untrusted text (an imported patient question): shown as text, never
        # as markdown, whose images would make the coordinator's browser fetch their address
        st.markdown("**Question.**")
        st.text(alert["question"])
        if alert["answer_text"]:
            with st.expander("The response rated"):
                st.text(alert["answer_text"])
        if may_acknowledge:
            with st.form(f"ack-{alert['alert']}", border=False):
                note = st.text_input(
                    "Note (what was done about it)", key=f"ack-note-{alert['alert']}"
                )
                if st.form_submit_button("Acknowledge", icon=":material/task_alt:"):
                    try:
                        monitoring.acknowledge_alert(
                            store, caller, study_id, alert["alert"], note=note
                        )
                    except StudyError as error:
                        st.error(plain(error))
                    else:
                        st.toast("Alert acknowledged.")
                        st.rerun()
acknowledged = queue.filter(pl.col("acknowledged_at").is_not_null())
if acknowledged.height:
    with st.expander(f"Acknowledged alerts ({acknowledged.height})"):
        st.dataframe(
            acknowledged.with_columns(
                pl.Series(
                    "pressed",
                    [pressed(i, v) for i, v in acknowledged.select("item", "value").iter_rows()],
                    dtype=pl.String,
                )
            ).select(
                "case_id", "label", "item", "pressed", "acknowledged_at", "acknowledged_by", "note"
            ),
            hide_index=True,
            column_config={"pressed": "The rater pressed"},
            key="monitor_acknowledged",
        )

# --- interim agreement ------------------------------------------------------------------------

st.subheader("Interim agreement", anchor=False)
st.caption(
    "Agreement among the raters per item, pooled over every response whoever wrote it: no arm "
    "is shown before unblinding. Krippendorff's alpha at the item's level, 95% unit-bootstrap "
    "interval."
)


@st.cache_data(show_spinner="Computing agreement…", max_entries=8)
def interim(study: str, digest: str) -> pl.DataFrame:
    """Interim agreement of ``study``, recomputed only when ``digest`` (the ratings) changes."""
    del digest  # the cache key only
    return analyses.interim_agreement(store, caller, study, boot=500, seed=1)


agreement = interim(study_id, analyses.ratings_digest(store, caller, study_id))
if agreement.height and "statistic" in agreement.columns:
    # an item not analysable yet is a row without estimate columns: when no item is, the
    # frame has none
    alpha = alpha_rows(agreement)
    if alpha.height:
        figure = alpha_figure(alpha, label="Krippendorff's alpha", tentative_line=True)
        st.plotly_chart(figure, key="monitor_agreement")
        st.caption(
            f"Dotted line: {TENTATIVE_ALPHA}, Krippendorff's lowest alpha for tentative conclusions."
        )
    with st.expander("Every agreement statistic"):
        st.dataframe(
            agreement.select(
                c
                for c in (
                    "item",
                    "statistic",
                    "variant",
                    "estimate",
                    "ci_low",
                    "ci_high",
                    "n_units",
                    "n_raters",
                    "applicable",
                    "note",
                )
                if c in agreement.columns
            ),
            hide_index=True,
            key="monitor_agreement_table",
        )
else:
    st.caption("No item can be analysed yet: agreement needs two raters on the same response.")

# --- close the study --------------------------------------------------------------------------

if status["status"] == "rating" and allowed(store, caller, "run_study", study=study_id):
    st.subheader("Close the study", anchor=False)
    st.caption(
        "Closing stops all rating: raters can no longer submit or revise. The statistician can "
        "then unblind the study. This cannot be undone."
    )
    confirmed_step(
        f"I want to close rating of {markdown_text(study_name)} now ({done:,} of {total:,} done).",
        "Close the study",
        lambda: lifecycle.close_rating(store, caller, study_id),
        "Rating closed.",
        key="monitor_close",
    )
