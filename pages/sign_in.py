"""The signed-out screen: one "Sign in" button per identity provider, and why one is here again.

``app.py`` shows this screen alone to anyone not signed in (or whose session must sign in again)
and hands over the checked ``[auth]`` configuration as ``st.session_state["auth"]`` and the
reason, if any, as ``st.session_state["sign_in_reason"]``. Nothing of the study is shown here.
"""

from __future__ import annotations

import streamlit as st

from pages.components.handover import through_app
from study import signin

through_app("auth")
auth: signin.AuthConfig = st.session_state["auth"]
reason: str | None = st.session_state.get("sign_in_reason")

st.title("Clinval")
st.write("Blinded clinical validation studies. Sign in with your hospital account to continue.")
if reason:
    st.warning(f"{reason} Sign in again.", icon=":material/lock_clock:")

for provider in auth.providers:
    if st.button(
        auth.button_label(provider),
        key=f"sign_in_{provider.name}",
        type="primary",
        icon=":material/login:",
    ):
        problem = signin.provider_problem(provider.server_metadata_url)
        if problem:
            st.error(
                f"{problem} Try again in a few minutes; if it lasts, tell your Clinval "
                "administrator.",
                icon=":material/cloud_off:",
            )
        else:
            st.login(None if provider.name == signin.DEFAULT_PROVIDER else provider.name)
