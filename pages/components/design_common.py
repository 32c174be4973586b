"""What the Design screen's steps share (screen code, like the pages): the study being designed,
its settings kept per study across steps and reruns, how a refusal is shown, and the protocol
the settings make.

A widget's own state is dropped by Streamlit when its step is not drawn; the settings are not:
they live in ``st.session_state`` under the study's id, each widget is initialised from them
and writes its value back (``kept``), so a coordinator can leave a step and come back to it.
They are also kept with the draft in the database whenever they change (``keep_settings``,
``design.save_design_draft``), so a coordinator who closes the tab, or opens the draft on another
device, finds them again; the assignment seed is the exception (drawn per sitting, sealed at
the lock).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl
import streamlit as st

from pages.components.design_endpoints import (
    PlanCheck,
    as_share,
    check_plan,
    endpoint_entry,
    new_secondary,
    statistic_of,
)
from pages.components.plain import plain
from study.access import Caller
from study.assignment import ALGORITHM
from study.errors import Problem, StateError, StudyError, ValidationError
from study.instruments import Instrument
from study.protocol import INTENDED_USE_FIELDS
from study.services import design

# A new draft's settings; each is one widget's value on the Design screen. (Comments, not
# docstrings: Streamlit's "magic" would print a bare string.)
DEFAULTS: dict[str, Any] = {
    # intended use (step 1): what the study validates the model for; free text, "" = unstated
    "use_task": "",
    "use_setting": "",
    "use_population": "",
    "use_language": "",
    # assignment (step 4)
    "mode": "side_by_side",
    "raters_per_case": 2,
    "match_specialty": False,
    "single_answer_cases": False,
    "planned_raters": 4,
    "calibration": False,
    "calibration_cases": [],
    "expected": "{}",
    "pass_threshold": 0.8,
    "repeats": False,
    "repeat_share": 0.1,
    "washout_days": 14,
    "display": "markdown",
    # analysis plan (step 5)
    "primary_item": None,
    # the primary item the direction and the margin's unit were last set for: a new primary
    # starts from its own declaration (kept, so that a reload does not undo a turned direction)
    "primary_of": None,
    "direction": None,  # the item's declaration, or the coordinator's choice: never assumed
    "margin": 0.5,  # in the primary's units: rating points, or percentage points if binary
    "alpha": 0.025,
    "method": "t",
    "sensitivity": [],
    "secondary": [],
    # each secondary endpoint's own fields, by item: {"margin" (in its units), "direction",
    # "method"} (design_endpoints.new_secondary)
    "secondary_plan": {},
    "test_arm": None,
    "reference_arm": None,
    # the sample-size panel's assumptions
    "sd": 1.0,
    "icc": 0.2,
    "expected_difference": 0.0,
}


@dataclass(frozen=True)
class Draft:
    """The study a step works on: the store and caller from app.py, the study's row, and its
    settings (a dict kept in the session, changed in place by the widgets)."""

    store: Any
    caller: Caller
    study: str
    name: str
    status: str
    settings: dict[str, Any]

    @property
    def editable(self) -> bool:
        """Only a draft changes; a locked protocol changes by a new version (step 6)."""
        return self.status == "draft"

    def key(self, name: str) -> str:
        """A widget key of this study's screen."""
        return f"design:{self.study}:{name}"


def settings_of(store: Any, caller: Caller, study: str) -> dict[str, Any]:
    """The study's settings in this session. The first time: ``DEFAULTS``, overlaid with those
    kept for the study in an earlier sitting (``design.design_draft``; a name this screen no
    longer has is dropped)."""
    key = f"design-settings:{study}"
    if key not in st.session_state:
        settings = copy.deepcopy(DEFAULTS)  # a nested default is this study's own
        stored = design.design_draft(store, caller, study)
        if stored is not None:
            settings.update((k, v) for k, v in stored["settings"].items() if k in DEFAULTS)
        st.session_state[key] = settings
        st.session_state[f"design-saved:{study}"] = _kept_part(settings)
    return st.session_state[key]


def _kept_part(settings: dict[str, Any]) -> dict[str, Any]:
    """What is kept with the draft: the settings of ``DEFAULTS``, not the session's seed or the
    marks of a dry run or a plan checked in this sitting. A copy: the session's settings change
    in place, and the copy is what the next run compares them with."""
    return copy.deepcopy({name: settings[name] for name in DEFAULTS})


