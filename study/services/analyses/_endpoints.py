"""The endpoint runner: a ``study.protocol.Plan`` and a study's ratings by arm -> the one
results table, one row per planned analysis plus clearly marked analyses outside the plan.

Every rendering of a study's result (the Analysis screen, the HTML report, the bundle's
``results.csv`` / ``results.json`` and ``python -m study results``) shows these rows; nothing
else turns the plan into tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from analysis import columns as col
from analysis.noninferiority import (
    adjust_secondary,
    hypotheses,
    mean_difference,
    mean_difference_one_sample,
    risk_difference,
)
from study.errors import StudyError
from study.protocol import METHODS, ONE_SAMPLE, Endpoint, Plan
from study.services.analyses._shared import refused, safely

IN_PLAN = "in_plan"
"""Whether the locked plan names the analysis (False: a sensitivity analysis Clinval adds)."""
ANALYSIS = "analysis"
"""The analysis in words, e.g. "primary (locked plan)", "sensitivity (not in the plan): paired t"."""
METHOD_DESCRIPTION = "method_description"
"""How the estimate and interval were computed, in the analysis library's words (its ``method``
column); the table's ``method`` is the plan's short name (t, mixed, newcombe, ...)."""

RESULT_COLUMNS = (
    col.ROLE,
    IN_PLAN,
    ANALYSIS,
    col.ITEM,
    col.STATISTIC,
    col.METHOD,
    col.MARGIN,
    col.DIRECTION,
    col.ALPHA,
    col.TEST_ARM,
    col.REFERENCE_ARM,
    col.ESTIMATE,
    col.CI_LOW,
    col.CI_HIGH,
    col.CI_LEVEL,
    col.P_VALUE,
    col.P_ADJUSTED,
    col.SHOWN,
    col.H0,
    col.H1,
    col.CONCLUSION,
    col.APPLICABLE,
    col.NOTE,
    col.N_UNITS,
    col.N_RATERS,
    col.N_VALUES,
    METHOD_DESCRIPTION,
    col.SEED,
)
"""The results table's columns, in order: what the screen, the report, the bundle and the
command line show. ``estimate``, the interval and ``p_value`` are those of the test arm minus
the reference arm (a win rate for a pairwise endpoint); ``p_adjusted`` is Holm's over the
planned secondary tests (null elsewhere); ``applicable`` false rows say why in ``note``."""

RESULT_SCHEMA: dict[str, pl.DataType] = {
    col.ROLE: pl.String,
    IN_PLAN: pl.Boolean,
    ANALYSIS: pl.String,
    col.ITEM: pl.String,
    col.STATISTIC: pl.String,
    col.METHOD: pl.String,
    col.MARGIN: pl.Float64,
    col.DIRECTION: pl.String,
    col.ALPHA: pl.Float64,
    col.TEST_ARM: pl.String,
    col.REFERENCE_ARM: pl.String,
    col.ESTIMATE: pl.Float64,
    col.CI_LOW: pl.Float64,
    col.CI_HIGH: pl.Float64,
    col.CI_LEVEL: pl.Float64,
    col.P_VALUE: pl.Float64,
    col.P_ADJUSTED: pl.Float64,
    col.SHOWN: pl.Boolean,
    col.H0: pl.String,
    col.H1: pl.String,
    col.CONCLUSION: pl.String,
    col.APPLICABLE: pl.Boolean,
    col.NOTE: pl.String,
    col.N_UNITS: pl.Int64,
    col.N_RATERS: pl.Int64,
    col.N_VALUES: pl.Int64,
    METHOD_DESCRIPTION: pl.String,
    col.SEED: pl.Int64,
}

METHOD_NAMES = {
    "t": "paired t",
    "bootstrap": "two-way bootstrap",
    "mixed": "mixed model",
    "newcombe": "Newcombe hybrid score",
    "farrington-manning": "Farrington-Manning score",
    "miettinen-nurminen": "Miettinen-Nurminen score",
}
"""A method's name in the ``analysis`` column."""

DEFAULT_METHODS = {"mean_difference": "t", "risk_difference": "newcombe", ONE_SAMPLE: "t"}
"""The method of an endpoint whose plan names none."""

