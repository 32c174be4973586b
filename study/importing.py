"""Read case, arm and answer files into validated polars frames, or say everything that is wrong.

Pure Python + polars (no DuckDB): ``study.services`` calls these readers and writes the frames.
Each reader returns a frame with fixed columns and types, or raises
:class:`~study.errors.ValidationError` whose ``problems`` list *every* problem found, each located
as ``Problem(file, row, column, reason)``. Nothing is half-read: one problem anywhere rejects the
whole file.

File formats (chosen by the extension)
--------------------------------------
``.csv``
    UTF-8 (an initial byte-order mark is removed), comma-separated, one header row, fields quoted
    with ``"`` where they contain commas, quotes or line breaks (``""`` inside quotes is a quote).
    Every field is read as text; nothing is guessed. An empty field is a missing value.
    ``row`` in a problem is the data row (the header is not counted; a quoted field spanning
    several lines is still one row).
    Every row has exactly as many fields as the header: an empty value still needs its comma
    (``c1,q,,``). A row with fewer or more fields is a problem ("row R (line N) has K fields;
    the header has M", N being the line the row starts on), never filled with missing values.
    A blank line after the header is a row without fields, so it is a problem too; blank lines
    before the header are skipped.

    How short rows are found: polars refuses a row with too many fields but fills a short one
    with nulls, so the reader compares totals: the commas in the file must equal the commas
    inside the header and the values plus (rows + 1) x (columns - 1). Since no row can have
    more fields than the header, the totals agree exactly when no row has fewer, so this check
    misses no short row of the file *as parsed*; the rows are then located with Python's
    ``csv`` module (only for broken files). What no field count can see is a row that has the
    right number of fields but the wrong content: a comma moved within a row (``a,b c,`` for
    ``a b,c,``), or a stray quote that turns several lines into one quoted value which happens
    to leave every row with the right number of fields (the rows merge; the values are wrong).
    One more difference: polars ends a line only at a line feed, the ``csv`` module also at a
    lone carriage return (old Mac files), so there the located rows can be numbered differently.
``.jsonl`` / ``.ndjson``
    UTF-8, one JSON object per line; blank lines are ignored. Values are JSON strings (or
    ``null``); ``tags`` may also be a list of strings and ``parameters`` a JSON object. A number
    where text is expected is a problem, not converted (``"4.10"`` and ``4.1`` are different
    versions). ``row`` in a problem is the line number in the file.
``.parquet``
    Text columns of type string (or categorical, or all-null); ``tags`` a list of strings or a
    string; ``generated_at`` a date, datetime or string (a date or datetime becomes its ISO
    text, with the offset when it has a time zone). ``row`` is the 1-based row.

Columns (any order; a column not listed is a problem, which catches typos)
--------------------------------------------------------------------------
Cases (:func:`read_cases`), one row per case:

=============  ========  ==========================================================
column         required  meaning
=============  ========  ==========================================================
case_id        yes       unique id; no spaces or control characters; <= 200 chars
question       yes       what is asked (patient question, vignette); <= 100,000 chars
context        no        further context shown with the question; <= 100,000 chars
specialty      no        e.g. ``cardiology``; <= 1,000 chars
tags           no        CSV: ``;``-separated (``a; b``); JSON/Parquet: list of strings
                         or a ``;``-separated string. Spaces around each tag are
                         removed and empty tags (``a;;b``) are dropped.
conversation   no        the chat before the answers: JSON array of {role, content}
                         ending with a user turn (``study.case_json``); JSONL: an array;
                         Parquet: a list of structs or JSON text; CSV: JSON text.
                         ``question`` may then be empty: it is the last user turn.
criteria       no        the case's rubric: JSON array of {criterion, points, tags,
                         key}; same formats as ``conversation``. Both are returned as
                         canonical JSON text.
=============  ========  ==========================================================

Arms (:func:`read_arms`), one row per source of answers:

=============  ========  ==========================================================
arm_id         yes       unique id; no spaces or control characters
kind           yes       ``llm`` or ``clinician`` (exactly, lower case)
label          no        internal name; defaults to ``arm_id`` (raters never see it)
model_name     llm       required for ``llm`` arms, must be empty for ``clinician`` arms
model_version  llm       the pinned version; same rule as ``model_name``
author_role    no        e.g. ``attending physician`` (clinician arms)
=============  ========  ==========================================================

Answers (:func:`read_answers`), one row per (case, arm):

=============  ========  ==========================================================
answer_id      no        unique id; defaults to ``<case_id>:<arm_id>``
case_id        yes       a case of the study
arm_id         yes       an arm of the study
text           yes       the answer shown to raters, kept byte for byte; <= 100,000 chars
model_name     no        LLM answers: taken from the arm when empty, else must equal it
model_version  no        LLM answers: taken from the arm when empty, else must equal the
                         arm's pinned version; clinician answers: must be empty
generated_at   llm       ISO 8601 date (``2025-03-01``) or date-time
                         (``2025-03-01T14:05:00Z``, ``2025-03-01T09:05-05:00``), kept
                         exactly as written (text, not converted); not in the future (judged in UTC when an offset is given)
prompt         llm       the prompt that produced the answer
system_prompt  no        LLM answers only
parameters     no        LLM answers only: a JSON object (``{"temperature": 0}``), stored
                         as compact JSON with sorted keys
author_role    clinician taken from the arm when empty
author_id      clinician who wrote the answer (pseudonymous id)
=============  ========  ==========================================================

Rules across rows: ids are unique within the file; each (case, arm) appears once. An arm may
answer only some of the cases (third-party data often does): the lock reports each arm's coverage
and paired analyses use the cases that have both arms.

Provenance that was never recorded: a provenance field that the importer requires (an LLM arm's
``model_name`` and ``model_version``, an LLM answer's ``generated_at`` and ``prompt``, a
clinician answer's ``author_id`` and ``author_role``) may be given as the exact text
``not recorded`` (``NOT_RECORDED``). It is then stored as unknown, never as a value: the readers
return the field null (an arm's model keeps the text, which its table requires) and list it in
the ``not_recorded`` column. An empty value stays a problem, so that a forgotten column is still
caught.

Text is data, never code: a value that starts with ``=``, ``+``, ``-`` or ``@`` (a spreadsheet
formula) or contains HTML is kept verbatim; escaping is the job of whoever displays or exports it.
Nothing is stripped silently except a UTF-8 byte-order mark (and the documented tag trimming).
A NUL character anywhere is a problem. Empty optional values are missing values (null).

Problems are capped at ``MAX_PROBLEMS_PER_KIND`` per kind; a final problem counts the rest.
"""

