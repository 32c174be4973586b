"""analysis.agreement against published values and other packages.

Every reference number below is cited where it is used, with its tolerance. Sources:

- KRIPP: Krippendorff K (2011) "Computing Krippendorff's Alpha-Reliability", Annenberg School,
  U Pennsylvania, worked example C (4 observers x 12 units, missing values): alpha nominal .743,
  ordinal .815, interval .849, ratio .797. The same matrix is the doctest of fast-krippendorff
  (pln-fing-udelar/fast-krippendorff, krippendorff/krippendorff.py) and the dataset
  ``cac.raw4raters`` of Gwet's R package irrCAC.
- IRRCAC: R irrCAC README (github.com/kgwet/irrCAC, README.md) and its vignette
  vignettes/weighting.html: printed output of pa.coeff.raw, gwet.ac1.raw, fleiss.kappa.raw and
  bp.coeff.raw on cac.raw4raters, and gwet.ac1.dist, fleiss.kappa.dist, bp.coeff.dist on
  distrib.6raters. Its confidence limits are printed to 3 decimals, estimates to 5-7.
- FLEISS: R irr::kappam.fleiss(diagnoses) = 0.4302445, z = 17.65183 (Fleiss 1971 data, 30
  patients x 6 psychiatrists), as recorded in statsmodels/stats/tests/test_inter_rater.py,
  which also embeds the table (sorted within rows; Fleiss' kappa does not depend on the order).
- SAS: SAS PROC FREQ simple and weighted kappa output for table [[0,4,1],[0,8,0],[0,1,5]], as
  recorded in statsmodels/stats/tests/test_inter_rater.py (TestUnweightedCohens/TestWeightedCohens).
- IRR_KAPPA2: R irr::kappa2(anxiety[, 2:3], weight) values recorded in the same statsmodels test.
- RANDOLPH: Randolph's online kappa calculator (justusrandolph.net/kappa), values recorded in
  statsmodels' test_fleis_randolph.
- SF79: Shrout & Fleiss (1979) Table 2 (6 targets x 4 judges); ICCs, F, df, p and 95% limits from
  R psych::ICC as recorded in pingouin's tests/test_reliability.py::test_intraclass_corr.
- Cross-checks with the installed packages: krippendorff 0.9.0 (``krippendorff.alpha``, always
  with ``level_of_measurement``) and statsmodels 0.15 (``fleiss_kappa``, ``cohens_kappa``).
"""

from __future__ import annotations

import krippendorff
import numpy as np
import polars as pl
import pytest
from statsmodels.stats import inter_rater

from analysis import _pivot
from analysis import agreement as A
from analysis import icc as icc_module
from analysis import krippendorff_alpha as alpha_module
from analysis._pivot import distinct_rows, read_ratings
from analysis.errors import AnalysisError

NAN = np.nan


# --- data --------------------------------------------------------------------------------------


def long_from_wide(matrix, raters=None) -> pl.DataFrame:
    """raters x units matrix with NaN for missing -> long frame (unit, rater, value)."""
    matrix = np.asarray(matrix, dtype=float)
    raters = raters or [f"r{i + 1}" for i in range(matrix.shape[0])]
    rows = [
        (u + 1, raters[r], matrix[r, u])
        for r in range(matrix.shape[0])
        for u in range(matrix.shape[1])
        if not np.isnan(matrix[r, u])
    ]
    return pl.DataFrame(rows, schema=["unit", "rater", "value"], orient="row")


def long_from_counts(counts, categories) -> pl.DataFrame:
    """units x categories rater counts -> long frame; raters are numbered within each unit.

    Fleiss, Gwet, Randolph and percent agreement depend only on these counts, not on which
    rater gave which category, so any assignment of ratings to raters reproduces them.
    """
    rows = []
    for u, unit_counts in enumerate(counts):
        r = 0
        for k, n in enumerate(unit_counts):
            for _ in range(n):
                rows.append((u, f"r{r}", categories[k]))
                r += 1
    return pl.DataFrame(rows, schema=["unit", "rater", "value"], orient="row")


def long_from_table(table) -> pl.DataFrame:
    """Two raters' q x q contingency table (rows: rater A's category) -> long frame."""
    rows, unit = [], 0
    for i, row in enumerate(table):
        for j, n in enumerate(row):
            for _ in range(n):
                rows += [(unit, "A", i), (unit, "B", j)]
                unit += 1
    return pl.DataFrame(rows, schema=["unit", "rater", "value"], orient="row")


# KRIPP / cac.raw4raters: 4 observers (rows) x 12 units (columns)
KRIPP = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
]

# irrCAC distrib.6raters: 15 subjects x 5 categories, 6 raters each
DISTRIB_6RATERS = [
    [0, 0, 0, 6, 0],
    [0, 3, 0, 0, 3],
    [0, 1, 4, 0, 1],
    [0, 0, 0, 0, 6],
    [0, 3, 0, 3, 0],
    [2, 0, 4, 0, 0],
    [0, 0, 4, 0, 2],
    [2, 0, 3, 1, 0],
    [2, 0, 0, 4, 0],
    [0, 0, 0, 0, 6],
    [1, 0, 0, 5, 0],
    [1, 1, 0, 4, 0],
    [0, 3, 3, 0, 0],
    [1, 0, 0, 5, 0],
    [0, 2, 0, 3, 1],
]

# FLEISS: diagnoses, 30 patients x 6 raters, categories 1..5
DIAGNOSES = [
    [4, 4, 4, 4, 4, 4],
    [2, 2, 2, 5, 5, 5],
    [2, 3, 3, 3, 3, 5],
    [5, 5, 5, 5, 5, 5],
    [2, 2, 2, 4, 4, 4],
    [1, 1, 3, 3, 3, 3],
    [3, 3, 3, 3, 5, 5],
    [1, 1, 3, 3, 3, 4],
    [1, 1, 4, 4, 4, 4],
    [5, 5, 5, 5, 5, 5],
    [1, 4, 4, 4, 4, 4],
    [1, 2, 4, 4, 4, 4],
    [2, 2, 2, 3, 3, 3],
    [1, 4, 4, 4, 4, 4],
    [2, 2, 4, 4, 4, 5],
    [3, 3, 3, 3, 3, 5],
    [1, 1, 1, 4, 5, 5],
    [1, 1, 1, 1, 1, 2],
    [2, 2, 4, 4, 4, 4],
    [1, 3, 3, 5, 5, 5],
    [5, 5, 5, 5, 5, 5],
    [2, 4, 4, 4, 4, 4],
    [2, 2, 4, 5, 5, 5],
    [1, 1, 4, 4, 4, 4],
    [1, 4, 4, 4, 4, 5],
    [2, 2, 2, 2, 2, 4],
    [1, 1, 1, 1, 5, 5],
    [2, 2, 4, 4, 4, 4],
    [1, 3, 3, 3, 3, 3],
    [5, 5, 5, 5, 5, 5],
]

