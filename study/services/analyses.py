"""The one door from ``study`` into the ``analysis`` library: the long format it reads, and the
analyses a service runs on a study's ratings.

``analysis`` knows nothing of studies or databases; this module hands it frames in the long
format whose column names ``analysis.columns`` declares, and turns its ``AnalysisError`` into a
row that says why an item could not be analysed.
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from analysis import columns as col
from analysis.agreement import agreement_table
from analysis.errors import AnalysisError
from study.access import Caller, guarded
from study.rubric import stored_criteria
from study.store import Store

LONG_FORMAT = col
"""The long format's column names (``STUDY``, ``CASE``, ``ARM``, ``ANSWER``, ``RATER``, ``ITEM``,
``VALUE``, ``POSITION``, ``LABEL``, ``SECONDS``, ``REVISION``), as the analysis library reads
them: exports write these names."""

_AGREEMENT_LEVELS = ("nominal", "ordinal", "interval", "ratio")

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
    ratings = store.read(_BLINDED_SQL, {"s": study})
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
    from analysis.noninferiority import mean_difference
    from analysis.rubric import case_scores, healthbench_agreement, rubric_score
    from study.errors import StudyError
    from study.services import exports

    frame = exports.export_ratings_long(store, caller, study)
    if CRITERION not in frame.columns:
        raise StudyError(f"Study '{study}' has no rubric item (criteria from the case).")
    rows = frame.filter(pl.col(CRITERION).is_not_null())
    if seed is None:
        from analysis._random import draw_seed

        seed = draw_seed()
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

    frames = []
    for statistic, run in (
        ("rubric_score", scores),
        ("healthbench_agreement", agreement),
        ("mean_difference", ni),
    ):
        try:
            frames.append(run())
        except AnalysisError as exc:  # e.g. one rater so far: say so, and report the rest
            frames.append(
                pl.DataFrame(
                    {col.STATISTIC: [statistic], col.APPLICABLE: [False], col.NOTE: [str(exc)]}
                )
            )
    return pl.concat(frames, how="diagonal_relaxed")