MIXED_MAX_LEVELS = 200
"""The linear mixed model (crossed random intercepts for case and rater) is fitted as a
sensitivity analysis outside the plan only when cases + raters of the item number at most this
many: statsmodels' MixedLM fits crossed effects as variance components of one group and solves a
dense system as large as the number of levels at every step (measured on this project's shared
2-core machine: about 100 s for 2,040 cases and raters, 14 s for 450, under a second for the
demo's 48). Above it a row says so; a plan that names the mixed model is run as locked, whatever
its size."""


def results_table(
    ratings: pl.DataFrame,
    items: Mapping[str, Mapping[str, Any]],
    plan: Plan,
    *,
    test: str | None,
    reference: str | None,
    pairwise: pl.DataFrame,
    flagged: list[str],
    boot: int,
    seed: int,
) -> pl.DataFrame:
    """The results table (``RESULT_COLUMNS``) of ``plan`` (resolved: directions filled from the
    items) on ``ratings`` (case, arm, answer, rater, item, value: live, current, submitted; a
    rubric item's value is each rater's HealthBench score of the answer).

    Rows, per endpoint in the plan's order: the planned analysis (role primary or secondary);
    for the primary, then, each planned sensitivity method (role sensitivity, in plan), the
    other methods of its statistic (sensitivity, not in the plan; the mixed model only up to
    ``MIXED_MAX_LEVELS`` cases and raters) and the planned method without the raters that
    ``flagged`` names (not in the plan). A pairwise endpoint (``win_rates``) is the test arm's
    win share from ``pairwise`` (descriptive: no margin, no test). A secondary endpoint without
    a margin on any other item is descriptive and has no row here (its distribution is shown).
    An endpoint that cannot be run says why (``applicable`` false). The planned secondary tests
    are one Holm family (``p_adjusted``, and ``shown`` re-decided on it).
    """
    frames: list[pl.DataFrame] = []
    for endpoint in plan.endpoints:
        frames += _endpoint_rows(
            endpoint,
            items.get(endpoint.item),
            ratings,
            test=test,
            reference=reference,
            pairwise=pairwise,
            flagged=flagged,
            boot=boot,
            seed=seed,
        )
    if not frames:
        return pl.DataFrame(schema=RESULT_SCHEMA)
    table = pl.concat(
        [f.select(c for c in f.columns if c in RESULT_SCHEMA) for f in frames],
        how="diagonal_relaxed",
    ).with_row_index("_order")
    table = table.with_columns(
        pl.lit(None, dtype=RESULT_SCHEMA[c]).alias(c) for c in RESULT_COLUMNS if c not in table
    )
    family = (
        (pl.col(col.ROLE) == "secondary")
        & pl.col(IN_PLAN)
        & pl.col(col.APPLICABLE)
        & pl.col(col.P_VALUE).is_not_null()
    )
    secondary = table.filter(family)
    if secondary.height:
        adjusted = adjust_secondary(secondary.drop(col.P_ADJUSTED), family=())
        table = pl.concat([table.filter(~family), adjusted], how="diagonal_relaxed")
    return table.sort("_order").select(pl.col(c).cast(RESULT_SCHEMA[c]) for c in RESULT_COLUMNS)


