"""The Design screen's intended use (step 1): what the study validates the model for.

Four free-text fields kept with the draft's settings and locked with the protocol as its
``intended_use`` (``study.protocol.IntendedUse``): the task, the setting, the specialty or
population, and the language. A validation holds for the use it was tested in; a register of
validations files each result under it.
"""

from __future__ import annotations

import streamlit as st

from pages.components.design_common import Draft, kept
from study.protocol import INTENDED_USE_FIELDS, INTENDED_USE_WORDS, MAX_INTENDED_USE_CHARS
from study.rendering import markdown_text
from study.services import design

PLACEHOLDERS = {
    "task": "e.g. draft replies to patients' portal messages",
    "setting": "e.g. primary care, reviewed by a clinician before sending",
    "population": "e.g. adults with chronic conditions; general practice",
    "language": "e.g. English",
}


def intended_use(draft: Draft) -> None:
    """The intended use: editable fields while the study is a draft, the locked protocol's
    statement afterwards."""
    st.markdown("**Intended use**")
    if not draft.editable:
        stated = design.get_protocol(draft.store, draft.caller, draft.study)["content"].get(
            "intended_use"
        )
        if not stated:
            st.caption("The locked protocol states no intended use.")
            return
        for field, words in zip(INTENDED_USE_FIELDS, INTENDED_USE_WORDS, strict=True):
            if stated.get(field):
                st.markdown(f"{words}: {markdown_text(stated[field])}")
        return
    st.caption(
        "What the model is validated for: locked with the protocol, and what a validation "
        "register files the result under. Leave a field empty if it does not apply."
    )
    left, right = st.columns(2)
    for n, (field, words) in enumerate(zip(INTENDED_USE_FIELDS, INTENDED_USE_WORDS, strict=True)):
        with left if n % 2 == 0 else right:
            kept(
                draft,
                f"use_{field}",
                st.text_input,
                words,
                placeholder=PLACEHOLDERS[field],
                max_chars=MAX_INTENDED_USE_CHARS,
            )
