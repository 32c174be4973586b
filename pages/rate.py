"""Rate: one case at a time, its answers under neutral labels, every item answered by keyboard.

The sheet (``pages/components/rating_sheet``) lists the case's keyed fields (each item for
Response A, then for Response B, ..., then the case-level items such as "which is better"): a
digit picks an option of the active field and moves on, a letter picks a choice (A, B, T for
tie), Backspace steps back, Enter submits. The keys are handled in the browser, so a case costs
one server round trip: its submission. F flags the case and S skips it (each asks for its
reason in the sheet, and a refusal is said there), R revises the case just rated, C goes to the
comment box, Esc leaves a box or cancels a revision; unsent picks survive a reload (the sheet
keeps them in the tab as a draft). Each response's text sits beside its own fields. Everything the browser receives is the case, the
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
from pages.components.plain import plain
from pages.components.rating_sheet import (
    keyed_fields,
    rating_sheet,
    responses,
    sheet_data,
    show_case,
    submitted,
    typed_fields,
)
from study.access import allowed
from study.errors import ConflictError, StudyError, ValidationError
from study.services import instrument_library, rating, studies

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
    for definition in instrument_library.study_items(store, caller, study_id).get_column(
        "definition"
    )
]
KEYED = [item for item in items if item["type"] != "free_text"]
TYPED = [item for item in items if item["type"] == "free_text"]
# F, S, R and C as the rater asked for them. Streamlit keeps R (rerun) and C (clear cache) for
# itself on the page and refuses them as st.button shortcuts; the sheet takes its keys before
# Streamlit's listener sees them (rating_sheet.js), so the letters need no substitute.
KEYS_HELP = (
    "Keys: digits pick an option, A / B / T pick a response or a tie, Backspace goes back, "
    "Enter submits (Ctrl+Enter inside a text box). F flags the case, S skips it (each asks "
    "for a reason), R revises the case just rated, C goes to the comment box, Esc leaves it."
)
REVISING_HELP = (
    "Keys: digits pick an option, A / B / T pick a response or a tie, Backspace goes back, "
    "Enter saves the revision (Ctrl+Enter inside a text box), C goes to the comment box, "
    "Esc cancels the revision."
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
        if not view["done"] and view.get("presented_at") is None:
            # time on task runs on the server from the case's first showing, kept with the
            # assignment: a reload or another device does not restart it (after a submit the
            # next case was stamped with it, in the same transaction)
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
    """The sheet's one trigger: a submission (a first submit, or a revision of a rated case), a
    flag or a skip with its reason, "revise the case just rated", or "cancel the revision". A
    payload for another sheet (a stale tab, a case skipped meanwhile) is ignored."""
    payload = submitted()
    key = f"sheet-{view['assignment']}"
    state = st.session_state.get(key)
    if payload is None or state is None or payload.get("token") != state["token"]:
        return
    action = payload.get("action", "submit")
    if action in ("flag", "skip"):
        mark(view, state, action, str(payload.get("reason") or ""))
    elif action == "revise":
        revise_just_rated(state)
    elif action == "cancel":
        cancel_revision(key)
    else:
        store_sheet(view, state, payload)


def store_sheet(view: dict, state: dict, payload: dict) -> None:
    """Store the sheet; on a refusal, hand the reasons back to the sheet next to their
    fields."""
    key = f"sheet-{view['assignment']}"
    seconds = time.monotonic() - state["shown_at"]  # for the estimate of the time left only
    fields = fields_of(view)
    texts = texts_of(view)
    comment = str(payload.get("comment") or "").strip() or None
    if comment == view.get("comment"):
        comment = None  # a revision restating the stored comment does not store it again
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
            comment=comment,
            present_next=True,
        )
    except ValidationError as error:
        state["problems"] = beside_fields(error, fields, texts, payload.get("values") or {})
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
    # R revises this one: the case a rater most often wants to fix is the one just rated
    st.session_state["rate_last"] = view["assignment"]
    del st.session_state[key]
    st.session_state.pop("rate_revising", None)
    st.session_state.pop("rate_revising_rank", None)


def beside_fields(
    error: ValidationError, fields: list, texts: list, picked: dict
) -> dict[str, str]:
    """The service's reasons placed next to the fields they concern: a reason names an item
    (its column); one that starts with a response's label ("Response B: ...", a consistency
    rule broken for that response) goes beside that response's field only, the label left off
    (the field shows it); any other goes next to the item's fields left empty, or next to all
    of them when the value given is what is wrong. A reason for no item goes under the sheet."""
    problems: dict[str, str] = {}
    for problem in error.problems:
        mine = [n for n, (item, _) in enumerate(fields) if item["key"] == problem.column]
        labelled = [
            n for n in mine if fields[n][1] and problem.reason.startswith(f"{fields[n][1]}: ")
        ]
        empty = [n for n in mine if picked.get(str(n)) is None]
        for n in labelled or empty or mine:
            reason = problem.reason
            if labelled:
                reason = reason[len(fields[n][1]) + 2 :]
            problems[str(n)] = reason
        for n, (item, _) in enumerate(texts):
            if item["key"] == problem.column:
                problems[f"text-{n}"] = problem.reason
        if problem.column is None or not (
            mine or any(i["key"] == problem.column for i, _ in texts)
        ):
            problems["sheet"] = "; ".join(filter(None, [problems.get("sheet"), problem.reason]))
    return problems or {"sheet": str(error)}


def rated_cases() -> list[dict]:
    """The caller's rated cases in queue order (assignment, done_at): what "Revise a case you
    have rated" numbers 1, 2, ... (the progress bar's count of cases done counts the same)."""
    queue = rating.rater_queue(store, caller, study_id)
    return [
        row
        for row in queue.select("assignment", "done", "status", "done_at").iter_rows(named=True)
        if row["done"] and row["status"] != "withdrawn"
    ]


