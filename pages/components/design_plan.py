"""The Design screen's planning steps (screen code): 4, the assignment settings with the dry run
(the tables of ``python -m study assign --dry-run``, a rater x case heatmap, the blinding leak
report); 5, the analysis plan with its sample-size panel."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import plotly.express as px
import polars as pl
import streamlit as st

from analysis.leakage import AUC_WARNING
from pages.components.design_common import (
    Draft,
    kept,
    kept_field,
    plan_check,
    show_error,
)
from pages.components.design_endpoints import (
    METHOD_NAMES,
    PERCENTAGE_POINTS,
    PRIMARY,
    EndpointCheck,
    declared_direction,
    methods_for,
    new_secondary,
    statistic_of,
    unit_of,
    where_of,
)
from pages.components.plain import plain
from pages.components.status import status_words
from study.assignment import MODES
from study.errors import StudyError
from study.rendering import markdown_text
from study.services import analyses, content, design, instrument_library, people

MODE_NAMES = {
    "side_by_side": "Side by side: all of a case's answers on one screen",
    "pairwise": "Pairwise: two answers on a screen",
    "separate": "Separate: one answer per screen",
}

DISPLAYS = {  # study.rendering.MODES, by what a coordinator sees
    "markdown": "Markdown (headings, lists, emphasis)",
    "markdown_breaks": "Markdown, each line break kept",
    "plain": "Plain text, as typed",
}


def design_seed(draft: Draft) -> int | None:
    """The seed of the draft's design: drawn once per draft in this session (by the service,
    ``design.draw_seed``) and sealed at the lock, so that the dry run shows the design that will
    be stored; None once sealed."""
    if not draft.editable:
        return None
    if "seed" not in draft.settings:
        draft.settings["seed"] = design.draw_seed(draft.store, draft.caller, draft.study)
    return draft.settings["seed"]


def step_assignment(draft: Draft) -> None:
    """Step 4: the settings (a draft), or the locked protocol's; then the dry run."""
    raters = people.study_raters(draft.store, draft.caller, draft.study)
    if draft.editable:
        options = assignment_settings(draft, raters)
    else:
        locked = design.get_protocol(draft.store, draft.caller, draft.study)["content"]
        plan = locked.get("assignment") or {}
        st.info(
            f"The study is {status_words(draft.status)}: its assignment settings are the locked protocol's.",
            icon=":material/lock:",
        )
        st.json(
            {k: locked[k] for k in ("assignment", "calibration", "repeats") if k in locked},
            expanded=True,
        )
        options = {
            "raters_per_case": int(plan.get("raters_per_case") or 2),
            "mode": plan.get("mode") or "side_by_side",
            "match_specialty": bool(plan.get("match_specialty")),
        }
    if not raters.height and not draft.editable:
        st.caption("No raters yet: invite them in step 7; the dry run needs them.")
        return
    st.subheader("Dry run", anchor=False)
    try:
        summary = design.preview_assignments(
            draft.store, draft.caller, draft.study, seed=design_seed(draft), **options
        )
    except StudyError as error:
        show_error(error, key=draft.key("dry-run-problems"))
        draft.settings["dry_run_ok"] = False
    else:
        draft.settings["dry_run_ok"] = True
        show_summary(draft, summary)
    leaks(draft)


