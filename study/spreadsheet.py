"""Text cells that a spreadsheet would run: neutralised in CSV exports (CSV injection).

A cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is run as a formula
by Excel, LibreOffice and Google Sheets when a CSV file is opened (``=HYPERLINK(...)`` sends a
click elsewhere). Clinval's CSV exports prefix such cells with ``'`` by default, which the
spreadsheets show as text; ``python -m study export --raw-csv`` writes them as stored.
"""

from __future__ import annotations

import polars as pl

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet run a cell as a formula (CSV injection)."""


def neutralise_formulas(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with every text cell that a spreadsheet would run as a formula (starting with
    ``=``, ``+``, ``-``, ``@``, a tab or a carriage return) prefixed with ``'``, which
    spreadsheets show as text. Numbers are left alone. For CSV exports, by default."""
    text = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    risky = "^[" + "".join("\\" + c if c in "-+" else c for c in FORMULA_STARTS) + "]"
    return frame.with_columns(
        pl.when(pl.col(c).str.contains(risky)).then("'" + pl.col(c)).otherwise(pl.col(c)).alias(c)
        for c in text
    )
