"""The Design screen's last steps (screen code): 6, locking the protocol (and, once locked, a new
version with a reason, and the version history); 7, inviting raters and opening rating."""

from __future__ import annotations

import json

import polars as pl
import streamlit as st

from pages.components.design_common import (
    Draft,
    plan_check,
    protocol_of,
    show_error,
)
from pages.components.design_endpoints import PlanCheck
from pages.components.design_plan import design_seed
from pages.components.status import status_words
from study.errors import Problem, StudyError, ValidationError
from study.rendering import markdown_text
from study.services import design, instrument_library, lifecycle, monitoring, people


def step_lock(draft: Draft) -> None:
    """Step 6: the protocol to be frozen and the lock (a draft); its hash, version and history
    and a new version with a reason (a locked study)."""
    if draft.editable:
        lock(draft)
    else:
        locked(draft)


def lock(draft: Draft) -> None:
    items = {
        key: json.loads(d)
        for key, d in instrument_library.study_items(draft.store, draft.caller, draft.study)
        .select("item_key", "definition")
        .iter_rows()
    }
    attached = instrument_library.study_instruments(draft.store, draft.caller, draft.study)
    if not draft.settings["primary_item"]:
        st.info("Choose the primary endpoint first (step 5).")
        return
    try:
        protocol = protocol_of(draft, attached, items)
    except StudyError as error:
        show_error(error, key=draft.key("protocol-problems"))
        return
    st.markdown(
        "**The protocol to be frozen.** After the lock nothing in it changes, and no case, arm, "
        "answer or instrument can be added. The assignment seed is drawn now and sealed: the "
        "protocol holds only its commitment until unblinding."
    )
    st.json(protocol, expanded=True)
    check = plan_check(draft, items, protocol)
    hypotheses(check)
    if not check.ok:
        # parse is what every reader of a locked protocol runs: a plan it refuses, or one with a
        # margin left empty (that endpoint would silently go untested), is not offered the lock
        st.error(
            f"The protocol cannot be locked yet: {len(check.problems)} problem(s). Step 5 shows "
            "each next to its field.",
            icon=":material/error:",
        )
        st.dataframe(
            pl.DataFrame(
                {
                    "field": [check.field_in_words(p.column) for p in check.problems],
                    "problem": [p.reason for p in check.problems],
                },
                schema={"field": pl.String, "problem": pl.String},
            ),
            hide_index=True,
            key=draft.key("plan-problems"),
            column_config={"field": "Field", "problem": "Problem"},
        )
        return
    if not draft.settings.get("dry_run_ok"):
        # the seed is drawn per sitting (it is never kept with the draft's settings): a dry run
        # seen in an earlier sitting showed another allocation than the one this lock seals
        st.info(
            "You have not looked at the dry run in this sitting: step 4 shows the allocation "
            "this lock will seal.",
            icon=":material/info:",
        )
    sure = st.checkbox(
        f"I have checked the protocol: lock {markdown_text(draft.name)} now.",
        key=draft.key("lock-sure"),
    )
    if st.button(
        "Lock the protocol",
        type="primary",
        icon=":material/lock:",
        disabled=not sure,
        key=draft.key("lock"),
    ):
        try:
            digest = design.lock_protocol(
                draft.store, draft.caller, draft.study, protocol, seed=design_seed(draft)
            )
        except StudyError as error:
            show_error(error, key=draft.key("lock-problems"))
        else:
            st.session_state["design_flash"] = f"Protocol locked, hash {digest}."
            st.rerun()


def hypotheses(check: PlanCheck) -> None:
    """What each endpoint of the plan tests, in words (``analyses.endpoint_hypotheses``), before the
    lock freezes it."""
    st.markdown("**What each endpoint tests**")
    for endpoint in check.endpoints:
        if endpoint.hypotheses:
            h0, h1 = endpoint.hypotheses
            st.caption(f"**{endpoint.item}**  \n{h0}  \n{h1}")
        elif endpoint.problems:
            st.caption(f"**{endpoint.item}**  \nNot stated yet: see the problems below.")
        else:
            st.caption(f"**{endpoint.item}**  \nDescriptive: no margin and no test.")


def locked(draft: Draft) -> None:
    protocol = design.get_protocol(draft.store, draft.caller, draft.study)
    st.success(
        f"Protocol version {protocol['version']} locked on {protocol['locked_at']:%Y-%m-%d %H:%M}"
        f" UTC by {protocol['locked_by']}.",
        icon=":material/lock:",
    )
    st.markdown("**Protocol hash (SHA-256 of its canonical JSON)**")
    st.code(protocol["content_hash"], language=None)
    history = pl.DataFrame(
        [
            {k: row[k] for k in ("version", "content_hash", "reason", "locked_at", "locked_by")}
            for row in (
                design.get_protocol(draft.store, draft.caller, draft.study, version=v)
                for v in range(1, protocol["version"] + 1)
            )
        ]
    )
    st.markdown("**Version history**")
    st.dataframe(
        history,
        hide_index=True,
        key=draft.key("history"),
        column_config={
            "version": "Version",
            "content_hash": st.column_config.TextColumn("Hash", width="medium"),
            "reason": st.column_config.TextColumn("Reason for the change", width="large"),
            "locked_at": st.column_config.DatetimeColumn("Locked (UTC)"),
            "locked_by": "By",
        },
    )
    with st.expander("The protocol", expanded=False):
        st.json(protocol["content"])
    if draft.status not in ("locked", "rating"):
        return
    with st.expander("New protocol version"):
        st.caption(
            "A locked version never changes: a change is a new version, with the reason recorded "
            "in the protocol history and the audit trail. The calibration cases and the share "
            "repeated cannot change once assignments are made."
        )
        text = st.text_area(
            "The new version (JSON)",
            value=json.dumps(protocol["content"], indent=2, ensure_ascii=False),
            height=300,
            key=draft.key("amend-text"),
        )
        reason = st.text_input("Reason for the change", key=draft.key("amend-reason"))
        if st.button("Lock the new version", key=draft.key("amend")):
            amend(draft, text, reason)


