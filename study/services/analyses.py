"""The one door from ``study`` into the ``analysis`` library: the long format it reads, and the
analyses a service runs on a study's ratings.

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
    RISK_METHODS,
    adjust_secondary,
    mean_difference,
    mean_difference_one_sample,
    risk_difference,
)
from analysis.preference import bradley_terry, position_bias, win_rates
from study import digests
from study.access import Caller, guarded
from study.canonical import seed_from_hash
from study.errors import Problem, StateError, ValidationError
from study.rubric import stored_criteria
from study.services import monitoring
from study.services._common import require_study
from study.store import Store

ONE_SAMPLE = "mean_difference_one_sample"
"""An endpoint's ``statistic`` for an item rated once per case whose values are already test
minus reference (a comparative score such as ClinSumm's -2..+2): the mean of the values is tested
against the margin by ``analysis.noninferiority.mean_difference_one_sample``. Never assumed: a
case-level score that compares "Response A" with "Response B" changes sign with their order, so
only the protocol can say the values are oriented test minus reference."""

PLAN_METHODS = {
    "mean_difference": MEAN_METHODS,
    "risk_difference": RISK_METHODS,
    ONE_SAMPLE: MEAN_METHODS,
}
"""The methods a plan may name for an endpoint, by its statistic (``analysis.noninferiority``):
for a design screen's choices."""

LONG_FORMAT = col
"""The long format's column names (``STUDY``, ``CASE``, ``ARM``, ``ANSWER``, ``RATER``, ``ITEM``,
``VALUE``, ``POSITION``, ``LABEL``, ``SECONDS``, ``REVISION``, ``PHASE``), as the analysis
library reads them: exports write these names."""

_AGREEMENT_LEVELS = ("nominal", "ordinal", "interval", "ratio")

_BLINDED_SQL = """
SELECT i.item_key AS item, i.level, i.options, coalesce(p.answer_id, s.case_id) AS unit, s.rater,
    r.value_num AS value
FROM current_ratings c
JOIN ratings r ON r.id = c.rating
JOIN assignments s ON s.id = c.assignment
-- an item rated once per case has no presentation: its unit is the case (PER_CASE)
LEFT JOIN presentations p ON p.id = r.presentation
JOIN study_instruments si ON si.study = s.study AND si.instrument_key = r.instrument_key
    AND si.instrument_version = r.instrument_version
JOIN items i ON i.instrument_key = r.instrument_key AND i.instrument_version = r.instrument_version
    AND i.item_key = r.item_key
WHERE s.study = $s AND r.status = 'submitted' AND r.value_num IS NOT NULL AND s.phase = 'live'
ORDER BY item, unit, s.rater
"""


# --- rubric ratings in the long format ---------------------------------------------------------
# A rating of an item rated per criterion of the case (criteria = "case") is stored as one JSON
# object per answer, {"c1": true, "c2": false}; exports and the rubric analyses want one row per
# (answer, criterion, rater), as HealthBench's scoring and agreement read them, with the
# criterion's points and tags taken from the case.

CRITERION = "criterion"
"""The criterion's key within its case (``c1``, ...)."""
CRITERION_TEXT = "criterion_text"
POINTS = "points"
CRITERION_TAGS = "criterion_tags"
"""The criterion's tags and its case's tags, ``;``-separated (HealthBench scores per tag)."""
CRITERION_UNIT = "criterion_unit"
"""``<answer>:<criterion>``: the unit met / not met is agreed on (``--unit`` of ``python -m
analysis rubric``)."""
COLUMNS = (CRITERION, CRITERION_TEXT, POINTS, CRITERION_TAGS, CRITERION_UNIT)


def _criteria_items(store: Store, study: str) -> list[str]:
    """Keys of the study's items rated per criterion of the case."""
    return store.read(
        "SELECT i.item_key FROM study_instruments s JOIN items i"
        " ON i.instrument_key = s.instrument_key AND i.instrument_version = s.instrument_version"
        " WHERE s.study = $s AND json_extract_string(i.definition, '$.criteria') = 'case'",
        {"s": study},
    )["item_key"].to_list()


def _per_criterion(store: Store, study: str, frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` (long export rows) with each rubric rating replaced by one row per criterion.

    A replaced row keeps its columns, with ``value`` 1.0 (met) or 0.0 (not met) and
    ``value_text`` null, and gains ``COLUMNS``; other rows get those columns null. A study
    without a rubric item gets ``frame`` back unchanged (no new columns).
    """
    items = _criteria_items(store, study)
    if not items:
        return frame
    cases = store.read(
        "SELECT case_id, criteria, tags FROM cases WHERE study = $s AND criteria IS NOT NULL",
        {"s": study},
    )
    rubric = {
        case: {c["key"]: (c["criterion"], c["points"], c["tags"]) for c in stored_criteria(text)}
        for case, text in cases.select("case_id", "criteria").iter_rows()
    }
    case_tags = dict(cases.select("case_id", "tags").iter_rows())
    is_rubric = pl.col(col.ITEM).is_in(items)
    plain = frame.filter(~is_rubric)
    rows = []
    for row in frame.filter(is_rubric).iter_rows(named=True):
        labels = json.loads(row["value_text"])
        for key, met in labels.items():
            text, points, tags = rubric[row[col.CASE]][key]
            rows.append(
                row
                | {
                    col.VALUE: 1.0 if met else 0.0,
                    "value_text": None,
                    CRITERION: key,
                    CRITERION_TEXT: text,
                    POINTS: float(points),
                    CRITERION_TAGS: ";".join([*tags, *(case_tags.get(row[col.CASE]) or [])]),
                    CRITERION_UNIT: f"{row[col.ANSWER]}:{key}",
                }
            )
    schema = {
        **frame.schema,
        CRITERION: pl.String,
        CRITERION_TEXT: pl.String,
        POINTS: pl.Float64,
        CRITERION_TAGS: pl.String,
        CRITERION_UNIT: pl.String,
    }
    expanded = pl.DataFrame(rows, schema=schema)
    plain = plain.with_columns(pl.lit(None, dtype=schema[c]).alias(c) for c in COLUMNS)
    return pl.concat([plain, expanded]).sort(
        col.CASE, col.RATER, col.ITEM, col.POSITION, CRITERION, nulls_last=True
    )


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

    Live ratings only: calibration ratings are no study data, and a repeat is a rater's second
    rating of a unit (intra-rater, not between raters). For every answer-level item with numeric
    values at a nominal, ordinal, interval or ratio level: ``analysis.agreement.agreement_table`` over units = the answers rated (each answer
    is one unit, whichever arm wrote it; no arm appears in the result), at the item's declared
    level and over its declared scale. Columns: ``item`` then the agreement table's columns. An
    item that cannot be analysed yet (e.g. fewer than two raters on any answer) gives one row with
    ``applicable`` false and the reason in ``note``. ``seed``: of the bootstraps (drawn and
    reported in the ``seed`` column when None). A rubric item (criteria from the case, stored
    as met / not met per criterion) adds HealthBench's agreement pooled over the raters
    (``_criteria_agreement``), also without arms.
    """
    ratings = store.read(_BLINDED_SQL, {"s": study})
    frames = []
    for (item,), rows in ratings.group_by("item", maintain_order=True):
        level = rows.item(0, "level")
        if level not in _AGREEMENT_LEVELS:
            continue
        scale = _scale(rows.item(0, "options"))
        frames.append(
            _item_agreement(
                item, rows, value="value", level=level, scale=scale, boot=boot, ci=ci, seed=seed
            )
        )
    for item in _criteria_items(store, study):
        frames.append(_criteria_agreement(store, study, item, boot=boot, ci=ci, seed=seed))
    return _stacked(frames)


_BLINDED_CRITERIA_SQL = """
SELECT p.answer_id AS answer, s.rater, r.value_text
FROM current_ratings c
JOIN ratings r ON r.id = c.rating
JOIN assignments s ON s.id = c.assignment
JOIN presentations p ON p.id = r.presentation
WHERE s.study = $s AND r.item_key = $item AND r.status = 'submitted'
    AND r.value_text IS NOT NULL AND s.phase = 'live'
ORDER BY answer, s.rater
"""


def _criteria_agreement(
    store: Store, study: str, item: str, *, boot: int, ci: float, seed: int | None
) -> pl.DataFrame:
    """The raters' agreement on rubric item ``item``'s met / not met labels, pooled over the
    raters and over arms: ``analysis.rubric.healthbench_agreement``'s rows for all clinicians'
    pairs together (rater ``clinicians``), units = answer x criterion, led by ``item``. No arm
    is read (the query names none). One not-applicable row saying why when the library refuses
    (e.g. one rater so far)."""
    from analysis.rubric import CLINICIANS, healthbench_agreement

    labels = store.read(_BLINDED_CRITERIA_SQL, {"s": study, "item": item})
    rows = [
        {"unit": f"{answer}:{criterion}", col.RATER: rater, "met": bool(met)}
        for answer, rater, text in labels.iter_rows()
        for criterion, met in json.loads(text).items()
    ]
    frame = pl.DataFrame(rows, schema={"unit": pl.String, col.RATER: pl.String, "met": pl.Boolean})
    try:
        table = healthbench_agreement(
            frame, unit="unit", rater=col.RATER, met="met", boot=boot, ci=ci, seed=seed
        ).filter(pl.col(col.RATER) == CLINICIANS)
    except AnalysisError as exc:
        table = pl.DataFrame(
            {
                col.STATISTIC: ["healthbench_agreement"],
                col.APPLICABLE: [False],
                col.NOTE: [str(exc)],
            }
        )
    return table.select(pl.lit(item).alias(col.ITEM), pl.all())


def _item_agreement(
    item: str,
    rows: pl.DataFrame,
    *,
    value: str,
    level: str,
    scale: list[Any] | None,
    boot: int,
    ci: float,
    seed: int | None,
) -> pl.DataFrame:
    """``agreement_table`` of one item's ``rows`` (columns unit, rater, ``value``), led by
    ``item``; one not-applicable row saying why when the library refuses them."""
    try:
        table = agreement_table(
            rows,
            unit="unit",
            rater=col.RATER,
            value=value,
            level=level,
            scale=scale,
            boot=boot,
            ci=ci,
            seed=seed,
        )
    except AnalysisError as exc:
        table = pl.DataFrame({col.APPLICABLE: [False], col.NOTE: [str(exc)]})
    return table.select(pl.lit(item).alias(col.ITEM), pl.all())


def _stacked(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """Per-item tables as one frame (an empty one, with ``item``, when there are none)."""
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


# --- the planned analyses of an export (the report) -------------------------------------------

GUESS_CODES = {1: "llm", 2: "clinician", 0: "dont_know"}
"""The built-in ``source_guess`` item's codes as the blinding indices name the sources."""


@guarded
def planned_results(
    store: Store,
    caller: Caller,
    study: str,
    ratings: pl.DataFrame,
    *,
    boot: int = 1000,
    seed: int = 20260101,
) -> dict[str, pl.DataFrame]:
    """The analyses the study's newest locked protocol plans, run on ``ratings`` (the long
    export of ``exports.export_ratings_long``, with arms: the caller exported it already).

    Returns tidy frames (``analysis`` result columns), keyed:

    - ``noninferiority``: the primary endpoint (its method, then each of its
      ``sensitivity_methods``) and every secondary endpoint that is a mean or a risk
      difference, test arm minus reference arm, each row led by ``item`` and with ``role``
      and ``p_adjusted`` (Holm over the secondary endpoints, ``analysis.noninferiority.
      adjust_secondary``). The protocol gives ``primary_endpoint`` ({item, margin, direction,
      alpha, method, sensitivity_methods}) or ``primary_item`` and ``margin``; ``arms``
      ({test, reference}) or, failing that, its only LLM arm against its only clinician arm.
      Binary items (type ``binary``) get a risk difference (default ``newcombe``), others a mean
      difference (default ``t``); ``direction`` defaults to the item's. An endpoint that cannot
      be analysed gives a row with ``applicable`` false and the reason.
    - ``agreement``: ``agreement_table`` per item at its declared level over its declared scale
      (unit: the answer; pairwise items: the case, value: the chosen arm or tie), Cohen's
      per-pair rows left out; led by ``item``.
    - ``describe``: n, mean, SD, quartiles of each numeric per-answer item by arm.
    - ``preference``: win/tie/loss of the test arm per pairwise item (Wilson intervals) and the
      position bias (share of decided comparisons won by the answer shown first).
    - ``blinding``: Bang's index per arm and James' index, from the ``source_guess`` ratings
      (one guess per rater and answer), when the study asked for them.
    - ``intra_rater``: when the export has repeats (``phase`` "repeat"), test-retest agreement
      per answer-level item (``analysis.agreement.intra_rater_agreement``: each rater's live and
      repeat rating of one answer, pooled over raters), led by ``item``.

    Every other analysis reads the live rows only: a repeat is a rater's second rating of a unit.

    ``boot`` and ``seed``: of every bootstrap (agreement intervals, bootstrap methods); the
    seed is reported in the ``seed`` column, so the report can be reproduced.
    """
    from analysis.blinding import bang_index, james_index
    from analysis.describe import describe
    from analysis.noninferiority import adjust_secondary

    # A rubric item's rows (one per answer x criterion x rater) are scored HealthBench's way
    # (``_rubric_frames``); every other analysis reads one value per answer and item.
    rubric_keys = set(_criteria_items(store, study))
    if CRITERION in ratings.columns:
        criteria_rows = ratings.filter(pl.col(CRITERION).is_not_null())
        ratings = ratings.filter(pl.col(CRITERION).is_null())
    else:
        criteria_rows = ratings.head(0)
    if col.PHASE in criteria_rows.columns:
        criteria_rows = criteria_rows.filter(pl.col(col.PHASE) != "repeat")
    repeats = (
        ratings.filter(pl.col(col.PHASE) == "repeat") if col.PHASE in ratings.columns else None
    )
    if repeats is not None:
        both = ratings
        ratings = ratings.filter(pl.col(col.PHASE) != "repeat")
    protocol = _newest_protocol(store, study)
    items = store.read(
        "SELECT i.item_key, i.type, i.level, i.direction, i.scope, i.options"
        " FROM study_instruments s JOIN items i ON i.instrument_key = s.instrument_key"
        " AND i.instrument_version = s.instrument_version WHERE s.study = $s"
        " ORDER BY s.position, i.position",
        {"s": study},
    )
    every_item = {row["item_key"]: row for row in items.iter_rows(named=True)}
    meta = {k: m for k, m in every_item.items() if k not in rubric_keys}
    kinds = dict(
        store.read("SELECT arm_id, kind FROM arms WHERE study = $s", {"s": study}).iter_rows()
    )
    test, reference = _arms_compared(protocol, kinds)
    out: dict[str, pl.DataFrame] = {}

    endpoints = _endpoints(protocol)
    rubric = {
        key: _rubric_endpoint(criteria_rows, key, endpoints, test, reference, boot, seed)
        for key in sorted(rubric_keys & set(every_item))
    }
    if rubric:
        out["rubric"] = _stacked(
            [f.filter(pl.col(col.STATISTIC) != "mean_difference") for f in rubric.values()]
        )
    rows = [
        rubric[e["item"]]
        .filter(pl.col(col.STATISTIC) == "mean_difference")
        .select(col.ITEM, pl.lit(e["role"]).alias(col.ROLE), pl.all().exclude(col.ITEM))
        if e["item"] in rubric
        else _endpoint_result(ratings, e, meta.get(e["item"]), test, reference, boot, seed)
        for e in endpoints
        if (every_item.get(e["item"]) or {}).get("type") != "pairwise_choice"
        and e.get("statistic") != "win_rates"
    ]
    frames = [f for f in rows if f is not None]
    if frames:
        ni = pl.concat(frames, how="diagonal_relaxed")
        primary = (
            endpoints[0]["item"] if endpoints and endpoints[0].get("role") == "primary" else None
        )
        out["noninferiority"] = adjust_secondary(ni, primary=primary) if primary else ni
    out["agreement"] = _agreement(ratings, meta, kinds, boot, seed)
    if repeats is not None and repeats.height:
        out["intra_rater"] = _intra_rater(both, meta, boot, seed)
    numeric = ratings.filter(
        pl.col(col.ARM).is_not_null()
        & pl.col(col.VALUE).is_not_null()
        & pl.col(col.ITEM).is_in([k for k, m in meta.items() if m["level"] != "none"])
    )
    if numeric.height:
        out["describe"] = describe(numeric, value=col.VALUE, arm=col.ARM, by=col.ITEM)
    preference = _preference(ratings, meta, test)
    if preference is not None:
        out["preference"] = preference
    guesses = (
        ratings.filter(pl.col(col.ARM).is_not_null() & pl.col("source_guess").is_not_null())
        .unique(subset=[col.CASE, col.RATER, col.ANSWER], keep="first", maintain_order=True)
        .select(
            col.ARM,
            pl.col("source_guess").replace_strict(GUESS_CODES, default=None).alias("guess"),
        )
        if "source_guess" in ratings.columns
        else pl.DataFrame()
    )
    if guesses.height:
        source = {arm: kind for arm, kind in kinds.items() if kind in ("llm", "clinician")}
        try:
            out["blinding"] = pl.concat(
                [
                    bang_index(guesses, kind=source),
                    james_index(guesses, kind=source),
                ],
                how="diagonal_relaxed",
            )
        except AnalysisError as exc:
            out["blinding"] = pl.DataFrame({col.APPLICABLE: [False], col.NOTE: [str(exc)]})
    return out


def _rubric_endpoint(
    criteria_rows: pl.DataFrame,
    key: str,
    endpoints: list[dict[str, Any]],
    test: str | None,
    reference: str | None,
    boot: int,
    seed: int,
) -> pl.DataFrame:
    """``_rubric_frames`` of rubric item ``key``, led by ``item``; its non-inferiority row
    (statistic ``mean_difference`` of per-answer HealthBench scores) uses the margin, alpha and
    method of the endpoint that names ``key``, and says why when there is no such margin."""
    endpoint = next((e for e in endpoints if e["item"] == key), None) or {}
    margin = endpoint.get("margin")
    frame = _rubric_frames(
        criteria_rows.filter(pl.col(col.ITEM) == key),
        test=test,
        reference=reference,
        margin=None if margin is None else float(margin),
        alpha=float(endpoint.get("alpha") or 0.025),
        method=endpoint.get("method") or "t",
        boot=boot,
        seed=seed,
    )
    if endpoint and (margin is None or test is None or reference is None):
        reason = (
            "the protocol gives no non-inferiority margin for this item"
            if margin is None
            else "the protocol names no test and reference arm (arms: {test, reference})"
        )
        refused = {col.STATISTIC: ["mean_difference"], col.APPLICABLE: [False], col.NOTE: [reason]}
        frame = pl.concat([frame, pl.DataFrame(refused)], how="diagonal_relaxed")
    return frame.select(pl.lit(key).alias(col.ITEM), pl.all())


def _newest_protocol(store: Store, study: str) -> dict[str, Any]:
    frame = store.read(
        "SELECT content FROM protocols WHERE study = $s ORDER BY version DESC LIMIT 1",
        {"s": study},
    )
    return json.loads(frame.item(0, 0)) if frame.height else {}


def _arms_compared(
    protocol: dict[str, Any], kinds: dict[str, str]
) -> tuple[str | None, str | None]:
    """(test arm, reference arm): the protocol's, else the only LLM and only clinician arm."""
    arms = protocol.get("arms") if isinstance(protocol.get("arms"), dict) else {}
    test, reference = arms.get("test"), arms.get("reference")
    llm = [a for a, k in kinds.items() if k == "llm"]
    clinician = [a for a, k in kinds.items() if k == "clinician"]
    if test is None and len(llm) == 1:
        test = llm[0]
    if reference is None and len(clinician) == 1:
        reference = clinician[0]
    return test, reference


def _endpoints(protocol: dict[str, Any]) -> list[dict[str, Any]]:
    """The protocol's endpoints, the primary first, each a dict with ``item`` and ``role``."""
    primary = protocol.get("primary_endpoint")
    if primary is None and protocol.get("primary_item"):
        primary = {"item": protocol["primary_item"], "margin": protocol.get("margin")}
        for key in ("direction", "alpha", "method"):
            if key in protocol:
                primary[key] = protocol[key]
    if isinstance(primary, str):
        primary = {"item": primary}
    found = (
        [{**primary, "role": "primary"}]
        if isinstance(primary, dict) and primary.get("item")
        else []
    )
    for secondary in protocol.get("secondary_endpoints") or []:
        if isinstance(secondary, str):
            secondary = {"item": secondary}
        if isinstance(secondary, dict) and secondary.get("item"):
            found.append({**secondary, "role": "secondary"})
    return found


def _endpoint_result(
    ratings: pl.DataFrame,
    endpoint: dict[str, Any],
    item: dict[str, Any] | None,
    test: str | None,
    reference: str | None,
    boot: int,
    seed: int,
) -> pl.DataFrame | None:
    """The endpoint's non-inferiority rows (its method, then sensitivity methods if primary)."""
    from analysis.noninferiority import mean_difference, risk_difference

    key = endpoint["item"]
    binary = endpoint.get("statistic") == "risk_difference" or (item or {}).get("type") == "binary"
    methods = [endpoint.get("method") or ("newcombe" if binary else "t")]
    if endpoint["role"] == "primary":
        methods += [m for m in endpoint.get("sensitivity_methods") or [] if m not in methods]
    item_direction = {"higher_is_better": "higher", "lower_is_better": "lower"}.get(
        (item or {}).get("direction"), "higher"
    )
    direction = endpoint.get("direction") or item_direction
    alpha = float(endpoint.get("alpha") or 0.025)

    def refused(reason: str) -> pl.DataFrame:
        return pl.DataFrame(
            {
                col.ITEM: [key],
                col.ROLE: [endpoint["role"]],
                col.STATISTIC: ["risk_difference" if binary else "mean_difference"],
                col.APPLICABLE: [False],
                col.NOTE: [reason],
                col.ALPHA: [alpha],
                col.P_VALUE: [None],
            },
            schema_overrides={col.P_VALUE: pl.Float64},
        )

    if item is None:
        return refused(f"the protocol names item '{key}', which no attached instrument has")
    if _one_sample_problem(endpoint, item):
        return refused(str(_one_sample_problem(endpoint, item)))
    if endpoint.get("margin") is None:
        return refused("the protocol gives no non-inferiority margin for this item")
    if test is None or reference is None:
        return refused("the protocol names no test and reference arm (arms: {test, reference})")
    one_sample = endpoint.get("statistic") == ONE_SAMPLE
    # a score that is already test - reference belongs to no arm
    data = ratings.filter(
        (pl.col(col.ITEM) == key)
        & (pl.lit(one_sample) | pl.col(col.ARM).is_in([test, reference]))
        & pl.col(col.VALUE).is_not_null()
    ).select(col.CASE, col.RATER, col.ARM, col.VALUE)
    frames = []
    for method in methods:
        options = {
            "test": test,
            "reference": reference,
            "margin": float(endpoint["margin"]),
            "direction": direction,
            "method": method,
            "alpha": alpha,
        }
        try:
            if one_sample:
                result = mean_difference_one_sample(
                    data.drop(col.ARM), boot=boot, seed=seed, **options
                )
            elif binary:
                result = risk_difference(data, **options)
            else:
                result = mean_difference(data, boot=boot, seed=seed, **options)
        except AnalysisError as exc:
            result = refused(f"{method}: {exc}").drop(col.ITEM, col.ROLE)
        frames.append(
            result.select(
                pl.lit(key).alias(col.ITEM), pl.lit(endpoint["role"]).alias(col.ROLE), pl.all()
            )
        )
    return pl.concat(frames, how="diagonal_relaxed")


def _agreement(
    ratings: pl.DataFrame, meta: dict[str, dict], kinds: dict[str, str], boot: int, seed: int
) -> pl.DataFrame:
    frames = []
    for key, item in meta.items():
        if item["level"] not in _AGREEMENT_LEVELS:
            continue
        rows = ratings.filter(pl.col(col.ITEM) == key)
        if item["type"] == "pairwise_choice":
            rows = rows.select(
                pl.col(col.CASE).alias("unit"),
                col.RATER,
                pl.when(pl.col("value_text") == "tie")
                .then(pl.lit("tie"))
                .otherwise(pl.col("chosen_arm"))
                .alias("v"),
            ).drop_nulls("v")
            scale = sorted(kinds) + ["tie"]
        else:
            # an item rated once per case has no answer: the case is its unit
            rows = rows.filter(pl.col(col.VALUE).is_not_null()).select(
                pl.coalesce(col.ANSWER, col.CASE).alias("unit"),
                col.RATER,
                pl.col(col.VALUE).alias("v"),
            )
            scale = _scale(item["options"])
        if rows.height == 0:
            continue
        table = _item_agreement(
            key, rows, value="v", level=item["level"], scale=scale, boot=boot, ci=0.95, seed=seed
        )
        if col.STATISTIC in table.columns:
            table = table.filter(pl.col(col.STATISTIC) != "cohen_kappa")
        frames.append(table)
    return _stacked(frames)


def _intra_rater(
    ratings: pl.DataFrame, meta: dict[str, dict], boot: int, seed: int
) -> pl.DataFrame:
    """Test-retest agreement per answer-level item with numeric values, led by ``item``."""
    from analysis.agreement import intra_rater_agreement

    frames = []
    for key, m in meta.items():
        if m["scope"] != "answer" or m["level"] not in _AGREEMENT_LEVELS:
            continue
        rows = ratings.filter((pl.col(col.ITEM) == key) & pl.col(col.VALUE).is_not_null())
        if rows.filter(pl.col(col.PHASE) == "repeat").is_empty():
            continue
        try:
            table = intra_rater_agreement(
                rows, level=m["level"], scale=_scale(m["options"]), boot=boot, seed=seed
            )
        except AnalysisError as exc:
            table = pl.DataFrame({col.APPLICABLE: [False], col.NOTE: [str(exc)]})
        frames.append(table.select(pl.lit(key).alias(col.ITEM), pl.all()))
    return _stacked(frames)


def _preference(
    ratings: pl.DataFrame, meta: dict[str, dict], test: str | None
) -> pl.DataFrame | None:
    """Win rates of ``test`` and position bias for every pairwise item, or None without one."""
    from analysis.preference import position_bias, win_rates

    pairwise = [k for k, m in meta.items() if m["type"] == "pairwise_choice"]
    if not pairwise:
        return None
    shown = (
        ratings.filter(pl.col(col.ARM).is_not_null() & pl.col(col.POSITION).is_in([1, 2]))
        .unique(subset=[col.CASE, col.RATER, col.POSITION], keep="first")
        .select(col.CASE, col.RATER, col.POSITION, col.ARM)
        .pivot(on=col.POSITION, index=[col.CASE, col.RATER], values=col.ARM)
        .rename({"1": "a", "2": "b"}, strict=False)
    )
    frames = []
    for key in pairwise:
        chosen = ratings.filter(pl.col(col.ITEM) == key).select(
            col.CASE,
            col.RATER,
            pl.when(pl.col("value_text") == "tie")
            .then(pl.lit("tie"))
            .otherwise(pl.col("chosen_arm"))
            .alias("winner"),
        )
        data = (
            chosen.join(shown, on=[col.CASE, col.RATER], how="inner").drop_nulls(
                ["winner", "a", "b"]
            )
            if {"a", "b"} <= set(shown.columns)
            else pl.DataFrame()
        )
        if data.height == 0:
            continue
        try:
            focus = test if test in set(data["a"].to_list()) | set(data["b"].to_list()) else None
            table = pl.concat(
                [win_rates(data, focus=focus), position_bias(data, first="a")],
                how="diagonal_relaxed",
            )
        except AnalysisError as exc:
            table = pl.DataFrame({col.APPLICABLE: [False], col.NOTE: [str(exc)]})
        frames.append(table.select(pl.lit(key).alias(col.ITEM), pl.all()))
    return pl.concat(frames, how="diagonal_relaxed") if frames else None


@guarded
def rubric_results(
    store: Store,
    caller: Caller,
    study: str,
    *,
    test: str,
    reference: str,
    margin: float,
    alpha: float = 0.025,
    method: str = "t",
    boot: int = 1000,
    seed: int | None = None,
) -> pl.DataFrame:
    """A rubric study's results: HealthBench scores, agreement, and non-inferiority by arm.

    Reads the ratings with their arms through ``exports.export_ratings_long`` (an audited
    sensitive read, refused for a person before unblinding), keeps the rubric item's rows (one
    per answer x criterion x rater) and returns, stacked: ``analysis.rubric.rubric_score`` per
    arm, overall and per tag (criterion and case tags); ``analysis.rubric.healthbench_agreement``
    over the raters (no ``grader``: pass a model grader's rows to the CLI with ``--grader``); and
    ``analysis.noninferiority.mean_difference`` of arm ``test`` (e.g. the LLM) against
    ``reference`` (the clinicians) on each rater's HealthBench score of each answer, not clipped
    (clipping applies to a mean over cases, not to a paired difference), direction higher is
    better: H0 test - reference <= -margin, H1 test - reference > -margin, ``method`` "t",
    "bootstrap" or "mixed", one-sided ``alpha``. ``seed`` seeds every bootstrap (drawn and
    reported when None).
    """
    from study.errors import StudyError
    from study.services import exports

    frame = exports.export_ratings_long(store, caller, study)
    if CRITERION not in frame.columns:
        raise StudyError(f"Study '{study}' has no rubric item (criteria from the case).")
    if seed is None:
        from analysis._random import draw_seed

        seed = draw_seed()
    return _rubric_frames(
        frame.filter(pl.col(CRITERION).is_not_null()),
        test=test,
        reference=reference,
        margin=margin,
        alpha=alpha,
        method=method,
        boot=boot,
        seed=seed,
    )


def _rubric_frames(
    rows: pl.DataFrame,
    *,
    test: str | None,
    reference: str | None,
    margin: float | None,
    alpha: float,
    method: str,
    boot: int,
    seed: int,
) -> pl.DataFrame:
    """``rubric_results``' stacked frames from the per-criterion rows of one rubric item (the
    long export's rows with ``CRITERION`` set): scores per arm, agreement, and the
    non-inferiority of ``test`` against ``reference`` (left out when either or ``margin`` is
    None). A step the library refuses is one not-applicable row with the reason."""
    from analysis.noninferiority import mean_difference
    from analysis.rubric import case_scores, healthbench_agreement, rubric_score

    where = {"unit": CRITERION_UNIT, "rater": col.RATER, "met": col.VALUE}
    scoring = {**where, "case": col.CASE, "points": POINTS, "arm": col.ARM}

    def scores() -> pl.DataFrame:
        return rubric_score(rows, **scoring, tag=CRITERION_TAGS, boot=boot, seed=seed)

    def agreement() -> pl.DataFrame:
        return healthbench_agreement(rows, **where, boot=boot, seed=seed)

    def ni() -> pl.DataFrame:
        per_answer = case_scores(rows, **scoring).filter(pl.col(col.VARIANT) == "overall")
        return mean_difference(
            per_answer,
            arm=col.ARM,
            value="score",
            case=col.CASE,
            rater=col.RATER,
            test=test,
            reference=reference,
            margin=margin,
            direction="higher",
            method=method,
            alpha=alpha,
            boot=boot,
            seed=seed,
        )

    steps = [("rubric_score", scores), ("healthbench_agreement", agreement)]
    if test is not None and reference is not None and margin is not None:
        steps.append(("mean_difference", ni))
    frames = []
    for statistic, run in steps:
        try:
            frames.append(run())
        except AnalysisError as exc:  # e.g. one rater so far: say so, and report the rest
            frames.append(
                pl.DataFrame(
                    {col.STATISTIC: [statistic], col.APPLICABLE: [False], col.NOTE: [str(exc)]}
                )
            )
    return pl.concat(frames, how="diagonal_relaxed")


# --- the Analysis screen: results of the locked plan, by arm, after unblinding -----------------


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


# --- planning: the power of a design -----------------------------------------------------------

POWER_TARGETS = (0.8, 0.9)
"""The powers a design is planned for; ``design_power`` says how many cases reach each."""


@guarded
def design_power(
    store: Store,
    caller: Caller,
    study: str,
    *,
    margin: float,
    sd: float,
    icc: float,
    raters_per_case: int,
    alpha: float = 0.025,
    direction: str = "higher",
    expected_difference: float = 0.0,
    cases: int | None = None,
) -> dict[str, Any]:
    """The power of the study's design for its primary non-inferiority comparison, and the
    cases that reach each of ``POWER_TARGETS`` (``analysis.power``: paired by case, design
    effect 1 + (m - 1) ICC, normal approximation; Chow, Shao & Wang 2008, sec. 3.1).

    H0: delta <= -margin (``direction="higher"``; delta >= margin for ``"lower"``), one-sided
    ``alpha``. ``sd``: SD of one rater's paired difference (test - reference) on a case, in
    rating units; ``icc``: intraclass correlation of those differences among the raters of a
    case; ``expected_difference``: the true difference assumed. ``cases``: the live cases of the
    design (default: every case of the study).

    Returns a dict: cases (int), power (of ``cases`` cases, in [0, 1]; None for a study without
    cases), targets: [{power, cases, raters_per_case, achieved_power}] for 0.8 and 0.9, and the
    inputs (margin, sd, icc, raters_per_case, alpha, direction, expected_difference) and method
    repeated. A design that can never show non-inferiority (an expected difference beyond the
    margin), or an input out of range, is a ``ValidationError`` naming it.
    """
    from analysis.power import noninferiority_power, noninferiority_sample_size

    if cases is None:
        cur = store.cursor()
        try:
            require_study(cur, study)
            cases = cur.execute("SELECT count(*) FROM cases WHERE study = ?", [study]).fetchall()[
                0
            ][0]
        finally:
            cur.close()
    design = {
        "margin": float(margin),
        "expected_difference": float(expected_difference),
        "sd": float(sd),
        "icc": float(icc),
        "raters_per_case": int(raters_per_case),
        "alpha": float(alpha),
        "direction": direction,
    }
    try:
        power = noninferiority_power(cases=int(cases), **design) if cases else None
        targets = [noninferiority_sample_size(power=target, **design) for target in POWER_TARGETS]
    except AnalysisError as exc:
        raise ValidationError([Problem("plan", None, None, str(exc))]) from None
    return {
        "cases": int(cases),
        "power": power,
        "targets": [
            {
                "power": target,
                "cases": size.cases,
                "raters_per_case": size.raters_per_case,
                "achieved_power": size.achieved_power,
            }
            for target, size in zip(POWER_TARGETS, targets, strict=True)
        ],
        **design,
        "method": targets[0].method,
    }


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

PER_CASE = "(rated per case)"
"""The ``arm`` shown in distributions and summaries for an item rated once per case (scope
``case``, e.g. "which answer is more complete, -2..+2"): its ratings belong to no answer, so to
no arm. Agreement on such an item takes the case as the unit."""


def _case_item_note(item: str) -> str:
    """Why an endpoint on an item rated once per case is not tested against a margin here."""
    return (
        f"item '{item}' is rated once per case (scope case), so it has no value per arm to "
        "compare test with reference; if its values are already test - reference (a "
        f'comparative score), the protocol\'s endpoint says so with "statistic": "{ONE_SAMPLE}", '
        "or test them with `python -m analysis noninferiority --one-sample --case case --rater "
        "rater` on the export (its rows of this item)"
    )


def _one_sample_problem(endpoint: Mapping[str, Any], item: Mapping[str, Any]) -> str | None:
    """Why ``endpoint`` on ``item`` cannot be tested as planned, for the scope of the item and
    whether the plan declares its values test minus reference (``ONE_SAMPLE``); None if it can."""
    one_sample = endpoint.get("statistic") == ONE_SAMPLE
    if item.get("scope") == "case" and not one_sample:
        return _case_item_note(str(endpoint["item"]))
    if one_sample and item.get("scope") != "case":
        return (
            f"the protocol tests item '{endpoint['item']}' as {ONE_SAMPLE}, a score that is "
            "already test - reference, but the item is rated per answer: its values are each "
            "arm's own, so compare the arms (statistic mean_difference)"
        )
    return None


_ARM_RATINGS_SQL = f"""
SELECT s.case_id AS {col.CASE}, an.arm_id AS {col.ARM}, p.answer_id AS {col.ANSWER},
    s.rater AS {col.RATER}, r.item_key AS {col.ITEM}, r.value_num AS {col.VALUE},
    p.position AS {col.POSITION}
FROM current_ratings c
JOIN ratings r ON r.id = c.rating
JOIN assignments s ON s.id = c.assignment
-- an item rated once per case has no presentation, so no answer and no arm (null): PER_CASE
LEFT JOIN presentations p ON p.id = r.presentation
LEFT JOIN answers an ON an.study = p.study AND an.answer_id = p.answer_id
WHERE s.study = $s AND r.status = 'submitted' AND r.value_num IS NOT NULL AND s.phase = 'live'
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
    AND i.type = 'pairwise_choice' AND r.value_text IS NOT NULL AND s.phase = 'live'
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
    ).select(
        col.ITEM,
        "level",
        "options",
        pl.coalesce(col.ANSWER, col.CASE).alias("unit"),
        col.RATER,
        col.VALUE,
    )
    agreement = _pooled_agreement(blinded, boot=boot, ci=0.95, seed=plan["seed"])
    rubric = _criteria_items(store, study)
    if rubric:
        # a rubric item's value is each rater's HealthBench score of each answer (its criteria's
        # labels are stored as text, so the rows above have none); agreement is on the labels
        ratings = pl.concat(
            [ratings, *(_answer_scores(store, study, item) for item in rubric)],
            how="diagonal_relaxed",
        ).sort(col.CASE, col.RATER, col.ITEM, col.POSITION)
        agreement = _stacked(
            [
                agreement,
                *(
                    _criteria_agreement(store, study, item, boot=boot, ci=0.95, seed=plan["seed"])
                    for item in rubric
                ),
            ]
        )
        if plan["item"] in rubric:
            plan = {**plan, "statistic": "mean_difference"}
    return {
        "plan": plan,
        "endpoints": _result_endpoints(ratings, info, plan, protocol["content"], flagged, boot),
        "agreement": agreement,
        "distribution": _distribution(ratings, info),
        "summary": _summary(ratings),
        "pairwise": _pairwise(store.read(_PAIRWISE_SQL, {"s": study}), plan, boot),
        "subgroups": _subgroups(ratings, store.read(_GROUPS_SQL, {"s": study}), info, plan),
    }


_CRITERIA_LABELS_SQL = f"""
SELECT s.case_id AS {col.CASE}, an.arm_id AS {col.ARM}, p.answer_id AS {col.ANSWER},
    s.rater AS {col.RATER}, p.position AS {col.POSITION}, r.value_text
FROM current_ratings c
JOIN ratings r ON r.id = c.rating
JOIN assignments s ON s.id = c.assignment
JOIN presentations p ON p.id = r.presentation
JOIN answers an ON an.study = p.study AND an.answer_id = p.answer_id
WHERE s.study = $s AND r.item_key = $item AND r.status = 'submitted'
    AND r.value_text IS NOT NULL AND s.phase = 'live'
"""


def _answer_scores(store: Store, study: str, item: str) -> pl.DataFrame:
    """Rubric item ``item`` as ``_ARM_RATINGS_SQL``'s rows: one per answer and rater, ``value``
    the rater's HealthBench score of the answer (``analysis.rubric.case_scores``, overall: points
    of the met criteria over the case's positive points; no row where a case has none)."""
    from analysis.rubric import OVERALL, case_scores

    labels = store.read(_CRITERIA_LABELS_SQL, {"s": study, "item": item})
    cases = store.read(
        "SELECT case_id, criteria FROM cases WHERE study = $s AND criteria IS NOT NULL",
        {"s": study},
    )
    points = {
        case: {c["key"]: float(c["points"]) for c in stored_criteria(text)}
        for case, text in cases.iter_rows()
    }
    rows = [
        {"unit": f"{answer}:{key}", col.RATER: rater, "met": bool(met), col.CASE: case,
         "points": points[case][key], col.ARM: arm}
        for case, arm, answer, rater, _, text in labels.iter_rows()
        for key, met in json.loads(text).items()
    ]  # fmt: skip
    schema = {"unit": pl.String, col.RATER: pl.String, "met": pl.Boolean, col.CASE: pl.String,
              "points": pl.Float64, col.ARM: pl.String}  # fmt: skip
    if not rows:
        return pl.DataFrame(schema={col.ITEM: pl.String})
    scores = case_scores(
        pl.DataFrame(rows, schema=schema), unit="unit", rater=col.RATER, met="met",
        case=col.CASE, points="points", arm=col.ARM,
    ).filter(pl.col(col.VARIANT) == OVERALL)  # fmt: skip
    answers = labels.select(col.CASE, col.ARM, col.ANSWER, col.POSITION, col.RATER)
    return scores.join(answers, on=[col.CASE, col.ARM, col.RATER]).select(
        col.CASE,
        col.ARM,
        col.ANSWER,
        col.RATER,
        pl.lit(item).alias(col.ITEM),
        pl.col("score").alias(col.VALUE),
        col.POSITION,
    )


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
        "seed": int(seed) if seed is not None else seed_from_hash(digest),
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
    if endpoint.get("statistic") == ONE_SAMPLE:
        method = method or "t"
        options = {"boot": boot, "seed": plan["seed"]} if method == "bootstrap" else {}
        return mean_difference_one_sample(frame, method=method, **options, **common)
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


def _result_endpoints(
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

    def problem(endpoint: Mapping[str, Any]) -> str | None:
        key = endpoint.get("item")
        return _one_sample_problem(endpoint, info[key]) if key in info else None

    def not_tested(key: str, role: str, analysis: str, note: str) -> pl.DataFrame:
        return pl.DataFrame(
            {
                col.STATISTIC: ["non-inferiority"],
                col.APPLICABLE: [False],
                col.NOTE: [note],
                "item": [key],
                col.ROLE: [role],
                "analysis": [analysis],
            }
        )

    frame = ratings.filter(pl.col(col.ITEM) == item)
    primary = {k: plan[k] for k in ("item", "margin", "direction", "alpha", "statistic")}
    if problem(primary):
        rows = [not_tested(item, "primary", "primary (locked plan)", str(problem(primary)))]
    else:
        rows = _primary_and_sensitivity(frame, plan, primary, flagged, boot)
    secondary = []
    for endpoint in content.get("secondary_endpoints") or ():
        if not isinstance(endpoint, Mapping) or endpoint.get("margin") is None:
            continue  # a descriptive secondary (e.g. win rates) is in its own part
        other = endpoint.get("item")
        if other not in info:
            continue
        if problem(endpoint):
            note = str(problem(endpoint))
            secondary.append(not_tested(other, "secondary", "secondary (locked plan)", note))
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
        # without one tested row the frame has no p_value column at all
        testable = (
            pl.col(col.APPLICABLE) & pl.col(col.P_VALUE).is_not_null()
            if col.P_VALUE in tested.columns
            else pl.lit(False)
        )
        ok = tested.filter(testable)
        if ok.height:
            ok = adjust_secondary(ok)
        tested = pl.concat([ok, tested.filter(~testable)], how="diagonal_relaxed")
        result = pl.concat([result, tested], how="diagonal_relaxed")
    return result


def _primary_and_sensitivity(
    frame: pl.DataFrame,
    plan: Mapping[str, Any],
    primary: Mapping[str, Any],
    flagged: pl.Series,
    boot: int,
) -> list[pl.DataFrame]:
    """The primary row, then the sensitivity rows ``study_results`` describes."""
    item = plan["item"]
    rows = [
        _safely(
            lambda: _compare(frame, plan, primary, method=plan["method"], boot=boot),
            "non-inferiority",
            item=item,
            role="primary",
            analysis="primary (locked plan)",
        )
    ]
    binary = primary["statistic"] != ONE_SAMPLE and (
        primary["statistic"] == "risk_difference" or _is_binary(frame.get_column(col.VALUE))
    )
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
    return rows


def _distribution(ratings: pl.DataFrame, info: Mapping[str, Mapping[str, Any]]) -> pl.DataFrame:
    """Counts of each value per item and arm, for items with declared options."""
    choice = [i for i, row in info.items() if row["options"] and row["type"] != "pairwise_choice"]
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
    """The primary comparison within each subgroup, by ``SUBGROUP_METHOD``; a subgroup variable
    with a single group is left out."""
    item = plan["item"]
    if not item or item not in info or plan["margin"] is None or not plan["test"]:
        return pl.DataFrame(schema={"subgroup": pl.String, "group": pl.String})
    frame = ratings.filter(pl.col(col.ITEM) == item)
    primary = {k: plan[k] for k in ("item", "margin", "direction", "alpha", "statistic")}
    if _one_sample_problem(primary, info[item]):  # not tested: the primary row says why
        return pl.DataFrame(schema={"subgroup": pl.String, "group": pl.String})
    binary = primary["statistic"] != ONE_SAMPLE and (
        primary["statistic"] == "risk_difference" or _is_binary(frame.get_column(col.VALUE))
    )
    method = None if binary else SUBGROUP_METHOD
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


def _pooled_agreement(
    ratings: pl.DataFrame, *, boot: int, ci: float, seed: int | None
) -> pl.DataFrame:
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
