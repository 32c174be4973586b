"""Read one cases, arms, answers or ratings file (CSV, JSON lines, Parquet) into an all-text frame.

``FileReader`` turns a file, or a ``Table`` read already, into a frame with every column of its
format as text plus ``__row``, and collects the problems met while reading (unknown columns,
short CSV rows, bytes that are not UTF-8, JSON values of the wrong type). A problem that leaves
nothing to judge (no such file, too large, not CSV) raises ``ValidationError`` at once. The file
formats are described in ``study.importing``.
"""

from __future__ import annotations

import codecs
import difflib
import json
import mmap
import re
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from study.errors import Problem, ValidationError, first_line
from study.import_problems import (
    capped,
    dtype_word,
    json_type_reason,
    python_type_word,
    show_value,
)
from study.import_schemas import (
    MAX_PROBLEMS_PER_KIND,
    ROW,
    SUFFIXES,
    TAGS_LIST,
    Field,
    Kind,
    Table,
    default_max_bytes,
)

_LINE = "__line"  # one JSONL line
_RESERVED = "__"  # user columns with this prefix are unknown anyway; dropping them avoids clashes


class FileReader:
    """Reads one file into an all-text frame plus ``__row``, or raises for file-level problems.

    ``frame`` has every allowed column (missing optional ones as null text), ``tags`` as text and
    ``__tags_list`` as list[str] where tags came as a list. ``problems`` holds column and row
    problems met while reading (unknown columns, JSON type errors).
    """

    def __init__(
        self, path: str | Path | Table, fields: tuple[Field, ...], max_bytes: int | None
    ) -> None:
        self.fields = fields
        self.problems: list[Problem] = []
        self.utf8_rows: set[int | None] = set()  # JSON lines already reported as not UTF-8
        # columns refused whole (wrong stored type): their values are not judged one by one
        self.bad_columns: set[str] = set()
        # CSV blank lines, reported once as such rather than once per required field
        self.blank_rows: set[int] = set()
        if isinstance(path, Table):  # read already (a mapped table): only the header is judged
            self.name = path.name
            self.frame = self._conform(path.frame)
            return
        self.path = Path(path)
        self.name = self.path.name or str(path)
        limit = default_max_bytes() if max_bytes is None else max_bytes
        fmt = SUFFIXES.get(self.path.suffix.lower())
        if fmt is None:
            self._fatal(
                f"unknown file type {self.path.suffix or '(no extension)'!r}; "
                f"use one of {', '.join(SUFFIXES)}"
            )
        try:
            size = self.path.stat().st_size
            if not self.path.is_file():
                self._fatal("is not a file")
        except FileNotFoundError:
            self._fatal("file not found")
        except OSError as exc:
            self._fatal(f"cannot be read: {exc.strerror or exc}")
        if size > limit:
            self._fatal(
                f"the file is {size / 1024 / 1024:.1f} MB; the limit is {limit / 1024 / 1024:.1f}"
                " MB (setting CLINVAL_MAX_IMPORT_MB)"
            )
        if size == 0:
            self._fatal("the file is empty")
        read = {"csv": self._read_csv, "jsonl": self._read_jsonl, "parquet": self._read_parquet}
        self.frame = self._conform(read[fmt]())

    def _raw(self) -> bytes:
        """The file's bytes without a UTF-8 byte-order mark."""
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            self._fatal(f"cannot be read: {exc.strerror or exc}")
        return raw[len(codecs.BOM_UTF8) :] if raw.startswith(codecs.BOM_UTF8) else raw

    # file-level problems stop reading at once: nothing else can be judged
    def _fatal(self, reason: str, row: int | None = None, column: str | None = None) -> None:
        raise ValidationError([Problem(self.name, row, column, reason)])

    def _fatal_many(self, problems: list[Problem]) -> None:
        raise ValidationError(capped(problems))

    # CSV ----------------------------------------------------------------------------------------

    def _read_csv(self) -> pl.DataFrame:
        self._check_separator()
        try:
            # from the path: polars maps the file and removes a byte-order mark itself
            df = pl.read_csv(
                self.path,
                infer_schema=False,
                has_header=True,
                quote_char='"',
                raise_if_empty=True,
                truncate_ragged_lines=False,
            )
            source: Path | bytes = self.path
        except Exception as exc:  # polars raises several types; the diagnosis below is ours
            raw = self._raw()
            bad_utf8 = self._utf8_problems(raw, csv_rows=True)
            if not bad_utf8:
                self._fatal_many(self._diagnose_csv(raw, exc))
            # report each bad byte and judge the rest of the file as well
            self.problems.extend(bad_utf8)
            raw = raw.decode("utf-8", errors="replace").encode()
            try:
                df = pl.read_csv(
                    raw,
                    infer_schema=False,
                    has_header=True,
                    quote_char='"',
                    raise_if_empty=True,
                    truncate_ragged_lines=False,
                )
            except Exception as exc2:
                self._fatal_many([*bad_utf8, *self._diagnose_csv(raw, exc2)])
            source = raw  # the bytes polars read, so that both counts see the same file
        self._check_field_counts(df, source)
        df = self._drop_reserved(df)
        return df.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))

    def _check_separator(self) -> None:
        """Refuse at once a file whose header holds no comma but semicolons or tabs: every row
        of it would be misread, and the problems met then (a row with "2 fields" where a value
        holds a comma, an unclosed quote at the end of the file) would hide the one cause.
        Spreadsheets set to many European languages save "CSV" with semicolons."""
        try:
            with self.path.open("rb") as file:
                head = file.read(64 * 1024)
        except OSError as exc:
            self._fatal(f"cannot be read: {exc.strerror or exc}")
        text = head.removeprefix(codecs.BOM_UTF8).decode("utf-8", errors="replace")
        header = next((line for line in text.splitlines() if line.strip()), "")
        if "," in header:
            return
        for separator, word in ((";", "semicolons"), ("\t", "tabs")):
            if separator in header:
                # what to do first: a table on the screen may cut a long reason short
                self._fatal(
                    f"separated by {word}, not commas: save the file as CSV with commas (in "
                    'Excel: "CSV UTF-8 (Comma delimited)") or as JSONL; the header reads '
                    f"{show_value(header)}",
                    column=header.strip().strip('"'),
                )

    def _diagnose_csv(self, raw: bytes, exc: Exception) -> list[Problem]:
        if not raw.strip():
            return [Problem(self.name, None, None, "the file is empty (no header row)")]
        problems, malformed = self._field_count_problems(raw.decode("utf-8"), strict=True)
        if malformed is not None:
            problems.append(malformed)
        if not problems:
            problems.append(
                Problem(self.name, None, None, f"not readable as CSV: {first_line(exc)}")
            )
        return problems

    def _check_field_counts(self, df: pl.DataFrame, source: Path | bytes) -> None:
        """Report rows with fewer fields than the header, which polars fills with nulls silently.

        polars refuses a row with *more* fields (``truncate_ragged_lines=False``), so every row
        it returns has at most as many fields as the header (M). Every comma in the file is
        either a separator or inside a (quoted) value, and a row of K fields has K - 1
        separators, so ``commas in the file == commas inside header and values + (rows + 1) *
        (M - 1)`` holds exactly when no row is short. Two vectorised counts (the raw bytes, the
        parsed values) cost far less than tracking quotes byte by byte; only when the totals
        differ are the rows located, with the ``csv`` module (slow, broken files only).
        """
        width = df.width
        if width < 2:
            return  # one column: a row cannot lack a separator (a blank line is an empty value)
        if df.get_column(df.columns[-1]).null_count() == 0:
            return  # a short row is filled with nulls up to the last column: none here
        commas_in_values = sum(name.count(",") for name in df.columns) + sum(
            v or 0
            for v in df.lazy()
            .select(pl.all().str.count_matches(",", literal=True).cast(pl.Int64).sum())
            .collect()
            .row(0)
        )
        need = (df.height + 1) * (width - 1)  # the header's separators too
        have = _count_byte(source, ord(",")) - commas_in_values
        if have == need:
            return
        raw = self._raw() if isinstance(source, Path) else source
        found, malformed = self._field_count_problems(
            raw.decode("utf-8", errors="replace"), strict=False
        )
        if malformed is not None:
            found.append(malformed)
        if not found:  # the two parsers disagree on where rows end: never pass silently
            found.append(
                Problem(
                    self.name,
                    None,
                    None,
                    f"the commas do not add up: {df.height:,} rows of {width} fields need "
                    f"{need:,} separators, the file has {have:,} outside quoted values; some row "
                    "has the wrong number of fields but could not be located (look for a "
                    "missing comma or a line break outside quotes)",
                )
            )
        self.problems.extend(found)

    def _field_count_problems(
        self, text: str, *, strict: bool
    ) -> tuple[list[Problem], Problem | None]:
        """Every data row whose field count differs from the header's (capped), and the first
        malformed-CSV error if the ``csv`` module stops on one.

        Rows are numbered as polars numbers them: blank lines before the header are skipped,
        a blank line after it is a row, a quoted value spanning lines is one row. A row's line
        is the line it starts on."""
        import csv
        import io

        old_limit = csv.field_size_limit()
        # values longer than the csv module's default limit (128 KiB) are a problem of their own
        csv.field_size_limit(max(old_limit, len(text)))
        reader = csv.reader(io.StringIO(text, newline=""), strict=strict)
        width: int | None = None
        row = last_line = count = 0
        found: list[Problem] = []
        malformed = None
        try:
            for record in reader:
                start, last_line = last_line + 1, reader.line_num
                if width is None:
                    if record:
                        width = len(record)
                    continue
                row += 1
                fields = len(record)
                if fields == width or (fields == 0 and width == 1):
                    continue
                count += 1
                if count > MAX_PROBLEMS_PER_KIND:
                    continue
                if fields == 0:
                    self.blank_rows.add(row)
                    reason = (
                        f"row {row} (line {start}) is a blank line; the header has {width} "
                        "fields (remove the blank line)"
                    )
                elif fields < width:
                    reason = (
                        f"row {row} (line {start}) has {fields} field{'s' if fields > 1 else ''}; "
                        f"the header has {width} (a comma is missing: an empty value still needs "
                        "its comma)"
                    )
                else:
                    reason = (
                        f"row {row} (line {start}) has {fields} fields; the header has {width} "
                        "(quote fields that contain commas)"
                    )
                found.append(Problem(self.name, row, None, reason))
        except csv.Error as err:
            malformed = Problem(
                self.name,
                row + 1,
                None,
                f"line {reader.line_num}: malformed CSV ({err}); a field that contains a "
                'quote must be quoted, with the quote doubled ("")',
            )
        finally:
            csv.field_size_limit(old_limit)
        if count > MAX_PROBLEMS_PER_KIND:
            found.append(Problem.summary(self.name, None, count - MAX_PROBLEMS_PER_KIND))
        return found, malformed

    # JSON lines ---------------------------------------------------------------------------------

    def _read_jsonl(self) -> pl.DataFrame:
        raw = self._raw()
        try:
            text = pl.Series(_LINE, [raw], dtype=pl.Binary).cast(pl.String)
        except Exception:  # invalid UTF-8 somewhere: report it, and judge the rest too
            bad_utf8 = self._utf8_problems(raw, csv_rows=False)
            self.problems.extend(bad_utf8)
            self.utf8_rows = {p.row for p in bad_utf8}
            raw = raw.decode("utf-8", errors="replace").encode()
            text = pl.Series(_LINE, [raw], dtype=pl.Binary).cast(pl.String)
        lines = (
            pl.DataFrame(text)
            .select(pl.col(_LINE).str.split("\n"))
            .explode(_LINE)
            .with_row_index(ROW, offset=1)
            .with_columns(pl.col(ROW).cast(pl.Int64), pl.col(_LINE).str.strip_suffix("\r"))
            # JSON whitespace only: anything else on a line is content that must parse
            .filter(pl.col(_LINE).str.strip_chars(" \t\r") != "")
        )
        if lines.height == 0:
            self._fatal("the file has no data rows")
        try:
            df = pl.read_ndjson(raw, infer_schema_length=None)
            if df.height != lines.height:
                raise ValueError("row count differs from the number of non-blank lines")
        except Exception:
            return self._read_jsonl_slow(lines)
        df = pl.concat([lines, self._drop_reserved(df)], how="horizontal")
        return self._jsonl_types(df)

    def _jsonl_types(self, df: pl.DataFrame) -> pl.DataFrame:
        """Find values of the wrong JSON type: exact, with the regex only choosing which lines to
        parse again in Python (a known key with a non-string value, or an escaped key)."""
        names = {f.name: f for f in self.fields}
        keep: list[pl.Expr] = []
        typed_bad: list[str] = []
        for column, dtype in df.schema.items():
            if column in (ROW, _LINE):
                continue
            field = names.get(column)
            if dtype in (pl.String, pl.Null) or field is None:
                continue
            if field.kind == Kind.TAGS and dtype in (pl.List(pl.String), pl.List(pl.Null)):
                continue  # List(Null): every list was empty (or held only nulls, judged later)
            if field.kind == Kind.VALUE and (dtype.is_numeric() and dtype != pl.Boolean):
                keep.append(pl.col(column).cast(pl.String))
                continue
            if field.kind == Kind.JSON and isinstance(dtype, pl.Struct):
                keep.append(pl.col(_LINE).str.json_path_match(f"$.{column}").alias(column))
                continue
            if field.kind == Kind.JSON_LIST and isinstance(dtype, pl.List):
                keep.append(pl.col(_LINE).str.json_path_match(f"$.{column}").alias(column))
                continue
            typed_bad.append(column)
        if keep:
            df = df.with_columns(keep)
        string_keys = [
            f.name
            for f in self.fields
            if f.kind not in (Kind.TAGS, Kind.JSON, Kind.VALUE, Kind.JSON_LIST)
        ]
        key_alt = "|".join(re.escape(k) for k in string_keys)
        string_pattern = r'[{,]\s*"(?:' + key_alt + r')"\s*:\s*[^"\sn]'
        json_string = r'"(?:[^"\\]|\\.)*"'
        tags_bad = (
            r'[{,]\s*"tags"\s*:\s*(?:[^"\sn\[]|\[\s*(?:' + json_string + r"\s*,\s*)*[^\"\s\]])"
        )
        escaped_key = r"\\u00(?:5[fF]|6[1-9a-fA-F]|7[0-9aA])"
        candidate = (
            pl.col(_LINE).str.contains(string_pattern)
            | pl.col(_LINE).str.contains(tags_bad)
            | pl.col(_LINE).str.contains(escaped_key)
        )
        tags_dtype = df.schema.get("tags")
        mixed_tags = tags_dtype == pl.String and (
            df.select(pl.col(_LINE).str.contains(r'[{,]\s*"tags"\s*:\s*\[').any()).item()
        )
        if mixed_tags:
            candidate = candidate | pl.col(_LINE).str.contains(r'[{,]\s*"tags"\s*:\s*\[')
        # A repeated key is one more `"...":` than the row has values; polars keeps the first
        # value silently. Lines with nulls or key-like text inside strings are parsed to confirm.
        keys_upper = pl.col(_LINE).str.count_matches(r'"\s*:')
        values = pl.sum_horizontal(
            pl.lit(0, dtype=pl.Int32),  # a file of `{}` lines has no column at all
            *(pl.col(c).is_not_null().cast(pl.Int32) for c in df.columns if c not in (ROW, _LINE)),
        )
        candidate = candidate | (keys_upper > values)
        flagged = df.filter(candidate).select(ROW, _LINE)
        tag_lists: dict[int, list[str]] = {}
        for row, line in flagged.iter_rows():
            obj = self._loads(row, line)
            self._python_types(row, obj, tag_lists, skip=set(typed_bad))
        for column in typed_bad:
            bad = df.filter(pl.col(column).is_not_null()).select(ROW).to_series()
            dtype = df.schema[column]
            reason = json_type_reason(names[column], dtype_word(dtype))
            self.problems.extend(
                capped([Problem(self.name, int(r), column, reason) for r in bad.to_list()])
            )
            df = df.with_columns(pl.lit(None, dtype=pl.String).alias(column))
            self.bad_columns.add(column)
        if tags_dtype is not None and isinstance(tags_dtype, pl.List) and "tags" not in typed_bad:
            df = df.with_columns(
                pl.col("tags").cast(pl.List(pl.String)).alias(TAGS_LIST),
                pl.lit(None, dtype=pl.String).alias("tags"),
            )
        elif tag_lists:
            df = self._merge_tag_lists(df, tag_lists)
        return df.drop(_LINE)

    def _loads(self, row: int, line: str) -> Any:
        """``json.loads`` that reports a key given twice in one object (any nesting level)."""

        def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
            obj: dict[str, Any] = {}
            for key, value in items:
                if key in obj:
                    self.problems.append(
                        Problem(self.name, row, key, f"{key!r} appears twice in this object")
                    )
                obj[key] = value
            return obj

        return json.loads(line, object_pairs_hook=pairs)

    def _python_types(
        self, row: int, obj: Any, tag_lists: dict[int, list[str]], skip: set[str]
    ) -> None:
        for field in self.fields:
            if field.name not in obj or field.name in skip:
                continue
            value = obj[field.name]
            if value is None or isinstance(value, str):
                continue
            if field.kind == Kind.TAGS and isinstance(value, list):
                if all(isinstance(t, str) for t in value):
                    tag_lists[row] = value
                    continue
                self.problems.append(
                    Problem(
                        self.name, row, field.name, json_type_reason(field, python_type_word(value))
                    )
                )
                continue
            if (
                field.kind == Kind.VALUE
                and isinstance(value, int | float)
                and not isinstance(value, bool)
            ):
                continue
            if field.kind == Kind.JSON and isinstance(value, dict):
                continue
            if field.kind == Kind.JSON_LIST and isinstance(value, list):
                continue
            self.problems.append(
                Problem(
                    self.name, row, field.name, json_type_reason(field, python_type_word(value))
                )
            )

    def _merge_tag_lists(self, df: pl.DataFrame, tag_lists: dict[int, list[str]]) -> pl.DataFrame:
        lists = pl.DataFrame(
            {ROW: list(tag_lists), TAGS_LIST: list(tag_lists.values())},
            schema={ROW: pl.Int64, TAGS_LIST: pl.List(pl.String)},
        )
        df = df.join(lists, on=ROW, how="left", maintain_order="left")
        return df.with_columns(
            pl.when(pl.col(TAGS_LIST).is_null()).then(pl.col("tags")).alias("tags")
        )

    def _read_jsonl_slow(self, lines: pl.DataFrame) -> pl.DataFrame:
        """Per-line parse in Python: only when polars could not read the whole file, to say which
        lines are broken and still check the good ones."""
        good_rows: list[int] = []
        good_lines: list[str] = []
        keys: dict[str, None] = {}
        tag_lists: dict[int, list[str]] = {}
        bad: list[Problem] = []
        for row, line in lines.select(ROW, _LINE).iter_rows():
            try:
                obj = self._loads(row, line)
            except ValueError as err:
                if row in self.utf8_rows:
                    continue  # the bad bytes are the reason; reported once
                msg = getattr(err, "msg", str(err))
                col = getattr(err, "colno", None)
                where = f" at character {col}" if col else ""
                bad.append(Problem(self.name, row, None, f"not valid JSON: {msg}{where}"))
                continue
            if not isinstance(obj, dict):
                bad.append(
                    Problem(
                        self.name,
                        row,
                        None,
                        f"each line must be a JSON object {{...}}, got {python_type_word(obj)}",
                    )
                )
                continue
            self._python_types(row, obj, tag_lists, skip=set())
            for key, value in obj.items():
                keys.setdefault(key, None)
                if isinstance(value, (dict, list)) and key != "tags":
                    obj[key] = json.dumps(value, ensure_ascii=False)
            good_rows.append(row)
            good_lines.append(line)
        self.problems.extend(capped(bad))
        if not good_lines:
            self._fatal_many(self.problems)
        # every value as text: types were judged above, in Python
        schema = {k: pl.String for k in keys}
        try:
            df = pl.read_ndjson(
                "\n".join(good_lines).encode(), schema=schema, infer_schema_length=None
            )
        except Exception as exc:
            self._fatal_many(
                [*self.problems, Problem(self.name, None, None, f"not readable: {exc}")]
            )
        df = self._drop_reserved(df).with_columns(pl.Series(ROW, good_rows, dtype=pl.Int64))
        if "tags" in df.columns and tag_lists:
            df = self._merge_tag_lists(df, tag_lists)
        return df

    # Parquet ------------------------------------------------------------------------------------

    def _read_parquet(self) -> pl.DataFrame:
        try:
            df = pl.read_parquet(self.path)
        except Exception as exc:
            self._fatal(f"not a readable Parquet file: {first_line(exc)}")
        df = self._drop_reserved(df)
        names = {f.name: f for f in self.fields}
        casts: list[pl.Expr] = []
        for column, dtype in df.schema.items():
            field = names.get(column)
            if field is None:
                continue
            if dtype in (pl.String, pl.Null) or isinstance(dtype, (pl.Categorical, pl.Enum)):
                casts.append(pl.col(column).cast(pl.String))
            elif (
                field.kind == Kind.TAGS
                and isinstance(dtype, pl.List)
                and (dtype.inner in (pl.String, pl.Null) or isinstance(dtype.inner, pl.Categorical))
            ):
                casts.append(pl.col(column).cast(pl.List(pl.String)).alias(TAGS_LIST))
                casts.append(pl.lit(None, dtype=pl.String).alias(column))
            elif field.kind == Kind.VALUE and dtype.is_numeric():
                casts.append(pl.col(column).cast(pl.String))
            elif field.kind == Kind.JSON_LIST and isinstance(dtype, pl.List):
                # a list of structs (messages, criteria) becomes its JSON text, judged later
                texts = [
                    None if v is None else json.dumps(v, ensure_ascii=False)
                    for v in df[column].to_list()
                ]
                casts.append(pl.lit(pl.Series(column, texts, dtype=pl.String)).alias(column))
            elif field.kind == Kind.DATE and dtype == pl.Date:
                casts.append(pl.col(column).dt.to_string("%Y-%m-%d"))
            elif field.kind == Kind.DATE and isinstance(dtype, pl.Datetime):
                # ISO text of the stored value: nothing dropped (time, fraction, offset kept)
                zone = "%:z" if dtype.time_zone else ""
                casts.append(pl.col(column).dt.to_string(f"%Y-%m-%dT%H:%M:%S%.f{zone}"))
            else:
                self.problems.append(
                    Problem(
                        self.name,
                        None,
                        column,
                        f"stored as {dtype}; store it as text (string) so that nothing is "
                        "converted on the way in",
                    )
                )
                casts.append(pl.lit(None, dtype=pl.String).alias(column))
                self.bad_columns.add(column)
        df = df.with_columns(casts) if casts else df
        return df.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))

    # shared -------------------------------------------------------------------------------------

    def _utf8_problems(self, raw: bytes, *, csv_rows: bool) -> list[Problem]:
        """One problem per byte that is not UTF-8, at its data row: the line number for JSON
        lines; for CSV the record (a quoted field may span lines), header not counted."""
        offsets: list[int] = []

        def record(err: UnicodeDecodeError) -> tuple[str, int]:
            offsets.append(err.start)
            return ("\ufffd", err.end)

        codecs.register_error("clinval_record_utf8", record)
        raw.decode("utf-8", errors="clinval_record_utf8")
        if not offsets:
            return []
        ends: list[int] = []  # CSV: the last line of each record (record 0 is the header)
        if csv_rows:
            import csv
            import io

            text = raw.decode("utf-8", errors="surrogateescape")
            reader = csv.reader(io.StringIO(text, newline=""))
            try:
                for _ in reader:
                    ends.append(reader.line_num)
            except csv.Error:
                pass  # malformed further on: rows are located up to there
        problems = []
        for offset in offsets[:MAX_PROBLEMS_PER_KIND]:
            line = raw.count(b"\n", 0, offset) + 1
            row: int | None = line
            where = f"line {line}"
            if csv_rows:
                record_no = next((i for i, end in enumerate(ends) if end >= line), None)
                if record_no == 0:
                    row, where = None, f"the header (line {line})"
                elif record_no is None:
                    row = None
                else:
                    row, where = record_no, f"row {record_no} (line {line})"
            problems.append(
                Problem(
                    self.name,
                    row,
                    None,
                    f"not UTF-8: byte 0x{raw[offset]:02x} at {where}, byte offset {offset}; "
                    "save the file as UTF-8",
                )
            )
        if len(offsets) > MAX_PROBLEMS_PER_KIND:
            problems.append(Problem.summary(self.name, None, len(offsets) - MAX_PROBLEMS_PER_KIND))
        return problems

    def _unknown_reason(self, column: str, *, alone: bool) -> str:
        allowed = [f.name for f in self.fields]
        reason = f"unknown column {column!r}"
        close = difflib.get_close_matches(column.strip().lower(), allowed, n=1)
        if close:
            reason += f" (did you mean {close[0]!r}?)"
        if alone and any(s in column for s in ";\t|"):
            reason += "; the header looks separated by something other than commas"
        return reason + f"; allowed columns: {', '.join(allowed)}"

    def _drop_reserved(self, df: pl.DataFrame) -> pl.DataFrame:
        reserved = [c for c in df.columns if c.startswith(_RESERVED)]
        for column in reserved:
            self.problems.append(
                Problem(self.name, None, column, self._unknown_reason(column, alone=False))
            )
        return df.drop(reserved) if reserved else df

    def _conform(self, df: pl.DataFrame) -> pl.DataFrame:
        """Check the header against the format and give the frame every allowed column."""
        allowed = [f.name for f in self.fields]
        present = [c for c in df.columns if c not in (ROW, TAGS_LIST)]
        base_names = set(present)
        for column in present:
            if column in allowed:
                continue
            dup = re.fullmatch(r"(.*)_duplicated_\d+", column)
            if dup and dup.group(1) in base_names:
                reason = f"column {dup.group(1)!r} appears more than once in the header"
                column = dup.group(1)
            elif column.strip() == "":
                reason = "a column has no name in the header"
            else:
                reason = self._unknown_reason(column, alone=len(present) == 1)
            self.problems.append(Problem(self.name, None, column, reason))
        for field in self.fields:
            if field.required and field.name not in base_names and field.unless not in base_names:
                # every row is then empty there: one problem for the column, not one per row
                self.bad_columns.add(field.name)
                self.problems.append(
                    Problem(
                        self.name, None, field.name, f"required column {field.name!r} is missing"
                    )
                )
        if df.height == 0:
            self.problems.append(Problem(self.name, None, None, "the file has no data rows"))
            raise ValidationError(capped(self.problems))
        adds = [pl.lit(None, dtype=pl.String).alias(c) for c in allowed if c not in base_names]
        if TAGS_LIST not in df.columns and "tags" in allowed:
            adds.append(pl.lit(None, dtype=pl.List(pl.String)).alias(TAGS_LIST))
        df = df.with_columns(adds) if adds else df
        extra = [TAGS_LIST] if "tags" in allowed else []
        return df.select(ROW, *allowed, *extra).with_columns(
            pl.col(c).cast(pl.String) for c in allowed
        )


_COUNT_CHUNK = 1 << 22  # bytes compared per numpy step: the mask stays cache-sized


def _count_byte(source: Path | bytes, byte: int) -> int:
    """How many times ``byte`` occurs in a file (memory-mapped, not copied) or in ``bytes``."""
    if isinstance(source, bytes):
        return _count_in(np.frombuffer(source, dtype=np.uint8), byte)
    with open(source, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as m:
        view = np.frombuffer(m, dtype=np.uint8)
        try:
            return _count_in(view, byte)
        finally:
            del view  # the map cannot close while an array still points into it


def _count_in(data: np.ndarray, byte: int) -> int:
    mask = np.empty(min(_COUNT_CHUNK, data.size), dtype=bool)
    total = 0
    for start in range(0, data.size, _COUNT_CHUNK):
        chunk = data[start : start + _COUNT_CHUNK]
        out = mask[: chunk.size]
        np.equal(chunk, byte, out=out)
        total += int(np.count_nonzero(out))
    return total
