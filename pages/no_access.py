"""The "no access yet" screen: a signed-in person who holds no role sees this and nothing else.

``app.py`` registers this page alone for them, so any other page's URL lands here; every service
would refuse them anyway. The person is handed over as ``st.session_state["signed_in_as"]``
(user id, and the e-mail address only if the provider vouched for it) so that they can tell whoever grants access.
"""

from __future__ import annotations

import streamlit as st

from pages.components.handover import through_app
from study import settings

through_app("signed_in_as")
who: dict = st.session_state["signed_in_as"]
contact = str(settings.get("CLINVAL_ACCESS_CONTACT")).strip()

st.title("No access yet")
st.info(
    "You are signed in, but you hold no role in Clinval yet, so there is nothing to show you.",
    icon=":material/person_off:",
)
ask = contact or "the coordinator of your study, or your Clinval administrator"
if who.get("email"):
    st.markdown(f"**Ask {ask}** to add you. Tell them the address you signed in with:")
    st.code(who["email"], language=None)
else:
    st.markdown(f"**Ask {ask}** to add you. Tell them your Clinval user id:")
    st.code(who["user_id"], language=None)
    st.caption(
        "Your identity provider did not vouch for an e-mail address of yours (email_verified), "
        "so an invitation by e-mail cannot be matched to you: the role must be granted to this "
        "user id."
    )