def assignment_settings(draft: Draft, raters: pl.DataFrame) -> dict[str, Any]:
    """The settings' widgets; returns ``preview_assignments``'s options for them."""
    left, right = st.columns(2)
    with left:
        mode = kept(
            draft, "mode", st.selectbox, "Mode", options=list(MODES), format_func=MODE_NAMES.get
        )
        per_case = kept(
            draft, "raters_per_case", st.number_input, "Raters per case", min_value=1, step=1
        )
        match = kept(
            draft, "match_specialty", st.checkbox, "Only raters of the case's specialty rate it"
        )
        kept(
            draft,
            "display",
            st.selectbox,
            "Answers shown as",
            options=list(DISPLAYS),
            format_func=DISPLAYS.get,
            help="Markdown renders headings, lists and emphasis, and runs lines separated by a "
            "single line break into one paragraph (as Markdown does); many clinicians' answers "
            "start each paragraph on a new line, which the second choice keeps. Plain shows the "
            "text as typed, every line break kept, with no formatting. Check a case in the "
            "preview (step 3).",
        )
        single_answer_cases(draft)
    with right:
        if raters.height:
            rater_ids = None
            st.markdown(
                f"**Raters:** the study's {raters.height} rater(s): "
                + ", ".join(f"`{r}`" for r in raters.get_column("id"))
            )
        else:
            planned = kept(
                draft,
                "planned_raters",
                st.number_input,
                "Raters you plan to invite (none invited yet)",
                min_value=1,
                step=1,
            )
            rater_ids = [f"planned-rater-{n:02d}" for n in range(1, planned + 1)]
            st.caption("Until raters are invited (step 7) the dry run uses planned raters.")
    gold, share = calibration_and_repeats(draft)
    return {
        "raters": rater_ids,
        "raters_per_case": int(per_case),
        "mode": mode,
        "match_specialty": match,
        "calibration_cases": gold,
        "repeat_share": share,
    }


def single_answer_cases(draft: Draft) -> None:
    """Whether a case answered by one arm only is rated (the protocol's ``single_answer_cases``;
    without it the lock refuses such cases), offered with how many cases it concerns."""
    answers = design.answered_cases(draft.store, draft.caller, draft.study)
    single = answers.group_by("case_id").len().filter(pl.col("len") == 1).height
    kept(
        draft,
        "single_answer_cases",
        st.checkbox,
        "Rate cases that have a single answer",
        help="Third-party data often have arms that answered different cases. A case with one "
        "answer shows that answer alone; without this, the lock refuses such cases "
        '(the protocol\'s "single_answer_cases"). A pairwise item needs two answers anyway.',
    )
    if single:
        st.caption(
            f"{single:,} case(s) have a single answer: rate them (tick the box above), or "
            "remove them before the lock (`python -m study remove`)."
        )


def calibration_and_repeats(draft: Draft) -> tuple[list[str], float]:
    """The calibration round's and the repeats' widgets; returns (calibration cases, share)."""
    cases = content.list_cases(draft.store, draft.caller, draft.study).get_column("case_id")
    gold: list[str] = []
    share = 0.0
    with st.expander("Calibration and repeats", expanded=draft.settings["calibration"]):
        if kept(draft, "calibration", st.checkbox, "A calibration round before live rating"):
            gold = kept(
                draft,
                "calibration_cases",
                st.multiselect,
                "Calibration cases (every rater does them first)",
                options=cases.to_list(),
            )
            kept(
                draft,
                "expected",
                st.text_area,
                'Expected values, JSON: {case: {item: value, or {"Response A": value}}}',
                help="Responses are labelled in answer-id order on a calibration screen.",
            )
            kept(
                draft,
                "pass_threshold",
                st.slider,
                "Pass threshold (share of expected values matched)",
                0.05,
                1.0,
                step=0.05,
            )
        if kept(draft, "repeats", st.checkbox, "Repeat a share of each rater's cases"):
            share = kept(draft, "repeat_share", st.slider, "Share repeated", 0.05, 1.0, step=0.05)
            kept(draft, "washout_days", st.number_input, "Washout (days)", min_value=1, step=1)
    return gold, share


def show_summary(draft: Draft, summary: dict[str, pl.DataFrame]) -> None:
    """The dry run's tables and the rater x case heatmap."""
    loads, per_case = summary["loads"], summary["raters_per_case"]
    spread = per_case.get_column("raters")
    first, second, third = st.columns(3)
    first.metric("Raters", loads.height)
    second.metric("Live assignments", f"{int(loads.get_column('assignments').sum()):,}")
    third.metric(
        "Raters per case",
        f"{spread.min()}" if spread.min() == spread.max() else f"{spread.min()}-{spread.max()}",
    )
    left, right = st.columns(2)
    with left:
        st.markdown("**Loads per rater**")
        st.dataframe(loads, hide_index=True, key=draft.key("loads"))
        st.markdown("**Rater-pair overlap (cases in common)**")
        st.dataframe(summary["overlap"], hide_index=True, key=draft.key("overlap"))
    with right:
        st.markdown("**Arm x position per rater (times shown)**")
        grid = (
            summary["arm_positions"]
            .with_columns(pl.format("position {}", "position").alias("at"))
            .pivot(on="at", index=["rater_id", "arm_id"], values="shown", sort_columns=True)
            .fill_null(0)
        )
        st.dataframe(grid, hide_index=True, key=draft.key("arm-positions"))
        st.markdown("**Raters per case**")
        st.dataframe(per_case, hide_index=True, key=draft.key("raters-per-case"))
    st.markdown("**Who rates which case**")
    st.plotly_chart(coverage_heatmap(summary["coverage"]), key=draft.key("heatmap"))
    st.caption(
        "Each cell counts a rater's assignments of a case: 1 once, 2 when the case comes back "
        "as a repeat; calibration cases are everyone's."
    )