from __future__ import annotations

import codecs
import datetime as dt
import difflib
import json
import math
import mmap
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from study import case_json, settings
from study.canonical import canonical_json
from study.errors import Problem, StudyError, ValidationError, first_line

MAX_TEXT_CHARS = 100_000
"""Longest question, context, answer text, prompt or parameters value accepted."""
MAX_ID_CHARS = 200
"""Longest id (case, arm, answer, author) or tag accepted."""
MAX_SHORT_CHARS = 1_000
"""Longest label, model name/version, specialty or role accepted."""
MAX_PROBLEMS_PER_KIND = 200
"""Problems listed per kind (check x column); the rest are counted in one closing problem."""

ARM_KINDS = ("llm", "clinician")
NOT_RECORDED = "not recorded"
"""The exact text that marks a required provenance field as never recorded (stored as unknown)."""
NOT_RECORDABLE = (
    "model_name",
    "model_version",
    "generated_at",
    "prompt",
    "author_id",
    "author_role",
)
"""The provenance fields that may be given as ``NOT_RECORDED``."""
_NR = "__not_recorded_"  # flag column prefix: the field was given as NOT_RECORDED
SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}

_ROW = "__row"  # 1-based row number carried through validation; never a user column
_TAGS_LIST = "__tags_list"  # tags given as a list (JSON/Parquet), before trimming
_LINE = "__line"  # one JSONL line
_RESERVED = "__"  # user columns with this prefix are unknown anyway; dropping them avoids clashes

# Field kinds: how a value is checked.
_ID, _TEXT, _SHORT, _TAGS, _DATE, _JSON = "id", "text", "short", "tags", "date", "json"
_VALUE = "value"  # text, or a number in JSONL and Parquet (a rating's value, seconds on task)
# a JSON array: given as JSON text in CSV, an array in JSONL, a list of structs or JSON text in
# Parquet (a case's conversation and its rubric criteria)
_JSON_LIST = "json_list"
MAX_LIST_CHARS = 1_000_000
"""Longest conversation or criteria list, as JSON text (a long chat is many turns)."""
_LIMITS = {
    _JSON_LIST: MAX_LIST_CHARS,
    _ID: MAX_ID_CHARS,
    _TEXT: MAX_TEXT_CHARS,
    _SHORT: MAX_SHORT_CHARS,
    _JSON: MAX_TEXT_CHARS,
    _VALUE: MAX_TEXT_CHARS,
}
_DATE_LIMIT = 64


@dataclass(frozen=True, slots=True)
class Field:
    """One column of an input format: its name, whether every row needs it, and its kind."""

    name: str
    required: bool
    kind: str
    unless: str | None = None  # a required field may be left empty where this field is given


CASE_FIELDS = (
    Field("case_id", True, _ID),
    Field("question", True, _TEXT, unless="conversation"),  # a conversation's last user turn
    Field("context", False, _TEXT),
    Field("specialty", False, _SHORT),
    Field("tags", False, _TAGS),
    Field("conversation", False, _JSON_LIST),
    Field("criteria", False, _JSON_LIST),
)
ARM_FIELDS = (
    Field("arm_id", True, _ID),
    Field("kind", True, _SHORT),
    Field("label", False, _SHORT),
    Field("model_name", False, _SHORT),
    Field("model_version", False, _SHORT),
    Field("author_role", False, _SHORT),
)
ANSWER_FIELDS = (
    Field("answer_id", False, _ID),
    Field("case_id", True, _ID),
    Field("arm_id", True, _ID),
    Field("text", True, _TEXT),
    Field("model_name", False, _SHORT),
    Field("model_version", False, _SHORT),
    Field("generated_at", False, _DATE),
    Field("prompt", False, _TEXT),
    Field("system_prompt", False, _TEXT),
    Field("parameters", False, _JSON),
    Field("author_role", False, _SHORT),
    Field("author_id", False, _ID),
)

RATING_FIELDS = (
    Field("case_id", True, _ID),
    Field("arm_id", False, _ID),
    Field("rater_id", True, _ID),
    Field("item", True, _ID),
    Field("value", True, _VALUE),
    Field("rated_at", False, _DATE),
    Field("seconds", False, _VALUE),
    Field("comment", False, _TEXT),
)

CASE_COLUMNS = tuple(f.name for f in CASE_FIELDS)
ARM_COLUMNS = tuple(f.name for f in ARM_FIELDS)
ANSWER_COLUMNS = tuple(f.name for f in ANSWER_FIELDS)


@dataclass(frozen=True, slots=True)
class Table:
    """Rows read already, to be checked as if they came from a file (``study.mapping``).

    ``frame`` holds text columns named as the format's fields (``tags`` may instead come as
    list[str] in ``__tags_list``) and ``__row`` (Int64), the row that each comes from in the
    file called ``name``: problems then name that file and row.
    """

    name: str
    frame: pl.DataFrame


ROW = _ROW
"""The column of a ``Table`` frame that carries each row's place in its file (1-based)."""
TAGS_LIST = _TAGS_LIST
"""The column of a ``Table`` frame that carries tags given as a list."""


# --- public API ---------------------------------------------------------------------------------


