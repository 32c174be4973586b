"""People: a coordinator invites raters to their study by e-mail (an admin: any study role).

The invited person is recorded with their address and the role at once; their first sign-in with
that address verified by the hospital's identity provider makes them that person. Someone already
known under the address gets the role instead. Everything goes through ``people.invite``, which
checks the permission again and records the invitation in the audit trail.
"""

from __future__ import annotations

import streamlit as st

from pages.components.handover import store_and_caller
from pages.components.plain import plain
from study.access import allowed
from study.errors import StudyError, ValidationError
from study.rendering import markdown_text
from study.services import people, studies

store, caller = store_and_caller()

st.title("People")

visible = studies.list_studies(store, caller)
names = dict(zip(visible["id"], visible["name"], strict=True))
mine = [sid for sid in names if allowed(store, caller, "invite_raters", study=sid)]
if not mine:
    st.info("You coordinate no study yet, so there is nobody for you to invite.")
    st.stop()
is_admin = allowed(store, caller, "manage_users")

with st.form("invite", clear_on_submit=True):
    st.subheader("Invite by e-mail")
    study_id = st.selectbox(
        "Study", mine, format_func=lambda sid: f"{names[sid]} ({sid})", key="invite_study"
    )
    email = st.text_input("E-mail address", placeholder="name@hospital.example")
    name = st.text_input("Name", placeholder="as the app should show it")
    role = (
        st.selectbox("Role", ("rater", "coordinator", "statistician"), key="invite_role")
        if is_admin
        else "rater"
    )
    sent = st.form_submit_button("Invite", type="primary", icon=":material/send:")

if sent:
    try:
        made = people.invite(store, caller, study_id, email, role, display_name=name)
    except ValidationError as error:
        st.error(plain(error.problems[0].reason))
    except StudyError as error:
        st.error(plain(error))
    else:
        who, where = markdown_text(made["user_id"]), markdown_text(names[study_id])
        if made["created"]:
            st.success(
                f"{who} is invited as {role} of {where}. Ask them to sign in with "
                "this address; their first sign-in makes them this person."
            )
        elif made["granted"]:
            st.success(f"{who} was known already and is now {role} of {where}.")
        else:
            st.info(f"{who} is {role} of {where} already.")
st.caption(
    "An invitation binds to the first sign-in whose identity provider vouches for this address "
    "(email_verified); from then on only that identity is this person."
)