def _endpoint_rows(
    endpoint: Endpoint,
    item: Mapping[str, Any] | None,
    ratings: pl.DataFrame,
    *,
    test: str | None,
    reference: str | None,
    pairwise: pl.DataFrame,
    flagged: list[str],
    boot: int,
    seed: int,
) -> list[pl.DataFrame]:
    """The rows of one endpoint, as ``results_table`` describes."""
    planned = f"{endpoint.role} (locked plan)"
    common = {
        col.ROLE: endpoint.role,
        IN_PLAN: True,
        ANALYSIS: planned,
        col.ITEM: endpoint.item,
        col.MARGIN: endpoint.margin,
        col.DIRECTION: endpoint.direction,
        col.ALPHA: endpoint.alpha,
    }

    def not_run(reason: str, statistic: str = "non-inferiority") -> list[pl.DataFrame]:
        return [refused(statistic, reason, **common)]

    if item is None:
        return not_run(
            f"the protocol names item '{endpoint.item}', which no attached instrument has"
        )
    if item["type"] == "pairwise_choice" or endpoint.statistic == "win_rates":
        return [_win_share(endpoint, pairwise, test, common)]
    if not endpoint.tested:
        if endpoint.role == "primary":
            return not_run("the locked plan gives no non-inferiority margin for the primary item")
        return []
    if endpoint.direction is None:
        return not_run(
            f"neither the protocol nor item '{endpoint.item}' says whether higher or lower is "
            "better"
        )
    problem = one_sample_problem(endpoint, item)
    if problem:
        return not_run(problem)
    if test is None or reference is None:
        return not_run("the protocol names no test and reference arm (arms: {test, reference})")
    statistic = statistic_of(endpoint, item)
    one_sample = statistic == ONE_SAMPLE
    data = ratings.filter(
        (pl.col(col.ITEM) == endpoint.item)
        & pl.col(col.VALUE).is_not_null()
        # a score that is already test - reference belongs to no arm
        & (pl.lit(one_sample) | pl.col(col.ARM).is_in([test, reference]))
    ).select(col.CASE, col.RATER, col.ARM, col.VALUE)
    chosen = endpoint.method or DEFAULT_METHODS[statistic]

    def run(method: str, frame: pl.DataFrame = data, **columns: Any) -> pl.DataFrame:
        options = {
            "test": test,
            "reference": reference,
            "margin": endpoint.margin,
            "direction": endpoint.direction,
            "alpha": endpoint.alpha,
            "method": method,
        }
        if method == "bootstrap":
            options |= {"boot": boot, "seed": seed}
        if one_sample:
            compute = lambda: mean_difference_one_sample(frame.drop(col.ARM), **options)  # noqa: E731
        elif statistic == "risk_difference":
            compute = lambda: risk_difference(frame, **options)  # noqa: E731
        else:
            compute = lambda: mean_difference(frame, **options)  # noqa: E731
        row = safely(compute, statistic, **(common | columns))
        return row.rename({col.METHOD: METHOD_DESCRIPTION}).with_columns(
            pl.lit(method).alias(col.METHOD), pl.lit(statistic).alias(col.STATISTIC)
        )

    rows = [run(chosen)]
    if endpoint.role != "primary":
        return rows
    for method in endpoint.sensitivity_methods:
        if method != chosen:
            rows.append(
                run(
                    method,
                    **{
                        col.ROLE: "sensitivity",
                        ANALYSIS: f"sensitivity (locked plan): {METHOD_NAMES[method]}",
                    },
                )
            )
    if statistic != "risk_difference":
        levels = data.get_column(col.CASE).n_unique() + data.get_column(col.RATER).n_unique()
        for method in METHODS[statistic]:
            if method == chosen or method in endpoint.sensitivity_methods:
                continue
            outside = {
                col.ROLE: "sensitivity",
                IN_PLAN: False,
                ANALYSIS: f"sensitivity (not in the plan): {METHOD_NAMES[method]}",
            }
            if method == "mixed" and levels > MIXED_MAX_LEVELS:
                reason = (
                    f"the mixed model is not fitted as a sensitivity analysis on {levels:,} "
                    f"cases and raters (more than {MIXED_MAX_LEVELS:,}: its fit takes minutes "
                    "at that size)"
                )
                rows.append(
                    refused(statistic, reason, **(common | outside)).with_columns(
                        pl.lit(method).alias(col.METHOD)
                    )
                )
                continue
            rows.append(run(method, **outside))
    if flagged:
        kept = data.filter(~pl.col(col.RATER).is_in(flagged))
        rows.append(
            run(
                chosen,
                kept,
                **{
                    col.ROLE: "sensitivity",
                    IN_PLAN: False,
                    ANALYSIS: (
                        f"sensitivity (not in the plan): without the {len(flagged)} flagged "
                        "rater(s)"
                    ),
                },
            )
        )
    return rows


