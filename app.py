"""Clinval's entry point and router: page config, settings, the store, (sign-in), navigation.

Run with ``streamlit run app.py``. This file holds no screen of its own: every screen is a script
in ``pages/`` registered below with ``st.Page``; helpers live in ``study``/``analysis``.

Per process there is one ``Store`` (one DuckDB connection; DuckDB lets one process open the
file), cached with ``st.cache_resource`` and handed to pages as ``st.session_state["store"]``;
the caller every service needs (``study.access.Caller``) is handed over as
``st.session_state["caller"]``.

Until real sign-in (OIDC) is configured, the app runs as a demo without sign-in: a permanent
banner says so, and the sidebar picks who you are: one of the synthetic demo's people, or the
local operator (whoever runs the app on their own machine).
"""

from __future__ import annotations

import logging

import streamlit as st

from study import settings
from study.access import Caller, roles_anywhere, system_caller
from study.errors import StudyError, first_line
from study.services import people, studies
from study.store import IN_USE, DatabaseError, DatabaseUnavailable, Store

# Details the pages do not show (paths, the process holding a locked database) go to the server
# log, which is Streamlit's stderr.
if not logging.getLogger("study").handlers[1:]:
    logging.getLogger("study").addHandler(logging.StreamHandler())


def _page_icon():
    """A plain square drawn here: a Material icon as page icon makes every browser fetch it from
    Google's font servers, a call out that a rater's browser must never make."""
    from PIL import Image

    return Image.new("RGB", (32, 32), (21, 101, 192))


st.set_page_config(
    page_title="Clinval",
    page_icon=_page_icon(),
    layout="wide",
    initial_sidebar_state="auto",
)

try:
    settings.validate_all()
except StudyError as error:
    st.error(f"Clinval cannot start: {error}")
    st.stop()


@st.cache_resource(show_spinner=False)
def open_store(path: str) -> Store:
    """The process's one Store for ``path`` (keyed by path, so tests can point at a new file)."""
    return Store(path)


@st.cache_resource(show_spinner=False)
def ensure_demo(path: str) -> str | None:
    """Build the demo study once per process if the database holds no study; return its id.

    Cached per path so that concurrent first sessions wait for one build instead of racing.
    """
    from study.demo import build_demo

    store = open_store(path)
    if studies.list_studies(store, system_caller("demo")).height:
        return None
    # The demo's default seed, as ``python -m study demo`` uses: app and CLI build the same study.
    return build_demo(store)


def pages_for(store: Store, caller: Caller) -> list[st.Page]:
    """The screens ``caller``'s roles open (every service checks again). A person who only
    rates gets the rating screen alone, so any other page's URL lands them there."""
    roles = roles_anywhere(store, caller)
    rate = st.Page("pages/rate.py", title="Rate", icon=":material/rate_review:")
    if roles == {"rater"}:
        return [rate]
    overview = st.Page(
        "pages/overview.py", title="Overview", icon=":material/dashboard:", default=True
    )
    screens = [overview, rate] if "rater" in roles else [overview]
    if roles & {"coordinator", "admin"}:
        screens.append(
            st.Page("pages/monitor.py", title="Monitoring", icon=":material/monitoring:")
        )
    if roles & {"statistician", "admin"}:
        screens.append(st.Page("pages/analyze.py", title="Analysis", icon=":material/query_stats:"))
    return screens


_LOCAL = "__local__"


def demo_caller(store: Store) -> Caller:
    """Who the visitor is in the demo without sign-in: picked in the sidebar, under a banner.

    The choice is kept as the person's place in the list in the URL (``?person=N``), so that a
    reload or a bookmark resumes as the same person; no user id reaches the browser.
    """
    st.warning(
        "**Demo without real sign-in.** Anyone who can open this page can act as anyone listed "
        "in the sidebar. Configure sign-in before real use.",
        icon=":material/no_accounts:",
    )
    demo = people.demo_people(store)
    who = {"Local operator (no sign-in)": _LOCAL}
    who.update({f"{name} — {roles}": uid for uid, name, roles in demo.iter_rows()})
    labels = list(who)
    place = st.query_params.get("person", "0")
    index = int(place) if place.isdigit() and int(place) < len(labels) else 0

    def remember() -> None:
        # a callback: the sidebar widget's identity changes with the page being shown, so the
        # choice is carried by the URL rather than by the widget's own state
        st.query_params["person"] = str(labels.index(st.session_state["demo_person"]))

    chosen = who[
        st.sidebar.selectbox(
            "Acting as", labels, index=index, key="demo_person", on_change=remember
        )
    ]
    if chosen == _LOCAL:
        return system_caller("local")
    return people.demo_sign_in(store, chosen)


db_path = str(settings.db_path())
try:
    store = open_store(db_path)
except DatabaseUnavailable as error:
    if error is not IN_USE:
        # not a database, not Clinval's: the operator's configuration to fix
        st.error(f"Clinval cannot open its database `{db_path}`: {error}")
        st.stop()
    # Another process holds the file: a plain sentence for whoever is looking at the page; the
    # path and DuckDB's details (with the other process's id) are in the server log.
    st.error(f"Clinval is not available right now: {error}")
    st.stop()
except (StudyError, DatabaseError, OSError) as error:
    # A database migrated by newer code, a file that is no DuckDB database, a folder, an
    # unreadable path, a file locked by another process: the operator's to fix, not a crash.
    # (A failed open is not cached: the next rerun tries again.)
    st.error(
        f"Clinval cannot open its database `{db_path}`: {first_line(error)}\n\n"
        "Point CLINVAL_DB at a Clinval database file, or at a new path to start an empty one."
    )
    st.stop()
if settings.get("CLINVAL_DEMO_ON_START"):
    # cached per path: the first run looks for studies (and builds the demo into an empty
    # database), every later run is a cache hit with no query
    with st.spinner("First start: building the synthetic demo study…", show_time=True):
        ensure_demo(db_path)
st.session_state["store"] = store

# The sign-in gate slots in here once OIDC is configured (people.sign_in from st.user's
# verified claims); until then the demo picker decides who the visitor is.
caller = demo_caller(store)
st.session_state["caller"] = caller

st.navigation(pages_for(store, caller), position="sidebar").run()
