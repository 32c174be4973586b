"""The columns of each importable file: its fields, how each is checked, and the limits.

The cases, arms, answers and ratings formats are declared here once (``CASE_FIELDS`` ...) as
``Field(name, required, kind)``; ``study.import_files`` reads a file against them and
``study.import_checks`` checks its values. What each column means is told in ``study.importing``.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from study import settings

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
SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}

ROW = "__row"
"""The column that carries each row's place in its file (1-based), from reading through every
check (and in a ``Table`` frame); never a user column."""
TAGS_LIST = "__tags_list"
"""The column that carries tags given as a list (JSON, Parquet, a ``Table``), before trimming."""

MAX_LIST_CHARS = 1_000_000
"""Longest conversation or criteria list, as JSON text (a long chat is many turns)."""


class Kind:
    """Field kinds: how a value is checked (the strings are what ``Field.kind`` holds)."""

    ID = "id"
    TEXT = "text"
    SHORT = "short"
    TAGS = "tags"
    DATE = "date"
    JSON = "json"
    VALUE = "value"  # text, or a number in JSONL and Parquet (a rating's value, seconds on task)
    # a JSON array: given as JSON text in CSV, an array in JSONL, a list of structs or JSON text
    # in Parquet (a case's conversation and its rubric criteria)
    JSON_LIST = "json_list"


@dataclass(frozen=True, slots=True)
class Field:
    """One column of an input format: its name, whether every row needs it, and its kind."""

    name: str
    required: bool
    kind: str
    unless: str | None = None  # a required field may be left empty where this field is given


CASE_FIELDS = (
    Field("case_id", True, Kind.ID),
    Field("question", True, Kind.TEXT, unless="conversation"),  # a conversation's last user turn
    Field("context", False, Kind.TEXT),
    Field("specialty", False, Kind.SHORT),
    Field("tags", False, Kind.TAGS),
    Field("conversation", False, Kind.JSON_LIST),
    Field("criteria", False, Kind.JSON_LIST),
)
ARM_FIELDS = (
    Field("arm_id", True, Kind.ID),
    Field("kind", True, Kind.SHORT),
    Field("label", False, Kind.SHORT),
    Field("model_name", False, Kind.SHORT),
    Field("model_version", False, Kind.SHORT),
    Field("author_role", False, Kind.SHORT),
)
ANSWER_FIELDS = (
    Field("answer_id", False, Kind.ID),
    Field("case_id", True, Kind.ID),
    Field("arm_id", True, Kind.ID),
    Field("text", True, Kind.TEXT),
    Field("model_name", False, Kind.SHORT),
    Field("model_version", False, Kind.SHORT),
    Field("generated_at", False, Kind.DATE),
    Field("prompt", False, Kind.TEXT),
    Field("system_prompt", False, Kind.TEXT),
    Field("parameters", False, Kind.JSON),
    Field("author_role", False, Kind.SHORT),
    Field("author_id", False, Kind.ID),
)

RATING_FIELDS = (
    Field("case_id", True, Kind.ID),
    Field("arm_id", False, Kind.ID),
    Field("rater_id", True, Kind.ID),
    Field("item", True, Kind.ID),
    Field("value", True, Kind.VALUE),
    Field("rated_at", False, Kind.DATE),
    Field("seconds", False, Kind.VALUE),
    Field("comment", False, Kind.TEXT),
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


CASE_SCHEMA = {
    f.name: pl.List(pl.String) if f.kind == Kind.TAGS else pl.String for f in CASE_FIELDS
}
"""The column types of a cases frame as ``study.importing.read_cases`` returns it (``tags`` a
list of text, every other column text), in ``CASE_COLUMNS`` order."""


def default_max_bytes() -> int:
    """``CLINVAL_MAX_IMPORT_MB`` in bytes (MiB)."""
    return int(settings.get("CLINVAL_MAX_IMPORT_MB")) * 1024 * 1024
