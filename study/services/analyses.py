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
from study.store import Store

LONG_FORMAT = col
"""The long format's column names (``STUDY``, ``CASE``, ``ARM``, ``ANSWER``, ``RATER``, ``ITEM``,
``VALUE``, ``POSITION``, ``LABEL``, ``SECONDS``, ``REVISION``, ``PHASE``), as the analysis
library reads them: exports write these names."""

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
WHERE s.study = $s AND r.status = 'submitted' AND r.value_num IS NOT NULL AND s.phase = 'live'
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

    Live ratings only: calibration ratings are no study data, and a repeat is a rater's second
    rating of a unit (intra-rater, not between raters). For every answer-level item with numeric
    values at a nominal, ordinal, interval or ratio level: ``analysis.agreement.agreement_table`` over units = the answers rated (each answer
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
