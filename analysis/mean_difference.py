"""Non-inferiority of a mean rating, test arm minus reference arm: paired t by case, two-way
cluster bootstrap over cases and raters, and a linear mixed model with crossed random intercepts;
each also for a rating that is already a difference (one sample).

Hypotheses (margin m >= 0; m = 0 is a superiority test): ``direction="higher"`` H0: delta <= -m
vs H1: delta > -m; ``direction="lower"`` H0: delta >= m vs H1: delta < m. Shown when the
two-sided (1 - 2*alpha) interval's bound on the worse side clears the margin. One row of
``RESULT_SCHEMA`` (``analysis._noninferiority_common``) per call.

References: Owen AB (2007). The pigeonhole bootstrap. Ann Appl Stat 1:495-519. The mixed model is
statsmodels MixedLM (REML) with crossed variance components on one all-encompassing group.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import polars as pl
from scipy import sparse, stats

from analysis import columns as cols
from analysis._common import not_applicable, require_columns
from analysis._noninferiority_common import (
    MIN_UNITS,
    STATISTIC_MEAN,
    Estimate,
    check_options,
    counted,
    dropped_notes,
    hypotheses,
    mean_and_se,
    ni_frame,
    num_text,
    numeric_values,
    pair_arms,
    pct_text,
    repeated_columns,
    result_rows_frame,
    two_arms,
    wald_test,
)
from analysis._random import Seed, resolve_seed, seed_text
from analysis.errors import AnalysisError

MEAN_METHODS = ("t", "bootstrap", "mixed")
FEW_RATERS = 10  # below this many raters (or FEW_CASES cases) the two-way bootstrap is conservative
FEW_CASES = 20


def mean_difference(
    df: pl.DataFrame,
    *,
    arm: str = cols.ARM,
    value: str = cols.VALUE,
    test: object,
    reference: object,
    margin: float,
    direction: str = "higher",
    method: str = "t",
    case: str = cols.CASE,
    rater: str = cols.RATER,
    pair: str | None = None,
    alpha: float = 0.025,
    boot: int = 2000,
    seed: Seed = None,
) -> pl.DataFrame:
    """Non-inferiority of the mean rating of ``test`` versus ``reference`` (test - reference).

    Parameters
    ----------
    df : long frame, one row per rating, with columns ``arm``, ``value`` (numeric, e.g. a 1-5
        Likert score), ``case`` and, for ``"bootstrap"`` and ``"mixed"``, ``rater``.
    test, reference : the two arm labels (values of ``arm``) to compare.
    margin : the non-inferiority margin (>= 0), on the scale of ``value``; 0 makes it a
        superiority test (H0: delta <= 0, H1: delta > 0 for ``"higher"``), named as such.
    direction : ``"higher"`` (higher is better; H0: delta <= -margin, H1: delta > -margin) or
        ``"lower"`` (lower is better; H0: delta >= margin, H1: delta < margin).
    method :
        ``"t"``: each arm's ratings are averaged within a case (or within ``pair`` if given), and
        a paired t-test and t interval are computed on the per-case differences (df = n - 1).
        ``"bootstrap"``: the same estimate; cases and raters are resampled independently with
        replacement (two-way "pigeonhole" bootstrap, Owen 2007), ``boot`` replicates, percentile
        interval; ``p_value`` = share of replicates on the null side of the margin.
        ``"mixed"``: REML fit of ``value ~ arm + (1|case) + (1|rater)`` with crossed random
        intercepts (statsmodels MixedLM with variance components on one all-encompassing group);
        the arm coefficient with a Wald (normal) interval and one-sided Wald p-value.
    pair : optional column that pairs the two arms instead of ``case`` (``"t"`` only).
    alpha : one-sided significance level; the interval is two-sided at 1 - 2*alpha.
    boot, seed : bootstrap replicates and seed (``"bootstrap"`` only). ``seed`` None draws a seed
        from OS entropy; the seed used is recorded in ``method`` and in the ``seed`` column.

    Returns
    -------
    One-row frame with ``RESULT_SCHEMA`` columns: statistic ``"mean_difference"``, variant =
    method, estimate (test - reference, units of ``value``), ci_low/ci_high at ci_level = 1 -
    2*alpha, p_value (one-sided, against the margin), h0/h1 in words and numbers, shown,
    conclusion, n_units (cases compared), n_raters, n_values (ratings used), statistic_value (t
    or z) and df1 (degrees of freedom of the t method).

    Raises
    ------
    AnalysisError : a missing column or arm, non-numeric values, margin < 0, fewer than 3 cases
        rated in both arms, an unknown method or direction.
    """
    _check(margin=margin, alpha=alpha, direction=direction, method=method)
    needed = [arm, value, pair or case] + ([rater] if method != "t" else [])
    if method != "t" and pair is not None:
        raise AnalysisError(f"pair (--pair) applies to method 't' only, not {method!r}")
    frame, dropped = two_arms(
        df, arm=arm, value=value, test=test, reference=reference, columns=needed
    )
    unit = pair or case
    pairs = pair_arms(
        frame, unit=unit, arm=arm, value=value, test=test, reference=reference, dropped=dropped
    )
    options = {"test": test, "reference": reference, "margin": margin, "direction": direction}
    return _mean_row(
        method,
        pairs.used,
        pairs.d,
        unit=unit,
        notes=pairs.notes,
        columns={"case": case, "rater": rater, "arm": arm, "value": value},
        bootstrap={"boot": boot, "seed": seed},
        **counted(pairs.used, rater=rater, alpha=alpha, **options),
    )


def mean_difference_one_sample(
    df: pl.DataFrame,
    *,
    value: str = cols.VALUE,
    margin: float,
    direction: str = "higher",
    method: str = "t",
    case: str = cols.CASE,
    rater: str = cols.RATER,
    alpha: float = 0.025,
    boot: int = 2000,
    seed: Seed = None,
    test: object = "test",
    reference: object = "reference",
) -> pl.DataFrame:
    """Non-inferiority of a rating that is already a difference, test minus reference.

    For reader studies whose raters scored the comparison itself (e.g. -2 "reference much
    better" to +2 "test much better", ClinSumm's design) there is no rating per arm to subtract:
    ``value`` is delta for one (case, rater). The hypotheses are those of ``mean_difference``
    for the mean delta: ``direction="higher"``: H0: delta <= -margin versus H1: delta > -margin;
    ``"lower"``: H0: delta >= margin versus H1: delta < margin; ``margin=0`` is a superiority
    test, named as such. ``test`` and ``reference`` only label the two sides in the hypotheses.

    method :
        ``"t"``: ratings averaged within each case, one-sample t on the n case means (df n - 1).
        ``"bootstrap"``: cases and raters resampled independently with replacement (Owen 2007),
        ``boot`` replicates of the mean over resampled cases of each case's mean over its
        resampled raters; percentile interval, p = share of replicates on the null side.
        ``"mixed"``: REML fit of ``value ~ 1 + (1|case) + (1|rater)`` (only the intercept is
        fixed; statsmodels MixedLM, crossed variance components); Wald interval and z-test of the
        intercept. A made-up zero arm must not stand in for the reference: it has no case or
        rater variance and so shrinks the standard error.

    Returns the one-row frame of ``mean_difference`` (``RESULT_SCHEMA``; statistic
    ``"mean_difference"``, variant = method; n_units cases, n_raters, n_values ratings used).
    Raises ``AnalysisError`` for a missing column, non-numeric values, a negative margin,
    fewer than 3 cases, an unknown method or direction.
    """
    _check(margin=margin, alpha=alpha, direction=direction, method=method)
    needed = [value, case] + ([rater] if method != "t" else [])
    if not isinstance(df, pl.DataFrame):
        raise AnalysisError(f"expected a polars DataFrame, got {type(df).__name__}")
    require_columns(df, needed)
    frame, dropped = numeric_values(df, value)
    means = frame.group_by(case, maintain_order=True).agg(pl.col(value).mean().alias("d"))
    n = means.height
    if n < MIN_UNITS:
        raise AnalysisError(
            f"too few cases with a value: {n} (need at least {MIN_UNITS}; case column {case!r})"
        )
    options = {"test": test, "reference": reference, "margin": margin, "direction": direction}
    row = _mean_row(
        method,
        frame,
        means["d"],
        unit=case,
        notes=dropped_notes(dropped),
        columns={"case": case, "rater": rater, "arm": None, "value": value},
        bootstrap={"boot": boot, "seed": seed},
        delta=f"mean({test} - {reference})",
        **counted(frame, rater=rater, alpha=alpha, **options),
    )
    if method != "t":
        return row
    return row.with_columns(
        pl.lit(
            "one-sample t on a value that is already test - reference: ratings averaged "
            f"within each {case}, t on the {n} per-{case} means (df {n - 1}); "
            f"{pct_text(1 - 2 * alpha)} t interval"
        ).alias(cols.METHOD)
    )


def _check(*, margin: float, alpha: float, direction: str, method: str) -> None:
    """Refuse bad options (``check_options``) and a method not in ``MEAN_METHODS``."""
    check_options(margin=margin, alpha=alpha, direction=direction)
    if method not in MEAN_METHODS:
        raise AnalysisError(f"unknown method {method!r}; choose one of: {', '.join(MEAN_METHODS)}")


def _mean_row(
    method: str,
    used: pl.DataFrame,
    d: pl.Series,
    *,
    unit: str,
    notes: list[str],
    columns: dict[str, str | None],
    bootstrap: dict[str, object],
    delta: str | None = None,
    **common: object,
) -> pl.DataFrame:
    """The one-row frame of ``method`` on the ratings ``used``, whose per-``unit`` differences are
    ``d`` (n units; one sample, ``arm`` None: each case's mean of a value that is already a
    difference). ``columns``: the case, rater, arm and value columns of ``used``; ``bootstrap``:
    boot and seed; ``common``: as for ``ni_frame`` but n_units (n)."""
    n = d.len()
    common["n_units"] = n
    if method == "t":
        est, se = mean_and_se(d)
        found = _mean_t(est=est, se=se, df=n - 1, unit=unit, notes=notes, **common)
    elif method == "bootstrap":
        found = _mean_bootstrap(
            used, **columns, **bootstrap, est=float(d.mean()), notes=notes, **common
        )
    else:
        found = _mean_mixed(used, **columns, notes=notes, **common)
        if isinstance(found, pl.DataFrame):  # the model could not be fitted
            return found
    return ni_frame(STATISTIC_MEAN, found, delta=delta, **common)


def _mean_t(*, est, se, df, unit, notes, **common) -> Estimate:
    """t interval and one-sided t test of ``est`` with standard error ``se`` and ``df`` degrees
    of freedom. ``common``: test, reference, margin, direction, alpha, n_units, n_raters,
    n_values."""
    margin, direction, alpha = common["margin"], common["direction"], common["alpha"]
    lo, hi, t, p = wald_test(est, se, stats.t(df), margin=margin, direction=direction, alpha=alpha)
    if se == 0:
        notes = [*notes, "all case differences are equal (standard error 0)"]
    how = (
        f"paired t: each arm's ratings averaged within each {unit}, t on the {common['n_units']} "
        f"per-{unit} differences (df {df}); {pct_text(1 - 2 * alpha)} t interval"
    )
    return Estimate("t", est, lo, hi, p, how, notes, stat_value=t, dof=float(df))


def _mean_bootstrap(used, *, case, rater, arm, value, boot, seed, est, notes, **common) -> Estimate:
    """Two-way cluster bootstrap of ``est`` over the cases and raters of ``used``. ``common``:
    test, reference, margin, direction, alpha, n_units, n_raters, n_values. ``arm`` None:
    ``value`` is already the difference (one sample)."""
    margin, direction, alpha = common["margin"], common["direction"], common["alpha"]
    if not isinstance(boot, int) or boot < 100:
        raise AnalysisError(f"boot must be an integer of at least 100; got {boot!r}")
    cells = _case_rater_cells(
        used, case=case, rater=rater, arm=arm, value=value, test=common["test"]
    )
    nc, nr = cells.n_cases, cells.n_raters
    rng, used_seed = resolve_seed(seed)
    reps = _pigeonhole_replicates(cells, boot=boot, rng=rng)
    finite = reps[np.isfinite(reps)]
    if len(finite) < boot:
        notes = [
            *notes,
            f"{boot - len(finite)} replicate(s) without a case rated in both arms were discarded",
        ]
    # inverted_cdf quantiles make 'bound beyond the margin' equivalent to 'p < alpha'.
    lo = float(np.quantile(finite, alpha, method="inverted_cdf"))
    hi = float(np.quantile(finite, 1 - alpha, method="inverted_cdf"))
    if direction == "higher":
        p = float(np.mean(finite <= -margin))
    else:
        p = float(np.mean(finite >= margin))
    if p == 0:
        notes = [*notes, f"p = 0 means p < 1/{len(finite)} (no replicate on the null side)"]
    few = [f"{nr} raters"] if nr < FEW_RATERS else []
    if nc < FEW_CASES:
        few.append(f"{nc} cases")
    if few:
        # Owen (2007): the pigeonhole bootstrap overestimates the variance (it adds the
        # case x rater variance to both factors); with few levels of a factor that is large.
        notes = [
            *notes,
            f"only {' and '.join(few)}: the two-way bootstrap is "
            "conservative (Owen 2007), its interval wider than the sampling variation; see the "
            "t and mixed results",
        ]
    how = (
        f"two-way cluster bootstrap (Owen 2007 pigeonhole): {nc} cases and {nr} raters resampled "
        f"independently with replacement, {boot} replicates, {seed_text(used_seed, seed)}; "
        f"percentile {pct_text(1 - 2 * alpha)} interval; p = share of replicates on the null side "
        "of the margin; "
        + (
            "estimate = mean over cases of the within-case difference of arm means"
            if arm is not None
            else "one sample: estimate = mean over cases of the within-case mean of the value, "
            "already test - reference"
        )
    )
    return Estimate("bootstrap", est, lo, hi, p, how, notes, seed=used_seed)


class _Cells(NamedTuple):
    """Ratings summed per (case, rater) cell, cases and raters numbered by first appearance.

    ``sums`` is a sparse (k * n_cases, n_raters) CSR matrix of k stacked case x rater blocks:
    k = 2, [S_test - S_ref; N] when every cell has as many test as reference ratings (``balanced``;
    then both arms share the denominator N), else k = 4, [S_test; N_test; S_ref; N_ref]. S holds
    sums of ratings, N counts of ratings.
    """

    n_cases: int
    n_raters: int
    balanced: bool
    sums: sparse.csr_array


def _case_rater_cells(used, *, case, rater, arm, value, test) -> _Cells:
    """Sparse per-(case, rater) sums and counts of each arm's ratings (see :class:`_Cells`).

    ``arm`` None: one sample, the value is already the difference; the blocks are then
    [S; N] (``balanced``), which the replicates read as the mean of the value."""
    ids = []
    for column in (case, rater):
        # First-appearance numbering: the documented order that bootstrap draws index into.
        levels = used.select(pl.col(column).unique(maintain_order=True)).with_row_index("__i")
        index = used.select(column).join(
            levels, on=column, how="left", maintain_order="left", nulls_equal=True
        )["__i"]
        ids.append((index.to_numpy().astype(np.int64), levels.height))
    (ci, nc), (ri, nr) = ids
    one_sample = arm is None
    is_test = np.ones(used.height, dtype=bool) if one_sample else (used[arm] == test).to_numpy()
    values = used[value].to_numpy()
    cell, row_cell = np.unique(ci * nr + ri, return_inverse=True)  # sorted by (case, rater)
    k = len(cell)
    # bincount adds in row order, so the float sums are reproducible run to run.
    s_t = np.bincount(row_cell, weights=np.where(is_test, values, 0.0), minlength=k)
    s_r = np.bincount(row_cell, weights=np.where(is_test, 0.0, values), minlength=k)
    n_t = np.bincount(row_cell, weights=is_test.astype(np.float64), minlength=k)
    n_r = np.bincount(row_cell, weights=(~is_test).astype(np.float64), minlength=k)
    balanced = one_sample or bool(np.array_equal(n_t, n_r))
    blocks = [s_t - s_r, n_t] if balanced else [s_t, n_t, s_r, n_r]  # s_r is 0 for one sample
    cell_case, cell_rater = cell // nr, cell % nr
    per_case = np.bincount(cell_case, minlength=nc)
    indptr = np.concatenate([[0], np.cumsum(np.tile(per_case, len(blocks)))])
    sums = sparse.csr_array(
        (np.concatenate(blocks), np.tile(cell_rater, len(blocks)), indptr),
        shape=(len(blocks) * nc, nr),
    )
    return _Cells(nc, nr, balanced, sums)


_BOOT_BLOCK = 1 << 19  # cases x replicates handled at once: ~4 MB per float array


def _pigeonhole_replicates(cells: _Cells, *, boot: int, rng: np.random.Generator) -> np.ndarray:
    """``boot`` two-way bootstrap replicates of the mean within-case arm difference, shape (boot,).

    Replicate i draws, in this order, ``n_cases`` case indices ``rng.integers(0, n_cases,
    n_cases)`` and ``n_raters`` rater indices ``rng.integers(0, n_raters, n_raters)`` (numbered
    by first appearance). With w_c, v_r the number of times case c and rater r were drawn, the
    replicate is

        sum_c w_c e_c d_c / sum_c w_c e_c,   d_c = T_c / NT_c - R_c / NR_c,

    T_c = sum_r v_r S_test[c, r], NT_c = sum_r v_r N_test[c, r] (the same for the reference arm),
    and e_c = 1 when NT_c > 0 and NR_c > 0 (the case has a drawn rating in both arms), else 0:
    the mean over the resampled cases of the difference of arm means over their resampled
    ratings. NaN when no resampled case has both arms. Replicates are computed in blocks of
    columns: the rater step is one sparse (cases x raters) @ (raters x block) product, the case
    step a weighted column sum; the result does not depend on the block size.
    """
    nc, nr = cells.n_cases, cells.n_raters
    block = max(1, min(boot, 256, _BOOT_BLOCK // nc))
    reps = np.empty(boot)
    for start in range(0, boot, block):
        b = min(block, boot - start)
        # Flat index of (drawn case, replicate) and (drawn rater, replicate) in column-major blocks.
        case_key = np.empty((b, nc), dtype=np.int64)
        rater_key = np.empty((b, nr), dtype=np.int64)
        for j in range(b):
            np.multiply(rng.integers(0, nc, nc), b, out=case_key[j])
            case_key[j] += j
            np.multiply(rng.integers(0, nr, nr), b, out=rater_key[j])
            rater_key[j] += j
        v = np.bincount(rater_key.ravel(), minlength=nr * b).reshape(nr, b).astype(np.float64)
        w = np.bincount(case_key.ravel(), minlength=nc * b).reshape(nc, b).astype(np.float64)
        sums = cells.sums @ v  # (k * nc, b)
        # Counts are whole numbers, so min(count, 1) is the 0/1 "has a drawn rating" indicator
        # and max(count, 1) a divisor that leaves real means unchanged (the sum is 0 when it is 0).
        if cells.balanced:
            d, count = sums[:nc], sums[nc:]
            both = np.minimum(count, 1.0)
            np.maximum(count, 1.0, out=count)
            np.divide(d, count, out=d)
        else:
            s_t, n_t, s_r, n_r = (sums[i * nc : (i + 1) * nc] for i in range(4))
            both = np.minimum(n_t, 1.0) * np.minimum(n_r, 1.0)
            np.maximum(n_t, 1.0, out=n_t)
            np.maximum(n_r, 1.0, out=n_r)
            d = s_t / n_t - s_r / n_r
            d *= both
        with np.errstate(invalid="ignore", divide="ignore"):
            reps[start : start + b] = np.einsum("cb,cb->b", w, d) / np.einsum("cb,cb->b", w, both)
    return reps


def _mean_mixed(used, *, case, rater, arm, value, notes, **common) -> Estimate | pl.DataFrame:
    """Linear mixed model ``value ~ arm + (1|case) + (1|rater)`` on ``used``; the not-applicable
    frame when it cannot be fitted. ``common``: test, reference, margin, direction, alpha,
    n_units, n_raters, n_values. ``arm`` None: one sample, ``value ~ 1 + (1|case) + (1|rater)``:
    the intercept is the mean difference."""
    margin, direction, alpha = common["margin"], common["direction"], common["alpha"]
    one_sample = arm is None
    pdf = used.select(
        pl.col(case).cast(pl.String).alias("case"),
        pl.col(rater).cast(pl.String).alias("rater"),
        (pl.lit(1.0) if one_sample else (pl.col(arm) == common["test"]).cast(pl.Float64)).alias(
            "arm_test"
        ),
        pl.col(value).cast(pl.Float64).alias("value"),
    ).to_pandas()
    formula, coefficient = (
        ("value ~ 1", "Intercept") if one_sample else ("value ~ arm_test", "arm_test")
    )
    crossed = [c for c in ("case", "rater") if pdf[c].nunique() > 1]
    if "rater" not in crossed:
        notes = [*notes, "one rater only: the rater random intercept was left out"]
    try:
        result, caught = _fit_crossed(pdf, formula, crossed)
        est = float(result.fe_params[coefficient])
        se = float(result.bse_fe[coefficient])
    except (np.linalg.LinAlgError, ValueError) as exc:
        return _mixed_not_applicable(reason=f"mixed model could not be fitted: {exc}", **common)
    if not math.isfinite(se):
        return _mixed_not_applicable(
            reason=f"mixed model gave no standard error for the {coefficient}", **common
        )
    notes = [*notes, *caught]
    if not result.converged:
        notes.append("the optimiser reported no convergence")
    vcomp = dict(zip(crossed, np.atleast_1d(result.vcomp), strict=True))
    parts = ", ".join(f"{k} {num_text(v)}" for k, v in vcomp.items())
    lo, hi, zs, p = wald_test(
        est, se, stats.norm(), margin=margin, direction=direction, alpha=alpha
    )
    model = (
        "value ~ 1 + (1|case) + (1|rater), only the intercept fixed (one sample: the value is "
        "already test - reference)"
        if one_sample
        else "value ~ arm + (1|case) + (1|rater)"
    )
    how = (
        f"linear mixed model {model}, crossed random intercepts "
        "(statsmodels MixedLM, REML, variance components on one group); Wald "
        f"{pct_text(1 - 2 * alpha)} interval and one-sided Wald z-test of the "
        f"{'intercept' if one_sample else 'arm coefficient'}; "
        f"variances: {parts}, residual {num_text(result.scale)}"
    )
    return Estimate("mixed", est, lo, hi, p, how, notes, stat_value=zs)


def _fit_crossed(pdf, formula: str, crossed: Sequence[str], *, reml: bool = True):
    """Fit ``formula`` with crossed random intercepts for each column in ``crossed``.

    statsmodels MixedLM nests random effects in groups; crossed factors are expressed as variance
    components of a single group that holds every row (the statsmodels documentation's device).
    Returns the fitted result and the warning messages raised while fitting.
    """
    from statsmodels.regression.mixed_linear_model import MixedLM

    data = pdf.assign(_one_group=1)
    vc = {name: f"0 + C({name})" for name in crossed}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = MixedLM.from_formula(
            formula, groups="_one_group", re_formula="0", vc_formula=vc, data=data
        )
        # L-BFGS first: statsmodels' default BFGS stalls on crossed variance components; the
        # simplex is the fallback when the gradient method does not converge.
        result = model.fit(reml=reml, method=["lbfgs", "nm"])
    messages = sorted({str(w.message).splitlines()[0] for w in caught})
    return result, messages


def _mixed_not_applicable(*, reason, **common) -> pl.DataFrame:
    """The one-row frame of a mixed model that could not be fitted, saying why; ``common`` as
    for ``ni_frame``."""
    h0, h1 = hypotheses(
        common["direction"], common["margin"], common["test"], common["reference"], "mean"
    )
    row = not_applicable(
        STATISTIC_MEAN,
        reason=reason,
        **repeated_columns(**common),
        **{
            cols.VARIANT: "mixed",
            cols.METHOD: "linear mixed model value ~ arm + (1|case) + (1|rater)",
            cols.H0: h0,
            cols.H1: h1,
            cols.CONCLUSION: f"Not computed: {reason}.",
        },
    )
    return result_rows_frame([row])