def coverage_heatmap(coverage: pl.DataFrame):
    """Raters (rows) x cases (columns), each cell the rater's assignments of the case."""
    counts = (
        coverage.group_by("rater_id", "case_id")
        .agg(pl.len().alias("assignments"))
        .pivot(on="case_id", index="rater_id", values="assignments", sort_columns=True)
        .fill_null(0)
        .sort("rater_id")
    )
    cases = counts.columns[1:]
    figure = px.imshow(
        counts.select(cases).to_numpy(),
        x=cases,
        y=counts.get_column("rater_id").to_list(),
        labels={"x": "Case", "y": "Rater", "color": "Assignments"},
        color_continuous_scale="Blues",
        zmin=0,
        aspect="auto",
    )
    figure.update_layout(
        height=max(260, 24 * counts.height + 120), margin={"l": 0, "r": 0, "t": 10, "b": 0}
    )
    figure.update_xaxes(showticklabels=len(cases) <= 60)
    return figure


def leaks(draft: Draft) -> None:
    """The blinding leak report per arm, with a warning for an arm that length and format alone
    tell apart."""
    st.subheader("Blinding leak report", anchor=False)
    report = design.leak_report(draft.store, draft.caller, draft.study)
    if not report.height:
        st.caption("No answers yet.")
        return
    st.dataframe(
        report,
        hide_index=True,
        key=draft.key("leaks"),
        column_config={
            "arm_id": "Arm",
            "n_answers": "Answers",
            "mean_words": st.column_config.NumberColumn("Mean words", format="%.0f"),
            "median_words": st.column_config.NumberColumn("Median words", format="%.0f"),
            "p25_words": st.column_config.NumberColumn("Words, 25th pct", format="%.0f"),
            "p75_words": st.column_config.NumberColumn("Words, 75th pct", format="%.0f"),
            "share_markdown": st.column_config.NumberColumn("Markdown", format="percent"),
            "share_self_identifying": st.column_config.NumberColumn(
                "Self-identifying", format="percent"
            ),
            "share_signature": st.column_config.NumberColumn("Signed", format="percent"),
            "format_auc": st.column_config.NumberColumn("Format AUC", format="%.2f"),
            "warning": st.column_config.CheckboxColumn("Warning"),
        },
    )
    for row in report.filter(pl.col("warning")).iter_rows(named=True):
        st.warning(
            f"Length and format alone tell arm **{markdown_text(row['arm_id'])}** apart (cross-validated AUC "
            f"{row['format_auc']:.2f} > {AUC_WARNING}): raters may guess the source. Normalise "
            "the answers' formatting and length before locking.",
            icon=":material/visibility:",
        )
    leak_pairs(draft, report.height)


def leak_pairs(draft: Draft, arms: int) -> None:
    """Each pair of arms on the cases both answered: what a rater compares when their answers
    to one case are shown. With three arms or more the per-arm AUC above pools the others, and
    an arm that stands out against one of them can pass unnoticed."""
    if arms < 3:
        return  # with two arms the per-arm figure is already this pair's
    pairs = design.leak_pairs(draft.store, draft.caller, draft.study)
    if not pairs.height:
        return
    st.markdown("**Pair by pair, on the cases both arms answered**")
    st.dataframe(
        pairs,
        hide_index=True,
        key=draft.key("leak-pairs"),
        column_config={
            "arm_a": "Arm",
            "arm_b": "Against",
            "shared_cases": "Shared cases",
            "format_auc": st.column_config.NumberColumn("Format AUC", format="%.2f"),
            "warning": st.column_config.CheckboxColumn("Warning"),
        },
    )
    told = pairs.filter(pl.col("warning"))
    if told.height:
        named = ", ".join(
            f"**{markdown_text(row['arm_a'])}** from **{markdown_text(row['arm_b'])}** "
            f"({row['format_auc']:.2f})"
            for row in told.iter_rows(named=True)
        )
        st.warning(
            f"On the cases they share, length and format alone tell {named} apart (AUC > "
            f"{AUC_WARNING}): raters who see these answers to the same case may guess which is "
            "which.",
            icon=":material/visibility:",
        )


