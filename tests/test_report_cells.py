"""Cells of the HTML report's tables read as a person expects: a p-value below 0.0001 reads
"<0.0001" on the page, not the escaped entity (the table escapes its cells once, so a cell made
as HTML was escaped twice and the ClinSumm report showed "&lt;0.0001" in its results table)."""

from __future__ import annotations

import polars as pl

from study import report
from study.protocol import parse


def test_a_tiny_p_value_reads_less_than_in_the_results_table() -> None:
    from study.services.analyses._endpoints import RESULT_SCHEMA

    row = {
        "item": "completeness",
        "role": "primary",
        "in_plan": True,
        "analysis": "primary (locked plan)",
        "statistic": "mean_difference",
        "method": "t",
        "method_description": "one-sample t",
        "estimate": 0.3195,
        "ci_low": 0.1503,
        "ci_high": 0.4887,
        "p_value": 3.2e-9,
        "margin": 0.5,
        "direction": "higher",
        "applicable": True,
    }
    ni = pl.DataFrame([row], schema=RESULT_SCHEMA)
    html = report._results({"results": {"results": ni}}, report._Figures())
    assert "<td>&lt;0.0001</td>" in html  # shown as "<0.0001"
    assert "&amp;lt;" not in html
    assert "<td>—</td>" in html  # no adjusted p for the primary


def test_a_p_value_at_or_above_the_floor_keeps_four_decimals() -> None:
    assert report._p(0.0001) == "0.0001"
    assert report._p(0.01234) == "0.0123"
    assert report._p(None) == "—"


def test_the_plan_table_names_the_statistic_a_one_sample_endpoint_declares() -> None:
    """A plan that tests a comparative score one-sample says so in the report's design section
    (the ClinSumm report showed only "method t", which reads as the usual two-arm t)."""
    from study.services.analyses import ONE_SAMPLE

    endpoint = {"item": "completeness", "margin": 0.5, "statistic": ONE_SAMPLE}
    html = report._design(_design_facts(endpoint))
    assert f"<td>statistic</td><td>{ONE_SAMPLE}</td>" in html


def _design_facts(endpoint: dict) -> dict:
    """The least of ``report.render``'s facts that ``_design`` reads."""
    arms = {c: [] for c in ("arm_id", "kind", "label", "model_name", "model_version")}
    arms |= {"author_role": [], "answers": []}
    items = ("item_key", "instrument_key", "instrument_version", "prompt", "type", "level")
    items += ("direction", "scope", "options")
    return {
        "arms": pl.DataFrame(arms, schema=dict.fromkeys(arms, pl.String)),
        "instruments": [],
        "items": pl.DataFrame(schema=dict.fromkeys(items, pl.String)),
        "protocols": [
            {"version": 1, "content_hash": "0" * 64, "content": {"primary_endpoint": endpoint}}
        ],
        "plan": parse({"primary_endpoint": endpoint}, version=1, content_hash="0" * 64),
        "events": [],
        "origin": {"origin": "imported"},
    }
