"""An irreversible step behind a confirmation: a box to tick, then a primary button.

Used where a study moves on for good (closing rating, unblinding): the act runs only once the
box is ticked; a refusal is shown as text where the button is, a success as a toast and a rerun.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from pages.components.plain import plain
from study.errors import StudyError


def confirmed_step(
    sure_text: str, button: str, act: Callable[[], object], done: str, *, key: str
) -> None:
    """A checkbox saying ``sure_text`` and a primary ``button``, enabled once it is ticked;
    pressing it calls ``act`` and, unless it raises a ``StudyError`` (shown as plain text),
    toasts ``done`` and reruns the page. Widget keys are ``key`` + ``_sure`` and ``key``."""
    sure = st.checkbox(sure_text, key=f"{key}_sure")
    if st.button(button, type="primary", disabled=not sure, key=key):
        try:
            act()
        except StudyError as error:
            st.error(plain(error))
        else:
            st.toast(done)
            st.rerun()
