"""Map the columns of any table (CSV, JSONL, Parquet, Excel) to a study's cases, arms and answers.

A third-party table seldom has Clinval's columns: K-QA (Manes et al. 2024) publishes its physician
answers as ``questions_w_answers.jsonl`` (``Question``, ``Free_form_answer``, ...) and its models'
answers as ``NLI_medical_annotator.csv`` (``Question``, ``llm_x``, ``answer``, ``claim``: one row
per claim, so each answer repeats once per claim). A *mapping*, written in TOML, says which column
is what; this module reads the table, applies the mapping and hands the frames to
``study.importing``'s readers, so every check of a cases, arms or answers file applies unchanged
and its problems name the table's own rows and columns. Nothing here writes:
``study.services.content.import_table`` stores what :func:`map_table` returns, all or nothing.

The mapping
-----------
::

    [cases]
    id_from = "question hash"   # or "row number", or "column" (then: id = "COLUMN")
    question = "Question"       # required
    context = "..."             # optional columns: context, specialty, tags
    only_known = false          # true: rows whose case is not in the study are left out

    [answers]
    layout = "long"             # "wide": one row per case, one answer column per arm
    arm = "llm_x"               # long only: the column naming each row's arm
    text = "answer"             # long only: the column holding the answer

    [arms.gpt35]                # one table per arm; the key is the arm's id
    value = "gpt35"             # long: the arm column's value for this arm (default: the key)
    column = "..."              # wide: the column holding this arm's answers
    kind = "llm"                # "llm" or "clinician"
    label = "GPT-3.5"           # optional
    model_name = "gpt-3.5-turbo"
    model_version = "not recorded"
    generated_at = "not recorded"   # answer provenance: a value, "not recorded",
    prompt = { column = "P" }       # or { column = "NAME" } to take it from each row

Case ids: ``"question hash"`` is ``q-`` and the first 16 hex digits of the SHA-256 of the
question with runs of white space made one space and the ends trimmed, so that two files of the
same questions meet on the same cases (K-QA's two files differ in a trailing line break);
``"row number"`` is ``row-N`` (wide tables only: a long table repeats its cases).

What is folded: rows that repeat the same case, arm and answer text are kept once (K-QA's claims);
the result counts them. Rows of a case that repeat its question are one case; a case id whose
rows disagree (two questions) is a problem, as in a cases file. In a wide table an empty answer
cell is no answer (an arm may answer some cases only); in a long table it is a problem.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from study import importing
from study.errors import Problem, ValidationError, first_line

TABLE_SUFFIXES = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".xlsx": "excel",
    ".xls": "excel",
}
"""File types a mapped table may have (Excel: the first sheet, read with ``fastexcel``)."""

ID_FROM = ("column", "row number", "question hash")
LAYOUTS = ("wide", "long")
CASE_KEYS = ("id_from", "id", "question", "context", "specialty", "tags", "only_known")
ANSWER_KEYS = ("layout", "arm", "text")
ARM_OWN = ("kind", "label", "model_name", "model_version", "author_role")
"""Arm keys that describe the arm itself (constants)."""
ANSWER_PROVENANCE = (
    "generated_at",
    "prompt",
    "system_prompt",
    "parameters",
    "author_id",
    "author_role",
)
"""Arm keys that describe each of its answers: a value, ``"not recorded"`` or ``{column = X}``."""
ARM_KEYS = ("value", "column", *ARM_OWN, *ANSWER_PROVENANCE[:-1])
_ROW = importing.ROW
_MAX_MAPPING_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class TableMapping:
    """A parsed mapping: ``cases``, ``answers`` and ``arms`` (arm id -> its keys) as written,
    ``text``, the TOML it came from (what is stored with the study), and ``source``, the name
    its problems carry (the mapping file's)."""

    text: str
    source: str
    cases: dict[str, Any]
    answers: dict[str, Any]
    arms: dict[str, dict[str, Any]]

    @property
    def layout(self) -> str:
        return self.answers["layout"]

    def columns(self) -> dict[str, str]:
        """Every table column the mapping names, by the mapping key that names it."""
        named: dict[str, str] = {}
        for key in ("id", "question", "context", "specialty", "tags"):
            if key == "id" and self.cases.get("id_from") != "column":
                continue
            if isinstance(self.cases.get(key), str):
                named[f"cases.{key}"] = self.cases[key]
        if self.layout == "long":
            named["answers.arm"] = self.answers["arm"]
            named["answers.text"] = self.answers["text"]
        for arm, keys in self.arms.items():
            if self.layout == "wide":
                named[f"arms.{arm}.column"] = keys["column"]
            for key in ANSWER_PROVENANCE:
                if isinstance(keys.get(key), dict):
                    named[f"arms.{arm}.{key}.column"] = keys[key]["column"]
        return named


@dataclass(frozen=True, slots=True)
class MappedTable:
    """What a table becomes under a mapping, checked as ``study.importing`` checks files.

    ``cases``, ``arms``, ``answers``: frames as ``read_cases``, ``read_arms`` and
    ``read_answers`` return them (``cases`` empty with ``only_known``); ``rows``: rows read;
    ``folded``: rows that repeated a case, arm and text already kept; ``left_out``: rows whose
    case is not in the study (``only_known``).
    """

    file: str
    mapping: TableMapping
    rows: int
    cases: pl.DataFrame
    arms: pl.DataFrame
    answers: pl.DataFrame
    folded: int
    left_out: int

    def summary(self) -> str:
        """One sentence for the person who mapped the table."""
        text = (
            f"{self.file}: {self.rows:,} rows read as {_counted(self.cases.height, 'case')}, "
            f"{_counted(self.arms.height, 'arm')}, {_counted(self.answers.height, 'answer')}"
        )
        if self.folded:
            text += f"; {self.folded:,} rows repeated a case, arm and text already kept (folded)"
        if self.left_out:
            text += f"; {self.left_out:,} rows left out (their case is not in the study)"
        return text


def _counted(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


# --- the mapping ---------------------------------------------------------------------------------


def parse_mapping(text: str | bytes, *, source: str = "mapping.toml") -> TableMapping:
    """Parse and check a mapping's TOML, or raise ``ValidationError`` naming each wrong key.

    The columns it names are checked against a table by :func:`map_table`, not here.
    """
    if isinstance(text, bytes):
        if len(text) > _MAX_MAPPING_BYTES:
            _refuse(source, None, f"the mapping is {len(text):,} bytes; at most 256 KiB")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            _refuse(source, None, f"not UTF-8 ({exc.reason} at byte {exc.start}); save as UTF-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        _refuse(source, None, f"not valid TOML: {first_line(exc)}")
    problems: list[Problem] = []

    def problem(key: str, reason: str) -> None:
        problems.append(Problem(source, None, key, reason))

    for key in data:
        if key not in ("cases", "answers", "arms"):
            problem(key, f"unknown section [{key}]; a mapping has [cases], [answers] and [arms.ID]")
    cases = _section(data, "cases", problem)
    answers = _section(data, "answers", problem)
    arms = _section(data, "arms", problem)
    _known_keys(cases, CASE_KEYS, "cases", problem)
    _known_keys(answers, ANSWER_KEYS, "answers", problem)

    id_from = cases.get("id_from")
    if id_from not in ID_FROM:
        problem(
            "cases.id_from",
            f"{'missing' if id_from is None else _word(id_from)}; write one of "
            + ", ".join(f'"{v}"' for v in ID_FROM),
        )
    if id_from == "column":
        _column_key(cases, "id", "cases.id", problem, required=True)
    elif "id" in cases:
        problem("cases.id", f'names a column only with id_from = "column" (not "{id_from}")')
    _column_key(cases, "question", "cases.question", problem, required=True)
    for key in ("context", "specialty", "tags"):
        _column_key(cases, key, f"cases.{key}", problem, required=False)
    if not isinstance(cases.get("only_known", False), bool):
        problem("cases.only_known", "must be true or false")

    layout = answers.get("layout")
    if layout not in LAYOUTS:
        problem(
            "answers.layout",
            f'{"missing" if layout is None else _word(layout)}; write "wide" (one row per case, '
            'one answer column per arm) or "long" (an arm column and an answer column)',
        )
    if layout == "long":
        _column_key(answers, "arm", "answers.arm", problem, required=True)
        _column_key(answers, "text", "answers.text", problem, required=True)
        if id_from == "row number":
            problem(
                "cases.id_from",
                '"row number" suits a wide table only: a long table repeats each case on several '
                'rows; use "question hash" or a column',
            )
    elif layout == "wide":
        for key in ("arm", "text"):
            if key in answers:
                problem(
                    f"answers.{key}", "belongs to a long layout; a wide one names a column per arm"
                )

    if not arms:
        problem("arms", "no arm: add one [arms.ID] table per source of answers")
    values: dict[str, str] = {}
    for arm, keys in arms.items():
        where = f"arms.{arm}"
        if not isinstance(keys, dict):
            problem(where, "must be a table: [arms.ID] with kind, provenance and its column")
            continue
        _known_keys(keys, ARM_KEYS, where, problem)
        if keys.get("kind") not in importing.ARM_KINDS:
            problem(f"{where}.kind", f'{_word(keys.get("kind"))}; write "llm" or "clinician"')
        for key in ARM_OWN:
            if key != "kind" and key in keys and not isinstance(keys[key], str):
                problem(f"{where}.{key}", 'must be text (or "not recorded")')
        for key in ANSWER_PROVENANCE[:-1]:
            value = keys.get(key)
            if value is None or isinstance(value, str):
                continue
            if not (isinstance(value, dict) and set(value) == {"column"}):
                problem(f"{where}.{key}", 'must be text, "not recorded" or { column = "NAME" }')
            elif not isinstance(value["column"], str) or not value["column"]:
                problem(f"{where}.{key}.column", "must name a column")
        if layout == "wide":
            _column_key(keys, "column", f"{where}.column", problem, required=True)
            if "value" in keys:
                problem(f"{where}.value", "belongs to a long layout (the arm column's value)")
        elif layout == "long":
            if "column" in keys:
                problem(
                    f"{where}.column", "belongs to a wide layout; a long one names answers.text"
                )
            value = keys.get("value", arm)
            if not isinstance(value, str) or not value:
                problem(f"{where}.value", "must be the arm column's text for this arm")
            elif value in values:
                problem(f"{where}.value", f"'{value}' is the value of [arms.{values[value]}] too")
            else:
                values[value] = arm
    if problems:
        raise ValidationError(problems)
    return TableMapping(text, source, cases, answers, arms)


def _section(data: dict[str, Any], name: str, problem) -> dict[str, Any]:
    section = data.get(name)
    if section is None:
        problem(name, f"missing section [{name}]")
        return {}
    if not isinstance(section, dict):
        problem(name, f"[{name}] must be a table")
        return {}
    return section


def _known_keys(section: Mapping[str, Any], allowed: Iterable[str], where: str, problem) -> None:
    allowed = tuple(allowed)
    for key in section:
        if key not in allowed:
            problem(f"{where}.{key}", f"unknown key; [{where}] takes {', '.join(allowed)}")


def _column_key(section: Mapping[str, Any], key: str, where: str, problem, *, required: bool):
    value = section.get(key)
    if value is None:
        if required:
            problem(where, "missing: name the table's column")
    elif not isinstance(value, str):
        problem(where, "must be a column name (text)")


def _word(value: Any) -> str:
    return "missing" if value is None else f"'{value}' is not allowed"


def _refuse(source: str, key: str | None, reason: str):
    raise ValidationError([Problem(source, None, key, reason)])


# --- the table -----------------------------------------------------------------------------------


def read_table(path: str | Path, *, max_bytes: int | None = None) -> pl.DataFrame:
    """Read any supported table as it is, every column kept (CSV and Excel as text), with
    ``__row`` (1-based) first; ``ValidationError`` for a file that cannot be read."""
    path = Path(path)
    name = path.name
    fmt = TABLE_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        _refuse(
            name,
            None,
            f"unknown file type {path.suffix or '(no extension)'!r}; use one of "
            + ", ".join(TABLE_SUFFIXES),
        )
    limit = importing.default_max_bytes() if max_bytes is None else max_bytes
    try:
        size = path.stat().st_size
    except OSError as exc:
        _refuse(name, None, f"cannot be read: {exc.strerror or exc}")
    if size > limit:
        _refuse(
            name,
            None,
            f"the file is {size / 1024 / 1024:.1f} MB; the limit is {limit / 1024 / 1024:.1f} MB"
            " (setting CLINVAL_MAX_IMPORT_MB)",
        )
    if size == 0:
        _refuse(name, None, "the file is empty")
    try:
        if fmt == "csv":
            frame = pl.read_csv(path, infer_schema=False, truncate_ragged_lines=False)
        elif fmt == "jsonl":
            frame = pl.read_ndjson(path, infer_schema_length=None)
        elif fmt == "parquet":
            frame = pl.read_parquet(path)
        else:
            frame = pl.read_excel(path, engine="calamine", infer_schema_length=0)
    except ImportError as exc:
        _refuse(name, None, f"cannot read {fmt} files here: {first_line(exc)}")
    except Exception as exc:  # polars and fastexcel raise several types; the message is theirs
        _refuse(name, None, f"not readable as {fmt}: {first_line(exc)}")
    if frame.height == 0:
        _refuse(name, None, "the file has no data rows")
    return frame.with_row_index(_ROW, offset=1).with_columns(pl.col(_ROW).cast(pl.Int64))


def _as_text(frame: pl.DataFrame, column: str, *, tags: bool = False) -> pl.Expr:
    """A mapped column as text: strings as they are, numbers and dates as written, lists and
    objects as JSON (a list of strings stays a list where it is tags)."""
    dtype = frame.schema[column]
    col = pl.col(column)
    if dtype == pl.String:
        return col
    if dtype == pl.Null or dtype.is_numeric() or dtype.is_temporal() or dtype == pl.Boolean:
        return col.cast(pl.String)
    if tags and isinstance(dtype, pl.List) and dtype.inner in (pl.String, pl.Null):
        return col
    return col.map_elements(
        lambda v: json.dumps(v, ensure_ascii=False, default=str),
        return_dtype=pl.String,
        skip_nulls=True,
    )


def question_hash(question: str | None) -> str | None:
    """The case id a question gets under ``id_from = "question hash"``.

    >>> question_hash("Can diabetics eat sweets?\\n") == question_hash(" Can diabetics  eat sweets?")
    True
    >>> question_hash("Can diabetics eat sweets?")
    'q-9dad840f0ba54124'
    """
    if question is None or not question.strip():
        return None
    normal = " ".join(question.split())
    return "q-" + hashlib.sha256(normal.encode("utf-8")).hexdigest()[:16]


# --- mapping a table -----------------------------------------------------------------------------


def map_table(
    path: str | Path,
    mapping: TableMapping,
    *,
    known_case_ids: Iterable[str] = (),
    known_arms: pl.DataFrame | None = None,
    max_bytes: int | None = None,
) -> MappedTable:
    """Read the table at ``path``, apply ``mapping`` and check the result as files are checked.

    ``known_case_ids`` and ``known_arms`` (as ``read_arms`` returns them) are the study's: the
    answers may belong to cases and arms stored already. Raises ``ValidationError`` listing every
    problem: a mapped column the table lacks (named by its mapping key), then every problem the
    importer's checks find, each at the table's row and named by the table's column.
    """
    path = Path(path)
    table = read_table(path, max_bytes=max_bytes)
    name = path.name
    missing = [
        Problem(
            mapping.source,
            None,
            key,
            f"column {column!r} is not in {name}; its columns are: "
            + ", ".join(repr(c) for c in table.columns if c != _ROW),
        )
        for key, column in mapping.columns().items()
        if column not in table.columns or column == _ROW
    ]
    if missing:
        raise ValidationError(missing)
    source = _source_names(mapping)
    known = set(known_case_ids)
    cases_raw = _cases_frame(table, mapping)
    left_out = 0
    if mapping.cases.get("only_known", False):
        inside = pl.col("case_id").is_in(pl.Series(sorted(known), dtype=pl.String).implode())
        left_out = cases_raw.filter(~inside.fill_null(False)).height
        table = table.filter(cases_raw.select(inside.fill_null(False)).to_series())
        cases_raw = cases_raw.filter(inside.fill_null(False))
    with _named(source, name):
        cases = (
            importing.read_cases(
                importing.Table(name, _one_per_case(cases_raw, mapping.cases["id_from"]))
            )
            if not mapping.cases.get("only_known", False)
            else _no_cases()
        )
    with _named(source, mapping.source, arm_ids=list(mapping.arms)):
        arms = importing.read_arms(importing.Table(mapping.source, _arms_frame(mapping)))
    answers_raw = _answers_frame(table, cases_raw.get_column("case_id"), mapping, name)
    before = answers_raw.height
    if before == 0:
        raise ValidationError(
            [
                Problem(
                    name,
                    None,
                    None,
                    f"no answers: all {left_out:,} rows were left out (their case is not in the "
                    "study; import the cases first, or set only_known = false)"
                    if left_out
                    else "no answers: every mapped answer cell is empty",
                )
            ]
        )
    answers_raw = answers_raw.unique(
        ["case_id", "arm_id", "text"], keep="first", maintain_order=True
    )
    stored_arms = (
        known_arms.filter(~pl.col("arm_id").is_in(arms.get_column("arm_id").implode()))
        if known_arms is not None and known_arms.height
        else None
    )
    all_arms = (
        arms if stored_arms is None else pl.concat([arms, stored_arms], how="diagonal_relaxed")
    )
    with _named(source, name):
        answers = importing.read_answers(
            importing.Table(name, answers_raw),
            known_case_ids=known | set(cases.get_column("case_id").to_list()),
            arms=all_arms,
        )
    return MappedTable(
        name,
        mapping,
        table.height + left_out,
        cases,
        arms,
        answers,
        before - answers_raw.height,
        left_out,
    )


def _cases_frame(table: pl.DataFrame, mapping: TableMapping) -> pl.DataFrame:
    """One row per table row: ``__row``, ``case_id``, ``question``, ``context``, ``specialty``,
    ``tags`` (text) and ``__tags_list`` (tags given as a list)."""
    cases = mapping.cases
    question = _as_text(table, cases["question"])
    id_from = cases["id_from"]
    if id_from == "column":
        case_id = _as_text(table, cases["id"])
    elif id_from == "row number":
        case_id = pl.format("row-{}", pl.col(_ROW))
    else:
        case_id = question.map_elements(question_hash, return_dtype=pl.String, skip_nulls=True)
    exprs = [pl.col(_ROW), case_id.alias("case_id"), question.alias("question")]
    for key in ("context", "specialty"):
        column = cases.get(key)
        exprs.append(
            (_as_text(table, column) if column else pl.lit(None, dtype=pl.String)).alias(key)
        )
    tags = cases.get("tags")
    listed = tags is not None and isinstance(table.schema[tags], pl.List)
    exprs.append(
        (_as_text(table, tags) if tags and not listed else pl.lit(None, dtype=pl.String)).alias(
            "tags"
        )
    )
    exprs.append(
        (
            _as_text(table, tags, tags=True) if listed else pl.lit(None, dtype=pl.List(pl.String))
        ).alias(importing.TAGS_LIST)
    )
    return table.select(exprs)


def _one_per_case(cases: pl.DataFrame, id_from: str) -> pl.DataFrame:
    """Rows that repeat a case (same id, question, context, specialty, tags) kept once; rows of
    one id that differ stay, for the importer to report as a repeated case id. Under a question
    hash, rows of one id hold the same question up to white space: the first writing is kept."""
    if id_from == "question hash":
        cases = cases.with_columns(pl.col("question").first().over("case_id"))
    content = [c for c in cases.columns if c != _ROW]
    return cases.unique(content, keep="first", maintain_order=True)


def _no_cases() -> pl.DataFrame:
    schema = {c: pl.String for c in importing.CASE_COLUMNS} | {"tags": pl.List(pl.String)}
    return pl.DataFrame(schema=schema)


def _arms_frame(mapping: TableMapping) -> pl.DataFrame:
    """One row per mapped arm, in the mapping's order, numbered from 1."""
    rows = [
        {
            _ROW: number,
            "arm_id": arm,
            **{key: keys.get(key) for key in ARM_OWN},
        }
        for number, (arm, keys) in enumerate(mapping.arms.items(), start=1)
    ]
    schema = {_ROW: pl.Int64, "arm_id": pl.String, **dict.fromkeys(ARM_OWN, pl.String)}
    return pl.DataFrame(rows, schema=schema)


def _answers_frame(
    table: pl.DataFrame, case_ids: pl.Series, mapping: TableMapping, file: str
) -> pl.DataFrame:
    """One row per answer given: ``__row``, ``case_id``, ``arm_id``, ``text`` and each arm's
    answer provenance. Wide: an empty cell is no answer. Long: a row whose arm value no arm
    maps to is a problem, raised here."""
    table = table.with_columns(case_ids.alias("__case_id"))
    parts = []
    if mapping.layout == "long":
        arm_column = mapping.answers["arm"]
        value_of = {keys.get("value", arm): arm for arm, keys in mapping.arms.items()}
        values = _as_text(table, arm_column)
        table = table.with_columns(values.alias("__arm_value"))
        unmapped = (
            table.filter(~pl.col("__arm_value").is_in(list(value_of)).fill_null(False))
            .group_by("__arm_value", maintain_order=True)
            .agg(pl.col(_ROW).first(), pl.len())
        )
        if unmapped.height:
            raise ValidationError(
                [
                    Problem(
                        file,
                        row[_ROW],
                        f"arm (column {arm_column!r})",
                        f"{mapping.answers['arm']!r} holds {_show(row['__arm_value'])} on "
                        f"{row['len']:,} rows, and no [arms.ID] has that value: add "
                        f"[arms.{row['__arm_value'] or 'ID'}] (or value = ... in an arm)",
                    )
                    for row in unmapped.iter_rows(named=True)
                ]
            )
        for value, arm in value_of.items():
            rows = table.filter(pl.col("__arm_value") == value)
            parts.append(_answer_rows(rows, arm, _as_text(table, mapping.answers["text"]), mapping))
    else:
        for arm, keys in mapping.arms.items():
            text = _as_text(table, keys["column"])
            rows = table.filter(text.is_not_null() & text.str.contains(r"\S"))
            parts.append(_answer_rows(rows, arm, text, mapping))
    return pl.concat(parts, how="vertical")


def _answer_rows(rows: pl.DataFrame, arm: str, text: pl.Expr, mapping: TableMapping):
    keys = mapping.arms[arm]
    exprs = [
        pl.col(_ROW),
        pl.col("__case_id").alias("case_id"),
        pl.lit(arm, dtype=pl.String).alias("arm_id"),
        text.alias("text"),
    ]
    for key in ANSWER_PROVENANCE:
        value = keys.get(key) if key != "author_role" else None  # the arm carries its role
        if isinstance(value, dict):
            exprs.append(_as_text(rows, value["column"]).alias(key))
        else:
            exprs.append(pl.lit(value, dtype=pl.String).alias(key))
    return rows.select(exprs)


def _source_names(mapping: TableMapping) -> dict[str, str]:
    """Field -> how the table or mapping gave it, for problems: ``question (column 'Question')``."""
    names = {}
    cases = mapping.cases
    for key in ("question", "context", "specialty", "tags"):
        if cases.get(key):
            names[key] = f"{key} (column {cases[key]!r})"
    id_from = cases["id_from"]
    names["case_id"] = (
        f"case_id (column {cases['id']!r})" if id_from == "column" else f"case_id ({id_from})"
    )
    if mapping.layout == "long":
        names["text"] = f"text (column {mapping.answers['text']!r})"
        names["arm_id"] = f"arm (column {mapping.answers['arm']!r})"
    return names


class _named:
    """Rename the fields in problems raised inside the block to the table's own names; for the
    arms (``arm_ids``, in the mapping's order) to their mapping keys, ``arms.ID.key``."""

    def __init__(
        self, names: dict[str, str], file: str, *, arm_ids: list[str] | None = None
    ) -> None:
        self.names, self.file, self.arm_ids = names, file, arm_ids

    def __enter__(self) -> _named:
        return self

    def __exit__(self, kind, error, tb) -> bool:
        if not isinstance(error, ValidationError):
            return False
        problems = []
        for p in error.problems:
            if self.arm_ids is not None and p.row is not None and p.row <= len(self.arm_ids):
                where = f"arms.{self.arm_ids[p.row - 1]}"
                column, row = f"{where}.{p.column}" if p.column else where, None
            else:
                column, row = self.names.get(p.column or "", p.column), p.row
            problems.append(Problem(self.file, row, column, p.reason, p.repeats))
        raise ValidationError(problems) from None


def _show(value: Any) -> str:
    return "an empty value" if value is None else repr(value)


# --- writing a mapping (the Design screen's form) ------------------------------------------------


def build_mapping(
    *,
    id_from: str,
    question: str,
    layout: str,
    arms: Mapping[str, Mapping[str, str]],
    id_column: str | None = None,
    context: str | None = None,
    specialty: str | None = None,
    tags: str | None = None,
    only_known: bool = False,
    arm_column: str | None = None,
    text_column: str | None = None,
) -> str:
    """The TOML of a mapping chosen on a form (empty values left out), checked by
    :func:`parse_mapping`; ``arms`` maps each arm id to its keys (``column`` or ``value``,
    ``kind``, provenance). Raises ``ValidationError`` as ``parse_mapping`` does."""
    cases: dict[str, Any] = {"id_from": id_from, "id": id_column, "question": question}
    cases |= {"context": context, "specialty": specialty, "tags": tags}
    if only_known:
        cases["only_known"] = True
    answers = {"layout": layout, "arm": arm_column, "text": text_column}
    lines = ["[cases]", *_toml_pairs(cases), "", "[answers]", *_toml_pairs(answers)]
    for arm, keys in arms.items():
        lines += ["", f"[arms.{_toml_string(arm)}]", *_toml_pairs(keys)]
    text = "\n".join(lines) + "\n"
    parse_mapping(text)
    return text


def _toml_pairs(values: Mapping[str, Any]) -> list[str]:
    pairs = []
    for key, value in values.items():
        if value is None or value == "":
            continue
        shown = ("true" if value else "false") if isinstance(value, bool) else _toml_string(value)
        pairs.append(f"{key} = {shown}")
    return pairs


def _toml_string(value: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, but for DEL, which TOML wants escaped."""
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def distinct_values(table: pl.DataFrame, column: str, *, limit: int = 50) -> list[str]:
    """The first ``limit`` distinct non-empty values of ``column`` as text, in table order (the
    arms of a long table)."""
    return (
        table.select(_as_text(table, column).alias("v"))
        .drop_nulls()
        .unique(maintain_order=True)
        .head(limit)
        .get_column("v")
        .to_list()
    )


def suggest_arm_id(source: str) -> str:
    """An arm id made from a column name or an arm column's value: runs of characters an id
    may not hold become ``_``.

    >>> suggest_arm_id("Free form answer")
    'Free_form_answer'
    """
    return re.sub(r"[^\w.:-]+", "_", source).strip("_")[: importing.MAX_ID_CHARS] or "arm"
