"""Non-inferiority, equivalence and multiplicity: tested against published values.

Every reference value below names its source and the tolerance used. Sources:

- Newcombe RG (1998) "Interval estimation for the difference between independent proportions:
  comparison of eleven methods", Stat Med 17:873-890, Table II, examples (a)-(h), methods 5 (Mee
  = Farrington-Manning score interval), 6 (Miettinen-Nurminen) and 10 (hybrid score). Printed to
  4 decimals, so tolerance 0.5e-4 (+1e-6 for float noise). Row (d) is also checked in R ratesci's
  tests (PeteLaud/ratesci tests/testthat/test3.R).
- GSK-Biostatistics/cicalc (R), tests/testthat/_snaps/prop_ci_diff.md: Mee score statistic for
  56/70 - 48/80 at delta 0 (2.65, p 0.004) and at delta 0.1 (1.348, p 0.0889), printed to 3-4
  digits.
- SAS PROC FREQ RISKDIFF(NONINF ... METHOD=SCORE) Farrington-Manning p-values and CL=MN
  statements as published in PSIAIMS/CAMIS SAS/ci_for_2indep_prop.qmd (36/154 vs 12/77, margin
  0.036, p 0.0248) and PeteLaud/ratesci-sas tests/v_scoreci.sas (28/42 vs 28/42, margin 0.2,
  p 0.0245, superiority Pr > Z 0.9755), printed to 4 decimals: tolerance 0.5e-4 (+1e-6).
- R package equivalence, tost(), values stored in statsmodels' stats/tests/test_tost.py (data
  "clinic", margin 0.6, alpha 0.05), printed to 16 digits: tolerance 1e-9.
- lme4 / MixedModels.jl for the crossed Penicillin model (data: lme4::Penicillin via
  vincentarelbundock/Rdatasets csv/lme4/Penicillin.csv): lme4 REML output (Bates, lme4 book
  ch. 2; as printed by lmerTest in the SciViews "SDD" course) variances 0.7169, 3.7311, 0.3024,
  intercept 22.9722 (SE 0.8086); MixedModels.jl documentation (REML: 0.716908, 3.730907,
  0.302416, SE 0.808572, criterion 330.8605889912561; ML: 0.7149795, 3.1351920, 0.3024264, SE
  0.744596, logLik -166.09417). Tolerance rtol 1e-4.
- lme4 on geepack::dietox (data shipped by statsmodels as regression/tests/results/dietox.csv,
  copied to tests/data/dietox.csv), reference values from statsmodels'
  regression/tests/test_lme.py::test_dietox (computed there in R with lme4): tolerance rtol 1e-4.
- scipy.stats.ttest_rel / bootstrap, statsmodels OLS, newcombe interval and multipletests:
  another package's output on the same data.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
import statsmodels.formula.api as smf
from conftest import pigeonhole_by_loop
from scipy import stats
from statsmodels.stats import proportion as sm_proportion
from statsmodels.stats.multitest import multipletests

from analysis import columns as cols
from analysis import mean_difference as mean_methods
from analysis import noninferiority as ni
from analysis.errors import AnalysisError
from analysis.noninferiority import (
    RESULT_SCHEMA,
    _fit_crossed,
    adjust_secondary,
    holm,
    mean_difference,
    newcombe_interval,
    restricted_mle,
    risk_difference,
    score_statistic,
    tost,
)

DATA = Path(__file__).parent / "data"
Z975 = stats.norm.ppf(0.975)


def binary_frame(x1: int, n1: int, x0: int, n0: int) -> pl.DataFrame:
    """0/1 ratings: arm 'llm' has x1 ones in n1, arm 'doc' x0 ones in n0; one rating per case."""
    values = [1] * x1 + [0] * (n1 - x1) + [1] * x0 + [0] * (n0 - x0)
    arms = ["llm"] * n1 + ["doc"] * n0
    return pl.DataFrame(
        {
            "case": [f"c{i}" for i in range(n1 + n0)],
            "rater": ["r1"] * (n1 + n0),
            "arm": arms,
            "value": values,
        }
    )


def likert_frame(seed: int = 0, cases: int = 30, raters: int = 4, shift: float = -0.1):
    """Crossed ratings: every rater rates both arms of every case (a complete, balanced design)."""
    rng = np.random.default_rng(seed)
    case_effect = rng.normal(0, 1, cases)
    rater_effect = rng.normal(0, 0.4, raters)
    rows = []
    for c in range(cases):
        for r in range(raters):
            for arm, delta in (("llm", shift), ("doc", 0.0)):
                rows.append(
                    {
                        "case": f"c{c:02d}",
                        "rater": f"r{r}",
                        "arm": arm,
                        "value": 3 + case_effect[c] + rater_effect[r] + delta + rng.normal(0, 0.7),
                    }
                )
    return pl.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Risk difference: Newcombe (1998) Table II
# --------------------------------------------------------------------------------------------

# (x1, n1, x0, n0): (Mee = method 5, Miettinen-Nurminen = method 6, hybrid score = method 10)
NEWCOMBE_TABLE_II = [
    ((56, 70, 48, 80), ((0.0533, 0.3377), (0.0528, 0.3382), (0.0524, 0.3339))),
    ((9, 10, 3, 10), ((0.1821, 0.8370), (0.1700, 0.8406), (0.1705, 0.8090))),
    ((6, 7, 2, 7), ((0.0544, 0.8478), (0.0342, 0.8534), (0.0582, 0.8062))),
    ((5, 56, 0, 29), ((-0.0313, 0.1926), (-0.0326, 0.1933), (-0.0381, 0.1926))),
    ((0, 10, 0, 20), ((-0.1611, 0.2775), (-0.1658, 0.2844), (-0.1611, 0.2775))),
    ((0, 10, 0, 10), ((-0.2775, 0.2775), (-0.2879, 0.2879), (-0.2775, 0.2775))),
    ((10, 10, 0, 20), ((0.7225, 1.0000), (0.7156, 1.0000), (0.6791, 1.0000))),
    ((10, 10, 0, 10), ((0.6777, 1.0000), (0.6636, 1.0000), (0.6075, 1.0000))),
]
TABLE_TOL = 0.5e-4 + 1e-6
METHOD_COLUMN = {"farrington-manning": 0, "miettinen-nurminen": 1, "newcombe": 2}


@pytest.mark.parametrize("method", list(METHOD_COLUMN))
@pytest.mark.parametrize(("counts", "published"), NEWCOMBE_TABLE_II)
def test_risk_difference_intervals_match_newcombe_table_ii(counts, published, method):
    x1, n1, x0, n0 = counts
    out = risk_difference(
        binary_frame(*counts), test="llm", reference="doc", margin=0.1, method=method
    )
    low, high = published[METHOD_COLUMN[method]]
    row = out.row(0, named=True)
    assert row[cols.CI_LEVEL] == pytest.approx(0.95)
    assert row[cols.ESTIMATE] == pytest.approx(x1 / n1 - x0 / n0, abs=1e-12)
    assert row[cols.CI_LOW] == pytest.approx(low, abs=TABLE_TOL)
    assert row[cols.CI_HIGH] == pytest.approx(high, abs=TABLE_TOL)


@pytest.mark.parametrize(
    "counts",
    [(56, 70, 48, 80), (7, 34, 1, 34), (0, 12, 5, 15), (30, 31, 2, 40), (3, 200, 9, 210)],
)
@pytest.mark.parametrize("level", [0.90, 0.95, 0.99])
def test_newcombe_matches_statsmodels(counts, level):
    # statsmodels' Newcombe interval is correct (only its score method is wrong for a non-zero
    # margin, issue #10269); same closed form, tolerance 1e-10.
    z = stats.norm.ppf(1 - (1 - level) / 2)
    ours = newcombe_interval(*counts, z=z)
    theirs = sm_proportion.confint_proportions_2indep(
        *counts, method="newcomb", compare="diff", alpha=1 - level
    )
    assert ours == pytest.approx(tuple(float(v) for v in theirs), abs=1e-10)


def test_farrington_manning_statistic_matches_cicalc():
    # cicalc (GSK, R) ci_prop_diff_mee(56/70 vs 48/80, delta = c(0, 0.1)): "At 0 the statistic is
    # 2.65 and the p-value is 0.004; at 0.1 the statistic is 1.348 and the p-value is 0.0889".
    assert score_statistic(56, 70, 48, 80, delta=0.0, mn=False) == pytest.approx(2.65, abs=5e-3)
    assert score_statistic(56, 70, 48, 80, delta=0.1, mn=False) == pytest.approx(1.348, abs=5e-4)
    # Through the public API: harm-type test of H0: p_llm - p_doc >= 0.1. The cicalc p-value is
    # the upper tail (H1: difference > 0.1); ours is the lower tail, so it is 1 - 0.0889.
    out = risk_difference(
        binary_frame(56, 70, 48, 80),
        test="llm",
        reference="doc",
        margin=0.1,
        direction="lower",
        method="farrington-manning",
    ).row(0, named=True)
    assert out[cols.STATISTIC_VALUE] == pytest.approx(1.348, abs=5e-4)
    assert out[cols.P_VALUE] == pytest.approx(1 - 0.0889, abs=5e-5)
    assert out[cols.SHOWN] is False


# --------------------------------------------------------------------------------------------
# Risk difference: SAS PROC FREQ RISKDIFF output
# --------------------------------------------------------------------------------------------
# SAS reports row 1 - row 2 for the column-1 risk; RISKDIFF(NONINF MARGIN=m METHOD=SCORE|FM)
# tests H0: p1 - p2 <= -m against H1: p1 - p2 > -m and prints a one-sided "Pr > Z". That is our
# direction="higher" with test = row 1. SAS's score (FM) test has no N/(N-1) factor; CL=MN has it.
# The two tables below were chosen by their authors because the FM p-value falls just under 0.025
# while the MN interval still crosses the margin, so they separate FM from MN (and from Newcombe)
# by more than the printed precision: 4 decimals, tolerance 0.5e-4 (+1e-6 for float noise).
#
# (name, (x1, n1, x0, n0), margin, SAS FM "Pr > Z", source)
SAS_FM_NONINF = [
    (
        # PSIAIMS/CAMIS, SAS/ci_for_2indep_prop.qmd (commit 0502807054f3), rendered at
        # https://psiaims.github.io/CAMIS/SAS/ci_for_2indep_prop.html, section "Example Code
        # using PROC FREQ": data adcibc, Act 36/154 responders (row 1) vs PBO 12/77 (row 2),
        # "risk difference of 0.0779"; `riskdiff(CL=mn noninf margin=0.036 method=score)` with
        # the comment "Farrington-Manning NI test (p=0.0248) contradicts MN interval
        # (LCL < -0.036)" and "%SCORECI ... consistent NI test: PVAL_R > 0.025" (output image
        # binomial_2sampleRDNonInf.png).
        "camis_adcibc",
        (36, 154, 12, 77),
        0.036,
        0.0248,
    ),
    (
        # PeteLaud/ratesci-sas, tests/v_scoreci.sas (https://github.com/PeteLaud/ratesci-sas),
        # data DS5 (28/42 vs 28/42): `riskdiff(noninf margin=0.2 column=2 method=score)
        # alpha=0.025` with the comment "Farrington-Manning non-inferiority test p=0.0245 sig at
        # 0.025 significance level; due to omission of the bias correction factor", and "95% MN
        # confidence interval overlaps both -0.2 and +0.2, also in PROC FREQ".
        "ratesci_sas_ds5",
        (28, 42, 28, 42),
        0.2,
        0.0245,
    ),
]
SAS_TOL = 0.5e-4 + 1e-6


@pytest.mark.parametrize(
    ("counts", "margin", "sas_p"),
    [case[1:] for case in SAS_FM_NONINF],
    ids=[case[0] for case in SAS_FM_NONINF],
)
def test_farrington_manning_p_matches_sas_proc_freq_noninf(counts, margin, sas_p):
    out = risk_difference(
        binary_frame(*counts),
        test="llm",
        reference="doc",
        margin=margin,
        direction="higher",
        method="farrington-manning",
        alpha=0.025,
    ).row(0, named=True)
    assert out[cols.P_VALUE] == pytest.approx(sas_p, abs=SAS_TOL)
    assert out[cols.SHOWN] is True
    assert out[cols.H0].startswith(f"H0: p(llm) - p(doc) <= -{margin}")


@pytest.mark.parametrize(
    ("counts", "margin"),
    [case[1:3] for case in SAS_FM_NONINF],
    ids=[case[0] for case in SAS_FM_NONINF],
)
def test_miettinen_nurminen_crosses_the_margin_where_sas_fm_rejects(counts, margin):
    # Same sources: with the N/(N-1) factor (SAS CL=MN, %SCORECI) the 95% interval reaches below
    # -margin and the one-sided p is above 0.025, so MN does not show non-inferiority where the
    # FM test does. Inequalities only: the sources state them, not the limits.
    out = risk_difference(
        binary_frame(*counts),
        test="llm",
        reference="doc",
        margin=margin,
        direction="higher",
        method="miettinen-nurminen",
        alpha=0.025,
    ).row(0, named=True)
    assert out[cols.CI_LEVEL] == pytest.approx(0.95)
    assert out[cols.CI_LOW] < -margin
    assert out[cols.P_VALUE] > 0.025
    assert out[cols.SHOWN] is False


def test_camis_risk_difference_estimate_matches_sas():
    # CAMIS page above: p1 = 0.2338, p2 = 12/77 = 0.1558, risk difference 0.0779 (4 decimals).
    out = risk_difference(
        binary_frame(36, 154, 12, 77), test="llm", reference="doc", margin=0.036, direction="higher"
    ).row(0, named=True)
    assert out[cols.ESTIMATE] == pytest.approx(0.0779, abs=SAS_TOL)


def test_ds5_superiority_and_mn_interval_match_sas():
    # ratesci-sas tests/v_scoreci.sas, DS5 (28/42 vs 28/42): PROC FREQ
    # `riskdiff(sup margin=0.2 method=score)` prints "(Pr>Z) = 0.9755" for H0: p1 - p2 <= 0.2;
    # the author notes the lower tail "(Pr<Z) = 0.0245" is the one that answers the question.
    # The same score z at delta = +0.2 gives both tails; our direction="lower" test of
    # H0: p1 - p2 >= 0.2 reports the lower tail.
    z = score_statistic(28, 42, 28, 42, delta=0.2, mn=False)
    assert stats.norm.sf(z) == pytest.approx(0.9755, abs=SAS_TOL)
    lower = risk_difference(
        binary_frame(28, 42, 28, 42),
        test="llm",
        reference="doc",
        margin=0.2,
        direction="lower",
        method="farrington-manning",
    ).row(0, named=True)
    assert lower[cols.P_VALUE] == pytest.approx(0.0245, abs=SAS_TOL)
    # "95% MN confidence interval overlaps both -0.2 and +0.2, also in PROC FREQ" (CL=MN).
    mn = risk_difference(
        binary_frame(28, 42, 28, 42),
        test="llm",
        reference="doc",
        margin=0.2,
        method="miettinen-nurminen",
    ).row(0, named=True)
    assert mn[cols.CI_LOW] < -0.2 < 0.2 < mn[cols.CI_HIGH]


@pytest.mark.parametrize(("mn", "correction"), [(False, False), (True, True)])
def test_score_statistic_at_zero_matches_statsmodels(mn, correction):
    # At a zero margin the restricted MLE is the pooled proportion, a branch statsmodels gets
    # right (issue #10269 concerns value != 0 only); its correction=True is the N/(N-1) factor.
    ref = sm_proportion.test_proportions_2indep(
        56, 70, 48, 80, value=0, method="score", compare="diff", correction=correction
    )
    ours = score_statistic(56, 70, 48, 80, delta=0.0, mn=mn)
    assert ours == pytest.approx(float(ref.statistic), abs=1e-9)


@pytest.mark.parametrize(
    ("counts", "delta"),
    [
        ((56, 70, 48, 80), 0.1),
        ((56, 70, 48, 80), -0.25),
        ((5, 56, 0, 29), 0.05),
        ((9, 10, 3, 10), -0.5),
        ((0, 10, 0, 20), 0.2),
        ((7, 34, 1, 34), 0.3),
    ],
)
def test_restricted_mle_maximises_the_constrained_likelihood(counts, delta):
    # Property check of the closed-form cubic root: constraint holds and no grid point of the
    # feasible p0 range has a higher restricted log-likelihood.
    x1, n1, x0, n0 = counts
    p1, p0 = restricted_mle(x1, n1, x0, n0, delta)
    assert p1 - p0 == pytest.approx(delta, abs=1e-9)

    def loglik(q0):
        q1 = q0 + delta
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = [
                x1 * np.log(q1),
                (n1 - x1) * np.log1p(-q1),
                x0 * np.log(q0),
                (n0 - x0) * np.log1p(-q0),
            ]
        return sum(np.where(np.isnan(t), 0.0, t) for t in terms)

    grid = np.linspace(max(0, -delta) + 1e-9, min(1, 1 - delta) - 1e-9, 20001)
    assert loglik(np.array([p0]))[0] >= loglik(grid).max() - 1e-9


@pytest.mark.parametrize("method", ["newcombe", "farrington-manning", "miettinen-nurminen"])
@pytest.mark.parametrize("direction", ["lower", "higher"])
def test_p_value_equals_alpha_when_the_margin_is_the_interval_bound(method, direction):
    # Test-interval duality: put the margin exactly on the relevant bound; p must equal alpha.
    frame = binary_frame(12, 80, 9, 85) if direction == "lower" else binary_frame(60, 80, 66, 85)
    first = risk_difference(
        frame, test="llm", reference="doc", margin=0.3, direction=direction, method=method
    ).row(0, named=True)
    margin = first[cols.CI_HIGH] if direction == "lower" else -first[cols.CI_LOW]
    again = risk_difference(
        frame, test="llm", reference="doc", margin=margin, direction=direction, method=method
    ).row(0, named=True)
    assert again[cols.P_VALUE] == pytest.approx(0.025, abs=1e-6)


def test_risk_difference_default_direction_is_higher_is_better():
    # As SAS PROC FREQ RISKDIFF(NONINF) and mean_difference: H0 p(test) - p(ref) <= -margin.
    out = risk_difference(
        binary_frame(40, 1000, 50, 1000), test="llm", reference="doc", margin=0.05
    ).row(0, named=True)
    assert out[cols.DIRECTION] == "higher"
    assert out[cols.H0].startswith("H0: p(llm) - p(doc) <= -0.05")


def test_harm_hypotheses_read_lower_is_better():
    out = risk_difference(
        binary_frame(40, 1000, 50, 1000),
        test="llm",
        reference="doc",
        margin=0.05,
        direction="lower",
    ).row(0, named=True)
    assert out[cols.DIRECTION] == "lower"
    assert out[cols.H0].startswith("H0: p(llm) - p(doc) >= 0.05")
    assert out[cols.H1].startswith("H1: p(llm) - p(doc) < 0.05")
    assert out[cols.CI_HIGH] < 0.05
    assert out[cols.SHOWN] is True
    assert out[cols.P_VALUE] < 0.025
    assert "lies below 0.05" in out[cols.CONCLUSION]


def test_repeated_binary_ratings_are_flagged():
    frame = pl.concat([binary_frame(10, 40, 12, 40)] * 3).with_columns(
        pl.Series("rater", ["a"] * 80 + ["b"] * 80 + ["c"] * 80)
    )
    out = risk_difference(frame, test="llm", reference="doc", margin=0.1).row(0, named=True)
    assert "ratings treated as independent" in out[cols.NOTE]
    assert out[cols.N_RATERS] == 3


# --------------------------------------------------------------------------------------------
# TOST: R package equivalence via statsmodels' test_tost.py
# --------------------------------------------------------------------------------------------

CLINIC = np.array(
    [
        [2.84, 4.00, 3.45, 2.55, 2.46],
        [2.51, 3.26, 3.10, 2.82, 2.48],
        [2.41, 4.14, 3.37, 2.99, 3.04],
        [2.95, 3.42, 2.82, 3.37, 3.35],
        [3.14, 3.25, 3.31, 2.87, 3.41],
        [3.79, 4.34, 3.88, 3.40, 3.16],
        [4.14, 4.97, 4.25, 3.43, 3.06],
        [3.85, 4.31, 3.92, 3.58, 3.91],
        [3.02, 3.11, 2.20, 2.24, 2.28],
        [3.45, 3.41, 3.80, 3.86, 3.91],
        [5.37, 5.02, 4.59, 3.99, 4.27],
        [3.81, 4.21, 4.08, 3.18, 1.86],
        [4.19, 4.59, 4.79, 4.17, 2.60],
        [3.16, 5.30, 4.69, 4.83, 4.51],
        [3.84, 4.32, 4.25, 3.87, 2.93],
        [2.60, 3.76, 2.86, 2.41, 2.71],
        [2.82, 3.66, 3.20, 2.49, 2.49],
        [2.18, 3.65, 3.87, 3.00, 2.65],
        [3.46, 3.60, 2.97, 1.80, 1.74],
        [4.01, 3.48, 4.42, 3.06, 2.76],
        [3.04, 2.87, 2.87, 2.71, 2.87],
        [3.47, 3.24, 3.47, 3.26, 3.14],
        [4.06, 3.92, 3.18, 3.06, 1.74],
        [2.91, 3.99, 3.06, 2.02, 3.18],
        [3.59, 4.21, 4.02, 3.26, 2.85],
        [4.51, 4.21, 3.78, 2.63, 1.92],
        [3.16, 3.31, 3.28, 3.25, 3.52],
        [3.86, 3.61, 3.28, 3.19, 3.09],
        [3.31, 2.97, 3.76, 3.18, 2.60],
        [3.02, 2.73, 3.87, 3.50, 2.93],
    ]
)  # statsmodels test_tost.py raw_clinic, columns var1..var5; rows 1-15 group 1, 16-30 group 2


def clinic_frame(var: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "arm": ["g1"] * 15 + ["g2"] * 15,
            "pair": list(range(15)) * 2,
            "value": CLINIC[:, var - 1],
        }
    )


# (var, design, welch): (mean_diff, ci_low, ci_high, p_value, rejected) from R equivalence::tost
R_TOST = [
    (
        1,
        "paired",
        False,
        (0.1646666666666667, -0.0744336620516462, 0.4037669953849797, 0.003166881489265175, True),
    ),
    (
        2,
        "paired",
        False,
        (0.5626666666666665, 0.1261653305099018, 0.999168002823431, 0.4412034046017588, False),
    ),
    (
        1,
        "independent",
        True,
        (0.1646666666666667, -0.2666862980722534, 0.596019631405587, 0.04853083976236974, True),
    ),
    (
        2,
        "independent",
        True,
        (0.562666666666666, 0.194916250699966, 0.930417082633366, 0.4317936812594803, False),
    ),
    (
        1,
        "independent",
        False,
        (0.1646666666666667, -0.2659960620757337, 0.595329395409067, 0.04827315100761467, True),
    ),
    (
        2,
        "independent",
        False,
        (0.562666666666666, 0.1969453064978777, 0.928388026835454, 0.43169347692374, False),
    ),
]


@pytest.mark.parametrize(("var", "design", "welch", "ref"), R_TOST)
def test_tost_matches_r_equivalence(var, design, welch, ref):
    mean_diff, low, high, p, rejected = ref
    out = tost(
        clinic_frame(var),
        test="g1",
        reference="g2",
        margin=0.6,
        pair="pair" if design == "paired" else None,
        welch=welch,
        alpha=0.05,
    ).row(0, named=True)
    assert out[cols.ESTIMATE] == pytest.approx(mean_diff, abs=1e-9)
    assert out[cols.CI_LOW] == pytest.approx(low, abs=1e-9)
    assert out[cols.CI_HIGH] == pytest.approx(high, abs=1e-9)
    assert out[cols.P_VALUE] == pytest.approx(p, abs=1e-9)
    assert out[cols.CI_LEVEL] == pytest.approx(0.90)
    assert out[cols.SHOWN] is rejected
    assert out[cols.VARIANT] == ("paired" if design == "paired" else "welch" if welch else "pooled")


def test_tost_welch_degrees_of_freedom_match_r():
    # R equivalence::tost df for var1, Welch: 26.7484787582315 (statsmodels test_tost.py).
    out = tost(clinic_frame(1), test="g1", reference="g2", margin=0.6, welch=True, alpha=0.05)
    assert out[cols.DF1][0] == pytest.approx(26.7484787582315, abs=1e-9)


# --------------------------------------------------------------------------------------------
# Mean difference: paired t against scipy, bootstrap, mixed model against lme4
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("direction", ["higher", "lower"])
@pytest.mark.parametrize("seed", [1, 2])
def test_paired_t_matches_scipy(direction, seed):
    df = likert_frame(seed=seed, cases=25, raters=3)
    # Independent per-case means with pandas, then scipy's paired t against the shifted null.
    means = df.to_pandas().groupby(["case", "arm"])["value"].mean().unstack()
    a, b = means["llm"].to_numpy(), means["doc"].to_numpy()
    margin = 0.4
    if direction == "higher":
        ref = stats.ttest_rel(a + margin, b, alternative="greater")
    else:
        ref = stats.ttest_rel(a - margin, b, alternative="less")
    ci = stats.ttest_rel(a, b).confidence_interval(confidence_level=0.95)
    out = mean_difference(df, test="llm", reference="doc", margin=margin, direction=direction).row(
        0, named=True
    )
    assert out[cols.ESTIMATE] == pytest.approx(float(np.mean(a - b)), abs=1e-12)
    assert out[cols.P_VALUE] == pytest.approx(float(ref.pvalue), abs=1e-12)
    assert out[cols.STATISTIC_VALUE] == pytest.approx(float(ref.statistic), abs=1e-10)
    assert (out[cols.CI_LOW], out[cols.CI_HIGH]) == pytest.approx((ci.low, ci.high), abs=1e-12)
    assert out[cols.N_UNITS] == 25 and out[cols.N_RATERS] == 3 and out[cols.N_VALUES] == 150


def test_paired_t_can_pair_by_another_column():
    df = likert_frame(seed=3, cases=12, raters=2).with_columns(
        (pl.col("case") + "-" + pl.col("rater")).alias("slot")
    )
    pdf = df.to_pandas().pivot_table(index="slot", columns="arm", values="value")
    ref = stats.ttest_rel(pdf["llm"] + 0.5, pdf["doc"], alternative="greater")
    out = mean_difference(df, test="llm", reference="doc", margin=0.5, pair="slot")
    assert out[cols.N_UNITS][0] == 24
    assert out[cols.P_VALUE][0] == pytest.approx(float(ref.pvalue), abs=1e-12)


def test_bootstrap_with_one_rater_is_a_case_bootstrap_like_scipy():
    # With a single rater the two-way bootstrap reduces to resampling cases; compare the
    # percentile interval with scipy.stats.bootstrap on the case differences. Both are Monte Carlo
    # (4000 replicates each): the 2.5% quantile has MC sd about 0.004 here, tolerance 0.03.
    df = likert_frame(seed=5, cases=40, raters=1)
    means = df.to_pandas().groupby(["case", "arm"])["value"].mean().unstack()
    d = (means["llm"] - means["doc"]).to_numpy()
    ref = stats.bootstrap(
        (d,),
        np.mean,
        n_resamples=4000,
        method="percentile",
        confidence_level=0.95,
        rng=np.random.default_rng(11),
    ).confidence_interval
    out = mean_difference(
        df, test="llm", reference="doc", margin=0.5, method="bootstrap", boot=4000, seed=2
    ).row(0, named=True)
    assert out[cols.ESTIMATE] == pytest.approx(float(d.mean()), abs=1e-12)
    assert out[cols.CI_LOW] == pytest.approx(ref.low, abs=0.03)
    assert out[cols.CI_HIGH] == pytest.approx(ref.high, abs=0.03)


def test_bootstrap_is_seeded_and_its_decision_agrees_with_its_p_value():
    df = likert_frame(seed=6, cases=20, raters=4)
    kwargs = dict(test="llm", reference="doc", margin=0.2, method="bootstrap", boot=500, seed=9)
    first, second = mean_difference(df, **kwargs), mean_difference(df, **kwargs)
    assert first.equals(second)
    row = first.row(0, named=True)
    assert row[cols.SHOWN] == (row[cols.P_VALUE] < row[cols.ALPHA])
    assert "two-way cluster bootstrap" in row[cols.METHOD]
    assert row[cols.N_RATERS] == 4


def test_bootstrap_without_a_seed_draws_one_and_records_it():
    df = likert_frame(seed=6, cases=20, raters=4)
    kwargs = dict(test="llm", reference="doc", margin=0.2, method="bootstrap", boot=200)
    first = mean_difference(df, **kwargs).row(0, named=True)
    seed = first[cols.SEED]
    assert isinstance(seed, int) and 0 <= seed < 2**32
    assert f"seed {seed} (drawn: none was given)" in first[cols.METHOD]
    again = mean_difference(df, **kwargs, seed=seed).row(0, named=True)
    assert (again[cols.CI_LOW], again[cols.CI_HIGH], again[cols.P_VALUE]) == (
        first[cols.CI_LOW],
        first[cols.CI_HIGH],
        first[cols.P_VALUE],
    )
    assert mean_difference(df, **(kwargs | {"method": "t"}))[cols.SEED][0] is None


@pytest.mark.parametrize(
    ("cases", "raters", "warned"),
    [
        (20, 4, "only 4 raters:"),
        (12, 10, "only 12 cases:"),
        (12, 4, "only 4 raters and 12 cases:"),
        (20, 10, None),
    ],
)
def test_bootstrap_with_few_raters_or_cases_says_it_is_conservative(cases, raters, warned):
    # Owen (2007): the pigeonhole bootstrap variance is conservative; with few levels it is much
    # wider than the paired t (0.163 vs 0.093 on 6 raters in review), so the row says so.
    df = likert_frame(seed=3, cases=cases, raters=raters)
    row = mean_difference(
        df, test="llm", reference="doc", margin=0.3, method="bootstrap", boot=100, seed=1
    ).row(0, named=True)
    note = row[cols.NOTE] or ""
    if warned:
        assert warned in note and "conservative (Owen 2007)" in note
    else:
        assert "conservative" not in note


def unbalanced_frame(seed: int, cases: int = 9, raters: int = 4) -> pl.DataFrame:
    """Ratings with gaps: some (case, rater) cells hold one arm only, some hold a repeated rating."""
    rows = likert_frame(seed=seed, cases=cases, raters=raters).to_dicts()
    rng = np.random.default_rng(100 + seed)
    kept = [row for row in rows if rng.random() > 0.3]
    repeats = [dict(row, value=row["value"] + 0.5) for row in kept if rng.random() < 0.15]
    return pl.DataFrame(kept + repeats)


def subset_frame(seed: int, cases: int = 12, raters: int = 5, per_case: int = 2) -> pl.DataFrame:
    """Balanced but incomplete: each case is rated, in both arms, by ``per_case`` of the raters."""
    rng = np.random.default_rng(200 + seed)
    chosen = {
        f"c{c:02d}": {f"r{r}" for r in rng.choice(raters, per_case, replace=False)}
        for c in range(cases)
    }
    df = likert_frame(seed=seed, cases=cases, raters=raters)
    return df.filter(
        pl.struct("case", "rater").map_elements(
            lambda x: x["rater"] in chosen[x["case"]], return_dtype=pl.Boolean
        )
    )


@pytest.mark.parametrize(
    ("df", "balanced"),
    [
        (likert_frame(seed=7, cases=10, raters=3), True),
        (subset_frame(7), True),
        (unbalanced_frame(8), False),
        (unbalanced_frame(9, raters=2), False),
    ],
    ids=["complete", "incomplete", "unbalanced", "two-raters"],
)
@pytest.mark.parametrize("block", [1, 3, 1 << 19])
def test_vectorised_bootstrap_equals_a_per_replicate_loop(df, balanced, block, monkeypatch):
    # Reference: the definition written out as a loop over replicates on the same random draws
    # (conftest.pigeonhole_by_loop). Only float summation order differs: tolerance 1e-12. The block
    # size (replicates per vectorised step) must not change the result.
    monkeypatch.setattr(mean_methods, "_BOOT_BLOCK", block)
    cells = ni._case_rater_cells(
        df, case="case", rater="rater", arm="arm", value="value", test="llm"
    )
    assert cells.balanced == balanced
    got = ni._pigeonhole_replicates(cells, boot=150, rng=np.random.default_rng(4))
    want = pigeonhole_by_loop(df, boot=150, seed=4)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("direction", ["higher", "lower"])
def test_bootstrap_interval_and_p_come_from_the_loop_replicates(direction):
    # The same loop reference end to end: percentile interval (inverted-CDF quantiles of the
    # finite replicates) and p = share of replicates on the null side; tolerance 1e-12.
    df = unbalanced_frame(10, cases=12, raters=3)
    margin, alpha = 0.3, 0.05
    out = mean_difference(
        df, test="llm", reference="doc", margin=margin, direction=direction,
        method="bootstrap", boot=300, seed=12, alpha=alpha,
    ).row(0, named=True)  # fmt: skip
    reps = pigeonhole_by_loop(df, boot=300, seed=12)
    reps = reps[np.isfinite(reps)]
    null_side = reps <= -margin if direction == "higher" else reps >= margin
    assert out[cols.CI_LOW] == pytest.approx(
        np.quantile(reps, alpha, method="inverted_cdf"), abs=1e-12
    )
    assert out[cols.CI_HIGH] == pytest.approx(
        np.quantile(reps, 1 - alpha, method="inverted_cdf"), abs=1e-12
    )
    assert out[cols.P_VALUE] == pytest.approx(float(np.mean(null_side)), abs=1e-12)


@pytest.mark.parametrize("reml", [True, False])
def test_crossed_mixed_model_matches_lme4_on_penicillin(reml):
    pen = pd.read_csv(DATA / "penicillin.csv")
    result, _ = _fit_crossed(pen, "diameter ~ 1", ["plate", "sample"], reml=reml)
    if reml:  # MixedModels.jl REML fit == lme4 (0.7169, 3.7311, 0.3024, SE 0.8086)
        variances, scale, se = (0.716908, 3.730907), 0.302416, 0.808572
    else:  # MixedModels.jl ML fit: logLik -166.09417
        variances, scale, se = (0.7149795, 3.1351920), 0.3024264, 0.744596
        assert result.llf == pytest.approx(-166.09417, rel=1e-6)
    assert result.fe_params.iloc[0] == pytest.approx(22.9722, abs=5e-5)
    assert result.bse_fe.iloc[0] == pytest.approx(se, rel=1e-4)
    assert tuple(result.vcomp) == pytest.approx(variances, rel=1e-4)
    assert result.scale == pytest.approx(scale, rel=1e-4)


@pytest.mark.parametrize(
    ("reml", "fe", "bse", "scale", "pig_var", "loglik"),
    [
        (True, (15.723523, 6.942505), (0.78805374, 0.03338727), 11.36692, 40.39395, -2404.775),
        (False, (15.723517, 6.942506), (0.7829397, 0.0333661), 11.35251, 39.82097, -2402.932),
    ],
)
def test_variance_component_device_matches_lme4_on_dietox(reml, fe, bse, scale, pig_var, loglik):
    # lmer(Weight ~ Time + (1 | Pig), dietox), values from statsmodels test_lme.py::test_dietox;
    # here fitted as a variance component of one all-encompassing group, as mean_difference does.
    dietox = pd.read_csv(DATA / "dietox.csv")
    result, _ = _fit_crossed(dietox, "Weight ~ Time", ["Pig"], reml=reml)
    assert tuple(result.fe_params) == pytest.approx(fe, rel=1e-5)
    assert tuple(result.bse_fe) == pytest.approx(bse, rel=1e-4)
    assert result.scale == pytest.approx(scale, rel=1e-4)
    assert result.vcomp[0] == pytest.approx(pig_var, rel=1e-4)
    assert result.llf == pytest.approx(loglik, rel=1e-5)


def test_mixed_equals_fixed_effects_ols_in_a_balanced_design():
    # In a complete balanced case x rater x arm design REML equals the ANOVA estimators, so the
    # arm effect and its SE equal those of OLS value ~ arm + C(case) + C(rater) (statsmodels OLS).
    df = likert_frame(seed=4, cases=12, raters=4, shift=-0.2)
    pdf = df.to_pandas().assign(x=lambda d: (d["arm"] == "llm").astype(float))
    ols = smf.ols("value ~ x + C(case) + C(rater)", data=pdf).fit()
    out = mean_difference(df, test="llm", reference="doc", margin=0.5, method="mixed").row(
        0, named=True
    )
    se = (out[cols.CI_HIGH] - out[cols.CI_LOW]) / (2 * Z975)
    assert out[cols.ESTIMATE] == pytest.approx(float(ols.params["x"]), rel=1e-6)
    assert se == pytest.approx(float(ols.bse["x"]), rel=1e-4)
    z = (out[cols.ESTIMATE] + 0.5) / se
    assert out[cols.P_VALUE] == pytest.approx(float(stats.norm.sf(z)), rel=1e-4)
    assert out[cols.APPLICABLE] is True and out[cols.VARIANT] == "mixed"


# --------------------------------------------------------------------------------------------
# Result frames: hypotheses in words and numbers
# --------------------------------------------------------------------------------------------


def test_result_frame_states_hypotheses_and_decision():
    df = likert_frame(seed=8, cases=30, raters=3, shift=0.0)
    out = mean_difference(df, test="llm", reference="doc", margin=0.5)
    assert list(out.columns) == list(RESULT_SCHEMA)
    assert set(cols.RESULT_COLUMNS) <= set(out.columns)
    row = out.row(0, named=True)
    assert row[cols.H0].startswith("H0: mean(llm) - mean(doc) <= -0.5")
    assert row[cols.H1].startswith("H1: mean(llm) - mean(doc) > -0.5")
    assert row[cols.DIRECTION] == "higher" and row[cols.MARGIN] == 0.5
    assert row[cols.ALPHA] == 0.025 and row[cols.CI_LEVEL] == pytest.approx(0.95)
    assert row[cols.SHOWN] is (row[cols.CI_LOW] > -0.5)
    assert row[cols.SHOWN] is (row[cols.P_VALUE] < 0.025)
    expected = "Non-inferiority shown" if row[cols.SHOWN] else "Non-inferiority not shown"
    assert row[cols.CONCLUSION].startswith(expected)
    assert (row[cols.TEST_ARM], row[cols.REFERENCE_ARM]) == ("llm", "doc")


def test_cases_rated_in_one_arm_only_are_reported():
    df = likert_frame(seed=9, cases=10, raters=2)
    df = df.filter(~((pl.col("case") == "c00") & (pl.col("arm") == "doc")))
    row = mean_difference(df, test="llm", reference="doc", margin=0.5).row(0, named=True)
    assert row[cols.N_UNITS] == 9
    assert "1 case(s) rated in one arm only" in row[cols.NOTE]


def test_numeric_text_values_are_accepted():
    as_text = LIKERT_SMALL.with_columns(pl.col("value").cast(pl.String))
    ours = mean_difference(as_text, test="llm", reference="doc", margin=0.5).row(0, named=True)
    plain = mean_difference(LIKERT_SMALL, test="llm", reference="doc", margin=0.5)
    assert ours[cols.ESTIMATE] == pytest.approx(plain[cols.ESTIMATE][0], abs=1e-12)
    assert ours[cols.P_VALUE] == pytest.approx(plain[cols.P_VALUE][0], abs=1e-12)


LIKERT_SMALL = likert_frame(seed=10, cases=8, raters=2)


# --------------------------------------------------------------------------------------------
# Multiplicity
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "p",
    [[0.01, 0.04, 0.03, 0.005], [0.2, 0.2, 0.01], [0.5], [0.001, 0.9, 0.04, 0.04, 0.02, 0.3]],
)
def test_holm_matches_statsmodels(p):
    assert holm(p) == pytest.approx(list(multipletests(p, method="holm")[1]), abs=1e-15)


def test_holm_skips_missing_p_values():
    assert holm([0.01, None, 0.04]) == pytest.approx([0.02, math.nan, 0.04], nan_ok=True)


def test_adjust_secondary_adjusts_only_secondary_items():
    frames = []
    for item, shift in (("quality", 0.0), ("empathy", -0.3), ("accuracy", -0.1)):
        frames.append(
            mean_difference(
                likert_frame(seed=len(item), cases=20, raters=3, shift=shift),
                test="llm",
                reference="doc",
                margin=0.3,
            ).with_columns(pl.lit(item).alias(cols.ITEM))
        )
    out = adjust_secondary(pl.concat(frames), primary="quality")
    primary = out.filter(pl.col(cols.ITEM) == "quality").row(0, named=True)
    assert primary[cols.ROLE] == "primary"
    assert primary[cols.P_ADJUSTED] == primary[cols.P_VALUE]
    secondary = out.filter(pl.col(cols.ROLE) == "secondary")
    expected = multipletests(secondary[cols.P_VALUE].to_list(), method="holm")[1]
    assert secondary[cols.P_ADJUSTED].to_list() == pytest.approx(list(expected))
    for row in secondary.iter_rows(named=True):
        assert row[cols.SHOWN] is (row[cols.P_ADJUSTED] < row[cols.ALPHA])
        assert "Holm" in row[cols.CONCLUSION]


# --------------------------------------------------------------------------------------------
# Bad input: one-line AnalysisError messages
# --------------------------------------------------------------------------------------------

LIKERT = likert_frame(seed=0, cases=6, raters=2)


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (
            lambda: mean_difference(LIKERT, test="gpt", reference="doc", margin=0.5),
            "test arm 'gpt' not found",
        ),
        (
            # a margin of 0 is a superiority test (issue 10); below 0 is refused
            lambda: mean_difference(LIKERT, test="llm", reference="doc", margin=-0.25),
            "margin must be a positive number, or 0 for a superiority test",
        ),
        (
            lambda: mean_difference(LIKERT, test="llm", reference="doc", margin=-1),
            "margin must be a positive number",
        ),
        (
            lambda: mean_difference(
                LIKERT, test="llm", reference="doc", margin=0.5, direction="up"
            ),
            "direction must be",
        ),
        (
            lambda: mean_difference(
                LIKERT, test="llm", reference="doc", margin=0.5, method="anova"
            ),
            "unknown method 'anova'",
        ),
        (
            lambda: mean_difference(LIKERT, test="llm", reference="doc", margin=0.5, alpha=0.5),
            "alpha (one-sided)",
        ),
        (
            lambda: mean_difference(LIKERT.head(8), test="llm", reference="doc", margin=0.5),
            "too few cases rated in both arms",
        ),
        (
            lambda: mean_difference(
                LIKERT.drop("rater"), test="llm", reference="doc", margin=0.5, method="mixed"
            ),
            "column 'rater' not found",
        ),
        (
            lambda: mean_difference(
                LIKERT.with_columns(
                    pl.when(pl.col("case") == "c01")
                    .then(pl.lit("n/a"))
                    .otherwise(pl.col("value").cast(pl.String))
                    .alias("value")
                ),
                test="llm",
                reference="doc",
                margin=0.5,
            ),
            "non-numeric values, e.g. 'n/a'",
        ),
        (
            lambda: mean_difference(
                LIKERT.with_columns(
                    pl.when(pl.col("case") == "c01")
                    .then(pl.lit("NA"))
                    .otherwise(pl.col("value").cast(pl.String))
                    .alias("value")
                ),
                test="llm",
                reference="doc",
                margin=0.5,
            ),
            "'NA' (4 value(s)); it marks a missing value",
        ),
        (
            lambda: risk_difference(
                binary_frame(3, 10, 2, 10).with_columns(pl.col("value") * 2),
                test="llm",
                reference="doc",
                margin=0.1,
            ),
            "must hold 0/1",
        ),
        (
            lambda: risk_difference(
                binary_frame(1, 2, 1, 10), test="llm", reference="doc", margin=0.1
            ),
            "too few ratings",
        ),
        (
            lambda: risk_difference(
                binary_frame(3, 10, 2, 10), test="llm", reference="doc", margin=1.0
            ),
            "margin must be below 1",
        ),
        (
            lambda: risk_difference(
                binary_frame(3, 10, 2, 10), test="llm", reference="nurse", margin=0.1
            ),
            "reference arm 'nurse' not found",
        ),
        (
            lambda: tost(clinic_frame(1), test="g1", reference="g2", margin=0.0),
            "margin must be a positive number",
        ),
        (
            lambda: tost(
                clinic_frame(1).head(17), test="g1", reference="g2", margin=0.6, pair="pair"
            ),
            "too few pairs",
        ),
    ],
)
def test_bad_input_raises_one_line_analysis_error(call, fragment):
    with pytest.raises(AnalysisError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    assert fragment in message
    assert isinstance(info.value, ValueError)