def read_cases(path: str | Path | Table, *, max_bytes: int | None = None) -> pl.DataFrame:
    """Read and validate a cases file.

    Returns one row per case with columns ``case_id`` (str), ``question`` (str), ``context``
    (str | null), ``specialty`` (str | null), ``tags`` (list[str], possibly empty),
    ``conversation`` and ``criteria`` (canonical JSON text | null; see
    ``study.case_json.conversation_problems`` and ``criteria_problems``), in file order. A
    conversation case may leave ``question`` empty: it is then the conversation's last user turn.
    Raises ``ValidationError`` listing every problem.
    """
    reader = _Reader(path, CASE_FIELDS, max_bytes)
    df = _with_blank_flags(reader.frame, CASE_FIELDS)
    checks = _Checks(reader)
    _field_checks(checks, df, CASE_FIELDS)
    _duplicate_check(checks, df, "case_id", "case_id")
    df = _finish_tags(checks, df)
    df = _finish_json_list(checks, df, "conversation", case_json.canonical_conversation)
    df = _finish_json_list(checks, df, "criteria", case_json.canonical_criteria)
    checks.raise_if_any()
    return df.select(
        pl.col("case_id"),
        pl.when(_blank("question"))
        .then(
            pl.col("conversation").map_elements(
                case_json.last_user_turn, return_dtype=pl.String, skip_nulls=True
            )
        )
        .otherwise(pl.col("question"))
        .alias("question"),
        _optional("context"),
        _optional("specialty"),
        pl.col("tags"),
        pl.col("conversation"),
        pl.col("criteria"),
    )


def read_arms(path: str | Path | Table, *, max_bytes: int | None = None) -> pl.DataFrame:
    """Read and validate an arms file.

    Returns one row per arm: ``arm_id``, ``kind`` (``"llm"`` | ``"clinician"``), ``label``
    (``arm_id`` when not given), ``model_name``, ``model_version``, ``author_role`` (str | null),
    ``not_recorded`` (list[str]: the fields given as ``NOT_RECORDED``; an LLM arm's model fields
    then hold that text). Raises ``ValidationError`` listing every problem.
    """
    reader = _Reader(path, ARM_FIELDS, max_bytes)
    df = _with_blank_flags(_take_not_recorded(reader.frame, ARM_FIELDS), ARM_FIELDS)
    checks = _Checks(reader)
    _field_checks(checks, df, ARM_FIELDS)
    _duplicate_check(checks, df, "arm_id", "arm_id")
    kind = pl.col("kind")
    checks.add(
        "kind",
        kind.is_not_null() & ~kind.is_in(ARM_KINDS) & kind.str.contains(r"\S"),
        lambda v: f"kind {_show(v)} is not one of {', '.join(ARM_KINDS)} (lower case)",
    )
    for column in ("model_name", "model_version"):
        checks.add(
            column,
            (kind == "llm") & _blank(column) & ~_not_recorded(column),
            f"an llm arm needs its {column} (the model is pinned per arm; write "
            f"'{NOT_RECORDED}' if the source never recorded it)",
        )
        checks.add(
            column,
            (kind == "clinician") & (~_blank(column) | _not_recorded(column)),
            lambda v, c=column: (
                f"a clinician arm has no {c}; leave it empty (got {_show(v or NOT_RECORDED)})"
            ),
        )
    checks.run(df)
    checks.raise_if_any()
    model = ("model_name", "model_version")
    return df.select(
        pl.col("arm_id"),
        pl.col("kind"),
        pl.when(_blank("label")).then(pl.col("arm_id")).otherwise(pl.col("label")).alias("label"),
        # the arms table requires an LLM arm's model as text: the marker stays, listed as unknown
        *(
            pl.when(_not_recorded(c)).then(pl.lit(NOT_RECORDED)).otherwise(_optional(c)).alias(c)
            for c in model
        ),
        _optional("author_role"),
        _not_recorded_list({c: pl.lit(True) for c in (*model, "author_role")}),
    )