# --- step 5: the analysis plan ---------------------------------------------------------------


def step_plan(draft: Draft) -> None:
    """Step 5: the primary and secondary endpoints, each with its own margin (in its units),
    direction and method and its H0 in words, what stops the lock next to the field it
    concerns, and the sample-size panel."""
    frame = instrument_library.study_items(draft.store, draft.caller, draft.study)
    items = {key: json.loads(d) for key, d in frame.select("item_key", "definition").iter_rows()}
    if not items:
        st.info("Attach an instrument first (step 3): the plan names its items.")
        return
    if not draft.editable:
        locked = design.get_protocol(draft.store, draft.caller, draft.study)["content"]
        st.info(
            f"The study is {status_words(draft.status)}: its analysis plan is the locked protocol's.",
            icon=":material/lock:",
        )
        st.json(
            {
                k: locked[k]
                for k in ("primary_endpoint", "secondary_endpoints", "arms")
                if k in locked
            },
            expanded=True,
        )
        return
    comparable = [
        key
        for key, item in items.items()
        if item["type"] not in ("free_text", "pairwise_choice")
        and item.get("criteria") != "case"
        and not unordered(item)
    ]
    if not comparable:
        st.warning("No item of the attached instruments can be a non-inferiority endpoint.")
        return

    def named(key: str) -> str:
        return f"{key}: {items[key]['prompt']}"

    # Each endpoint's problems and H0 depend on every field, so they are written into
    # placeholders beside the fields once all of them are drawn (check_plan below).
    slots: dict[str, EndpointSlots] = {}
    left, right = st.columns(2)
    with left:
        st.markdown("**Primary endpoint**")
        primary = kept(
            draft,
            "primary_item",
            st.selectbox,
            "Primary item",
            options=comparable,
            format_func=named,
        )
        start_primary(draft, primary, items)
        slots[PRIMARY] = endpoint_fields(
            items[primary], lambda name, *args, **kwargs: kept(draft, name, *args, **kwargs)
        )
        kept(
            draft,
            "alpha",
            st.number_input,
            "One-sided alpha",
            min_value=0.001,
            max_value=0.25,
            step=0.005,
            format="%.3f",
            help="0.025 one-sided: the lower bound of the two-sided 95% interval.",
        )
        slots[PRIMARY].place()
    with right:
        kept(
            draft,
            "sensitivity",
            st.multiselect,
            "Sensitivity analyses",
            options=[m for m in methods_for(items[primary]) if m != draft.settings["method"]],
            format_func=METHOD_NAMES.get,
        )
        arms(draft)
        secondary = kept(
            draft,
            "secondary",
            st.multiselect,
            "Secondary items",
            options=[
                k
                for k, item in items.items()
                if k != primary and item["type"] != "free_text" and not unordered(item)
            ],
            format_func=named,
            help="Each is tested against its own margin, in its own units (below), and the "
            "p-values are Holm-adjusted; a pairwise choice is described by win rates.",
        )
    if secondary:
        st.markdown("**Secondary endpoints**")
    for index, key in enumerate(secondary):
        slots[where_of(index)] = secondary_fields(draft, key, items[key], named(key))
    check = plan_check(draft, items)
    for where, slot in slots.items():
        slot.show(check.endpoint(where))
    draft.settings["plan_ok"] = check.ok
    statistic = statistic_of(items[primary])
    if statistic != "mean_difference":
        st.caption("The sample-size panel plans a mean difference; this primary is a proportion.")
    elif draft.settings["margin"] is None or draft.settings["direction"] is None:
        st.caption("The sample-size panel needs the primary's margin and direction.")
    else:
        power_panel(draft)


