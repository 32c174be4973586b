"""What ``app.py`` hands every screen (the store, the caller), and the guard that makes sure it
did (screen code, like the pages).

Why a guard: this project keeps its screens in a folder named ``pages/`` beside ``app.py``. Until
``st.navigation`` has been called once in the server process, Streamlit treats that folder as an
old-style multipage app (``PagesManager.uses_pages_directory``), so the first visitor after a
start who opens a screen's URL directly (``/monitor?person=1``, a bookmark) gets that script run
*instead of* ``app.py``: no page config, no sign-in, no role check, and no store. The guard turns
such a run into a rerun through ``app.py``, which then shows the screen if the person's roles open
it, or their first screen otherwise, as for any other URL.
"""

from __future__ import annotations

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from study.access import Caller
from study.store import Store


def through_app(*handed: str) -> None:
    """Return if ``app.py`` ran for this session and handed over the session state keys
    ``handed``; otherwise rerun through it (same URL).

    ``app.py``'s ``st.navigation`` switches Streamlit's folder mode off for the process, so the
    rerun runs ``app.py`` first and its navigation resolves the page the URL asked for. (Once a
    session has been through ``app.py`` the folder mode is off for good in a server; AppTest turns
    it back on before every run and then runs the page it was switched to directly, with the
    session state of the run before, as it always has.)
    """
    if PagesManager.uses_pages_directory and not all(key in st.session_state for key in handed):
        PagesManager.uses_pages_directory = False
        st.rerun()


def store_and_caller() -> tuple[Store, Caller]:
    """The process's store and the person in front of the screen, as ``app.py`` set them."""
    through_app("store", "caller")
    return st.session_state["store"], st.session_state["caller"]
