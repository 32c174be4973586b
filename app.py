"""Clinval's entry point and router: page config, settings, the store, sign-in, navigation by role.

Run with ``streamlit run app.py``. This file holds no screen of its own: every screen is a script
in ``pages/`` registered below with ``st.Page``; helpers live in ``study``/``analysis``.

Per process there is one ``Store`` (one DuckDB connection; DuckDB lets one process open the
file), cached with ``st.cache_resource`` and handed to pages as ``st.session_state["store"]``;
the caller every service needs (``study.access.Caller``) is handed over as
``st.session_state["caller"]``.

Two ways in, decided by ``.streamlit/secrets.toml``:

- **Sign-in** (an ``[auth]`` block): Streamlit's ``st.login`` against the hospital's OpenID
  Connect provider(s). The signed-in person is made a caller by ``people.sign_in`` from the ID
  token's ``iss``/``sub`` (and a verified e-mail, which binds an invitation). Someone with no role
  sees only the "no access yet" screen; everyone else only the screens their roles open
  (``SCREENS``); a session older than ``CLINVAL_MAX_SESSION_HOURS`` must sign in again.
- **The demo without sign-in** (no ``[auth]`` block, and ``CLINVAL_REQUIRE_AUTH`` not set): a
  permanent banner says so, and the sidebar picks who you are: one of the synthetic demo's
  people, or the local operator (whoever runs the app on their own machine). With
  ``CLINVAL_REQUIRE_AUTH=1`` the app refuses to run without ``[auth]`` instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import streamlit as st

from study import settings, signin
from study.access import Caller, roles_anywhere, system_caller
from study.errors import ConfigError, ConflictError, StudyError, ValidationError, first_line
from study.rendering import markdown_text
from study.services import people, studies
from study.store import DatabaseError, DatabaseUnavailable, Store

# Details the pages do not show (paths, the process holding a locked database, a secrets file's
# parse error) go to the server log, which is Streamlit's stderr.
if not logging.getLogger("study").handlers[1:]:
    logging.getLogger("study").addHandler(logging.StreamHandler())
_log = logging.getLogger("study.app")

SCREENS: tuple[tuple[str, str, str, frozenset[str]], ...] = (
    ("pages/overview.py", "Overview", ":material/dashboard:",
     frozenset({"admin", "coordinator", "statistician"})),
    ("pages/people.py", "People", ":material/group_add:", frozenset({"admin", "coordinator"})),
    ("pages/rate.py", "Rate", ":material/rate_review:", frozenset({"rater"})),
    ("pages/design.py", "Design", ":material/design_services:",
     frozenset({"coordinator", "admin"})),
    ("pages/monitor.py", "Monitoring", ":material/monitoring:",
     frozenset({"coordinator", "admin"})),
    ("pages/analyze.py", "Analysis", ":material/query_stats:",
     frozenset({"statistician", "admin"})),
    ("pages/export.py", "Export", ":material/download:", frozenset({"statistician", "admin"})),
    ("pages/account.py", "Account", ":material/key:",
     frozenset({"admin", "coordinator", "statistician", "rater"})),
)  # fmt: skip
# (script, title, icon, roles that open it), in menu order; the first one a person's roles open
# is their landing page, where any other URL takes them. A page hidden here is also refused by
# every service it calls: this decides what is offered, the services decide what is allowed.
# Account (one's own personal access tokens) is last: every role opens it, and it must never be
# anyone's landing page.
# (Comments, not docstrings: Streamlit's "magic" would print a bare string in this script.)

# Streamlit's signed identity cookie: present but not accepted means altered or re-keyed.
USER_COOKIE = "_streamlit_user"


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


def pages_for(roles: set[str]) -> list[st.Page]:
    """The screens ``roles`` open (``SCREENS``), in menu order; the first is the default."""
    return [
        st.Page(script, title=title, icon=icon, default=index == 0)
        for index, (script, title, icon, _) in enumerate(
            screen for screen in SCREENS if screen[3] & roles
        )
    ]


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
    # A sidebar link to another screen opens its URL without the query, so the session keeps
    # the place too and puts it back into the URL: the person survives navigation.
    place = st.query_params.get("person") or st.session_state.get("demo_place", "0")
    index = int(place) if place.isdigit() and int(place) < len(labels) else 0
    st.session_state["demo_place"] = str(index)
    if st.query_params.get("person", "0") != str(index):
        st.query_params["person"] = str(index)

    def remember() -> None:
        # a callback: the sidebar widget's identity changes with the page being shown, so the
        # choice is carried by the URL (and the session) rather than by the widget's own state
        st.query_params["person"] = str(labels.index(st.session_state["demo_person"]))
        st.session_state["demo_place"] = st.query_params["person"]

    chosen = who[
        st.sidebar.selectbox(
            "Acting as", labels, index=index, key="demo_person", on_change=remember
        )
    ]
    if chosen == _LOCAL:
        return system_caller("local")
    return people.demo_sign_in(store, chosen)


def read_auth_block() -> Mapping[str, Any] | None:
    """The ``[auth]`` block of the secrets, or None when there is none (or no secrets file).

    A secrets file that cannot be read (not TOML) is a ``ConfigError`` whose message names no
    path; Streamlit's own message, with the path, goes to the server log.
    """
    try:
        return st.secrets.get("auth")
    except FileNotFoundError as error:  # StreamlitSecretNotFoundError: no file, or unreadable
        if getattr(error, "error_id", None) == "no-secrets-found":
            return None
        _log.warning("secrets cannot be read: %s", error)
        raise ConfigError(
            "The secrets file (.streamlit/secrets.toml) cannot be read: it is not valid TOML. "
            "The details are in the server log."
        ) from None


def stop_with(message: str) -> None:
    st.error(message, icon=":material/error:")
    st.stop()


def show_alone(script: str, title: str, icon: str) -> None:
    """Run one screen with no menu: the only page registered, so every URL lands on it."""
    st.navigation([st.Page(script, title=title, icon=icon, default=True)], position="hidden").run()


def sign_in_screen(auth: signin.AuthConfig, reason: str | None = None) -> None:
    st.session_state["auth"] = auth
    st.session_state["sign_in_reason"] = reason
    show_alone("pages/sign_in.py", "Sign in", ":material/login:")


def oidc_caller(store: Store, auth: signin.AuthConfig) -> Caller | None:
    """The signed-in person as a caller, or None after showing the screen that stands instead
    (sign in, sign in again, or why this identity cannot be used)."""
    if not st.user.is_logged_in:
        tampered = USER_COOKIE in st.context.cookies
        if tampered:
            _log.warning("an identity cookie was present but not accepted (altered or re-keyed)")
        sign_in_screen(
            auth,
            "Your sign-in could not be verified (it was altered, or this server's key changed)."
            if tampered
            else None,
        )
        return None
    claims = st.user.to_dict()
    max_hours = float(settings.get("CLINVAL_MAX_SESSION_HOURS"))
    expired = signin.session_problem(claims, now=time.time(), max_hours=max_hours)
    if expired:
        sign_in_screen(auth, expired)
        return None
    identity = signin.identity_claims(claims)
    key = (identity["issuer"], identity["subject"], claims.get("iat"))
    known = st.session_state.get("signed_in")
    if known is not None and known[0] == key:
        return known[1]
    try:
        caller = people.sign_in(store, **identity)
    except (ValidationError, ConflictError) as error:
        _log.warning("sign-in refused: %s", first_line(error))
        st.error(f"You cannot be signed in: {first_line(error)}", icon=":material/block:")
        if st.button("Sign out", icon=":material/logout:"):
            st.logout()
        st.stop()
    st.session_state["signed_in"] = (key, caller)
    return caller


def signed_in_sidebar(claims: Mapping[str, Any]) -> None:
    with st.sidebar:
        shown = claims.get("name") or claims.get("email") or claims.get("sub")
        st.caption(f"Signed in as **{markdown_text(shown)}**")
        if st.button("Sign out", key="sign_out", icon=":material/logout:"):
            st.logout()


try:
    auth = signin.read_auth(read_auth_block())
except ConfigError as error:
    stop_with(f"Clinval cannot start: {error}")
require_auth = settings.get("CLINVAL_REQUIRE_AUTH") == 1
if require_auth and auth is None:
    stop_with(
        "Clinval cannot start: this installation requires sign-in (CLINVAL_REQUIRE_AUTH=1), but "
        "`.streamlit/secrets.toml` has no `[auth]` block. The administrator must configure the "
        'hospital\'s identity provider (see docs/administrator.md, "Sign-in").'
    )

db_path = str(settings.db_path())
try:
    store = open_store(db_path)
except DatabaseUnavailable as error:
    # In use by another process, not a database, not Clinval's: a plain sentence for whoever is
    # looking at the page; the path and DuckDB's details (with the other process's id) are in the
    # server log.
    _log.warning("database %s cannot be opened: %s", db_path, error.reason)
    stop_with(
        f"Clinval is not available right now: {error} The administrator will find the details "
        "in the server log."
    )
except (StudyError, DatabaseError, OSError) as error:
    # A database migrated by newer code, a file that is no DuckDB database, a folder, an
    # unreadable path: the operator's to fix, not a crash; never a path or a raw database error
    # on the page. (A failed open is not cached: the next rerun tries again.)
    _log.warning("database %s cannot be opened: %s", db_path, first_line(error))
    stop_with(
        "Clinval cannot open its database. The administrator will find the reason in the server "
        "log (point CLINVAL_DB at a Clinval database file, or at a new path to start an empty "
        "one)."
    )
if settings.get("CLINVAL_DEMO_ON_START") and not require_auth:
    # cached per path: the first run looks for studies (and builds the demo into an empty
    # database), every later run is a cache hit with no query. A deployment (sign-in required)
    # never builds it: its first visitor must not fill a real database with synthetic people.
    with st.spinner("First start: building the synthetic demo study…", show_time=True):
        ensure_demo(db_path)
st.session_state["store"] = store

if auth is None:
    caller = demo_caller(store)
    st.session_state["caller"] = caller
    st.navigation(pages_for(roles_anywhere(store, caller)), position="sidebar").run()
else:
    caller = oidc_caller(store, auth)
    if caller is not None:
        st.session_state["caller"] = caller
        signed_in_sidebar(st.user.to_dict())
        roles = roles_anywhere(store, caller)
        if roles:
            st.navigation(pages_for(roles), position="sidebar").run()
        else:
            vouched = signin.identity_claims(st.user.to_dict())
            st.session_state["signed_in_as"] = {
                "user_id": caller.user_id,
                "email": vouched["email"] if vouched["email_verified"] else None,
            }
            show_alone("pages/no_access.py", "No access yet", ":material/person_off:")