def amend(draft: Draft, text: str, reason: str) -> None:
    try:
        content = json.loads(text)
        if not isinstance(content, dict):
            raise ValueError("the protocol must be a JSON object {...}")
    except ValueError as error:
        show_error(
            ValidationError([Problem("protocol", None, None, f"not a JSON object: {error}")]),
            key=draft.key("amend-problems"),
        )
        return
    try:
        digest = design.lock_protocol(
            draft.store, draft.caller, draft.study, content, reason=reason or None
        )
    except StudyError as error:
        show_error(error, key=draft.key("amend-problems"))
    else:
        st.session_state["design_flash"] = f"New protocol version locked, hash {digest}."
        st.rerun()


# --- step 7: raters and rating ---------------------------------------------------------------


def step_open(draft: Draft) -> None:
    """Step 7: the study's raters, invitations by e-mail, and opening rating."""
    raters = people.study_raters(draft.store, draft.caller, draft.study)
    st.markdown(f"**Raters of the study: {raters.height}**")
    if raters.height:
        st.dataframe(
            raters,
            hide_index=True,
            key=draft.key("raters"),
            column_config={
                "id": "Id",
                "display_name": "Name",
                "email": "E-mail",
                "specialty": "Specialty",
                "waiting": st.column_config.CheckboxColumn("Not signed in yet"),
            },
        )
    with st.form(draft.key("invite"), clear_on_submit=True):
        st.markdown("**Invite a rater by e-mail**")
        email = st.text_input(
            "E-mail address", placeholder="name@hospital.example", key=draft.key("invite-email")
        )
        name = st.text_input(
            "Name", placeholder="as the app should show it", key=draft.key("invite-name")
        )
        sent = st.form_submit_button("Invite", icon=":material/send:")
    if "demo_place" in st.session_state:  # the demo without sign-in (app.demo_caller)
        st.caption(
            'Demo without sign-in: only the demo\'s people can be picked under "Acting as". '
            "To try rating yourself, invite a demo rater by address (e.g. "
            "`ada.example@demo.clinval.example`, all in `data/demo/raters.csv`); someone "
            "invited with another address rates once sign-in is configured."
        )
    if sent:
        try:
            made = people.invite(
                draft.store, draft.caller, draft.study, email, "rater", display_name=name
            )
        except StudyError as error:
            show_error(error, key=draft.key("invite-problems"))
        else:
            st.session_state["design_flash"] = (
                f"{markdown_text(made['user_id'])} is invited as a rater of "
                f"{markdown_text(draft.name)}."
                if made["created"]
                else f"{markdown_text(made['user_id'])} is a rater of {markdown_text(draft.name)}."
            )
            st.rerun()
    st.subheader("Open rating", anchor=False)
    if draft.status == "draft":
        st.info("Lock the protocol first (step 6).")
        return
    if draft.status != "locked":
        st.success(f"The study is {status_words(draft.status)}.", icon=":material/check:")
        return
    status = monitoring.study_status(draft.store, draft.caller, draft.study, per_arm=False)
    plan = design.get_protocol(draft.store, draft.caller, draft.study)["content"].get(
        "assignment"
    ) or {"raters_per_case": 2}
    todo = (
        f"{status['assignments']:,} assignments are stored."
        if status["assignments"]
        else f"Opening assigns the study's {raters.height} rater(s) as the locked protocol says "
        f"({plan.get('mode', 'side_by_side').replace('_', ' ')}, "
        f"{plan.get('raters_per_case')} per case), with the sealed seed."
    )
    st.caption(todo + " From then on raters can rate; nothing in the design changes.")
    sure = st.checkbox(
        f"Open rating of {markdown_text(draft.name)} now.", key=draft.key("open-sure")
    )
    if st.button(
        "Open rating",
        type="primary",
        disabled=not sure,
        key=draft.key("open"),
        icon=":material/play_arrow:",
    ):
        try:
            if not status["assignments"]:
                design.make_assignments(
                    draft.store,
                    draft.caller,
                    draft.study,
                    raters_per_case=int(plan.get("raters_per_case") or 2),
                    mode=plan.get("mode") or "side_by_side",
                    match_specialty=bool(plan.get("match_specialty")),
                )
            lifecycle.start_rating(draft.store, draft.caller, draft.study)
        except StudyError as error:
            show_error(error, key=draft.key("open-problems"))
        else:
            st.session_state["design_flash"] = f"Rating of {markdown_text(draft.name)} is open."
            st.rerun()