def read_answers(
    path: str | Path | Table,
    *,
    known_case_ids: Iterable[str],
    arms: pl.DataFrame,
    max_bytes: int | None = None,
) -> pl.DataFrame:
    """Read and validate an answers file against the study's cases and arms.

    ``arms`` is the study's arms as :func:`read_arms` returns them (at least ``arm_id``, ``kind``,
    ``model_name``, ``model_version``, ``author_role``; with ``not_recorded``, an arm whose
    author role was not recorded lets its answers leave theirs empty). An arm need not answer every case.
    Whether a re-imported answer is identical to the stored one is the store's decision, not
    the reader's.

    Returns one row per answer: ``answer_id``, ``case_id``, ``arm_id``, ``text`` (str),
    ``model_name``, ``model_version`` (str | null; filled from the arm for LLM answers),
    ``generated_at`` (ISO 8601 text as written | null), ``prompt``, ``system_prompt`` (str | null), ``parameters``
    (compact JSON object text | null), ``author_role`` (str | null; filled from the arm),
    ``author_id`` (str | null), ``not_recorded`` (list[str]: the fields of this answer given as
    ``NOT_RECORDED``, null in the columns above). Raises ``ValidationError`` listing every
    problem.
    """
    missing = {"arm_id", "kind", "model_name", "model_version", "author_role"} - set(arms.columns)
    if missing:
        raise ValueError(f"arms frame lacks columns {sorted(missing)}")
    known = _id_series(known_case_ids)
    reader = _Reader(path, ANSWER_FIELDS, max_bytes)
    checks = _Checks(reader)
    df = _with_blank_flags(_take_not_recorded(reader.frame, ANSWER_FIELDS), ANSWER_FIELDS)
    _field_checks(checks, df, ANSWER_FIELDS)

    # an arm whose author role was not recorded stands for its answers (``not_recorded``)
    role_unknown = (
        pl.col("not_recorded").list.contains("author_role").fill_null(False)
        if "not_recorded" in arms.columns
        else pl.lit(False)
    )
    arm_info = arms.select(
        pl.col("arm_id").cast(pl.String),
        pl.col("kind").cast(pl.String).alias("__arm_kind"),
        pl.col("model_name").cast(pl.String).alias("__arm_model_name"),
        pl.col("model_version").cast(pl.String).alias("__arm_model_version"),
        pl.col("author_role").cast(pl.String).alias("__arm_author_role"),
        pl.when(role_unknown).then(pl.lit("1")).alias("__arm_role_unknown"),
    ).unique("arm_id", keep="first", maintain_order=True)
    # a lookup per value instead of a join: a join would copy every (text) column of the frame
    df = df.with_columns(
        pl.col("arm_id")
        .replace_strict(arm_info["arm_id"], arm_info[column], default=None, return_dtype=pl.String)
        .alias(column)
        for column in arm_info.columns
        if column != "arm_id"
    )
    df = df.with_columns(
        pl.coalesce(
            _optional("answer_id"), pl.col("case_id") + pl.lit(":") + pl.col("arm_id")
        ).alias("answer_id"),
    )
    is_llm = pl.col("__arm_kind") == "llm"
    is_clin = pl.col("__arm_kind") == "clinician"
    has = {f.name: ~_blank(f.name) for f in ANSWER_FIELDS}
    known_arms = ", ".join(_show(a) for a in arm_info["arm_id"].head(20)) or "none yet"

    checks.add(
        "case_id",
        has["case_id"] & ~pl.col("case_id").is_in(known.implode()),
        lambda v: f"unknown case {_show(v)}: import it with the cases first",
    )
    checks.add(
        "arm_id",
        has["arm_id"] & pl.col("__arm_kind").is_null(),
        lambda v: f"unknown arm {_show(v)}; the study's arms are: {known_arms}",
    )
    _duplicate_check(checks, df, "answer_id", "answer_id")
    _duplicate_check(checks, df, ["case_id", "arm_id"], "arm_id", what="answer for this case")
    for column in ("model_name", "model_version"):
        arm_value = pl.col(f"__arm_{column}")
        checks.add(
            column,
            is_llm & has[column] & arm_value.is_not_null() & (pl.col(column) != arm_value),
            lambda row, c=column: (
                f"{c} {_show(row[c])} differs from the arm's pinned "
                f"{_show(row[f'__arm_{c}'])}; an arm is one model at one version"
            ),
            columns=[column, f"__arm_{column}"],
        )
    for column in ("model_name", "model_version", "system_prompt", "parameters"):
        given = has[column] | _not_recorded(column) if column in NOT_RECORDABLE else has[column]
        checks.add(
            column,
            is_clin & given,
            f"a clinician answer has no {column}; leave it empty or use an llm arm",
        )
    for column, kind in (("generated_at", is_clin), ("prompt", is_clin)):
        checks.add(
            column,
            kind & _not_recorded(column),
            f"a clinician answer has no {column}; leave it empty",
        )
    for column in ("author_id", "author_role"):
        checks.add(
            column,
            is_llm & _not_recorded(column),
            f"an LLM answer has no {column}; leave it empty",
        )
    unless = f" (write '{NOT_RECORDED}' if the source never recorded it)"
    known_or_unknown = {c: has[c] | _not_recorded(c) for c in NOT_RECORDABLE}
    checks.add(
        "prompt",
        is_llm & ~known_or_unknown["prompt"],
        "an LLM answer needs the prompt that produced it" + unless,
    )
    checks.add(
        "generated_at",
        is_llm & ~known_or_unknown["generated_at"],
        "an LLM answer needs its generation date (ISO, e.g. 2025-03-01)" + unless,
    )
    checks.add(
        "author_role",
        is_clin
        & ~known_or_unknown["author_role"]
        & pl.col("__arm_author_role").is_null()
        & pl.col("__arm_role_unknown").is_null(),
        "a clinician answer needs author_role (here or on its arm)" + unless,
    )
    checks.add(
        "author_id",
        is_clin & ~known_or_unknown["author_id"],
        "a clinician answer needs author_id" + unless,
    )
    checks.run(df)

    df = _finish_generated_at(checks, df)
    df = _finish_parameters(checks, df)
    checks.raise_if_any()
    return df.select(
        pl.col("answer_id"),
        pl.col("case_id"),
        pl.col("arm_id"),
        pl.col("text"),
        pl.coalesce(_optional("model_name"), pl.when(is_llm).then(pl.col("__arm_model_name"))),
        pl.coalesce(
            _optional("model_version"), pl.when(is_llm).then(pl.col("__arm_model_version"))
        ),
        pl.col("generated_at"),
        _optional("prompt"),
        _optional("system_prompt"),
        pl.col("parameters"),
        pl.when(~_not_recorded("author_role"))
        .then(
            pl.coalesce(
                _optional("author_role"), pl.when(is_clin).then(pl.col("__arm_author_role"))
            )
        )
        .alias("author_role"),
        _optional("author_id"),
        _not_recorded_list(
            {"generated_at": is_llm, "prompt": is_llm, "author_id": is_clin, "author_role": is_clin}
        ),
    )


