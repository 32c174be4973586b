"""Design (coordinator): from an empty study to a locked protocol and open rating, in seven steps
walked in order, each saying what is done; any step can be revisited while the study is a draft.

1. Study: create one (name, id) or pick one to design.
2. Content: upload cases, arms and answers (the importers' full report on a rejected file,
   nothing stored), and see each arm's provenance, what was never recorded highlighted.
3. Instrument: a built-in one or an uploaded custom file, and a preview of exactly what a rater
   sees (the rating sheet on a sample case; nothing is stored).
4. Assignment: mode, raters per case, specialty matching, calibration and repeats; the dry run
   (as ``python -m study assign --dry-run`` prints it) with a rater x case heatmap, and the
   blinding leak report per arm.
5. Analysis plan: the primary and each secondary endpoint with its own margin (in its units:
   rating points, or percentage points for a binary item), direction and method, and its H0 in
   words; one-sided alpha; the power of the design and the cases that reach 80% and 90%.
6. Lock: the protocol to be frozen and what each endpoint tests; the lock, offered (behind a
   confirmation) only once the plan has no problem left; then its hash, version and history, and
   a new version only with a reason.
7. Raters and rating: invite raters by e-mail, and open rating (with a confirmation).

The draft's settings are kept in the session per study, and with the draft in the database as
they change, for the next sitting (``pages/components/design_common``).
Every refusal of a service shows as its message (a rejected file as its full report); the
services decide what is allowed, this screen only offers it.
"""

from __future__ import annotations

import streamlit as st

from pages.components.design_common import Draft, keep_settings, settings_of, show_error
from pages.components.design_content import step_content, step_instrument
from pages.components.design_lock import step_lock, step_open
from pages.components.design_plan import step_assignment, step_plan
from pages.components.design_use import intended_use
from pages.components.handover import store_and_caller
from study.access import allowed
from study.errors import StudyError
from study.rendering import markdown_code, markdown_text
from study.services import content, design, instrument_library, studies

store, caller = store_and_caller()

st.title("Design")

if flash := st.session_state.pop("design_flash", None):
    st.success(flash, icon=":material/check:")

STEPS = (
    "Study",
    "Content",
    "Instrument",
    "Assignment",
    "Analysis plan",
    "Lock",
    "Raters and rating",
)


def create() -> None:
    """The create form's callback: a new draft, chosen at once, and on to step 2."""
    name = st.session_state.get("design_new_name", "")
    given = (st.session_state.get("design_new_id") or "").strip()
    try:
        made = studies.create_study(store, caller, name, study_id=given or None)
    except StudyError as error:
        st.session_state["design_create_error"] = error
        return
    st.session_state["design_study"] = made
    st.session_state["design_step"] = 2
    st.session_state["design_flash"] = f"Study {made} created as a draft."


visible = studies.list_studies(store, caller)
mine = {
    row["id"]: row
    for row in visible.iter_rows(named=True)
    if allowed(store, caller, "design_study", study=row["id"])
}
may_create = allowed(store, caller, "create_study")
if not mine and not may_create:
    st.info("You design no study: the coordinator's role in a study opens this screen.")
    st.stop()

study_id = None
if mine:
    if st.session_state.get("design_study") not in mine:
        drafts = [sid for sid, row in mine.items() if row["status"] == "draft"]
        st.session_state["design_study"] = (drafts or list(mine))[0]
    study_id = st.selectbox(
        "Study",
        list(mine),
        format_func=lambda sid: f"{mine[sid]['name']} ({sid})",
        key="design_study",
    )
    st.markdown(f":blue-badge[:material/flag: {mine[study_id]['status'].capitalize()}]")

draft = (
    Draft(
        store,
        caller,
        study_id,
        mine[study_id]["name"],
        mine[study_id]["status"],
        settings_of(store, caller, study_id),
    )
    if study_id
    else None
)


def done_steps(draft: Draft) -> set[int]:
    """The steps whose work is done, from what is stored (and the draft's settings)."""
    if not draft.editable:
        return {1, 2, 3, 4, 5, 6} | ({7} if draft.status != "locked" else set())
    coverage = design.arm_coverage(store, caller, draft.study)
    cases = content.list_cases(store, caller, draft.study).height
    done = {1}
    if cases and coverage.height and coverage.get_column("answers").min() > 0:
        done.add(2)
    if instrument_library.study_instruments(store, caller, draft.study):
        done.add(3)
    if draft.settings.get("dry_run_ok"):
        done.add(4)
    if draft.settings["primary_item"] and draft.settings.get("plan_ok"):
        done.add(5)
    return done


# The step menu is drawn above the step but after it has run, so that its marks count what the
# step just did (an import, an attachment, a lock).
menu = st.container()
if not draft:
    st.session_state["design_step"] = 1
step = st.session_state.get("design_step", 1)
if isinstance(step, str):
    # The browser names the chosen step by its label as it drew it, and Streamlit hands back
    # that text when no label matches any more: a step's ✓ changes its label (attaching an
    # instrument turns "3. Instrument" into "3. Instrument ✓"). The number leads the label.
    number = step.split(".", 1)[0]
    step = int(number) if number.isdigit() and 1 <= int(number) <= len(STEPS) else 1
    st.session_state["design_step"] = step
st.subheader(f"{step}. {STEPS[step - 1]}", anchor=False)

if step == 1:
    if draft:
        st.markdown(
            f"Designing **{markdown_text(draft.name)}** ({markdown_code(draft.study)}), status "
            f":blue-badge[{draft.status}]."
            + (
                " Walk the steps in order; each can be revisited while it is a draft. The"
                " assignment settings and the analysis plan are kept with the draft as you"
                " change them, for your next sitting or another device."
                if draft.editable
                else ""
            )
        )
    if draft:
        intended_use(draft)
    if may_create:
        with st.form("design_create", clear_on_submit=True):
            st.markdown("**Create a study**")
            st.text_input("Name", key="design_new_name", placeholder="e.g. Patient questions 2027")
            st.text_input(
                "Id (optional)",
                key="design_new_id",
                help="Made from the name when empty; no spaces.",
            )
            st.form_submit_button("Create the study", on_click=create, icon=":material/add:")
        if error := st.session_state.pop("design_create_error", None):
            show_error(error, key="design_create_problems")
    else:
        # say why there is no create form, rather than leave the coordinator to wonder
        st.info(
            "Creating a study needs the coordinator's role for every study (an administrator "
            "grants it on the People screen)"
            + (
                f"; you coordinate {len(mine)} {'study' if len(mine) == 1 else 'studies'} only."
                if mine
                else "."
            ),
            icon=":material/info:",
        )
elif step == 2:
    step_content(draft)
elif step == 3:
    step_instrument(draft)
elif step == 4:
    step_assignment(draft)
elif step == 5:
    step_plan(draft)
elif step == 6:
    step_lock(draft)
else:
    step_open(draft)

if draft:
    keep_settings(draft)
done = done_steps(draft) if draft else set()
with menu:
    st.radio(
        "Step",
        range(1, len(STEPS) + 1) if draft else [1],
        format_func=lambda n: f"{n}. {STEPS[n - 1]}" + (" ✓" if n in done else ""),
        horizontal=True,
        key="design_step",
    )
    st.divider()

if draft and step < len(STEPS):

    def forward() -> None:
        st.session_state["design_step"] = step + 1

    st.divider()
    st.button(
        f"Next: {step + 1}. {STEPS[step]}",
        key="design_next",
        on_click=forward,
        icon=":material/arrow_forward:",
    )
