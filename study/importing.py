"""Read case, arm and answer files into validated polars frames, or say everything that is wrong.

Pure Python + polars (no DuckDB): ``study.services`` calls these readers and writes the frames.
Each reader returns a frame with fixed columns and types, or raises
:class:`~study.errors.ValidationError` whose ``problems`` list *every* problem found, each located
as ``Problem(file, row, column, reason)``. Nothing is half-read: one problem anywhere rejects the
whole file.

This module holds the readers callers use; the work beneath them is split by job:
``study.import_schemas`` declares each format's fields and limits, ``study.import_files`` reads a
file into an all-text frame, ``study.import_checks`` is the vectorised check engine and
``study.import_problems`` words, caps and orders the problems.

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

import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import polars as pl

from study import case_json
from study.canonical import canonical_json
from study.errors import StudyError
from study.import_checks import (
    Checks,
    blank,
    duplicate_check,
    field_checks,
    finish_generated_at,
    finish_json,
    finish_parameters,
    finish_tags,
    id_series,
    not_recorded,
    not_recorded_list,
    optional,
    take_not_recorded,
    with_blank_flags,
)
from study.import_files import FileReader
from study.import_problems import show_value

# the formats' names, declared in study.import_schemas, are imported from here by callers
from study.import_schemas import (  # noqa: F401
    ANSWER_COLUMNS,
    ANSWER_FIELDS,
    ARM_COLUMNS,
    ARM_FIELDS,
    ARM_KINDS,
    CASE_COLUMNS,
    CASE_FIELDS,
    CASE_SCHEMA,
    MAX_ID_CHARS,
    MAX_LIST_CHARS,
    MAX_PROBLEMS_PER_KIND,
    MAX_SHORT_CHARS,
    MAX_TEXT_CHARS,
    NOT_RECORDABLE,
    NOT_RECORDED,
    RATING_FIELDS,
    ROW,
    SUFFIXES,
    TAGS_LIST,
    Field,
    Table,
    default_max_bytes,
)

_Reader = FileReader  # the name tests patch a reader method through


def read_cases(path: str | Path | Table, *, max_bytes: int | None = None) -> pl.DataFrame:
    """Read and validate a cases file.

    Returns one row per case with columns ``case_id`` (str), ``question`` (str), ``context``
    (str | null), ``specialty`` (str | null), ``tags`` (list[str], possibly empty),
    ``conversation`` and ``criteria`` (canonical JSON text | null; see
    ``study.case_json.conversation_problems`` and ``criteria_problems``), in file order. A
    conversation case may leave ``question`` empty: it is then the conversation's last user turn.
    Raises ``ValidationError`` listing every problem.
    """
    reader = FileReader(path, CASE_FIELDS, max_bytes)
    df = with_blank_flags(reader.frame, CASE_FIELDS)
    checks = Checks(reader)
    field_checks(checks, df, CASE_FIELDS)
    duplicate_check(checks, df, "case_id", "case_id")
    df = finish_tags(checks, df)
    df = finish_json(checks, df, "conversation", case_json.canonical_conversation)
    df = finish_json(checks, df, "criteria", case_json.canonical_criteria)
    checks.raise_if_any()
    return df.select(
        pl.col("case_id"),
        pl.when(blank("question"))
        .then(
            pl.col("conversation").map_elements(
                case_json.last_user_turn, return_dtype=pl.String, skip_nulls=True
            )
        )
        .otherwise(pl.col("question"))
        .alias("question"),
        optional("context"),
        optional("specialty"),
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
    reader = FileReader(path, ARM_FIELDS, max_bytes)
    df = with_blank_flags(take_not_recorded(reader.frame, ARM_FIELDS), ARM_FIELDS)
    checks = Checks(reader)
    field_checks(checks, df, ARM_FIELDS)
    duplicate_check(checks, df, "arm_id", "arm_id")
    kind = pl.col("kind")
    checks.add(
        "kind",
        kind.is_not_null() & ~kind.is_in(ARM_KINDS) & kind.str.contains(r"\S"),
        lambda v: f"kind {show_value(v)} is not one of {', '.join(ARM_KINDS)} (lower case)",
    )
    for column in ("model_name", "model_version"):
        checks.add(
            column,
            (kind == "llm") & blank(column) & ~not_recorded(column),
            f"an llm arm needs its {column} (the model is pinned per arm; write "
            f"'{NOT_RECORDED}' if the source never recorded it)",
        )
        checks.add(
            column,
            (kind == "clinician") & (~blank(column) | not_recorded(column)),
            lambda v, c=column: (
                f"a clinician arm has no {c}; leave it empty (got {show_value(v or NOT_RECORDED)})"
            ),
        )
    checks.run(df)
    checks.raise_if_any()
    model = ("model_name", "model_version")
    return df.select(
        pl.col("arm_id"),
        pl.col("kind"),
        pl.when(blank("label")).then(pl.col("arm_id")).otherwise(pl.col("label")).alias("label"),
        # the arms table requires an LLM arm's model as text: the marker stays, listed as unknown
        *(
            pl.when(not_recorded(c)).then(pl.lit(NOT_RECORDED)).otherwise(optional(c)).alias(c)
            for c in model
        ),
        optional("author_role"),
        not_recorded_list({c: pl.lit(True) for c in (*model, "author_role")}),
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
    known = id_series(known_case_ids)
    reader = FileReader(path, ANSWER_FIELDS, max_bytes)
    checks = Checks(reader)
    df = with_blank_flags(take_not_recorded(reader.frame, ANSWER_FIELDS), ANSWER_FIELDS)
    field_checks(checks, df, ANSWER_FIELDS)

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
            optional("answer_id"), pl.col("case_id") + pl.lit(":") + pl.col("arm_id")
        ).alias("answer_id"),
    )
    is_llm = pl.col("__arm_kind") == "llm"
    is_clin = pl.col("__arm_kind") == "clinician"
    has = {f.name: ~blank(f.name) for f in ANSWER_FIELDS}
    known_arms = ", ".join(show_value(a) for a in arm_info["arm_id"].head(20)) or "none yet"

    checks.add(
        "case_id",
        has["case_id"] & ~pl.col("case_id").is_in(known.implode()),
        lambda v: f"unknown case {show_value(v)}: import it with the cases first",
    )
    checks.add(
        "arm_id",
        has["arm_id"] & pl.col("__arm_kind").is_null(),
        lambda v: f"unknown arm {show_value(v)}; the study's arms are: {known_arms}",
    )
    duplicate_check(checks, df, "answer_id", "answer_id")
    duplicate_check(checks, df, ["case_id", "arm_id"], "arm_id", what="answer for this case")
    for column in ("model_name", "model_version"):
        arm_value = pl.col(f"__arm_{column}")
        checks.add(
            column,
            is_llm & has[column] & arm_value.is_not_null() & (pl.col(column) != arm_value),
            lambda row, c=column: (
                f"{c} {show_value(row[c])} differs from the arm's pinned "
                f"{show_value(row[f'__arm_{c}'])}; an arm is one model at one version"
            ),
            columns=[column, f"__arm_{column}"],
        )
    for column in ("model_name", "model_version", "system_prompt", "parameters"):
        given = has[column] | not_recorded(column) if column in NOT_RECORDABLE else has[column]
        checks.add(
            column,
            is_clin & given,
            f"a clinician answer has no {column}; leave it empty or use an llm arm",
        )
    for column, kind in (("generated_at", is_clin), ("prompt", is_clin)):
        checks.add(
            column,
            kind & not_recorded(column),
            f"a clinician answer has no {column}; leave it empty",
        )
    for column in ("author_id", "author_role"):
        checks.add(
            column,
            is_llm & not_recorded(column),
            f"an LLM answer has no {column}; leave it empty",
        )
    unless = f" (write '{NOT_RECORDED}' if the source never recorded it)"
    known_or_unknown = {c: has[c] | not_recorded(c) for c in NOT_RECORDABLE}
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

    df = finish_generated_at(checks, df)
    df = finish_parameters(checks, df)
    checks.raise_if_any()
    return df.select(
        pl.col("answer_id"),
        pl.col("case_id"),
        pl.col("arm_id"),
        pl.col("text"),
        pl.coalesce(optional("model_name"), pl.when(is_llm).then(pl.col("__arm_model_name"))),
        pl.coalesce(optional("model_version"), pl.when(is_llm).then(pl.col("__arm_model_version"))),
        pl.col("generated_at"),
        optional("prompt"),
        optional("system_prompt"),
        pl.col("parameters"),
        pl.when(~not_recorded("author_role"))
        .then(
            pl.coalesce(optional("author_role"), pl.when(is_clin).then(pl.col("__arm_author_role")))
        )
        .alias("author_role"),
        optional("author_id"),
        not_recorded_list(
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
    known = id_series(known_case_ids)
    rater_ids = pl.Series(list(raters), dtype=pl.String)
    answered = answers.select(pl.col("case_id").cast(pl.String), pl.col("arm_id").cast(pl.String))
    arm_ids = answered.get_column("arm_id").unique().sort()
    reader = FileReader(path, RATING_FIELDS, max_bytes)
    checks = Checks(reader)
    df = with_blank_flags(reader.frame, RATING_FIELDS)
    field_checks(checks, df, RATING_FIELDS)
    has = {f.name: ~blank(f.name) for f in RATING_FIELDS}
    scope = {key: item.scope for key, item in items.items()}
    df = df.with_columns(
        pl.col("item").replace_strict(scope, default=None, return_dtype=pl.String).alias("__scope"),
        pl.struct("case_id", "arm_id").is_in(answered.to_struct().implode()).alias("__answered"),
    )
    checks.add(
        "case_id",
        has["case_id"] & ~pl.col("case_id").is_in(known.implode()),
        lambda v: f"unknown case {show_value(v)}: the study has no such case",
    )
    checks.add(
        "arm_id",
        has["arm_id"] & ~pl.col("arm_id").is_in(arm_ids.implode()),
        lambda v: (
            f"unknown arm {show_value(v)}; arms with answers: "
            + (", ".join(show_value(a) for a in arm_ids.head(20)) or "none")
        ),
    )
    checks.add(
        "arm_id",
        has["arm_id"]
        & pl.col("arm_id").is_in(arm_ids.implode())
        & pl.col("case_id").is_in(known.implode())
        & ~pl.col("__answered"),
        lambda row: (
            f"arm {show_value(row['arm_id'])} has no answer for case {show_value(row['case_id'])}"
        ),
        columns=["arm_id", "case_id"],
    )
    checks.add(
        "rater_id",
        has["rater_id"] & ~pl.col("rater_id").is_in(rater_ids.implode()),
        lambda v: (
            f"unknown rater {show_value(v)}: raters are people of the study with the rater role "
            "(add them first, e.g. python -m study add-raters)"
        ),
    )
    checks.add(
        "item",
        has["item"] & pl.col("__scope").is_null(),
        lambda v: (
            f"unknown item {show_value(v)}; the study's items are: {', '.join(items) or 'none'}"
        ),
    )
    checks.add(
        "arm_id",
        (pl.col("__scope") == "answer") & ~has["arm_id"],
        lambda row: f"item {show_value(row['item'])} is rated per answer: give the arm_id it rated",
        columns=["item"],
    )
    checks.add(
        "arm_id",
        (pl.col("__scope") == "case") & has["arm_id"],
        lambda row: f"item {show_value(row['item'])} is rated once per case: leave arm_id empty",
        columns=["item"],
    )
    # a per-case item has no arm: a stand-in that no arm id can be (ids have no spaces), so
    # that two per-case ratings of one item are duplicates too
    df = df.with_columns(pl.coalesce(optional("arm_id"), pl.lit("(per case)")).alias("__arm"))
    duplicate_check(checks, df, ["case_id", "rater_id", "item", "__arm"], "item", what="rating")
    checks.run(df)
    df = finish_generated_at(checks, df, "rated_at")
    df = _finish_rating_values(checks, df, items)
    checks.raise_if_any()
    return df.select(
        pl.col("case_id"),
        optional("arm_id"),
        pl.col("rater_id"),
        pl.col("item"),
        pl.col("__value_num").alias("value_num"),
        pl.col("__value_text").alias("value_text"),
        pl.col("rated_at")
        .map_elements(_utc_instant, return_dtype=pl.Datetime("us"))
        .alias("rated_at"),
        pl.col("__seconds").alias("seconds"),
        optional("comment"),
        pl.col(ROW).alias("row"),
    )


def _finish_rating_values(
    checks: Checks, df: pl.DataFrame, items: Mapping[str, Any]
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
                    raise ValueError(f"item '{key}' takes a number, got {show_value(given)}")
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
        ~blank("seconds")
        & (
            pl.col("__seconds").is_null()
            | ~pl.col("__seconds").is_finite()
            | (pl.col("__seconds") < 0)
        ),
        lambda v: f"seconds {show_value(v)} is not a number of seconds >= 0",
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
