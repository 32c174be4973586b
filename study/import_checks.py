"""The vectorised check engine of the importers: many checks, one pass over the frame.

``Checks`` collects (column, mask, reason) checks written as polars expressions, counts every
mask in one pass and turns only the failing rows into problems (capped per kind). The checks that
every format shares live here as well: per-field checks (required, length, NUL, id shape),
duplicates, tags, ISO dates, a JSON object of parameters, a JSON array (conversation, criteria),
and the blank and "not recorded" flags they read.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from study.canonical import canonical_json
from study.errors import Problem, ValidationError
from study.import_problems import ordered, python_type_word, show_value
from study.import_schemas import (
    MAX_ID_CHARS,
    MAX_LIST_CHARS,
    MAX_PROBLEMS_PER_KIND,
    MAX_SHORT_CHARS,
    MAX_TEXT_CHARS,
    NOT_RECORDABLE,
    NOT_RECORDED,
    ROW,
    TAGS_LIST,
    Field,
    Kind,
)

if TYPE_CHECKING:
    from study.import_files import FileReader

_NR = "__not_recorded_"  # flag column prefix: the field was given as NOT_RECORDED
_LIMITS = {
    Kind.JSON_LIST: MAX_LIST_CHARS,
    Kind.ID: MAX_ID_CHARS,
    Kind.TEXT: MAX_TEXT_CHARS,
    Kind.SHORT: MAX_SHORT_CHARS,
    Kind.JSON: MAX_TEXT_CHARS,
    Kind.VALUE: MAX_TEXT_CHARS,
}
_DATE_LIMIT = 64


@dataclass(slots=True)
class _Check:
    """One check: rows where ``mask`` holds are problems in ``column``, worded by ``reason``."""

    column: str
    mask: pl.Expr
    reason: str | Callable[[Any], str]
    columns: list[str] | None  # values handed to ``reason`` (a dict) instead of one value
    # a cheap mask runs over every row; ``exact`` then confirms the few rows it flagged
    exact: pl.Expr | None = None
    # turns all failing rows into problems when one reason per row is not enough
    materialise: Callable[[pl.DataFrame], list[Problem]] | None = None


class Checks:
    """Collects vectorised checks; evaluates all their counts in one pass over the frame, then
    materialises problems (capped) only for the checks that failed."""

    def __init__(self, reader: FileReader) -> None:
        self.reader = reader
        self.name = reader.name
        self.problems: list[Problem] = list(reader.problems)
        self.pending: list[_Check] = []
        self.frame_checks: list[tuple[pl.DataFrame, list[_Check]]] = []

    def add(
        self,
        column: str,
        mask: pl.Expr,
        reason: str | Callable[[Any], str],
        *,
        columns: list[str] | None = None,
        exact: pl.Expr | None = None,
        materialise: Callable[[pl.DataFrame], list[Problem]] | None = None,
    ) -> None:
        self.pending.append(_Check(column, mask, reason, columns, exact, materialise))

    def run(self, df: pl.DataFrame) -> None:
        """Evaluate the pending checks against ``df`` (the frame they were written for)."""
        checks, self.pending = self.pending, []
        if not checks:
            return
        counts = df.select(
            c.mask.fill_null(False).sum().alias(str(i)) for i, c in enumerate(checks)
        ).row(0)
        for check, count in zip(checks, counts, strict=True):
            if not count:
                continue
            failing = df.filter(check.mask.fill_null(False))
            if check.exact is not None:
                failing = failing.filter(check.exact.fill_null(False))
            if check.materialise is not None:
                found = check.materialise(failing)
                self.problems.extend(found[:MAX_PROBLEMS_PER_KIND])
                if len(found) > MAX_PROBLEMS_PER_KIND:
                    self.problems.append(
                        Problem.summary(self.name, check.column, len(found) - MAX_PROBLEMS_PER_KIND)
                    )
                continue
            wanted = check.columns or [check.column]
            hits = failing.select(ROW, *wanted).head(MAX_PROBLEMS_PER_KIND)
            for values in hits.iter_rows(named=True):
                value = values if check.columns else values[check.column]
                reason = check.reason(value) if callable(check.reason) else check.reason
                self.problems.append(Problem(self.name, values[ROW], check.column, reason))
            if failing.height > MAX_PROBLEMS_PER_KIND:
                more = failing.height - MAX_PROBLEMS_PER_KIND
                self.problems.append(Problem.summary(self.name, check.column, more))

    def raise_if_any(self) -> None:
        """Raise ``ValidationError`` with every problem collected, file and column ones first."""
        if self.pending:
            raise RuntimeError("checks added but not run")
        if self.problems:
            raise ValidationError(ordered(self.problems))


def field_checks(checks: Checks, df: pl.DataFrame, fields: tuple[Field, ...]) -> None:
    """Per-value checks that depend only on the field: required, length, NUL, id shape."""
    for field in fields:
        if field.name in checks.reader.bad_columns:
            continue
        col = pl.col(field.name)
        if field.required:
            empty = blank(field.name)
            also = ""
            if field.unless is not None:
                empty = empty & blank(field.unless)
                also = f" (or a {field.unless})"
            if checks.reader.blank_rows:
                empty = empty & ~pl.col(ROW).is_in(sorted(checks.reader.blank_rows))
            checks.add(field.name, empty, f"{field.name} is empty; every row needs one{also}")
        checks.add(
            field.name,
            col.str.contains("\x00", literal=True),
            "contains a NUL character (byte 0x00); remove it",
        )
        limit = _LIMITS.get(field.kind, _DATE_LIMIT if field.kind == Kind.DATE else MAX_ID_CHARS)
        if field.kind != Kind.TAGS:
            checks.add(
                field.name,
                col.str.len_bytes() > limit,  # O(1) per value; characters <= bytes
                lambda v, n=limit: f"{len(v):,} characters; at most {n:,} are accepted",
                exact=col.str.len_chars() > limit,
            )
        if field.kind == Kind.ID:
            checks.add(
                field.name,
                ~blank(field.name) & col.str.contains(r"[\s\p{Cc}\p{Cf}\p{Co}]"),
                lambda v: (
                    f"id {show_value(v)} contains spaces or control characters (not allowed in ids)"
                ),
            )


def duplicate_check(
    checks: Checks,
    df: pl.DataFrame,
    keys: str | list[str],
    column: str,
    *,
    what: str | None = None,
) -> None:
    """Every row after the first with the same ``keys`` is a problem naming the first row.

    The pass over all rows compares 64-bit hashes (cheap); the flagged rows are then confirmed
    on the values themselves, so a hash collision never reports a false duplicate."""
    keys = [keys] if isinstance(keys, str) else keys
    present = pl.all_horizontal(
        ~blank(k) if _BLANK + k in df.columns else ~_blank_expr(k) for k in keys
    )
    hashed = pl.col(keys[0]).hash(7) if len(keys) == 1 else pl.struct(keys).hash(7)
    label = what or keys[0]

    def problems(failing: pl.DataFrame) -> list[Problem]:
        first = (
            df.filter(present)
            .join(failing.select(keys).unique(), on=keys, how="semi")
            .group_by(keys)
            .agg(pl.col(ROW).min().alias("__first"))
        )
        confirmed = (
            failing.select(ROW, *keys)
            .join(first, on=keys, how="inner")
            .filter(pl.col("__first") != pl.col(ROW))
            .sort(ROW)
        )
        found = []
        for row in confirmed.iter_rows(named=True):
            shown = ", ".join(f"{k.lstrip('_')} {show_value(row[k])}" for k in keys)
            found.append(
                Problem(
                    checks.name,
                    row[ROW],
                    column,
                    f"duplicate {label} ({shown}); first given in row {row['__first']}",
                )
            )
        return found

    checks.add(column, present & ~hashed.is_first_distinct(), "", materialise=problems)


def finish_tags(checks: Checks, df: pl.DataFrame) -> pl.DataFrame:
    """``tags`` text is split on ';'; tags given as lists are kept; each tag is trimmed and empty
    ones dropped (documented in the module docstring)."""
    from_text = pl.col("tags").str.split(";")
    listed = pl.coalesce(pl.col(TAGS_LIST), from_text)
    df = df.with_columns(listed.alias("__tags_raw"))
    raw = pl.col("__tags_raw")
    checks.add(
        "tags",
        raw.list.eval(pl.element().is_null()).list.any(),
        "tags must be a list of strings (found null in the list)",
    )
    checks.add(
        "tags",
        raw.list.eval(pl.element().str.len_chars() > MAX_ID_CHARS).list.any(),
        f"a tag is longer than {MAX_ID_CHARS} characters",
    )
    checks.add(
        "tags",
        pl.col(TAGS_LIST).list.eval(pl.element().str.contains("\x00", literal=True)).list.any()
        | pl.col("tags").str.contains("\x00", literal=True),
        "contains a NUL character (byte 0x00); remove it",
    )
    checks.run(df)
    tags = (
        raw.list.eval(pl.element().str.strip_chars())
        .list.eval(pl.element().filter(pl.element().is_not_null() & (pl.element() != "")))
        .fill_null(pl.lit([], dtype=pl.List(pl.String)))
    )
    return df.with_columns(tags.alias("tags"))


_ISO = re.compile(
    r"^\d{4}-\d{2}-\d{2}"
    r"(?:[T ](?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d{1,9})?)?(?:Z|[+-](?:[01]\d|2[0-3]):?[0-5]\d)?)?$"
)


def finish_generated_at(
    checks: Checks, df: pl.DataFrame, column: str = "generated_at"
) -> pl.DataFrame:
    """Validate ``column`` (an ISO date or date-time: ``generated_at``, ``rated_at``) and keep it
    exactly as written (provenance is not converted).

    A date-time with an offset is in the future when its UTC instant is after now; a date or a
    date-time without an offset is in the future when it has not begun in any time zone yet
    (UTC+14), so that nobody's "today" is refused.
    """
    text = pl.col(column)
    ok_shape = text.str.contains(_ISO.pattern)
    day = text.str.slice(0, 10).str.strptime(pl.Date, "%Y-%m-%d", strict=False)
    valid = ok_shape & day.is_not_null()
    part = lambda start, n: text.str.slice(start, n).cast(pl.Int64, strict=False).fill_null(0)  # noqa: E731
    offset = text.str.extract(r"(Z|[+-]\d{2}:?\d{2})$", 1)
    sign = pl.when(offset.str.starts_with("-")).then(-1).otherwise(1)
    off_digits = offset.str.replace(":", "", literal=True)
    offset_minutes = (
        pl.when(offset.is_null())
        .then(14 * 60)  # no offset: the earliest time zone
        .when(offset == "Z")
        .then(0)
        .otherwise(
            sign
            * (
                off_digits.str.slice(1, 2).cast(pl.Int64, strict=False) * 60
                + off_digits.str.slice(3, 2).cast(pl.Int64, strict=False)
            )
        )
    )
    has_time = text.str.len_bytes() > 10
    instant_utc = day.cast(pl.Datetime("us")) + pl.duration(
        hours=pl.when(has_time).then(part(11, 2)).otherwise(0),
        minutes=pl.when(has_time).then(part(14, 2)).otherwise(0) - offset_minutes,
        seconds=pl.when(has_time).then(part(17, 2)).otherwise(0),
    )
    df = df.with_columns(
        valid.fill_null(False).alias("__date_ok"),
        pl.when(valid).then(instant_utc).alias("__instant"),
    )
    checks.add(
        column,
        ~blank(column) & ~pl.col("__date_ok"),
        lambda v: (
            f"{show_value(v)} is not an ISO 8601 date (YYYY-MM-DD) or date-time "
            "(YYYY-MM-DDTHH:MM[:SS[.fff]], optionally with Z or an offset such as +01:00)"
        ),
    )
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    checks.add(
        column,
        pl.col("__instant") > pl.lit(now, dtype=pl.Datetime("us")),
        lambda v: f"{show_value(v)} is in the future",
    )
    checks.run(df)
    return df.with_columns(pl.when(~blank(column)).then(text).alias(column))


def finish_parameters(checks: Checks, df: pl.DataFrame) -> pl.DataFrame:
    """Validate ``parameters`` (a JSON object: answers repeat a handful of settings, so each
    distinct value is parsed once) and store it as canonical JSON."""
    return finish_json(checks, df, "parameters", _canonical_parameters)


def _canonical_parameters(value: Any) -> tuple[str | None, str | None]:
    if not isinstance(value, dict):
        return None, f"parameters must be a JSON object {{...}}, got {python_type_word(value)}"
    try:
        return canonical_json(value), None
    except ValueError:  # NaN or Infinity, which Python's json reads but JSON has not
        return None, "parameters holds NaN or Infinity, which JSON does not allow"


def finish_json(
    checks: Checks,
    df: pl.DataFrame,
    column: str,
    canonical: Callable[[Any], tuple[str | None, str | None]],
) -> pl.DataFrame:
    """Validate ``column``'s JSON text with ``canonical`` (parsed value -> (canonical text,
    problem)) once per distinct value, and store the canonical text; each problem names its row."""
    distinct = df.select(pl.col(column).filter(~blank(column)).unique()).to_series()
    texts: list[str | None] = []
    reasons: list[str | None] = []
    for value in distinct.to_list():
        try:
            parsed = json.loads(value)
        except ValueError as err:
            texts.append(None)
            reasons.append(f"{column} is not valid JSON ({getattr(err, 'msg', err)})")
            continue
        text, reason = canonical(parsed)
        texts.append(text)
        reasons.append(reason)
    reason_column = f"__{column}_reason"
    df = df.with_columns(
        pl.col(column)
        .replace_strict(distinct, pl.Series(values, dtype=pl.String), default=None)
        .alias(name)
        for name, values in ((f"__{column}_text", texts), (reason_column, reasons))
    )
    checks.add(
        column,
        pl.col(reason_column).is_not_null(),
        lambda row, c=reason_column: row[c],
        columns=[reason_column],
    )
    checks.run(df)
    return df.with_columns(pl.col(f"__{column}_text").alias(column))


def id_series(ids: Iterable[str]) -> pl.Series:
    """The distinct ``ids`` (case ids) as a text series, to test membership against."""
    return pl.Series("case_id", list(ids), dtype=pl.String, strict=True).unique()


_BLANK = "__blank_"


def _blank_expr(column: str) -> pl.Expr:
    """Missing, empty or whitespace-only (Unicode whitespace), computed."""
    col = pl.col(column)
    return (col.is_null() | ~col.str.contains(r"\S")).fill_null(True)


def blank(column: str) -> pl.Expr:
    """The blank flag of a field, computed once per file by ``with_blank_flags``."""
    return pl.col(_BLANK + column)


def with_blank_flags(df: pl.DataFrame, fields: tuple[Field, ...]) -> pl.DataFrame:
    return df.with_columns(_blank_expr(f.name).alias(_BLANK + f.name) for f in fields)


def take_not_recorded(df: pl.DataFrame, fields: tuple[Field, ...]) -> pl.DataFrame:
    """Flag every recordable field given exactly as ``NOT_RECORDED`` and make it null, so that no
    check reads the marker as a value (an id with a space, a date that is no date)."""
    names = [f.name for f in fields if f.name in NOT_RECORDABLE]
    flags = [(pl.col(n) == NOT_RECORDED).fill_null(False).alias(_NR + n) for n in names]
    df = df.with_columns(flags)
    return df.with_columns(pl.when(~pl.col(_NR + n)).then(pl.col(n)).alias(n) for n in names)


def not_recorded(column: str) -> pl.Expr:
    """Whether the field was given as ``NOT_RECORDED`` (false for a field that cannot be)."""
    return pl.col(_NR + column) if column in NOT_RECORDABLE else pl.lit(False)


def not_recorded_list(applies: dict[str, pl.Expr]) -> pl.Expr:
    """``not_recorded``: the fields (keys of ``applies``, where it holds) given as unknown."""
    names = [
        pl.when(not_recorded(name) & condition.fill_null(False)).then(pl.lit(name))
        for name, condition in applies.items()
    ]
    return pl.concat_list(names).list.drop_nulls().alias("not_recorded")


def optional(column: str) -> pl.Expr:
    """An optional value: the empty string is missing (null); anything else is kept verbatim."""
    col = pl.col(column)
    return pl.when(col != "").then(col).alias(column)
