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
leaves its cell for a row under it or a numbered note (``_table``'s ``details`` and ``notes``),
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
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

TO_COMPLETE = "to be completed by the authors"

TRIPOD_LLM = (
    "Gallifant J, Afshar M, Ameen S, et al. The TRIPOD-LLM reporting guideline for studies "
    "using large language models. Nat Med. 2025;31(1):60-69. doi:10.1038/s41591-024-03425-5"
)
DECIDE_AI = (
    "Vasey B, Nagendran M, Campbell B, et al. Reporting guideline for the early-stage clinical "
    "evaluation of decision support systems driven by artificial intelligence: DECIDE-AI. "
    "Nat Med. 2022;28(5):924-933. doi:10.1038/s41591-022-01772-9"
)

CSP = (
    "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; "
    "style-src 'unsafe-inline'; img-src data: blob:; font-src data:"
)
"""The page may run its own inline scripts and styles and nothing else: no fetch of any kind."""


def e(value: Any) -> str:
    """``value`` as escaped HTML text ("" for None)."""
    return html.escape("" if value is None else str(value), quote=True)


def _num(x: Any, digits: int = 3) -> str:
    """A number as HTML (text escaped): for cells of a ``raw`` table and HTML built here."""
    if x is None or (isinstance(x, float) and x != x):
        return "—"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return e(x)


def _p(x: Any) -> str:
    """A p-value as plain text, "<0.0001" below that: for cells that ``_table`` escapes (an
    escaped "&lt;" would be escaped again and read "&lt;0.0001" on the page)."""
    if isinstance(x, float) and 0 <= x < 0.0001:
        return "<0.0001"
    return _num(x, 4)


def _table(
    header: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    raw: bool = False,
    notes: Sequence[str] = (),
    details: Sequence[str] = (),
    note_at: str | None = None,
    widths: Sequence[str | None] = (),
) -> str:
    """An HTML table in a box of its own that scrolls sideways when the table is wider than the
    page (the page itself never does); cells are escaped unless ``raw`` (then they are HTML made
    here).

    A long text (a method, a remark) does not go in a cell: a 40-word cell makes a narrow, tall
    column that squeezes every other one. Name its column in ``notes`` or ``details`` and
    ``_table`` takes it out of the table:

    - ``notes``: each non-empty text of those columns becomes a numbered note listed under the
      table, and its number a superscript in the row's ``note_at`` column (default: the first
      column). The same text gets the same number wherever it occurs, so a remark shared by
      many rows is written once. With more than one notes column, each note names its column.
    - ``details``: the texts of those columns go in a row of their own just under their row,
      across the whole table, each after its column's name: for texts that belong to one row
      and are read with it (a method with that row's own figures).

    Note and detail texts are cells like the others (escaped unless ``raw``). ``widths``: CSS
    widths of the columns left in the table, in order (None: let the browser choose), e.g.
    ``("10em", None, "40%")``; a hint the browser follows as far as the longest word allows.
    """
    moved = set(notes) | set(details)
    unknown = moved - set(header) | ({note_at} - set(header) if note_at else set())
    if unknown or set(notes) & set(details):
        raise ValueError(
            f"notes, details and note_at name columns of the header {list(header)}, each once: "
            f"not {sorted(unknown or set(notes) & set(details))}."
        )
    kept = [i for i, h in enumerate(header) if h not in moved]
    note_columns = [header.index(h) for h in notes]
    detail_columns = [header.index(h) for h in details]
    anchor = kept.index(header.index(note_at)) if note_at else 0

    def cell(value: Any) -> str:
        return value if raw else e(value)

    numbers: dict[tuple[str, str], int] = {}  # (column, text) -> its note's number
    body = []
    for row in rows:
        cells = [cell(row[i]) for i in kept]
        marks = []
        for i in note_columns:
            text = cell(row[i])
            if text:
                key = (header[i] if len(note_columns) > 1 else "", text)
                marks.append(str(numbers.setdefault(key, len(numbers) + 1)))
        if marks:
            cells[anchor] += f'<sup class="note-ref">{",".join(marks)}</sup>'
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        said = [(header[i], cell(row[i])) for i in detail_columns if cell(row[i])]
        if said:
            body.append(
                f'<tr class="details"><td colspan="{len(kept)}">'
                + "".join(
                    f'<div><span class="name">{e(name)}:</span> {text}</div>' for name, text in said
                )
                + "</td></tr>"
            )
    cols = (
        "<colgroup>"
        + "".join(f'<col style="width:{e(w)}">' if w else "<col>" for w in widths)
        + "</colgroup>"
        if any(widths)
        else ""
    )
    head_cells = [header[i] for i in kept]
    # a two-column table of (what, value) rows has no header worth a grey bar
    head = (
        "<thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in head_cells) + "</tr></thead>"
        if any(head_cells)
        else ""
    )
    listed = (
        '<ol class="notes">'
        + "".join(
            f'<li value="{n}">'
            + (f'<span class="name">{e(column)}:</span> ' if column else "")
            + f"{text}</li>"
            for (column, text), n in numbers.items()
        )
        + "</ol>"
        if numbers
        else ""
    )
    return (
        f'<div class="table-wrap"><table>{cols}{head}<tbody>{"".join(body)}</tbody></table></div>'
        + listed
    )


# --- figures -----------------------------------------------------------------------------------


class _Figures:
    """Collects plotly figures; each becomes a div and a script drawing it from escaped JSON."""

    def __init__(self) -> None:
        self.count = 0

    def add(self, figure: Any, title: str) -> str:
        import plotly.io as pio

        self.count += 1
        div = f"figure-{self.count}"
        # The legend sits in a row above the plot, never at its right: there it took a fifth of
        # the width and was cut off on a narrow page. Axis labels make their own room
        # (automargin), so a long arm or item name widens the margin instead of being clipped.
        figure.update_layout(
            title={"text": e(title), "x": 0, "xanchor": "left", "y": 0.98, "yanchor": "top"},
            template="plotly_white",
            font={"size": 13},
            legend={"orientation": "h", "x": 0, "xanchor": "left", "y": 1.0, "yanchor": "bottom"},
            margin={"t": 80, "r": 30, "b": 60, "l": 60, **_given(figure.layout.margin)},
        )
        figure.update_xaxes(automargin=True)
        figure.update_yaxes(automargin=True)
        data = pio.to_json(figure, validate=True)
        safe = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        return (
            f'<div class="figure" id="{div}" data-title="{e(title)}"></div>'
            f"<script>(function(){{var f={safe};"
            f'Plotly.newPlot("{div}",f.data,f.layout,{{displaylogo:false,responsive:true}});'
            "})();</script>"
        )


def _given(margin: Any) -> dict[str, Any]:
    """The sides of a plotly layout margin that a figure set itself (the others are None)."""
    return {k: v for k, v in margin.to_plotly_json().items() if v is not None}


def _wrapped(label: str, width: int = 14) -> str:
    """``label`` escaped, its words joined into lines of about ``width`` characters with
    ``<br>`` (plotly's line break in an axis label), so that category labels stand side by side
    instead of being turned on their side or overlapping."""
    lines: list[str] = []
    for word in str(label).split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return "<br>".join(e(line) for line in lines) or e(label)


def _forest(rows: list[dict[str, Any]], *, title: str, figures: _Figures, x_title: str) -> str:
    """A forest plot: one line per row (label, estimate, ci_low, ci_high, optional margin)."""
    import plotly.graph_objects as go

    rows = [r for r in rows if r.get("estimate") is not None]
    if not rows:
        return ""
    labels = [e(r["label"]) for r in rows]
    est = [r["estimate"] for r in rows]
    fig = go.Figure(
        go.Scatter(
            x=est,
            y=labels,
            mode="markers",
            marker={"size": 10},
            name="estimate",
            error_x={
                "type": "data",
                "symmetric": False,
                "array": [(r.get("ci_high") or r["estimate"]) - r["estimate"] for r in rows],
                "arrayminus": [r["estimate"] - (r.get("ci_low") or r["estimate"]) for r in rows],
            },
        )
    )
    margins = [(r["label"], r["margin_at"]) for r in rows if r.get("margin_at") is not None]
    if margins:
        fig.add_trace(
            go.Scatter(
                x=[m for _, m in margins],
                y=[e(label) for label, _ in margins],
                mode="markers",
                marker={"symbol": "line-ns-open", "size": 22, "color": "firebrick"},
                name="non-inferiority margin",
            )
        )
    fig.add_vline(x=0, line_dash="dot", line_color="grey")
    fig.update_layout(
        # a row takes 45 px; a one-row plot still gets room for its title, legend and axis
        height=max(260, 150 + 45 * len(rows)),
        xaxis_title=x_title,
        yaxis={"autorange": "reversed"},
        showlegend=bool(margins),
    )
    return figures.add(fig, title)


# --- sections ----------------------------------------------------------------------------------


def render(facts: Mapping[str, Any]) -> str:
    """The report as one HTML document (text); ``facts`` as ``exports.write_bundle`` gathers."""
    from plotly.offline import get_plotlyjs

    figures = _Figures()
    study = facts["study"]
    sections = [
        ("summary", "Summary", _summary(facts)),
        ("design", "Design", _design(facts)),
        ("flow", "Flow of cases and raters", _flow(facts)),
        ("agreement", "Agreement between raters", _agreement(facts, figures)),
        ("results", "Primary and secondary results", _results(facts, figures)),
        ("distributions", "Ratings by arm", _distributions(facts, figures)),
        ("blinding", "Blinding", _blinding(facts, figures)),
        ("deviations", "Deviations from the protocol", _deviations(facts)),
        ("tripod-llm", "TRIPOD-LLM items", _guideline(_tripod_items(facts), TRIPOD_LLM)),
        ("decide-ai", "DECIDE-AI items", _decide(facts)),
        ("reproducibility", "Reproducibility", _reproducibility(facts)),
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


def _primary(facts: Mapping[str, Any]) -> dict[str, Any]:
    """The plan's primary endpoint as the results read it (its direction filled from the item's
    declaration, ``study.protocol``), without the fields the protocol leaves unset."""
    results = facts.get("results") or {}
    plan = results.get("protocol") or facts.get("plan")
    primary = plan.primary if plan is not None else None
    if primary is None:
        return {}
    fields = {
        "item": primary.item,
        "margin": primary.margin,
        "direction": primary.direction,
        "alpha": primary.alpha,
        "method": primary.method,
        "statistic": primary.statistic,
        "sensitivity_methods": list(primary.sensitivity_methods),
    }
    return {k: v for k, v in fields.items() if v is not None}


def _table_of(facts: Mapping[str, Any]) -> pl.DataFrame | None:
    """The results table (``analyses.RESULT_COLUMNS``), or None before a plan was run."""
    return (facts.get("results") or {}).get("results")


def _summary(facts: Mapping[str, Any]) -> str:
    study, flow = facts["study"], facts["flow"]
    ratings: pl.DataFrame = facts["ratings"]
    parts = [
        f"<p>{e(study.get('description') or '')}</p>",
        _table(
            ("what", "count"),
            [
                ("cases", flow["cases"]),
                ("arms", facts["arms"].height),
                ("answers", flow["answers"]),
                ("raters with assignments", flow["raters_assigned"]),
                ("assignments (done)", f"{flow['assignments']} ({flow['done']})"),
                ("ratings exported (current, submitted)", ratings.height),
            ],
        ),
    ]
    ni = _table_of(facts)
    if ni is not None and ni.height:
        for row in ni.filter(pl.col("role") == "primary").head(1).iter_rows(named=True):
            parts.append(
                f"<p><strong>Primary result:</strong> {e(row.get('conclusion') or row.get('note'))}</p>"
            )
    return "".join(parts)


def _design(facts: Mapping[str, Any]) -> str:
    arms: pl.DataFrame = facts["arms"]
    arm_rows = [
        (
            r["arm_id"],
            r["kind"],
            r["label"],
            r["model_name"] or "",
            r["model_version"] or "",
            r["author_role"] or "",
            r["answers"],
        )
        for r in arms.iter_rows(named=True)
    ]
    instruments = [
        (i["key"], i["version"], i["title"], i["content_hash"], i["citation"])
        for i in facts["instruments"]
    ]
    items = [
        (
            r["item_key"],
            f"{r['instrument_key']} {r['instrument_version']}",
            r["prompt"],
            r["type"],
            r["level"],
            r["direction"],
            r["scope"],
            # no break space around "=": a code stays on the line of its label
            "; ".join(
                f"{o.get('value')}\u00a0=\u00a0{o.get('label')}"
                for o in json.loads(r["options"] or "[]")
            ),
        )
        for r in facts["items"].iter_rows(named=True)
    ]
    protocol = facts["protocols"][-1] if facts["protocols"] else None
    primary = _primary(facts)
    design_event = next(
        (
            ev["payload"]
            for ev in reversed(facts["events"])
            if ev["action"] == "assignments.persist"
        ),
        {},
    )
    plan = [
        ("primary item", primary.get("item", TO_COMPLETE)),
        ("margin", primary.get("margin", "—")),
        ("direction", primary.get("direction", "from the item")),
        ("one-sided alpha", primary.get("alpha", 0.025)),
        ("method", primary.get("method", "t")),
        ("statistic", primary.get("statistic", "from the item (mean or risk difference)")),
        ("sensitivity methods", ", ".join(primary.get("sensitivity_methods") or []) or "—"),
        ("assignment algorithm", ", ".join(design_event.get("algorithm") or []) or "—"),
        (
            "assignment design",
            "; ".join(
                f"{k} {v}" for k, v in (design_event.get("design") or {}).items() if k != "raters"
            )
            or "—",
        ),
        ("ratings collected", facts["origin"].get("origin", "—")),
    ]
    what = {
        "protocol.lock": "protocol version {version} locked",
        "assignments.persist": "assignments stored",
        "study.rating": "rating opened",
        "study.closed": "rating closed",
        "study.unblinded": "unblinded",
    }
    timeline = [
        (
            str(ev["occurred_at"])[:19],
            what[ev["action"]].format(version=ev["payload"].get("version", "")),
            ev["actor"],
            ev["seq"],
        )
        for ev in facts["events"]
        if ev["action"] in what
    ]
    return (
        "<h3>Timeline (UTC, from the audit trail)</h3>"
        + _table(("when", "what", "by", "audit event"), timeline)
        + "<h3>Arms</h3>"
        + _table(
            ("arm", "kind", "label", "model", "model version", "author role", "answers"), arm_rows
        )
        + "<h3>Instruments</h3>"
        + _table(
            ("key", "version", "title", "content hash", "source"), instruments, notes=("source",)
        )
        + "<h3>Items</h3>"
        + _table(
            ("item", "instrument", "wording", "type", "level", "direction", "rated per", "values"),
            items,
            # the wording and the values are the sentences here; the codes keep to one word
            widths=(None, None, "25%", None, None, None, None, "22%"),
        )
        + "<h3>Analysis plan (locked protocol"
        + (
            f" version {e(protocol['version'])}, hash <code>{e(protocol['content_hash'])}</code>"
            if protocol
            else ""
        )
        + ")</h3>"
        + _table(("", ""), plan)
    )


def _flow(facts: Mapping[str, Any]) -> str:
    flow = facts["flow"]
    ratings: pl.DataFrame = facts["ratings"]
    rated_cases = ratings.get_column("case").n_unique() if ratings.height else 0
    rated_raters = ratings.get_column("rater").n_unique() if ratings.height else 0
    not_assigned = flow["cases"] - flow["cases_assigned"]
    boxes = [
        f"{flow['cases']} cases imported",
        f"{flow['cases_assigned']} cases assigned to {flow['raters_assigned']} raters "
        f"({flow['assignments']} assignments)",
        f"{flow['done']} assignments rated; {flow['skipped']} skipped; "
        f"{flow['assignments'] - flow['done'] - flow['skipped']} not rated",
        f"{rated_cases} cases and {rated_raters} raters in the export ({ratings.height} ratings)",
    ]
    flow_html = (
        '<div class="flow">'
        + " → ".join(f'<div class="box">{e(b)}</div>' for b in boxes)
        + "</div>"
    )
    exclusions = [
        ("cases imported but never assigned", not_assigned, "not in the assignment design"),
        ("assignments skipped by their rater", flow["skipped"], "reasons below"),
        (
            "assignments not rated (yet)",
            flow["assignments"] - flow["done"] - flow["skipped"],
            "rating stopped before they were done",
        ),
        ("cases flagged as faulty (kept, not excluded)", flow["flagged"], "reasons below"),
    ]
    flags: pl.DataFrame = facts["case_flags"]
    flag_rows = [
        (r["kind"], r["case_id"], r["rater"], r["reason"]) for r in flags.iter_rows(named=True)
    ]
    raters: pl.DataFrame = facts["raters"]
    by_specialty = (
        raters.group_by("specialty")
        .agg(pl.len().alias("raters"), pl.col("done").sum())
        .sort("specialty")
        if raters.height
        else raters
    )
    per_rater = [
        (r["rater"], r["specialty"], r["assignments"], r["done"])
        for r in raters.iter_rows(named=True)
    ]
    return (
        flow_html
        + "<h3>Exclusions and why</h3>"
        + _table(("what", "count", "why"), exclusions)
        + "<p>No rater or rating is excluded automatically; flagged raters and cases stay in "
        "every analysis unless the protocol says otherwise.</p>"
        + (
            "<h3>Skipped and flagged cases</h3>"
            + _table(("kind", "case", "rater", "reason"), flag_rows)
            if flag_rows
            else ""
        )
        + "<h3>Raters</h3>"
        + _table(
            ("specialty", "raters", "assignments done"),
            [
                (r["specialty"] or "not recorded", r["raters"], r["done"])
                for r in by_specialty.iter_rows(named=True)
            ],
        )
        + "<details><summary>Per rater</summary>"
        + _table(("rater", "specialty", "assignments", "done"), per_rater)
        + "</details>"
    )


def _agreement(facts: Mapping[str, Any], figures: _Figures) -> str:
    table: pl.DataFrame | None = (facts.get("results") or {}).get("agreement")
    if table is None or table.height == 0 or "statistic" not in table.columns:
        return "<p>No item could be analysed for agreement.</p>"
    # Cohen's kappa per rater pair is on the Analysis screen; here the pooled statistics
    table = table.filter(pl.col("statistic") != "cohen_kappa")
    rows = [
        (
            r["item"],
            r["statistic"],
            r.get("variant") or "",
            _num(r.get("estimate")),
            f"{_num(r.get('ci_low'))} to {_num(r.get('ci_high'))}",
            r.get("n_units") or "",
            r.get("n_raters") or "",
            r.get("method") or "",
            r.get("note") or "",
        )
        for r in table.iter_rows(named=True)
        if r.get("applicable") is not False or r["statistic"] == "krippendorff_alpha"
    ]
    alpha = [
        {
            "label": r["item"],
            "estimate": r.get("estimate"),
            "ci_low": r.get("ci_low"),
            "ci_high": r.get("ci_high"),
        }
        for r in table.filter(pl.col("statistic") == "krippendorff_alpha").iter_rows(named=True)
    ]
    return (
        "<p>Pooled over arms; unit: the answer rated (pairwise items: the case, value: the "
        "chosen arm or tie; other items rated once per case: the case). Each item at its declared level of measurement, over its declared "
        "scale. Cohen's kappa per rater pair is left out here.</p>"
        + _forest(
            alpha, title="Krippendorff's alpha per item (95% CI)", figures=figures, x_title="alpha"
        )
        + _table(
            (
                "item",
                "statistic",
                "variant",
                "estimate",
                "95% CI",
                "units",
                "raters",
                "method",
                "note",
            ),
            rows,
            # each row's method carries its own figures (pa, pe, the resamples): read with it
            details=("method", "note"),
        )
    )


def _results(facts: Mapping[str, Any], figures: _Figures) -> str:
    ni: pl.DataFrame | None = _table_of(facts)
    parts = []
    if ni is None or ni.height == 0:
        parts.append(
            "<p>The protocol plans no non-inferiority endpoint that could be analysed.</p>"
        )
    else:
        tested = ni.filter(pl.col("statistic").is_in(["mean_difference", "risk_difference",
                                                        "mean_difference_one_sample"]))  # fmt: skip
        for statistic, unit in (
            ("mean_difference", "points"),
            ("mean_difference_one_sample", "points"),
            ("risk_difference", "proportion"),
        ):
            rows = tested.filter(pl.col("statistic") == statistic)
            if rows.height == 0:
                continue
            plotted = []
            for r in rows.iter_rows(named=True):
                margin = r.get("margin")
                at = None
                if margin is not None:
                    at = -margin if r.get("direction") == "higher" else margin
                plotted.append(
                    {
                        "label": f"{r['item']}: {r.get('analysis') or r.get('role')}"[:80],
                        "estimate": r.get("estimate"),
                        "ci_low": r.get("ci_low"),
                        "ci_high": r.get("ci_high"),
                        "margin_at": at,
                    }
                )
            parts.append(
                _forest(
                    plotted,
                    title=f"{statistic.replace('_', ' ')}: test arm minus reference arm",
                    figures=figures,
                    x_title=f"difference ({unit})",
                )
            )
        parts.append(
            "<p>One row per planned analysis; rows marked <em>not in the plan</em> are "
            "sensitivity analyses Clinval adds. Difference = test arm minus reference arm; the "
            "interval is two-sided at 1 - 2 alpha; p is one-sided against the margin; p (Holm) "
            "adjusts the planned secondary tests as one family.</p>"
            + _table(
                (
                    "item",
                    "analysis",
                    "method",
                    "estimate",
                    "interval",
                    "p",
                    "p (Holm)",
                    "how",
                    "conclusion",
                ),  # fmt: skip
                [
                    (
                        r["item"],
                        r.get("analysis") or r.get("role") or "",
                        r.get("method") or "",
                        _num(r.get("estimate")),
                        f"{_num(r.get('ci_low'))} to {_num(r.get('ci_high'))}",
                        _p(r.get("p_value")),
                        _p(r.get("p_adjusted")),
                        r.get("method_description") or "",
                        r.get("conclusion") or r.get("note") or "",
                    )
                    for r in ni.iter_rows(named=True)
                ],
                # the method in the library's words is a sentence shared by several rows: a
                # numbered note; the conclusion is the row's own sentence: under the row
                notes=("how",),
                note_at="method",
                details=("conclusion",),
            )
        )
        planned = ni.filter(pl.col("in_plan") & pl.col("h0").is_not_null()).unique(
            subset=["item", "role"], keep="first", maintain_order=True
        )
        if planned.height:
            parts.append(
                "<details open><summary>Hypotheses of the planned tests</summary><ul>"
                + "".join(
                    f"<li><strong>{e(r['item'])}</strong> ({e(r['role'])}): {e(r['h0'])}; "
                    f"{e(r['h1'])}</li>"
                    for r in planned.iter_rows(named=True)
                )
                + "</ul></details>"
            )
    rubric: pl.DataFrame | None = (facts.get("results") or {}).get("rubric")
    if rubric is not None and rubric.height:
        parts.append(_rubric(rubric))
    pairwise: pl.DataFrame | None = (facts.get("results") or {}).get("pairwise")
    preference = (
        pairwise.filter(pl.col("statistic").is_in(["win_rate", "position_bias"]))
        if pairwise is not None and "statistic" in pairwise.columns
        else None
    )
    if preference is not None and preference.height:
        parts.append(_preference(preference, figures))
    return "".join(parts)


def _rubric(rubric: pl.DataFrame) -> str:
    """A rubric item's HealthBench scores per arm (overall, then per tag) and the raters'
    HealthBench agreement (``analyses.planned_results``' ``rubric`` frame)."""

    def rows(statistic: str) -> pl.DataFrame:
        if "statistic" not in rubric.columns:
            return rubric.head(0)
        return rubric.filter(pl.col("statistic") == statistic)

    scores, agreement = rows("rubric_score"), rows("healthbench_agreement")
    parts = [
        "<h3>Rubric scores (HealthBench)</h3><p>Per answer and rater: points of the criteria "
        "marked met over the case's positive points; per case the mean over its raters; per arm "
        "the mean over cases clipped to [0, 1], with a percentile bootstrap interval over cases "
        "(the unclipped mean beside it). The non-inferiority row above compares the arms on the "
        "per-answer scores, not clipped.</p>"
    ]
    if scores.height:
        parts.append(
            _table(
                ("item", "arm", "scores", "estimate", "interval", "unclipped", "cases", "raters"),
                [
                    (
                        r.get("item") or "",
                        r.get("arm") or "",
                        r.get("variant") or "",
                        _num(r.get("estimate")),
                        f"{_num(r.get('ci_low'))} to {_num(r.get('ci_high'))}",
                        _num(r.get("unclipped_mean")),
                        r.get("n_cases") if r.get("n_cases") is not None else "",
                        r.get("n_raters") if r.get("n_raters") is not None else "",
                    )
                    if r.get("applicable")
                    else (
                        r.get("item") or "",
                        r.get("arm") or "",
                        r.get("variant") or "",
                        r.get("note") or "not applicable",
                        "",
                        "",
                        "",
                        "",
                    )
                    for r in scores.iter_rows(named=True)
                ],
            )
        )
    if agreement.height:
        parts.append(
            "<p>Agreement on each criterion's met / not met between the raters, as HealthBench's "
            "meta-evaluation measures it (each rater against the others, and all pooled):</p>"
        )
        parts.append(
            _table(
                ("item", "rater", "measure", "estimate", "interval", "label pairs"),
                [
                    (
                        r.get("item") or "",
                        r.get("rater") or "",
                        r.get("variant") or "",
                        _num(r.get("estimate")) if r.get("applicable") else r.get("note") or "",
                        # no estimate, no interval: "— to —" read as a result
                        f"{_num(r.get('ci_low'))} to {_num(r.get('ci_high'))}"
                        if r.get("applicable")
                        else "",
                        r.get("n_pairs") if r.get("n_pairs") is not None else "",
                    )
                    for r in agreement.iter_rows(named=True)
                ],
            )
        )
    return "".join(parts)


def _preference(preference: pl.DataFrame, figures: _Figures) -> str:
    import plotly.graph_objects as go

    shares = (
        preference.filter(pl.col("statistic") == "win_rate")
        if "statistic" in preference.columns
        else preference.head(0)
    )
    fig = go.Figure()
    for variant in ("win", "tie", "loss"):
        part = shares.filter(pl.col("variant") == variant)
        fig.add_trace(
            go.Bar(
                x=part.get_column("estimate").to_list(),
                y=[
                    e(f"{i}: {c} vs {o}")
                    for i, c, o in part.select("item", "competitor", "opponent").iter_rows()
                ],
                orientation="h",
                name=variant,
            )
        )
    fig.update_layout(
        barmode="stack",
        height=max(260, 150 + 45 * max(1, shares.height // 3)),
        xaxis={"title": "share of choices", "range": [0, 1]},
    )
    rows = [
        (
            r["item"],
            r["statistic"],
            r.get("variant") or "",
            r.get("competitor") or "",
            r.get("opponent") or "",
            _num(r.get("estimate")),
            f"{_num(r.get('ci_low'))} to {_num(r.get('ci_high'))}",
            _p(r.get("p_value")),
            r.get("note") or "",
        )
        for r in preference.iter_rows(named=True)
    ]
    return (
        "<h3>Pairwise preference</h3>"
        + (figures.add(fig, "Which response is better: win, tie, loss") if shares.height else "")
        + _table(
            (
                "item",
                "statistic",
                "variant",
                "competitor",
                "opponent",
                "estimate",
                "95% CI",
                "p",
                "note",
            ),
            rows,
            details=("note",),
        )
    )


def _distributions(facts: Mapping[str, Any], figures: _Figures) -> str:
    import plotly.graph_objects as go

    ratings: pl.DataFrame = facts["ratings"]
    numeric = ratings.filter(pl.col("arm").is_not_null() & pl.col("value").is_not_null())
    if numeric.height == 0:
        return "<p>No numeric ratings per answer.</p>"
    scales = _numeric_scales(facts["items"])
    order = {key: n for n, key in enumerate(scales)}
    groups = sorted(
        numeric.group_by("instrument", "item", maintain_order=True),
        key=lambda group: order.get(group[0], len(order)),
    )
    parts = []
    for (instrument, item), rows in groups:
        scale = scales.get((instrument, item))
        counts = rows.group_by("arm", "value").agg(pl.len().alias("n"))
        n = {(arm, value): k for arm, value, k in counts.iter_rows()}
        totals = dict(counts.group_by("arm").agg(pl.col("n").sum()).sort("arm").iter_rows())
        if scale:
            # every option of the scale in its declared order, those nobody chose too (at 0),
            # named by its label: the reader sees "Very poor" .. "Very good", not 1.0 .. 5.0
            values = list(scale) + sorted(set(counts.get_column("value")) - set(scale))
            x = [_wrapped(scale[v]) if v in scale else _num(v, 1) for v in values]
            if len(set(x)) < len(x):  # two options with one label would share one bar
                x = [f"{label} ({_num(v, 1)})" for label, v in zip(x, values, strict=True)]
            xaxis = {
                "title": "rating",
                "type": "category",
                "categoryorder": "array",
                "categoryarray": x,
            }
        else:
            values = sorted(set(counts.get_column("value")))
            x = values
            xaxis = {"title": "value"}
        fig = go.Figure()
        for arm, total in totals.items():
            fig.add_trace(
                go.Bar(
                    x=x,
                    y=[n.get((arm, v), 0) / total for v in values],
                    customdata=[n.get((arm, v), 0) for v in values],
                    hovertemplate="%{y:.1%} (%{customdata} ratings)",
                    name=e(arm),
                )
            )
        fig.update_layout(
            barmode="group",
            height=340,
            xaxis=xaxis,
            yaxis={"title": "share of the arm's ratings", "tickformat": ".0%"},
        )
        parts.append(figures.add(fig, f"{item}: distribution by arm"))
    describe: pl.DataFrame | None = (facts.get("results") or {}).get("summary")
    if describe is not None and describe.height:
        keep = [
            c
            for c in (
                "item",
                "arm",
                "n",
                "missing",
                "mean",
                "sd",
                "median",
                "q1",
                "q3",
                "min",
                "max",
            )
            if c in describe.columns
        ]
        parts.append(
            _table(
                keep,
                [[_num(v) for v in row] for row in describe.select(keep).iter_rows()],
                raw=True,
            )
        )
    return "".join(parts)


def _numeric_scales(items: pl.DataFrame) -> dict[tuple[str, str], dict[float, str]]:
    """(instrument, item) -> {option value: label} of each item whose options have numeric
    values, in the items' order (an item without such options maps to an empty scale). A rubric
    item whose criteria come from the case has no options; the export rates each criterion
    1 (met) or 0 (not met), and those are its labels."""
    scales: dict[tuple[str, str], dict[float, str]] = {}
    for r in items.iter_rows(named=True):
        options = json.loads(r.get("options") or "[]")
        scale = {
            float(o["value"]): str(o.get("label") if o.get("label") is not None else o["value"])
            for o in options
            if isinstance(o.get("value"), int | float) and not isinstance(o.get("value"), bool)
        }
        if not options and r.get("type") == "rubric_criterion":
            scale = {0.0: "not met", 1.0: "met"}
        scales[(r["instrument_key"], r["item_key"])] = scale
    return scales


def _blinding(facts: Mapping[str, Any], figures: _Figures) -> str:
    text = (
        "<p>Raters saw the answers under neutral labels (Response A, B, ...) in an order fixed by "
        "the seeded design; arms, models and authors never reached their browsers, and no rater "
        "was assigned a case whose answer they wrote. The assignment seed was sealed at the lock "
        f"({e(facts['seed'].get('note'))}).</p>"
    ) + _leak(facts.get("leak") or {})
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
        + _forest(rows, title="Blinding indices (95% CI)", figures=figures, x_title="index")
        + _table(
            ("statistic", "arm", "estimate", "95% CI", "guesses", "note"),
            [
                (
                    r.get("statistic") or "",
                    r.get("arm") or "",
                    _num(r.get("estimate")),
                    f"{_num(r.get('ci_low'))} to {_num(r.get('ci_high'))}",
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


def _leak(leak: Mapping[str, pl.DataFrame | None]) -> str:
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
        _table(
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
                    f"{_num(r['median_words'], 0)} ({_num(r['p25_words'], 0)} to "
                    f"{_num(r['p75_words'], 0)})",
                    _num(r["mean_words"], 0),
                    _share(r["share_markdown"]),
                    _share(r["share_self_identifying"]),
                    _share(r["share_signature"]),
                    _num(r["format_auc"], 2),
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
            _table(
                ("arm", "against", "shared cases", "AUC", f"above {AUC_WARNING}"),
                [
                    (
                        r["arm_a"],
                        r["arm_b"],
                        r["shared_cases"],
                        _num(r["format_auc"], 2),
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
        said = "; ".join(f"{who(r)} (AUC {_num(r['format_auc'], 2)})" for r in flagged)
        sentence = (
            f'<span class="warn">Warning:</span> length and format alone tell {said}. Raters '
            "may have recognised the source of these answers by their form: read the raters' "
            "guesses below (where they were asked) and the results with this in mind."
        )
    else:
        top = max(scored, key=lambda r: r["format_auc"])
        sentence = (
            f"Length and format alone tell no {'pair of arms' if other else 'arm'} apart "
            f"above {bound}; the highest AUC is {_num(top['format_auc'], 2)} ({who(top)})."
        )
    naming = [r for r in rows if other is None and r["share_self_identifying"]]
    if naming:
        sentence += (
            " "
            + "; ".join(f"{_share(r['share_self_identifying'])} of {e(r[arm])}'s" for r in naming)
            + " answers name their source."
        )
    return f"<p>{sentence}</p>"


def _deviations(facts: Mapping[str, Any]) -> str:
    locks = {
        ev["payload"].get("version"): ev
        for ev in facts["events"]
        if ev["action"] == "protocol.lock"
    }
    later = [p for p in facts["protocols"] if p["version"] > 1]
    rows = [
        (
            p["version"],
            p["locked_at"],
            p["locked_by"],
            p["reason"] or "",
            p["content_hash"],
            locks.get(p["version"], {}).get("seq", "—"),
        )
        for p in later
    ]
    unknown: pl.DataFrame = facts["unknown_provenance"]
    unknown_rows = [
        (r["arm_id"], r["field"], r["level"], r["answers"], r["consequence"])
        for r in unknown.iter_rows(named=True)
    ]
    out = (
        _table(
            ("version", "locked at (UTC)", "by", "reason", "content hash", "audit event"),
            rows,
            details=("reason",),  # the coordinator's own words, as long as they needed
        )
        if rows
        else "<p>None: the protocol locked as version 1 was never amended.</p>"
    )
    if unknown_rows:
        out += "<h3>Provenance the sources never recorded</h3>" + _table(
            ("arm", "field", "level", "answers", "consequence"), unknown_rows
        )
    origin = facts["origin"].get("origin")
    if origin in ("imported", "mixed"):
        out += (
            f"<p>Ratings were {'all' if origin == 'imported' else 'partly'} imported from "
            "elsewhere, not collected blind in Clinval.</p>"
        )
    return out


# --- reporting guidelines ----------------------------------------------------------------------


def _llm_arms(facts: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [r for r in facts["arms"].iter_rows(named=True) if r["kind"] == "llm"]


def _tripod_items(facts: Mapping[str, Any]) -> list[tuple[str, str, str | None]]:
    """(section, topic, what the data says as HTML, or None: to be completed)."""
    llm = _llm_arms(facts)
    ratings: pl.DataFrame = facts["ratings"]
    flow = facts["flow"]
    raters: pl.DataFrame = facts["raters"]
    primary = _primary(facts)
    protocol = facts["protocols"][-1] if facts["protocols"] else None
    models = "; ".join(
        f"{e(a['model_name'])} version {e(a['model_version'])} (arm {e(a['arm_id'])})" for a in llm
    )
    dates = "; ".join(
        f"arm {e(a['arm_id'])}: answers generated {e(a['first_generated'] or 'not recorded')} to "
        f"{e(a['last_generated'] or 'not recorded')}"
        for a in llm
    )
    submitted = ratings.get_column("submitted_at").drop_nulls() if ratings.height else None
    rating_period = (
        f"ratings submitted {e(str(submitted.min())[:19])} to {e(str(submitted.max())[:19])} (UTC)"
        if submitted is not None and submitted.len()
        else "no ratings submitted"
    )
    prompts = "".join(
        f"<p>Arm {e(a['arm_id'])}: {e(a['prompts'])} distinct prompt(s), "
        f"{e(a['system_prompts'])} system prompt(s), {e(a['parameter_sets'])} parameter set(s)"
        f"{'; parameters ' + '<code>' + e(a['example_parameters']) + '</code>' if a['example_parameters'] else ''}."
        f"{'<pre>' + e(a['example_prompt']) + '</pre>' if a['example_prompt'] else ''}"
        f"{'System prompt:<pre>' + e(a['example_system_prompt']) + '</pre>' if a['example_system_prompt'] else ''}</p>"
        for a in llm
    )
    specialties = (
        ", ".join(
            f"{e(s or 'not recorded')} {n}"
            for s, n in raters.group_by("specialty").agg(pl.len()).sort("specialty").iter_rows()
        )
        if raters.height
        else "none"
    )
    agreement = (facts.get("results") or {}).get("agreement")
    alpha = (
        "; ".join(
            f"{e(r['item'])} {_num(r.get('estimate'))} ({_num(r.get('ci_low'))} to {_num(r.get('ci_high'))})"
            for r in agreement.filter(pl.col("statistic") == "krippendorff_alpha").iter_rows(
                named=True
            )
        )
        if agreement is not None and "statistic" in agreement.columns
        else ""
    )
    ni = _table_of(facts)
    primary_result = (
        " ".join(
            f"{e(r.get('variant') or r.get('statistic'))}: {e(r.get('conclusion') or r.get('note'))}"
            for r in ni.filter(pl.col("role") == "primary").iter_rows(named=True)
        )
        if ni is not None and "role" in ni.columns
        else ""
    )
    fewest, most = flow["fewest_raters_per_case"], flow["most_raters_per_case"]
    per_case = (
        (f"{fewest}" if fewest == most else f"{fewest} to {most}") if fewest is not None else None
    )
    return [
        (
            "Title and abstract",
            "Title: identifies the study as evaluating an LLM, the task and the setting",
            None,
        ),
        (
            "Title and abstract",
            "Abstract: structured summary of objectives, LLM, data, evaluation and results",
            None,
        ),
        ("Introduction", "Background: the clinical task and the rationale for using an LLM", None),
        (
            "Introduction",
            "Objectives: the research question and hypotheses",
            (
                f"Non-inferiority of the LLM arm against the reference arm on "
                f"<code>{e(primary.get('item'))}</code>, margin {e(primary.get('margin'))}, "
                f"one-sided alpha {e(primary.get('alpha', 0.025))} (locked protocol)."
            )
            if primary.get("item")
            else None,
        ),
        (
            "Methods: data",
            "Data sources: where the cases and answers come from; dates",
            f"{flow['cases']} cases, {flow['answers']} answers from {facts['arms'].height} arms"
            + (" (synthetic demo data)" if facts["study"].get("synthetic") else "")
            + f"; {dates or 'no LLM arm'}; {rating_period}.",
        ),
        (
            "Methods: data",
            "Data preparation: how cases were selected, cleaned and de-identified",
            None,
        ),
        (
            "Methods: LLM",
            "Model names, versions and access (API or local), date of use",
            (models + ". Access route: " + TO_COMPLETE + ".") if llm else None,
        ),
        (
            "Methods: LLM",
            "Prompts, system prompts and generation parameters; prompt development",
            (prompts + "How the prompts were developed: " + TO_COMPLETE + ".") if llm else None,
        ),
        ("Methods: LLM", "Fine-tuning, retrieval augmentation or other adaptation", None),
        (
            "Methods: outcomes",
            "Outcomes and how they were assessed: instrument, items, scales",
            "; ".join(
                f"{e(i['key'])} {e(i['version'])} ({e(i['title'])})" for i in facts["instruments"]
            )
            + ". Item wording, scales and levels: see Design and the codebook.",
        ),
        (
            "Methods: annotation",
            "Annotation process: number of raters, their expertise, assignment, training",
            f"{raters.height} raters (specialty: {specialties}); "
            f"{e(per_case) if per_case else 'assigned'} raters per case; "
            f"{flow['assignments']} assignments by a seeded design. Rater training and "
            f"calibration: {TO_COMPLETE}.",
        ),
        (
            "Methods: annotation",
            "Blinding of raters to the source of answers",
            "Answers shown under neutral labels in a seeded order; no arm, model or author reaches "
            "the rater's browser; no rater rates their own answer"
            + (
                "; raters guessed each answer's source (blinding indices reported)."
                if (
                    (facts.get("results") or {}).get("blinding") is not None
                    and (facts.get("results") or {})["blinding"].height
                )
                else "."
            ),
        ),
        (
            "Methods: analysis",
            "Statistical methods: estimand, margin, methods, multiplicity, agreement statistics",
            f"Test minus reference; method {e(primary.get('method', 't'))}"
            + (
                f", sensitivity {e(', '.join(primary.get('sensitivity_methods') or []))}"
                if primary.get("sensitivity_methods")
                else ""
            )
            + "; secondary endpoints Holm-adjusted; agreement: Krippendorff's alpha at each item's "
            "level with unit-bootstrap CIs, Fleiss', Randolph's kappa, Gwet's AC1/AC2, ICC.",
        ),
        ("Methods: analysis", "Sample size and its rationale", None),
        (
            "Open science",
            "Protocol: where it can be accessed; registration",
            (
                f"Locked protocol version {e(protocol['version'])}, SHA-256 "
                f"<code>{e(protocol['content_hash'])}</code>. Registration: {TO_COMPLETE}."
            )
            if protocol
            else None,
        ),
        ("Open science", "Funding, conflicts of interest, data and code availability", None),
        ("Open science", "Patient and public involvement", None),
        (
            "Results",
            "Flow of cases and raters, with exclusions",
            f"See Flow: {flow['cases']} cases, {flow['assignments']} assignments, {flow['done']} "
            f"rated, {flow['skipped']} skipped, {flow['flagged']} flagged.",
        ),
        ("Results", "Inter-rater agreement", f"Krippendorff's alpha: {alpha}." if alpha else None),
        ("Results", "Performance: primary and secondary results", primary_result or None),
        ("Discussion", "Interpretation, limitations, implications for practice", None),
    ]


def _guideline(items: list[tuple[str, str, str | None]], citation: str) -> str:
    rows = [
        (e(section), e(topic), filled if filled else f'<span class="todo">{TO_COMPLETE}</span>')
        for section, topic, filled in items
    ]
    return (
        f"<p>Topics of the checklist ({e(citation)}), paraphrased; the numbering is the "
        "checklist's own. Filled from the study's data where it can be.</p>"
        + _table(
            ("section", "topic", "from this study"),
            rows,
            raw=True,
            # what the study says holds prompts, parameters and a protocol hash: room for them
            widths=("9em", "30%", None),
        )
    )


def _decide(facts: Mapping[str, Any]) -> str:
    llm = _llm_arms(facts)
    raters: pl.DataFrame = facts["raters"]
    items = [
        (
            "AI system",
            "Identification of the AI system (name, version)",
            "; ".join(f"{e(a['model_name'])} {e(a['model_version'])}" for a in llm) or None,
        ),
        (
            "Participants",
            "Users: number and characteristics of the people who used or judged the system",
            f"{raters.height} clinician raters; specialties as in Flow.",
        ),
        ("Implementation", "Setting, integration into the clinical workflow", None),
        ("Safety", "Errors and harms observed, and how they were handled", None),
        ("Human factors", "Usability, learning curve, user trust", None),
    ]
    return (
        "<p>DECIDE-AI applies to the early live clinical evaluation of AI decision support. This "
        "study rates answers offline; the items below apply only where the LLM is also used in "
        "care.</p>" + _guideline(items, DECIDE_AI)
    )


def _reproducibility(facts: Mapping[str, Any]) -> str:
    seed = facts["seed"]
    protocol = facts["protocols"][-1] if facts["protocols"] else None
    rows = [
        (
            "audit chain head",
            f"<code>{e(facts['audit_head'])}</code> (event {e(facts['audit_seq'])})",
        ),
        ("protocol hash", f"<code>{e(protocol['content_hash'])}</code>" if protocol else "—"),
        (
            "assignment seed",
            e(seed.get("seed")) if seed.get("seed") is not None else e(seed.get("note")),
        ),
        ("seed commitment", f"<code>{e(seed.get('commitment'))}</code>"),
    ]
    return (
        _table(("", ""), rows, raw=True)
        + "<p>The bundle's <code>manifest.json</code> records the package versions, the analysis "
        "seed and the SHA-256 of every file; <code>python -m study audit verify --expect "
        "HASH</code> shows that the audit chain still holds this head.</p>"
    )
