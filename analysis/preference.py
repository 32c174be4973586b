"""Pairwise preference: win/tie/loss shares, Bradley-Terry abilities, position (left/right) bias.

Input is one row per comparison: the two competitors shown (columns ``a`` and ``b``, e.g. the arm
of each answer) and the ``winner`` (the value of ``a``, the value of ``b``, or the tie label).
Every function returns a tidy polars frame, one row per estimate, with ``RESULT_COLUMNS`` first
and the parameters used after them (see ``analysis.columns``).

Conventions, stated once:

- **Ties** count as half a win to each side in Bradley-Terry (the convention of Rao & Kupper's
  limit and of FastChat's Arena ratings); win/tie/loss shares report ties separately.
- **Identification** of Bradley-Terry: one competitor, the ``reference``, is fixed at log-ability
  0 (as R ``BradleyTerry2::BTm`` does with its first factor level); every other estimate is a log
  odds of beating the reference.
- **Intervals**: Wilson score intervals for shares (one share at a time, not simultaneous);
  percentile bootstrap over comparisons for Bradley-Terry (Wald from the observed information when
  ``boot=0``).

References: Bradley & Terry (1952) Biometrika 39:324; Hunter (2004) Ann Stat 32:384 (existence of
the MLE: the "i beat j" graph must be strongly connected); Agresti (2002) Categorical Data
Analysis, 2nd ed., sec. 10.6; Wilson (1927) JASA 22:209.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
from scipy import stats

from analysis._common import (
    check_ci,
    join_notes,
    not_applicable,
    require_columns,
    result_frame,
    result_row,
    wilson_interval_ci,
)
from analysis._random import BOOT_CHUNK, Seed, resolve_seed, seed_text
from analysis.columns import (
    CI_HIGH,
    CI_LEVEL,
    CI_LOW,
    COMPETITOR,
    ESTIMATE,
    FIRST_WINS,
    LOSSES,
    METHOD,
    N_COMPARISONS,
    NOTE,
    OPPONENT,
    P_VALUE,
    REFERENCE,
    SECOND_WINS,
    SEED,
    STD_ERROR,
    TIES,
    VARIANT,
    WIN_PROBABILITY_VS_REFERENCE,
    WINS,
)
from analysis.errors import AnalysisError

_FIRST_LABELS = frozenset({"first", "left", "1", "a"})
_SECOND_LABELS = frozenset({"second", "right", "2", "b"})


# --- comparisons --------------------------------------------------------------------------------


def _comparisons(
    df: pl.DataFrame, *, a: str, b: str, winner: str, tie: str
) -> tuple[pl.DataFrame, int]:
    """Validated comparisons as columns a, b (strings) and outcome in {"a", "b", "tie"}.

    Rows whose winner is null (not yet rated) are dropped and counted.
    """
    require_columns(df, (a, b, winner))
    frame = df.select(
        pl.col(a).cast(pl.String).alias("a"),
        pl.col(b).cast(pl.String).alias("b"),
        pl.col(winner).cast(pl.String).alias("w"),
    )
    dropped = frame.filter(pl.col("w").is_null()).height
    frame = frame.filter(pl.col("w").is_not_null())
    if frame.filter(pl.col("a").is_null() | pl.col("b").is_null()).height:
        raise AnalysisError(f"columns '{a}' and '{b}' must name both competitors on every row")
    same = frame.filter(pl.col("a") == pl.col("b"))
    if same.height:
        raise AnalysisError(
            f"{same.height} comparison(s) put '{same['a'][0]}' against itself "
            f"(columns '{a}' and '{b}' must differ)"
        )
    frame = frame.with_columns(
        pl.when(pl.col("w") == tie)
        .then(pl.lit("tie"))
        .when(pl.col("w") == pl.col("a"))
        .then(pl.lit("a"))
        .when(pl.col("w") == pl.col("b"))
        .then(pl.lit("b"))
        .otherwise(None)
        .alias("outcome")
    )
    bad = frame.filter(pl.col("outcome").is_null())
    if bad.height:
        raise AnalysisError(
            f"{bad.height} row(s) have a winner that is neither the '{a}' value, the '{b}' value "
            f"nor '{tie}', e.g. '{bad['w'][0]}' for {bad['a'][0]} vs {bad['b'][0]}"
        )
    return frame.select("a", "b", "outcome"), dropped


def _competitors(comparisons: pl.DataFrame) -> list[str]:
    """Every competitor of ``_comparisons`` output, in Python's sorted order.

    The distinct names come from polars: listing every row's names in Python first cost ~10 ms
    per 100,000 comparisons.
    """
    return sorted(pl.concat([comparisons["a"], comparisons["b"]]).unique().to_list())


def _oriented_counts(comparisons: pl.DataFrame) -> pl.DataFrame:
    """Per ordered (competitor, opponent): wins, ties, losses of competitor against opponent."""
    a_view = comparisons.select(
        pl.col("a").alias(COMPETITOR),
        pl.col("b").alias(OPPONENT),
        (pl.col("outcome") == "a").alias("win"),
        (pl.col("outcome") == "tie").alias("tie"),
        (pl.col("outcome") == "b").alias("loss"),
    )
    b_view = comparisons.select(
        pl.col("b").alias(COMPETITOR),
        pl.col("a").alias(OPPONENT),
        (pl.col("outcome") == "b").alias("win"),
        (pl.col("outcome") == "tie").alias("tie"),
        (pl.col("outcome") == "a").alias("loss"),
    )
    return (
        pl.concat([a_view, b_view])
        .group_by(COMPETITOR, OPPONENT)
        .agg(
            pl.col("win").sum().alias(WINS),
            pl.col("tie").sum().alias(TIES),
            pl.col("loss").sum().alias(LOSSES),
        )
        .sort(COMPETITOR, OPPONENT)
    )


def win_rates(
    df: pl.DataFrame,
    *,
    a: str = "a",
    b: str = "b",
    winner: str = "winner",
    tie: str = "tie",
    focus: str | None = None,
    ci: float = 0.95,
) -> pl.DataFrame:
    """Win, tie and loss shares for every pair of competitors, with Wilson intervals.

    Parameters
    ----------
    df : one row per comparison (n rows), columns ``a``, ``b`` and ``winner``.
    a, b : columns naming the two competitors of each comparison (any order).
    winner : column holding the ``a`` value, the ``b`` value, or ``tie``; null rows are left out.
    focus : a competitor (e.g. the LLM arm) from whose side every pair that involves it is
        reported; other pairs, and all pairs when ``None``, from the side of the competitor
        that sorts first. A focus that is not a competitor raises ``AnalysisError``.
    ci : two-sided confidence level of each interval.

    Returns
    -------
    Three rows per pair (variants ``win``, ``tie``, ``loss``) with the shares of all comparisons
    of ``competitor`` against ``opponent``, a Wilson (1927) score interval for each share (one
    share at a time, not a simultaneous multinomial region), and the counts ``wins``, ``ties``,
    ``losses``, ``n_comparisons``. The ``win`` row's ``p_value`` is the two-sided exact binomial
    (sign) test among non-tied comparisons, H0: P(competitor wins | not a tie) = 1/2,
    H1: != 1/2; the ``tie`` and ``loss`` rows have none.

    Examples
    --------
    >>> df = pl.DataFrame({"a": ["llm", "llm", "doc"], "b": ["doc", "doc", "llm"],
    ...                    "winner": ["llm", "tie", "llm"]})
    >>> win_rates(df, focus="llm").select("variant", "estimate").rows()
    [('win', 0.6666666666666666), ('tie', 0.3333333333333333), ('loss', 0.0)]
    """
    check_ci(ci)
    comparisons, dropped = _comparisons(df, a=a, b=b, winner=winner, tie=tie)
    counts = _oriented_counts(comparisons)
    if focus is not None and comparisons.height:
        competitors = _competitors(comparisons)
        if focus not in competitors:
            raise AnalysisError(
                f"focus '{focus}' is not a competitor; competitors are: " + ", ".join(competitors)
            )
    rows: list[dict[str, Any]] = []
    seen: set[frozenset[str]] = set()
    ordered = counts.rows(named=True)
    # Report each unordered pair once, from the focus side if it is in the pair.
    ordered.sort(key=lambda r: (r[COMPETITOR] != focus, r[COMPETITOR], r[OPPONENT]))
    method = f"share of comparisons; Wilson score interval ({ci:.0%})"
    sign_test = "; exact binomial sign test of wins vs losses"
    note = f"{dropped} comparison(s) without a winner left out" if dropped else None
    for row in ordered:
        pair = frozenset((row[COMPETITOR], row[OPPONENT]))
        if pair in seen:
            continue
        seen.add(pair)
        wins, ties, losses = row[WINS], row[TIES], row[LOSSES]
        n = wins + ties + losses
        decided = wins + losses
        sign_p = (
            float(stats.binomtest(wins, decided, 0.5, alternative="two-sided").pvalue)
            if decided
            else None
        )
        for variant, count in (("win", wins), ("tie", ties), ("loss", losses)):
            low, high = wilson_interval_ci(count, n, ci)
            rows.append(
                result_row(
                    "win_rate",
                    **{
                        VARIANT: variant,
                        ESTIMATE: count / n,
                        CI_LOW: low,
                        CI_HIGH: high,
                        CI_LEVEL: ci,
                        P_VALUE: sign_p if variant == "win" else None,
                        METHOD: method + (sign_test if variant == "win" else ""),
                        NOTE: note,
                        COMPETITOR: row[COMPETITOR],
                        OPPONENT: row[OPPONENT],
                        WINS: wins,
                        TIES: ties,
                        LOSSES: losses,
                        N_COMPARISONS: n,
                    },
                )
            )
    if not rows:
        rows.append(
            not_applicable(
                "win_rate", reason="no comparisons with a winner", **{VARIANT: "win", CI_LEVEL: ci}
            )
        )
    return result_frame(rows)


# --- Bradley-Terry ------------------------------------------------------------------------------


def _mle_exists(
    wins_first: np.ndarray, wins_second: np.ndarray, incidence: np.ndarray
) -> np.ndarray:
    """Hunter (2004) Assumption 1, for a batch of B data sets: is the directed graph "x beat y at
    least once" (a tie counts both ways) strongly connected? If not, some log-abilities run off
    to +-infinity and the MLE does not exist.

    ``wins_first`` / ``wins_second``: (B, P) booleans, the first / second competitor of pair p
    has some (half) win; ``incidence``: (P, K), +1 at the first and -1 at the second competitor
    of each pair. Returns (B,) booleans. Transitive closure by repeated boolean squaring: K is
    small (the arms of a study), so the dense (B, K, K) products are cheap.
    """
    first = (incidence > 0).astype(float)
    second = (incidence < 0).astype(float)
    k = incidence.shape[1]
    edges = np.einsum("bp,px,py->bxy", wins_first.astype(float), first, second)
    edges += np.einsum("bp,py,px->bxy", wins_second.astype(float), first, second)
    reach = (edges > 0) | np.eye(k, dtype=bool)
    for _ in range(max(1, int(np.ceil(np.log2(k))))):
        reach = (reach.astype(float) @ reach.astype(float)) > 0
    return reach.all(axis=(1, 2))


def _fit_bt(
    incidence: np.ndarray,
    w: np.ndarray,
    n: np.ndarray,
    ref: int,
    start: np.ndarray | None = None,
    tol: float = 1e-10,
    max_iter: int = 100,
) -> tuple[np.ndarray, np.ndarray]:
    """Newton-Raphson maximum likelihood of Bradley-Terry log-abilities for a batch of B data
    sets that share the same P pairs of K competitors (the data, or its bootstrap replicates).

    ``incidence``: (P, K), +1 at the first and -1 at the second competitor of each pair;
    ``w``: (B, P) wins of the first over the second (a tie adds 1/2); ``n``: (B, P) comparisons.
    ``theta[:, ref]`` is fixed at 0. Returns theta (B, K) and the observed information of the K-1
    free log-abilities (B, K-1, K-1). The log-likelihood is concave, so Newton with step halving
    converges from any start when the MLE exists (the caller checks that first).
    """
    b, k = w.shape[0], incidence.shape[1]
    free = np.array([c for c in range(k) if c != ref])
    design = incidence[:, free]  # (P, K-1)
    beta = np.zeros((b, k - 1)) if start is None else np.tile(start[free], (b, 1))

    def loglik(x: np.ndarray, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        d = x @ design.T  # (B, P)
        # w log s(d) + (n - w) log s(-d), written stably
        return np.sum(w[rows] * d - n[rows] * np.logaddexp(0.0, d), axis=1)

    def grad_info(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = 1.0 / (1.0 + np.exp(-(x @ design.T)))
        g = (w - n * p) @ design  # (B, K-1)
        info = np.einsum("pk,bp,pl->bkl", design, n * p * (1 - p), design)
        return g, info

    current = loglik(beta)
    for _ in range(max_iter):
        g, info = grad_info(beta)
        step = np.linalg.solve(info, g[..., None])[..., 0]
        scale = np.ones(b)
        trial = beta + step
        value = loglik(trial)
        worse = value < current - 1e-12
        while worse.any() and scale[worse].min() > 1e-8:
            scale[worse] /= 2
            trial[worse] = beta[worse] + scale[worse, None] * step[worse]
            value[worse] = loglik(trial[worse], worse)
            worse = value < current - 1e-12
        moved = float(np.max(np.abs(scale[:, None] * step)))
        beta, current = trial, value
        if moved < tol:
            break
    _, info = grad_info(beta)
    theta = np.zeros((b, k))
    theta[:, free] = beta
    return theta, info


def bradley_terry(
    df: pl.DataFrame,
    *,
    a: str = "a",
    b: str = "b",
    winner: str = "winner",
    tie: str = "tie",
    reference: str | None = None,
    boot: int = 1000,
    seed: Seed = None,
    ci: float = 0.95,
) -> pl.DataFrame:
    """Bradley-Terry log-abilities by maximum likelihood, with bootstrap intervals.

    Model: P(x beats y) = exp(theta_x) / (exp(theta_x) + exp(theta_y)), with ``theta`` of the
    ``reference`` competitor fixed at 0 (default: the competitor that sorts first, like R
    ``BradleyTerry2``). A tie counts as half a win to each side. Fitted by Newton-Raphson
    (the log-likelihood is concave); the standard error comes from the observed information
    (the inverse of minus the Hessian of the k-1 free log-abilities).

    Parameters
    ----------
    df : one row per comparison, columns ``a``, ``b``, ``winner`` (see ``win_rates``).
    reference : competitor fixed at log-ability 0.
    boot : bootstrap replicates; comparisons are resampled with replacement (a multinomial draw
        over the distinct (pair, outcome) patterns, which is the same thing and costs nothing per
        comparison) and the model is refitted; percentile interval. ``boot=0`` gives the Wald
        interval theta +- z * SE instead. Replicates in which the MLE does not exist (someone won
        or lost every comparison) are left out and counted in ``note``.
    seed : int, numpy Generator or None (then a seed is drawn from OS entropy); the seed used
        is recorded in ``method`` and in the ``seed`` column.
    ci : two-sided confidence level.

    Returns
    -------
    One row per competitor (``competitor``), statistic ``bradley_terry``, variant
    ``log_ability``: ``estimate`` = theta (log odds of beating the reference), ``std_error``,
    interval, ``p_value`` of the Wald test H0: theta = 0 (as strong as the reference), H1: != 0
    (null for the reference itself), ``win_probability_vs_reference`` = exp(theta)/(1+exp(theta)),
    ``wins``/``ties``/``losses`` against everyone, ``n_comparisons`` (all comparisons used) and
    ``reference``. When the MLE does not exist (Hunter 2004: the "beat" graph is not strongly
    connected) every row has ``applicable=False`` and says why.
    """
    check_ci(ci)
    if boot < 0:
        raise AnalysisError(f"boot must be 0 or more, got {boot}")
    comparisons, dropped = _comparisons(df, a=a, b=b, winner=winner, tie=tie)
    competitors = _competitors(comparisons)
    k = len(competitors)
    if reference is None:
        if not competitors:
            return result_frame(
                [
                    not_applicable(
                        "bradley_terry",
                        reason="no comparisons",
                        **{VARIANT: "log_ability", CI_LEVEL: ci},
                    )
                ]
            )
        reference = competitors[0]
    if reference not in competitors:
        raise AnalysisError(
            f"reference '{reference}' is not a competitor; competitors are: "
            + ", ".join(competitors)
        )
    ref = competitors.index(reference)

    # Patterns: (x, y, outcome) with x < y by index; outcome 0 = x wins, 1 = tie, 2 = y wins.
    enum = pl.Enum(competitors)
    ia = comparisons["a"].cast(enum).to_physical().to_numpy().astype(np.int64)
    ib = comparisons["b"].cast(enum).to_physical().to_numpy().astype(np.int64)
    # compared in polars: numpy would compare an object array of Python strings
    a_wins = (comparisons["outcome"] == "a").to_numpy()
    tie_mask = (comparisons["outcome"] == "tie").to_numpy()
    lo, hi = np.minimum(ia, ib), np.maximum(ia, ib)
    lo_wins = np.where(ia < ib, a_wins, ~a_wins & ~tie_mask)
    code = np.where(tie_mask, 1, np.where(lo_wins, 0, 2))
    key = (lo * k + hi) * 3 + code
    patterns, counts = np.unique(key, return_counts=True)
    pair_key, pat_code = patterns // 3, patterns % 3
    pair_ids, pat_pair = np.unique(pair_key, return_inverse=True)
    pairs = np.arange(pair_ids.size)
    incidence = np.zeros((pair_ids.size, k))
    incidence[pairs, pair_ids // k] = 1.0
    incidence[pairs, pair_ids % k] = -1.0
    to_pair = np.zeros((patterns.size, pair_ids.size))  # pattern -> its pair
    to_pair[np.arange(patterns.size), pat_pair] = 1.0
    win_weight = np.select([pat_code == 0, pat_code == 1], [1.0, 0.5], 0.0)

    def pair_totals(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pattern counts (B, patterns) -> wins of each pair's first (B, P), comparisons (B, P)."""
        return (c * win_weight) @ to_pair, c @ to_pair

    def exists(w_pair: np.ndarray, n_pair: np.ndarray) -> np.ndarray:
        return _mle_exists(w_pair > 0, (n_pair - w_pair) > 0, incidence)

    per_comp = (
        _oriented_counts(comparisons)
        .group_by(COMPETITOR)
        .agg(pl.col(WINS).sum(), pl.col(TIES).sum(), pl.col(LOSSES).sum())
    )
    tallies = {r[COMPETITOR]: r for r in per_comp.rows(named=True)}
    notes = [f"{dropped} comparison(s) without a winner left out"] if dropped else []
    w_obs, n_obs = pair_totals(counts[None, :].astype(float))

    def base_row(name: str) -> dict[str, Any]:
        t = tallies.get(name, {WINS: 0, TIES: 0, LOSSES: 0})
        return {
            COMPETITOR: name,
            REFERENCE: reference,
            WINS: t[WINS],
            TIES: t[TIES],
            LOSSES: t[LOSSES],
            N_COMPARISONS: comparisons.height,
        }

    if k < 2 or not exists(w_obs, n_obs)[0]:
        reason = (
            "fewer than two competitors"
            if k < 2
            else "maximum likelihood estimate does not exist: some competitor won (or lost) "
            "every comparison against the others (Hunter 2004, Assumption 1)"
        )
        return result_frame(
            [
                not_applicable(
                    "bradley_terry",
                    reason=reason,
                    **{VARIANT: "log_ability", CI_LEVEL: ci},
                    **base_row(c),
                )
                for c in competitors
            ]
        )

    fitted, info = _fit_bt(incidence, w_obs, n_obs, ref)
    theta = fitted[0]
    free = [c for c in range(k) if c != ref]
    se = np.zeros(k)
    se[free] = np.sqrt(np.diag(np.linalg.inv(info[0])))
    z = float(stats.norm.ppf(0.5 + ci / 2))

    used_seed = None
    if boot > 0:
        rng, used_seed = resolve_seed(seed)
        total = int(counts.sum())
        parts, failed = [], 0
        # chunked draws (the same stream as one draw of all replicates): bounded memory
        for start in range(0, boot, BOOT_CHUNK):
            draws = rng.multinomial(
                total, counts / total, size=min(BOOT_CHUNK, boot - start)
            ).astype(float)
            w_boot, n_boot = pair_totals(draws)
            ok = exists(w_boot, n_boot)
            failed += int(ok.size - ok.sum())
            if ok.any():
                parts.append(_fit_bt(incidence, w_boot[ok], n_boot[ok], ref, start=theta)[0])
        if failed:
            notes.append(
                f"{failed} of {boot} bootstrap replicates had no finite MLE and were left out"
            )
        if parts:
            thetas = np.concatenate(parts)
            lows = np.quantile(thetas, (1 - ci) / 2, axis=0)
            highs = np.quantile(thetas, (1 + ci) / 2, axis=0)
        else:
            lows = highs = np.full(k, np.nan)
        interval = (
            f"percentile bootstrap over comparisons ({ci:.0%}, B={boot}, "
            f"{seed_text(used_seed, seed).replace('seed ', 'seed=', 1)})"
        )
    else:
        lows, highs = theta - z * se, theta + z * se
        interval = f"Wald interval from the observed information ({ci:.0%})"
    method = (
        "Bradley-Terry maximum likelihood (Newton-Raphson), ties as half a win to each side; "
        f"log-ability relative to reference '{reference}' (fixed at 0); SE from the observed "
        f"information; {interval}"
    )
    rows = []
    for c, name in enumerate(competitors):
        is_ref = c == ref
        rows.append(
            result_row(
                "bradley_terry",
                **{
                    VARIANT: "log_ability",
                    ESTIMATE: float(theta[c]),
                    CI_LOW: None if is_ref else float(lows[c]),
                    CI_HIGH: None if is_ref else float(highs[c]),
                    CI_LEVEL: ci,
                    P_VALUE: None if is_ref else float(2 * stats.norm.sf(abs(theta[c]) / se[c])),
                    METHOD: method,
                    NOTE: join_notes([*notes, "reference: fixed at 0" if is_ref else None]),
                    STD_ERROR: None if is_ref else float(se[c]),
                    WIN_PROBABILITY_VS_REFERENCE: float(1 / (1 + np.exp(-theta[c]))),
                    SEED: used_seed,
                },
                **base_row(name),
            )
        )
    return result_frame(rows)


