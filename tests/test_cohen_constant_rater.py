"""Cohen's kappa for a pair in which one rater gave the same value to every common unit.

In the ClinSumm reader study (Van Veen et al., Nat Med 2024) reader 2 scored every summary 0
("same") on correctness and conciseness. Observed agreement then equals chance agreement for any
weights, so kappa is 0 by construction, and the large-sample variance of Fleiss, Cohen & Everitt
(1969) is 0: statsmodels 0.15's ``cohens_kappa`` reports kappa 0 on such a table, with a standard
error that is 0 up to rounding (nan from the square root of -1e-17, or 2e-8) and a z of nan,
-inf or 0. The table used to show it as "0.0000 (0.0000
to 0.0000)", an interval that reads as a precisely measured zero, with a p-value of 1 or none by
floating-point noise (and estimates such as 2.75e-16).
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from statsmodels.stats.inter_rater import cohens_kappa

from analysis.agreement import cohen_kappa

A = [-2, -1, 0, 0, 1, 2, 1, 0, -1, 0, 2, 1]  # a rater who varies
B = [0] * len(A)  # a rater who always says "same"


def _frame() -> pl.DataFrame:
    units = [f"u{i}" for i in range(len(A))]
    return pl.DataFrame(
        {"unit": units * 2, "rater": ["a"] * len(A) + ["b"] * len(B), "value": A + B}
    )


# statsmodels' own arithmetic on this degenerate table (sqrt of -1e-17, 0 / 0) warns
@pytest.mark.filterwarnings("ignore::RuntimeWarning:statsmodels")
@pytest.mark.parametrize("weights", ["unweighted", "linear", "quadratic"])
def test_a_constant_rater_gives_kappa_zero_with_no_interval(weights) -> None:
    row = cohen_kappa(_frame(), weights=weights, scale=[-2, -1, 0, 1, 2]).row(0, named=True)
    # statsmodels on the same 5 x 5 table (rows rater a, columns rater b)
    table = np.zeros((5, 5))
    for x, y in zip(A, B, strict=True):
        table[x + 2, y + 2] += 1
    wt = {"unweighted": None, "linear": "linear", "quadratic": "quadratic"}[weights]
    reference = cohens_kappa(table, wt=wt)
    assert reference.kappa == pytest.approx(0.0, abs=1e-12)
    assert np.nan_to_num(reference.std_kappa) < 1e-6
    assert row["applicable"]
    assert row["estimate"] == 0.0  # exactly: no rounding noise such as 2.75e-16
    assert row["ci_low"] is None and row["ci_high"] is None
    assert row["p_value"] is None
    assert "rater b gave one value to all 12 units" in row["note"]
    assert "0 by construction" in row["note"]


def test_a_pair_where_both_vary_keeps_its_interval() -> None:
    frame = _frame().with_columns(
        pl.when(pl.col("rater") == "b")
        .then(pl.Series([0, -1, 0, 1, 1, 2, 0, 0, -1, 0, 1, 1] * 2))
        .otherwise(pl.col("value"))
        .alias("value")
    )
    row = cohen_kappa(frame, scale=[-2, -1, 0, 1, 2]).row(0, named=True)
    assert row["ci_low"] is not None and row["ci_low"] < row["estimate"] < row["ci_high"]
