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


def test_long_texts_leave_their_cells_for_numbered_notes_escaped_and_shared() -> None:
    """A method text named in ``notes`` becomes a numbered note under the table, one number
    per distinct text, escaped like any cell; the row keeps a superscript number."""
    html = report._table(
        ("item", "estimate", "method"),
        [
            ("quality", "0.4", "<b>Krippendorff</b> & co"),
            ("empathy", "0.5", "<b>Krippendorff</b> & co"),
            ("harm", "0.6", "Gwet's AC1"),
            ("safety", "0.7", ""),
        ],
        notes=("method",),
    )
    assert "<th>method</th>" not in html
    assert '<td>quality<sup class="note-ref">1</sup></td>' in html
    assert '<td>empathy<sup class="note-ref">1</sup></td>' in html
    assert '<td>harm<sup class="note-ref">2</sup></td>' in html
    assert "<td>safety</td>" in html  # no text, no number
    assert '<li value="1">&lt;b&gt;Krippendorff&lt;/b&gt; &amp; co</li>' in html
    assert html.count("<li ") == 2
    assert html.startswith('<div class="table-wrap"><table>')


def test_details_go_in_a_row_of_their_own_under_their_row() -> None:
    html = report._table(
        ("statistic", "estimate", "method", "note"),
        [("alpha", "0.3", "bootstrap <200>", ""), ("kappa", "0.1", "", "")],
        details=("method", "note"),
        widths=("12em", None),
    )
    assert "<td>alpha</td><td>0.3</td></tr>" in html
    assert (
        '<tr class="details"><td colspan="2"><div><span class="name">method:</span> '
        "bootstrap &lt;200&gt;</div></td></tr>"
    ) in html
    assert html.count('class="details"') == 1  # kappa has nothing to say
    assert '<colgroup><col style="width:12em"><col></colgroup>' in html


def test_a_notes_column_the_header_lacks_is_refused() -> None:
    import pytest

    with pytest.raises(ValueError, match="columns of the header"):
        report._table(("item", "method"), [("a", "b")], notes=("methods",))


def test_distribution_axes_name_each_value_by_its_option_label_in_the_scale_order() -> None:
    items = pl.DataFrame(
        {
            "instrument_key": ["i", "i", "i", "i"],
            "item_key": ["harm", "choice", "rubric", "minutes"],
            "type": ["categorical", "pairwise_choice", "rubric_criterion", "numeric"],
            "options": [
                '[{"value": 2, "label": "Severe"}, {"value": 0, "label": "None"}]',
                '[{"value": "A", "label": "Response A"}]',
                None,
                None,
            ],
        }
    )
    scales = report._numeric_scales(items)
    assert list(scales) == [("i", "harm"), ("i", "choice"), ("i", "rubric"), ("i", "minutes")]
    assert scales[("i", "harm")] == {2.0: "Severe", 0.0: "None"}  # declared order, not sorted
    assert scales[("i", "choice")] == {}  # chosen labels are no values on an axis
    assert scales[("i", "rubric")] == {0.0: "not met", 1.0: "met"}
    assert scales[("i", "minutes")] == {}
    assert report._wrapped("Mild or moderate <harm>") == "Mild or<br>moderate<br>&lt;harm&gt;"


def test_the_intended_use_is_stated_in_the_summary_and_tripods_background_item_escaped() -> None:
    """The locked protocol's intended use is what the result holds for: the report's summary and
    TRIPOD-LLM's "Background: the clinical task" item state it as locked, its text escaped."""
    from study.report.conduct import intended_use

    plan = parse(
        {"intended_use": {"task": "replies <b>to</b> portal messages", "language": "Dutch"}}
    )
    html = intended_use({"plan": plan})
    assert "<td>Task</td><td>replies &lt;b&gt;to&lt;/b&gt; portal messages</td>" in html
    assert "<td>Language</td><td>Dutch</td>" in html
    assert intended_use({"plan": parse({})}) is None
