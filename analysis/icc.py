"""The six intraclass correlations of Shrout & Fleiss (1979), with McGraw & Wong's (1996) names,
F tests and F-based intervals, on the largest complete block of units x raters.

Input and output as in ``analysis.agreement``: a long polars frame, one row per rating; a tidy
frame of ``RESULT_SCHEMA``. Hypotheses: H0 ICC = 0 vs H1 ICC > 0 (one-sided F test of Shrout &
Fleiss 1979).

References
----------
Shrout PE, Fleiss JL (1979). Intraclass correlations: uses in assessing rater reliability. Psychol
Bull 86:420-428; McGraw KO, Wong SP (1996). Psychol Methods 1:30-46.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl
from scipy import stats

from analysis import columns as C
from analysis._agreement_common import agreement_frame
from analysis._common import check_ci, not_applicable, result_row
from analysis._pivot import Ratings, check_level, read_ratings
from analysis.errors import AnalysisError

_ICC_FORMS = (
    # Shrout-Fleiss name, McGraw-Wong name, model in words
    ("ICC1", "ICC(1)", "one-way random, single rater"),
    ("ICC2", "ICC(A,1)", "two-way random, absolute agreement, single rater"),
    ("ICC3", "ICC(C,1)", "two-way mixed, consistency, single rater"),
    ("ICC1k", "ICC(k)", "one-way random, mean of k raters"),
    ("ICC2k", "ICC(A,k)", "two-way random, absolute agreement, mean of k raters"),
    ("ICC3k", "ICC(C,k)", "two-way mixed, consistency, mean of k raters"),
)
ICC_NOMINAL = "nominal categories have no numeric distance; the ICC needs numeric ratings"

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


def icc_not_applicable(reason: str, ci: float, **common: Any) -> list[dict[str, Any]]:
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


def _f_based_forms(
    msr: float, ms_error: float, df1: int, df_error: int, k: int, alpha: float
) -> tuple[dict[str, float], dict[str, float]]:
    """The single-rater and mean-of-k ICC whose test is F = msr / ms_error (df1, df_error).

    ICC = (MSR - MS_error) / (MSR + (k - 1) MS_error) and (MSR - MS_error) / MSR, intervals from
    the F limits F_L = F / F(1 - alpha/2; df1, df_error), F_U = F * F(1 - alpha/2; df_error, df1)
    (Shrout & Fleiss 1979): ICC1 and ICC1k with MS_error = MSW, ICC3 and ICC3k with MSE. Each
    dict holds icc, lo, hi, F, df2 and the one-sided p of H0: ICC = 0.
    """
    f = msr / ms_error
    f_low = f / stats.f.ppf(1 - alpha / 2, df1, df_error)
    f_high = f * stats.f.ppf(1 - alpha / 2, df_error, df1)
    # the pair of forms (single rater, mean of k) shares its F test
    test = {"F": f, "df2": df_error, "p": stats.f.sf(f, df1, df_error)}
    single = {
        "icc": (msr - ms_error) / (msr + (k - 1) * ms_error),
        "lo": (f_low - 1) / (f_low + k - 1),
        "hi": (f_high - 1) / (f_high + k - 1),
        **test,
    }
    mean_of_k = {
        "icc": (msr - ms_error) / msr,
        "lo": 1 - 1 / f_low,
        "hi": 1 - 1 / f_high,
        **test,
    }
    return single, mean_of_k


def icc_rows(rat: Ratings, ci: float) -> list[dict[str, Any]]:
    """The six rows of ``icc`` for numeric ratings already read, in the order of ``_ICC_FORMS``."""
    block, two_way, design_note = _icc_design(rat)
    n, k = block.shape
    counts = {C.N_UNITS: n, C.N_RATERS: k, C.N_VALUES: n * k}
    common = {C.CI_LEVEL: ci, **counts}
    alpha = 1 - ci
    if n < 2:
        return icc_not_applicable(
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
        df1 = n - 1
        out["ICC1"], out["ICC1k"] = _f_based_forms(msr, msw, df1, n * (k - 1), k, alpha)
        if two_way:
            col_means = block.mean(axis=0)
            ss_cols = n * ((col_means - grand) ** 2).sum()
            mse = (ss_within - ss_cols) / ((n - 1) * (k - 1))
            msc = ss_cols / (k - 1)
            dfe = (n - 1) * (k - 1)
            out["ICC3"], out["ICC3k"] = _f_based_forms(msr, mse, df1, dfe, k, alpha)
            two_way_test = {key: out["ICC3"][key] for key in ("F", "df2", "p")}
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
        return agreement_frame(icc_not_applicable(ICC_NOMINAL, ci, **{C.LEVEL: level}))
    rat = read_ratings(df, unit=unit, rater=rater, value=value, need_numeric="the ICC")
    frame = agreement_frame(icc_rows(rat, ci))
    return frame.with_columns(pl.lit(level, dtype=pl.String).alias(C.LEVEL))
