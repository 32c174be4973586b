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


def rating_sheet(data: dict[str, Any], on_submit) -> None:
    """Mount the sheet with ``data`` (see rating_sheet.js for its shape); ``on_submit`` runs
    as the callback of the ``submit`` trigger, before the (fragment) script reruns, and reads
    the payload with ``submitted()``."""
    # As UTF-8 JSON bytes: a dict would be scanned key by key for dataframes by Streamlit on
    # every run (a sixth of a submission's server time, py-spy); bytes pass through as they are.
    payload = json.dumps(data, separators=(",", ":")).encode()
    _mount(key=KEY, data=payload, on_submit_change=on_submit, height="content")


def submitted() -> dict[str, Any] | None:
    """The payload of the submission being handled, inside ``on_submit``."""
    state = st.session_state.get(KEY)
    if state is None:
        return None
    value = state.get("submit") if hasattr(state, "get") else getattr(state, "submit", None)
    return value if isinstance(value, dict) else None
