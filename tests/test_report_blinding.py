"""The report's blinding section shows the leak report's figures (per arm, and pair by pair with
three arms or more) with a sentence saying what they mean, instead of a bare claim that the
answers were blinded; the statistician who writes the bundle gets the same figures the
coordinator read on the Design screen, without the coordinator's permission."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
from conftest import OPERATOR

from analysis.leakage import leak_report, pairwise_format_auc
from study import report
from study.services import design, exports, lifecycle, people

DEMO = "demo-patient-questions"


def _answers() -> pl.DataFrame:
    """Three arms over 30 shared cases: ``terse`` and ``plain`` written alike (40-80 words of
    prose), ``<i>bot</i>`` long, in Markdown, saying it is an AI (a hostile arm name too)."""
    rng = np.random.default_rng(7)
    rows = []
    for case in range(30):
        for arm in ("terse", "plain"):
            rows.append((arm, f"c{case}", " ".join(["word"] * int(rng.integers(40, 80))) + "."))
        body = " ".join(["word"] * int(rng.integers(150, 250)))
        rows.append(("<i>bot</i>", f"c{case}", f"As an AI model:\n\n**Summary**\n- {body}\n- more"))
    return pl.DataFrame(rows, schema=["arm_id", "case_id", "text"], orient="row")


def test_three_arms_get_a_per_arm_and_a_pair_by_pair_table_with_their_reading() -> None:
    answers = _answers()
    arms = leak_report(answers.select("arm_id", "text"))
    pairs = pairwise_format_auc(answers)
    html = report._leak({"arms": arms, "pairs": pairs})

    assert "<th>AUC</th>" in html and "<th>against</th>" in html
    assert "<i>bot" not in html, "an arm's name is text, never markup"
    bot = arms.filter(pl.col("arm_id") == "<i>bot</i>").row(0, named=True)
    assert bot["format_auc"] > 0.95 and bot["warning"]
    # the row of the odd arm: its answers, median words (IQR), Markdown and self-naming shares
    assert (
        f"<td>&lt;i&gt;bot&lt;/i&gt;</td><td>30</td><td>{bot['median_words']:.0f} "
        f"({bot['p25_words']:.0f} to {bot['p75_words']:.0f})</td>"
    ) in html
    assert "<td>100%</td><td>100%</td><td>0%</td>" in html
    assert f"<td>{bot['format_auc']:.2f}</td><td>warning</td>" in html
    # the reading names the odd arm against the others, and each pair it is told from
    assert "length and format alone tell &lt;i&gt;bot&lt;/i&gt;'s answers from the other" in html
    assert "100% of &lt;i&gt;bot&lt;/i&gt;'s answers name their source" in html
    alike = pairs.filter((pl.col("arm_a") == "plain") & (pl.col("arm_b") == "terse"))
    assert not alike.get_column("warning").item()
    assert pairs.filter(pl.col("arm_a") == "<i>bot</i>").get_column("warning").all()
    assert "&lt;i&gt;bot&lt;/i&gt;'s answers from plain's" in html
    assert "plain's answers from terse's" not in html  # alike: no warning


def test_arms_alike_read_as_no_warning_and_one_arm_as_nothing_to_compare() -> None:
    answers = _answers().filter(pl.col("arm_id") != "<i>bot</i>")
    html = report._leak({"arms": leak_report(answers.select("arm_id", "text")), "pairs": None})
    assert "Warning" not in html
    assert "Length and format alone tell no arm apart above 0.7; the highest AUC is" in html
    one = answers.filter(pl.col("arm_id") == "plain").select("arm_id", "text")
    assert "nothing to tell apart" in report._leak({"arms": leak_report(one), "pairs": None})
    assert "no leak report" in report._leak({"arms": None, "pairs": None})


def test_the_statisticians_bundle_shows_the_figures_the_coordinator_read(
    demo, tmp_path: Path
) -> None:
    # the Design screen's service is the coordinator's alone; the bundle's figures must be the
    # same numbers, reached without lending the statistician that permission
    coordinator = people.demo_sign_in(demo, "demo-coordinator")
    read_before_launch = design.leak_report(demo, coordinator, DEMO)
    lifecycle.close_rating(demo, OPERATOR, DEMO)
    statistician = people.demo_sign_in(demo, "demo-statistician")
    lifecycle.unblind(demo, statistician, DEMO)
    facts = exports._report_facts(demo, statistician, DEMO, "unblinded")
    assert facts["leak"]["arms"].equals(read_before_launch)
    assert facts["leak"]["pairs"] is None  # two arms: the pair is the per-arm figure

    folder = tmp_path / "bundle"
    folder.mkdir()
    exports.write_bundle(demo, statistician, DEMO, folder, formats=["csv"], boot=0)
    html = (folder / "report.html").read_text(encoding="utf-8")
    blinding = html[html.index('<section id="blinding">') : html.index('<section id="deviations">')]
    for r in read_before_launch.iter_rows(named=True):
        assert f"<td>{r['arm_id']}</td><td>{r['n_answers']}</td>" in blinding
        assert f"<td>{r['format_auc']:.2f}</td>" in blinding
