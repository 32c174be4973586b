"""Rubric studies scored and checked as HealthBench does it (Arora et al. 2025, OpenAI).

A rubric study rates each answer against criteria written for its case, each criterion worth
``points`` (negative for harmful behaviour, e.g. -5 "recommends an unsafe dose"); a rater says for
every (answer, criterion) whether the answer **meets** it. Input is long, one row per
(unit, rater), where a unit is one answer x criterion:

=========  ====================================================================================
column     meaning
=========  ====================================================================================
unit       the (answer, criterion) rated; constant case, points, arm and tags within a unit
rater      who rated it (a clinician, or a model grader's pseudonym)
met        true/false (also 1/0, yes/no; case-insensitive); empty = not rated (row left out)
case       the case (conversation) the criterion belongs to; ``rubric_score`` only
points     the criterion's points, a finite number (may be negative); ``rubric_score`` only
arm        which arm wrote the answer (optional): scores are then reported per arm
tag        the criterion's tags, ``;``-separated text (``axis:accuracy; theme:emergency``);
           example-level tags go on every criterion of their case (optional)
=========  ====================================================================================

``rubric_score`` follows simple-evals' ``healthbench_eval.py`` (openai/simple-evals, commit
9e2fafd): ``calculate_score`` gives one answer the sum of the points of the criteria it meets
(negative ones included) over the sum of its positive points, or nothing when no criterion has
positive points (which happens for tags); ``_compute_clipped_stats`` averages those scores over
the examples and clips the mean, not each score, to [0, 1]. A tag's score is computed the same
way over the criteria carrying that tag, on the examples where it exists.

``healthbench_agreement`` follows simple-evals' meta-evaluation
(``healthbench_meta_eval.compute_metrics_for_rater_by_class``, checked by its own test
``healthbench_meta_eval_test.py``): a rater's label on a unit is paired with every other rater's
label on the same unit; precision for "met" is the share of pairs where the rater said met in
which the other said met too, recall for "met" the share of pairs where the other said met in
which the rater said met too; the same for "not met"; F1 of each class, and the balanced F1,
their mean. Pooled over clinicians, every clinician's pairs with the other clinicians are pooled
(each unordered pair counted from both sides, so pooled precision and recall of one class agree).

Both return tidy frames with the result columns of ``analysis.columns``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from analysis import columns as C
from analysis._common import check_ci, not_applicable, result_frame, result_row
from analysis._random import Seed, resolve_seed, seed_text
from analysis.errors import AnalysisError

N_CASES = "n_cases"
N_PAIRS = "n_pairs"
UNCLIPPED = "unclipped_mean"
"""The mean over cases before it is clipped to [0, 1] (equal to ``estimate`` when inside)."""
CLINICIANS = "clinicians"
"""The ``rater`` value of the rows pooled over every clinician (each against the others)."""
OVERALL = "overall"
AGREEMENT_VARIANTS = (
    "precision_met",
    "recall_met",
    "f1_met",
    "precision_not_met",
    "recall_not_met",
    "f1_not_met",
    "balanced_f1",
)

_TRUE = frozenset({"true", "t", "1", "1.0", "yes", "y", "met"})
_FALSE = frozenset({"false", "f", "0", "0.0", "no", "n", "not met", "not_met"})


# --- reading -----------------------------------------------------------------------------------


def met_labels(series: pl.Series) -> pl.Series:
    """``series`` as booleans: true/false, 1/0, yes/no (any case, edge spaces ignored); null stays
    null (not rated). Anything else raises ``AnalysisError`` naming the 1-based row and value.

    >>> met_labels(pl.Series("met", ["Yes", "0", None, "TRUE"])).to_list()
    [True, False, None, True]
    """
    name = series.name
    if series.dtype == pl.Boolean:
        return series
    if series.dtype.is_numeric():
        series = series.cast(pl.Float64)
        ok = series.is_null() | series.is_in([0.0, 1.0])
        if not ok.all():
            row = int(ok.arg_min()) + 1
            raise AnalysisError(
                f"column '{name}' holds {series[row - 1]} on row {row}; met is true/false, "
                "1/0 or yes/no"
            )
        return (series == 1.0).alias(name)
    text = series.cast(pl.String).str.strip_chars().str.to_lowercase()
    known = text.is_null() | text.is_in(list(_TRUE | _FALSE))
    if not known.all():
        row = int(known.arg_min()) + 1
        raise AnalysisError(
            f"column '{name}' holds '{series[row - 1]}' on row {row}; met is true/false, "
            "1/0 or yes/no"
        )
    labels = text.is_in(list(_TRUE)).alias(name)
    return labels.scatter(text.is_null().arg_true(), None) if text.null_count() else labels


def _labels(
    df: pl.DataFrame, *, unit: str, rater: str, met: str, extra: dict[str, str]
) -> pl.DataFrame:
    """The ratings as ``_unit, _rater, _met`` (+ ``extra`` renamed to its keys), rated rows only,
    with one label per (unit, rater) and the ``extra`` columns constant within a unit."""
    named = {"_unit": unit, "_rater": rater, "_met": met, **extra}
    missing = [col for col in dict.fromkeys(named.values()) if col not in df.columns]
    if missing:
        raise AnalysisError(
            f"column '{missing[0]}' not found; columns are: {', '.join(df.columns) or '(none)'}"
        )
    for col in dict.fromkeys(named.values()):
        if df.schema[col].is_nested():
            raise AnalysisError(
                f"column '{col}' holds {df.schema[col]} values; it must hold one value per row"
            )
    met_values = met_labels(df[met])
    for key in ("_unit", "_rater"):
        empty = met_values.is_not_null() & df[named[key]].is_null()
        if empty.any():
            raise AnalysisError(
                f"column '{named[key]}' is empty on rated row {int(empty.arg_max()) + 1}; every "
                "rating needs its unit and rater (in a Clinval export, keep only the rubric "
                "item's rows)"
            )
    frame = df.select(
        *(pl.col(col).alias(key) for key, col in named.items() if key != "_met"),
        met_values.alias("_met"),
    ).filter(pl.col("_met").is_not_null())
    frame = frame.with_columns(pl.col("_unit", "_rater").cast(pl.String))
    if frame.height == 0:
        raise AnalysisError(f"no ratings: column '{met}' is empty on every row")
    twice = frame.group_by("_unit", "_rater").len().filter(pl.col("len") > 1)
    if twice.height:
        u, r = twice.row(0)[:2]
        raise AnalysisError(
            f"rater '{r}' rated unit '{u}' {twice.row(0)[2]} times; give one label per unit "
            "and rater (a unit is one answer x criterion)"
        )
    for key in extra:
        varying = (
            frame.group_by("_unit").agg(pl.col(key).n_unique().alias("n")).filter(pl.col("n") > 1)
        )
        if varying.height:
            raise AnalysisError(
                f"unit '{varying.row(0)[0]}' has more than one value in column '{named[key]}'; "
                "a unit is one answer x criterion, so its case, points, arm and tags are fixed"
            )
    return frame


# --- the score ---------------------------------------------------------------------------------


def case_scores(
    df: pl.DataFrame,
    *,
    unit: str = C.UNIT,
    rater: str = C.RATER,
    met: str = "met",
    case: str = C.CASE,
    points: str = "points",
    arm: str | None = None,
    tag: str | None = None,
) -> pl.DataFrame:
    """Each rater's HealthBench score of each answer, overall and per tag (not clipped).

    Returns columns ``variant`` ("overall" or a tag), ``arm`` (null without ``arm``), ``case``,
    ``rater``, ``achieved`` (sum of the points of the met criteria the rater rated),
    ``possible`` (sum of their positive points) and ``score`` = achieved / possible. A (variant,
    case, rater) whose criteria have no positive points has no score and no row (simple-evals'
    ``calculate_score`` returns None there). Without ``arm`` every case is taken as one answer.
    """
    extra = {"_case": case, "_points": points}
    if arm is not None:
        extra["_arm"] = arm
    if tag is not None:
        extra["_tag"] = tag
    frame = _labels(df, unit=unit, rater=rater, met=met, extra=extra)
    if frame["_case"].null_count():
        raise AnalysisError(f"column '{case}' is empty on a rated row")
    frame = frame.with_columns(pl.col("_case").cast(pl.String))
    pts = frame["_points"]
    if not pts.dtype.is_numeric():
        converted = pts.cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)
        bad = pts.filter(converted.is_null())
        if bad.len():
            raise AnalysisError(f"column '{points}' holds '{bad[0]}'; points must be numbers")
        frame = frame.with_columns(converted.alias("_points"))
    frame = frame.with_columns(pl.col("_points").cast(pl.Float64))
    if not frame["_points"].is_finite().all() or frame["_points"].null_count():
        raise AnalysisError(f"column '{points}' must hold a finite number on every rated row")
    if arm is None:
        frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias("_arm"))
    else:
        frame = frame.with_columns(pl.col("_arm").cast(pl.String))
    parts = [frame.with_columns(pl.lit(OVERALL).alias("_variant"))]
    if tag is not None:
        tagged = (
            frame.with_columns(pl.col("_tag").cast(pl.String).str.split(";").alias("_variant"))
            .explode("_variant")
            .with_columns(pl.col("_variant").str.strip_chars())
            .filter(pl.col("_variant").is_not_null() & (pl.col("_variant") != ""))
            .unique(["_unit", "_rater", "_variant"])
        )
        if (tagged["_variant"] == OVERALL).any():
            raise AnalysisError(
                f"a tag in column '{tag}' is named '{OVERALL}', the overall row's name"
            )
        parts.append(tagged.drop("_tag"))
    rows = pl.concat(
        [p.select("_variant", "_arm", "_case", "_rater", "_points", "_met") for p in parts]
    )
    scored = (
        rows.group_by("_variant", "_arm", "_case", "_rater")
        .agg(
            pl.col("_points").filter(pl.col("_met")).sum().alias("achieved"),
            pl.col("_points").filter(pl.col("_points") > 0).sum().alias("possible"),
        )
        .filter(pl.col("possible") > 0)
        .with_columns((pl.col("achieved") / pl.col("possible")).alias("score"))
    )
    return scored.rename(
        {"_variant": C.VARIANT, "_arm": C.ARM, "_case": C.CASE, "_rater": C.RATER}
    ).sort(C.VARIANT, C.ARM, C.CASE, C.RATER, nulls_last=True)


def rubric_score(
    df: pl.DataFrame,
    *,
    unit: str = C.UNIT,
    rater: str = C.RATER,
    met: str = "met",
    case: str = C.CASE,
    points: str = "points",
    arm: str | None = None,
    tag: str | None = None,
    boot: int = 1000,
    ci: float = 0.95,
    seed: Seed = None,
) -> pl.DataFrame:
    """The HealthBench score per arm (``arm``; one row, arm null, without it), overall and per tag.

    For each answer and rater, ``case_scores``; a case's score is the mean over its raters (each
    rater's score first, then their mean, so a rater who rated more criteria does not weigh
    more); the estimate is the mean over cases, clipped to [0, 1] as simple-evals clips it
    (``unclipped_mean`` keeps it unclipped). CI: percentile bootstrap over cases, ``boot``
    replicates, each replicate's mean clipped the same way (simple-evals reports the bootstrap
    standard deviation of the same clipped means; the interval is Clinval's). Columns: the result
    columns, ``arm``, ``n_cases``, ``n_raters``, ``unclipped_mean``, ``boot``, ``seed``.
    A tag with no positive points on any case gives a not-applicable row saying so.
    """
    ci = check_ci(ci)
    if isinstance(boot, bool) or not isinstance(boot, int) or boot < 0:
        raise AnalysisError(f"boot must be a whole number >= 0, got {boot!r}")
    scores = case_scores(
        df, unit=unit, rater=rater, met=met, case=case, points=points, arm=arm, tag=tag
    )
    rng, used = resolve_seed(seed) if boot else (None, None)
    method = (
        "HealthBench score (simple-evals calculate_score): points of met criteria over positive "
        "points, per rater, mean over raters per case, mean over cases clipped to [0, 1]"
    )
    if boot:
        method += f"; percentile bootstrap over cases, {boot} replicates, {seed_text(used, seed)}"
    arms = (
        [None] if arm is None else sorted(df[arm].drop_nulls().cast(pl.String).unique().to_list())
    )
    variants = [OVERALL]
    if tag is not None:
        variants += sorted(v for v in scores[C.VARIANT].unique().to_list() if v != OVERALL)
        every_tag = set(
            t.strip()
            for cell in df[tag].drop_nulls().cast(pl.String).to_list()
            for t in cell.split(";")
            if t.strip()
        )
        variants += sorted(every_tag - set(variants))
    out: list[dict[str, Any]] = []
    for arm_value in arms:
        for variant in variants:
            sel = scores.filter(pl.col(C.VARIANT) == variant)
            sel = sel.filter(
                pl.col(C.ARM).is_null() if arm_value is None else pl.col(C.ARM) == arm_value
            )
            common = {
                C.VARIANT: variant,
                C.ARM: arm_value,
                C.CI_LEVEL: ci,
                C.METHOD: method,
                "boot": boot,
                C.SEED: used,
            }
            if sel.height == 0:
                where = f" for arm '{arm_value}'" if arm_value is not None else ""
                out.append(
                    not_applicable(
                        "rubric_score",
                        reason=f"no case has a criterion with positive points under "
                        f"'{variant}'{where}, so no score exists (simple-evals leaves it out)",
                        **common,
                        **{N_CASES: 0},
                    )
                )
                continue
            by_case = sel.group_by(C.CASE).agg(pl.col("score").mean()).sort(C.CASE)
            values = by_case["score"].to_numpy()
            mean = float(values.mean())
            low = high = None
            if boot and rng is not None:
                draws = rng.multinomial(
                    values.size, np.full(values.size, 1 / values.size), size=boot
                )
                reps = np.clip(draws @ values / values.size, 0, 1)
                low, high = (float(x) for x in np.quantile(reps, [(1 - ci) / 2, (1 + ci) / 2]))
            out.append(
                result_row(
                    "rubric_score",
                    **common,
                    **{
                        C.ESTIMATE: float(np.clip(mean, 0, 1)),
                        C.CI_LOW: low,
                        C.CI_HIGH: high,
                        C.NOTE: None
                        if 0 <= mean <= 1
                        else f"the mean over cases, {mean:.4g}, was clipped to [0, 1]",
                        N_CASES: values.size,
                        C.N_RATERS: sel[C.RATER].n_unique(),
                        UNCLIPPED: mean,
                    },
                )
            )
    return result_frame(out)


# --- agreement ---------------------------------------------------------------------------------


def _pair_counts(labels: pl.DataFrame, selves: list[str], others: list[str]) -> np.ndarray:
    """(n_units, 4) counts of pairs (self met & other met, self met & other not, self not &
    other met, both not) over units, pairing each of ``selves`` with each other rater of
    ``others`` on the same unit; units without a pair are dropped."""
    left = labels.filter(pl.col("_rater").is_in(selves))
    right = labels.filter(pl.col("_rater").is_in(others)).rename(
        {"_rater": "_other", "_met": "_met_o"}
    )
    pairs = left.join(right, on="_unit").filter(pl.col("_rater") != pl.col("_other"))
    if pairs.height == 0:
        return np.zeros((0, 4))
    counted = pairs.group_by("_unit").agg(
        (pl.col("_met") & pl.col("_met_o")).sum().alias("tt"),
        (pl.col("_met") & ~pl.col("_met_o")).sum().alias("tf"),
        (~pl.col("_met") & pl.col("_met_o")).sum().alias("ft"),
        (~pl.col("_met") & ~pl.col("_met_o")).sum().alias("ff"),
    )
    return counted.select("tt", "tf", "ft", "ff").to_numpy().astype(np.float64)


def _f1(p: np.ndarray, r: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(p + r > 0, 2 * p * r / (p + r), 0.0)


def _class_metrics(counts: np.ndarray) -> dict[str, np.ndarray]:
    """The seven variants from summed pair counts (..., 4): tt, tf, ft, ff."""
    tt, tf, ft, ff = (counts[..., k] for k in range(4))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {
            "precision_met": tt / (tt + tf),
            "recall_met": tt / (tt + ft),
            "precision_not_met": ff / (ff + ft),
            "recall_not_met": ff / (ff + tf),
        }
    out["f1_met"] = _f1(out["precision_met"], out["recall_met"])
    out["f1_not_met"] = _f1(out["precision_not_met"], out["recall_not_met"])
    for cls in ("met", "not_met"):
        undefined = np.isnan(out[f"precision_{cls}"]) | np.isnan(out[f"recall_{cls}"])
        out[f"f1_{cls}"] = np.where(undefined, np.nan, out[f"f1_{cls}"])
    out["balanced_f1"] = (out["f1_met"] + out["f1_not_met"]) / 2
    return out


def _denominators(total: np.ndarray) -> dict[str, float]:
    tt, tf, ft, ff = total
    pairs = {
        "precision_met": tt + tf,
        "recall_met": tt + ft,
        "precision_not_met": ff + ft,
        "recall_not_met": ff + tf,
    }
    pairs["f1_met"] = min(pairs["precision_met"], pairs["recall_met"])
    pairs["f1_not_met"] = min(pairs["precision_not_met"], pairs["recall_not_met"])
    pairs["balanced_f1"] = min(pairs["f1_met"], pairs["f1_not_met"])
    return pairs


def healthbench_agreement(
    df: pl.DataFrame,
    *,
    unit: str = C.UNIT,
    rater: str = C.RATER,
    met: str = "met",
    grader: str | None = None,
    boot: int = 0,
    ci: float = 0.95,
    seed: Seed = None,
) -> pl.DataFrame:
    """HealthBench's meta-evaluation agreement, per rater, pooled over clinicians, and for a grader.

    Rows (statistic ``healthbench_agreement``, variants ``AGREEMENT_VARIANTS``) for: each
    clinician (every rater but ``grader``) against the other clinicians; ``rater =
    "clinicians"``, every clinician's pairs pooled; and with ``grader`` (a rater id of the file,
    e.g. a model grader's pseudonym) that grader against the clinicians only. ``n_pairs`` is the
    number of label pairs in the estimate's denominator (for an F1, the smaller of its two).
    A variant whose denominator is empty (no "met" label on either side, say) is a
    not-applicable row. With ``boot`` > 0, a percentile bootstrap over units (answer x
    criterion) gives the interval.

    H0/H1: none; these are descriptive, as in HealthBench, where the model grader's balanced F1
    is compared with the physicians' pooled one ("does the grader agree with clinicians as well
    as clinicians agree with each other?").
    """
    ci = check_ci(ci)
    if isinstance(boot, bool) or not isinstance(boot, int) or boot < 0:
        raise AnalysisError(f"boot must be a whole number >= 0, got {boot!r}")
    labels = _labels(df, unit=unit, rater=rater, met=met, extra={})
    raters = sorted(labels["_rater"].unique().to_list())
    if CLINICIANS in raters:
        raise AnalysisError(
            f"a rater is named '{CLINICIANS}', the name of the pooled rows; rename that rater"
        )
    if grader is not None and grader not in raters:
        raise AnalysisError(
            f"grader '{grader}' is not a rater in column '{rater}'; raters are: "
            + ", ".join(raters[:8])
            + (", ..." if len(raters) > 8 else "")
        )
    clinicians = [r for r in raters if r != grader]
    if len(clinicians) < 2:
        raise AnalysisError(
            f"{len(clinicians)} clinician rater(s) in column '{rater}'; agreement needs at least two"
        )
    rng, used = resolve_seed(seed) if boot else (None, None)
    method = (
        "HealthBench meta-evaluation: each label paired with every other rater's label on the "
        "same unit (answer x criterion); precision, recall and F1 for met and for not met, "
        "balanced F1 their F1s' mean"
    )
    if boot:
        method += f"; percentile bootstrap over units, {boot} replicates, {seed_text(used, seed)}"
    views = [(r, [r], clinicians, "against the other clinicians") for r in clinicians]
    views.append((CLINICIANS, clinicians, clinicians, "each clinician against the others, pooled"))
    if grader is not None:
        views.append((grader, [grader], clinicians, "the grader against the clinicians"))
    out: list[dict[str, Any]] = []
    for name, selves, others, compared in views:
        counts = _pair_counts(labels, selves, others)
        total = counts.sum(axis=0) if counts.size else np.zeros(4)
        point = _class_metrics(total)
        denominators = _denominators(total)
        intervals: dict[str, tuple[float | None, float | None]] = {}
        if boot and rng is not None and counts.shape[0]:
            n = counts.shape[0]
            draws = rng.multinomial(n, np.full(n, 1 / n), size=boot)
            reps = _class_metrics(draws @ counts)
            for variant, values in reps.items():
                finite = values[np.isfinite(values)]
                intervals[variant] = (
                    tuple(float(x) for x in np.quantile(finite, [(1 - ci) / 2, (1 + ci) / 2]))
                    if finite.size
                    else (None, None)
                )
        for variant in AGREEMENT_VARIANTS:
            common = {
                C.VARIANT: variant,
                C.RATER: name,
                C.CI_LEVEL: ci,
                C.METHOD: f"{method}; {compared}",
                N_PAIRS: int(denominators[variant]),
                C.N_UNITS: int(counts.shape[0]),
                "boot": boot,
                C.SEED: used,
            }
            estimate = float(point[variant])
            if not np.isfinite(estimate):
                out.append(
                    not_applicable(
                        "healthbench_agreement",
                        reason=f"{variant} is undefined for {name}: no label pair in its "
                        "denominator (no 'met' or no 'not met' label on one side)",
                        **common,
                    )
                )
                continue
            low, high = intervals.get(variant, (None, None))
            out.append(
                result_row(
                    "healthbench_agreement",
                    **common,
                    **{C.ESTIMATE: estimate, C.CI_LOW: low, C.CI_HIGH: high},
                )
            )
    return result_frame(out)
