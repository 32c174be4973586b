"""Rate: one case at a time, its answers under neutral labels, every item answered by keyboard.

The sheet (``pages/components/rating_sheet``) lists the case's keyed fields (each item for
Response A, then for Response B, ..., then the case-level items such as "which is better"): a
digit picks an option of the active field and moves on, a letter picks a choice (A, B, T for
tie), Backspace steps back, Enter submits. The keys are handled in the browser, so a case costs
one server round trip: its submission. Everything the browser receives is the case, the
answers' text (rendered safely: no raw HTML, images or links), the neutral labels and the item
wording; never an arm, a model, an author or an answer's id. Time on task is measured on the
server, from the moment the case is shown to the submission. The next case comes from the
rater's assignment row.
"""

from __future__ import annotations

import json
import time

import streamlit as st

from pages.components.handover import store_and_caller
from pages.components.rating_sheet import (
    keyed_fields,
    rating_sheet,
    sheet_data,
    show_case,
    submitted,
    typed_fields,
)
from study.access import allowed
from study.errors import ConflictError, StudyError, ValidationError
from study.services import instruments, rating, studies

store, caller = store_and_caller()

st.title("Rate")

mine = [
    row
    for row in studies.list_studies(store, caller).iter_rows(named=True)
    if row["status"] == "rating" and allowed(store, caller, "rate", study=row["id"])
]
if not mine:
    st.info(
        "You have no study open for rating. When a coordinator adds you to a study and opens "
        "rating, your cases appear here."
    )
    st.stop()
names = {row["id"]: row["name"] for row in mine}
study_id = (
    st.selectbox("Study", list(names), format_func=names.__getitem__, key="rate_study")
    if len(names) > 1
    else next(iter(names))
)

# The sheet's static parts, read once per full run: a fragment rerun (a submission) touches
# the database only to store the rating and fetch the next case.
items = [
    json.loads(definition)
    for definition in instruments.study_items(store, caller, study_id).get_column("definition")
]
KEYED = [item for item in items if item["type"] != "free_text"]
TYPED = [item for item in items if item["type"] == "free_text"]
KEYS_HELP = (
    "Keys: digits pick an option, A / B / T pick a response or a tie, Backspace goes back, "
    "Enter submits (Ctrl+Enter inside a text box)."
)


def fields_of(view: dict) -> list[tuple[dict, str | None]]:
    return keyed_fields(view, KEYED)


def texts_of(view: dict) -> list[tuple[dict, str | None]]:
    return typed_fields(view, TYPED)


def sheet_state(view: dict) -> dict:
    """This showing of the assignment, kept on the server per session: when it was shown (for
    the estimate of the time left; time on task is kept with the assignment, by
    ``mark_presented``), the sheet's token, and the server's refusals."""
    key = f"sheet-{view['assignment']}"
    if key not in st.session_state:
        if not view["done"]:
            # time on task runs on the server from the case's first showing, kept with the
            # assignment: a reload or another device does not restart it
            rating.mark_presented(store, caller, study_id, view["assignment"])
        shows = st.session_state["rate_shows"] = st.session_state.get("rate_shows", 0) + 1
        st.session_state[key] = {
            "shown_at": time.monotonic(),
            "token": f"{view['assignment']}-{shows}",
            "attempt": 0,
            "problems": {},
        }
    return st.session_state[key]


def submission(view: dict, payload: dict) -> dict:
    """The sheet's payload as ``rating.submit_rating`` takes it: item -> value for the case,
    item -> {label: value} per response."""
    picked = payload.get("values") or {}
    typed = payload.get("texts") or {}
    values: dict = {}

    def put(item: dict, label: str | None, value) -> None:
        if "criterion" in item:
            values.setdefault(item["key"], {}).setdefault(label, {})[item["criterion"]] = value
        elif label is None:
            values[item["key"]] = value
        else:
            values.setdefault(item["key"], {})[label] = value

    for n, (item, label) in enumerate(fields_of(view)):
        value = picked.get(str(n))
        if value is not None:
            put(item, label, value)
    for n, (item, label) in enumerate(texts_of(view)):
        text = str(typed.get(str(n)) or "").strip()
        if text:
            put(item, label, text)
    return values


def on_submit(view: dict) -> None:
    """Store the sheet (a first submit, or a revision of a rated case); on a refusal, hand the
    reasons back to the sheet next to their fields. A payload for another sheet (a stale
    tab, a case skipped meanwhile) is ignored."""
    payload = submitted()
    key = f"sheet-{view['assignment']}"
    state = st.session_state.get(key)
    if payload is None or state is None or payload.get("token") != state["token"]:
        return
    seconds = time.monotonic() - state["shown_at"]  # for the estimate of the time left only
    fields = fields_of(view)
    texts = texts_of(view)
    try:
        rating.submit_rating(
            store,
            caller,
            study_id,
            view["assignment"],
            # no seconds: a first submission is timed from the stored first showing, and a
            # revision records no time on task (it would count twice in the time per case)
            submission(view, payload),
            revise=view["done"],
        )
    except ValidationError as error:
        by_item = {p.column: p.reason for p in error.problems}
        picked = payload.get("values") or {}
        # a reason names an item; it goes next to that item's fields left empty, or next to
        # all of its fields when the value given is what is wrong
        problems = {}
        for n, (item, _) in enumerate(fields):
            if item["key"] in by_item:
                empty = [
                    m
                    for m, (other, _) in enumerate(fields)
                    if other["key"] == item["key"] and picked.get(str(m)) is None
                ]
                if not empty or n in empty:
                    problems[str(n)] = by_item[item["key"]]
        problems |= {
            f"text-{n}": by_item[item["key"]]
            for n, (item, _) in enumerate(texts)
            if item["key"] in by_item
        }
        state["problems"] = problems or {"sheet": str(error)}
        state["attempt"] += 1
        return
    except ConflictError:
        # stored already (Enter in another tab): the case is done, move on
        st.session_state["rate_flash"] = "This case was already saved."
    except StudyError as error:
        state["problems"] = {"sheet": str(error)}
        state["attempt"] += 1
        return
    else:
        if not view["done"]:  # a revision is no case done: it would skew the time left
            st.session_state.setdefault("rate_durations", []).append(seconds)
        st.session_state["rate_flash"] = "Saved."
    del st.session_state[key]
    st.session_state.pop("rate_revising", None)