def keep_settings(draft: Draft) -> None:
    """Keep the draft's settings in the database if this run changed them (one ``design.draft``
    event per change). A study locked meanwhile (by this run's lock, or in another tab) keeps
    nothing more: its protocol now holds what counts."""
    if not draft.editable:
        return
    part = _kept_part(draft.settings)
    saved = f"design-saved:{draft.study}"
    if st.session_state.get(saved) == part:
        return
    try:
        design.save_design_draft(draft.store, draft.caller, draft.study, part)
    except StateError:
        return
    st.session_state[saved] = part


def kept(
    draft: Draft,
    name: str,
    widget: Callable[..., Any],
    label: str,
    *args: Any,
    options: Sequence[Any] | None = None,
    **kwargs: Any,
) -> Any:
    """Draw ``widget`` for the setting ``name``, initialised from the settings, and keep its
    value there. ``options``: a choice's options (a kept value that is no longer one of them,
    e.g. an item of a detached instrument, falls back to the first). ``unset``: None is a
    value (a choice not made yet, shown as none chosen), not replaced by the first option."""
    value = _drawn(
        draft, draft.key(name), draft.settings[name], widget, label, args, options, kwargs
    )
    draft.settings[name] = value
    return value


def kept_field(
    draft: Draft,
    item: str,
    name: str,
    widget: Callable[..., Any],
    label: str,
    *args: Any,
    options: Sequence[Any] | None = None,
    **kwargs: Any,
) -> Any:
    """``kept`` for field ``name`` of the secondary endpoint on ``item`` (the settings'
    ``secondary_plan``). The endpoint's fields are replaced, never changed in place."""
    fields = draft.settings["secondary_plan"][item]
    key = draft.key(f"secondary:{item}:{name}")
    value = _drawn(draft, key, fields.get(name), widget, label, args, options, kwargs)
    if fields.get(name) != value:
        plan = draft.settings["secondary_plan"]
        draft.settings["secondary_plan"] = {**plan, item: {**fields, name: value}}
    return value


def _drawn(
    draft: Draft,
    key: str,
    value: Any,
    widget: Callable[..., Any],
    label: str,
    args: tuple[Any, ...],
    options: Sequence[Any] | None,
    kwargs: dict[str, Any],
) -> Any:
    """The widget drawn under ``key``, starting from ``value`` when Streamlit holds none (a
    widget's own state is dropped while its step is not drawn); returns its value."""
    unset = kwargs.pop("unset", False)
    if options is not None and key in st.session_state:
        held = st.session_state[key]
        stale = (
            any(v not in options for v in held)
            if isinstance(held, list)
            else held not in options and not (unset and held is None)
        )
        if stale:  # the options changed (another primary item): start from the settings again
            del st.session_state[key]
    if key not in st.session_state:
        if options is not None and isinstance(value, list):
            value = [v for v in value if v in options]
        elif options is not None and value not in options and not (unset and value is None):
            value = options[0] if options else None
        st.session_state[key] = value
    if options is not None:
        args = (options, *args)
    return widget(label, *args, key=key, disabled=not draft.editable, **kwargs)


def show_error(error: StudyError, *, key: str) -> None:
    """A refusal on the screen: a rejected input as its full report (every problem with its
    file, row, column and reason, as the importers and checks list them), anything else as its
    message. Never a traceback."""
    if isinstance(error, ValidationError):
        st.error(
            f"{error.total:,} problem{'s' if error.total != 1 else ''} found; nothing was stored.",
            icon=":material/error:",
        )
        st.dataframe(problems_table(error.problems), hide_index=True, key=key)
    else:
        st.error(plain(error), icon=":material/error:")


def problems_table(problems: Sequence[Problem]) -> pl.DataFrame:
    """One row per problem: file, row (1-based over data rows; empty for the whole file or
    column), column, problem."""
    return pl.DataFrame(
        {
            "file": [p.file for p in problems],
            "row": [p.row for p in problems],
            "column": [p.column for p in problems],
            "problem": [p.reason for p in problems],
        },
        schema={"file": pl.String, "row": pl.Int64, "column": pl.String, "problem": pl.String},
    )


