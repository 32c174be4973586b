"""The report's sections on what the raters said: agreement between raters, the primary and
secondary results (with rubric scores and pairwise preference), and ratings by arm."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import polars as pl

from study.report.cells import e, html_table, number, p_text
from study.report.conduct import results_table
from study.report.figures import Figures, forest_plot, wrapped_label
from study.services.analyses import PAIRWISE_KEYS


def agreement_section(facts: Mapping[str, Any], figures: Figures) -> str:
    table: pl.DataFrame | None = (facts.get("results") or {}).get("agreement")
    if table is None or table.height == 0 or "statistic" not in table.columns:
        return "<p>No item could be analysed for agreement.</p>"
    # Cohen's kappa per rater pair is on the Analysis screen; here the pooled statistics
    table = table.filter(pl.col("statistic") != "cohen_kappa")
    rows = [
        (
            r["item"],
            r["statistic"],
            r.get("variant") or "",
            number(r.get("estimate")),
            f"{number(r.get('ci_low'))} to {number(r.get('ci_high'))}",
            r.get("n_units") or "",
            r.get("n_raters") or "",
            r.get("method") or "",
            r.get("note") or "",
        )
        for r in table.iter_rows(named=True)
        if r.get("applicable") is not False or r["statistic"] == "krippendorff_alpha"
    ]
    alpha = [
        {
            "label": r["item"],
            "estimate": r.get("estimate"),
            "ci_low": r.get("ci_low"),
            "ci_high": r.get("ci_high"),
        }
        for r in table.filter(pl.col("statistic") == "krippendorff_alpha").iter_rows(named=True)
    ]
    return (
        "<p>Pooled over arms; unit: the answer rated (pairwise items: the case, value: the "
        "chosen arm or tie; other items rated once per case: the case). Each item at its declared level of measurement, over its declared "
        "scale. Cohen's kappa per rater pair is left out here.</p>"
        + forest_plot(
            alpha, title="Krippendorff's alpha per item (95% CI)", figures=figures, x_title="alpha"
        )
        + html_table(
            (
                "item",
                "statistic",
                "variant",
                "estimate",
                "95% CI",
                "units",
                "raters",
                "method",
                "note",
            ),
            rows,
            # each row's method carries its own figures (pa, pe, the resamples): read with it
            details=("method", "note"),
        )
    )


def results_section(facts: Mapping[str, Any], figures: Figures) -> str:
    ni: pl.DataFrame | None = results_table(facts)
    parts = []
    if ni is None or ni.height == 0:
        parts.append(
            "<p>The protocol plans no non-inferiority endpoint that could be analysed.</p>"
        )
    else:
        tested = ni.filter(pl.col("statistic").is_in(["mean_difference", "risk_difference",
                                                        "mean_difference_one_sample"]))  # fmt: skip
        for statistic, unit in (
            ("mean_difference", "points"),
            ("mean_difference_one_sample", "points"),
            ("risk_difference", "proportion"),
        ):
            rows = tested.filter(pl.col("statistic") == statistic)
            if rows.height == 0:
                continue
            plotted = []
            for r in rows.iter_rows(named=True):
                margin = r.get("margin")
                at = None
                if margin is not None:
                    at = -margin if r.get("direction") == "higher" else margin
                plotted.append(
                    {
                        "label": f"{r['item']}: {r.get('analysis') or r.get('role')}"[:80],
                        "estimate": r.get("estimate"),
                        "ci_low": r.get("ci_low"),
                        "ci_high": r.get("ci_high"),
                        "margin_at": at,
                    }
                )
            parts.append(
                forest_plot(
                    plotted,
                    title=f"{statistic.replace('_', ' ')}: test arm minus reference arm",
                    figures=figures,
                    x_title=f"difference ({unit})",
                )
            )
        parts.append(
            "<p>One row per planned analysis; rows marked <em>not in the plan</em> are "
            "sensitivity analyses Clinval adds. Difference = test arm minus reference arm; the "
            "interval is two-sided at 1 - 2 alpha; p is one-sided against the margin; p (Holm) "
            "adjusts the planned secondary tests as one family.</p>"
            + html_table(
                (
                    "item",
                    "analysis",
                    "method",
                    "estimate",
                    "interval",
                    "p",
                    "p (Holm)",
                    "how",
                    "conclusion",
                ),  # fmt: skip
                [
                    (
                        r["item"],
                        r.get("analysis") or r.get("role") or "",
                        r.get("method") or "",
                        number(r.get("estimate")),
                        f"{number(r.get('ci_low'))} to {number(r.get('ci_high'))}",
                        p_text(r.get("p_value")),
                        p_text(r.get("p_adjusted")),
                        r.get("method_description") or "",
                        r.get("conclusion") or r.get("note") or "",
                    )
                    for r in ni.iter_rows(named=True)
                ],
                # the method in the library's words is a sentence shared by several rows: a
                # numbered note; the conclusion is the row's own sentence: under the row
                notes=("how",),
                note_at="method",
                details=("conclusion",),
            )
        )
        planned = ni.filter(pl.col("in_plan") & pl.col("h0").is_not_null()).unique(
            subset=["item", "role"], keep="first", maintain_order=True
        )
        if planned.height:
            parts.append(
                "<details open><summary>Hypotheses of the planned tests</summary><ul>"
                + "".join(
                    f"<li><strong>{e(r['item'])}</strong> ({e(r['role'])}): {e(r['h0'])}; "
                    f"{e(r['h1'])}</li>"
                    for r in planned.iter_rows(named=True)
                )
                + "</ul></details>"
            )
    rubric: pl.DataFrame | None = (facts.get("results") or {}).get("rubric")
    if rubric is not None and rubric.height:
        parts.append(_rubric(rubric))
    pairwise: pl.DataFrame | None = (facts.get("results") or {}).get("pairwise")
    preference = (
        pairwise.filter(pl.col("statistic").is_in(["win_rate", "position_bias"]))
        if pairwise is not None and "statistic" in pairwise.columns
        else None
    )
    if preference is not None and preference.height:
        parts.append(_preference(preference, figures))
    return "".join(parts)


def _rubric(rubric: pl.DataFrame) -> str:
    """A rubric item's HealthBench scores per arm (overall, then per tag) and the raters'
    HealthBench agreement (``analyses.planned_results``' ``rubric`` frame)."""

    def rows(statistic: str) -> pl.DataFrame:
        if "statistic" not in rubric.columns:
            return rubric.head(0)
        return rubric.filter(pl.col("statistic") == statistic)

    scores, agreement = rows("rubric_score"), rows("healthbench_agreement")
    parts = [
        "<h3>Rubric scores (HealthBench)</h3><p>Per answer and rater: points of the criteria "
        "marked met over the case's positive points; per case the mean over its raters; per arm "
        "the mean over cases clipped to [0, 1], with a percentile bootstrap interval over cases "
        "(the unclipped mean beside it). The non-inferiority row above compares the arms on the "
        "per-answer scores, not clipped.</p>"
    ]
    if scores.height:
        parts.append(
            html_table(
                ("item", "arm", "scores", "estimate", "interval", "unclipped", "cases", "raters"),
                [
                    (
                        r.get("item") or "",
                        r.get("arm") or "",
                        r.get("variant") or "",
                        number(r.get("estimate")),
                        f"{number(r.get('ci_low'))} to {number(r.get('ci_high'))}",
                        number(r.get("unclipped_mean")),
                        r.get("n_cases") if r.get("n_cases") is not None else "",
                        r.get("n_raters") if r.get("n_raters") is not None else "",
                    )
                    if r.get("applicable")
                    else (
                        r.get("item") or "",
                        r.get("arm") or "",
                        r.get("variant") or "",
                        r.get("note") or "not applicable",
                        "",
                        "",
                        "",
                        "",
                    )
                    for r in scores.iter_rows(named=True)
                ],
            )
        )
    if agreement.height:
        parts.append(
            "<p>Agreement on each criterion's met / not met between the raters, as HealthBench's "
            "meta-evaluation measures it (each rater against the others, and all pooled):</p>"
        )
        parts.append(
            html_table(
                ("item", "rater", "measure", "estimate", "interval", "label pairs"),
                [
                    (
                        r.get("item") or "",
                        r.get("rater") or "",
                        r.get("variant") or "",
                        number(r.get("estimate")) if r.get("applicable") else r.get("note") or "",
                        # no estimate, no interval: "— to —" read as a result
                        f"{number(r.get('ci_low'))} to {number(r.get('ci_high'))}"
                        if r.get("applicable")
                        else "",
                        r.get("n_pairs") if r.get("n_pairs") is not None else "",
                    )
                    for r in agreement.iter_rows(named=True)
                ],
            )
        )
    return "".join(parts)


def _preference(preference: pl.DataFrame, figures: Figures) -> str:
    import plotly.graph_objects as go

    shares = (
        preference.filter(pl.col("statistic") == "win_rate")
        if "statistic" in preference.columns
        else preference.head(0)
    )
    fig = go.Figure()
    for variant in ("win", "tie", "loss"):
        part = shares.filter(pl.col("variant") == variant)
        fig.add_trace(
            go.Bar(
                x=part.get_column("estimate").to_list(),
                y=[
                    e(f"{i}: {c} vs {o}")
                    for i, c, o in part.select("item", "competitor", "opponent").iter_rows()
                ],
                orientation="h",
                name=variant,
            )
        )
    fig.update_layout(
        barmode="stack",
        height=max(260, 150 + 45 * max(1, shares.height // 3)),
        xaxis={"title": "share of choices", "range": [0, 1]},
    )
    rows = [
        (
            *(r.get(key) or "" for key in PAIRWISE_KEYS),
            number(r.get("estimate")),
            f"{number(r.get('ci_low'))} to {number(r.get('ci_high'))}",
            p_text(r.get("p_value")),
            r.get("note") or "",
        )
        for r in preference.iter_rows(named=True)
    ]
    return (
        "<h3>Pairwise preference</h3>"
        + (figures.add(fig, "Which response is better: win, tie, loss") if shares.height else "")
        + html_table(
            (*PAIRWISE_KEYS, "estimate", "95% CI", "p", "note"),
            rows,
            details=("note",),
        )
    )


def distributions_section(facts: Mapping[str, Any], figures: Figures) -> str:
    import plotly.graph_objects as go

    ratings: pl.DataFrame = facts["ratings"]
    numeric = ratings.filter(pl.col("arm").is_not_null() & pl.col("value").is_not_null())
    if numeric.height == 0:
        return "<p>No numeric ratings per answer.</p>"
    scales = numeric_scales(facts["items"])
    order = {key: n for n, key in enumerate(scales)}
    groups = sorted(
        numeric.group_by("instrument", "item", maintain_order=True),
        key=lambda group: order.get(group[0], len(order)),
    )
    parts = []
    for (instrument, item), rows in groups:
        scale = scales.get((instrument, item))
        counts = rows.group_by("arm", "value").agg(pl.len().alias("n"))
        n = {(arm, value): k for arm, value, k in counts.iter_rows()}
        totals = dict(counts.group_by("arm").agg(pl.col("n").sum()).sort("arm").iter_rows())
        if scale:
            # every option of the scale in its declared order, those nobody chose too (at 0),
            # named by its label: the reader sees "Very poor" .. "Very good", not 1.0 .. 5.0
            values = list(scale) + sorted(set(counts.get_column("value")) - set(scale))
            x = [wrapped_label(scale[v]) if v in scale else number(v, 1) for v in values]
            if len(set(x)) < len(x):  # two options with one label would share one bar
                x = [f"{label} ({number(v, 1)})" for label, v in zip(x, values, strict=True)]
            xaxis = {
                "title": "rating",
                "type": "category",
                "categoryorder": "array",
                "categoryarray": x,
            }
        else:
            values = sorted(set(counts.get_column("value")))
            x = values
            xaxis = {"title": "value"}
        fig = go.Figure()
        for arm, total in totals.items():
            fig.add_trace(
                go.Bar(
                    x=x,
                    y=[n.get((arm, v), 0) / total for v in values],
                    customdata=[n.get((arm, v), 0) for v in values],
                    hovertemplate="%{y:.1%} (%{customdata} ratings)",
                    name=e(arm),
                )
            )
        fig.update_layout(
            barmode="group",
            height=340,
            xaxis=xaxis,
            yaxis={"title": "share of the arm's ratings", "tickformat": ".0%"},
        )
        parts.append(figures.add(fig, f"{item}: distribution by arm"))
    describe: pl.DataFrame | None = (facts.get("results") or {}).get("summary")
    if describe is not None and describe.height:
        keep = [
            c
            for c in (
                "item",
                "arm",
                "n",
                "missing",
                "mean",
                "sd",
                "median",
                "q1",
                "q3",
                "min",
                "max",
            )
            if c in describe.columns
        ]
        parts.append(
            html_table(
                keep,
                [[number(v) for v in row] for row in describe.select(keep).iter_rows()],
                raw=True,
            )
        )
    return "".join(parts)


def numeric_scales(items: pl.DataFrame) -> dict[tuple[str, str], dict[float, str]]:
    """(instrument, item) -> {option value: label} of each item whose options have numeric
    values, in the items' order (an item without such options maps to an empty scale). A rubric
    item whose criteria come from the case has no options; the export rates each criterion
    1 (met) or 0 (not met), and those are its labels."""
    scales: dict[tuple[str, str], dict[float, str]] = {}
    for r in items.iter_rows(named=True):
        options = json.loads(r.get("options") or "[]")
        scale = {
            float(o["value"]): str(o.get("label") if o.get("label") is not None else o["value"])
            for o in options
            if isinstance(o.get("value"), int | float) and not isinstance(o.get("value"), bool)
        }
        if not options and r.get("type") == "rubric_criterion":
            scale = {0.0: "not met", 1.0: "met"}
        scales[(r["instrument_key"], r["item_key"])] = scale
    return scales