def read_ratings(
    path: str | Path,
    *,
    known_case_ids: Iterable[str],
    answers: pl.DataFrame,
    raters: Iterable[str],
    items: Mapping[str, Any],
    max_bytes: int | None = None,
) -> pl.DataFrame:
    """Read and validate ratings collected elsewhere against the study's design.

    One row per rating: ``case_id``, ``rater_id`` (a person of the study holding the rater role:
    ``raters``), ``item`` (a key of ``items``, which maps item keys to
    ``study.instruments.Item``), ``value`` (text, or a number in JSONL and Parquet; it must be one
    of the item's values), ``arm_id`` (for items rated per answer: an arm that answered the case,
    per ``answers``' columns ``case_id``, ``arm_id``; empty for items rated once per case),
    optional ``rated_at`` (ISO 8601 date or date-time, not in the future), ``seconds`` (time on
    task, a number >= 0) and ``comment`` (text). Each (case, rater, item, arm) appears once.

    Returns the rows in file order with ``case_id``, ``arm_id``, ``rater_id``, ``item`` (str),
    ``value_num`` (Float64 | null), ``value_text`` (str | null: free text and pairwise choices),
    ``rated_at`` (naive UTC datetime | null; a value without an offset is taken as UTC),
    ``seconds`` (Float64 | null), ``comment`` (str | null) and ``row`` (1-based row number).
    Raises ``ValidationError`` listing every problem.
    """
    known = _id_series(known_case_ids)
    rater_ids = pl.Series(list(raters), dtype=pl.String)
    answered = answers.select(pl.col("case_id").cast(pl.String), pl.col("arm_id").cast(pl.String))
    arm_ids = answered.get_column("arm_id").unique().sort()
    reader = _Reader(path, RATING_FIELDS, max_bytes)
    checks = _Checks(reader)
    df = _with_blank_flags(reader.frame, RATING_FIELDS)
    _field_checks(checks, df, RATING_FIELDS)
    has = {f.name: ~_blank(f.name) for f in RATING_FIELDS}
    scope = {key: item.scope for key, item in items.items()}
    df = df.with_columns(
        pl.col("item").replace_strict(scope, default=None, return_dtype=pl.String).alias("__scope"),
        pl.struct("case_id", "arm_id").is_in(answered.to_struct().implode()).alias("__answered"),
    )
    checks.add(
        "case_id",
        has["case_id"] & ~pl.col("case_id").is_in(known.implode()),
        lambda v: f"unknown case {_show(v)}: the study has no such case",
    )
    checks.add(
        "arm_id",
        has["arm_id"] & ~pl.col("arm_id").is_in(arm_ids.implode()),
        lambda v: (
            f"unknown arm {_show(v)}; arms with answers: "
            + (", ".join(_show(a) for a in arm_ids.head(20)) or "none")
        ),
    )
    checks.add(
        "arm_id",
        has["arm_id"]
        & pl.col("arm_id").is_in(arm_ids.implode())
        & pl.col("case_id").is_in(known.implode())
        & ~pl.col("__answered"),
        lambda row: f"arm {_show(row['arm_id'])} has no answer for case {_show(row['case_id'])}",
        columns=["arm_id", "case_id"],
    )
    checks.add(
        "rater_id",
        has["rater_id"] & ~pl.col("rater_id").is_in(rater_ids.implode()),
        lambda v: (
            f"unknown rater {_show(v)}: raters are people of the study with the rater role "
            "(add them first, e.g. python -m study add-raters)"
        ),
    )
    checks.add(
        "item",
        has["item"] & pl.col("__scope").is_null(),
        lambda v: f"unknown item {_show(v)}; the study's items are: {', '.join(items) or 'none'}",
    )
    checks.add(
        "arm_id",
        (pl.col("__scope") == "answer") & ~has["arm_id"],
        lambda row: f"item {_show(row['item'])} is rated per answer: give the arm_id it rated",
        columns=["item"],
    )
    checks.add(
        "arm_id",
        (pl.col("__scope") == "case") & has["arm_id"],
        lambda row: f"item {_show(row['item'])} is rated once per case: leave arm_id empty",
        columns=["item"],
    )
    # a per-case item has no arm: a stand-in that no arm id can be (ids have no spaces), so
    # that two per-case ratings of one item are duplicates too
    df = df.with_columns(pl.coalesce(_optional("arm_id"), pl.lit("(per case)")).alias("__arm"))
    _duplicate_check(checks, df, ["case_id", "rater_id", "item", "__arm"], "item", what="rating")
    checks.run(df)
    df = _finish_generated_at(checks, df, "rated_at")
    df = _finish_rating_values(checks, df, items)
    checks.raise_if_any()
    return df.select(
        pl.col("case_id"),
        _optional("arm_id"),
        pl.col("rater_id"),
        pl.col("item"),
        pl.col("__value_num").alias("value_num"),
        pl.col("__value_text").alias("value_text"),
        pl.col("rated_at")
        .map_elements(_utc_instant, return_dtype=pl.Datetime("us"))
        .alias("rated_at"),
        pl.col("__seconds").alias("seconds"),
        _optional("comment"),
        pl.col(_ROW).alias("row"),
    )


def _finish_rating_values(
    checks: _Checks, df: pl.DataFrame, items: Mapping[str, Any]
) -> pl.DataFrame:
    """Check each distinct (item, value) with the item's own ``validate_value`` (ratings repeat
    a handful of values per item) and each ``seconds``; numbers are written as text in CSV."""
    pairs = df.select("item", "value").filter(pl.col("item").is_in(list(items))).unique()
    num: list[float | None] = []
    text: list[str | None] = []
    reason: list[str | None] = []
    for key, given in pairs.iter_rows():
        value_num = value_text = why = None
        if given is not None and getattr(items[key], "per_case_criteria", False):
            # {"c1": true, ...} as text; its keys are checked against the case's criteria by
            # the service, which knows them
            value_text, why = _criteria_labels(key, given)
        elif given is not None:
            item = items[key]
            literal = item.type in ("free_text", "pairwise_choice")
            candidate: Any = given if literal else _as_number(given)
            try:
                if candidate is None:
                    raise ValueError(f"item '{key}' takes a number, got {_show(given)}")
                checked = item.validate_value(candidate)
            except (ValueError, StudyError) as exc:
                why = str(exc)
            else:
                value_text, value_num = (checked, None) if literal else (None, float(checked))
        num.append(value_num)
        text.append(value_text)
        reason.append(why)
    lookup = pairs.with_columns(
        pl.Series("__value_num", num, dtype=pl.Float64),
        pl.Series("__value_text", text, dtype=pl.String),
        pl.Series("__value_reason", reason, dtype=pl.String),
    )
    df = df.join(lookup, on=["item", "value"], how="left", maintain_order="left")
    seconds = pl.col("seconds").str.strip_chars().cast(pl.Float64, strict=False)
    df = df.with_columns(seconds.alias("__seconds"))
    checks.add(
        "value",
        pl.col("__value_reason").is_not_null(),
        lambda row: row["__value_reason"],
        columns=["__value_reason"],
    )
    checks.add(
        "seconds",
        ~_blank("seconds")
        & (
            pl.col("__seconds").is_null()
            | ~pl.col("__seconds").is_finite()
            | (pl.col("__seconds") < 0)
        ),
        lambda v: f"seconds {_show(v)} is not a number of seconds >= 0",
    )
    checks.run(df)
    return df


