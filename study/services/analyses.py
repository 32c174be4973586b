"""The one door from ``study`` into the ``analysis`` library: the long format it reads, and the
analyses a service runs on a study's ratings: the blind interim agreement a coordinator watches,
and, once the study is unblinded, every result its locked plan calls for (``study_results``).

``analysis`` knows nothing of studies or databases; this module hands it frames in the long
format whose column names ``analysis.columns`` declares, and turns its ``AnalysisError`` into a
row that says why an item could not be analysed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

import polars as pl

from analysis import columns as col
from analysis.agreement import agreement_table
from analysis.describe import describe
from analysis.errors import AnalysisError
from analysis.noninferiority import (
    MEAN_METHODS,
    adjust_secondary,
    mean_difference,
    risk_difference,
)
from analysis.preference import bradley_terry, position_bias, win_rates
from study import digests
from study.access import Caller, guarded
from study.errors import StateError
from study.services import monitoring
from study.services._common import require_study
from study.store import Store

LONG_FORMAT = col
"""The long format's column names (``STUDY``, ``CASE``, ``ARM``, ``ANSWER``, ``RATER``, ``ITEM``,
``VALUE``, ``POSITION``, ``LABEL``, ``SECONDS``, ``REVISION``), as the analysis library reads
them: exports write these names."""

_AGREEMENT_LEVELS = ("nominal", "ordinal", "interval", "ratio")

_BLINDED_SQL = """
SELECT i.item_key AS item, i.level, i.options, p.answer_id AS unit, s.rater, r.value_num AS value
FROM current_ratings c
JOIN ratings r ON r.id = c.rating
JOIN assignments s ON s.id = c.assignment
JOIN presentations p ON p.id = r.presentation
JOIN study_instruments si ON si.study = s.study AND si.instrument_key = r.instrument_key
    AND si.instrument_version = r.instrument_version
JOIN items i ON i.instrument_key = r.instrument_key AND i.instrument_version = r.instrument_version
    AND i.item_key = r.item_key
WHERE s.study = $s AND r.status = 'submitted' AND r.value_num IS NOT NULL
ORDER BY item, unit, s.rater
"""


@guarded
def interim_agreement(
    store: Store,
    caller: Caller,
    study: str,
    *,
    boot: int = 1000,
    ci: float = 0.95,
    seed: int | None = None,
) -> pl.DataFrame:
    """Agreement among the raters per item, pooled over arms: what a coordinator may watch while
    the study is blind.

    For every answer-level item with numeric values at a nominal, ordinal, interval or ratio
    level: ``analysis.agreement.agreement_table`` over units = the answers rated (each answer
    is one unit, whichever arm wrote it; no arm appears in the result), at the item's declared
    level and over its declared scale. Columns: ``item`` then the agreement table's columns. An
    item that cannot be analysed yet (e.g. fewer than two raters on any answer) gives one row with
    ``applicable`` false and the reason in ``note``. ``seed``: of the bootstraps (drawn and
    reported in the ``seed`` column when None).
    """
    return _agreement(store.read(_BLINDED_SQL, {"s": study}), boot=boot, ci=ci, seed=seed)


def _agreement(ratings: pl.DataFrame, *, boot: int, ci: float, seed: int | None) -> pl.DataFrame:
    """``agreement_table`` per item of ``ratings`` (columns item, level, options, unit, rater,
    value), as ``interim_agreement`` describes."""
    frames = []
    for (item,), rows in ratings.group_by("item", maintain_order=True):
        level = rows.item(0, "level")
        if level not in _AGREEMENT_LEVELS:
            continue
        scale = _scale(rows.item(0, "options"))
        try:
            table = agreement_table(
                rows,
                unit="unit",
                rater="rater",
                value="value",
                level=level,
                scale=scale,
                boot=boot,
                ci=ci,
                seed=seed,
            )
        except AnalysisError as exc:
            table = pl.DataFrame({col.APPLICABLE: [False], col.NOTE: [str(exc)]})
        frames.append(table.select(pl.lit(item).alias(col.ITEM), pl.all()))
    if not frames:
        return pl.DataFrame(schema={col.ITEM: pl.String})
    return pl.concat(frames, how="diagonal_relaxed")


def _scale(options: str | None) -> list[Any] | None:
    """The item's declared option values, lowest to highest, if they are numbers."""
    if not options:
        return None
    values = [option.get("value") for option in json.loads(options)]
    if not values or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    ):
        return None
    return sorted(values)


