"""The one results pipeline: the locked plan (``study.protocol.Plan``) and a study's ratings,
read once, -> every result the Analysis screen, the HTML report, the export bundle and
``python -m study results`` show. Nothing else computes a result of a study.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from analysis import columns as col
from analysis.describe import describe
from analysis.errors import AnalysisError
from analysis.preference import bradley_terry, position_bias, win_rates
from study import protocol
from study.access import Caller, guarded
from study.errors import NotFoundError
from study.services import monitoring
from study.services._common import require_unblinded
from study.services.analyses._criteria import (
    answer_scores,
    criteria_agreement,
    criterion_rows,
    rubric_frames,
)
from study.services.analyses._endpoints import (
    RESULT_COLUMNS,
    one_sample_problem,
    results_table,
    statistic_of,
)
from study.services.analyses._shared import (
    AGREEMENT_LEVELS,
    agreement_by_item,
    declared_directions,
    refused,
    safely,
    stacked,
    study_items,
)
from study.store import Store

PER_CASE = "(rated per case)"
"""The ``arm`` shown in distributions and summaries for an item rated once per case (scope
``case``, e.g. "which answer is more complete, -2..+2"): its ratings belong to no answer, so to
no arm. Agreement on such an item takes the case as the unit."""

SUBGROUP_METHOD = "t"
"""Subgroup estimates use the paired t interval over cases: quick, and defined for small groups."""

PAIRWISE_KEYS = (col.ITEM, col.STATISTIC, col.VARIANT, col.COMPETITOR, col.OPPONENT)
"""The columns that say what a row of the pairwise table (``study_results``' ``pairwise``) is
about: the Analysis screen and the report show them first, in this order, then its figures."""

GUESS_ITEM = "source_guess"
GUESS_CODES = {1: "llm", 2: "clinician", 0: "dont_know"}
"""The built-in ``source_guess`` item's codes as the blinding indices name the sources."""

_RATINGS_SQL = f"""
SELECT s.case_id AS {col.CASE}, an.arm_id AS {col.ARM}, p.answer_id AS {col.ANSWER},
    s.rater AS {col.RATER}, r.item_key AS {col.ITEM}, r.value_num AS {col.VALUE},
    p.position AS {col.POSITION}, s.phase AS {col.PHASE}
FROM current_ratings c
JOIN ratings r ON r.id = c.rating
JOIN assignments s ON s.id = c.assignment
-- an item rated once per case has no presentation, so no answer and no arm (null): PER_CASE
LEFT JOIN presentations p ON p.id = r.presentation
LEFT JOIN answers an ON an.study = p.study AND an.answer_id = p.answer_id
WHERE s.study = $s AND r.status = 'submitted' AND r.value_num IS NOT NULL
    AND s.phase IN ('live', 'repeat')
-- a fixed order: the bootstraps number cases and raters by first appearance, so the same seed
-- gives the same figures only on rows in the same order
ORDER BY s.phase, s.case_id, s.rater, r.item_key, p.position
"""

_PAIRWISE_SQL = """
SELECT s.case_id AS case, s.rater, r.item_key AS item, r.value_text AS choice,
    max(an.arm_id) FILTER (WHERE p.position = 1) AS a,
    max(an.arm_id) FILTER (WHERE p.position = 2) AS b,
    max(an.arm_id) FILTER (WHERE p.label = r.value_text OR p.label = 'Response ' || r.value_text)
        AS chosen
FROM current_ratings c
JOIN ratings r ON r.id = c.rating
JOIN assignments s ON s.id = c.assignment
JOIN items i ON i.instrument_key = r.instrument_key AND i.instrument_version = r.instrument_version
    AND i.item_key = r.item_key
JOIN presentations p ON p.assignment = s.id
JOIN answers an ON an.study = p.study AND an.answer_id = p.answer_id
WHERE s.study = $s AND r.presentation IS NULL AND r.status = 'submitted'
    AND i.type = 'pairwise_choice' AND r.value_text IS NOT NULL AND s.phase = 'live'
GROUP BY s.id, s.case_id, s.rater, r.item_key, r.value_text
ORDER BY s.case_id, s.rater, r.item_key
"""

_GROUPS_SQL = """
SELECT 'case specialty' AS subgroup, case_id AS case, NULL AS rater,
    coalesce(nullif(trim(specialty), ''), '(none)') AS "group"
FROM cases WHERE study = $s
UNION ALL
SELECT 'case tag', case_id, NULL, unnest(tags) FROM cases WHERE study = $s
UNION ALL
SELECT DISTINCT 'rater specialty', NULL, a.rater,
    coalesce(nullif(trim(u.specialty), ''), '(none)')
FROM assignments a JOIN users u ON u.id = a.rater WHERE a.study = $s
"""


@guarded
def study_results(
    store: Store,
    caller: Caller,
    study: str,
    *,
    boot: int = 1000,
    seed: int | None = None,
) -> dict[str, Any]:
    """Every result of a study: the locked plan's analyses and what describes them, on the
    current submitted ratings of an unblinded study (``StateError`` before the audited
    unblinding step; the command line's operator may read them at any time, as it may export).

    The plan is the newest locked protocol read by ``study.protocol`` (directions filled from
    the items' declarations); the difference is always test minus reference.

    ``seed`` of every bootstrap: by default the plan's (``Plan.seed``, from the protocol's hash),
    so the same plan on the same ratings gives the same figures on the screen, in the report and
    in the bundle; recorded in the rows' ``seed`` column.

    Returns a dict:

    - ``protocol``: the ``study.protocol.Plan`` (resolved).
    - ``plan``: the primary comparison for display: {item, margin, direction, alpha, method,
      statistic, test, reference, sensitivity_methods, protocol_version, protocol_hash, seed}
      (None values when the plan has no primary endpoint).
    - ``results``: the results table (``endpoints.RESULT_COLUMNS``; ``endpoints.results_table``).
    - ``agreement``: ``agreement_table`` per item (units: the answers; the case for an item
      rated once per case and for a pairwise item, whose value is the chosen arm or "tie"),
      Cohen's per-pair rows included; a rubric item's HealthBench agreement pooled over raters.
    - ``distribution``: item, arm, value, n, share (of the item's ratings in that arm), for items
      with declared options.
    - ``summary``: ``analysis.describe`` per item and arm.
    - ``pairwise``: per pairwise item, ``win_rates`` (from the test arm's side),
      ``bradley_terry`` and ``position_bias`` rows, with ``item``.
    - ``subgroups``: the primary comparison by ``SUBGROUP_METHOD`` within each ``group`` of each
      ``subgroup`` ("case specialty", "case tag", "rater specialty").
    - ``blinding``: Bang's index per arm and James' index from the ``source_guess`` ratings.
    - ``intra_rater``: test-retest agreement per answer-level item, when the design has repeats.
    - ``rubric``: per rubric item, HealthBench scores by arm and tag, and agreement.
    A part that cannot be computed gives rows with ``applicable`` false and the reason in
    ``note``; an empty frame means the study has nothing of that kind.
    """
    require_unblinded(store, caller, study, "its results by arm are read")
    cur = store.cursor()
    try:
        plan = protocol.read_plan(cur, study)
        kinds = dict(
            cur.execute("SELECT arm_id, kind FROM arms WHERE study = ?", [study]).fetchall()
        )
    finally:
        cur.close()
    if plan is None:
        raise NotFoundError(f"Study '{study}' has no locked protocol: there is no plan to run.")
    items = study_items(store, study)
    plan = plan.resolve(declared_directions(items))
    test, reference = plan.arms_for(kinds)
    seed = int(seed) if seed is not None else int(plan.seed or 0)
    every = store.read(_RATINGS_SQL, {"s": study})
    ratings = every.filter(pl.col(col.PHASE) == "live").drop(col.PHASE)
    rubric = {key: criterion_rows(store, study, key) for key, i in items.items() if i["rubric"]}
    if rubric:
        # a rubric item's value is each rater's HealthBench score of each answer (its criteria's
        # labels are stored as text, so the rows above have none)
        ratings = pl.concat(
            [ratings, *(answer_scores(rows, key) for key, rows in rubric.items())],
            how="diagonal_relaxed",
        )
    choices = store.read(_PAIRWISE_SQL, {"s": study})
    pairwise = _pairwise(choices, test, reference, boot, seed)
    flagged = (
        monitoring.rater_flags(store, caller, study)
        .filter(pl.col("flagged"))
        .get_column("rater")
        .to_list()
    )
    table = results_table(
        ratings,
        items,
        plan,
        test=test,
        reference=reference,
        pairwise=pairwise,
        flagged=flagged,
        boot=boot,
        seed=seed,
    )
    return {
        "protocol": plan,
        "plan": _plan_summary(plan, items, test, reference, seed),
        "results": table,
        "agreement": _agreement(store, study, ratings, choices, items, kinds, boot, seed),
        "distribution": _distribution(ratings, items),
        "summary": _summary(ratings),
        "pairwise": pairwise,
        "subgroups": _subgroups(
            ratings, store.read(_GROUPS_SQL, {"s": study}), items, plan, test, reference
        ),  # fmt: skip
        "blinding": _blinding(ratings, kinds),
        "intra_rater": _intra_rater(every, items, boot, seed),
        "rubric": stacked(
            [
                rubric_frames(
                    rows,
                    test=test,
                    reference=reference,
                    margin=None,
                    alpha=0.025,
                    method="t",
                    boot=boot,
                    seed=seed,
                ).select(pl.lit(key).alias(col.ITEM), pl.all())
                for key, rows in rubric.items()
            ]
        ),  # fmt: skip
    }


@guarded
def results_rows(store: Store, caller: Caller, study: str) -> pl.DataFrame:
    """The study's results table alone (``study_results``' ``results``, ``RESULT_COLUMNS``):
    what ``python -m study results`` prints and the bundle writes as results.csv / .json."""
    return study_results(store, caller, study)["results"]


def _plan_summary(
    plan: protocol.Plan,
    items: Mapping[str, Mapping[str, Any]],
    test: str | None,
    reference: str | None,
    seed: int,
) -> dict[str, Any]:
    primary = plan.primary
    item = items.get(primary.item) if primary else None
    return {
        "item": primary.item if primary else None,
        "margin": primary.margin if primary else None,
        "direction": primary.direction if primary else None,
        "alpha": primary.alpha if primary else protocol.DEFAULT_ALPHA,
        "method": primary.method if primary else None,
        "statistic": statistic_of(primary, item) if primary and item else None,
        "sensitivity_methods": list(primary.sensitivity_methods) if primary else [],
        "test": test,
        "reference": reference,
        "protocol_version": plan.version,
        "protocol_hash": plan.content_hash,
        "seed": seed,
    }


def _agreement(
    store: Store,
    study: str,
    ratings: pl.DataFrame,
    choices: pl.DataFrame,
    items: Mapping[str, Mapping[str, Any]],
    kinds: Mapping[str, str],
    boot: int,
    seed: int,
) -> pl.DataFrame:
    """Agreement per item by the one per-item loop (``agreement_by_item``), in instrument
    order: numeric items on their answers (the case for an item rated once per case), a
    pairwise item on its cases (value: the chosen arm, or "tie"), a rubric item by HealthBench's
    agreement on its criteria."""
    numeric = ratings.filter(pl.col(col.VALUE).is_not_null()).select(
        col.ITEM,
        pl.coalesce(col.ANSWER, col.CASE).alias(col.UNIT),
        col.RATER,
        col.VALUE,
    )
    chosen = choices.select(
        col.ITEM,
        pl.col("case").alias(col.UNIT),
        col.RATER,
        pl.when(pl.col("chosen").is_not_null())
        .then(pl.col("chosen"))
        .when(pl.col("choice").str.to_lowercase() == "tie")
        .then(pl.lit("tie"))
        .alias(col.VALUE),
    ).drop_nulls(col.VALUE)
    frames = []
    for key, item in items.items():
        if item["rubric"]:
            frames.append(criteria_agreement(store, study, key, boot=boot, ci=0.95, seed=seed))
        elif item["type"] == "pairwise_choice":
            levels = {key: ("nominal", [*sorted(kinds), "tie"])}
            frames.append(agreement_by_item(chosen, levels, boot=boot, ci=0.95, seed=seed))
        elif item["level"] in AGREEMENT_LEVELS:
            levels = {key: (item["level"], item["scale"])}
            frames.append(agreement_by_item(numeric, levels, boot=boot, ci=0.95, seed=seed))
    return stacked([f for f in frames if f.height])


def _distribution(ratings: pl.DataFrame, items: Mapping[str, Mapping[str, Any]]) -> pl.DataFrame:
    """Counts of each value per item and arm, for items with declared options."""
    choice = [k for k, i in items.items() if i["options"] and i["type"] != "pairwise_choice"]
    counts = (
        ratings.filter(pl.col(col.ITEM).is_in(choice))
        .with_columns(pl.col(col.ARM).fill_null(PER_CASE))
        .group_by(col.ITEM, col.ARM, col.VALUE)
        .agg(pl.len().alias("n"))
    )
    return counts.with_columns(share=pl.col("n") / pl.col("n").sum().over(col.ITEM, col.ARM)).sort(
        col.ITEM, col.ARM, col.VALUE
    )


def _summary(ratings: pl.DataFrame) -> pl.DataFrame:
    """``describe`` of every numeric item per arm."""
    if ratings.height == 0:
        return pl.DataFrame(schema={col.ITEM: pl.String, col.ARM: pl.String})
    return describe(
        ratings.with_columns(pl.col(col.ARM).fill_null(PER_CASE)),
        value=col.VALUE,
        arm=col.ARM,
        by=col.ITEM,
    ).sort(col.ITEM, col.ARM)


def _pairwise(
    choices: pl.DataFrame, test: str | None, reference: str | None, boot: int, seed: int
) -> pl.DataFrame:
    """Win rates (from the test arm's side), Bradley-Terry and position bias per pairwise item."""
    frames = []
    winner = (
        pl.when(pl.col("chosen").is_not_null())
        .then(pl.col("chosen"))
        .when(pl.col("choice").str.to_lowercase() == "tie")
        .then(pl.lit("tie"))
    )
    for (item,), rows in choices.group_by("item", maintain_order=True):
        comparisons = rows.with_columns(winner=winner).filter(
            pl.col("a").is_not_null() & pl.col("b").is_not_null()
        )
        focus = test if test in set(comparisons["a"]) | set(comparisons["b"]) else None
        parts = [
            safely(lambda c=comparisons, f=focus: win_rates(c, focus=f), "win_rates", item=item),
            safely(
                lambda c=comparisons: bradley_terry(c, reference=reference, boot=boot, seed=seed),
                "bradley_terry",
                item=item,
            ),
            safely(lambda c=comparisons: position_bias(c, first="a"), "position_bias", item=item),
        ]
        frames.append(pl.concat(parts, how="diagonal_relaxed"))
    return stacked(frames)


def _subgroups(
    ratings: pl.DataFrame,
    groups: pl.DataFrame,
    items: Mapping[str, Mapping[str, Any]],
    plan: protocol.Plan,
    test: str | None,
    reference: str | None,
) -> pl.DataFrame:
    """The primary comparison within each subgroup, by ``SUBGROUP_METHOD`` (a risk difference
    by its planned method); a subgroup variable with a single group is left out."""
    from analysis.noninferiority import mean_difference, risk_difference

    empty = pl.DataFrame(schema={"subgroup": pl.String, "group": pl.String})
    primary = plan.primary
    item = items.get(primary.item) if primary else None
    if (
        primary is None
        or item is None
        or not primary.tested
        or primary.direction is None
        or test is None
        or reference is None
        or item["type"] == "pairwise_choice"
        or one_sample_problem(primary, item)
        or statistic_of(primary, item) == protocol.ONE_SAMPLE
    ):
        return empty  # not tested as planned: the results table says why
    statistic = statistic_of(primary, item)
    frame = ratings.filter(
        (pl.col(col.ITEM) == primary.item) & pl.col(col.ARM).is_in([test, reference])
    )
    options = {
        "test": test,
        "reference": reference,
        "margin": primary.margin,
        "direction": primary.direction,
        "alpha": primary.alpha,
    }
    # a subgroup variable with one group (every case "(none)", one tag on every case) would only
    # repeat the primary comparison under another name
    varied = (
        groups.group_by("subgroup")
        .agg(pl.col("group").n_unique().alias("n"))
        .filter(pl.col("n") > 1)
        .get_column("subgroup")
    )
    groups = groups.filter(pl.col("subgroup").is_in(varied.implode()))
    frames = []
    for (subgroup, group), members in groups.group_by("subgroup", "group", maintain_order=True):
        key = col.CASE if members.get_column("case").is_not_null().any() else col.RATER
        ids = members.get_column("case" if key == col.CASE else "rater").drop_nulls()
        part = frame.filter(pl.col(key).is_in(ids.implode()))
        if statistic == "risk_difference":
            run = lambda p=part: risk_difference(  # noqa: E731
                p, method=primary.method or "newcombe", **options
            )
        else:
            run = lambda p=part: mean_difference(p, method=SUBGROUP_METHOD, **options)  # noqa: E731
        frames.append(safely(run, "non-inferiority", subgroup=subgroup, group=group))
    if not frames:
        return empty
    return pl.concat(frames, how="diagonal_relaxed").sort("subgroup", "group")


def _blinding(ratings: pl.DataFrame, kinds: Mapping[str, str]) -> pl.DataFrame:
    """Bang's index per arm and James' index, from the raters' guesses of each answer's source
    (the built-in ``source_guess`` item); empty when the study asked for none."""
    from analysis.blinding import bang_index, james_index

    guesses = ratings.filter(
        (pl.col(col.ITEM) == GUESS_ITEM) & pl.col(col.ARM).is_not_null()
    ).select(
        col.ARM,
        pl.col(col.VALUE).cast(pl.Int64).replace_strict(GUESS_CODES, default=None).alias("guess"),
    )
    if guesses.height == 0:
        return pl.DataFrame(schema={col.ARM: pl.String})
    source = {arm: kind for arm, kind in kinds.items() if kind in ("llm", "clinician")}
    try:
        return pl.concat(
            [bang_index(guesses, kind=source), james_index(guesses, kind=source)],
            how="diagonal_relaxed",
        )
    except AnalysisError as exc:
        return refused("blinding_index", str(exc))


def _intra_rater(
    every: pl.DataFrame, items: Mapping[str, Mapping[str, Any]], boot: int, seed: int
) -> pl.DataFrame:
    """Test-retest agreement per answer-level item with numeric values (each rater's live and
    repeat rating of one answer, pooled over raters), led by ``item``; empty without repeats."""
    from analysis.agreement import intra_rater_agreement

    frames = []
    if every.filter(pl.col(col.PHASE) == "repeat").is_empty():
        return stacked(frames)
    for key, item in items.items():
        if item["scope"] != "answer" or item["level"] not in AGREEMENT_LEVELS or item["rubric"]:
            continue
        rows = every.filter(pl.col(col.ITEM) == key)
        if rows.filter(pl.col(col.PHASE) == "repeat").is_empty():
            continue
        frames.append(
            safely(
                lambda r=rows, i=item: intra_rater_agreement(
                    r, level=i["level"], scale=i["scale"], boot=boot, seed=seed
                ),
                "intra_rater_agreement",
            ).select(pl.lit(key).alias(col.ITEM), pl.all())
        )
    return stacked(frames)


__all__ = ["GUESS_CODES", "PER_CASE", "RESULT_COLUMNS", "results_rows", "study_results"]
