"""Kappa-type agreement on categories: percent agreement, Gwet's AC1/AC2, Randolph's
free-marginal kappa, Fleiss' kappa for many raters and Cohen's kappa for each pair of raters.

Input and output as in ``analysis.agreement``: a long polars frame, one row per rating; a tidy
frame of ``RESULT_SCHEMA``. Hypotheses, for the rows that carry a p-value: H0 coefficient = 0
(agreement no better than chance, as each coefficient defines chance) vs H1 coefficient != 0
(two-sided). Percent agreement has no p-value.

Weighted statistics (Cohen's linear / quadratic kappa, Gwet's AC2) weight over the categories: the
declared ``scale`` when given (say, 1..5 for a 5-point Likert item, even if nobody answered 1),
otherwise only the categories observed. With numeric categories the weights use the values
(linear ``1 - |x_i - x_j| / (max - min)``, quadratic ``1 - (x_i - x_j)^2 / (max - min)^2``, as in
Gwet's irrCAC); text categories use their positions on the scale. The ``note`` says which. The
declared scale matters for AC2 (and for the q of AC1 and Randolph's kappa), whose chance
agreement counts the categories; Cohen's kappa with numeric categories does not depend on it.

References
----------
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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import polars as pl
from scipy import stats

from analysis import columns as C
from analysis._agreement_common import (
    RESULT_SCHEMA,
    agreement_frame,
    category_text,
    prevalence_note,
)
from analysis._common import check_ci, join_notes, not_applicable, result_row
from analysis._pivot import Ratings, read_ratings
from analysis.errors import AnalysisError

Weights = Literal["unweighted", "linear", "quadratic"]


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


def _single_category_reason(rat: Ratings) -> str | None:
    used = np.flatnonzero(rat.category_counts())
    if used.size == 1:
        return (
            f"every rating is {category_text(rat.categories[int(used[0])])}: with a single "
            "category chance-corrected agreement is undefined (raw agreement is 100%)"
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
    cats = ", ".join(category_text(c) for c in rat.categories)
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
    ci: float,
    method: str,
    weights: str = "unweighted",
    variant: str | None = None,
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


def _one_row(
    row: Callable[[Ratings, float], dict[str, Any]], df: pl.DataFrame, ci: float, **read: Any
) -> pl.DataFrame:
    """The one-row frame of ``row(ratings, ci)`` for ``df`` read by ``read_ratings(df, **read)``
    (``read``: the unit, rater and value columns, and the scale or order a statistic needs)."""
    ci = check_ci(ci)
    return agreement_frame([row(read_ratings(df, **read), ci)])


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
    return _one_row(percent_row, df, ci, unit=unit, rater=rater, value=value)


def percent_row(rat: Ratings, ci: float) -> dict[str, Any]:
    """The row of ``percent_agreement`` for ratings already read."""
    return _gwet_row(
        rat,
        statistic="percent_agreement",
        kind="pa",
        ci=ci,
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
    return _one_row(ac_row, df, ci, unit=unit, rater=rater, value=value, scale=scale)


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
    return _one_row(
        lambda rat, ci: ac_row(rat, ci, weights),
        df,
        ci,
        unit=unit,
        rater=rater,
        value=value,
        scale=scale,
        need_order="Gwet's AC2",
    )


def ac_row(rat: Ratings, ci: float, weights: str = "unweighted") -> dict[str, Any]:
    """The row of ``gwet_ac1`` (``weights="unweighted"``) or ``gwet_ac2``, ratings already read."""
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
    return _one_row(randolph_row, df, ci, unit=unit, rater=rater, value=value, scale=scale)


def randolph_row(rat: Ratings, ci: float) -> dict[str, Any]:
    """The row of ``randolph_kappa`` for ratings already read."""
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
        ci=ci,
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
    return _one_row(fleiss_row, df, ci, unit=unit, rater=rater, value=value)


def fleiss_row(rat: Ratings, ci: float) -> dict[str, Any]:
    """The row of ``fleiss_kappa`` for ratings already read."""
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
            C.NOTE: join_notes([prevalence_note(rat), unbalanced_note]),
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


def cohen_frame(rat: Ratings, weights: str, ci: float) -> pl.DataFrame:
    """Cohen's kappa rows, one per rater pair with >= 2 common units (``Ratings.pair_tables``).

    All pairs are computed as (P, q, q) arrays and the frame is built column by column: a
    60-rater study has 1,770 pairs per weighting, too many for one Python row each.
    """
    stat = "cohen_kappa"
    w, over = _weight_matrix(rat, weights)
    a, b, tables = rat.pair_tables()
    if a.size == 0:
        return agreement_frame(
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
    tail = join_notes([over if weights != "unweighted" else None, prevalence_note(rat)])
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
    return cohen_frame(rat, weights, ci)