def _criteria_labels(key: str, given: str) -> tuple[str | None, str | None]:
    """(canonical JSON text, None) for a rubric value ``{"criterion key": true | false, ...}``
    given as JSON text, else (None, the problem)."""
    try:
        labels = json.loads(given)
    except ValueError:
        labels = None
    if not isinstance(labels, dict) or not labels:
        return None, (
            f"item '{key}' takes met / not met per criterion as a JSON object, e.g. "
            '{"c1": true, "c2": false}'
        )
    odd = [k for k, v in labels.items() if not isinstance(v, bool) and v not in (0, 1)]
    if odd:
        return None, f"item '{key}': criterion {odd[0]!r} is met (true) or not met (false)"
    return canonical_json({k: bool(v) for k, v in labels.items()}), None


def _as_number(text: str) -> int | float | None:
    try:
        number = float(text.strip())
    except ValueError:
        return None
    if not math.isfinite(number):
        return None
    # a whole number as written ("7", "7.0") is an int, so that messages show it as the file does
    return int(number) if number.is_integer() else number


def _utc_instant(text: str) -> dt.datetime:
    """An ISO date or date-time as a naive UTC datetime (no offset: taken as UTC)."""
    moment = dt.datetime.fromisoformat(text.replace(" ", "T", 1) if len(text) > 10 else text)
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment


def default_max_bytes() -> int:
    """``CLINVAL_MAX_IMPORT_MB`` in bytes (MiB)."""
    return int(settings.get("CLINVAL_MAX_IMPORT_MB")) * 1024 * 1024


# --- reading ------------------------------------------------------------------------------------


class _Reader:
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
        raise ValidationError(_cap(problems))

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
        return df.with_row_index(_ROW, offset=1).with_columns(pl.col(_ROW).cast(pl.Int64))

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
                    f"{_show(header)}",
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
            .with_row_index(_ROW, offset=1)
            .with_columns(pl.col(_ROW).cast(pl.Int64), pl.col(_LINE).str.strip_suffix("\r"))
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
            if column in (_ROW, _LINE):
                continue
            field = names.get(column)
            if dtype in (pl.String, pl.Null) or field is None:
                continue
            if field.kind == _TAGS and dtype in (pl.List(pl.String), pl.List(pl.Null)):
                continue  # List(Null): every list was empty (or held only nulls, judged later)
            if field.kind == _VALUE and (dtype.is_numeric() and dtype != pl.Boolean):
                keep.append(pl.col(column).cast(pl.String))
                continue
            if field.kind == _JSON and isinstance(dtype, pl.Struct):
                keep.append(pl.col(_LINE).str.json_path_match(f"$.{column}").alias(column))
                continue
            if field.kind == _JSON_LIST and isinstance(dtype, pl.List):
                keep.append(pl.col(_LINE).str.json_path_match(f"$.{column}").alias(column))
                continue
            typed_bad.append(column)
        if keep:
            df = df.with_columns(keep)
        string_keys = [
            f.name for f in self.fields if f.kind not in (_TAGS, _JSON, _VALUE, _JSON_LIST)
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
            *(pl.col(c).is_not_null().cast(pl.Int32) for c in df.columns if c not in (_ROW, _LINE)),
        )
        candidate = candidate | (keys_upper > values)
        flagged = df.filter(candidate).select(_ROW, _LINE)
        tag_lists: dict[int, list[str]] = {}
        for row, line in flagged.iter_rows():
            obj = self._loads(row, line)
            self._python_types(row, obj, tag_lists, skip=set(typed_bad))
        for column in typed_bad:
            bad = df.filter(pl.col(column).is_not_null()).select(_ROW).to_series()
            dtype = df.schema[column]
            reason = _json_type_reason(names[column], _dtype_word(dtype))
            self.problems.extend(
                _cap([Problem(self.name, int(r), column, reason) for r in bad.to_list()])
            )
            df = df.with_columns(pl.lit(None, dtype=pl.String).alias(column))
            self.bad_columns.add(column)
        if tags_dtype is not None and isinstance(tags_dtype, pl.List) and "tags" not in typed_bad:
            df = df.with_columns(
                pl.col("tags").cast(pl.List(pl.String)).alias(_TAGS_LIST),
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
            if field.kind == _TAGS and isinstance(value, list):
                if all(isinstance(t, str) for t in value):
                    tag_lists[row] = value
                    continue
                self.problems.append(
                    Problem(self.name, row, field.name, _json_type_reason(field, _py_word(value)))
                )
                continue
            if (
                field.kind == _VALUE
                and isinstance(value, int | float)
                and not isinstance(value, bool)
            ):
                continue
            if field.kind == _JSON and isinstance(value, dict):
                continue
            if field.kind == _JSON_LIST and isinstance(value, list):
                continue
            self.problems.append(
                Problem(self.name, row, field.name, _json_type_reason(field, _py_word(value)))
            )

    def _merge_tag_lists(self, df: pl.DataFrame, tag_lists: dict[int, list[str]]) -> pl.DataFrame:
        lists = pl.DataFrame(
            {_ROW: list(tag_lists), _TAGS_LIST: list(tag_lists.values())},
            schema={_ROW: pl.Int64, _TAGS_LIST: pl.List(pl.String)},
        )
        df = df.join(lists, on=_ROW, how="left", maintain_order="left")
        return df.with_columns(
            pl.when(pl.col(_TAGS_LIST).is_null()).then(pl.col("tags")).alias("tags")
        )

    def _read_jsonl_slow(self, lines: pl.DataFrame) -> pl.DataFrame:
        """Per-line parse in Python: only when polars could not read the whole file, to say which
        lines are broken and still check the good ones."""
        good_rows: list[int] = []
        good_lines: list[str] = []
        keys: dict[str, None] = {}
        tag_lists: dict[int, list[str]] = {}
        bad: list[Problem] = []
        for row, line in lines.select(_ROW, _LINE).iter_rows():
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
                        f"each line must be a JSON object {{...}}, got {_py_word(obj)}",
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
        self.problems.extend(_cap(bad))
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
        df = self._drop_reserved(df).with_columns(pl.Series(_ROW, good_rows, dtype=pl.Int64))
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
                field.kind == _TAGS
                and isinstance(dtype, pl.List)
                and (dtype.inner in (pl.String, pl.Null) or isinstance(dtype.inner, pl.Categorical))
            ):
                casts.append(pl.col(column).cast(pl.List(pl.String)).alias(_TAGS_LIST))
                casts.append(pl.lit(None, dtype=pl.String).alias(column))
            elif field.kind == _VALUE and dtype.is_numeric():
                casts.append(pl.col(column).cast(pl.String))
            elif field.kind == _JSON_LIST and isinstance(dtype, pl.List):
                # a list of structs (messages, criteria) becomes its JSON text, judged later
                texts = [
                    None if v is None else json.dumps(v, ensure_ascii=False)
                    for v in df[column].to_list()
                ]
                casts.append(pl.lit(pl.Series(column, texts, dtype=pl.String)).alias(column))
            elif field.kind == _DATE and dtype == pl.Date:
                casts.append(pl.col(column).dt.to_string("%Y-%m-%d"))
            elif field.kind == _DATE and isinstance(dtype, pl.Datetime):
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
        return df.with_row_index(_ROW, offset=1).with_columns(pl.col(_ROW).cast(pl.Int64))

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
        present = [c for c in df.columns if c not in (_ROW, _TAGS_LIST)]
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
            raise ValidationError(_cap(self.problems))
        adds = [pl.lit(None, dtype=pl.String).alias(c) for c in allowed if c not in base_names]
        if _TAGS_LIST not in df.columns and "tags" in allowed:
            adds.append(pl.lit(None, dtype=pl.List(pl.String)).alias(_TAGS_LIST))
        df = df.with_columns(adds) if adds else df
        extra = [_TAGS_LIST] if "tags" in allowed else []
        return df.select(_ROW, *allowed, *extra).with_columns(
            pl.col(c).cast(pl.String) for c in allowed
        )