def open_revision(rated: list[dict], number: int) -> None:
    """Show rated case ``number`` (1-based, of ``rated``) for revision."""
    st.session_state["rate_revising"] = rated[number - 1]["assignment"]
    st.session_state["rate_revising_rank"] = (number, len(rated))


def revise_just_rated(state: dict) -> None:
    """R: the case rated last in this session, else the one whose first rating is the latest."""
    rated = rated_cases()
    if not rated:
        state["problems"] = {"sheet": "You have not rated a case yet: there is none to revise."}
        state["attempt"] += 1
        return
    last = st.session_state.get("rate_last")
    ids = [row["assignment"] for row in rated]
    if last not in ids:
        last = max(rated, key=lambda row: row["done_at"])["assignment"]
    open_revision(rated, ids.index(last) + 1)


def revise_number(count: int) -> None:
    """The picker's case, by its number among the rated cases."""
    open_revision(rated_cases(), st.session_state[f"rate_revise_number-{count}"])


def cancel_revision(key: str) -> None:
    """Leave a rated case as it is and go back to the queue."""
    st.session_state.pop(key, None)
    st.session_state.pop("rate_revising", None)
    st.session_state.pop("rate_revising_rank", None)


def mark(view: dict, state: dict, verb: str, reason: str) -> None:
    """Flag or skip the case with the reason typed in the sheet; a refusal is said there,
    beside the reason."""
    call = rating.flag_case if verb == "flag" else rating.skip_case
    try:
        call(store, caller, study_id, view["assignment"], reason)
    except ValidationError as error:
        said = "; ".join(p.reason for p in error.problems)
        state["problems"] = {
            "mark": f"{said[:1].upper()}{said[1:]}: type it here, then press Enter."
        }
        state["attempt"] += 1
        return
    except StudyError as error:
        state["problems"] = {"mark": str(error)}
        state["attempt"] += 1
        return
    st.session_state["rate_flash"] = "Flagged." if verb == "flag" else "Skipped."
    if verb == "skip":
        st.session_state.pop(f"sheet-{view['assignment']}", None)
    else:
        # a flagged case stays in the queue: the sheet goes on with its picks
        state["problems"] = {}
        state["attempt"] += 1


def progress(view: dict) -> None:
    position = view["total"] - view["remaining"] + 1
    durations = st.session_state.get("rate_durations", [])
    left = ""
    if durations and view["remaining"]:
        per_case = sorted(durations)[len(durations) // 2]
        left = f" · about {max(1, round(per_case * view['remaining'] / 60))} min left"
    st.progress(
        min(1.0, (view["total"] - view["remaining"]) / max(view["total"], 1)),
        text=(revising_text(view) if view["done"] else f"Case {position} of {view['total']}{left}"),
    )


def revising_text(view: dict) -> str:
    """The revision's place among the rated cases, numbered as the picker numbers them."""
    number, count = st.session_state.get("rate_revising_rank") or (None, None)
    if number is None:
        return "Revising a rated case"
    return f"Revising rated case {number} of {count}"


def revise_picker(count: int) -> None:
    """Any rated case by its number; the default is the last one rated. The count comes from
    the case on screen, so it moves with every case rated or skipped (the widget's key carries
    it: a new count is a new default)."""
    with st.expander("Revise a case you have rated"):
        if not count:
            st.caption("None yet.")
            return
        st.number_input(
            f"Rated case (1 to {count}, in your queue's order; {count} is the last one rated)",
            min_value=1,
            max_value=count,
            value=count,
            key=f"rate_revise_number-{count}",
        )
        st.button("Revise this case", key="rate-revise", on_click=revise_number, args=(count,))


@st.fragment
def panel() -> None:
    if flash := st.session_state.pop("rate_flash", None):
        st.toast(flash, icon=":material/check:")
    revising = st.session_state.get("rate_revising")
    try:
        view = (
            rating.assignment_view(store, caller, study_id, revising)
            if revising
            else rating.next_assignment(store, caller, study_id)
        )
    except StudyError as error:
        st.error(plain(error))
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
        revise_picker(len(rated_cases()))
        return
    state = sheet_state(view)
    progress(view)
    show_case(view, answers=False)

    st.subheader("Your rating", anchor=False)
    fields = fields_of(view)
    texts = texts_of(view)
    # cases done: the progress bar's "Case N of T" is this plus one, and the picker counts these
    rated = view["total"] - view["remaining"]
    rubric_keys = " Y / N: a criterion met / not met." if view.get("rubric_items") else ""
    can_skip = not view["done"] and view.get("phase") != "calibration"
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
            keys_help=(REVISING_HELP if view["done"] else KEYS_HELP) + rubric_keys,
            responses=responses(view),
            # where the browser keeps this sheet's unsent picks: one case, rated or revised
            draft=f"{study_id}:{view['assignment']}:{'revise' if view['done'] else 'rate'}",
            comment=view.get("comment") or "",
            actions={
                "flag": not view["done"],
                "skip": can_skip,
                "revise": not view["done"] and rated > 0,
                "cancel": view["done"],
            },
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
    revise_picker(rated)


panel()