def start_primary(draft: Draft, primary: str, items: dict[str, dict[str, Any]]) -> None:
    """A newly chosen primary starts from what its item declares (harm: lower is better; an
    item that declares no direction: none chosen, the coordinator chooses). A margin typed for
    an item of other units (rating points against percentage points) is dropped: the number
    would mean something else. The coordinator may still change both."""
    s = draft.settings
    if s.get("primary_of") == primary:
        return
    before = items.get(s.get("primary_of") or "")
    if unit_of(before) != unit_of(items[primary]):  # a fresh draft's margin is in rating points
        s["margin"] = None
        st.session_state.pop(draft.key("margin"), None)
    s["primary_of"] = primary
    s["direction"] = declared_direction(items[primary])
    st.session_state.pop(draft.key("direction"), None)


@dataclass
class EndpointSlots:
    """Where an endpoint's problems go, field by field, and where its hypotheses go."""

    fields: dict[str, Any]
    hypotheses: Any = None

    def place(self) -> None:
        """The hypotheses' and the endpoint's other problems' place, below its fields."""
        self.hypotheses = st.empty()

    def show(self, check: EndpointCheck | None) -> None:
        if check is None:
            return
        for name, slot in self.fields.items():
            if problems := check.on(name):
                slot.error(sentence("; ".join(problems)), icon=":material/error:")
        other = [r for name, rs in check.problems.items() if name not in self.fields for r in rs]
        if self.hypotheses is None:
            return
        with self.hypotheses.container():
            for reason in other:
                st.error(plain(sentence(reason)), icon=":material/error:")
            if check.hypotheses:
                h0, h1 = check.hypotheses
                st.caption(f"{h0}  \n{h1}")


def sentence(text: str) -> str:
    """A problem's reason as a sentence on the screen."""
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def endpoint_fields(
    item: dict[str, Any],
    field: Callable[..., Any],
    places: Sequence[Any] | None = None,
) -> EndpointSlots:
    """An endpoint's margin (in the item's units), direction and method, each followed by the
    place of its problems; ``field(name, widget, label, ...)`` draws and keeps one of them;
    ``places``: the three containers they go in (default: one below the other, here)."""
    unit = unit_of(item)
    declared = (item.get("direction") or "none").replace("_", " ")
    where = iter(places or [nullcontext()] * 3)
    slots = EndpointSlots({})
    with next(where):
        field(
            "margin",
            st.number_input,
            f"Margin ({unit})",
            min_value=0.0,
            # a risk difference's margin is a share below 1 in the protocol: below 100 points here
            max_value=99.9 if unit == PERCENTAGE_POINTS else None,
            step=0.5 if unit == PERCENTAGE_POINTS else 0.05,
            format="%.2f",
            help=(
                "By how many percentage points the test arm's share may be worse than the "
                "reference's and still count as non-inferior (5 is a risk difference of 0.05)."
                if unit == PERCENTAGE_POINTS
                else "How many rating points worse the test arm may be on average and still count "
                "as non-inferior."
            ),
        )
        slots.fields["margin"] = st.empty()
    with next(where):
        field(
            "direction",
            st.radio,
            "Which way is better",
            options=["higher", "lower"],
            horizontal=True,
            unset=True,
            help=f"The item declares: {declared}.",
        )
        slots.fields["direction"] = st.empty()
    with next(where):
        field(
            "method",
            st.selectbox,
            "Method",
            options=list(methods_for(item)),
            format_func=METHOD_NAMES.get,
        )
        slots.fields["method"] = st.empty()
    return slots


def secondary_fields(draft: Draft, key: str, item: dict[str, Any], title: str) -> EndpointSlots:
    """One secondary endpoint: its own fields (first chosen: no margin, the item's declared
    direction), or, for a pairwise item, what is reported instead of a test."""
    with st.container(border=True):
        st.markdown(f"**{markdown_text(title)}**")  # the item's wording: imported text
        if statistic_of(item) == "win_rates":
            st.caption(
                "Descriptive: how often each arm's answer is chosen (win rates), with no margin "
                "and no test."
            )
            slots = EndpointSlots({})
            slots.place()
            return slots
        plan = draft.settings["secondary_plan"]
        if key not in plan:
            draft.settings["secondary_plan"] = {**plan, key: new_secondary(item)}
        slots = endpoint_fields(
            item,
            lambda name, *args, **kwargs: kept_field(draft, key, name, *args, **kwargs),
            st.columns(3),
        )
        slots.place()
        return slots


