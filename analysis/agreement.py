"""Inter-rater agreement: Krippendorff's alpha, Fleiss', Cohen's and Randolph's kappa, Gwet's
AC1/AC2, percent agreement and the six Shrout & Fleiss ICCs.

Every public function takes a long polars frame, one row per rating, with the unit, rater and value
columns named by keyword (``unit``, ``rater``, ``value``). Units rated by only some raters are
normal: a missing rating is simply an absent row (or a null value). Each function returns a tidy
polars frame, one row per estimate, with the columns of ``RESULT_SCHEMA`` (names from
``analysis.columns``). A statistic that does not apply to the data comes back as a row with
``applicable=False``, a null estimate and the reason in ``note``; nothing is dropped silently.

Hypotheses, for the rows that carry a p-value:

- Fleiss' kappa, Cohen's kappa, Gwet's AC1/AC2, Randolph's kappa: H0 coefficient = 0 (agreement no
  better than chance, as each coefficient defines chance) vs H1 coefficient != 0 (two-sided).
- ICC: H0 ICC = 0 vs H1 ICC > 0 (one-sided F test of Shrout & Fleiss 1979).
- Krippendorff's alpha and percent agreement have no p-value; alpha has a bootstrap interval and,
  in ``note``, the bootstrap probabilities that alpha lies below Krippendorff's 0.667 and 0.800.

Weighted statistics (Cohen's linear / quadratic kappa, Gwet's AC2) weight over the categories: the
declared ``scale`` when given (say, 1..5 for a 5-point Likert item, even if nobody answered 1),
otherwise only the categories observed. With numeric categories the weights use the values
(linear ``1 - |x_i - x_j| / (max - min)``, quadratic ``1 - (x_i - x_j)^2 / (max - min)^2``, as in
Gwet's irrCAC); text categories use their positions on the scale. The ``note`` says which. The
declared scale matters for AC2 (and for the q of AC1 and Randolph's kappa), whose chance
agreement counts the categories; Cohen's kappa with numeric categories does not depend on it.

References
----------
Krippendorff K (2011). Computing Krippendorff's alpha-reliability. Annenberg School, U Penn.
Hayes AF, Krippendorff K (2007). Answering the call for a standard reliability measure for coding
data. Communication Methods and Measures 1:77-89.
Fleiss JL (1971). Measuring nominal scale agreement among many raters. Psychol Bull 76:378-382.
Fleiss JL, Nee JCM, Landis JR (1979). Large sample variance of kappa in the case of different sets
of raters. Psychol Bull 86:974-977.
Cohen J (1968). Weighted kappa. Psychol Bull 70:213-220; Fleiss JL, Cohen J, Everitt BS (1969).
Large sample standard errors of kappa and weighted kappa. Psychol Bull 72:323-327.
Gwet KL (2008). Computing inter-rater reliability and its variance in the presence of high
agreement. Br J Math Stat Psychol 61:29-48; Gwet KL (2014). Handbook of Inter-Rater Reliability,
4th ed. (the variance formulas of the irrCAC R package).
Randolph JJ (2005). Free-marginal multirater kappa. Joensuu Learning and Instruction Symposium;
Brennan RL, Prediger DJ (1981). Educ Psychol Meas 41:687-699.
Shrout PE, Fleiss JL (1979). Intraclass correlations: uses in assessing rater reliability. Psychol
Bull 86:420-428; McGraw KO, Wong SP (1996). Psychol Methods 1:30-46.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import polars as pl
from scipy import stats

from analysis import columns as C
from analysis._common import (
    RESULT_COLUMNS_SCHEMA,
    check_ci,
    join_notes,
    not_applicable,
    require_columns,
    result_frame,
    result_row,
)
from analysis._pivot import Ratings, check_level, distinct_rows, read_ratings
from analysis._random import BOOT_CHUNK, Seed, resolve_seed, seed_text
from analysis.errors import AnalysisError

RESULT_SCHEMA: dict[str, pl.DataType] = {
    **RESULT_COLUMNS_SCHEMA,
    C.LEVEL: pl.String(),
    C.N_UNITS: pl.Int64(),
    C.N_RATERS: pl.Int64(),
    C.N_VALUES: pl.Int64(),
    C.RATER_A: pl.String(),
    C.RATER_B: pl.String(),
    C.MCGRAW_WONG_NAME: pl.String(),
    C.STATISTIC_VALUE: pl.Float64(),
    C.DF1: pl.Float64(),
    C.DF2: pl.Float64(),
    C.SEED: pl.Int64(),
}
"""Columns and types of every frame this module returns, in this order."""

LOW_PREVALENCE_SHARE = 0.9
"""Above this share of all ratings in one category, kappa-type rows carry a prevalence warning."""

MAX_CATEGORIES_WITHOUT_SCALE = 20
"""At interval/ratio level, more distinct values than this (and no scale) means continuous data,
for which the categorical statistics do not apply."""

_ICC_FORMS = (
    # Shrout-Fleiss name, McGraw-Wong name, model in words
    ("ICC1", "ICC(1)", "one-way random, single rater"),
    ("ICC2", "ICC(A,1)", "two-way random, absolute agreement, single rater"),
    ("ICC3", "ICC(C,1)", "two-way mixed, consistency, single rater"),
    ("ICC1k", "ICC(k)", "one-way random, mean of k raters"),
    ("ICC2k", "ICC(A,k)", "two-way random, absolute agreement, mean of k raters"),
    ("ICC3k", "ICC(C,k)", "two-way mixed, consistency, mean of k raters"),
)
_ICC_NOMINAL = "nominal categories have no numeric distance; the ICC needs numeric ratings"

Weights = Literal["unweighted", "linear", "quadratic"]


# --- result rows ---------------------------------------------------------------------------------


def _frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return result_frame(rows, schema=RESULT_SCHEMA)


def _columns_frame(height: int, columns: dict[str, Any]) -> pl.DataFrame:
    """A result frame of ``height`` rows from whole columns: arrays or lists of length ``height``,
    or scalars repeated; columns not given are null. Non-finite floats become null, as in
    ``result_frame``; the whole-column twin of it for the many rows of Cohen's pairs.
    """
    unknown = set(columns) - set(RESULT_SCHEMA)
    if unknown:
        raise KeyError(", ".join(sorted(unknown)))
    given: list[pl.Series] = []
    select: list[pl.Expr] = []
    for name, dtype in RESULT_SCHEMA.items():
        val = columns.get(name)
        if isinstance(val, np.ndarray | list):
            if dtype == pl.Float64():
                val = np.asarray(val, dtype=np.float64)
                val = np.where(np.isfinite(val), val, np.nan)
            given.append(pl.Series(name, val, dtype=dtype, nan_to_null=dtype == pl.Float64()))
            select.append(pl.col(name))
        else:
            if isinstance(val, float) and not np.isfinite(val):
                val = None
            select.append(pl.lit(val, dtype=dtype).alias(name))
    if not given:
        given.append(pl.Series("__height", np.zeros(height, dtype=np.int8)))
    return pl.DataFrame(given).select(select)


def _stack(parts: list[dict[str, Any] | pl.DataFrame]) -> pl.DataFrame:
    """Result rows and result frames, in order, as one frame."""
    frames: list[pl.DataFrame] = []
    pending: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, pl.DataFrame):
            if pending:
                frames.append(_frame(pending))
                pending = []
            frames.append(part)
        else:
            pending.append(part)
    if pending or not frames:
        frames.append(_frame(pending))
    return pl.concat(frames, how="vertical") if len(frames) > 1 else frames[0]


def _fmt(x: Any) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _prevalence_note(rat: Ratings) -> str | None:
    """Warn when one category holds most ratings: kappa-type statistics then mislead (the 'kappa
    paradox', Feinstein & Cicchetti 1990), while percent agreement, AC1 and Randolph do not."""
    share = rat.category_counts() / rat.n_ratings
    top = int(np.argmax(share))
    if share[top] > LOW_PREVALENCE_SHARE:
        return (
            f"low prevalence: {_fmt(rat.categories[top])!s} is {share[top]:.0%} of ratings, so "
            "chance-corrected kappa-type values can be low despite high agreement; read them "
            "with percent agreement, Gwet's AC1 and Randolph's kappa"
        )
    return None


def _single_category_reason(rat: Ratings) -> str | None:
    used = np.flatnonzero(rat.category_counts())
    if used.size == 1:
        return (
            f"every rating is {_fmt(rat.categories[int(used[0])])}: with a single category "
            "chance-corrected agreement is undefined (raw agreement is 100%)"
        )
    return None


def _t_interval(est: float, se: float, df: int, ci: float, upper: float = 1.0) -> tuple:
    """t interval as irrCAC computes it: est -/+ t(df) * se, capped at the coefficient's bounds."""
    if not np.isfinite(se) or df < 1:
        return None, None
    half = stats.t.ppf(0.5 + ci / 2, df) * se
    return max(-1.0, est - half), min(upper, est + half)


def _two_sided_t(est: float, se: float, df: int) -> float | None:
    if not np.isfinite(se) or se <= 0 or df < 1:
        return None
    return float(2 * stats.t.sf(abs(est / se), df))


# --- Krippendorff's alpha ------------------------------------------------------------------------


def value_patterns(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct value-count rows among pairable units (>= 2 ratings) and how often each occurs.

    counts: (n_units, V). Returns patterns (P, V) int64 and freq (P,) int64. Units sharing a
    pattern contribute identical coincidences, so everything downstream works on P rows, not on
    n_units (P is small: at most C(m + V - 1, V - 1) for m ratings per unit).
    """
    patterns, _, freq = distinct_rows(counts[counts.sum(axis=1) >= 2])
    return patterns, freq


def _pattern_coincidences(patterns: np.ndarray) -> np.ndarray:
    """(P, V, V): each pattern's coincidences (n_c n_k - [c = k] n_c) / (m - 1) (Krippendorff 2011)."""
    n = patterns.astype(np.float64)
    m = n.sum(axis=1)
    pairs = n[:, :, None] * n[:, None, :]
    idx = np.arange(n.shape[1])
    pairs[:, idx, idx] -= n
    return pairs / (m - 1)[:, None, None]


def _distances(level: str, n_v: np.ndarray, values: np.ndarray | None) -> np.ndarray:
    """Squared metric differences delta^2_ck, shape (V, V), or (B, V, V) for ordinal with n_v (B, V).

    Ordinal distance uses the pairable-value marginals n_v of the data it is computed on
    (Krippendorff 2011): delta_ck = (sum_{g=c..k} n_g - (n_c + n_k) / 2)^2 over the ordered
    categories, so a bootstrap replicate gets its own distances.
    """
    v = n_v.shape[-1]
    if level == "nominal":
        return 1.0 - np.eye(v)
    if level == "ordinal":
        lo = np.minimum.outer(np.arange(v), np.arange(v))
        hi = np.maximum.outer(np.arange(v), np.arange(v))
        cum = np.cumsum(n_v, axis=-1)
        between = cum[..., hi] - cum[..., lo] + n_v[..., lo]
        return (between - (n_v[..., :, None] + n_v[..., None, :]) / 2.0) ** 2
    if values is None:
        raise AnalysisError(f"{level} level needs numeric ratings")
    diff = values[:, None] - values[None, :]
    if level == "interval":
        return diff**2
    total = values[:, None] + values[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total == 0, 0.0, (diff / np.where(total == 0, 1.0, total)) ** 2)


def _alpha_from(o: np.ndarray, n_v: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """alpha = 1 - D_o / D_e = 1 - (n - 1) sum(o * delta) / sum(n_c n_k delta); batched over (...).

    o: (..., V, V) observed coincidences; n_v: (..., V) their marginals; delta: (V, V) or
    (..., V, V). NaN where D_e = 0 (one value only among the pairable values: alpha undefined).
    """
    n = n_v.sum(axis=-1)
    observed = (o * delta).sum(axis=(-2, -1))
    expected = np.einsum("...c,...ck,...k->...", n_v, np.broadcast_to(delta, o.shape), n_v)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(expected > 0, 1.0 - (n - 1) * observed / expected, np.nan)


def unit_bootstrap_counts(freq: np.ndarray, boot: int, rng: np.random.Generator) -> np.ndarray:
    """(boot, P) how many times each value pattern is drawn when resampling units.

    Drawing n_units units with replacement and tallying them by pattern is one multinomial draw
    with probabilities freq / n_units: the same distribution, at a cost independent of n_units.
    """
    total = int(freq.sum())
    return rng.multinomial(total, freq / total, size=boot)


def alpha_from_pattern_counts(
    pattern_counts: np.ndarray, patterns: np.ndarray, level: str, values: np.ndarray | None
) -> np.ndarray:
    """alpha for each row of pattern_counts (B, P), the data being those multiples of patterns (P, V).

    Observed coincidences and marginals of a replicate are (B x P) @ (P x V*V) and (B x P) @ (P x V)
    matrix products; the expected disagreement comes from the replicate's own marginals.
    """
    weights = pattern_counts.astype(np.float64)
    p, v = patterns.shape
    o = (weights @ _pattern_coincidences(patterns).reshape(p, v * v)).reshape(-1, v, v)
    n_v = weights @ patterns.astype(np.float64)
    return _alpha_from(o, n_v, _distances(level, n_v, values))


def _percentile_interval(reps: np.ndarray, ci: float) -> tuple[float | None, float | None]:
    finite = reps[np.isfinite(reps)]
    if finite.size == 0:
        return None, None
    lo, hi = np.quantile(finite, [(1 - ci) / 2, (1 + ci) / 2])
    return float(lo), float(hi)


def _alpha_rows(
    rat: Ratings,
    *,
    level: str,
    boot: int,
    ci: float,
    seed: Seed,
    bootstrap: str,
) -> list[dict[str, Any]]:
    stat = "krippendorff_alpha"
    if isinstance(boot, bool) or not isinstance(boot, int | np.integer) or boot < 0:
        raise AnalysisError(f"boot must be a whole number of bootstrap replicates; got {boot!r}")
    if bootstrap not in ("units", "pairable"):
        raise AnalysisError(f"bootstrap must be 'units' or 'pairable'; got {bootstrap!r}")
    common = {C.VARIANT: level, C.LEVEL: level, C.CI_LEVEL: ci, C.N_RATERS: rat.n_raters}
    values = rat.category_values
    if level == "ratio" and values is not None and (values < 0).any():
        raise AnalysisError("ratio level needs non-negative values with a true zero; use interval")
    patterns, freq = rat.pairable_patterns()
    n_units = int(freq.sum())
    n_pairable = int((patterns.sum(axis=1) * freq).sum())
    common.update({C.N_UNITS: n_units, C.N_VALUES: n_pairable})
    o = np.tensordot(freq.astype(np.float64), _pattern_coincidences(patterns), axes=1)
    n_v = o.sum(axis=1)
    delta = _distances(level, n_v, values)
    estimate = float(_alpha_from(o, n_v, delta))
    distance = {
        "nominal": "nominal distance",
        "ordinal": "ordinal distance from the pairable-value marginals",
        "interval": "interval distance (squared difference)",
        "ratio": "ratio distance ((a - b) / (a + b))^2",
    }[level]
    method = f"Krippendorff's alpha from coincidence matrices, {distance} (Krippendorff 2011)"
    if not np.isfinite(estimate):
        only = _fmt(rat.categories[int(np.argmax(n_v))])
        return [
            not_applicable(
                stat,
                reason=f"alpha is undefined: every pairable value is {only}, so there is no "
                "expected disagreement to compare with",
                **common,
                **{C.METHOD: method},
            )
        ]
    prevalence = _prevalence_note(rat)
    if boot == 0:
        return [
            result_row(stat, **common, **{C.ESTIMATE: estimate, C.METHOD: method + "; no interval"})
        ]
    rng, used_seed = resolve_seed(seed)
    common[C.SEED] = used_seed
    seeded = seed_text(used_seed, seed)
    chunks = [min(BOOT_CHUNK, boot - start) for start in range(0, int(boot), BOOT_CHUNK)]
    if bootstrap == "units":
        # chunked draws are the same stream as one draw of all replicates (rows in order)
        reps = np.concatenate(
            [
                alpha_from_pattern_counts(
                    unit_bootstrap_counts(freq, b, rng), patterns, level, values
                )
                for b in chunks
            ]
        )
        method += (
            f"; {ci:.0%} percentile bootstrap over units ({boot} resamples of the {n_units} "
            f"pairable units, {seeded})"
        )
    elif bootstrap == "pairable":
        # Hayes & Krippendorff (2007), KALPHA: draw M = sum_u m_u (m_u - 1) / 2 pairs of values from
        # the observed coincidences, expected disagreement held at its observed value.
        m = patterns.sum(axis=1)
        pairs = int((freq * m * (m - 1) // 2).sum())
        n = n_v.sum()
        expected = float(np.einsum("c,ck,k->", n_v, delta, n_v)) / (n * (n - 1))
        reps = np.concatenate(
            [
                1.0
                - (rng.multinomial(pairs, (o / n).ravel(), size=b) @ delta.ravel())
                / (pairs * expected)
                for b in chunks
            ]
        )
        method += (
            f"; {ci:.0%} percentile bootstrap of pairable values (Hayes & Krippendorff 2007, "
            f"KALPHA: {boot} resamples of {pairs} value pairs, expected disagreement fixed, "
            f"{seeded})"
        )
    else:
        raise AnalysisError(f"bootstrap must be 'units' or 'pairable'; got {bootstrap!r}")
    low, high = _percentile_interval(reps, ci)
    finite = reps[np.isfinite(reps)]
    dropped = int(reps.size - finite.size)
    q_note = (
        f"bootstrap P(alpha < 0.667) = {np.mean(finite < 0.667):.3f}, "
        f"P(alpha < 0.800) = {np.mean(finite < 0.800):.3f}"
        if finite.size
        else None
    )
    dropped_note = (
        f"{dropped} of {boot} resamples had a single value (alpha undefined) and were left out"
        if dropped
        else None
    )
    return [
        result_row(
            stat,
            **common,
            **{
                C.ESTIMATE: estimate,
                C.CI_LOW: low,
                C.CI_HIGH: high,
                C.METHOD: method,
                C.NOTE: join_notes([prevalence, q_note, dropped_note]),
            },
        )
    ]


def _read_at_level(
    df: pl.DataFrame,
    *,
    unit: str,
    rater: str,
    value: str,
    level: str,
    scale: Sequence[Any] | None,
) -> Ratings:
    """``read_ratings`` with what ``level`` demands: numbers at interval and ratio level, ordered
    categories (numbers, or text with a declared scale) at ordinal level."""
    return read_ratings(
        df,
        unit=unit,
        rater=rater,
        value=value,
        scale=scale,
        need_numeric=f"{level} level" if level in ("interval", "ratio") else None,
        need_order=f"{level} level" if level == "ordinal" else None,
    )


def krippendorff_alpha(
    df: pl.DataFrame,
    *,
    unit: str = C.UNIT,
    rater: str = C.RATER,
    value: str = C.VALUE,
    level: str,
    boot: int = 1000,
    ci: float = 0.95,
    seed: Seed = None,
    bootstrap: Literal["units", "pairable"] = "units",
    scale: Sequence[Any] | None = None,
) -> pl.DataFrame:
    """Krippendorff's alpha at a declared level of measurement, with a bootstrap interval.

    Parameters
    ----------
    df : long polars frame, one row per rating; ``unit``, ``rater``, ``value`` name its columns.
        Units rated by one rater only are not pairable and are ignored.
    level : ``"nominal" | "ordinal" | "interval" | "ratio"``, required (no default, on purpose).
        Ordinal text categories need ``scale`` (lowest to highest); interval/ratio need numbers.
    boot : bootstrap replicates (0: no interval). ci : two-sided level of the interval.
    seed : int, ``numpy.random.Generator`` or None (then a seed is drawn from OS entropy); the
        seed used is recorded in ``method`` and in the ``seed`` column (null for a Generator).
    bootstrap : ``"units"`` (default) resamples units, which respects that ratings cluster within
        units; ``"pairable"`` is Hayes & Krippendorff's (2007) KALPHA resampling of value pairs
        with expected disagreement fixed (narrower; offered for comparison with published
        KALPHA output).

    Returns
    -------
    One row: ``statistic="krippendorff_alpha"``, ``variant``/``level`` the level, ``estimate``,
    percentile ``ci_low``/``ci_high``, ``n_units`` (pairable units), ``n_values`` (pairable
    values n..), ``n_raters``; ``note`` gives the bootstrap P(alpha < .667) and P(alpha < .800).
    If every pairable value is the same, alpha is undefined: ``applicable=False`` with the reason.

    Formula: alpha = 1 - D_o / D_e with D_o = sum_ck o_ck delta_ck / n.. from the coincidence
    matrix o_ck = sum_u (number of c-k pairs in u) / (m_u - 1), and
    D_e = sum_ck n_c n_k delta_ck / (n.. (n.. - 1)) (Krippendorff 2011).

    The unit bootstrap groups units by their value-count pattern: a replicate is one multinomial
    draw of pattern counts, and its coincidences and marginals are matrix products, so 1,000
    replicates over 100,000 units take well under a second (benchmarks/bench_agreement.py).

    Examples
    --------
    Krippendorff (2011), worked example C: 4 observers, 12 units, missing values (None); the
    published alphas are nominal .743, ordinal .815, interval .849 and ratio .797.

    >>> wide = {
    ...     "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    ...     "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    ...     "C": [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    ...     "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
    ... }
    >>> ratings = pl.DataFrame(
    ...     {"unit": list(range(1, 13)) * 4, "rater": [r for r in wide for _ in range(12)],
    ...      "value": [v for values in wide.values() for v in values]}
    ... )
    >>> [round(krippendorff_alpha(ratings, level=level, boot=0)["estimate"][0], 3)
    ...  for level in ("nominal", "ordinal", "interval", "ratio")]
    [0.743, 0.815, 0.849, 0.797]
    """
    check_level(level)
    ci = check_ci(ci)
    rat = _read_at_level(df, unit=unit, rater=rater, value=value, level=level, scale=scale)
    return _frame(_alpha_rows(rat, level=level, boot=boot, ci=ci, seed=seed, bootstrap=bootstrap))


# --- the Gwet family: percent agreement, AC1/AC2, Randolph, Fleiss ------------------------------


def _weight_matrix(rat: Ratings, weights: str) -> tuple[np.ndarray, str]:
    """(V, V) agreement weights over the categories, and a sentence saying what they span."""
    v = rat.n_categories
    if weights == "unweighted":
        return np.eye(v), "unweighted"
    if weights not in ("linear", "quadratic"):
        raise AnalysisError(
            f"weights must be 'unweighted', 'linear' or 'quadratic'; got {weights!r}"
        )
    x = rat.category_values if rat.numeric else np.arange(v, dtype=np.float64)
    span = float(x.max() - x.min())
    if span == 0:  # a single category: every pair agrees fully, whatever the weighting
        return np.ones((v, v)), f"{weights} weights over a single category"
    dist = np.abs(x[:, None] - x[None, :]) / span
    w = 1.0 - (dist if weights == "linear" else dist**2)
    cats = ", ".join(_fmt(c) for c in rat.categories)
    basis = "values" if rat.numeric else "positions"
    if rat.scale_given:
        over = f"{weights} weights over the declared scale ({cats}), by their {basis}"
    else:
        over = (
            f"{weights} weights over the observed categories only ({cats}), by their {basis}; "
            "declare the scale (scale=[...], --scale in the CLI) to weight over the full "
            "declared scale"
        )
    return w, over


def _gwet_core(
    patterns: np.ndarray,
    unit_pattern: np.ndarray,
    w: np.ndarray,
    kind: str,
    pi: np.ndarray | None = None,
) -> dict[str, float]:
    """Coefficient, chance agreement and standard error for raw ratings with missing values.

    patterns: (P, q) distinct rows of raters per unit and category, unit_pattern: (n,) the row of
    each of the n rated units (``Ratings.patterns()``, ``Ratings.unit_pattern()``). Every per-unit
    term depends on a unit only through its row, so it is computed once per pattern and then
    gathered to the units, where the sums run as they would over the units themselves (same
    order, same rounding). w: (q, q) weights. kind:
    "pa" (percent agreement), "ac" (Gwet's AC1/AC2), "bp" (Brennan-Prediger = Randolph's
    free-marginal kappa), "fleiss" (Fleiss' kappa, generalised to missing ratings). Follows Gwet
    (2014) as implemented in irrCAC's *.raw functions: pa averages over units with >= 2 ratings,
    chance agreement uses every rated unit, and the variance is the linearised
    sum((x_i - coefficient)^2) / (n (n - 1)) with no finite-population correction. pi: (q,) the
    mean share of each category per unit (``Ratings.mean_unit_shares()``), computed when None.
    """
    counts = patterns.astype(np.float64)
    n, q = unit_pattern.size, counts.shape[1]
    r = counts.sum(axis=1)
    weighted = counts @ w.T
    agree = (counts * (weighted - 1)).sum(axis=1)
    two = r >= 2
    two_u = two[unit_pattern]
    n2 = int(two_u.sum())
    den = np.where(two, r * (r - 1), 1.0)
    pa_i = np.where(two, agree / den, 0.0)
    pa = float(pa_i[unit_pattern][two_u].mean())
    if pi is None:
        pi = (counts / np.maximum(r, 1)[:, None])[unit_pattern].mean(axis=0)
    if kind == "pa":
        pe = 0.0
    elif kind == "ac":
        pe = float(w.sum() * (pi * (1 - pi)).sum() / (q * (q - 1))) if q >= 2 else 1.0
    elif kind == "bp":
        pe = float(w.sum() / q**2)
    elif kind == "fleiss":
        pe = float((w * np.outer(pi, pi)).sum())
    else:  # pragma: no cover - internal misuse
        raise ValueError(kind)
    if 1 - pe <= 1e-12:
        return {"pa": pa, "pe": pe, "coef": np.nan, "se": np.nan, "n": n}
    coef = (pa - pe) / (1 - pe)
    x = (n / n2) * (pa_i - pe * two) / (1 - pe)
    if kind == "ac":
        pe_i = (w.sum() / (q * (q - 1))) * (counts @ (1 - pi)) / np.maximum(r, 1)
        x = x - 2 * (1 - coef) * (pe_i - pe) / (1 - pe)
    elif kind == "fleiss":
        pi_w = ((w @ pi) + (w.T @ pi)) / 2
        pe_i = (counts @ pi_w) / np.maximum(r, 1)
        x = x - 2 * (1 - coef) * (pe_i - pe) / (1 - pe)
    x = x[unit_pattern]
    se = float(np.sqrt(((x - coef) ** 2).sum() / (n * (n - 1)))) if n >= 2 else np.nan
    return {"pa": pa, "pe": pe, "coef": float(coef), "se": se, "n": n}


def _gwet_row(
    rat: Ratings,
    *,
    statistic: str,
    kind: str,
    weights: str,
    ci: float,
    variant: str | None,
    method: str,
    p_value: bool = True,
    extra_note: str | None = None,
) -> dict[str, Any]:
    w, over = _weight_matrix(rat, weights)
    common = {
        C.VARIANT: variant,
        C.CI_LEVEL: ci,
        C.N_UNITS: rat.n_units,
        C.N_RATERS: rat.n_raters,
        C.N_VALUES: rat.n_ratings,
    }
    if kind != "pa" and not rat.scale_given and (reason := _single_category_reason(rat)):
        return not_applicable(statistic, reason=reason, **common, **{C.METHOD: method})
    res = _gwet_core(rat.patterns()[0], rat.unit_pattern(), w, kind, rat.mean_unit_shares())
    if not np.isfinite(res["coef"]):
        return not_applicable(
            statistic,
            reason=f"chance agreement is 1 (pe = {res['pe']:.3f}), so the coefficient is undefined",
            **common,
            **{C.METHOD: method},
        )
    df = res["n"] - 1
    low, high = _t_interval(res["coef"], res["se"], df, ci)
    weight_note = over if weights != "unweighted" else None
    return result_row(
        statistic,
        **common,
        **{
            C.ESTIMATE: res["coef"],
            C.CI_LOW: low,
            C.CI_HIGH: high,
            C.P_VALUE: _two_sided_t(res["coef"], res["se"], df) if p_value else None,
            C.STATISTIC_VALUE: res["coef"] / res["se"] if p_value and res["se"] > 0 else None,
            C.DF1: float(df) if p_value else None,
            C.METHOD: method + f"; pa = {res['pa']:.4f}, pe = {res['pe']:.4f}",
            C.NOTE: join_notes([weight_note, extra_note]),
        },
    )


_GWET_VAR = (
    "SE from Gwet's (2014) linearised variance over units (irrCAC), "
    "t interval and two-sided t test with n_units - 1 df"
)


def percent_agreement(
    df: pl.DataFrame,
    *,
    unit: str = C.UNIT,
    rater: str = C.RATER,
    value: str = C.VALUE,
    ci: float = 0.95,
) -> pl.DataFrame:
    """Percent agreement: the share of agreeing rater pairs within a unit, averaged over units.

    pa = mean over units with >= 2 ratings of sum_k r_uk (r_uk - 1) / (r_u (r_u - 1)), r_uk the
    number of raters giving category k to unit u. Not chance-corrected: no p-value. Interval: t
    interval with Gwet's (2014) standard error (irrCAC ``pa.coeff.raw``), capped at 1.
    One row, ``statistic="percent_agreement"``.
    """
    ci = check_ci(ci)
    rat = read_ratings(df, unit=unit, rater=rater, value=value)
    return _frame([_percent_row(rat, ci)])


def _percent_row(rat: Ratings, ci: float) -> dict[str, Any]:
    return _gwet_row(
        rat,
        statistic="percent_agreement",
        kind="pa",
        weights="unweighted",
        ci=ci,
        variant=None,
        method="mean share of agreeing rater pairs per unit (units with >= 2 ratings); SE from "
        "Gwet's (2014) variance over units (irrCAC), t interval with n_units - 1 df",
        p_value=False,
    )


def gwet_ac1(
    df: pl.DataFrame,
    *,
    unit: str = C.UNIT,
    rater: str = C.RATER,
    value: str = C.VALUE,
    scale: Sequence[Any] | None = None,
    ci: float = 0.95,
) -> pl.DataFrame:
    """Gwet's AC1 for any number of raters with missing ratings (Gwet 2008, 2014).

    AC1 = (pa - pe) / (1 - pe), pe = sum_k pi_k (1 - pi_k) / (q - 1), pi_k the mean over units of
    the share of a unit's ratings in category k, q the number of categories (the declared
    ``scale``, else those observed). Robust to the low-prevalence 'kappa paradox'.
    H0: AC1 = 0 vs H1: AC1 != 0, t test with Gwet's standard error. One row.
    """
    ci = check_ci(ci)
    rat = read_ratings(df, unit=unit, rater=rater, value=value, scale=scale)
    return _frame([_ac_row(rat, "unweighted", ci)])


def gwet_ac2(
    df: pl.DataFrame,
    *,
    unit: str = C.UNIT,
    rater: str = C.RATER,
    value: str = C.VALUE,
    weights: Literal["linear", "quadratic"] = "quadratic",
    scale: Sequence[Any] | None = None,
    ci: float = 0.95,
) -> pl.DataFrame:
    """Gwet's AC2: AC1 with linear or quadratic agreement weights for ordered categories.

    pa weights partial agreement by w_kl; pe = sum(w) / (q (q - 1)) * sum_k pi_k (1 - pi_k).
    Weights span the declared ``scale`` (recommended for Likert items) or else the observed
    categories; ``note`` says which. H0: AC2 = 0 vs H1: AC2 != 0. One row, ``variant`` = weights.
    """
    if weights not in ("linear", "quadratic"):
        raise AnalysisError(f"gwet_ac2 weights must be 'linear' or 'quadratic'; got {weights!r}")
    ci = check_ci(ci)
    rat = read_ratings(
        df, unit=unit, rater=rater, value=value, scale=scale, need_order="Gwet's AC2"
    )
    return _frame([_ac_row(rat, weights, ci)])


def _ac_row(rat: Ratings, weights: str, ci: float) -> dict[str, Any]:
    name = "AC1" if weights == "unweighted" else "AC2"
    return _gwet_row(
        rat,
        statistic="gwet_ac1" if weights == "unweighted" else "gwet_ac2",
        kind="ac",
        weights=weights,
        ci=ci,
        variant=None if weights == "unweighted" else weights,
        method=f"Gwet's {name} for multiple raters with missing ratings (Gwet 2008, 2014); "
        + _GWET_VAR,
    )


def randolph_kappa(
    df: pl.DataFrame,
    *,
    unit: str = C.UNIT,
    rater: str = C.RATER,
    value: str = C.VALUE,
    scale: Sequence[Any] | None = None,
    ci: float = 0.95,
) -> pl.DataFrame:
    """Randolph's (2005) free-marginal multirater kappa: (pa - 1/q) / (1 - 1/q).

    Chance agreement 1/q assumes raters free to use any of the q categories equally (the
    Brennan-Prediger coefficient); q is the number of categories on the declared ``scale``, or
    else the number observed (then say so: q changes the value). pa as in ``percent_agreement``.
    H0: kappa_free = 0 vs H1: != 0, t test with Gwet's (2014) standard error. One row.
    """
    ci = check_ci(ci)
    rat = read_ratings(df, unit=unit, rater=rater, value=value, scale=scale)
    return _frame([_randolph_row(rat, ci)])


def _randolph_row(rat: Ratings, ci: float) -> dict[str, Any]:
    q = rat.n_categories
    q_note = (
        f"q = {q} categories from the declared scale"
        if rat.scale_given
        else f"q = {q} observed categories; declare the scale (scale=[...], --scale in the "
        "CLI) if raters could choose more"
    )
    return _gwet_row(
        rat,
        statistic="randolph_kappa",
        kind="bp",
        weights="unweighted",
        ci=ci,
        variant=None,
        method="Randolph's free-marginal multirater kappa (Randolph 2005; = Brennan-Prediger), "
        "chance agreement 1/q; " + _GWET_VAR,
        extra_note=q_note,
    )


def fleiss_kappa(
    df: pl.DataFrame,
    *,
    unit: str = C.UNIT,
    rater: str = C.RATER,
    value: str = C.VALUE,
    ci: float = 0.95,
) -> pl.DataFrame:
    """Fleiss' (1971) kappa for m raters per unit (raters may differ between units).

    kappa = (P_o - P_e) / (1 - P_e), P_e = sum_j p_j^2. When every unit has the same number m of
    ratings, ``statistic_value`` is z = kappa / SE_0 with the variance under H0 of Fleiss, Nee &
    Landis (1979), as R irr::kappam.fleiss reports, and ``p_value`` the two-sided normal p
    (H0: kappa = 0 vs H1: kappa != 0). With unequal numbers of ratings the estimate is Gwet's
    (2014) generalisation (identical when balanced) and the test is a two-sided t test with his
    standard error. The interval always uses Gwet's standard error (irrCAC ``fleiss.kappa.raw``).
    One row; ``note`` warns about low prevalence.
    """
    ci = check_ci(ci)
    rat = read_ratings(df, unit=unit, rater=rater, value=value)
    return _frame([_fleiss_row(rat, ci)])


def _fleiss_row(rat: Ratings, ci: float) -> dict[str, Any]:
    stat = "fleiss_kappa"
    m_per_unit = rat.ratings_per_unit()
    common = {
        C.CI_LEVEL: ci,
        C.N_UNITS: rat.n_units,
        C.N_RATERS: rat.n_raters,
        C.N_VALUES: rat.n_ratings,
    }
    if reason := _single_category_reason(rat):
        return not_applicable(stat, reason=reason, **common, **{C.METHOD: "Fleiss (1971)"})
    res = _gwet_core(
        rat.patterns()[0],
        rat.unit_pattern(),
        np.eye(rat.n_categories),
        "fleiss",
        rat.mean_unit_shares(),
    )
    if not np.isfinite(res["coef"]):
        return not_applicable(stat, reason="chance agreement is 1", **common)
    kappa, n = res["coef"], res["n"]
    low, high = _t_interval(kappa, res["se"], n - 1, ci)
    balanced = m_per_unit.min() == m_per_unit.max()
    if balanced:
        m = int(m_per_unit[0])
        p = rat.category_counts() / (n * m)
        pq = p * (1 - p)
        var0 = 2 * (pq.sum() ** 2 - (pq * (1 - 2 * p)).sum()) / (pq.sum() ** 2 * n * m * (m - 1))
        z = kappa / np.sqrt(var0)
        p_value = float(2 * stats.norm.sf(abs(z)))
        method = (
            f"Fleiss (1971) kappa, {m} ratings per unit; z test with the variance under H0 of "
            "Fleiss, Nee & Landis (1979), two-sided; interval from Gwet's (2014) standard error, "
            "t with n_units - 1 df"
        )
        extras = {C.STATISTIC_VALUE: z}
    else:
        p_value = _two_sided_t(kappa, res["se"], n - 1)
        method = (
            "Fleiss' kappa generalised to unequal numbers of ratings per unit (Gwet 2014; equals "
            "Fleiss 1971 when balanced); two-sided t test and interval from Gwet's standard error"
        )
        extras = {
            C.STATISTIC_VALUE: kappa / res["se"] if res["se"] > 0 else None,
            C.DF1: float(n - 1),
        }
    unbalanced_note = (
        None
        if balanced
        else (
            f"units have {m_per_unit.min()} to {m_per_unit.max()} ratings, so the Fleiss-Nee-"
            "Landis z test (equal numbers) does not apply; Gwet's t test is reported instead"
        )
    )
    return result_row(
        stat,
        **common,
        **extras,
        **{
            C.ESTIMATE: kappa,
            C.CI_LOW: low,
            C.CI_HIGH: high,
            C.P_VALUE: p_value,
            C.METHOD: method + f"; Po = {res['pa']:.4f}, Pe = {res['pe']:.4f}",
            C.NOTE: join_notes([_prevalence_note(rat), unbalanced_note]),
        },
    )


# --- Cohen's kappa for each pair of raters -------------------------------------------------------


def _scalar_square(x: np.ndarray) -> np.ndarray:
    """x ** 2 element by element as Python floats square (libm pow), not as numpy arrays do (x * x).

    The two differ in the last bit now and then; squaring like the one-table-at-a-time code did
    keeps every pair's SE identical to it, which matters where a variance is zero up to rounding
    and its sign decides whether z is defined. Costs microseconds for a few thousand pairs.
    """
    return np.array([v**2 for v in x.tolist()], dtype=np.float64)


def _cohen_tables(
    tables: np.ndarray, w: np.ndarray, proportions: tuple[np.ndarray, ...] | None = None
) -> dict[str, np.ndarray]:
    """Weighted kappa of P q x q tables at once, with asymptotic SEs (Fleiss, Cohen & Everitt 1969).

    tables: (P, q, q) counts; w: (q, q) weights. Returns arrays of shape (P,): kappa, se (the
    large-sample SE, for the interval), se0 (the SE under H0: kappa = 0, for z), n, po, pe; the
    formulas SAS PROC FREQ and statsmodels.stats.inter_rater.cohens_kappa use. kappa, se and se0
    are NaN where chance agreement is 1 (1 - pe <= 1e-12: kappa undefined). proportions: what
    does not depend on w, as ``Ratings.pair_proportions()`` returns it; computed when None.
    """
    n_pairs, q, _ = tables.shape
    if proportions is None:
        n = tables.sum(axis=(1, 2)).astype(np.float64)
        p = tables / n[:, None, None]
        rows, cols = p.sum(axis=2), p.sum(axis=1)  # (P, q) marginals of rater a and rater b
        chance = rows[:, :, None] * cols[:, None, :]
    else:
        n, p, rows, cols, chance = proportions
    po = (w * p).reshape(n_pairs, q * q).sum(axis=1)
    pe = (w * chance).reshape(n_pairs, q * q).sum(axis=1)
    defined = 1 - pe > 1e-12
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = np.where(defined, (po - pe) / (1 - pe), np.nan)
        # batched matrix-vector products, as the per-table w @ cols and rows @ w (same BLAS
        # calls, so the same rounding as computing one table at a time)
        w_row = np.matmul(w, cols[:, :, None])[:, :, 0]
        w_col = np.matmul(rows[:, None, :], w)[:, 0, :]
        w_sum = w_row[:, :, None] + w_col[:, None, :]
        spread = (p * (w - w_sum * (1 - kappa)[:, None, None]) ** 2).reshape(n_pairs, -1)
        denom = n * _scalar_square(1 - pe)
        var = (spread.sum(axis=1) - _scalar_square(kappa - pe * (1 - kappa))) / denom
        spread0 = (chance * (w - w_sum) ** 2).reshape(n_pairs, -1)
        var0 = (spread0.sum(axis=1) - _scalar_square(pe)) / denom
        se = np.where(defined, np.sqrt(np.maximum(var, 0.0)), np.nan)
        se0 = np.where(defined, np.sqrt(np.maximum(var0, 0.0)), np.nan)
    return {"kappa": kappa, "se": se, "se0": se0, "n": n, "po": po, "pe": pe}


def _cohen_frame(rat: Ratings, weights: str, ci: float) -> pl.DataFrame:
    """Cohen's kappa rows, one per rater pair with >= 2 common units (``Ratings.pair_tables``).

    All pairs are computed as (P, q, q) arrays and the frame is built column by column: a
    60-rater study has 1,770 pairs per weighting, too many for one Python row each.
    """
    stat = "cohen_kappa"
    w, over = _weight_matrix(rat, weights)
    a, b, tables = rat.pair_tables()
    if a.size == 0:
        return _frame(
            [
                not_applicable(
                    stat,
                    reason="no pair of raters rated two or more units in common",
                    **{C.VARIANT: weights, C.CI_LEVEL: ci, C.N_RATERS: rat.n_raters},
                )
            ]
        )
    res = _cohen_tables(tables, w, rat.pair_proportions())
    kappa, se, se0 = res["kappa"], res["se"], res["se0"]
    n_ab = res["n"].astype(np.int64)
    defined = np.isfinite(kappa)
    # One rater of the pair used a single category on the common units: p_o = p_e for any
    # weights, so kappa is 0 by construction and the Fleiss-Cohen-Everitt variance is 0 (only
    # rounding noise is left of both). An interval [0, 0] would read as a precisely measured
    # zero, so the row has no interval and no test, and says why.
    single_a = np.count_nonzero(tables.sum(axis=2), axis=1) == 1
    single_b = np.count_nonzero(tables.sum(axis=1), axis=1) == 1
    constant = defined & (single_a | single_b)
    kappa = np.where(constant, 0.0, kappa)
    se = np.where(constant, np.nan, se)
    z_crit = stats.norm.ppf(0.5 + ci / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(defined & ~constant & (se0 > 0), kappa / se0, np.nan)
    p_value = 2 * stats.norm.sf(np.abs(z))
    weight_text = "unweighted" if weights == "unweighted" else f"{weights}-weighted"
    method = (
        f"Cohen's {weight_text} kappa for the pair (Cohen 1960, 1968); Wald interval with the "
        "large-sample SE of Fleiss, Cohen & Everitt (1969), truncated to [-1, 1]; two-sided z "
        "test with the SE under H0"
    )
    tail = join_notes([over if weights != "unweighted" else None, _prevalence_note(rat)])
    tail = f"; {tail}" if tail else ""
    undefined = (
        "both raters used a single category on their common units: chance agreement is 1 and "
        "kappa is undefined"
    )
    labels = np.array([str(r) for r in rat.rater_labels], dtype=object)
    steady = np.where(single_b, labels[b], labels[a])

    def note(n: int, s: float, ok: bool, flat: bool, who: str) -> str:
        if not ok:
            return undefined
        if flat:
            return (
                f"rater {who} gave one value to all {n} units rated by both: observed agreement "
                "equals chance agreement, so kappa is 0 by construction, with no sampling "
                f"variance (no interval, no test){tail}"
            )
        return f"{n} units rated by both; se = {s:.4f}{tail}"

    notes = [
        note(n, s, ok, flat, who)
        for n, s, ok, flat, who in zip(
            n_ab.tolist(),
            se.tolist(),
            defined.tolist(),
            constant.tolist(),
            steady.tolist(),
            strict=True,
        )
    ]
    return _columns_frame(
        a.size,
        {
            C.STATISTIC: stat,
            C.VARIANT: weights,
            C.ESTIMATE: kappa,
            C.CI_LOW: np.maximum(-1.0, kappa - z_crit * se),
            C.CI_HIGH: np.minimum(1.0, kappa + z_crit * se),
            C.CI_LEVEL: ci,
            C.P_VALUE: p_value,
            C.METHOD: method,
            C.APPLICABLE: defined,
            C.NOTE: notes,
            C.N_UNITS: n_ab,
            C.N_RATERS: 2,
            C.N_VALUES: 2 * n_ab,
            C.RATER_A: labels[a],
            C.RATER_B: labels[b],
            C.STATISTIC_VALUE: z,
        },
    )


def cohen_kappa(
    df: pl.DataFrame,
    *,
    unit: str = C.UNIT,
    rater: str = C.RATER,
    value: str = C.VALUE,
    weights: Weights = "unweighted",
    scale: Sequence[Any] | None = None,
    ci: float = 0.95,
) -> pl.DataFrame:
    """Cohen's kappa for every pair of raters with >= 2 units in common (one row per pair).

    kappa_w = (p_o - p_e) / (1 - p_e) with p_o = sum w_ij p_ij, p_e = sum w_ij p_i. p_.j over the
    units both raters rated; ``weights`` "unweighted" (w = identity), "linear" or "quadratic".
    Weights span the declared ``scale`` when given, else the observed categories; ``note`` says
    which. Numeric categories are weighted by value, so an unused category keeps its place
    (R irr and scikit-learn weight the observed levels by position: with 1, 2, 4, 5 observed on a
    1..5 scale they treat 2 -> 4 as one step and give a different kappa). Because linear and
    quadratic weights are affine in the distance, the span itself cancels: for numeric
    categories ``scale`` changes nothing here; for text categories it fixes their order and
    positions. Interval: kappa -/+ z * SE (Fleiss, Cohen & Everitt 1969); test:
    H0 kappa = 0 vs H1 kappa != 0, z = kappa / SE_0 (``statistic_value``). Columns ``rater_a``,
    ``rater_b`` name the pair; ``n_units`` is the number of units both rated.
    """
    ci = check_ci(ci)
    rat = read_ratings(
        df,
        unit=unit,
        rater=rater,
        value=value,
        scale=scale,
        need_order=None if weights == "unweighted" else f"{weights}-weighted kappa",
    )
    return _cohen_frame(rat, weights, ci)


# --- intraclass correlations ---------------------------------------------------------------------


EXACT_BLOCK_RATERS = 16
"""Up to this many raters, the ICC's complete block is found by trying every set of raters."""


def _names(labels: Sequence[Any], limit: int = 8) -> str:
    shown = ", ".join(str(x) for x in list(labels)[:limit])
    return shown + (f", ... ({len(labels)} in all)" if len(labels) > limit else "")


def _largest_complete_block(rat: Ratings) -> tuple[np.ndarray, np.ndarray]:
    """The raters (sorted indices) and units (bool mask) of the largest complete block.

    A complete block is a set S of >= 2 raters and the units every rater in S rated; "largest"
    is most cells |S| x units (ties: more raters, then the first set in bit order). Up to
    ``EXACT_BLOCK_RATERS`` raters every set is tried: each unit's raters as a bit mask, and the
    units rated by all of S are the units whose mask contains S (a superset-sum over 2^m sets,
    O(m 2^m)). With more raters, greedily: drop raters in order of fewest ratings, keeping the
    best block seen (O(units x raters)).
    """
    m = rat.n_raters
    if m <= EXACT_BLOCK_RATERS:
        masks = np.bincount(rat.unit_idx, weights=2.0**rat.rater_idx, minlength=rat.n_units)
        masks = masks.astype(np.int64)
        covered = np.bincount(masks, minlength=1 << m).astype(np.int64)
        for bit in range(m):  # covered[S] = number of units whose rater mask contains S
            view = covered.reshape(-1, 2, 1 << bit)
            view[:, 0, :] += view[:, 1, :]
        sets = np.arange(1 << m, dtype=np.int64)
        size = np.bitwise_count(sets).astype(np.int64)
        cells = np.where(size >= 2, covered * size, -1)
        # most cells, then most raters; argmax keeps the first set in bit order among ties
        best = int(np.argmax(cells * (m + 1) + size))
        raters = np.flatnonzero((best >> np.arange(m)) & 1)
        return raters, (masks & best) == best
    rated = np.zeros((rat.n_units, m), dtype=bool)
    rated[rat.unit_idx, rat.rater_idx] = True
    order = np.argsort(rated.sum(axis=0), kind="stable")  # fewest ratings first
    count = rated.sum(axis=1)  # raters of the current set who rated each unit
    best_cells, best_drop = -1, 0
    for dropped in range(m - 1):  # the set: all raters but the first `dropped` in `order`
        k = m - dropped
        cells = int((count == k).sum()) * k
        if cells > best_cells:
            best_cells, best_drop = cells, dropped
        count -= rated[:, order[dropped]]
    raters = np.sort(order[best_drop:])
    return raters, rated[:, raters].all(axis=1)


def _icc_design(rat: Ratings) -> tuple[np.ndarray, bool, str]:
    """The (n, k) block the ICC is computed on, whether it is two-way, and a note.

    Two-way designs (all six forms): the largest complete block of units x raters (see
    ``_largest_complete_block``), if it holds at least two units and at least half the pairable
    units; units and raters outside it are left out and ``note`` names them (one stray rating by
    an extra rater must not switch the two-way ICCs off). Otherwise the design is "k of many
    raters" (different raters per unit): use the units with the most common number k >= 2 of
    ratings, values in any order, and only the one-way forms apply.
    """
    if rat.category_values is None:
        raise AnalysisError("the ratings are not numbers, so they have no numeric values")
    per_unit = rat.ratings_per_unit()
    pairable = int((per_unit >= 2).sum())
    order = rat.by_unit()  # by unit, then rater: a unit's ratings are consecutive
    unit = rat.unit_idx[order]
    values = rat.category_values[rat.code[order]]
    # A block of >= 2 raters holds at most as many units as its second-busiest rater rated
    # (one rating per unit and rater): when even that bound is short of half the pairable
    # units, no block qualifies and the search (O(units x raters)) is skipped.
    per_rater = np.sort(np.bincount(rat.rater_idx, minlength=rat.n_raters))
    bound = int(per_rater[-2]) if rat.n_raters >= 2 else 0
    n_complete = 0
    if bound >= 2 and bound * 2 >= pairable:
        raters, complete = _largest_complete_block(rat)
        n_complete = int(complete.sum())
    if n_complete >= 2 and n_complete * 2 >= pairable:
        in_set = np.zeros(rat.n_raters, dtype=bool)
        in_set[raters] = True
        # rows: block units in unit order; columns: block raters in rater order
        keep = complete[unit] & in_set[rat.rater_idx[order]]
        k = raters.size
        block = values[keep].reshape(-1, k)
        left_units = pairable - n_complete
        left_ratings = rat.n_ratings - block.size
        if k == rat.n_raters:
            note = f"used the {n_complete} units rated by all {k} raters" + (
                f"; {left_units} incompletely rated unit(s) left out" if left_units else ""
            )
        else:
            out_raters = [rat.rater_labels[i] for i in np.flatnonzero(~in_set)]
            note = (
                f"used the largest complete block: the {n_complete} units rated by all of the "
                f"{k} raters {_names([rat.rater_labels[i] for i in raters])}; left out "
                f"rater(s) {_names(out_raters)}"
                + (f", {left_units} other pairable unit(s)" if left_units else "")
                + f" ({left_ratings} of {rat.n_ratings} ratings)"
            )
        return block, True, note
    ks, freq = np.unique(per_unit[per_unit >= 2], return_counts=True)
    k = int(ks[np.argmax(freq)])
    chosen = per_unit[unit] == k
    # each chosen unit's k values, ascending: sort by (unit, value rank among categories)
    value_rank = np.argsort(np.argsort(rat.category_values, kind="stable"), kind="stable")
    key = unit[chosen] * rat.n_categories + value_rank[rat.code[order][chosen]]
    block = values[chosen][np.argsort(key, kind="stable")].reshape(-1, k)
    note = (
        f"'k of many raters' design ({rat.n_raters} raters, different raters per unit: no set "
        "of raters rated half the pairable units in full): one-way model on the "
        f"{block.shape[0]} units with exactly k = {k} ratings"
    )
    return block, False, note


def _icc_not_applicable(reason: str, ci: float, **common: Any) -> list[dict[str, Any]]:
    """One not-applicable row per ICC form (the six of ``_ICC_FORMS``), each giving ``reason``."""
    return [
        not_applicable(
            "icc",
            reason=reason,
            **common,
            **{C.VARIANT: sf, C.MCGRAW_WONG_NAME: mw, C.CI_LEVEL: ci},
        )
        for sf, mw, _ in _ICC_FORMS
    ]


def _icc_rows(rat: Ratings, ci: float) -> list[dict[str, Any]]:
    block, two_way, design_note = _icc_design(rat)
    n, k = block.shape
    counts = {C.N_UNITS: n, C.N_RATERS: k, C.N_VALUES: n * k}
    common = {C.CI_LEVEL: ci, **counts}
    alpha = 1 - ci
    if n < 2:
        return _icc_not_applicable(
            "ICC needs at least two units rated by the same number of raters", ci, **counts
        )
    grand = block.mean()
    row_means = block.mean(axis=1)
    ss_rows = k * ((row_means - grand) ** 2).sum()
    ss_within = ((block - row_means[:, None]) ** 2).sum()
    msr = ss_rows / (n - 1)
    msw = ss_within / (n * (k - 1))
    out: dict[str, dict[str, float]] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = msr / msw
        df1, df1w = n - 1, n * (k - 1)
        f1l = f1 / stats.f.ppf(1 - alpha / 2, df1, df1w)
        f1u = f1 * stats.f.ppf(1 - alpha / 2, df1w, df1)
        # each pair of forms (single rater, mean of k) shares its F test
        one_way_test = {"F": f1, "df2": df1w, "p": stats.f.sf(f1, df1, df1w)}
        out["ICC1"] = {
            "icc": (msr - msw) / (msr + (k - 1) * msw),
            "lo": (f1l - 1) / (f1l + k - 1),
            "hi": (f1u - 1) / (f1u + k - 1),
            **one_way_test,
        }
        out["ICC1k"] = {
            "icc": (msr - msw) / msr,
            "lo": 1 - 1 / f1l,
            "hi": 1 - 1 / f1u,
            **one_way_test,
        }
        if two_way:
            col_means = block.mean(axis=0)
            ss_cols = n * ((col_means - grand) ** 2).sum()
            mse = (ss_within - ss_cols) / ((n - 1) * (k - 1))
            msc = ss_cols / (k - 1)
            f3 = msr / mse
            dfe = (n - 1) * (k - 1)
            two_way_test = {"F": f3, "df2": dfe, "p": stats.f.sf(f3, df1, dfe)}
            f3l = f3 / stats.f.ppf(1 - alpha / 2, df1, dfe)
            f3u = f3 * stats.f.ppf(1 - alpha / 2, dfe, df1)
            icc2 = (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)
            # Satterthwaite-type df for ICC(A,1) (McGraw & Wong 1996, as in R psych and pingouin)
            fj = msc / mse
            vn = dfe * (k * icc2 * fj + n * (1 + (k - 1) * icc2) - k * icc2) ** 2
            vd = df1 * k**2 * icc2**2 * fj**2 + (n * (1 + (k - 1) * icc2) - k * icc2) ** 2
            v = vn / vd
            f2u = stats.f.ppf(1 - alpha / 2, df1, v)
            f2l = stats.f.ppf(1 - alpha / 2, v, df1)
            lo2 = n * (msr - f2u * mse) / (f2u * (k * msc + (k * n - k - n) * mse) + n * msr)
            hi2 = n * (f2l * msr - mse) / (k * msc + (k * n - k - n) * mse + n * f2l * msr)
            out["ICC2"] = {"icc": icc2, "lo": lo2, "hi": hi2, **two_way_test}
            out["ICC2k"] = {
                "icc": (msr - mse) / (msr + (msc - mse) / n),
                "lo": lo2 * k / (1 + lo2 * (k - 1)),
                "hi": hi2 * k / (1 + hi2 * (k - 1)),
                **two_way_test,
            }
            out["ICC3"] = {
                "icc": (msr - mse) / (msr + (k - 1) * mse),
                "lo": (f3l - 1) / (f3l + k - 1),
                "hi": (f3u - 1) / (f3u + k - 1),
                **two_way_test,
            }
            out["ICC3k"] = {
                "icc": (msr - mse) / msr,
                "lo": 1 - 1 / f3l,
                "hi": 1 - 1 / f3u,
                **two_way_test,
            }
    rows = []
    for sf, mw, model in _ICC_FORMS:
        fields = {**common, C.VARIANT: sf, C.MCGRAW_WONG_NAME: mw}
        method = (
            f"Shrout & Fleiss (1979) {sf} = McGraw & Wong (1996) {mw}: {model}; ANOVA mean "
            "squares, one-sided F test of H0: ICC = 0"
        )
        if sf not in out:
            rows.append(
                not_applicable(
                    "icc",
                    reason=f"{design_note}; two-way ICCs need the same raters on every unit",
                    **fields,
                    **{C.METHOD: method},
                )
            )
            continue
        res = out[sf]
        if not np.isfinite(res["icc"]):
            rows.append(
                not_applicable(
                    "icc",
                    reason=f"{design_note}; the ratings have no variance between or within "
                    "units, so the ICC is undefined",
                    **fields,
                    **{C.METHOD: method},
                )
            )
            continue
        rows.append(
            result_row(
                "icc",
                **fields,
                **{
                    C.ESTIMATE: res["icc"],
                    C.CI_LOW: res["lo"],
                    C.CI_HIGH: res["hi"],
                    C.STATISTIC_VALUE: res["F"],
                    C.DF1: float(n - 1),
                    C.DF2: float(res["df2"]),
                    C.P_VALUE: res["p"],
                    C.METHOD: method + ", F-based interval",
                    C.NOTE: design_note,
                },
            )
        )
    return rows


def icc(
    df: pl.DataFrame,
    *,
    unit: str = C.UNIT,
    rater: str = C.RATER,
    value: str = C.VALUE,
    ci: float = 0.95,
    level: str | None = None,
) -> pl.DataFrame:
    """The six intraclass correlations of Shrout & Fleiss (1979), McGraw & Wong names alongside.

    Rows, in order (``variant`` / ``alternative_name``): ICC1 / ICC(1), ICC2 / ICC(A,1),
    ICC3 / ICC(C,1), ICC1k / ICC(k), ICC2k / ICC(A,k), ICC3k / ICC(C,k). From the two-way ANOVA
    mean squares of an n units x k raters complete table: MSR (units), MSC (raters), MSE
    (residual), MSW (within units). ``statistic_value`` is F (MSR/MSW for ICC1/ICC1k, MSR/MSE
    otherwise) with ``df1``, ``df2``; ``p_value`` tests H0: ICC = 0 vs H1: ICC > 0. Intervals are
    the F-based ones of Shrout & Fleiss / McGraw & Wong (as R psych::ICC and pingouin).

    Missing ratings: if at least half the pairable units were rated by all raters, those units
    are used; otherwise ("k of many raters", e.g. 3 of 30 raters per answer) the one-way forms
    are computed on the units with the most common number k of ratings and the two-way forms
    are not applicable. ``note`` states which units were used. ``level="nominal"`` gives six
    not-applicable rows (an ICC needs numbers).

    Examples
    --------
    Shrout & Fleiss (1979), Table 2: 6 targets rated by the same 4 judges; published ICC1 .17,
    ICC2 .29, ICC3 .71, ICC1k .44, ICC2k .62, ICC3k .91.

    >>> table = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9],
    ...          [6, 2, 4, 7]]
    >>> ratings = pl.DataFrame(
    ...     {"unit": [t for t, row in enumerate(table) for _ in row],
    ...      "rater": [f"judge{j}" for row in table for j in range(len(row))],
    ...      "value": [v for row in table for v in row]}
    ... )
    >>> result = icc(ratings)
    >>> dict(zip(result["variant"], result["estimate"].round(2)))  # doctest: +NORMALIZE_WHITESPACE
    {'ICC1': 0.17, 'ICC2': 0.29, 'ICC3': 0.71,
     'ICC1k': 0.44, 'ICC2k': 0.62, 'ICC3k': 0.91}
    >>> result["alternative_name"].to_list()
    ['ICC(1)', 'ICC(A,1)', 'ICC(C,1)', 'ICC(k)', 'ICC(A,k)', 'ICC(C,k)']
    """
    ci = check_ci(ci)
    if level is not None and check_level(level) == "nominal":
        return _frame(_icc_not_applicable(_ICC_NOMINAL, ci, **{C.LEVEL: level}))
    rat = read_ratings(df, unit=unit, rater=rater, value=value, need_numeric="the ICC")
    frame = _frame(_icc_rows(rat, ci))
    return frame.with_columns(pl.lit(level, dtype=pl.String).alias(C.LEVEL))


# --- everything at once --------------------------------------------------------------------------


def agreement_table(
    df: pl.DataFrame,
    *,
    unit: str = C.UNIT,
    rater: str = C.RATER,
    value: str = C.VALUE,
    level: str,
    scale: Sequence[Any] | None = None,
    boot: int = 1000,
    ci: float = 0.95,
    seed: Seed = None,
) -> pl.DataFrame:
    """Every agreement statistic for one item, with not-applicable rows saying why.

    Rows, in order: Krippendorff's alpha at ``level`` (unit bootstrap, ``boot`` replicates,
    ``seed``); percent agreement; Fleiss' kappa; Randolph's free-marginal kappa; Gwet's AC1;
    Gwet's AC2 linear and quadratic; Cohen's kappa unweighted, linear and quadratic for each rater
    pair; the six ICCs. What applies depends on ``level``:

    - nominal: no weighted statistic (categories are unordered) and no ICC;
    - ordinal: all (ICC treats the ordered codes as numbers, which ``note`` says);
    - interval / ratio: all, but the categorical ones only if the values are categories (a
      declared ``scale`` or at most ``MAX_CATEGORIES_WITHOUT_SCALE`` distinct values).

    ``scale`` lists the possible categories, lowest to highest: weighted kappa, AC2 and the q of
    AC1 and Randolph then span the full scale, not only what was observed. The ``level`` column
    repeats ``level`` on every row. Raises ``AnalysisError`` for bad input (see ``read_ratings``).
    """
    check_level(level)
    ci = check_ci(ci)
    rat = _read_at_level(df, unit=unit, rater=rater, value=value, level=level, scale=scale)
    rows: list[dict[str, Any] | pl.DataFrame] = list(
        _alpha_rows(rat, level=level, boot=boot, ci=ci, seed=seed, bootstrap="units")
    )
    categorical_reason = None
    continuous = rat.n_categories > MAX_CATEGORIES_WITHOUT_SCALE and not rat.scale_given
    if level in ("interval", "ratio") and continuous:
        categorical_reason = (
            f"the {level} values look continuous ({rat.n_categories} distinct values): "
            "kappa-type statistics need categories; declare the scale (scale=[...], --scale in "
            "the CLI) if they are categories"
        )
    categorical = [
        ("percent_agreement", None),
        ("fleiss_kappa", None),
        ("randolph_kappa", None),
        ("gwet_ac1", None),
        ("gwet_ac2", "linear"),
        ("gwet_ac2", "quadratic"),
        ("cohen_kappa", "unweighted"),
        ("cohen_kappa", "linear"),
        ("cohen_kappa", "quadratic"),
    ]
    for stat, variant in categorical:
        na_fields = {C.VARIANT: variant, C.CI_LEVEL: ci, C.N_RATERS: rat.n_raters}
        if categorical_reason:
            rows.append(not_applicable(stat, reason=categorical_reason, **na_fields))
        elif variant in ("linear", "quadratic") and level == "nominal":
            rows.append(
                not_applicable(
                    stat,
                    reason=f"{variant} weights need ordered categories; the item is nominal",
                    **na_fields,
                )
            )
        elif stat == "percent_agreement":
            rows.append(_percent_row(rat, ci))
        elif stat == "fleiss_kappa":
            rows.append(_fleiss_row(rat, ci))
        elif stat == "randolph_kappa":
            rows.append(_randolph_row(rat, ci))
        elif stat in ("gwet_ac1", "gwet_ac2"):
            rows.append(_ac_row(rat, variant or "unweighted", ci))
        else:  # the pair tables are built once (cached on rat) for the three weightings
            rows.append(_cohen_frame(rat, variant or "unweighted", ci))
    if level == "nominal":
        rows.extend(_icc_not_applicable(_ICC_NOMINAL, ci))
    elif not rat.numeric:
        rows.extend(
            _icc_not_applicable(
                "the ordinal categories are text; the ICC needs numeric ratings", ci
            )
        )
    else:
        icc_rows = _icc_rows(rat, ci)
        if level == "ordinal":
            for row in icc_rows:
                row[C.NOTE] = join_notes(
                    [row.get(C.NOTE), "treats the ordinal codes as interval numbers"]
                )
        rows.extend(icc_rows)
    return _stack(rows).with_columns(pl.lit(level, dtype=pl.String).alias(C.LEVEL))


FIRST, REPEAT = "live", "repeat"
"""The two occasions of a test-retest pair, as a Clinval export's ``phase`` column names them."""


def intra_rater_agreement(
    df: pl.DataFrame,
    *,
    unit: str = C.ANSWER,
    rater: str = C.RATER,
    value: str = C.VALUE,
    phase: str = C.PHASE,
    level: str,
    scale: Sequence[Any] | None = None,
    boot: int = 1000,
    ci: float = 0.95,
    seed: Seed = None,
) -> pl.DataFrame:
    """Intra-rater (test-retest) agreement for one item: each rater's first rating of a unit
    against their repeat of it after a washout, pooled over raters.

    ``df``: long ratings of one item with a ``phase`` column, "live" for the first rating and
    "repeat" for the second (other phases and rows without a pair are left out). Each (rater,
    unit) with both ratings is one unit of ``agreement_table``, and the two occasions play the
    two "raters" (``rater_a`` "live", ``rater_b`` "repeat" in Cohen's kappa rows), so every
    statistic there reads as the agreement of a rater with themselves: Krippendorff's alpha at
    ``level`` (bootstrap over the pairs), Cohen's kappa, the ICCs, and so on. Columns:
    ``agreement_table``'s, then ``raters_pooled`` (raters with at least one pair). ``n_units``
    counts pairs. Raises ``AnalysisError`` for a missing column or fewer than one pair.
    """
    require_columns(df, (unit, rater, value, phase))
    both = (
        df.filter(pl.col(phase).is_in([FIRST, REPEAT]) & pl.col(value).is_not_null())
        .group_by(rater, unit)
        .agg(pl.col(phase).n_unique().alias("_occasions"), pl.len().alias("_n"))
    )
    twice = both.filter(pl.col("_n") > pl.col("_occasions"))
    if twice.height:
        who, what = twice.row(0)[:2]
        raise AnalysisError(
            f"rater '{who}' has more than one {FIRST} or {REPEAT} rating of unit '{what}'"
        )
    paired = both.filter(pl.col("_occasions") == 2).select(rater, unit)
    if paired.is_empty():
        raise AnalysisError(
            f"no rater rated a unit both in phase '{FIRST}' and in phase '{REPEAT}': "
            "intra-rater agreement needs repeats"
        )
    pairs = (
        df.join(paired, on=[rater, unit], how="semi")
        .filter(pl.col(phase).is_in([FIRST, REPEAT]))
        .select(
            pl.concat_str([pl.col(rater).cast(pl.String), pl.col(unit).cast(pl.String)],
                          separator="\x1f").alias("_pair"),
            pl.col(phase).alias("_occasion"),
            pl.col(value),
        )
    )  # fmt: skip
    table = agreement_table(
        pairs,
        unit="_pair",
        rater="_occasion",
        value=value,
        level=level,
        scale=scale,
        boot=boot,
        ci=ci,
        seed=seed,
    )
    return table.with_columns(
        pl.lit(paired.get_column(rater).n_unique(), dtype=pl.Int64).alias("raters_pooled")
    )
