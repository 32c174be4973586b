"""Study overview: which study, where it stands, what it compares and with which instrument.

Reads only, through ``study.services``; the store and the caller come from ``app.py`` (session
state). A rater sees the study and their own progress; coordinators and statisticians see the
protocol, progress by rater and the arms.
"""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from pages.components.handover import store_and_caller
from pages.components.progress import show_rater_progress
from study.access import allowed
from study.errors import NotFoundError, PermissionDenied
from study.rendering import markdown_code, markdown_text
from study.services import (
    content,
    design,
    exports,
    instrument_library,
    monitoring,
    rating,
    rating_imports,
    studies,
)

store, caller = store_and_caller()

st.title("Study overview")

try:
    visible = studies.list_studies(store, caller)
except PermissionDenied:
    st.info("You have no role in any study yet: ask the study's coordinator to add you.")
    st.stop()
if visible.height == 0:
    st.info(
        "There is no study yet. Create one with `python -m study init --study NAME`, or build "
        "the synthetic demo with `python -m study demo` (or start the app with "
        "CLINVAL_DEMO_ON_START=1 on an empty database)."
    )
    st.stop()

names = dict(zip(visible["id"], visible["name"], strict=True))
study_id = st.selectbox(
    "Study",
    options=list(names),
    format_func=lambda sid: f"{names[sid]} ({sid})",
    key="overview_study",
)
study = studies.get_study(store, caller, study_id)

if study["synthetic"]:
    st.warning(
        "**Synthetic demo data.** Cases, answers and ratings in this study were generated to "
        "show how Clinval works. They are not clinical evidence.",
        icon=":material/science:",
    )

st.header(markdown_text(study["name"]), anchor=False)
origin = rating_imports.ratings_origin(store, caller, study_id)["origin"]
if origin in ("imported", "mixed"):
    st.info(
        "**Ratings collected elsewhere.** "
        + ("All" if origin == "imported" else "Some")
        + " of this study's ratings were imported from files, not collected blind in Clinval: "
        "how they were blinded and assigned is as the source study reports it.",
        icon=":material/upload_file:",
    )
badges = [f":blue-badge[:material/flag: {study['status'].capitalize()}]"]
if study["synthetic"]:
    badges.append(":orange-badge[:material/science: Synthetic demo data]")
badges.append(f"study id `{study_id}`")
st.markdown(" ".join(badges))
if study.get("description"):
    st.caption(study["description"])

if not allowed(store, caller, "monitor_study", study=study_id):
    # a rater: their own queue, nothing of other raters, arms or the protocol
    queue = rating.rater_queue(store, caller, study_id)
    done = int(queue.get_column("done").sum()) if queue.height else 0
    st.subheader("Your assignments", anchor=False)
    if queue.height:
        share = done / queue.height
        st.progress(share, text=f"{done:,} of {queue.height:,} done ({share:.0%})")
    else:
        st.caption("You have no assignments in this study yet.")
    st.stop()

status = monitoring.study_status(store, caller, study_id, per_arm=False)

# --- protocol --------------------------------------------------------------------------------

st.subheader("Protocol", anchor=False)
try:
    protocol = design.get_protocol(store, caller, study_id)
except NotFoundError:
    protocol = None
    st.info("The protocol is not locked yet: the study is still being designed.")

items = instrument_library.study_items(store, caller, study_id)
attached = ", ".join(
    f"{key} {version}"
    for key, version in items.select("instrument_key", "instrument_version")
    .unique(maintain_order=True)
    .iter_rows()
)


def _shown(value: object) -> str:
    return "—" if value is None or value == "" else str(value)


endpoint = protocol["primary_endpoint"] if protocol else {}
test_arm = protocol["test_arm"] if protocol else None
reference_arm = protocol["reference_arm"] if protocol else None
margin = endpoint.get("margin")
# the direction the results use: the protocol's, else the item's declaration (study.protocol)
planned = protocol["plan"].primary if protocol else None
direction = {"higher": "higher is better", "lower": "lower is better"}.get(
    str(planned.direction if planned else None), ""
)

instrument_box, endpoint_box, comparison_box, margin_box = st.columns(4)
with instrument_box.container(border=True):
    # plain text that wraps: a metric's value is cut to its box ("ayers_har…")
    st.caption("Instrument")
    st.text(attached or "none attached")
