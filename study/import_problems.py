"""How import problems are worded, capped and ordered: the sentences every reader and check shares.

A value is shown quoted and cut short (``show_value``); at most ``MAX_PROBLEMS_PER_KIND`` problems
of one kind are listed, the rest counted (``capped``); a file's problems are listed file and
column problems first, then by row (``ordered``).
"""

from __future__ import annotations

from typing import Any

import polars as pl

from study.errors import Problem
from study.import_schemas import MAX_PROBLEMS_PER_KIND, Field, Kind


def show_value(value: Any, limit: int = 60) -> str:
    """``value`` as a problem quotes it: its repr, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…'"


def capped(problems: list[Problem]) -> list[Problem]:
    """At most ``MAX_PROBLEMS_PER_KIND`` per (column, reason), the rest counted in a summary
    placed right after the last problem of its kind that is listed."""
    seen: dict[tuple[str | None, str], int] = {}
    last: dict[tuple[str | None, str], int] = {}
    kept: list[Problem] = []
    for p in problems:
        key = (p.column, p.reason)
        seen[key] = seen.get(key, 0) + 1
        if seen[key] <= MAX_PROBLEMS_PER_KIND:
            last[key] = len(kept)
            kept.append(p)
    after: dict[int, Problem] = {
        last[key]: Problem.summary(problems[0].file, key[0], n - MAX_PROBLEMS_PER_KIND)
        for key, n in seen.items()
        if n > MAX_PROBLEMS_PER_KIND
    }
    if not after:
        return kept
    out: list[Problem] = []
    for i, p in enumerate(kept):
        out.append(p)
        if i in after:
            out.append(after[i])
    return out


def ordered(problems: list[Problem]) -> list[Problem]:
    """File and column problems first, then by row; a summary line ("... and N more") stays
    right after the last problem it continues, never before the rows it summarises."""
    groups: list[list[Problem]] = []
    for p in problems:
        if p.is_summary and groups:
            groups[-1].append(p)
        else:
            groups.append([p])
    groups.sort(key=lambda g: (g[0].row is not None, g[0].row or 0))
    return [p for g in groups for p in g]


def json_type_reason(field: Field, got: str) -> str:
    """Why a JSON or Parquet value of the wrong type (``got``, e.g. "a number") is refused."""
    if field.kind == Kind.TAGS:
        return f"tags must be a list of strings or a ';'-separated string, got {got}"
    if field.kind == Kind.JSON:
        return f"parameters must be a JSON object or a string holding one, got {got}"
    return f"must be a JSON string (in quotes), got {got}; nothing is converted"


def python_type_word(value: Any) -> str:
    """A parsed JSON value's type in words ("a number", "a list containing null")."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        odd = [v for v in value if not isinstance(v, str)]
        return f"a list containing {python_type_word(odd[0])}" if odd else "a list"
    if isinstance(value, dict):
        return "an object"
    if value is None:
        return "null"
    return "a string"


def dtype_word(dtype: pl.DataType) -> str:
    """A polars column type in the words of ``python_type_word``."""
    if dtype == pl.Boolean:
        return "a boolean"
    if dtype.is_numeric():
        return "a number"
    if isinstance(dtype, pl.List):
        return f"a list containing {dtype_word(dtype.inner)}"
    if isinstance(dtype, pl.Struct):
        return "an object"
    if dtype == pl.Null:
        return "null"
    if dtype == pl.String:
        return "a string"
    return str(dtype)
