"""The report's blinding section: the raters' guesses of the source (blinding indices) and the
leak report (could the answers' length and form alone tell the arms apart)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from study.report.cells import e, html_table, number
from study.report.figures import Figures, forest_plot


def blinding_section(facts: Mapping[str, Any], figures: Figures) -> str:
    text = (
        "<p>Raters saw the answers under neutral labels (Response A, B, ...) in an order fixed by "
        "the seeded design; arms, models and authors never reached their browsers, and no rater "
        "was assigned a case whose answer they wrote. The assignment seed was sealed at the lock "
        f"({e(facts['seed'].get('note'))}).</p>"
    ) + leak_tables(facts.get("leak") or {})
    table: pl.DataFrame | None = (facts.get("results") or {}).get("blinding")
    if table is None or table.height == 0:
        return (
            text
            + "<h3>Raters' guesses</h3><p>The study did not ask raters to guess the source of answers (the built-in <code>source_guess</code> instrument): no blinding index.</p>"
        )
    text += "<h3>Raters' guesses</h3>"
    rows = [
        {
            "label": f"{r.get('statistic')} {r.get('arm') or ''}",
            "estimate": r.get("estimate"),
            "ci_low": r.get("ci_low"),
            "ci_high": r.get("ci_high"),
        }
        for r in table.iter_rows(named=True)
    ]
    return (
        text
        + forest_plot(rows, title="Blinding indices (95% CI)", figures=figures, x_title="index")
        + html_table(
            ("statistic", "arm", "estimate", "95% CI", "guesses", "note"),
            [
                (
                    r.get("statistic") or "",
                    r.get("arm") or "",
                    number(r.get("estimate")),
                    f"{number(r.get('ci_low'))} to {number(r.get('ci_high'))}",
                    r.get("n_guesses") or "",
                    r.get("note") or "",
                )
                for r in table.iter_rows(named=True)
            ],
            details=("note",),
        )
    )


def _share(x: Any) -> str:
    """A share in [0, 1] as a whole percentage ("—" when missing)."""
    return "—" if x is None or x != x else f"{100 * x:.0f}%"


def leak_tables(leak: Mapping[str, pl.DataFrame | None]) -> str:
    """The leak report's figures (``exports._leak_figures``): could the answers' form alone
    tell raters their source? Per arm, then pair by pair (three arms or more), each with a
    sentence saying what the figures mean for the blinding."""
    from study.services.analyses import AUC_WARNING

    arms = leak.get("arms")
    if arms is None or arms.height == 0:
        return "<p>The study has no answers: no leak report.</p>"
    parts = [
        "<h3>Could the answers' form give their source away?</h3>"
        "<p>Neutral labels hide the arm, not the answer's form. The blinding leak report (read "
        "by the coordinator before launch, recomputed here from the same answers) measures per "
        "arm what a rater could go by without judging the content: length in words, Markdown "
        "(headings, lists, bold), phrases that name the source (\u201cAs an AI\u201d, a model's "
        "name, \u201cI cannot give medical advice\u201d), a sign-off as the last line, and "
        "<em>AUC</em>: how well a classifier that sees only length and format tells the arm's "
        "answers from the other arms' (cross-validated; 0.5 is chance, 1 tells every answer "
        f"apart). An AUC above {AUC_WARNING} warns that raters could tell the source from the "
        "form.</p>",
        html_table(
            (
                "arm",
                "answers",
                "words: median (IQR)",
                "mean words",
                "Markdown",
                "names its source",
                "sign-off",
                "AUC",
                f"above {AUC_WARNING}",
            ),
            [
                (
                    r["arm_id"],
                    r["n_answers"],
                    f"{number(r['median_words'], 0)} ({number(r['p25_words'], 0)} to "
                    f"{number(r['p75_words'], 0)})",
                    number(r["mean_words"], 0),
                    _share(r["share_markdown"]),
                    _share(r["share_self_identifying"]),
                    _share(r["share_signature"]),
                    number(r["format_auc"], 2),
                    "warning" if r["warning"] else "",
                )
                for r in arms.iter_rows(named=True)
            ],
        ),
        _leak_reading(arms, "arm_id", None, AUC_WARNING),
    ]
    pairs = leak.get("pairs")
    if pairs is not None and pairs.height:
        parts += [
            "<p>With three arms or more, the per-arm AUC pools \u201cthe other arms\u201d: an arm "
            "that stands out against one of them can look unremarkable against the pool. Pair "
            "by pair, on the cases both arms answered (the comparison a rater faces on one "
            "case):</p>",
            html_table(
                ("arm", "against", "shared cases", "AUC", f"above {AUC_WARNING}"),
                [
                    (
                        r["arm_a"],
                        r["arm_b"],
                        r["shared_cases"],
                        number(r["format_auc"], 2),
                        "warning" if r["warning"] else "",
                    )
                    for r in pairs.iter_rows(named=True)
                ],
            ),
            _leak_reading(pairs, "arm_a", "arm_b", AUC_WARNING),
        ]
    return "".join(parts)


def _leak_reading(frame: pl.DataFrame, arm: str, other: str | None, bound: float) -> str:
    """One paragraph in words: which arms (or pairs) the form gives away, and which answers
    name their source; the highest AUC when none passes ``bound``."""
    rows = list(frame.iter_rows(named=True))

    def who(r: Mapping[str, Any]) -> str:
        return (
            f"{e(r[arm])}'s answers from {e(r[other])}'s"
            if other
            else f"{e(r[arm])}'s answers from the other arms'"
        )

    scored = [r for r in rows if r["format_auc"] is not None and r["format_auc"] == r["format_auc"]]
    if not scored:
        return (
            "<p>With a single arm, or too few answers per arm, there is nothing to tell apart: "
            "no AUC.</p>"
        )
    flagged = [r for r in scored if r["warning"]]
    if flagged:
        said = "; ".join(f"{who(r)} (AUC {number(r['format_auc'], 2)})" for r in flagged)
        sentence = (
            f'<span class="warn">Warning:</span> length and format alone tell {said}. Raters '
            "may have recognised the source of these answers by their form: read the raters' "
            "guesses below (where they were asked) and the results with this in mind."
        )
    else:
        top = max(scored, key=lambda r: r["format_auc"])
        sentence = (
            f"Length and format alone tell no {'pair of arms' if other else 'arm'} apart "
            f"above {bound}; the highest AUC is {number(top['format_auc'], 2)} ({who(top)})."
        )
    naming = [r for r in rows if other is None and r["share_self_identifying"]]
    if naming:
        sentence += (
            " "
            + "; ".join(f"{_share(r['share_self_identifying'])} of {e(r[arm])}'s" for r in naming)
            + " answers name their source."
        )
    return f"<p>{sentence}</p>"
