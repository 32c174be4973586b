"""Rubric items (rated per criterion of the case, HealthBench's way) as the analyses read them:
each answer's score, the raters' agreement on met / not met, HealthBench's scores by arm.

A rubric rating is stored as one JSON object per answer, {"c1": true, "c2": false}; the
criteria's points and tags come from the case (``study.case_json``).
"""

from __future__ import annotations

import json

import polars as pl

from analysis import columns as col
from analysis.errors import AnalysisError
from study.case_json import stored_criteria
from study.services.analyses._long_format import (
    CRITERION,
    CRITERION_TAGS,
    CRITERION_UNIT,
    POINTS,
)
from study.services.analyses._shared import refused
from study.store import Store


def rubric_frames(
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
            frames.append(refused(statistic, str(exc)))
    return pl.concat(frames, how="diagonal_relaxed")


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


def criteria_agreement(
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
        table = refused("healthbench_agreement", str(exc))
    return table.select(pl.lit(item).alias(col.ITEM), pl.all())


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


def criterion_rows(store: Store, study: str, item: str) -> pl.DataFrame:
    """Rubric item ``item``'s current live labels, one row per answer, criterion and rater:
    case, arm, answer, rater, position, ``CRITERION``, ``CRITERION_UNIT`` (answer:criterion),
    ``POINTS``, ``CRITERION_TAGS`` (the criterion's and its case's tags, ``;``-separated) and
    ``value`` (1.0 met, 0.0 not met), as ``rubric_frames`` and ``answer_scores`` read them."""
    labels = store.read(_CRITERIA_LABELS_SQL, {"s": study, "item": item})
    cases = store.read(
        "SELECT case_id, criteria, tags FROM cases WHERE study = $s AND criteria IS NOT NULL",
        {"s": study},
    )
    criteria = {
        case: {c["key"]: (float(c["points"]), c["tags"]) for c in stored_criteria(text)}
        for case, text, _ in cases.iter_rows()
    }
    case_tags = {case: tags or [] for case, _, tags in cases.iter_rows()}
    rows = [
        {col.CASE: case, col.ARM: arm, col.ANSWER: answer, col.RATER: rater,
         col.POSITION: position, CRITERION: key, CRITERION_UNIT: f"{answer}:{key}",
         POINTS: criteria[case][key][0],
         CRITERION_TAGS: ";".join([*criteria[case][key][1], *case_tags[case]]),
         col.VALUE: 1.0 if met else 0.0}
        for case, arm, answer, rater, position, text in labels.iter_rows()
        for key, met in json.loads(text).items()
    ]  # fmt: skip
    schema = {col.CASE: pl.String, col.ARM: pl.String, col.ANSWER: pl.String,
              col.RATER: pl.String, col.POSITION: pl.Int64, CRITERION: pl.String,
              CRITERION_UNIT: pl.String, POINTS: pl.Float64, CRITERION_TAGS: pl.String,
              col.VALUE: pl.Float64}  # fmt: skip
    return pl.DataFrame(rows, schema=schema)


def answer_scores(rows: pl.DataFrame, item: str) -> pl.DataFrame:
    """Rubric item ``item``'s ``criterion_rows`` as one rating row per answer and rater (case,
    arm, answer, rater, item, value, position): ``value`` is the rater's HealthBench score of
    the answer (``analysis.rubric.case_scores``, overall: points of the met criteria over the
    case's positive points; no row where a case has none)."""
    from analysis.rubric import OVERALL, case_scores

    if rows.height == 0:
        return pl.DataFrame(schema={col.ITEM: pl.String})
    scores = case_scores(
        rows, unit=CRITERION_UNIT, rater=col.RATER, met=col.VALUE, case=col.CASE,
        points=POINTS, arm=col.ARM,
    ).filter(pl.col(col.VARIANT) == OVERALL)  # fmt: skip
    answers = rows.select(col.CASE, col.ARM, col.ANSWER, col.POSITION, col.RATER).unique(
        maintain_order=True
    )
    return scores.join(answers, on=[col.CASE, col.ARM, col.RATER]).select(
        col.CASE,
        col.ARM,
        col.ANSWER,
        col.RATER,
        pl.lit(item).alias(col.ITEM),
        pl.col("score").alias(col.VALUE),
        col.POSITION,
    )
