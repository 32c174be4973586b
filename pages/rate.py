"""Rate: one case at a time, its answers under neutral labels, every item answered by keyboard.

The screen walks the rater through the sheet's fields (each item for Response A, then for
Response B, ..., then the case-level items such as "which is better"): a digit picks an option
of the active field and moves on, a letter picks a choice (A, B, T for tie), Backspace steps back,
Enter submits. Everything the browser receives is the case, the answers' text (rendered safely:
no raw HTML, images or links), the neutral labels and the item wording; never an arm, a model, an
author or an answer's id. Time on task is measured here on the server, from the moment the case
is shown to the submission. The next case comes from the rater's assignment row.
"""

from __future__ import annotations

import json
import time

import streamlit as st

from study.access import allowed
from study.errors import StudyError, ValidationError
from study.rendering import safe_html
from study.services import instruments, rating, studies

store = st.session_state["store"]
caller = st.session_state["caller"]

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

items = [
    json.loads(definition)
    for definition in instruments.study_items(store, caller, study_id).get_column("definition")
]


def fields_of(view: dict) -> list[dict]:
    """The sheet's fields in keyboard order: each answer-level item for each response shown,
    then the case-level items. Free-text items are typed, not keyed, so they are not fields."""
    keyed = [item for item in items if item["type"] != "free_text"]
    out = [
        {"item": item, "label": p["label"]}
        for p in view["presentations"]
        for item in keyed
        if item.get("scope", "answer") == "answer"
    ]
    out += [{"item": item, "label": None} for item in keyed if item.get("scope") == "case"]
    return out


def key_for(item: dict, index: int, option: dict) -> str | None:
    """The key that picks ``option``: its position (1-9) or, for a choice, its first letter;
    none past the ninth option (a 0-10 scale's last options are clicked)."""
    if item["type"] == "pairwise_choice":
        return str(option["value"])[0].upper()
    return str(index + 1) if index < 9 else None


def shown(value: object, item: dict) -> str:
    for option in item.get("options", []):
        if option["value"] == value:
            return f"{value} · {option['label']}"
    return "—" if value is None else str(value)


def sheet_state(view: dict) -> dict:
    """This assignment's working values and active field, kept on the server per session."""
    key = f"sheet-{view['assignment']}"
    if key not in st.session_state:
        values = {}
        for n, field in enumerate(fields_of(view)):
            current = view["values"].get(field["item"]["key"])
            values[n] = current.get(field["label"]) if isinstance(current, dict) else current
        st.session_state[key] = {
            "values": values,
            "active": next((n for n, v in values.items() if v is None), 0),
            "fields": len(values),
            "options": [
                [option["value"] for option in field["item"].get("options", [])]
                for field in fields_of(view)
            ],
            "shown_at": time.monotonic(),  # server clock: time on task starts now
            "problems": {},
        }
    return st.session_state[key]


def submission(view: dict, state: dict) -> dict:
    """The values as ``rating.submit_rating`` takes them."""
    values: dict = {}
    for n, field in enumerate(fields_of(view)):
        value = state["values"].get(n)
        if value is None:
            continue
        if field["label"] is None:
            values[field["item"]["key"]] = value
        else:
            values.setdefault(field["item"]["key"], {})[field["label"]] = value
    for item, label in text_fields(view):
        text = st.session_state.get(text_key(view, item, label), "").strip()
        if not text:
            continue
        if label is None:
            values[item["key"]] = text
        else:
            values.setdefault(item["key"], {})[label] = text
    return values


def text_fields(view: dict) -> list[tuple[dict, str | None]]:
    """The typed fields: each free-text item once per response shown (answer scope), or once
    for the case."""
    return [
        (item, label)
        for item in items
        if item["type"] == "free_text"
        for label in (
            [p["label"] for p in view["presentations"]]
            if item.get("scope", "answer") == "answer"
            else [None]
        )
    ]


def text_key(view: dict, item: dict, label: str | None) -> str:
    # the widget key names the neutral label (or the case), never an answer
    return f"text-{view['assignment']}-{item['key']}-{label or 'case'}"


def missing_required(view: dict, state: dict) -> dict[int, str]:
    return {
        n: "Required: pick a value."
        for n, field in enumerate(fields_of(view))
        if field["item"].get("required", True) and state["values"].get(n) is None
    }


def pick(key: str, index: int) -> None:
    """The active field's option ``index`` was chosen: keep its value and move on to the next
    field without a value. (The option buttons keep their keys from field to field, so that a key
    pressed during a rerun reaches the button that is on screen; the field is read here.)"""
    state = st.session_state.get(key)
    if state is None:  # a key pressed just as its case was submitted
        return
    field = state["active"]
    options = state["options"][field]
    if index >= len(options):
        return
    state["values"][field] = options[index]
    state["problems"].pop(field, None)
    empty = [n for n in range(state["fields"]) if state["values"].get(n) is None]
    later = [n for n in empty if n > field]
    state["active"] = (later or empty or [field])[0]


def back(key: str) -> None:
    state = st.session_state.get(key)
    if state is not None:
        state["active"] = max(0, state["active"] - 1)


