"""Exports: a study's ratings in the long format the analysis library and statisticians read.

An export with arms is a sensitive read: audited, and for a person possible only once the study
is unblinded. The command line's local operator, who holds the database file itself, may export
at any time (``python -m study export`` while the app is stopped).
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from study import audit
from study.access import Caller, guarded
from study.errors import StateError
from study.services._common import require_study
from study.services.analyses import LONG_FORMAT as col
from study.services.analyses import _per_criterion
from study.store import Store

_EXPORT_SQL = f"""
SELECT
    s.study                       AS {col.STUDY},
    s.case_id                     AS {col.CASE},
    an.arm_id                     AS {col.ARM},
    p.answer_id                   AS {col.ANSWER},
    s.rater                       AS {col.RATER},
    r.item_key                    AS {col.ITEM},
    r.value_num                   AS {col.VALUE},
    r.value_text                  AS value_text,
    p.position                    AS {col.POSITION},
    p.label                       AS {col.LABEL},
    r.seconds_on_task             AS {col.SECONDS},
    r.revision                    AS {col.REVISION},
    r.instrument_key              AS instrument,
    r.instrument_version          AS instrument_version,
    r.created_at                  AS created_at,
    r.submitted_at                AS submitted_at,
    chosen.answer_id              AS chosen_answer,
    chosen_answer.arm_id          AS chosen_arm
FROM current_ratings c
JOIN ratings r ON r.id = c.rating
JOIN assignments s ON s.id = c.assignment
LEFT JOIN presentations p ON p.id = r.presentation
LEFT JOIN answers an ON an.study = p.study AND an.answer_id = p.answer_id
LEFT JOIN presentations chosen
    ON r.presentation IS NULL AND chosen.assignment = s.id
    AND (chosen.label = r.value_text OR chosen.label = 'Response ' || r.value_text)
LEFT JOIN answers chosen_answer
    ON chosen_answer.study = chosen.study AND chosen_answer.answer_id = chosen.answer_id
WHERE s.study = $s AND r.status = 'submitted'
ORDER BY s.case_id, s.rater, r.item_key, p.position
"""


@guarded
def export_ratings_long(
    store: Store,
    caller: Caller,
    study: str,
    *,
    write: Callable[[pl.DataFrame, str], None] | None = None,
) -> pl.DataFrame:
    """One row per current submitted rating, in the long format analysis reads (audited read).

    Columns: study, case, arm, answer, rater, item, value (Float64, numeric values), value_text
    (text values, e.g. a chosen label), position, label, seconds, revision, instrument,
    instrument_version, created_at, submitted_at (UTC), chosen_answer and chosen_arm (for an
    assignment-level item whose value is a label shown: the answer and arm it names). For
    assignment-level items arm/answer/position/label are null. A study with a rubric item
    (criteria from the case) has one row per answer x criterion for it, value 1 (met) or 0 (not
    met), and the columns criterion, criterion_text, points, criterion_tags (the criterion's and
    its case's tags, ``;``-separated) and criterion_unit (``answer:criterion``), null on other
    rows (``analyses._per_criterion``).

    A person may export only an unblinded study (``StateError`` before): the arms are the
    blinding's secret until then.

    ``write(frame, audit_head)``: writes the export (to a temporary file, renamed by the caller
    once this returns); called after the export's audit event is appended and before it commits,
    with the chain's head hash including that event, to be recorded in the file. If it raises,
    the event is rolled back: a failed export leaves no audit event.
    """
    cur = store.cursor()
    try:
        status = require_study(cur, study)["status"]
    finally:
        cur.close()
    if status != "unblinded" and not caller.is_operator:
        raise StateError(
            f"Study '{study}' is {status}: its ratings are exported with their arms only after "
            "the audited unblinding step."
        )
    # a rubric item's labels (one JSON object per answer): one row per criterion
    frame = _per_criterion(store, study, store.read(_EXPORT_SQL, {"s": study}))
    with store.transaction() as cur:
        seq = audit.append(
            cur,
            actor=caller.actor,
            kind=audit.RATINGS_EXPORT,
            object_type="study",
            object_id=study,
            study=study,
            payload={"rows": frame.height},
        )
        if write is not None:
            head_hash = cur.execute("SELECT hash FROM audit_events WHERE seq = ?", [seq]).fetchall()
            write(frame, head_hash[0][0])
    return frame


@guarded
def audit_head(store: Store, caller: Caller, study: str) -> dict[str, object]:
    """The audit chain's head: {"seq": events so far, "hash": the newest event's hash}.

    The hash to record outside the database (a ticket, an e-mail, a report): later,
    ``python -m study audit verify --expect HASH`` shows that the chain still holds it.
    """
    seq, head_hash = audit.head(store)
    return {"seq": seq, "hash": head_hash}
