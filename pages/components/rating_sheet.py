"""The rating sheet element: one case's keyed fields, answered on the client by keyboard.

Registered once per process with ``st.components.v2.component`` (JavaScript and CSS beside this
file). The browser keeps the picks; the server sees one message per case, the ``submit``
trigger, so that a case costs one round trip instead of one per key. Nothing sent to the
browser names an arm, a model, an answer or an author: the data holds the neutral labels
("Response A"), the item wording and the option values only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import streamlit as st

from study.rendering import safe_html

_HERE = Path(__file__).resolve().parent
NAME = "clinval_rating_sheet"
KEY = "rate-sheet"

_mount = st.components.v2.component(
    NAME,
    js=(_HERE / "rating_sheet.js").read_text(encoding="utf-8"),
    css=(_HERE / "rating_sheet.css").read_text(encoding="utf-8"),
)


def option_key(item: dict, index: int, option: dict) -> str | None:
    """The key that picks ``option``: its position (1-9); for a pairwise choice its first letter
    (A, B, T); for a rubric criterion Y (met) or N (not met); none past the ninth option (a 0-10
    scale's last options are clicked)."""
    if item["type"] == "pairwise_choice":
        return str(option["value"])[0].upper()
    if item["type"] == "criterion":  # a rubric criterion: Y met, N not met
        return "Y" if option["value"] else "N"
    return str(index + 1) if index < 9 else None


def field_data(item: dict, where: str | None) -> dict[str, Any]:
    """One keyed field as the sheet draws it."""
    return {
        "where": where,
        "prompt": item["prompt"],
        "help": item.get("help"),
        "required": bool(item.get("required", True)),
        "type": item["type"],
        "min": item.get("min"),
        "max": item.get("max"),
        "options": [
            {
                "value": option["value"],
                "label": f"{option['label']}",
                "key": option_key(item, index, option),
            }
            for index, option in enumerate(item.get("options", []))
        ],
    }


# A rubric criterion's two options, keyed Y and N (``option_key``).
MET = [{"value": True, "label": "Met"}, {"value": False, "label": "Not met"}]


def keyed_fields(view: dict, keyed: list[dict]) -> list[tuple[dict, str | None]]:
    """The sheet's keyed fields in keyboard order: for each response shown (``view`` as
    ``rating.assignment_view`` returns it), each answer-level item of ``keyed`` (and, in a
    rubric study, each criterion of the case: met or not met), then the case-level items; as
    (item, label) with label None for the case. A criterion's field is a pseudo-item
    ``{"key": rubric item, "criterion": its key, "prompt": its text, ...}``."""
    labels = [p["label"] for p in view["presentations"]]
    rubric = set(view.get("rubric_items") or [])
    out = []
    for label in labels:
        for item in keyed:
            if item.get("scope", "answer") != "answer":
                continue
            if item["key"] in rubric:
                out += [
                    (
                        {
                            "key": item["key"],
                            "criterion": criterion["key"],
                            "prompt": criterion["criterion"],
                            "type": "criterion",
                            "required": True,
                            "options": MET,
                        },
                        label,
                    )
                    for criterion in view.get("criteria") or []
                ]
            else:
                out.append((item, label))
    return out + [(item, None) for item in keyed if item.get("scope") == "case"]


def typed_fields(view: dict, typed: list[dict]) -> list[tuple[dict, str | None]]:
    """The typed fields: each free-text item of ``typed`` once per response shown (answer
    scope), or once for the case."""
    labels = [p["label"] for p in view["presentations"]]
    return [
        (item, label)
        for item in typed
        for label in (labels if item.get("scope", "answer") == "answer" else [None])
    ]


def current_value(view: dict, item: dict, label: str | None):
    """The value ``view`` holds for ``item`` (for the response ``label``, None: the case)."""
    value = view["values"].get(item["key"])
    value = value.get(label) if isinstance(value, dict) else value
    if "criterion" in item:  # a rubric item's value per response: {criterion: met}
        return value.get(item["criterion"]) if isinstance(value, dict) else None
    return value


def sheet_data(
    view: dict,
    fields: list[tuple[dict, str | None]],
    texts: list[tuple[dict, str | None]],
    **extra: Any,
) -> dict[str, Any]:
    """The sheet's data for ``view``'s ``fields`` and ``texts`` (``keyed_fields``,
    ``typed_fields``) with their current values; ``extra``: token, attempt, revising, problems,
    submit_label, keys_help and, on the rating screen, responses (``responses``), draft,
    comment and actions (rating_sheet.js)."""
    return {
        "fields": [field_data(item, label) for item, label in fields],
        "values": {
            str(n): value
            for n, (item, label) in enumerate(fields)
            if (value := current_value(view, item, label)) is not None
        },
        "texts": [
            {
                "where": label,
                "prompt": item["prompt"],
                "required": bool(item.get("required", True)),
                "value": str(current_value(view, item, label) or ""),
            }
            for item, label in texts
        ],
        **extra,
    }


def responses(view: dict) -> list[dict[str, str]]:
    """The responses shown, for the sheet to draw each beside its own fields: [{label, html}],
    the html rendered safely (``study.rendering.safe_html``: no raw HTML, image, link or
    attribute) as the protocol's display mode says."""
    return [
        {"label": p["label"], "html": safe_html(p["text"], mode=view["display"])}
        for p in view["presentations"]
    ]


def show_case(view: dict, *, answers: bool = True) -> None:
    """The case (question, or the conversation before the answers; its context) and, unless
    ``answers`` is False (the sheet draws them, ``responses``), the responses side by side under
    their neutral labels, rendered safely (no raw HTML, images or links)."""
    if view.get("conversation"):
        st.subheader("Conversation", anchor=False)
        for message in view["conversation"]:
            role = message["role"]
            name = {"user": "user", "assistant": "assistant"}.get(role, "ai")
            with st.chat_message(name, avatar={"system": ":material/settings:"}.get(role)):
                if role == "system":
                    st.caption("Instructions given to the assistant")
                st.markdown(safe_html(message["content"]), unsafe_allow_html=True)
        st.caption("The answers below are the conversation's next turn.")
    else:
        st.subheader("Question", anchor=False)
        st.markdown(safe_html(view["question"]), unsafe_allow_html=True)
    if view.get("context"):
        with st.expander("Context", expanded=True):
            st.markdown(safe_html(view["context"]), unsafe_allow_html=True)
    if not answers:
        return
    columns = st.columns(len(view["presentations"]), border=True)
    for column, presentation in zip(columns, view["presentations"], strict=True):
        with column:
            st.markdown(f"**{presentation['label']}**")
            st.markdown(
                safe_html(presentation["text"], mode=view["display"]), unsafe_allow_html=True
            )


def rating_sheet(data: dict[str, Any], on_submit, *, key: str = KEY) -> None:
    """Mount the sheet with ``data`` (see rating_sheet.js for its shape); ``on_submit`` runs
    as the callback of the ``submit`` trigger, before the (fragment) script reruns, and reads
    the payload with ``submitted(key)``. ``key``: the element's key (another for a preview)."""
    # As UTF-8 JSON bytes: a dict would be scanned key by key for dataframes by Streamlit on
    # every run (a sixth of a submission's server time, py-spy); bytes pass through as they are.
    payload = json.dumps(data, separators=(",", ":")).encode()
    _mount(key=key, data=payload, on_submit_change=on_submit, height="content")


def submitted(key: str = KEY) -> dict[str, Any] | None:
    """The payload of the submission being handled, inside ``on_submit``."""
    state = st.session_state.get(key)
    if state is None:
        return None
    value = state.get("submit") if hasattr(state, "get") else getattr(state, "submit", None)
    return value if isinstance(value, dict) else None