def submit(view: dict) -> None:
    """Store the sheet (a first submit, or a revision of a rated case); on a refusal, keep the
    reasons next to their fields."""
    key = f"sheet-{view['assignment']}"
    state = st.session_state.get(key)
    if state is None:  # Enter pressed twice: the first press stored the case
        return
    fields = fields_of(view)
    state["problems"] = missing_required(view, state) if not view["done"] else {}
    if state["problems"]:
        return
    seconds = time.monotonic() - state["shown_at"]
    try:
        rating.submit_rating(
            store,
            caller,
            study_id,
            view["assignment"],
            submission(view, state),
            seconds=seconds,
            revise=view["done"],
        )
    except ValidationError as error:
        by_item = {p.column: p.reason for p in error.problems}
        state["problems"] = {
            n: by_item[f["item"]["key"]]
            for n, f in enumerate(fields)
            if f["item"]["key"] in by_item
        } or {0: str(error)}
    except StudyError as error:
        state["problems"] = {0: str(error)}
    else:
        st.session_state.setdefault("rate_durations", []).append(seconds)
        del st.session_state[key]
        st.session_state.pop("rate_revising", None)
        st.session_state["rate_flash"] = "Saved."


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
        st.success("You have rated every case assigned to you in this study. Thank you!")
        return
    key = f"sheet-{view['assignment']}"
    state = sheet_state(view)
    fields = fields_of(view)

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

    st.subheader("Question", anchor=False)
    st.markdown(safe_html(view["question"]), unsafe_allow_html=True)
    if view.get("context"):
        with st.expander("Context", expanded=True):
            st.markdown(safe_html(view["context"]), unsafe_allow_html=True)

    columns = st.columns(len(view["presentations"]), border=True)
    for column, presentation in zip(columns, view["presentations"], strict=True):
        with column:
            st.markdown(f"**{presentation['label']}**")
            st.markdown(
                safe_html(presentation["text"], mode=view["display"]), unsafe_allow_html=True
            )

    st.subheader("Your rating", anchor=False)
    for n, field in enumerate(fields):
        item = field["item"]
        where = f"{field['label']} · " if field["label"] else ""
        marker = "▶" if n == state["active"] else "·"
        line = f"{marker} {where}{item['prompt']}: **{shown(state['values'].get(n), item)}**"
        st.markdown(line if n != state["active"] else f":blue-background[{line}]")
        if n in state["problems"]:
            st.error(state["problems"][n], icon=":material/error:")

    if fields:
        active = fields[state["active"]]
        item = active["item"]
        st.caption(
            f"{(active['label'] + ' · ') if active['label'] else ''}{item['prompt']}"
            + (f" — {item['help']}" if item.get("help") else "")
        )
        options = item.get("options", [])
        for index, (button, option) in enumerate(
            zip(st.columns(max(len(options), 1)), options, strict=False)
        ):
            button.button(
                option["label"],
                key=f"pick-{index}",
                shortcut=key_for(item, index, option),
                on_click=pick,
                args=(key, index),
                use_container_width=True,
            )

    for item, label in text_fields(view):
        current = view["values"].get(item["key"], "")
        if isinstance(current, dict):
            current = current.get(label, "")
        st.text_area(
            (f"{label} · " if label else "")
            + item["prompt"]
            + ("" if item.get("required", True) else " (optional)"),
            key=text_key(view, item, label),
            value=str(current),
        )

    if view["done"]:
        st.button(
            "Cancel the revision",
            key="rate-cancel",
            on_click=cancel_revision,
            args=(key,),
        )
    left_column, right_column = st.columns(2)
    left_column.button(
        "Back",
        key="rate-back",
        shortcut="Backspace",
        on_click=back,
        args=(key,),
        use_container_width=True,
    )
    right_column.button(
        "Submit" if not view["done"] else "Save revision",
        key="rate-submit",
        shortcut="Enter",
        type="primary",
        on_click=submit,
        args=(view,),
        use_container_width=True,
    )
    st.caption(
        "Keys: digits pick an option, A / B / T pick a response or a tie, Backspace goes back, "
        "Enter submits."
    )

    if not view["done"]:
        with st.expander("Flag or skip this case"):
            st.text_input("Reason", key=f"reason-{view['assignment']}")
            flag_column, skip_column = st.columns(2)
            flag_column.button(
                "Flag case",
                key="flag-case",
                on_click=mark,
                args=(view, "flag"),
                use_container_width=True,
            )
            skip_column.button(
                "Skip case",
                key="skip-case",
                on_click=mark,
                args=(view, "skip"),
                use_container_width=True,
            )


panel()

with st.expander("Cases you have rated"):
    queue = rating.rater_queue(store, caller, study_id)
    done = queue.filter(queue.get_column("done"))
    if done.height == 0:
        st.caption("None yet.")
    for number, assignment in enumerate(done.get_column("assignment").to_list(), start=1):
        st.button(
            f"Revise rated case {number}",
            key=f"revise-{number}",
            on_click=st.session_state.__setitem__,
            args=("rate_revising", assignment),
        )