# --- checks -------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Check:
    column: str
    mask: pl.Expr
    reason: str | Callable[[Any], str]
    columns: list[str] | None  # values handed to ``reason`` (a dict) instead of one value
    # a cheap mask runs over every row; ``exact`` then confirms the few rows it flagged
    exact: pl.Expr | None = None
    # turns all failing rows into problems when one reason per row is not enough
    materialise: Callable[[pl.DataFrame], list[Problem]] | None = None


class _Checks:
    """Collects vectorised checks; evaluates all their counts in one pass over the frame, then
    materialises problems (capped) only for the checks that failed."""

    def __init__(self, reader: _Reader) -> None:
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
            hits = failing.select(_ROW, *wanted).head(MAX_PROBLEMS_PER_KIND)
            for values in hits.iter_rows(named=True):
                value = values if check.columns else values[check.column]
                reason = check.reason(value) if callable(check.reason) else check.reason
                self.problems.append(Problem(self.name, values[_ROW], check.column, reason))
            if failing.height > MAX_PROBLEMS_PER_KIND:
                more = failing.height - MAX_PROBLEMS_PER_KIND
                self.problems.append(Problem.summary(self.name, check.column, more))

    def raise_if_any(self) -> None:
        if self.pending:
            raise RuntimeError("checks added but not run")
        if self.problems:
            raise ValidationError(_ordered(self.problems))


def _field_checks(checks: _Checks, df: pl.DataFrame, fields: tuple[Field, ...]) -> None:
    """Per-value checks that depend only on the field: required, length, NUL, id shape."""
    for field in fields:
        if field.name in checks.reader.bad_columns:
            continue
        col = pl.col(field.name)
        if field.required:
            empty = _blank(field.name)
            also = ""
            if field.unless is not None:
                empty = empty & _blank(field.unless)
                also = f" (or a {field.unless})"
            if checks.reader.blank_rows:
                empty = empty & ~pl.col(_ROW).is_in(sorted(checks.reader.blank_rows))
            checks.add(field.name, empty, f"{field.name} is empty; every row needs one{also}")
        checks.add(
            field.name,
            col.str.contains("\x00", literal=True),
            "contains a NUL character (byte 0x00); remove it",
        )
        limit = _LIMITS.get(field.kind, _DATE_LIMIT if field.kind == _DATE else MAX_ID_CHARS)
        if field.kind != _TAGS:
            checks.add(
                field.name,
                col.str.len_bytes() > limit,  # O(1) per value; characters <= bytes
                lambda v, n=limit: f"{len(v):,} characters; at most {n:,} are accepted",
                exact=col.str.len_chars() > limit,
            )
        if field.kind == _ID:
            checks.add(
                field.name,
                ~_blank(field.name) & col.str.contains(r"[\s\p{Cc}\p{Cf}\p{Co}]"),
                lambda v: (
                    f"id {_show(v)} contains spaces or control characters (not allowed in ids)"
                ),
            )


def _duplicate_check(
    checks: _Checks,
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
        ~_blank(k) if _BLANK + k in df.columns else ~_blank_expr(k) for k in keys
    )
    hashed = pl.col(keys[0]).hash(7) if len(keys) == 1 else pl.struct(keys).hash(7)
    label = what or keys[0]

    def problems(failing: pl.DataFrame) -> list[Problem]:
        first = (
            df.filter(present)
            .join(failing.select(keys).unique(), on=keys, how="semi")
            .group_by(keys)
            .agg(pl.col(_ROW).min().alias("__first"))
        )
        confirmed = (
            failing.select(_ROW, *keys)
            .join(first, on=keys, how="inner")
            .filter(pl.col("__first") != pl.col(_ROW))
            .sort(_ROW)
        )
        found = []
        for row in confirmed.iter_rows(named=True):
            shown = ", ".join(f"{k.lstrip('_')} {_show(row[k])}" for k in keys)
            found.append(
                Problem(
                    checks.name,
                    row[_ROW],
                    column,
                    f"duplicate {label} ({shown}); first given in row {row['__first']}",
                )
            )
        return found

    checks.add(column, present & ~hashed.is_first_distinct(), "", materialise=problems)


def _finish_tags(checks: _Checks, df: pl.DataFrame) -> pl.DataFrame:
    """``tags`` text is split on ';'; tags given as lists are kept; each tag is trimmed and empty
    ones dropped (documented in the module docstring)."""
    from_text = pl.col("tags").str.split(";")
    listed = pl.coalesce(pl.col(_TAGS_LIST), from_text)
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
        pl.col(_TAGS_LIST).list.eval(pl.element().str.contains("\x00", literal=True)).list.any()
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


