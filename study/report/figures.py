"""The report's figures: plotly figures embedded as escaped JSON (``Figures``), category labels
that wrap, and the forest plot that the agreement, results and blinding sections share."""

from __future__ import annotations

from typing import Any

from study.report.cells import e


class Figures:
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


def wrapped_label(label: str, width: int = 14) -> str:
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


def forest_plot(rows: list[dict[str, Any]], *, title: str, figures: Figures, x_title: str) -> str:
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