endpoint_box.metric(
    "Primary endpoint",
    _shown(endpoint.get("item")),
    border=True,
    height="stretch",
    help="The item the primary non-inferiority test is run on, as locked in the protocol.",
)
# The reference arm goes on the neutral delta line: "test vs reference" on one line was cut off
# in a quarter-width box for ordinary arm names.
comparison_box.metric(
    "Test arm",
    test_arm or "—",
    delta=f"vs {reference_arm}" if test_arm and reference_arm else None,
    delta_color="off",
    delta_arrow="off",
    border=True,
    height="stretch",
    help="Difference = test arm minus reference arm.",
)
margin_box.metric(
    "Non-inferiority margin",
    _shown(margin),
    border=True,
    height="stretch",
    help="The largest loss against the reference that still counts as non-inferior, "
    "in the item's units.",
)
if endpoint:
    details = [
        f"{markdown_text(endpoint['name'])} (item {markdown_code(endpoint.get('item'))})"
        if endpoint.get("name")
        else "",
        endpoint.get("estimand", ""),
        direction,
        f"one-sided α = {endpoint['alpha']}" if endpoint.get("alpha") is not None else "",
        f"method: {endpoint['method']}" if endpoint.get("method") else "",
    ]
    st.caption("Primary endpoint: " + "; ".join(d for d in details if d))
if protocol:
    st.caption(
        f"Protocol version {protocol['version']}, locked {protocol['locked_at']:%Y-%m-%d %H:%M} "
        f"UTC by {protocol['locked_by']}; SHA-256 `{protocol['content_hash']}`"
    )
    with st.expander("Locked protocol (JSON)"):
        st.json(protocol["content"])

head = exports.audit_head(store, caller, study_id)
st.caption(
    f"Audit trail: {head['seq']:,} events. Record its head hash outside Clinval (a ticket, an "
    "e-mail, the study file); `python -m study audit verify --expect HASH` later shows whether "
    "the trail still holds it."
)
st.code(head["hash"], language=None)

# --- counts and progress ---------------------------------------------------------------------

st.subheader("Progress", anchor=False)
cols = st.columns(6)
for column, (label, key) in zip(
    cols,
    [
        ("Cases", "cases"),
        ("Arms", "arms"),
        ("Answers", "answers"),
        ("Raters", "raters"),
        ("Assignments", "assignments"),
        ("Ratings", "ratings_submitted"),
    ],
    strict=True,
):
    column.metric(label, f"{status[key]:,}")

done, total = status["done"], status["assignments"]
share = done / total if total else 0.0
st.progress(share, text=f"{done:,} of {total:,} assignments done ({share:.0%})")

per_specialty = monitoring.cases_by_specialty(store, caller, study_id)
per_rater = monitoring.rater_progress(store, caller, study_id)

chart_left, chart_right = st.columns(2)
with chart_left:
    st.markdown("**Cases per specialty**")
    if per_specialty.height:
        figure = px.bar(
            per_specialty.to_pandas(),
            x="cases",
            y="specialty",
            orientation="h",
            labels={"cases": "Cases", "specialty": ""},
        )
        figure.update_layout(
            yaxis={"categoryorder": "total ascending"},
            height=max(240, 28 * per_specialty.height),
            margin={"l": 0, "r": 0, "t": 10, "b": 0},
        )
        st.plotly_chart(figure, key="cases_per_specialty")
    else:
        st.caption("No cases imported yet.")
with chart_right:
    st.markdown("**Progress per rater**")
    show_rater_progress(per_rater, key="progress_per_rater")

# --- arms and instrument ---------------------------------------------------------------------

st.subheader("Arms", anchor=False)
st.dataframe(
    monitoring.arm_summary(store, caller, study_id),
    hide_index=True,
    column_config={
        "arm_id": "Arm",
        "kind": "Kind",
        "label": "Label",
        "model_name": "Model",
        "model_version": "Model version",
        "author_role": "Author role",
        "answers": st.column_config.NumberColumn("Answers"),
        "ratings": st.column_config.NumberColumn("Ratings"),
    },
)

unknown = content.unknown_provenance(store, caller, study_id)
if unknown.height:
    st.subheader("Not recorded by the sources", anchor=False)
    st.caption(
        "Provenance the imported files gave as *not recorded*: stored as unknown, never "
        "invented. Say so wherever the results are reported."
    )
    st.dataframe(
        unknown.select("arm_id", "field", "level", "answers", "consequence"),
        hide_index=True,
        column_config={
            "arm_id": "Arm",
            "field": "Field",
            "level": "Of the arm or its answers",
            "answers": st.column_config.NumberColumn("Answers concerned"),
            "consequence": st.column_config.TextColumn("What it means", width="large"),
        },
        key="unknown_provenance",
    )

st.subheader("Instrument items", anchor=False)
if items.height:
    st.dataframe(
        items.select(
            "instrument_key",
            "item_key",
            "type",
            "level",
            "direction",
            "scope",
            "required",
            "prompt",
        ),
        hide_index=True,
        column_config={
            "instrument_key": "Instrument",
            "item_key": "Item",
            "type": "Type",
            "level": "Level",
            "direction": "Direction",
            "scope": "Scope",
            "required": st.column_config.CheckboxColumn("Required"),
            "prompt": st.column_config.TextColumn("Prompt", width="large"),
        },
    )
else:
    st.caption("No instrument attached yet.")