def protocol_of(
    draft: Draft, attached: Sequence[Instrument], items: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The protocol the draft's settings make, as ``design.lock_protocol`` freezes it (its
    keys as the demo's protocol and ``analyses`` read them). ``items``: the study's items by
    key (their definitions). ``ValidationError`` when the calibration's expected values are not
    a JSON object."""
    s = draft.settings
    protocol: dict[str, Any] = {
        "title": draft.name,
        "instruments": [
            {"key": i.key, "version": i.version, "content_hash": i.content_hash()} for i in attached
        ],
        "display": s["display"],
        **analysis_plan(s, items),
        "assignment": {
            "mode": s["mode"],
            "raters_per_case": s["raters_per_case"],
            "match_specialty": s["match_specialty"],
            "algorithm": ALGORITHM,
            "exclude_own_answers": True,
        },
    }
    if use := intended_use_of(s):
        protocol["intended_use"] = use
    if s["single_answer_cases"]:
        protocol["single_answer_cases"] = True
    if s["calibration"]:
        protocol["calibration"] = {
            "cases": list(s["calibration_cases"]),
            "expected": expected_values(s["expected"]),
            "pass_threshold": s["pass_threshold"],
        }
    if s["repeats"]:
        protocol["repeats"] = {"share": s["repeat_share"], "washout_days": s["washout_days"]}
    return protocol


def intended_use_of(s: dict[str, Any]) -> dict[str, str]:
    """The protocol's ``intended_use`` from settings ``s``: the fields stated (blank ones left
    out), keyed as ``study.protocol.INTENDED_USE_FIELDS``; {} when none is."""
    given = {f: str(s.get(f"use_{f}") or "").strip() for f in INTENDED_USE_FIELDS}
    return {f: v for f, v in given.items() if v}


def analysis_plan(s: dict[str, Any], items: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The protocol's analysis plan made by settings ``s``: ``primary_endpoint``,
    ``secondary_endpoints`` and, once both are chosen, the compared ``arms``; each margin in
    the protocol's units (``design_endpoints.as_share``)."""
    primary_item = items.get(s["primary_item"] or "")
    primary: dict[str, Any] = {"item": s["primary_item"]}
    if statistic_of(primary_item) == "risk_difference":
        primary["statistic"] = "risk_difference"
    # a margin or direction not chosen yet is left out: design_endpoints.check_plan names it
    if s["margin"] is not None:
        primary["margin"] = as_share(s["margin"], primary_item)
    if s["direction"] is not None:
        primary["direction"] = s["direction"]
    primary |= {"alpha": s["alpha"], "sided": "one-sided", "method": s["method"]}
    if s["sensitivity"]:
        primary["sensitivity_methods"] = list(s["sensitivity"])
    secondary = [
        endpoint_entry(
            key, items.get(key), s["secondary_plan"].get(key) or new_secondary(items.get(key))
        )
        for key in s["secondary"]
    ]
    plan: dict[str, Any] = {"primary_endpoint": primary, "secondary_endpoints": secondary}
    arms = {"test": s["test_arm"], "reference": s["reference_arm"]}
    if all(arms.values()):
        plan["arms"] = arms
    return plan


def plan_check(
    draft: Draft, items: dict[str, dict[str, Any]], protocol: dict[str, Any] | None = None
) -> PlanCheck:
    """``design_endpoints.check_plan`` of ``protocol`` (default: the draft's analysis plan
    alone, which step 5 checks while the rest may still be in the making), the hypotheses
    naming the draft's test and reference arms."""
    s = draft.settings
    return check_plan(
        protocol if protocol is not None else analysis_plan(s, items),
        items,
        test=s["test_arm"] or "test",
        reference=s["reference_arm"] or "reference",
    )


def expected_values(text: str) -> dict[str, Any]:
    """The calibration's expected values typed as JSON: an object {case: {item: value}}."""
    try:
        value = json.loads(text or "{}")
    except ValueError as error:
        raise ValidationError(
            [Problem("protocol", None, "calibration.expected", f"not JSON: {error}")]
        ) from None
    if not isinstance(value, dict):
        raise ValidationError(
            [Problem("protocol", None, "calibration.expected", "must be a JSON object {...}")]
        )
    return value
