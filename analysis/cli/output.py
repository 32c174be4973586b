"""How ``python -m analysis`` prints its results: strict JSON for machines (``to_json``), and
plain-text tables for people (``to_table``: the key columns, then each row's method, notes and
parameters; ``plain_table``: every column)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import polars as pl

from analysis import columns as C


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)  # dates, decimals: as text


def to_json(frame: pl.DataFrame) -> str:
    """``{"results": [...]}`` with NaN/inf as null; strict JSON (``allow_nan=False``)."""
    rows = [_clean(row) for row in frame.to_dicts()]
    return json.dumps({"results": rows}, allow_nan=False, indent=2)


_KEY_COLUMNS = (
    C.STATISTIC,
    C.VARIANT,
    C.ARM,
    C.RATER,
    C.COMPETITOR,
    C.OPPONENT,
    C.RATER_A,
    C.RATER_B,
    C.ESTIMATE,
    C.CI_LOW,
    C.CI_HIGH,
    C.P_VALUE,
    C.SHOWN,
    C.APPLICABLE,
)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-"
        # p-values such as 3e-07 must not print as 0.0000
        return f"{value:.3g}" if value and abs(value) < 1e-3 else f"{value:.4f}"
    return str(value)


def to_table(frame: pl.DataFrame, *, lead: Sequence[str] = ()) -> str:
    """A plain-text table of the key columns, then each row's method, note and parameters;
    ``lead``: columns shown first (the ``--by`` column)."""
    keys = [*lead, *(c for c in _KEY_COLUMNS if c not in lead)]
    shown = [c for c in keys if c in frame.columns and frame[c].null_count() < frame.height]
    cells = [[_cell(v) for v in row] for row in frame.select(shown).rows()]
    lines = _grid(["#", *shown], [[str(i + 1), *row] for i, row in enumerate(cells)])
    rest = [c for c in frame.columns if c not in shown and c not in (C.METHOD, C.NOTE)]
    methods: dict[str, list[int]] = {}
    for i, row in enumerate(frame.iter_rows(named=True), start=1):
        if row.get(C.METHOD):
            methods.setdefault(row[C.METHOD], []).append(i)
    if methods:
        lines.append("")
        lines += [f"method ({_ranges(rows)}): {text}" for text, rows in methods.items()]
    notes = [
        f"note {i}: {row[C.NOTE]}"
        for i, row in enumerate(frame.iter_rows(named=True), start=1)
        if row.get(C.NOTE)
    ]
    if notes:
        lines += ["", *notes]
    # Sentences (h0, h1, conclusion) get a line each; short constants go on one parameters line.
    sentences = [
        c
        for c in rest
        if frame[c].dtype == pl.String and (frame[c].str.len_chars().max() or 0) > 40
    ]
    for column in sentences:
        values: dict[str, list[int]] = {}
        for i, value in enumerate(frame[column].to_list(), start=1):
            if value:
                values.setdefault(value, []).append(i)
        lines += [""] + [f"{column} ({_ranges(rows)}): {text}" for text, rows in values.items()]
    first = frame.row(0, named=True)
    constant = [
        c for c in rest if c not in sentences and frame[c].n_unique() == 1 and first[c] is not None
    ]
    if constant:
        lines += ["", "parameters: " + ", ".join(f"{c}={_cell(first[c])}" for c in constant)]
    return "\n".join(lines)


def plain_table(frame: pl.DataFrame) -> str:
    """Every column of ``frame`` as a plain-text table (for ``describe``)."""
    return "\n".join(_grid(frame.columns, [[_cell(v) for v in row] for row in frame.rows()]))


def _grid(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    """The lines of a plain-text table: the header, a rule, then one line per row of ``body``,
    each column as wide as its widest cell."""
    widths = [max(len(r[k]) for r in [header, *body]) for k in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in body]
    return lines


def _ranges(rows: list[int]) -> str:
    if len(rows) == 1:
        return f"row {rows[0]}"
    if rows == list(range(rows[0], rows[-1] + 1)):
        return f"rows {rows[0]}-{rows[-1]}"
    return "rows " + ", ".join(map(str, rows))
