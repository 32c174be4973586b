"""Account: a person's own personal access tokens, to act as themselves from a terminal.

A token made here is shown once, in the run that made it, and never again (only its hash is
stored); the table lists the person's tokens without any secret, and one can be revoked after a
confirmation. Everything goes through ``study.services.tokens``, which checks the caller again
and records creating and revoking in the audit trail.
"""

from __future__ import annotations

import polars as pl
import streamlit as st

from pages.components.handover import store_and_caller
from pages.components.plain import plain
from study.errors import StudyError
from study.rendering import markdown_text
from study.services import tokens

store, caller = store_and_caller()

st.title("Account")

if caller.user_id is None:
    st.info(
        "You act as the local operator, who is no person: personal access tokens belong to a "
        "person. Pick one of the demo's people in the sidebar, or sign in.",
        icon=":material/info:",
    )
    st.stop()

st.subheader("My access tokens")
st.caption(
    "A personal access token lets the command line (`python -m study --token ...`, or the "
    "setting CLINVAL_TOKEN), a script in R or Python, or a pipeline act as you: opening, closing "
    "or unblinding a study, exporting its data. The audit trail records you, and the token. Keep "
    "it like a password."
)

with st.form("new_token", clear_on_submit=True):
    name = st.text_input("Name", placeholder="where it is used, e.g. R on my laptop")
    days = st.number_input(
        "Valid for (days)",
        min_value=1,
        max_value=tokens.MAX_DAYS,
        value=tokens.DEFAULT_DAYS,
        step=1,
    )
    made = st.form_submit_button("Create token", type="primary", icon=":material/key:")

if made:
    try:
        issued = tokens.create_token(store, caller, name=name, days=int(days))
    except StudyError as error:
        st.error(plain(error))
    else:
        # shown in this run only: the secret is kept nowhere, not even in the session
        st.success(
            f"Token '{markdown_text(issued.name)}' created, valid until {issued.expires_at:%Y-%m-%d %H:%M} UTC. "
            "Copy it now (the copy button at the right of the box): it is shown this once and "
            "cannot be shown again.",
            icon=":material/content_copy:",
        )
        st.code(issued.token, language=None)


def revoke(token_id: str) -> None:
    # a callback, so that the table below is drawn after the revocation
    try:
        tokens.revoke_token(store, caller, token_id)
    except StudyError as error:
        st.session_state["token_message"] = ("error", str(error))
    else:
        st.session_state["token_message"] = ("success", f"Token {token_id} is revoked.")
    st.session_state["revoke_confirm"] = False


kind, message = st.session_state.pop("token_message", (None, None))
if kind == "error":
    st.error(plain(message))
elif kind == "success":
    st.success(message)

mine = tokens.list_tokens(store, caller)
if mine.is_empty():
    st.info("You have no personal access tokens yet.")
    st.stop()

st.dataframe(
    mine.select(
        pl.col("name").alias("Name"),
        pl.format(f"{tokens.TOKEN_PREFIX}_{{}}_…", "id").alias("Token begins"),
        pl.col("created_at").alias("Created (UTC)"),
        pl.col("expires_at").alias("Expires (UTC)"),
        pl.col("last_used_at").alias("Last used (UTC)"),
        pl.col("revoked_at").alias("Revoked (UTC)"),
        pl.col("status").alias("Status"),
    ),
    hide_index=True,
)

active = mine.filter(pl.col("status") == "active")
if not active.is_empty():
    st.subheader("Revoke a token")
    labels = dict(zip(active["id"], active["name"], strict=True))
    chosen = st.selectbox(
        "Token",
        list(labels),
        format_func=lambda token_id: f"{labels[token_id]} ({tokens.TOKEN_PREFIX}_{token_id}_…)",
        key="revoke_token",
    )
    sure = st.checkbox(
        "Yes, revoke it: whatever uses it stops working at once", key="revoke_confirm"
    )
    st.button(
        "Revoke",
        icon=":material/block:",
        disabled=not sure,
        on_click=revoke,
        args=(chosen,),
        key="revoke",
    )
