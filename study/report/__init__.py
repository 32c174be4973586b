"""The study report: one self-contained HTML file (design, flow, agreement, results with figures,
deviations from the protocol, and the reporting-guideline items the study's data can fill).

Pure: ``render(facts)`` takes what ``study.services.exports.write_bundle`` gathered (the study,
its protocol versions and their audit events, arms with their provenance, instruments and items,
raters, the flow counts, flags and skips, the exported ratings and ``analyses.planned_results``)
and returns the HTML text. No database, no network.

**Offline.** plotly.js is included once, inline; every figure is drawn from JSON embedded in the
file. A Content-Security-Policy in the page forbids every fetch (``default-src 'none'``), so the
report cannot load anything even when opened from a web server.

**Untrusted text.** Case text, arm labels, model names, prompts, rater ids and reasons are
written by importers and raters: every value is HTML-escaped (``html.escape``) before it enters
the page, text inside figures too (plotly reads a few tags in labels), and the figures' JSON has
``<``, ``>`` and ``&`` written as ``\\u003c``, ``\\u003e``, ``\\u0026`` so that no text can close
the script element that carries it.

**Layout.** The report is read on a screen and filed: a table cell never cuts a word (a column
is as wide as its longest word), a text longer than a value (a method, a hypothesis, a citation)
leaves its cell for a row under it or a numbered note (``cells.html_table``'s ``details`` and ``notes``),
a table wider than the page scrolls in a box of its own, and figures name categories by their
labels. ``tests/test_report_browser.py`` checks this in Chromium at 1,280 px.

**Reporting guidelines.** The checklist topics are those of TRIPOD-LLM (Gallifant J, Afshar M,
Ameen S, et al. The TRIPOD-LLM reporting guideline for studies using large language models.
Nat Med. 2025;31(1):60-69. doi:10.1038/s41591-024-03425-5; interactive checklist at
https://tripod-llm.vercel.app/) and, where an LLM is evaluated in clinical use, DECIDE-AI
(Vasey B, Nagendran M, Campbell B, et al. Reporting guideline for the early-stage clinical
evaluation of decision support systems driven by artificial intelligence: DECIDE-AI. Nat Med.
2022;28(5):924-933. doi:10.1038/s41591-022-01772-9). Topics are paraphrased and grouped by the
checklists' sections, not numbered: authors map them to the item numbers of the checklist
version they submit. What the study's data cannot fill is listed as "to be completed by the
authors".

**Modules.** ``cells`` (escaped text, numbers, the table), ``figures`` (plotly, embedded),
``conduct`` (summary, design, flow, deviations), ``results`` (agreement, results, ratings by
arm), ``blinding`` (guesses and the leak report), ``guidelines`` (TRIPOD-LLM, DECIDE-AI,
reproducibility); this module assembles them into the page.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from study.report.blinding import blinding_section, leak_tables
from study.report.cells import TO_COMPLETE, e, html_table, p_text
from study.report.conduct import design_section, deviations_section, flow_section, summary_section
from study.report.figures import Figures, wrapped_label
from study.report.guidelines import (
    DECIDE_AI,
    TRIPOD_LLM,
    decide_section,
    reproducibility_section,
    tripod_section,
)
from study.report.results import (
    agreement_section,
    distributions_section,
    numeric_scales,
    results_section,
)

CSP = (
    "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; "
    "style-src 'unsafe-inline'; img-src data: blob:; font-src data:"
)
"""The page may run its own inline scripts and styles and nothing else: no fetch of any kind."""


def render(facts: Mapping[str, Any]) -> str:
    """The report as one HTML document (text); ``facts`` as ``exports.write_bundle`` gathers."""
    from plotly.offline import get_plotlyjs

    figures = Figures()
    study = facts["study"]
    sections = [
        ("summary", "Summary", summary_section(facts)),
        ("design", "Design", design_section(facts)),
        ("flow", "Flow of cases and raters", flow_section(facts)),
        ("agreement", "Agreement between raters", agreement_section(facts, figures)),
        ("results", "Primary and secondary results", results_section(facts, figures)),
        ("distributions", "Ratings by arm", distributions_section(facts, figures)),
        ("blinding", "Blinding", blinding_section(facts, figures)),
        ("deviations", "Deviations from the protocol", deviations_section(facts)),
        ("tripod-llm", "TRIPOD-LLM items", tripod_section(facts)),
        ("decide-ai", "DECIDE-AI items", decide_section(facts)),
        ("reproducibility", "Reproducibility", reproducibility_section(facts)),
    ]
    nav = "".join(f'<li><a href="#{key}">{e(title)}</a></li>' for key, title, _ in sections)
    body = "".join(
        f'<section id="{key}"><h2>{e(title)}</h2>{content}</section>'
        for key, title, content in sections
    )
    synthetic = (
        '<p class="synthetic">Synthetic demo data: no real patients, no medical advice.</p>'
        if study.get("synthetic")
        else ""
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Clinval report: {e(study['name'])}</title><style>{_STYLE}</style>"
        f"<script>{get_plotlyjs()}</script></head><body>"
        f"<h1>Clinval report: {e(study['name'])}</h1>{synthetic}"
        f'<p class="meta">Study <code>{e(study["id"])}</code>, status {e(study["status"])}. '
        f"Generated by {e(facts['actor'])}; audit chain head (event {e(facts['audit_seq'])}) "
        f"<code>{e(facts['audit_head'])}</code>.</p>"
        f"<nav><ol>{nav}</ol></nav>{body}</body></html>\n"
    )


_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
.table-wrap{max-width:100%;overflow-x:auto;margin:.6em 0}
table{border-collapse:collapse;font-size:.9em;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top;
  overflow-wrap:normal;word-break:normal;hyphens:manual}
th{background:#f3f3f3}
tr.details td{border-top:none;background:#fafafa;color:#444;font-size:.88em;padding-left:1.5em}
.name{font-style:italic;color:#555}
sup.note-ref{font-size:.75em;color:#4a6fa5;margin-left:.15em}
ol.notes{font-size:.85em;color:#444;margin:.2em 0 1em;padding-left:2em}
code{font-size:.85em}
p code,h3 code,li code{overflow-wrap:anywhere}
td code,th code{overflow-wrap:normal}
.synthetic{background:#fff3cd;padding:.5em;border:1px solid #e0c36a}
.todo{color:#8a4b00;font-style:italic} .figure{min-height:240px;width:100%}
.flow{display:flex;flex-wrap:wrap;gap:.5em;align-items:center}
.box{border:2px solid #4a6fa5;border-radius:6px;padding:.5em .8em;background:#f5f8fc}
pre{white-space:pre-wrap;background:#f7f7f7;padding:.5em;max-height:12em;overflow:auto}
.warn{color:#8a1c1c;font-weight:600}
"""
"""Table cells never break a word (``overflow-wrap``/``word-break`` normal, no automatic
hyphens): a column is at least as wide as its longest word, and a table wider than the page
scrolls inside its ``.table-wrap`` box. Code outside tables (hashes in a sentence) may break
anywhere, as a 64-character hash would otherwise widen the page."""

__all__ = ["CSP", "DECIDE_AI", "TO_COMPLETE", "TRIPOD_LLM", "e", "render"]

# The names the report's tests reach for, as they were called before the report was split into
# modules (tests/test_report_cells.py, tests/test_report_blinding.py).
_Figures = Figures
_design = design_section
_leak = leak_tables
_numeric_scales = numeric_scales
_p = p_text
_results = results_section
_table = html_table
_wrapped = wrapped_label
