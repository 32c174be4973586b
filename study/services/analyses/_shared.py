"""Pieces every analysis job of the package shares: the study's items, the one per-item
agreement loop, and the row that says why a statistic could not be computed."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import polars as pl

from analysis import columns as col
from analysis._common import not_applicable, result_frame
from analysis.agreement import agreement_table
from analysis.errors import AnalysisError
from study.services.analyses._long_format import criteria_items
from study.store import Store

AGREEMENT_LEVELS = ("nominal", "ordinal", "interval", "ratio")
"""Levels of measurement at which agreement is computed (free text and "none" have none)."""

_ITEMS_SQL = """
SELECT i.item_key AS item, i.type, i.level, i.options, i.scope, i.direction
FROM study_instruments si JOIN items i ON i.instrument_key = si.instrument_key
    AND i.instrument_version = si.instrument_version
WHERE si.study = $s ORDER BY si.position, i.position
"""


def study_items(store: Store, study: str) -> dict[str, dict[str, Any]]:
    """The study's items by key, in instrument order: {type, level, options (JSON text),
    scope, direction, rubric (rated per criterion of the case), scale (``scale``)}."""
    rubric = set(criteria_items(store, study))
    return {
        row["item"]: {**row, "rubric": row["item"] in rubric, "scale": scale(row["options"])}
        for row in store.read(_ITEMS_SQL, {"s": study}).iter_rows(named=True)
    }


def declared_directions(items: Mapping[str, Mapping[str, Any]]) -> dict[str, str | None]:
    """Each item's declared direction, as ``study.protocol.Plan.resolve`` reads it. A rubric
    item's value is its HealthBench score (points of the met criteria over the case's positive
    points), higher is better by that score's definition, whatever the item declares."""
    return {
        key: "higher_is_better" if item["rubric"] else item["direction"]
        for key, item in items.items()
    }


def scale(options: str | None) -> list[Any] | None:
    """The item's declared option values, lowest to highest, if they are numbers."""
    if not options:
        return None
    values = [option.get("value") for option in json.loads(options)]
    if not values or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    ):
        return None
    return sorted(values)


def refused(statistic: str, reason: str, **columns: Any) -> pl.DataFrame:
    """One not-applicable row (``analysis._common.not_applicable``) with ``columns`` added."""
    return result_frame([not_applicable(statistic, reason=reason)]).with_columns(
        pl.lit(v).alias(k) for k, v in columns.items()
    )


def safely(run: Callable[[], pl.DataFrame], statistic: str, **columns: Any) -> pl.DataFrame:
    """``run()`` with ``columns`` added, or one not-applicable row with the library's reason."""
    try:
        result = run()
    except AnalysisError as exc:
        return refused(statistic, str(exc), **columns)
    return result.with_columns(pl.lit(v).alias(k) for k, v in columns.items())


def stacked(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """Per-item tables as one frame (an empty one, with ``item``, when there are none)."""
    if not frames:
        return pl.DataFrame(schema={col.ITEM: pl.String})
    return pl.concat(frames, how="diagonal_relaxed")


def agreement_by_item(
    rows: pl.DataFrame,
    levels: Mapping[str, tuple[str, list[Any] | None]],
    *,
    boot: int,
    ci: float,
    seed: int | None,
) -> pl.DataFrame:
    """``analysis.agreement.agreement_table`` for each item of ``rows`` (columns item, unit,
    rater, value), led by ``item``, in the order of ``levels`` (item -> (level of measurement,
    declared scale or None)). An item at a level without agreement is left out; one the library
    refuses (e.g. a single rater so far) gives one not-applicable row saying why."""
    frames = []
    for item, (level, values) in levels.items():
        if level not in AGREEMENT_LEVELS:
            continue
        part = rows.filter(pl.col(col.ITEM) == item)
        if part.height == 0:
            continue
        frames.append(
            safely(
                lambda p=part, lv=level, sc=values: agreement_table(
                    p,
                    unit=col.UNIT,
                    rater=col.RATER,
                    value=col.VALUE,
                    level=lv,
                    scale=sc,
                    boot=boot,
                    ci=ci,
                    seed=seed,
                ),
                "agreement",
            ).select(pl.lit(item).alias(col.ITEM), pl.all())
        )
    return stacked(frames)