def cancel_revision(key: str) -> None:
    """Leave a rated case as it is and go back to the queue."""
    st.session_state.pop(key, None)
    st.session_state.pop("rate_revising", None)


def mark(view: dict, verb: str) -> None:
    """Flag or skip the case with the reason typed."""
    reason = st.session_state.get(f"reason-{view['assignment']}", "")
    call = rating.flag_case if verb == "flag" else rating.skip_case
    try:
        call(store, caller, study_id, view["assignment"], reason)
    except StudyError as error:
        st.session_state["rate_flash_error"] = str(error)
        return
    st.session_state["rate_flash"] = "Flagged." if verb == "flag" else "Skipped."
    if verb == "skip":
        st.session_state.pop(f"sheet-{view['assignment']}", None)


def progress(view: dict) -> None:
    position = view["total"] - view["remaining"] + 1
    durations = st.session_state.get("rate_durations", [])
    left = ""
    if durations and view["remaining"]:
        per_case = sorted(durations)[len(durations) // 2]
        left = f" · about {max(1, round(per_case * view['remaining'] / 60))} min left"
    st.progress(
        min(1.0, (view["total"] - view["remaining"]) / max(view["total"], 1)),
        text=(
            f"Revising a rated case ({view['shown_order']} in your queue)"
            if view["done"]
            else f"Case {position} of {view['total']}{left}"
        ),
    )


@st.fragment
def panel() -> None:
    if flash := st.session_state.pop("rate_flash", None):
        st.toast(flash, icon=":material/check:")
    if problem := st.session_state.pop("rate_flash_error", None):
        st.error(problem)
    revising = st.session_state.get("rate_revising")
    try:
        view = (
            rating.assignment_view(store, caller, study_id, revising)
            if revising
            else rating.next_assignment(store, caller, study_id)
        )
    except StudyError as error:
        st.error(str(error))
        return
    if view is None:
        standing = rating.rater_status(store, caller, study_id)
        if standing["phase"] == "waiting" and standing["waiting_for"] == "coordinator":
            st.info(
                "You have finished the calibration cases, and your answers did not reach the "
                "study's agreement threshold yet. The coordinator will let you try again or "
                "open live rating for you."
            )
        elif standing["phase"] == "waiting":
            when = standing.get("next_repeat_at")
            st.info(
                "Your next cases open later"
                + (f", from {when:%Y-%m-%d %H:%M} UTC" if when else "")
                + ". Thank you!"
            )
        else:
            st.success("You have rated every case assigned to you in this study. Thank you!")
        return
    state = sheet_state(view)
    progress(view)
    show_case(view)

    st.subheader("Your rating", anchor=False)
    fields = fields_of(view)
    texts = texts_of(view)
    rating_sheet(
        sheet_data(
            view,
            fields,
            texts,
            token=state["token"],
            attempt=state["attempt"],
            revising=view["done"],
            problems=state["problems"],
            submit_label="Save revision" if view["done"] else "Submit",
            keys_help=KEYS_HELP
            + (" Y / N: a criterion met / not met." if view.get("rubric_items") else ""),
        ),
        lambda: on_submit(view),
    )

    if view["done"]:
        st.button(
            "Cancel the revision",
            key="rate-cancel",
            on_click=cancel_revision,
            args=(f"sheet-{view['assignment']}",),
        )
    else:
        with st.expander("Flag or skip this case"):
            st.text_input("Reason", key=f"reason-{view['assignment']}")
            flag_column, skip_column = st.columns(2)
            flag_column.button(
                "Flag case", key="flag-case", on_click=mark, args=(view, "flag"), width="stretch"
            )
            skip_column.button(
                "Skip case", key="skip-case", on_click=mark, args=(view, "skip"), width="stretch"
            )


panel()


def revise() -> None:
    st.session_state["rate_revising"] = st.session_state["rate_rated"][
        st.session_state["rate_revise_number"] - 1
    ]


with st.expander("Revise a case you have rated"):
    queue = rating.rater_queue(store, caller, study_id)
    rated = queue.filter(queue.get_column("done")).get_column("assignment").to_list()
    st.session_state["rate_rated"] = rated
    if not rated:
        st.caption("None yet.")
    else:
        st.number_input(
            f"Rated case (1 to {len(rated)}, in your queue's order)",
            min_value=1,
            max_value=len(rated),
            value=len(rated),
            key="rate_revise_number",
        )
        st.button("Revise this case", key="rate-revise", on_click=revise)