# IRR_KAPPA2: irr's anxiety data, 20 subjects x 3 raters (statsmodels stores it column-major)
ANXIETY = np.array(
    [3, 3, 3, 4, 5, 5, 2, 3, 5, 2, 2, 6, 1, 5, 2, 2, 1, 2, 4, 3]
    + [3, 6, 4, 6, 2, 4, 2, 4, 3, 3, 2, 3, 3, 3, 2, 2, 1, 3, 3, 4]
    + [2, 1, 4, 4, 3, 2, 1, 6, 1, 1, 1, 2, 3, 3, 1, 1, 3, 3, 2, 2]
).reshape(20, 3, order="F")

# SF79: 6 targets (rows) x 4 judges (columns)
SHROUT_FLEISS = [
    [9, 2, 5, 8],
    [6, 1, 3, 2],
    [8, 4, 6, 8],
    [7, 1, 2, 6],
    [10, 5, 6, 9],
    [6, 2, 4, 7],
]


def row_of(frame: pl.DataFrame, **where) -> dict:
    out = frame
    for key, val in where.items():
        out = out.filter(pl.col(key).is_null() if val is None else pl.col(key) == val)
    assert out.height == 1, f"expected one row for {where}, got {out.height}"
    return out.row(0, named=True)


def random_ratings(seed: int, *, raters=6, units=40, missing=0.3, categories=5) -> np.ndarray:
    """raters x units, a shared unit effect plus noise, some ratings missing (NaN)."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(1, categories + 1, units)
    noise = rng.integers(-1, 2, (raters, units)) * (rng.random((raters, units)) < 0.35)
    data = np.clip(truth + noise, 1, categories).astype(float)
    data[rng.random((raters, units)) < missing] = NAN
    return data


# --- Krippendorff's alpha ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "published"),
    # KRIPP, printed to 3 decimals: tolerance 5e-4
    [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797)],
)
def test_alpha_matches_krippendorff_2011(level, published):
    out = A.krippendorff_alpha(long_from_wide(KRIPP), level=level, boot=200, seed=1)
    row = out.row(0, named=True)
    assert row["estimate"] == pytest.approx(published, abs=5e-4)
    assert row["applicable"] is True
    assert (row["n_units"], row["n_values"], row["n_raters"]) == (11, 40, 4)
    assert row["ci_low"] <= row["estimate"] <= row["ci_high"]
    assert row["level"] == level and row["ci_level"] == 0.95


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval", "ratio"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_alpha_equals_krippendorff_package_on_random_data(level, seed):
    # krippendorff 0.9.0 with level_of_measurement given explicitly; tolerance 1e-10 (same algebra)
    data = random_ratings(seed)
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
    out = A.krippendorff_alpha(long_from_wide(data), level=level, boot=0)
    assert out["estimate"][0] == pytest.approx(expected, abs=1e-10)


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
def test_unit_bootstrap_replicates_equal_recomputing_alpha_on_resampled_units(level):
    # The pattern-grouped bootstrap must give, replicate by replicate, what krippendorff.alpha
    # gives on the resampled units (tolerance 1e-10), and the reported interval must be the
    # percentile interval of those replicates.
    data = random_ratings(7, raters=5, units=30)
    df = long_from_wide(data)
    counts = read_ratings(df, unit="unit", rater="rater", value="value").counts()
    patterns, freq = A.value_patterns(counts)
    boot = 40
    draws = A.unit_bootstrap_counts(freq, boot, np.random.default_rng(11))
    ours = A.alpha_from_pattern_counts(draws, patterns, level, np.arange(1.0, 6.0))
    reference = []
    for b in range(boot):
        # rebuild the resampled units: pattern p repeated draws[b, p] times, values given to
        # raters in any order (alpha does not depend on which rater gave which value)
        columns = []
        for p, times in enumerate(draws[b]):
            values = np.repeat(np.arange(1.0, 6.0), patterns[p])
            column = np.full(5, NAN)
            column[: values.size] = values
            columns += [column] * int(times)
        reference.append(
            krippendorff.alpha(
                reliability_data=np.column_stack(columns),
                level_of_measurement=level,
                value_domain=[1.0, 2.0, 3.0, 4.0, 5.0],
            )
        )
    np.testing.assert_allclose(ours, reference, atol=1e-10)
    row = A.krippendorff_alpha(df, level=level, boot=boot, seed=11).row(0, named=True)
    lo, hi = np.quantile(reference, [0.025, 0.975])
    assert row["ci_low"] == pytest.approx(lo, abs=1e-10)
    assert row["ci_high"] == pytest.approx(hi, abs=1e-10)


def test_alpha_bootstrap_is_reproducible_with_a_seed_and_names_its_method():
    df = long_from_wide(KRIPP)
    first = A.krippendorff_alpha(df, level="ordinal", boot=300, seed=5)
    again = A.krippendorff_alpha(df, level="ordinal", boot=300, seed=5)
    other = A.krippendorff_alpha(df, level="ordinal", boot=300, seed=6)
    assert first.equals(again)
    assert first["ci_low"][0] != other["ci_low"][0]
    assert "bootstrap over units" in first["method"][0] and "seed 5" in first["method"][0]
    assert "P(alpha < 0.667)" in first["note"][0]
    generator = A.krippendorff_alpha(df, level="ordinal", boot=300, seed=np.random.default_rng(5))
    assert generator["ci_low"][0] == first["ci_low"][0]


@pytest.mark.parametrize("bootstrap", ["units", "pairable"])
def test_alpha_bootstrap_without_a_seed_draws_one_and_records_it(bootstrap):
    df = long_from_wide(KRIPP)
    first = A.krippendorff_alpha(df, level="ordinal", boot=200, bootstrap=bootstrap)
    seed = first["seed"][0]
    assert isinstance(seed, int) and 0 <= seed < 2**32
    assert f"seed {seed} (drawn: none was given)" in first["method"][0]
    again = A.krippendorff_alpha(df, level="ordinal", boot=200, bootstrap=bootstrap, seed=seed)
    assert again["seed"][0] == seed
    assert (again["ci_low"][0], again["ci_high"][0]) == (first["ci_low"][0], first["ci_high"][0])
    assert "(drawn" not in again["method"][0]


@pytest.mark.parametrize("bootstrap", ["units", "pairable"])
def test_alpha_bootstrap_in_chunks_equals_one_draw(bootstrap, monkeypatch):
    # replicates are drawn in chunks so memory stays bounded; the stream must not change
    df = long_from_wide(KRIPP)
    whole = A.krippendorff_alpha(df, level="interval", boot=300, seed=4, bootstrap=bootstrap)
    monkeypatch.setattr(alpha_module, "BOOT_CHUNK", 7)
    chunked = A.krippendorff_alpha(df, level="interval", boot=300, seed=4, bootstrap=bootstrap)
    assert chunked.equals(whole)


@pytest.mark.parametrize(
    "scale", [[1, 2, 3, 4, 5], ["1", "2", "3", "4", "5"], ["1.0", "2.0", "3.0", "4.0", "5.0"],
              [1.0, 2.0, 3.0, 4.0, 5.0], [1, 1.5, 2, 3, 4, 5]],
)  # fmt: skip
def test_a_numeric_scale_matches_integer_ratings_by_value(scale):
    # KRIPP ordinal .815 and interval .849 (3 decimals, tol 5e-4) whatever the scale's spelling;
    # an unused 1.5 changes neither (ordinal distances count only pairable values).
    df = long_from_wide(KRIPP).with_columns(pl.col("value").cast(pl.Int64))
    ordinal = A.krippendorff_alpha(df, level="ordinal", boot=0, scale=scale)
    assert ordinal["estimate"][0] == pytest.approx(0.815, abs=5e-4)
    table = A.agreement_table(df, level="interval", boot=0, scale=scale)
    assert table["estimate"][0] == pytest.approx(0.849, abs=5e-4)


def test_pairable_bootstrap_is_kalpha_and_centred_on_alpha():
    # Hayes & Krippendorff (2007): pairs drawn from the coincidences, D_e fixed, so replicate
    # D_o is unbiased for the observed D_o and the interval brackets the estimate.
    df = long_from_wide(KRIPP)
    row = A.krippendorff_alpha(df, level="ordinal", boot=4000, seed=3, bootstrap="pairable").row(
        0, named=True
    )
    assert "Hayes & Krippendorff 2007" in row["method"] and "KALPHA" in row["method"]
    # 55 = sum over units of m_u (m_u - 1) / 2 for KRIPP (units with 4, 3, 2 values)
    assert "55 value pairs" in row["method"]
    assert row["ci_low"] < row["estimate"] < row["ci_high"]
    assert (row["ci_low"] + row["ci_high"]) / 2 == pytest.approx(row["estimate"], abs=0.1)


def test_alpha_undefined_when_every_value_is_the_same():
    df = long_from_wide([[3, 3, 3, NAN], [3, 3, NAN, 3], [3, NAN, 3, 3]])
    row = A.krippendorff_alpha(df, level="nominal", boot=50, seed=1).row(0, named=True)
    assert row["applicable"] is False and row["estimate"] is None
    assert "undefined" in row["note"]


# --- Gwet family: percent agreement, AC1/AC2, Randolph, Fleiss --------------------------------


@pytest.mark.parametrize(
    ("function", "kwargs", "estimate", "est_tol", "ci", "p_value"),
    [
        # IRRCAC README: pa.coeff.raw -> 0.8181818, CI (0.542, 1); no p-value for pa here
        (A.percent_agreement, {}, 0.8181818, 1e-7, (0.542, 1.0), None),
        # IRRCAC README: gwet.ac1.raw -> 0.77544, CI (0.461, 1), p 0.000208721
        (A.gwet_ac1, {}, 0.77544, 5e-6, (0.461, 1.0), 0.000208721),
        # IRRCAC weighting vignette: gwet.ac1.raw(weights="quadratic") -> AC2 0.914,
        # pa 0.9753788, pe 0.7137044, CI (0.685, 1), p 2.634438e-06
        (A.gwet_ac2, {"weights": "quadratic"}, 0.9140012, 5e-6, (0.685, 1.0), 2.634438e-06),
        # IRRCAC README: fleiss.kappa.raw -> 0.76117, CI (0.424, 1), p 0.000419173 (Gwet's
        # generalisation to missing ratings, t test with his SE)
        (A.fleiss_kappa, {}, 0.76117, 5e-6, (0.424, 1.0), 0.000419173),
        # IRRCAC README: bp.coeff.raw (Brennan-Prediger = Randolph) -> 0.77273, CI (0.454, 1),
        # p 0.0002375609
        (A.randolph_kappa, {}, 0.77273, 5e-6, (0.454, 1.0), 0.0002375609),
    ],
)
def test_gwet_family_matches_irrcac_on_cac_raw4raters(
    function, kwargs, estimate, est_tol, ci, p_value
):
    # tolerances: estimates as printed (5e-6 for 5 decimals), limits 5e-4 (3 decimals),
    # p-values relative 1e-3 (irrCAC prints 4-7 significant digits; its p is two-sided)
    row = function(long_from_wide(KRIPP), **kwargs).row(0, named=True)
    assert row["estimate"] == pytest.approx(estimate, abs=est_tol)
    assert row["ci_low"] == pytest.approx(ci[0], abs=5e-4)
    assert row["ci_high"] == pytest.approx(ci[1], abs=5e-4)
    if p_value is None:
        assert row["p_value"] is None
    else:
        assert row["p_value"] == pytest.approx(p_value, rel=1e-3)
    # all 12 rated units and all 41 ratings (unit 12 has one rating: it counts in pi_k)
    assert row["n_units"] == 12 and row["n_values"] == 41


def test_gwet_ac2_linear_matches_irrcac_python_port():
    # afergadis/irrCAC (Python port of irrCAC) test/unit/irrCAC/raw/test_gwet.py,
    # test_gwet_raw4raters_linear_weights: AC2 0.859, CI (0.600, 1) to 3 decimals -> tol 5e-4
    row = A.gwet_ac2(long_from_wide(KRIPP), weights="linear").row(0, named=True)
    assert row["estimate"] == pytest.approx(0.859, abs=5e-4)
    assert row["ci_low"] == pytest.approx(0.600, abs=5e-4)
    assert "pa = 0.9394, pe = 0.5710" in row["method"]  # port: pa 0.939, pe 0.571


@pytest.mark.parametrize(
    ("function", "kwargs", "estimate", "ci"),
    [
        # IRRCAC README, distrib.6raters: gwet.ac1.dist 0.4448007 (0.264, 0.625)
        (A.gwet_ac1, {}, 0.4448007, (0.264, 0.625)),
        # fleiss.kappa.dist 0.4139265 (0.24, 0.588)
        (A.fleiss_kappa, {}, 0.4139265, (0.240, 0.588)),
        # bp.coeff.dist 0.4388889 (0.261, 0.617)
        (A.randolph_kappa, {}, 0.4388889, (0.261, 0.617)),
        # IRRCAC weighting vignette: gwet.ac1.dist(weights=quadratic.weights(1:5)) 0.4837438
        # (0.257, 0.711)
        (A.gwet_ac2, {"weights": "quadratic"}, 0.4837438, (0.257, 0.711)),
    ],
)
def test_gwet_family_matches_irrcac_on_distrib_6raters(function, kwargs, estimate, ci):
    # tolerances: 1e-7 on 7-decimal estimates, 5e-4 on 3-decimal limits
    row = function(long_from_counts(DISTRIB_6RATERS, [1, 2, 3, 4, 5]), **kwargs).row(0, named=True)
    assert row["estimate"] == pytest.approx(estimate, abs=1e-7)
    assert row["ci_low"] == pytest.approx(ci[0], abs=5e-4)
    assert row["ci_high"] == pytest.approx(ci[1], abs=5e-4)


def test_fleiss_kappa_matches_irr_on_fleiss_1971_diagnoses():
    # FLEISS: kappa 0.4302445 (tol 1e-7), z 17.65183 (tol 1e-5), p = 0 to R's precision
    df = long_from_wide(np.asarray(DIAGNOSES).T)
    row = A.fleiss_kappa(df).row(0, named=True)
    assert row["estimate"] == pytest.approx(0.4302445, abs=1e-7)
    assert row["statistic_value"] == pytest.approx(17.65183, abs=1e-5)
    assert row["p_value"] < 1e-15
    assert "Fleiss, Nee & Landis (1979)" in row["method"]
    assert (row["n_units"], row["n_raters"], row["n_values"]) == (30, 6, 180)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_fleiss_and_randolph_equal_statsmodels_on_balanced_data(seed):
    # statsmodels.stats.inter_rater.fleiss_kappa, method="fleiss" and "randolph" (q = number of
    # table columns: all five categories are used here); tolerance 1e-12
    data = random_ratings(seed, raters=5, units=25, missing=0.0)
    table, _ = inter_rater.aggregate_raters(data.T.astype(int), n_cat=None)
    assert table.shape[1] == 5
    df = long_from_wide(data)
    assert A.fleiss_kappa(df)["estimate"][0] == pytest.approx(
        inter_rater.fleiss_kappa(table, method="fleiss"), abs=1e-12
    )
    assert A.randolph_kappa(df)["estimate"][0] == pytest.approx(
        inter_rater.fleiss_kappa(table, method="randolph"), abs=1e-12
    )


@pytest.mark.parametrize(
    ("counts", "scale", "overall", "fixed", "free"),
    [
        # RANDOLPH calculator, values to 6 decimals (tolerance 6e-6, as statsmodels uses)
        ([[7, 1], [3, 5]], None, 0.607143, 0.161905, 0.214286),
        # third category offered but never chosen: q = 3 only when the scale declares it
        ([[6, 1, 0], [0, 7, 0]], [1, 2, 3], 0.857143, 0.708333, 0.785714),
    ],
)
def test_percent_fleiss_randolph_match_randolphs_calculator(counts, scale, overall, fixed, free):
    df = long_from_counts(counts, [1, 2, 3])
    assert A.percent_agreement(df)["estimate"][0] == pytest.approx(overall, abs=6e-6)
    assert A.fleiss_kappa(df)["estimate"][0] == pytest.approx(fixed, abs=6e-6)
    row = A.randolph_kappa(df, scale=scale).row(0, named=True)
    assert row["estimate"] == pytest.approx(free, abs=6e-6)
    assert ("from the declared scale" in row["note"]) is (scale is not None)


def test_randolph_depends_on_the_declared_number_of_categories():
    # (pa - 1/q) / (1 - 1/q) with pa = 0.857143 (RANDOLPH second table): q = 2 -> 0.714286
    df = long_from_counts([[6, 1, 0], [0, 7, 0]], [1, 2, 3])
    assert A.randolph_kappa(df)["estimate"][0] == pytest.approx(0.714286, abs=6e-6)


# --- Cohen's kappa -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weights", "kappa", "ci", "z", "p"),
    [
        # SAS simple kappa: 0.4842, 95% (0.2137, 0.7547), Z 3.2626, two-sided p 0.0011
        ("unweighted", 0.4842, (0.2137, 0.7547), 3.2626, 0.0011),
        # SAS weighted kappa (Cicchetti-Allison = linear over 3 categories): 0.4701,
        # (0.1845, 0.7558), Z 3.2971, p 0.0010
        ("linear", 0.4701, (0.1845, 0.7558), 3.2971, 0.0010),
    ],
)
def test_cohen_kappa_matches_sas(weights, kappa, ci, z, p):
    # SAS prints 4 decimals: tolerance 5e-5 (p-values 5e-5 too)
    row = A.cohen_kappa(long_from_table([[0, 4, 1], [0, 8, 0], [0, 1, 5]]), weights=weights).row(
        0, named=True
    )
    assert row["estimate"] == pytest.approx(kappa, abs=5e-5)
    assert row["ci_low"] == pytest.approx(ci[0], abs=5e-5)
    assert row["ci_high"] == pytest.approx(ci[1], abs=5e-5)
    assert row["statistic_value"] == pytest.approx(z, abs=5e-5)
    assert row["p_value"] == pytest.approx(p, abs=5e-5)
    assert (row["rater_a"], row["rater_b"], row["n_units"]) == ("A", "B", 19)


@pytest.mark.parametrize(
    ("weights", "kappa", "z", "p"),
    [
        # IRR_KAPPA2 kappa2(anxiety[,2:3]): -0.006289308, z -0.0604067, p 0.9518317
        ("unweighted", -0.006289308, -0.0604067, 0.9518317),
        # kappa2(anxiety[,2:3], "equal"): 0.1459075, z 1.282472, p 0.1996772
        ("linear", 0.1459075, 1.282472, 0.1996772),
        # kappa2(anxiety[,2:3], "squared"): 0.2520325, z 1.437451, p 0.1505898
        ("quadratic", 0.2520325, 1.437451, 0.1505898),
    ],
)
def test_cohen_kappa_matches_r_irr_kappa2(weights, kappa, z, p):
    # irr weights over the observed levels by their rank (levels 1, 2, 3, 4, 6 -> 1..5), while we
    # weight numeric categories by value; the test passes the ranks so both weight alike.
    # Tolerances 1e-6 (kappa, p) and 1e-5 (z), as statsmodels' own test of the same numbers.
    pair = ANXIETY[:, 1:]
    ranks = np.searchsorted(np.unique(pair), pair) + 1
    row = A.cohen_kappa(long_from_wide(ranks.T), weights=weights).row(0, named=True)
    assert row["estimate"] == pytest.approx(kappa, abs=1e-6)
    assert row["statistic_value"] == pytest.approx(z, abs=1e-5)
    assert row["p_value"] == pytest.approx(p, abs=1e-6)


@pytest.mark.parametrize("weights", ["unweighted", "linear", "quadratic"])
@pytest.mark.parametrize("seed", [0, 1])
def test_cohen_kappa_over_the_declared_scale_equals_statsmodels(weights, seed):
    # statsmodels cohens_kappa on the full 5 x 5 table (category 5 offered, never used) versus
    # the 4 x 4 table of observed categories; statsmodels' linear/quadratic weights use the
    # category positions, which equal the values 1..5 here. Tolerance 1e-10.
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 5, 60)
    b = np.clip(a + rng.integers(-1, 2, 60), 1, 4)
    df = long_from_wide(np.vstack([a, b]))
    wt = None if weights == "unweighted" else weights
    full = np.zeros((5, 5))
    np.add.at(full, (a - 1, b - 1), 1)
    for scale, table in (([1, 2, 3, 4, 5], full), (None, full[:4, :4])):
        expected = inter_rater.cohens_kappa(table, wt=wt)
        row = A.cohen_kappa(df, weights=weights, scale=scale).row(0, named=True)
        assert row["estimate"] == pytest.approx(expected.kappa, abs=1e-10)
        assert row["statistic_value"] == pytest.approx(expected.z_value, abs=1e-10)
        low = max(-1.0, expected.kappa_low)
        assert row["ci_low"] == pytest.approx(low, abs=1e-10)
        if weights != "unweighted":
            assert ("over the declared scale" in row["note"]) is (scale is not None)
    # (An unused category at the end changes nothing for Cohen's kappa: linear and quadratic
    # weights are affine in the distance and the span cancels in (p_o - p_e) / (1 - p_e).)


@pytest.mark.parametrize("weights", ["linear", "quadratic"])
def test_weighted_kappa_is_not_fooled_by_an_unused_middle_category(weights):
    # Ratings use 1, 2, 4, 5 of a 1..5 scale. Weighting by the observed levels' positions (R irr,
    # scikit-learn, statsmodels on the 4 x 4 table) treats 2 -> 4 as one step; we weight numeric
    # categories by value, which equals statsmodels on the full 5 x 5 table (tolerance 1e-10).
    rng = np.random.default_rng(3)
    levels = np.array([1, 2, 4, 5])
    a = levels[rng.integers(0, 4, 80)]
    b = levels[np.clip(np.searchsorted(levels, a) + rng.integers(-1, 2, 80), 0, 3)]
    full = np.zeros((5, 5))
    np.add.at(full, (a - 1, b - 1), 1)
    ours = A.cohen_kappa(long_from_wide(np.vstack([a, b])), weights=weights)["estimate"][0]
    assert ours == pytest.approx(inter_rater.cohens_kappa(full, wt=weights).kappa, abs=1e-10)
    observed_only = full[np.ix_(levels - 1, levels - 1)]
    by_position = inter_rater.cohens_kappa(observed_only, wt=weights).kappa
    assert abs(ours - by_position) > 1e-3


def test_cohen_kappa_one_row_per_pair_with_two_common_units():
    # r1 & r2 share units 1-3, r1 & r3 share only unit 4, r2 & r3 share nothing
    df = pl.DataFrame(
        {
            "unit": [1, 2, 3, 1, 2, 3, 4, 4],
            "rater": ["r1", "r1", "r1", "r2", "r2", "r2", "r1", "r3"],
            "value": [1, 2, 2, 1, 2, 1, 2, 2],
        }
    )
    out = A.cohen_kappa(df)
    assert out.select("rater_a", "rater_b").rows() == [("r1", "r2")]
    assert out["n_units"][0] == 3


def test_cohen_kappa_with_no_usable_pair_is_a_not_applicable_row():
    df = pl.DataFrame({"unit": [1, 1, 2, 2], "rater": ["a", "b", "c", "d"], "value": [1, 2, 1, 1]})
    row = A.cohen_kappa(df).row(0, named=True)
    assert row["applicable"] is False and "two or more units in common" in row["note"]


def pair_table_by_hand(df: pl.DataFrame, a: str, b: str, categories) -> np.ndarray:
    """Rater a x rater b contingency table over the units both rated, built with plain dicts."""
    given = {}
    for unit, rater, value in df.iter_rows():
        given.setdefault(rater, {})[unit] = value
    index = {c: i for i, c in enumerate(categories)}
    table = np.zeros((len(categories), len(categories)))
    for unit in given[a].keys() & given[b].keys():
        table[index[given[a][unit]], index[given[b][unit]]] += 1
    return table


@pytest.mark.parametrize("dense_limit", [None, 1])
@pytest.mark.parametrize("weights", ["unweighted", "linear", "quadratic"])
def test_cohen_kappa_for_every_pair_of_many_raters_equals_statsmodels(
    weights, dense_limit, monkeypatch
):
    # 9 raters, 35% of ratings missing, rows shuffled, and rater r0 always answering 3 (a pair
    # r0 x r1 with r1 also constant would be undefined; here r8 is constant too). Every pair's
    # row must equal statsmodels.stats.inter_rater.cohens_kappa on that pair's 5 x 5 table (built
    # by hand in this test; weights by position = by value for 1..5): kappa, z, two-sided p and
    # the truncated Wald interval, tolerance 1e-10 (z and p where SE_0 > 0). dense_limit=1 forces the compressed
    # (np.unique) path that large rater pools take instead of one dense bincount.
    if dense_limit is not None:
        monkeypatch.setattr(_pivot, "_DENSE_CELLS", dense_limit)
    data = random_ratings(5, raters=9, units=45, missing=0.35)
    data[0, ~np.isnan(data[0])] = 3
    data[8, ~np.isnan(data[8])] = 3
    df = long_from_wide(data, raters=[f"r{i}" for i in range(9)]).sample(fraction=1.0, seed=1)
    df = df.with_columns(pl.col("value").cast(pl.Int64))
    out = A.cohen_kappa(df, weights=weights, scale=[1, 2, 3, 4, 5])
    expected_pairs = []
    for i in range(9):
        for j in range(i + 1, 9):
            table = pair_table_by_hand(df, f"r{i}", f"r{j}", [1, 2, 3, 4, 5])
            if table.sum() >= 2:
                expected_pairs.append((f"r{i}", f"r{j}", table))
    assert out.select("rater_a", "rater_b").rows() == [(a, b) for a, b, _ in expected_pairs]
    wt = None if weights == "unweighted" else weights
    z_crit = 1.959963984540054
    for row, (_, _, table) in zip(out.iter_rows(named=True), expected_pairs, strict=True):
        assert row["n_units"] == table.sum() and row["n_values"] == 2 * table.sum()
        if (table.sum(axis=0) > 0).sum() == 1 and (table.sum(axis=1) > 0).sum() == 1:
            assert row["applicable"] is False and "single category" in row["note"]
            assert row["estimate"] is None and row["p_value"] is None
            continue
        with np.errstate(all="ignore"):  # statsmodels takes roots of -1e-17 for constant raters
            ref = inter_rater.cohens_kappa(table, wt=wt)
        assert row["estimate"] == pytest.approx(ref.kappa, abs=1e-10)
        if "r0" in (row["rater_a"], row["rater_b"]) or row["rater_b"] == "r8":
            # one constant rater: kappa = 0 and both variances are 0 up to rounding (+-1e-17 in
            # either implementation), so the SEs are noise of order 1e-9: nothing to compare
            continue
        assert row["statistic_value"] == pytest.approx(ref.z_value, abs=1e-10)
        assert row["p_value"] == pytest.approx(ref.pvalue_two_sided, abs=1e-10)
        low = max(-1.0, ref.kappa - z_crit * ref.std_kappa)
        high = min(1.0, ref.kappa + z_crit * ref.std_kappa)
        assert row["ci_low"] == pytest.approx(low, abs=1e-10)
        assert row["ci_high"] == pytest.approx(high, abs=1e-10)


def test_pair_tables_match_tables_built_by_hand():
    # Ratings.pair_tables against dict-built tables for every pair (exact counts), on text
    # categories in a declared order and shuffled rows.
    data = random_ratings(9, raters=6, units=30, missing=0.4, categories=3)
    names = {1.0: "low", 2.0: "mid", 3.0: "high"}
    df = long_from_wide(data).sample(fraction=1.0, seed=3)
    df = df.with_columns(pl.col("value").replace_strict(names, return_dtype=pl.String))
    scale = ["low", "mid", "high"]
    rat = read_ratings(df, unit="unit", rater="rater", value="value", scale=scale)
    a, b, tables = rat.pair_tables()
    for i, j, table in zip(a, b, tables, strict=True):
        by_hand = pair_table_by_hand(df, rat.rater_labels[i], rat.rater_labels[j], scale)
        np.testing.assert_array_equal(table, by_hand)
    assert len(a) == sum(
        pair_table_by_hand(df, x, y, scale).sum() >= 2
        for k, x in enumerate(rat.rater_labels)
        for y in rat.rater_labels[k + 1 :]
    )


# --- ICC ----------------------------------------------------------------------------------------


# SF79 via psych::ICC, rounded as printed: ICC and limits to 2 decimals (tol 5e-3), F to 1
# decimal (tol 0.05), p to 5 decimals (tol 5e-5, pingouin checks 4)
def _kripp_text(marker: str) -> pl.DataFrame:
    """KRIPP as text, a missing rating written as ``marker`` (R's write.csv: NA)."""
    matrix = np.asarray(KRIPP, dtype=float)
    rows = [
        (u + 1, f"r{r + 1}", marker if np.isnan(matrix[r, u]) else str(int(matrix[r, u])))
        for r in range(matrix.shape[0])
        for u in range(matrix.shape[1])
    ]
    return pl.DataFrame(rows, schema=["unit", "rater", "value"], orient="row")


@pytest.mark.parametrize("marker", ["NA", "NaN", "nan", "", "null", "NULL", " NA "])
@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
def test_text_missing_markers_are_refused_not_made_a_category(marker, level):
    # As a category, NA gives nominal alpha 0.577 on KRIPP, not Krippendorff's .743; at other
    # levels it must not hide behind "holds text, pass scale" or "needs numeric ratings".
    with pytest.raises(AnalysisError, match="marks a missing value") as info:
        A.agreement_table(_kripp_text(marker), level=level, boot=0)
    assert repr(marker) in str(info.value)


def test_a_missing_marker_declared_on_the_scale_is_a_category():
    df = _kripp_text("NA")
    out = A.krippendorff_alpha(df, level="nominal", boot=0, scale=["1", "2", "3", "4", "5", "NA"])
    assert out["applicable"][0] is True


def test_missing_markers_as_nulls_give_krippendorffs_value():
    # KRIPP nominal .743 (3 decimals, tol 5e-4) once NA is null
    df = _kripp_text("NA").with_columns(
        pl.when(pl.col("value") == "NA").then(None).otherwise(pl.col("value")).alias("value")
    )
    out = A.krippendorff_alpha(df, level="nominal", boot=0)
    assert out["estimate"][0] == pytest.approx(0.743, abs=5e-4)


SF79_ICC = {
    "ICC1": ("ICC(1)", 0.17, 1.8, 18, 0.16472, -0.13, 0.72),
    "ICC2": ("ICC(A,1)", 0.29, 11.0, 15, 0.00013, 0.02, 0.76),
    "ICC3": ("ICC(C,1)", 0.71, 11.0, 15, 0.00013, 0.34, 0.95),
    "ICC1k": ("ICC(k)", 0.44, 1.8, 18, 0.16472, -0.88, 0.91),
    "ICC2k": ("ICC(A,k)", 0.62, 11.0, 15, 0.00013, 0.07, 0.93),
    "ICC3k": ("ICC(C,k)", 0.91, 11.0, 15, 0.00013, 0.68, 0.99),
}


def shrout_fleiss_long(distinct_raters: bool = False) -> pl.DataFrame:
    data = np.asarray(SHROUT_FLEISS, dtype=float)
    rows = [
        (t, f"t{t}j{j}" if distinct_raters else f"j{j}", data[t, j])
        for t in range(data.shape[0])
        for j in range(data.shape[1])
    ]
    return pl.DataFrame(rows, schema=["unit", "rater", "value"], orient="row")


@pytest.mark.parametrize("form", list(SF79_ICC))
def test_icc_matches_shrout_fleiss_1979(form):
    alt, value, f, df2, p, low, high = SF79_ICC[form]
    out = A.icc(shrout_fleiss_long())
    assert out["variant"].to_list() == list(SF79_ICC)
    row = row_of(out, variant=form)
    assert row["alternative_name"] == alt
    assert row["estimate"] == pytest.approx(value, abs=5e-3)
    assert row["statistic_value"] == pytest.approx(f, abs=0.05)
    assert (row["df1"], row["df2"]) == (5, df2)
    assert row["p_value"] == pytest.approx(p, abs=5e-5)
    assert row["ci_low"] == pytest.approx(low, abs=5e-3)
    assert row["ci_high"] == pytest.approx(high, abs=5e-3)
    assert (row["n_units"], row["n_raters"], row["n_values"]) == (6, 4, 24)


def test_icc_k_of_many_raters_uses_the_one_way_model():
    # Every target judged by 4 different judges (24 raters): only the one-way ICCs are defined,
    # and they equal SF79's ICC1 = .17 and ICC1k = .44 (psych limits as above, tol 5e-3).
    out = A.icc(shrout_fleiss_long(distinct_raters=True))
    icc1 = row_of(out, variant="ICC1")
    assert icc1["estimate"] == pytest.approx(0.17, abs=5e-3)
    assert icc1["ci_low"] == pytest.approx(-0.13, abs=5e-3)
    assert "k of many raters" in icc1["note"] and "k = 4" in icc1["note"]
    assert row_of(out, variant="ICC1k")["estimate"] == pytest.approx(0.44, abs=5e-3)
    for form in ("ICC2", "ICC3", "ICC2k", "ICC3k"):
        row = row_of(out, variant=form)
        assert row["applicable"] is False and "same raters on every unit" in row["note"]


def test_icc_uses_complete_units_and_says_so():
    # Adding a seventh target rated by one judge only leaves the SF79 values unchanged.
    extra = pl.DataFrame({"unit": [99], "rater": ["j0"], "value": [3.0]})
    out = A.icc(pl.concat([shrout_fleiss_long(), extra]))
    row = row_of(out, variant="ICC3")
    assert row["estimate"] == pytest.approx(0.71, abs=5e-3)
    assert "used the 6 units rated by all 4 raters" in row["note"]


@pytest.mark.parametrize("extra_raters", [1, 17])  # exact search (<= 16 raters) and greedy
@pytest.mark.parametrize("form", list(SF79_ICC))
def test_icc_stray_ratings_by_extra_raters_leave_the_two_way_block(form, extra_raters):
    # SF79 plus one rating of target 0 by each of some extra judges: the largest complete block
    # is still SF79's 6 x 4 table, so Shrout & Fleiss's values (psych, tolerances as above).
    alt, value, f, df2, p, low, high = SF79_ICC[form]
    extra = pl.DataFrame(
        {
            "unit": [0] * extra_raters,
            "rater": [f"x{i:02d}" for i in range(extra_raters)],
            "value": [3.0] * extra_raters,
        }
    )
    out = A.agreement_table(pl.concat([shrout_fleiss_long(), extra]), level="interval", boot=0)
    row = row_of(out.filter(pl.col("statistic") == "icc"), variant=form)
    assert row["applicable"] is True
    assert row["estimate"] == pytest.approx(value, abs=5e-3)
    assert row["ci_low"] == pytest.approx(low, abs=5e-3)
    assert row["ci_high"] == pytest.approx(high, abs=5e-3)
    assert (row["n_units"], row["n_raters"]) == (6, 4)
    assert "the 6 units rated by all of the 4 raters j0, j1, j2, j3" in row["note"]
    assert "left out rater(s) x00" in row["note"]
    assert f"({extra_raters} of {24 + extra_raters} ratings)" in row["note"]
    assert "different raters" not in row["note"]


def test_icc_for_nominal_level_is_six_not_applicable_rows():
    out = A.icc(shrout_fleiss_long(), level="nominal")
    assert out.height == 6 and not out["applicable"].any()
    assert out["note"].str.contains("numeric").all()


# --- agreement_table ------------------------------------------------------------------------------


def test_agreement_table_ordinal_reports_every_statistic():
    out = A.agreement_table(long_from_wide(KRIPP), level="ordinal", boot=100, seed=2)
    assert list(out.columns) == list(A.RESULT_SCHEMA)
    assert out["level"].unique().to_list() == ["ordinal"]
    stats = set(out["statistic"].unique())
    assert stats == {
        "krippendorff_alpha",
        "percent_agreement",
        "fleiss_kappa",
        "randolph_kappa",
        "gwet_ac1",
        "gwet_ac2",
        "cohen_kappa",
        "icc",
    }
    # KRIPP ordinal alpha .815 (tol 5e-4) and irrCAC AC1 0.77544 (tol 5e-6) come through unchanged
    assert row_of(out, statistic="krippendorff_alpha")["estimate"] == pytest.approx(0.815, abs=5e-4)
    assert row_of(out, statistic="gwet_ac1")["estimate"] == pytest.approx(0.77544, abs=5e-6)
    assert out.filter(pl.col("statistic") == "cohen_kappa").height == 3 * 6  # 3 weights x 6 pairs
    assert out.filter(pl.col("statistic") == "icc")["note"].str.contains("ordinal codes").all()
    assert out["applicable"].all()


def test_agreement_table_nominal_marks_weighted_and_icc_not_applicable():
    words = {1: "no", 2: "minor", 3: "major", 4: "severe", 5: "fatal"}
    df = long_from_wide(KRIPP).with_columns(
        pl.col("value").cast(pl.Int64).replace_strict(words, return_dtype=pl.String)
    )
    out = A.agreement_table(df, level="nominal", boot=50, seed=1)
    # text labels, nominal: alpha nominal .743 (KRIPP, tol 5e-4)
    assert row_of(out, statistic="krippendorff_alpha")["estimate"] == pytest.approx(0.743, abs=5e-4)
    not_applicable = out.filter(~pl.col("applicable"))
    assert set(not_applicable["statistic"]) == {"gwet_ac2", "cohen_kappa", "icc"}
    assert not_applicable["estimate"].is_null().all()
    assert not_applicable["note"].is_not_null().all()
    assert out.filter(pl.col("statistic") == "cohen_kappa", pl.col("applicable")).height == 6


def test_agreement_table_warns_about_low_prevalence():
    # 20 units x 3 raters, 57 of 60 ratings "no harm" (95%): kappa-type rows carry the warning
    values = np.zeros((3, 20), dtype=int)
    values[0, 3] = values[1, 3] = values[2, 11] = 1
    out = A.agreement_table(long_from_wide(values), level="nominal", boot=50, seed=1)
    for stat in ("fleiss_kappa", "cohen_kappa", "krippendorff_alpha"):
        notes = out.filter(pl.col("statistic") == stat, pl.col("applicable"))["note"]
        assert notes.len() > 0
        assert notes.str.contains("low prevalence").fill_null(False).all(), stat
        assert notes.str.contains("0 is 95% of ratings").fill_null(False).all(), stat
    assert row_of(out, statistic="gwet_ac1")["note"] is None


def test_agreement_table_continuous_interval_data_skips_categorical_statistics():
    rng = np.random.default_rng(0)
    truth = rng.normal(50, 10, 30)
    data = truth + rng.normal(0, 3, (3, 30))
    out = A.agreement_table(long_from_wide(data), level="interval", boot=50, seed=1)
    assert row_of(out, statistic="krippendorff_alpha")["applicable"] is True
    assert out.filter(pl.col("statistic") == "icc")["applicable"].all()
    categorical = out.filter(~pl.col("statistic").is_in(["krippendorff_alpha", "icc"]))
    assert not categorical["applicable"].any()
    assert categorical["note"].str.contains("continuous").all()


def test_all_identical_ratings_give_reasons_not_errors():
    df = long_from_wide([[2, 2, 2], [2, 2, 2]])
    out = A.agreement_table(df, level="ordinal", boot=20, seed=1)
    assert row_of(out, statistic="percent_agreement")["estimate"] == 1.0
    for stat in ("krippendorff_alpha", "fleiss_kappa", "gwet_ac1", "randolph_kappa"):
        row = row_of(out, statistic=stat)
        assert row["applicable"] is False and row["note"], stat
    assert not out.filter(pl.col("statistic") == "icc")["applicable"].any()


# --- bad input ----------------------------------------------------------------------------------


def _df(**cols) -> pl.DataFrame:
    base = {"unit": [1, 1, 2, 2], "rater": ["a", "b", "a", "b"], "value": [1, 2, 2, 2]}
    base.update(cols)
    return pl.DataFrame(base)


@pytest.mark.parametrize(
    ("frame", "kwargs", "message"),
    [
        (_df().drop("rater"), {"level": "nominal"}, "rater column 'rater' not found"),
        (_df(rater=["a", "a", "a", "a"], unit=[1, 2, 3, 4]), {"level": "nominal"}, "only 1 rater"),
        (_df(value=["x", "y", "x", "x"]), {"level": "interval"}, "needs numeric ratings"),
        (_df(value=["x", "y", "x", "x"]), {"level": "ordinal"}, r"declare the scale \(scale="),
        (_df(), {"level": "ordinal", "scale": ["1", "two"]}, "does not match the type"),
        (_df(), {"level": "ordinal", "scale": ["1.0", "2", 1]}, "lists a category twice"),
        (_df(unit=[1, 2, 3, 4]), {"level": "nominal"}, "fewer than 2 pairable values"),
        (_df(rater=["a", "a", "a", "b"]), {"level": "nominal"}, "rated unit 1 2 times"),
        (_df(), {"level": "ordinal", "scale": [1, 3, 5]}, "not on the declared scale"),
        (_df(), {"level": "likert"}, "level must be one of"),
        (_df(), {"level": "nominal", "ci": 95}, "ci must be"),
        (_df(), {"level": "nominal", "boot": -1}, "boot must be"),
        (_df(value=[-1, 2, 2, 2]), {"level": "ratio"}, "non-negative"),
        (_df().to_pandas(), {"level": "nominal"}, "polars DataFrame"),
        (_df(rater=["a", None, "a", "b"]), {"level": "nominal"}, "have no rater"),
    ],
)
def test_bad_input_raises_analysis_error_with_a_sentence(frame, kwargs, message):
    with pytest.raises(AnalysisError, match=message) as info:
        A.agreement_table(frame, **kwargs)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_krippendorff_alpha_rejects_an_unknown_bootstrap():
    with pytest.raises(AnalysisError, match="bootstrap must be"):
        A.krippendorff_alpha(long_from_wide(KRIPP), level="nominal", bootstrap="raters")


@pytest.mark.parametrize(
    "function",
    [A.fleiss_kappa, A.gwet_ac1, A.percent_agreement, A.randolph_kappa, A.cohen_kappa, A.icc],
)
def test_every_function_rejects_a_single_rater(function):
    with pytest.raises(AnalysisError, match="agreement needs at least two"):
        function(_df(rater=["a", "a", "a", "a"], unit=[1, 2, 3, 4]))


def test_missing_ratings_as_nulls_equal_absent_rows():
    # A null value is a missing rating: same alpha as dropping the row (KRIPP nominal .743)
    df = long_from_wide(KRIPP)
    with_nulls = pl.concat(
        [df, pl.DataFrame({"unit": [12, 12], "rater": ["r1", "r3"], "value": [None, NAN]})],
        how="vertical_relaxed",
    )
    assert A.krippendorff_alpha(with_nulls, level="nominal", boot=0)["estimate"][0] == (
        pytest.approx(A.krippendorff_alpha(df, level="nominal", boot=0)["estimate"][0], abs=0)
    )


def test_custom_column_names():
    df = long_from_wide(KRIPP).rename({"unit": "answer", "rater": "clinician", "value": "score"})
    out = A.krippendorff_alpha(
        df, unit="answer", rater="clinician", value="score", level="interval", boot=0
    )
    assert out["estimate"][0] == pytest.approx(0.849, abs=5e-4)  # KRIPP interval, tol 5e-4


def test_ordinal_text_categories_follow_the_declared_scale():
    # fast-krippendorff's doctest (KRIPP with labels): ordinal alpha with the ordered domain
    # "very low" < ... < "very high" is .815, as with the numbers (tol 5e-4); the ICC needs numbers.
    labels = ["very low", "low", "mid", "high", "very high"]
    df = long_from_wide(KRIPP).with_columns(
        pl.col("value")
        .cast(pl.Int64)
        .replace_strict(dict(enumerate(labels, 1)), return_dtype=pl.String)
    )
    out = A.agreement_table(df, level="ordinal", scale=labels, boot=50, seed=1)
    assert row_of(out, statistic="krippendorff_alpha")["estimate"] == pytest.approx(0.815, abs=5e-4)
    # text categories are weighted by position on the scale: here positions = the numbers 1..5,
    # so AC2 equals IRRCAC's quadratic 0.9140012 on the numbers (tol 5e-6)
    ac2 = row_of(out, statistic="gwet_ac2", variant="quadratic")
    assert ac2["estimate"] == pytest.approx(0.9140012, abs=5e-6)
    assert "positions" in ac2["note"]
    assert not out.filter(pl.col("statistic") == "icc")["applicable"].any()


@pytest.mark.parametrize(
    ("shape", "high", "dense_limit"),
    [
        ((500, 5), 4, None),  # bincount over base**V packed rows
        ((500, 5), 4, 1),  # 1-D np.unique over packed rows
        ((300, 30), 40, None),  # 41**30 overflows int64: the row-wise np.unique fallback
        ((0, 3), 1, None),
        ((7, 1), 3, None),
    ],
)
def test_distinct_rows_equals_numpy_unique_over_rows(shape, high, dense_limit, monkeypatch):
    # numpy.unique(axis=0, return_inverse=True, return_counts=True) is the reference; the order
    # of the distinct rows matters (the bootstrap draws patterns in that order), so: exact.
    if dense_limit is not None:
        monkeypatch.setattr(_pivot, "_DENSE_CELLS", dense_limit)
    counts = np.random.default_rng(0).integers(0, high, shape)
    patterns, inverse, freq = distinct_rows(counts)
    ref_patterns, ref_inverse, ref_freq = np.unique(
        counts, axis=0, return_inverse=True, return_counts=True
    )
    np.testing.assert_array_equal(patterns, ref_patterns)
    np.testing.assert_array_equal(inverse, ref_inverse.reshape(-1))
    np.testing.assert_array_equal(freq, ref_freq)


def test_agreement_table_does_not_depend_on_row_order():
    # Every statistic is a function of the set of ratings: shuffling the rows must give the same
    # frame, exactly (same bootstrap seed).
    df = long_from_wide(random_ratings(4, raters=7, units=50, missing=0.3))
    shuffled = df.sample(fraction=1.0, seed=8)
    first = A.agreement_table(df, level="ordinal", boot=50, seed=2)
    second = A.agreement_table(shuffled, level="ordinal", boot=50, seed=2)
    assert first.equals(second, null_equal=True)


def test_shared_arrays_of_a_ratings_object_are_read_only():
    # One Ratings feeds every statistic of agreement_table; a statistic that wrote into a shared
    # array would silently change the next one.
    rat = read_ratings(long_from_wide(KRIPP), unit="unit", rater="rater", value="value")
    for arr in (rat.counts(), rat.patterns()[0], rat.unit_pattern(), rat.pair_tables()[2]):
        with pytest.raises(ValueError, match="read-only"):
            arr[0] = 0


def test_icc_k_of_many_raters_is_unchanged_by_row_order_and_a_reversed_scale():
    # SF79 with a different judge for every rating, rows shuffled and the declared scale listed
    # from high to low: still Shrout & Fleiss's ICC1 = .17 and ICC1k = .44 (psych, tol 5e-3).
    df = shrout_fleiss_long(distinct_raters=True).sample(fraction=1.0, seed=5)
    out = A.agreement_table(df, level="interval", scale=list(range(10, 0, -1)), boot=0)
    icc1 = row_of(out.filter(pl.col("statistic") == "icc"), variant="ICC1")
    assert icc1["estimate"] == pytest.approx(0.17, abs=5e-3)
    icc1k = row_of(out.filter(pl.col("statistic") == "icc"), variant="ICC1k")
    assert icc1k["estimate"] == pytest.approx(0.44, abs=5e-3)


def test_icc_skips_the_block_search_when_no_block_can_cover_half_the_units(monkeypatch):
    # 40 units, each rated by 2 of 20 raters in rotation: every rater rated 4 units, so no set of
    # two or more raters can have rated 20 (half) of them in full, and the O(units x raters)
    # search must not run. The one-way forms apply, on all 40 units with k = 2 (Shrout & Fleiss
    # 1979, case 1: different raters per unit).
    def searched(*_args, **_kwargs):
        raise AssertionError("the largest-complete-block search ran")

    monkeypatch.setattr(icc_module, "_largest_complete_block", searched)
    rows = [
        {"unit": u, "rater": f"r{(u + j) % 20}", "value": float((u * 7 + j * 3) % 5)}
        for u in range(40)
        for j in range(2)
    ]
    frame = A.icc(pl.DataFrame(rows), unit="unit", rater="rater", value="value")
    by_form = {r["variant"]: r for r in frame.to_dicts()}
    assert by_form["ICC1"]["applicable"] and by_form["ICC1"]["n_units"] == 40
    assert not by_form["ICC2"]["applicable"]
    assert "'k of many raters' design (20 raters" in by_form["ICC1"]["note"]
