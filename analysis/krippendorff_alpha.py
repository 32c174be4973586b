"""Krippendorff's alpha at a declared level of measurement, with a bootstrap interval over units
(or Hayes & Krippendorff's KALPHA bootstrap of pairable values).

Input and output as in ``analysis.agreement``: a long polars frame, one row per rating; a tidy
frame of ``RESULT_SCHEMA``. Alpha has no p-value; its row carries a percentile bootstrap interval
and, in ``note``, the bootstrap probabilities that alpha lies below Krippendorff's 0.667 and 0.800.

References
----------
Krippendorff K (2011). Computing Krippendorff's alpha-reliability. Annenberg School, U Penn.
Hayes AF, Krippendorff K (2007). Answering the call for a standard reliability measure for coding
data. Communication Methods and Measures 1:77-89.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import polars as pl

from analysis import columns as C
from analysis._agreement_common import (
    agreement_frame,
    category_text,
    prevalence_note,
    read_at_level,
)
from analysis._common import check_ci, join_notes, not_applicable, result_row
from analysis._pivot import Ratings, check_level, distinct_rows
from analysis._random import BOOT_CHUNK, Seed, resolve_seed, seed_text
from analysis.errors import AnalysisError


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


def alpha_rows(
    rat: Ratings,
    *,
    level: str,
    boot: int,
    ci: float,
    seed: Seed,
    bootstrap: str,
) -> list[dict[str, Any]]:
    """The one row of ``krippendorff_alpha`` for ratings already read (options as there)."""
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
        only = category_text(rat.categories[int(np.argmax(n_v))])
        return [
            not_applicable(
                stat,
                reason=f"alpha is undefined: every pairable value is {only}, so there is no "
                "expected disagreement to compare with",
                **common,
                **{C.METHOD: method},
            )
        ]
    prevalence = prevalence_note(rat)
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
    rat = read_at_level(df, unit=unit, rater=rater, value=value, level=level, scale=scale)
    return agreement_frame(
        alpha_rows(rat, level=level, boot=boot, ci=ci, seed=seed, bootstrap=bootstrap)
    )
