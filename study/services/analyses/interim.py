"""Agreement among the raters while the study is blind: pooled over arms, per item."""

from __future__ import annotations

import polars as pl

from study.access import Caller, guarded
from study.services.analyses._criteria import criteria_agreement
from study.services.analyses._shared import agreement_by_item, stacked, study_items
from study.store import Store

BLINDED_SQL = """
SELECT r.item_key AS item, coalesce(p.answer_id, s.case_id) AS unit, s.rater,
    r.value_num AS value
FROM current_ratings c
JOIN ratings r ON r.id = c.rating
JOIN assignments s ON s.id = c.assignment
-- an item rated once per case has no presentation: its unit is the case
LEFT JOIN presentations p ON p.id = r.presentation
JOIN study_instruments si ON si.study = s.study AND si.instrument_key = r.instrument_key
    AND si.instrument_version = r.instrument_version
WHERE s.study = $s AND r.status = 'submitted' AND r.value_num IS NOT NULL AND s.phase = 'live'
ORDER BY item, unit, s.rater
"""
"""Live, current, submitted numeric ratings with no arm: unit (the answer; the case for an item
rated once per case), rater, value. No column reveals a source."""


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
    rating of a unit (intra-rater, not between raters). For every item with numeric values at a
    nominal, ordinal, interval or ratio level: ``analysis.agreement.agreement_table`` over
    units = the answers rated (each answer is one unit, whichever arm wrote it; no arm appears in
    the result; the case for an item rated once per case), at the item's declared level and over
    its declared scale, by the same per-item loop as the unblinded results
    (``_shared.agreement_by_item``). Columns: ``item`` then the agreement table's columns. An
    item that cannot be analysed yet (e.g. fewer than two raters on any answer) gives one row
    with ``applicable`` false and the reason in ``note``. ``seed``: of the bootstraps (drawn and
    reported in the ``seed`` column when None). A rubric item (criteria from the case, stored as
    met / not met per criterion) adds HealthBench's agreement pooled over the raters
    (``rubric.criteria_agreement``), also without arms.
    """
    items = study_items(store, study)
    rows = store.read(BLINDED_SQL, {"s": study})
    levels = {k: (i["level"], i["scale"]) for k, i in items.items() if not i["rubric"]}
    frames = [agreement_by_item(rows, levels, boot=boot, ci=ci, seed=seed)]
    frames += [
        criteria_agreement(store, study, key, boot=boot, ci=ci, seed=seed)
        for key, item in items.items()
        if item["rubric"]
    ]
    return stacked([f for f in frames if f.height])