def _finish_generated_at(
    checks: _Checks, df: pl.DataFrame, column: str = "generated_at"
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
        ~_blank(column) & ~pl.col("__date_ok"),
        lambda v: (
            f"{_show(v)} is not an ISO 8601 date (YYYY-MM-DD) or date-time "
            "(YYYY-MM-DDTHH:MM[:SS[.fff]], optionally with Z or an offset such as +01:00)"
        ),
    )
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    checks.add(
        column,
        pl.col("__instant") > pl.lit(now, dtype=pl.Datetime("us")),
        lambda v: f"{_show(v)} is in the future",
    )
    checks.run(df)
    return df.with_columns(pl.when(~_blank(column)).then(text).alias(column))


def _finish_parameters(checks: _Checks, df: pl.DataFrame) -> pl.DataFrame:
    """Validate distinct ``parameters`` values with ``json`` (answers repeat a handful of
    settings, so this loops over distinct values, not rows) and store them canonically."""
    distinct = df.select(pl.col("parameters").filter(~_blank("parameters")).unique()).to_series()
    canonical: list[str | None] = []
    reasons: list[str | None] = []
    for value in distinct.to_list():
        try:
            obj = json.loads(value)
        except ValueError as err:
            canonical.append(None)
            reasons.append(f"parameters is not valid JSON ({getattr(err, 'msg', err)})")
            continue
        if not isinstance(obj, dict):
            canonical.append(None)
            reasons.append(f"parameters must be a JSON object {{...}}, got {_py_word(obj)}")
            continue
        canonical.append(json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
        reasons.append(None)
    df = df.with_columns(
        pl.col("parameters")
        .replace_strict(distinct, pl.Series(values, dtype=pl.String), default=None)
        .alias(name)
        for name, values in (("__params", canonical), ("__params_reason", reasons))
    )
    checks.add(
        "parameters",
        pl.col("__params_reason").is_not_null(),
        lambda row: row["__params_reason"],
        columns=["__params_reason"],
    )
    checks.run(df)
    return df.with_columns(pl.col("__params").alias("parameters"))


def _finish_json_list(
    checks: _Checks,
    df: pl.DataFrame,
    column: str,
    canonical: Callable[[Any], tuple[str | None, str | None]],
) -> pl.DataFrame:
    """Validate ``column``'s JSON arrays with ``canonical`` (value -> (canonical text, problem))
    once per distinct value, and store the canonical text; each problem names its row."""
    distinct = df.select(pl.col(column).filter(~_blank(column)).unique()).to_series()
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


# --- small helpers ------------------------------------------------------------------------------


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


def _id_series(ids: Iterable[str]) -> pl.Series:
    return pl.Series("case_id", list(ids), dtype=pl.String, strict=True).unique()


_BLANK = "__blank_"


def _blank_expr(column: str) -> pl.Expr:
    """Missing, empty or whitespace-only (Unicode whitespace), computed."""
    col = pl.col(column)
    return (col.is_null() | ~col.str.contains(r"\S")).fill_null(True)


def _blank(column: str) -> pl.Expr:
    """The blank flag of a field, computed once per file by ``_with_blank_flags``."""
    return pl.col(_BLANK + column)


def _with_blank_flags(df: pl.DataFrame, fields: tuple[Field, ...]) -> pl.DataFrame:
    return df.with_columns(_blank_expr(f.name).alias(_BLANK + f.name) for f in fields)


def _take_not_recorded(df: pl.DataFrame, fields: tuple[Field, ...]) -> pl.DataFrame:
    """Flag every recordable field given exactly as ``NOT_RECORDED`` and make it null, so that no
    check reads the marker as a value (an id with a space, a date that is no date)."""
    names = [f.name for f in fields if f.name in NOT_RECORDABLE]
    flags = [(pl.col(n) == NOT_RECORDED).fill_null(False).alias(_NR + n) for n in names]
    df = df.with_columns(flags)
    return df.with_columns(pl.when(~pl.col(_NR + n)).then(pl.col(n)).alias(n) for n in names)


def _not_recorded(column: str) -> pl.Expr:
    """Whether the field was given as ``NOT_RECORDED`` (false for a field that cannot be)."""
    return pl.col(_NR + column) if column in NOT_RECORDABLE else pl.lit(False)


def _not_recorded_list(applies: dict[str, pl.Expr]) -> pl.Expr:
    """``not_recorded``: the fields (keys of ``applies``, where it holds) given as unknown."""
    names = [
        pl.when(_not_recorded(name) & condition.fill_null(False)).then(pl.lit(name))
        for name, condition in applies.items()
    ]
    return pl.concat_list(names).list.drop_nulls().alias("not_recorded")


def _optional(column: str) -> pl.Expr:
    """An optional value: the empty string is missing (null); anything else is kept verbatim."""
    col = pl.col(column)
    return pl.when(col != "").then(col).alias(column)


def _show(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…'"


def _cap(problems: list[Problem]) -> list[Problem]:
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


def _ordered(problems: list[Problem]) -> list[Problem]:
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


def _json_type_reason(field: Field, got: str) -> str:
    if field.kind == _TAGS:
        return f"tags must be a list of strings or a ';'-separated string, got {got}"
    if field.kind == _JSON:
        return f"parameters must be a JSON object or a string holding one, got {got}"
    return f"must be a JSON string (in quotes), got {got}; nothing is converted"


def _py_word(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        odd = [v for v in value if not isinstance(v, str)]
        return f"a list containing {_py_word(odd[0])}" if odd else "a list"
    if isinstance(value, dict):
        return "an object"
    if value is None:
        return "null"
    return "a string"


def _dtype_word(dtype: pl.DataType) -> str:
    if dtype == pl.Boolean:
        return "a boolean"
    if dtype.is_numeric():
        return "a number"
    if isinstance(dtype, pl.List):
        return f"a list containing {_dtype_word(dtype.inner)}"
    if isinstance(dtype, pl.Struct):
        return "an object"
    if dtype == pl.Null:
        return "null"
    if dtype == pl.String:
        return "a string"
    return str(dtype)