# --- position bias ------------------------------------------------------------------------------


def position_bias(
    df: pl.DataFrame,
    *,
    winner_position: str = "winner_position",
    first: str | None = None,
    winner: str = "winner",
    tie: str = "tie",
    ci: float = 0.95,
) -> pl.DataFrame:
    """Share of decided comparisons won by the answer shown first, with an exact binomial test.

    Order was randomised, so with no position bias the first-shown answer wins half of the
    comparisons that are not ties. H0: P(first-shown wins | not a tie) = 1/2; H1: != 1/2
    (two-sided exact binomial test, ``scipy.stats.binomtest``). Interval: Wilson score.

    Parameters
    ----------
    df : one row per comparison.
    winner_position : column saying where the winner was shown: ``first``/``left``/``1``/``a``,
        ``second``/``right``/``2``/``b``, or ``tie``. Used when ``first`` is None.
    first : alternatively, a column naming the competitor shown first; the position of the
        winner is then derived from it and ``winner`` (the ``tie`` label counts as a tie).
    ci : two-sided confidence level.

    Returns
    -------
    One row, statistic ``position_bias``, variant ``first_shown``: estimate = first-shown wins /
    (first-shown wins + second-shown wins), with ``first_wins``, ``second_wins``, ``ties``.
    """
    check_ci(ci)
    if first is not None:
        require_columns(df, (first, winner))
        pos = df.select(
            pl.when(pl.col(winner).cast(pl.String) == tie)
            .then(pl.lit("tie"))
            .when(pl.col(winner).cast(pl.String) == pl.col(first).cast(pl.String))
            .then(pl.lit("first"))
            .when(pl.col(winner).is_not_null())
            .then(pl.lit("second"))
            .otherwise(None)
            .alias("p")
        )["p"]
    else:
        require_columns(df, (winner_position,))
        raw = df[winner_position].cast(pl.String).str.to_lowercase()
        pos = pl.DataFrame({"r": raw}).select(
            pl.when(pl.col("r").is_in(list(_FIRST_LABELS)))
            .then(pl.lit("first"))
            .when(pl.col("r").is_in(list(_SECOND_LABELS)))
            .then(pl.lit("second"))
            .when(pl.col("r") == tie.lower())
            .then(pl.lit("tie"))
            .when(pl.col("r").is_null())
            .then(None)
            .otherwise(pl.lit("?"))
            .alias("p")
        )["p"]
        if (pos == "?").any():
            example = raw.filter(pos == "?")[0]
            raise AnalysisError(
                f"column '{winner_position}' holds '{example}'; expected first/second/{tie} "
                "(or left/right, 1/2)"
            )
    first_wins = int((pos == "first").sum())
    second_wins = int((pos == "second").sum())
    ties = int((pos == "tie").sum())
    decided = first_wins + second_wins
    counts = {FIRST_WINS: first_wins, SECOND_WINS: second_wins, TIES: ties}
    if decided == 0:
        return result_frame(
            [
                not_applicable(
                    "position_bias",
                    reason="no comparison with a winner (all ties)",
                    **{VARIANT: "first_shown", CI_LEVEL: ci},
                    **counts,
                )
            ]
        )
    low, high = wilson_interval_ci(first_wins, decided, ci)
    p = float(stats.binomtest(first_wins, decided, 0.5, alternative="two-sided").pvalue)
    return result_frame(
        [
            result_row(
                "position_bias",
                **{
                    VARIANT: "first_shown",
                    ESTIMATE: first_wins / decided,
                    CI_LOW: low,
                    CI_HIGH: high,
                    CI_LEVEL: ci,
                    P_VALUE: p,
                    METHOD: "share of non-tied comparisons won by the first-shown answer; Wilson "
                    f"score interval ({ci:.0%}); two-sided exact binomial test against 1/2",
                    NOTE: None,
                },
                **counts,
            )
        ]
    )
