"""The study a screen works on: the studies whose ``permission`` the caller holds, picked in a
select box (screen code, like the pages)."""

from __future__ import annotations

import streamlit as st

from study.access import Caller, allowed
from study.services import studies
from study.store import Store


def pick_study(
    store: Store, caller: Caller, permission: str, *, key: str, none: str
) -> tuple[str, str]:
    """The chosen study's (id, name) among those where ``caller`` holds ``permission``, shown as
    "name (id)"; with none, ``none`` is shown and the script stops."""
    visible = studies.list_studies(store, caller)
    names = {
        sid: name
        for sid, name in zip(visible["id"], visible["name"], strict=True)
        if allowed(store, caller, permission, study=sid)
    }
    if not names:
        st.info(none)
        st.stop()
    chosen = st.selectbox(
        "Study", list(names), format_func=lambda sid: f"{names[sid]} ({sid})", key=key
    )
    return chosen, names[chosen]
