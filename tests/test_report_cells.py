"""Cells of the HTML report's tables read as a person expects: a p-value below 0.0001 reads
"<0.0001" on the page, not the escaped entity (the table escapes its cells once, so a cell made
as HTML was escaped twice and the ClinSumm report showed "&lt;0.0001" in its results table)."""

from __future__ import annotations

import polars as pl

from study import report


def test_a_tiny_p_value_reads_less_than_in_the_results_table() -> None:
    ni = pl.DataFrame(
        {
            "item": ["completeness"],
            "role": ["primary"],
            "statistic": ["mean_difference"],
            "method": ["one-sample t"],
            "variant": ["t"],
            "estimate": [0.3195],
            "ci_low": [0.1503],
            "ci_high": [0.4887],
            "p_value": [3.2e-9],
            "p_adjusted": [None],
            "margin": [0.5],
            "direction": ["higher"],
        },
        schema_overrides={"p_adjusted": pl.Float64},
    )
    html = report._results({"results": {"noninferiority": ni}}, report._Figures())
    assert "<td>&lt;0.0001</td>" in html  # shown as "<0.0001"
    assert "&amp;lt;" not in html
    assert "<td>—</td>" in html  # no adjusted p for the primary


def test_a_p_value_at_or_above_the_floor_keeps_four_decimals() -> None:
    assert report._p(0.0001) == "0.0001"
    assert report._p(0.01234) == "0.0123"
    assert report._p(None) == "—"
