"""The cells every section of the report is built of: escaped text, numbers, p-values, and the
table that moves long texts out of its cells into notes and detail rows."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

TO_COMPLETE = "to be completed by the authors"


def e(value: Any) -> str:
    """``value`` as escaped HTML text ("" for None)."""
    return html.escape("" if value is None else str(value), quote=True)


def number(x: Any, digits: int = 3) -> str:
    """A number as HTML (text escaped): for cells of a ``raw`` table and HTML built here."""
    if x is None or (isinstance(x, float) and x != x):
        return "—"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return e(x)


def p_text(x: Any) -> str:
    """A p-value as plain text, "<0.0001" below that: for cells that ``html_table`` escapes (an
    escaped "&lt;" would be escaped again and read "&lt;0.0001" on the page)."""
    if isinstance(x, float) and 0 <= x < 0.0001:
        return "<0.0001"
    return number(x, 4)


def html_table(
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
    ``html_table`` takes it out of the table:

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