def unordered(item: dict[str, Any]) -> bool:
    """A categorical item of nominal level (Med-PaLM's "consensus": aligned, opposed, none):
    its codes have no order, so no mean or difference of them means anything."""
    return item["type"] == "categorical" and item.get("level") == "nominal"


def arms(draft: Draft) -> None:
    """Test and reference arm (default: the first LLM arm against the first clinician arm)."""
    frame = content.list_arms(draft.store, draft.caller, draft.study)
    ids = frame.get_column("arm_id").to_list()
    if len(ids) < 2:
        st.caption("Two arms are compared: import them in step 2.")
        return
    kinds = dict(frame.select("arm_id", "kind").iter_rows())
    s = draft.settings
    s["test_arm"] = s["test_arm"] or next((a for a in ids if kinds[a] == "llm"), ids[0])
    s["reference_arm"] = s["reference_arm"] or next(
        (a for a in ids if kinds[a] == "clinician" and a != s["test_arm"]), ids[-1]
    )
    kept(draft, "test_arm", st.selectbox, "Test arm", options=ids)
    kept(draft, "reference_arm", st.selectbox, "Reference arm", options=ids)


def paired_cases(draft: Draft) -> tuple[int, str]:
    """The live cases the primary comparison pairs: those answered by both the test and the
    reference arm (arms of third-party data often answered different cases), calibration cases
    left out; and a sentence saying which they are."""
    s = draft.settings
    gold = set(s["calibration_cases"]) if s["calibration"] else set()
    answers = design.answered_cases(draft.store, draft.caller, draft.study).filter(
        ~pl.col("case_id").is_in(list(gold))
    )
    every = answers.get_column("case_id").n_unique()
    pair = [s["test_arm"], s["reference_arm"]]
    if not all(pair) or pair[0] == pair[1]:
        return every, f"{every:,} live cases"
    both = (
        answers.filter(pl.col("arm_id").is_in(pair))
        .group_by("case_id")
        .agg(pl.col("arm_id").n_unique().alias("arms"))
        .filter(pl.col("arms") == 2)
        .height
    )
    return both, f"{both:,} of {every:,} live cases answered by both {pair[0]} and {pair[1]}"


def power_panel(draft: Draft) -> None:
    """The power of the current design (its live cases, raters per case) and the cases that
    reach 80% and 90%, under the assumptions typed here."""
    st.subheader("Sample size", anchor=False)
    s = draft.settings
    left, middle, right = st.columns(3)
    with left:
        kept(
            draft,
            "sd",
            st.number_input,
            "SD of a rater's paired difference",
            min_value=0.01,
            step=0.1,
            help="Test minus reference, one rater, one case, in rating units.",
        )
    with middle:
        kept(
            draft,
            "icc",
            st.slider,
            "ICC of the differences among a case's raters",
            0.0,
            1.0,
            step=0.05,
        )
    with right:
        kept(draft, "expected_difference", st.number_input, "Expected true difference", step=0.05)
    live, compared = paired_cases(draft)
    try:
        power = analyses.design_power(
            draft.store,
            draft.caller,
            draft.study,
            margin=s["margin"],
            sd=s["sd"],
            icc=s["icc"],
            raters_per_case=int(s["raters_per_case"]),
            alpha=s["alpha"],
            direction=s["direction"],
            expected_difference=s["expected_difference"],
            cases=live,
        )
    except StudyError as error:
        show_error(error, key=draft.key("power-problems"))
        return
    first, *targets = st.columns(1 + len(power["targets"]))
    first.metric(
        f"Power with {power['cases']:,} cases",
        "—" if power["power"] is None else f"{power['power']:.0%}",
    )
    for column, target in zip(targets, power["targets"], strict=True):
        column.metric(f"Cases for {target['power']:.0%} power", f"{target['cases']:,}")
    st.caption(
        f"{compared}; {power['raters_per_case']} raters per case (step 4), one-sided alpha "
        f"{power['alpha']:g}, margin {power['margin']:g}: {power['method']}."
    )
