"""Blinding indices from raters' guesses of each answer's source.

When the protocol asks raters "who wrote this answer?" (``llm``, ``clinician`` or ``dont_know``),
two indices say whether the blind held:

- **Bang's index** (Bang, Ni & Davis 2004, Controlled Clinical Trials 25:143), one per arm:
  BI = (correct - incorrect) / all guesses about that arm's answers, in [-1, 1]. 0 is random
  guessing (or everyone said "don't know"), 1 is complete unblinding, -1 is everyone guessing the
  other source. Blinding is usually called successful when -0.2 <= BI <= 0.2.
- **James' index** (James, Bloch, Lee, Kraemer & Fuller 1996, Stat Med 15:1421), one overall:
  in [0, 1]; 1 is complete blinding (all "don't know"), 0.5 random guessing, 0 complete
  unblinding. Unblinding is claimed when the upper confidence limit is below 0.5.

Both use the large-sample standard errors of their papers, as implemented in R package ``BI``
(Schwartz & Mercaldo); normal-approximation intervals, two-sided by default (Bang 2004 prefers the
one-sided interval for its index: pass ``alternative="greater"`` or ``"less"``).

Input: one row per guess, with the answer's arm and the guess. ``kind`` maps an arm to the guess
that is correct for it (e.g. ``{"gpt-4o-2024-08": "llm", "gp_panel": "clinician"}``); without it
the arm values are themselves the source labels.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl
from scipy import stats

from analysis._common import check_ci, not_applicable, require_columns, result_frame, result_row
from analysis.columns import (
    ARM,
    CI_HIGH,
    CI_LEVEL,
    CI_LOW,
    CORRECT,
    DONT_KNOW_COUNT,
    ESTIMATE,
    INCORRECT,
    METHOD,
    N_GUESSES,
    NOTE,
    P_VALUE,
    SOURCE,
    SOURCES,
    STD_ERROR,
    VARIANT,
)
from analysis.errors import AnalysisError

GUESS = "guess"
DONT_KNOW = "dont_know"
ALTERNATIVES = ("two-sided", "greater", "less")

# James et al. (1996) default cell weights: correct 0, incorrect 0.5 ("don't know" counts fully
# towards blinding through Pdk, not through these weights).
_JAMES_WEIGHTS = np.array([[0.0, 0.5], [0.5, 0.0]])


def _guesses(
    df: pl.DataFrame, *, arm: str, guess: str, kind: Mapping[str, str] | None, dont_know: str
) -> pl.DataFrame:
    """Columns arm, source (the correct guess for the arm) and guess; null guesses dropped."""
    require_columns(df, (arm, guess))
    frame = df.select(
        pl.col(arm).cast(pl.String).alias("arm"), pl.col(guess).cast(pl.String).alias("guess")
    ).filter(pl.col("guess").is_not_null())
    if frame["arm"].null_count():
        raise AnalysisError(f"column '{arm}' has empty values; every guess needs its answer's arm")
    if kind is None:
        frame = frame.with_columns(pl.col("arm").alias(SOURCE))
    else:
        missing = sorted(set(frame["arm"].unique().to_list()) - set(kind))
        if missing:
            raise AnalysisError(f"arm '{missing[0]}' has no source kind in the mapping given")
        frame = frame.with_columns(
            pl.col("arm").replace_strict(dict(kind), return_dtype=pl.String).alias(SOURCE)
        )
    sources = set(frame[SOURCE].unique().to_list())
    allowed = sources | {dont_know}
    bad = frame.filter(~pl.col("guess").is_in(sorted(allowed)))
    if bad.height:
        raise AnalysisError(
            f"guess '{bad['guess'][0]}' is neither a source ({', '.join(sorted(sources))}) "
            f"nor '{dont_know}'"
        )
    return frame


def _z(ci: float, alternative: str) -> float:
    ci = check_ci(ci)
    if alternative not in ALTERNATIVES:
        raise AnalysisError(
            f"alternative must be one of {', '.join(ALTERNATIVES)}, got '{alternative}'"
        )
    tail = (1 - ci) / 2 if alternative == "two-sided" else 1 - ci
    return float(stats.norm.isf(tail))


def _interval(
    est: float, se: float, z: float, alternative: str, lo: float, hi: float
) -> tuple[float, float]:
    low, high = est - z * se, est + z * se
    if alternative == "greater":
        high = hi
    elif alternative == "less":
        low = lo
    return low, high


def bang_index(
    df: pl.DataFrame,
    *,
    arm: str = ARM,
    guess: str = GUESS,
    kind: Mapping[str, str] | None = None,
    dont_know: str = DONT_KNOW,
    ci: float = 0.95,
    alternative: str = "two-sided",
) -> pl.DataFrame:
    """Bang's blinding index for each arm, with a normal-approximation interval.

    For the guesses about one arm's answers (n of them: c correct, i incorrect, d "don't know"):
    BI = (c - i) / n = (2 c / (c + i) - 1) (c + i) / n, and
    SE = sqrt((p1 (1 - p1) + p2 (1 - p2) + 2 p1 p2) / n) with p1 = c/n, p2 = i/n (the
    multinomial variance of p1 - p2; Bang et al. 2004). Interval: BI +- z SE; ``greater`` gives
    [BI - z SE, 1], ``less`` gives [-1, BI + z SE], with z for the one-sided level ``ci``.

    Parameters
    ----------
    df : one row per guess (N rows), columns ``arm`` and ``guess``; null guesses are left out.
    kind : arm -> the guess that is correct for it; default: the arm value itself.
    dont_know : the label of "don't know".
    ci, alternative : confidence level and ``two-sided`` | ``greater`` | ``less``.

    Returns
    -------
    One row per arm: statistic ``bang_index``, variant = the arm, ``estimate``, ``std_error``,
    interval, ``p_value`` null (read the interval: one that excludes 0 suggests unblinding, or
    opposite guessing when below 0), counts ``correct``, ``incorrect``, ``dont_know_count``,
    ``n_guesses``, and ``arm``.
    """
    z = _z(ci, alternative)
    frame = _guesses(df, arm=arm, guess=guess, kind=kind, dont_know=dont_know)
    per_arm = (
        frame.group_by("arm", SOURCE)
        .agg(
            (pl.col("guess") == pl.col(SOURCE)).sum().alias(CORRECT),
            ((pl.col("guess") != pl.col(SOURCE)) & (pl.col("guess") != dont_know))
            .sum()
            .alias(INCORRECT),
            (pl.col("guess") == dont_know).sum().alias(DONT_KNOW_COUNT),
            pl.len().alias(N_GUESSES),
        )
        .sort("arm")
    )
    method = (
        f"Bang, Ni & Davis (2004) blinding index, (correct - incorrect) / n; normal-approximation "
        f"interval ({ci:.0%}, {alternative})"
    )
    rows: list[dict[str, Any]] = []
    for r in per_arm.rows(named=True):
        n = r[N_GUESSES]
        p1, p2 = r[CORRECT] / n, r[INCORRECT] / n
        est = p1 - p2
        se = float(np.sqrt((p1 * (1 - p1) + p2 * (1 - p2) + 2 * p1 * p2) / n))
        low, high = _interval(est, se, z, alternative, -1.0, 1.0)
        note = None
        if r[CORRECT] + r[INCORRECT] == 0:
            note = "every guess was 'don't know'"
        rows.append(
            result_row(
                "bang_index",
                **{
                    VARIANT: r["arm"],
                    ESTIMATE: est,
                    CI_LOW: low,
                    CI_HIGH: high,
                    CI_LEVEL: ci,
                    P_VALUE: None,
                    METHOD: method,
                    NOTE: note,
                    STD_ERROR: se,
                    ARM: r["arm"],
                    SOURCE: r[SOURCE],
                    CORRECT: r[CORRECT],
                    INCORRECT: r[INCORRECT],
                    DONT_KNOW_COUNT: r[DONT_KNOW_COUNT],
                    N_GUESSES: n,
                },
            )
        )
    if not rows:
        rows.append(
            not_applicable("bang_index", reason="no guesses", **{VARIANT: None, CI_LEVEL: ci})
        )
    return result_frame(rows)


def james_from_table(
    table: np.ndarray, *, weights: np.ndarray | None = None
) -> tuple[float, float]:
    """James' blinding index and its standard error from a 3 x 2 table of counts.

    ``table[g, t]``: rows are the guess (source 1, source 2, don't know), columns the true source
    (source 1, source 2). ``weights`` (2 x 2) for correct/incorrect cells, default
    [[0, 0.5], [0.5, 0]]. Formula of James et al. (1996), eqs. as in R ``BI``:
    Pdo = sum w P / (1 - Pdk); Pde = sum w P_g. (P_.t - P_dk,t) / (1 - Pdk)^2;
    Kd = (Pdo - Pde) / Pde; BI = (1 + Pdk + (1 - Pdk) Kd) / 2, with its delta-method variance.
    When every guess is "don't know" BI = 1 with SE 0 (James 1996, p. 1425).
    Returns (nan, nan) where the index is undefined (Pde = 0).

    Examples
    --------
    Houweling et al. (2014), Table 2, site investigators of the SOX trial; R package ``BI``
    prints James' index 0.896 with SE 0.011.

    >>> investigators = np.array([[48, 22], [4, 30], [330, 319]])
    >>> [round(x, 3) for x in james_from_table(investigators)]
    [0.896, 0.011]
    >>> james_from_table(np.array([[0, 0], [0, 0], [10, 12]]))
    (1.0, 0.0)
    """
    x = np.asarray(table, dtype=float)
    if x.shape != (3, 2):
        raise AnalysisError(f"James' index needs a 3 x 2 table, got shape {x.shape}")
    w = _JAMES_WEIGHTS if weights is None else np.asarray(weights, dtype=float)
    total = x.sum()
    if total == 0:
        return (float("nan"), float("nan"))
    if not x[:2].any() and (x[2] > 0).all():
        return (1.0, 0.0)
    p = x / total
    pdk = p[2].sum()
    row = p[:2].sum(axis=1)  # P_g. over guesses of a source
    col = p.sum(axis=0) - p[2]  # P_.t minus its don't-know part
    expected = w * np.outer(row, col)
    pde_raw = expected.sum()
    if pde_raw == 0 or pdk == 1:
        return (float("nan"), float("nan"))
    pdo = (w * p[:2]).sum() / (1 - pdk)
    pde = pde_raw / (1 - pdk) ** 2
    kd = (pdo - pde) / pde
    est = (1 + pdk + (1 - pdk) * kd) / 2
    # extra[g, t] = sum_r (w[r, t] P_r. + w[g, r] col_r)
    extra = (w * row[:, None]).sum(axis=0)[None, :] + (w * col[None, :]).sum(axis=1)[:, None]
    num = (p[:2] * (1 - pdk) ** 2 * ((1 - pdk) * w - (1 + kd) * extra) ** 2).sum()
    v1 = num / (4 * pde_raw**2)
    v2 = pdk * (1 - pdk) - (1 - pdk) * (1 + kd) * (pdk + (1 - pdk) * (1 + kd) / 4)
    var = (v1 + v2) / total
    return (float(est), float(np.sqrt(var)) if var >= 0 else float("nan"))


def james_index(
    df: pl.DataFrame,
    *,
    arm: str = ARM,
    guess: str = GUESS,
    kind: Mapping[str, str] | None = None,
    dont_know: str = DONT_KNOW,
    ci: float = 0.95,
    alternative: str = "two-sided",
) -> pl.DataFrame:
    """James' blinding index over all guesses, with a normal-approximation interval.

    Arms are pooled by their source kind, which must give exactly two sources (e.g. ``llm`` and
    ``clinician``); the 3 x 2 table of guess by true source goes to ``james_from_table``.
    Interval: BI +- z SE (two-sided); ``greater`` -> [BI - z SE, 1], ``less`` -> [0, BI + z SE].
    Reading: an upper limit below 0.5 claims unblinding (James et al. 1996).

    Returns
    -------
    One row: statistic ``james_index``, variant null, ``estimate``, ``std_error``, interval,
    ``p_value`` null, ``n_guesses``, ``sources`` (the two sources, in table order).
    """
    z = _z(ci, alternative)
    frame = _guesses(df, arm=arm, guess=guess, kind=kind, dont_know=dont_know)
    sources = sorted(frame[SOURCE].unique().to_list())
    statistic = "james_index"
    base: dict[str, Any] = {
        VARIANT: None,
        CI_LEVEL: ci,
        N_GUESSES: frame.height,
        SOURCES: ", ".join(sources),
    }
    if len(sources) != 2:
        return result_frame(
            [
                not_applicable(
                    statistic,
                    reason=f"James' index needs guesses about exactly two sources, got "
                    f"{len(sources)}",
                    **base,
                )
            ]
        )
    labels = [*sources, dont_know]
    table = np.zeros((3, 2))
    for g, s, count in frame.group_by("guess", SOURCE).len().iter_rows():
        table[labels.index(g), sources.index(s)] = count
    est, se = james_from_table(table)
    if not np.isfinite(est):
        return result_frame(
            [not_applicable(statistic, reason="James' index is undefined for these counts", **base)]
        )
    low, high = _interval(est, se, z, alternative, 0.0, 1.0)
    return result_frame(
        [
            result_row(
                statistic,
                **base,
                **{
                    ESTIMATE: est,
                    CI_LOW: low,
                    CI_HIGH: high,
                    P_VALUE: None,
                    METHOD: "James et al. (1996) blinding index, weights correct 0 / incorrect "
                    f"0.5 / don't know 1; normal-approximation interval ({ci:.0%}, {alternative})",
                    NOTE: None,
                    STD_ERROR: se,
                },
            )
        ]
    )
