"""The long format of a study's ratings as exports and analyses read it: one row per rating,
and for an item rated per criterion of the case (a rubric item, ``criteria = "case"``) one row
per answer, criterion and rater.

Not a service: plain helpers that the export and the analyses services call after their own
permission check, so that neither imports the other.
"""

from __future__ import annotations

import json

import polars as pl

from analysis import columns as col
from study.case_json import stored_criteria
from study.services._common import rubric_items
from study.store import Store

LONG_FORMAT = col
"""The long format's column names (``STUDY``, ``CASE``, ``ARM``, ``ANSWER``, ``RATER``, ``ITEM``,
``VALUE``, ``POSITION``, ``LABEL``, ``SECONDS``, ``REVISION``, ``PHASE``), as the analysis
library reads them: exports write these names."""

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


def criteria_items(store: Store, study: str) -> list[str]:
    """Keys of the study's rubric items (``services._common.rubric_items``)."""
    cur = store.cursor()
    try:
        return rubric_items(cur, study)
    finally:
        cur.close()


def per_criterion(store: Store, study: str, frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` (long export rows) with each rubric rating replaced by one row per criterion.

    A replaced row keeps its columns, with ``value`` 1.0 (met) or 0.0 (not met) and
    ``value_text`` null, and gains ``COLUMNS``; other rows get those columns null. A study
    without a rubric item gets ``frame`` back unchanged (no new columns).
    """
    items = criteria_items(store, study)
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