@guarded
def ratings_digest(store: Store, caller: Caller, study: str) -> str:
    """A digest that changes whenever the study's analysable data change: its status, its newest
    locked protocol, and the set of current submitted ratings (a new rating or a revision moves a
    current-rating pointer). A cache key for results (64 hex characters), not a tamper seal:
    ``audit verify`` is that. One aggregate query (``digests.CURRENT_RATINGS_SQL``), no rows
    read into Python."""
    cur = store.cursor()
    try:
        status = require_study(cur, study)["status"]
        counts = cur.execute(digests.CURRENT_RATINGS_SQL, {"study": study}).fetchall()[0]
        protocol = cur.execute(
            "SELECT max_by(content_hash, version) FROM protocols WHERE study = ?", [study]
        ).fetchall()[0][0]
    finally:
        cur.close()
    text = json.dumps([study, status, protocol, *(str(c) for c in counts)])
    return hashlib.sha256(text.encode()).hexdigest()


# --- the unblinded analysis --------------------------------------------------------------------

MIXED_MAX_LEVELS = 200
"""The linear mixed model (crossed random intercepts for case and rater) is fitted as a sensitivity
analysis only when cases + raters of the item number at most this many: statsmodels' MixedLM
fits crossed effects as variance components of one group and solves a dense system as large as
the number of levels at every step (measured on this project's shared 2-core machine: about
100 s for 2,040 cases and raters, 14 s for 450, under a second for the demo's 48). Above it a row
says so; a plan whose primary method is the mixed model is run as locked, whatever its size."""

SUBGROUP_METHOD = "t"
"""Subgroup estimates use the paired t interval over cases: quick, and defined for small groups."""

_ARM_RATINGS_SQL = f"""
SELECT s.case_id AS {col.CASE}, an.arm_id AS {col.ARM}, p.answer_id AS {col.ANSWER},
    s.rater AS {col.RATER}, r.item_key AS {col.ITEM}, r.value_num AS {col.VALUE},
    p.position AS {col.POSITION}
FROM current_ratings c
JOIN ratings r ON r.id = c.rating
JOIN assignments s ON s.id = c.assignment
JOIN presentations p ON p.id = r.presentation
JOIN answers an ON an.study = p.study AND an.answer_id = p.answer_id
WHERE s.study = $s AND r.status = 'submitted' AND r.value_num IS NOT NULL
-- a fixed order: the bootstraps number cases and raters by first appearance, so the same seed
-- gives the same figures only on rows in the same order (the export's order)
ORDER BY s.case_id, s.rater, r.item_key, p.position
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
    AND i.type = 'pairwise_choice' AND r.value_text IS NOT NULL
GROUP BY s.id, s.case_id, s.rater, r.item_key, r.value_text
ORDER BY s.case_id, s.rater, r.item_key
"""