def endpoint_hypotheses(
    endpoint: Endpoint, test: str, reference: str, *, binary: bool = False
) -> tuple[str, str]:
    """(H0, H1) of a tested endpoint in words and numbers, exactly as its results row will state
    them (``analysis.noninferiority.hypotheses``): for a design screen, before the lock.
    ``binary``: the item is 0/1, so the difference is of proportions (a risk difference).
    ``StudyError`` for an endpoint without a margin or a direction (it has no H0)."""
    if not endpoint.tested or endpoint.direction is None:
        raise StudyError(
            f"The endpoint '{endpoint.item}' states no margin or direction, so it has no H0."
        )
    one_sample = endpoint.statistic == ONE_SAMPLE
    quantity = "p" if binary or endpoint.statistic == "risk_difference" else "mean"
    delta = f"mean({test} - {reference})" if one_sample else None
    return hypotheses(endpoint.direction, endpoint.margin, test, reference, quantity, delta)


def statistic_of(endpoint: Endpoint, item: Mapping[str, Any]) -> str:
    """What a tested endpoint estimates: the protocol's statistic, else a risk difference for a
    binary item (by its declared type, not by the values seen) and a mean difference otherwise."""
    if endpoint.statistic in ("mean_difference", "risk_difference", ONE_SAMPLE):
        return endpoint.statistic
    return "risk_difference" if item["type"] == "binary" else "mean_difference"


def one_sample_problem(endpoint: Endpoint, item: Mapping[str, Any]) -> str | None:
    """Why ``endpoint`` on ``item`` cannot be tested as planned, for the scope of the item and
    whether the plan declares its values test minus reference (``ONE_SAMPLE``); None if it can."""
    one_sample = endpoint.statistic == ONE_SAMPLE
    if item.get("scope") == "case" and not one_sample:
        return (
            f"item '{endpoint.item}' is rated once per case (scope case), so it has no value per "
            "arm to compare test with reference; if its values are already test - reference (a "
            f'comparative score), the protocol\'s endpoint says so with "statistic": '
            f'"{ONE_SAMPLE}", or test them with `python -m analysis noninferiority --one-sample '
            "--case case --rater rater` on the export (its rows of this item)"
        )
    if one_sample and item.get("scope") != "case":
        return (
            f"the protocol tests item '{endpoint.item}' as {ONE_SAMPLE}, a score that is "
            "already test - reference, but the item is rated per answer: its values are each "
            "arm's own, so compare the arms (statistic mean_difference)"
        )
    return None


def _win_share(
    endpoint: Endpoint, pairwise: pl.DataFrame, test: str | None, common: dict[str, Any]
) -> pl.DataFrame:
    """The test arm's win share on a pairwise endpoint (``analysis.preference.win_rates``' win
    row from the test arm's side), descriptive: no margin, no test."""
    descriptive = common | {col.MARGIN: None, col.DIRECTION: None, col.TEST_ARM: test}
    if col.STATISTIC in pairwise.columns and col.COMPETITOR in pairwise.columns:
        wins = pairwise.filter(
            (pl.col(col.ITEM) == endpoint.item)
            & (pl.col(col.STATISTIC) == "win_rate")
            & (pl.col(col.VARIANT) == "win")
            & (pl.col(col.COMPETITOR) == test)
        )
        if wins.height:
            return (
                wins.head(1)
                .rename({col.METHOD: METHOD_DESCRIPTION})
                .with_columns(pl.lit(v).alias(k) for k, v in descriptive.items() if k != col.ITEM)
                .with_columns(
                    pl.lit("wilson").alias(col.METHOD),
                    pl.col(col.OPPONENT).alias(col.REFERENCE_ARM),
                    pl.format(
                        "{} won {} of {} comparisons ({} ties; two-sided sign test of wins "
                        "against losses p = {}); descriptive: no margin, not in the Holm family",
                        pl.lit(test),
                        pl.col(col.WINS),
                        pl.col(col.N_COMPARISONS),
                        pl.col(col.TIES),
                        pl.col(col.P_VALUE).round_sig_figs(2),
                    ).alias(col.CONCLUSION),
                    pl.col(col.N_COMPARISONS).alias(col.N_UNITS),
                )
                # the table's p is one-sided against a margin; a win share has none
                .with_columns(pl.lit(None, dtype=pl.Float64).alias(col.P_VALUE))
            )
    return refused(
        "win_rate",
        f"no comparison of item '{endpoint.item}' involving the test arm '{test}' was rated",
        **descriptive,
    )