_ITEMS_SQL = """
SELECT i.item_key AS item, i.type, i.level, i.options, i.scope
FROM study_instruments si JOIN items i ON i.instrument_key = si.instrument_key
    AND i.instrument_version = si.instrument_version
WHERE si.study = $s ORDER BY si.position, i.position
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
    """Every result the locked analysis plan calls for, on the current submitted ratings of an
    unblinded study (``StateError`` before the audited unblinding step; the command line's
    operator may read them at any time, as it may export).

    The plan is the newest locked protocol: its ``primary_endpoint`` (item, margin, direction
    "higher"/"lower", one-sided alpha, method, ``sensitivity_methods``), ``arms`` (test and
    reference; without them, the study's one LLM arm against its one clinician arm) and
    ``secondary_endpoints``. The difference is always test minus reference. A 0/1 item is tested
    as a risk difference (Newcombe by default), any other as a mean difference.

    ``seed`` of every bootstrap: by default the first 8 hex digits of the protocol's hash, so the
    same plan on the same ratings gives the same figures; recorded in the rows' ``seed`` column.

    Returns a dict:

    - ``plan``: {item, margin, direction, alpha, method, test, reference, sensitivity_methods,
      protocol_version, protocol_hash, seed}.
    - ``endpoints``: non-inferiority rows (``analysis.noninferiority``'s columns plus ``item``,
      ``role`` "primary" | "sensitivity" | "secondary", ``analysis`` in words, ``p_adjusted``
      (Holm, secondary rows)). Sensitivity, for a mean difference: every mean method other than
      the primary's (paired t, two-way bootstrap, mixed model; mixed only up to
      ``MIXED_MAX_LEVELS`` cases and raters), each labelled as in the plan's ``sensitivity_methods`` or
      not; and, for any item, the plan's method without the raters ``monitoring.rater_flags``
      flags.
    - ``agreement``: ``agreement_table`` per item, units = answers (as ``interim_agreement``).
    - ``distribution``: item, arm, value, n, share (of the item's ratings in that arm).
    - ``summary``: ``analysis.describe`` per item and arm.
    - ``pairwise``: per pairwise item, ``win_rates`` (from the test arm's side),
      ``bradley_terry`` and ``position_bias`` rows, with ``item``.
    - ``subgroups``: the primary comparison by ``SUBGROUP_METHOD`` within each ``group`` of each
      ``subgroup`` ("case specialty", "case tag", "rater specialty").
    A part that cannot be computed gives rows with ``applicable`` false and the reason in
    ``note``; an empty frame means the study has nothing of that kind (e.g. no pairwise item).
    """
    from study.services import design

    cur = store.cursor()
    try:
        status = require_study(cur, study)["status"]
    finally:
        cur.close()
    if status != "unblinded" and not caller.is_operator:
        raise StateError(
            f"Study '{study}' is {status}: results by arm are read only after the audited "
            "unblinding step."
        )
    protocol = design.get_protocol(store, caller, study)
    items = store.read(_ITEMS_SQL, {"s": study})
    ratings = store.read(_ARM_RATINGS_SQL, {"s": study})
    plan = _plan(store, study, protocol, seed)
    flagged = (
        monitoring.rater_flags(store, caller, study).filter(pl.col("flagged")).get_column("rater")
    )
    info = {row["item"]: row for row in items.iter_rows(named=True)}
    blinded = ratings.join(
        items.select("item", "level", "options"), left_on=col.ITEM, right_on="item"
    ).select(col.ITEM, "level", "options", pl.col(col.ANSWER).alias("unit"), col.RATER, col.VALUE)
    return {
        "plan": plan,
        "endpoints": _endpoints(ratings, info, plan, protocol["content"], flagged, boot),
        "agreement": _agreement(blinded, boot=boot, ci=0.95, seed=plan["seed"]),
        "distribution": _distribution(ratings, info),
        "summary": _summary(ratings),
        "pairwise": _pairwise(store.read(_PAIRWISE_SQL, {"s": study}), plan, boot),
        "subgroups": _subgroups(ratings, store.read(_GROUPS_SQL, {"s": study}), info, plan),
    }


def _plan(store: Store, study: str, protocol: Mapping[str, Any], seed: int | None) -> dict:
    """The locked plan's primary comparison, with the defaults ``study_results`` states."""
    content = protocol["content"] if isinstance(protocol["content"], Mapping) else {}
    endpoint = dict(protocol["primary_endpoint"])
    if not endpoint.get("item") and content.get("primary_item"):
        endpoint = {"item": content["primary_item"], "margin": content.get("margin")}
    test, reference = protocol.get("test_arm"), protocol.get("reference_arm")
    if not (test and reference):
        arms = store.read("SELECT arm_id, kind FROM arms WHERE study = $s", {"s": study})
        llm = arms.filter(pl.col("kind") == "llm").get_column("arm_id").to_list()
        clinician = arms.filter(pl.col("kind") == "clinician").get_column("arm_id").to_list()
        if len(llm) == 1 and len(clinician) == 1:
            test, reference = llm[0], clinician[0]
    digest = str(protocol["content_hash"])
    return {
        "item": endpoint.get("item"),
        "margin": endpoint.get("margin"),
        "direction": endpoint.get("direction") or "higher",
        "alpha": float(endpoint.get("alpha") or 0.025),
        "method": endpoint.get("method"),
        "statistic": endpoint.get("statistic"),
        "sensitivity_methods": list(endpoint.get("sensitivity_methods") or ()),
        "test": test,
        "reference": reference,
        "protocol_version": protocol["version"],
        "protocol_hash": digest,
        "seed": int(seed) if seed is not None else int(digest[:8], 16),
    }


def _is_binary(values: pl.Series) -> bool:
    return values.len() > 0 and bool(values.is_in([0.0, 1.0]).all())


def _compare(
    frame: pl.DataFrame,
    plan: Mapping[str, Any],
    endpoint: Mapping[str, Any],
    *,
    method: str | None,
    boot: int,
) -> pl.DataFrame:
    """One non-inferiority row for ``endpoint`` (item, margin, direction, statistic) on the
    item's ratings ``frame``; ``method`` None: the endpoint's own (or the default)."""
    common = {
        "test": plan["test"],
        "reference": plan["reference"],
        "margin": float(endpoint["margin"]),
        "direction": endpoint.get("direction") or "higher",
        "alpha": float(endpoint.get("alpha") or plan["alpha"]),
    }
    binary = endpoint.get("statistic") == "risk_difference" or (
        endpoint.get("statistic") is None and _is_binary(frame.get_column(col.VALUE))
    )
    if binary:
        return risk_difference(frame, method=method or "newcombe", **common)
    method = method or "t"
    options = {"boot": boot, "seed": plan["seed"]} if method == "bootstrap" else {}
    return mean_difference(frame, method=method, **options, **common)


def _safely(run: Callable[[], pl.DataFrame], statistic: str, **columns: Any) -> pl.DataFrame:
    """``run()``, or one not-applicable row with the library's reason."""
    try:
        result = run()
    except AnalysisError as exc:
        result = pl.DataFrame(
            {col.STATISTIC: [statistic], col.APPLICABLE: [False], col.NOTE: [str(exc)]}
        )
    return result.with_columns(**{k: pl.lit(v) for k, v in columns.items()})


def _endpoints(
    ratings: pl.DataFrame,
    info: Mapping[str, Mapping[str, Any]],
    plan: Mapping[str, Any],
    content: Mapping[str, Any],
    flagged: pl.Series,
    boot: int,
) -> pl.DataFrame:
    """Primary, sensitivity and secondary rows, as ``study_results`` describes."""
    if not plan["item"] or plan["margin"] is None or not (plan["test"] and plan["reference"]):
        return pl.DataFrame(
            {
                col.STATISTIC: ["non-inferiority"],
                col.APPLICABLE: [False],
                col.NOTE: [
                    "the locked plan names no primary item with a margin, or no test and "
                    "reference arm"
                ],
                col.ROLE: ["primary"],
            }
        )
    item = plan["item"]
    frame = ratings.filter(pl.col(col.ITEM) == item)
    primary = {k: plan[k] for k in ("item", "margin", "direction", "alpha", "statistic")}
    rows = [
        _safely(
            lambda: _compare(frame, plan, primary, method=plan["method"], boot=boot),
            "non-inferiority",
            item=item,
            role="primary",
            analysis="primary (locked plan)",
        )
    ]
    binary = primary["statistic"] == "risk_difference" or _is_binary(frame.get_column(col.VALUE))
    planned = plan["method"] or ("newcombe" if binary else "t")
    if not binary:
        in_plan = set(plan["sensitivity_methods"])
        for method in [m for m in MEAN_METHODS if m != planned]:
            named = "locked plan" if method in in_plan else "not in the plan"
            label = {"t": "paired t", "bootstrap": "two-way bootstrap", "mixed": "mixed model"}[
                method
            ]
            levels = frame.get_column(col.CASE).n_unique() + frame.get_column(col.RATER).n_unique()
            if method == "mixed" and levels > MIXED_MAX_LEVELS:
                rows.append(
                    pl.DataFrame(
                        {
                            col.STATISTIC: ["mean_difference"],
                            col.VARIANT: ["mixed"],
                            col.APPLICABLE: [False],
                            col.NOTE: [
                                f"the mixed model is not fitted as a sensitivity analysis on "
                                f"{levels:,} cases and raters (more than {MIXED_MAX_LEVELS:,}: "
                                "its fit takes minutes at that size)"
                            ],
                            "item": [item],
                            col.ROLE: ["sensitivity"],
                            "analysis": [f"sensitivity ({named}): {label}"],
                        }
                    )
                )
                continue
            rows.append(
                _safely(
                    lambda m=method: _compare(frame, plan, primary, method=m, boot=boot),
                    "non-inferiority",
                    item=item,
                    role="sensitivity",
                    analysis=f"sensitivity ({named}): {label}",
                )
            )
    if flagged.len():
        kept = frame.filter(~pl.col(col.RATER).is_in(flagged.implode()))
        rows.append(
            _safely(
                lambda: _compare(kept, plan, primary, method=plan["method"], boot=boot),
                "non-inferiority",
                item=item,
                role="sensitivity",
                analysis=f"sensitivity: without the {flagged.len()} flagged rater(s)",
            )
        )
    secondary = []
    for endpoint in content.get("secondary_endpoints") or ():
        if not isinstance(endpoint, Mapping) or endpoint.get("margin") is None:
            continue  # a descriptive secondary (e.g. win rates) is in its own part
        other = endpoint.get("item")
        if other not in info:
            continue
        sub = ratings.filter(pl.col(col.ITEM) == other)
        secondary.append(
            _safely(
                lambda e=endpoint, f=sub: _compare(f, plan, e, method=e.get("method"), boot=boot),
                "non-inferiority",
                item=other,
                role="secondary",
                analysis="secondary (locked plan)",
            )
        )
    result = pl.concat(rows, how="diagonal_relaxed")
    if secondary:
        tested = pl.concat(secondary, how="diagonal_relaxed")
        ok = tested.filter(pl.col(col.APPLICABLE) & pl.col(col.P_VALUE).is_not_null())
        if ok.height:
            ok = adjust_secondary(ok)
        tested = pl.concat(
            [ok, tested.filter(~(pl.col(col.APPLICABLE) & pl.col(col.P_VALUE).is_not_null()))],
            how="diagonal_relaxed",
        )
        result = pl.concat([result, tested], how="diagonal_relaxed")
    return result


def _distribution(ratings: pl.DataFrame, info: Mapping[str, Mapping[str, Any]]) -> pl.DataFrame:
    """Counts of each value per item and arm, for items with declared options."""
    choice = [i for i, row in info.items() if row["options"] and row["type"] != "pairwise_choice"]
    counts = (
        ratings.filter(pl.col(col.ITEM).is_in(choice))
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
    return describe(ratings, value=col.VALUE, arm=col.ARM, by=col.ITEM).sort(col.ITEM, col.ARM)


def _pairwise(choices: pl.DataFrame, plan: Mapping[str, Any], boot: int) -> pl.DataFrame:
    """Win rates, Bradley-Terry and position bias per pairwise item."""
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
        focus = (
            plan["test"] if plan["test"] in set(comparisons["a"]) | set(comparisons["b"]) else None
        )
        parts = [
            _safely(lambda c=comparisons, f=focus: win_rates(c, focus=f), "win_rates", item=item),
            _safely(
                lambda c=comparisons: bradley_terry(
                    c, reference=plan["reference"], boot=boot, seed=plan["seed"]
                ),
                "bradley_terry",
                item=item,
            ),
            _safely(lambda c=comparisons: position_bias(c, first="a"), "position_bias", item=item),
        ]
        frames.append(pl.concat(parts, how="diagonal_relaxed"))
    if not frames:
        return pl.DataFrame(schema={col.ITEM: pl.String})
    return pl.concat(frames, how="diagonal_relaxed")


def _subgroups(
    ratings: pl.DataFrame,
    groups: pl.DataFrame,
    info: Mapping[str, Mapping[str, Any]],
    plan: Mapping[str, Any],
) -> pl.DataFrame:
    """The primary comparison within each subgroup, by ``SUBGROUP_METHOD``."""
    item = plan["item"]
    if not item or item not in info or plan["margin"] is None or not plan["test"]:
        return pl.DataFrame(schema={"subgroup": pl.String, "group": pl.String})
    frame = ratings.filter(pl.col(col.ITEM) == item)
    primary = {k: plan[k] for k in ("item", "margin", "direction", "alpha", "statistic")}
    binary = primary["statistic"] == "risk_difference" or _is_binary(frame.get_column(col.VALUE))
    method = None if binary else SUBGROUP_METHOD
    frames = []
    for (subgroup, group), members in groups.group_by("subgroup", "group", maintain_order=True):
        key = col.CASE if members.get_column("case").is_not_null().any() else col.RATER
        ids = members.get_column("case" if key == col.CASE else "rater").drop_nulls()
        part = frame.filter(pl.col(key).is_in(ids.implode()))
        frames.append(
            _safely(
                lambda p=part: _compare(p, plan, primary, method=method, boot=0),
                "non-inferiority",
                subgroup=subgroup,
                group=group,
            )
        )
    if not frames:
        return pl.DataFrame(schema={"subgroup": pl.String, "group": pl.String})
    return pl.concat(frames, how="diagonal_relaxed").sort("subgroup", "group")
