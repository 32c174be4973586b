"""Writing a long ratings export as CSV, Parquet, Stata ``.dta`` and SPSS ``.sav``, and its codebook.

Pure functions on the frame ``study.services.exports.export_ratings_long`` returns and on the
study's items (``instrument_library.study_items``); no database, no services. The service decides who
may export and records the export in the audit trail; this module decides what the files hold.

Stata and SPSS files (written with ``pyreadstat``) carry a variable label on every column and
value labels where the file format allows them:

- **Names.** Stata variable names are at most 32 characters, ASCII letters, digits and ``_``,
  not starting with a digit, and not one of Stata's reserved words; SPSS names are compared
  without case. ``stata_names`` maps every column to such a name (unchanged when it already
  is one: every long-format column is) and the codebook records the mapping.
- **Value labels only on whole numbers.** Stata labels integer values only, and one label set
  belongs to one variable. The long ``value`` column mixes items with different scales, so each
  item whose options are whole numbers also gets its own integer column ``v_<item>`` (the value
  on that item's rows, missing elsewhere) carrying the item's value labels; the blinding guess
  (``source_guess``) is labelled the same way. ``value_label`` holds each row's option label as
  text in every format.
- **Text.** Stata and SPSS have no missing text: a missing text cell is written as ``""``.
  Variable labels are cut to 80 characters (Stata's limit); the codebook keeps the full wording.
  Long text (free-text answers) is written as Stata ``strL`` where it exceeds 2,045 bytes.
- **Times.** ``created_at`` and ``submitted_at`` (UTC) are written at millisecond resolution
  (Stata's ``%tc``; SPSS stores seconds in a double).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from study.rendering import markdown_code, markdown_text
from study.spreadsheet import neutralise_formulas

FORMATS = ("csv", "parquet", "dta", "sav")
"""Export formats, each also the file suffix."""

FORMAT_NAMES = {
    "csv": "CSV (UTF-8, comma-separated, header row)",
    "parquet": "Apache Parquet",
    "dta": "Stata .dta (format 118, Stata 14 and later)",
    "sav": "SPSS .sav",
}

STATA_NAME_CHARS = 32
STATA_LABEL_CHARS = 80
STATA_STR_BYTES = 2045
"""Longest fixed-width Stata string (``str2045``); longer text is stored as ``strL``."""

STATA_RESERVED = frozenset(
    [
        "_all",
        "_b",
        "byte",
        "_coef",
        "_cons",
        "double",
        "float",
        "if",
        "in",
        "int",
        "long",
        "_n",
        "_N",
        "_pi",
        "_pred",
        "_rc",
        "_skip",
        "strL",
        "using",
        "with",
    ]
)
"""Stata's reserved names (Stata manual, [U] 11.3 Naming conventions); ``str1``...``str2045``
are reserved too (``_is_reserved``)."""

SPSS_RESERVED = frozenset(
    ["ALL", "AND", "BY", "EQ", "GE", "GT", "LE", "LT", "NE", "NOT", "OR", "TO", "WITH"]
)
"""SPSS reserved keywords, which cannot be variable names (compared without case)."""

ITEM_COLUMN_PREFIX = "v_"

GUESS_ITEM = ("source_guess", "source_guess")
"""(instrument key, item key) of the built-in blinding question."""

BASE_COLUMNS: dict[str, tuple[str, str]] = {
    "study": ("Study id", "the study"),
    "case": ("Case id", "the case (question or vignette) rated"),
    "arm": (
        "Arm of the answer rated",
        "the arm (an LLM at a pinned version, or a clinician group) that wrote the answer; "
        "empty for items rated once per case",
    ),
    "answer": ("Answer id", "the answer rated; empty for items rated once per case"),
    "rater": ("Rater id", "the rater (pseudonymous user id)"),
    "item": ("Item key", "the instrument item this row rates; see the items below"),
    "value": (
        "Rating (numeric)",
        "the rating's numeric value (option value or number); empty for text values",
    ),
    "value_text": (
        "Rating (text)",
        "a text value: the chosen response of a pairwise item (A, B, tie) or free text",
    ),
    "position": (
        "Presentation position",
        "where the answer was shown to the rater (1 = first, left); empty for items rated once "
        "per case",
    ),
    "label": (
        "Presentation label",
        "the neutral label the rater saw for the answer (Response A, Response B, ...)",
    ),
    "seconds": (
        "Seconds on task",
        "time on task of the whole assignment in seconds, measured on the server from the "
        "moment the case was first shown to its first submission",
    ),
    "revision": (
        "Revision of the rating",
        "1 for the first submission; each edit is a new revision and this row is the current one",
    ),
    "instrument": ("Instrument key", "the instrument the item belongs to"),
    "instrument_version": ("Instrument version", "the version of that instrument"),
    "created_at": ("Rating created (UTC)", "when this revision was created, UTC"),
    "submitted_at": ("Rating submitted (UTC)", "when this revision was submitted, UTC"),
    "chosen_answer": (
        "Answer chosen (pairwise)",
        "for a pairwise item: the answer behind the chosen label; empty for a tie",
    ),
    "chosen_arm": (
        "Arm chosen (pairwise)",
        "for a pairwise item: the arm of the chosen answer; empty for a tie",
    ),
    "value_label": (
        "Rating (option label)",
        "the label of the chosen option as the rater saw it; empty for numbers and free text",
    ),
    "source_guess": (
        "Blinding guess for this answer",
        "the rater's guess of who wrote this answer (built-in source_guess instrument: "
        "1 an AI model, 2 a clinician, 0 don't know); empty when not asked",
    ),
    "phase": (
        "Phase of the rating",
        "live, or repeat: the rater's second rating of the case, shown again after the "
        "protocol's washout (for intra-rater reliability; between-rater analyses use live rows "
        "only); calibration ratings are not exported",
    ),
    # rubric studies only (an item rated per criterion of the case): one row per criterion
    "criterion": ("Rubric criterion", "the key of the case's rubric criterion (c1, c2, ...)"),
    "criterion_text": ("Rubric criterion text", "what the criterion says, as the raters saw it"),
    "points": (
        "Points of the criterion",
        "the criterion's points (negative for behaviour to avoid); value 1 = met, 0 = not met",
    ),
    "criterion_tags": (
        "Tags of the criterion and its case",
        "the criterion's tags and its case's tags, ';'-separated (HealthBench scores per tag)",
    ),
    "criterion_unit": (
        "Answer x criterion",
        "answer:criterion, the unit raters agree on (python -m analysis rubric --unit)",
    ),
}
"""Every column of the long export: (variable label, description)."""

TIME_COLUMNS = ("created_at", "submitted_at")


# --- items -------------------------------------------------------------------------------------


def item_options(items: pl.DataFrame) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    """(instrument, version, item) -> its options [{value, label}] from ``study_items`` rows."""
    return {
        (row["instrument_key"], row["instrument_version"], row["item_key"]): (
            json.loads(row["options"]) if row["options"] else []
        )
        for row in items.iter_rows(named=True)
    }


def _whole(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and float(value) == int(value)
    )


def with_value_labels(frame: pl.DataFrame, items: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with ``value_label``: each row's option label (by numeric value, else text)."""
    rows = []
    for (instrument, version, item), options in item_options(items).items():
        for option in options:
            value = option.get("value")
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            rows.append(
                {
                    "instrument": instrument,
                    "instrument_version": version,
                    "item": item,
                    "_num": float(value) if numeric else None,
                    "_text": None if numeric else str(value),
                    "_label": str(option.get("label", "")),
                }
            )
    schema = {
        "instrument": pl.String,
        "instrument_version": pl.String,
        "item": pl.String,
        "_num": pl.Float64,
        "_text": pl.String,
        "_label": pl.String,
    }
    labels = pl.DataFrame(rows, schema=schema)
    keys = ["instrument", "instrument_version", "item"]
    by_num = labels.filter(pl.col("_num").is_not_null()).select(
        *keys, pl.col("_num").alias("value"), pl.col("_label").alias("_by_num")
    )
    by_text = labels.filter(pl.col("_text").is_not_null()).select(
        *keys, pl.col("_text").alias("value_text"), pl.col("_label").alias("_by_text")
    )
    out = frame.join(by_num, on=[*keys, "value"], how="left", maintain_order="left")
    out = out.join(by_text, on=[*keys, "value_text"], how="left", maintain_order="left")
    return out.with_columns(pl.coalesce("_by_num", "_by_text").alias("value_label")).drop(
        "_by_num", "_by_text"
    )


def labelled_items(items: pl.DataFrame) -> list[dict[str, Any]]:
    """Items whose option values are all whole numbers (they get a ``v_<item>`` column with value
    labels in .dta/.sav), in display order; the blinding question is left out (``source_guess``
    carries it). Each: instrument, version, item, labels {int: label}, level."""
    out = []
    for row in items.iter_rows(named=True):
        options = json.loads(row["options"]) if row["options"] else []
        if not options or not all(_whole(o.get("value")) for o in options):
            continue
        if (row["instrument_key"], row["item_key"]) == GUESS_ITEM:
            continue
        out.append(
            {
                "instrument": row["instrument_key"],
                "version": row["instrument_version"],
                "item": row["item_key"],
                "labels": {int(o["value"]): str(o.get("label", "")) for o in options},
                "level": row["level"],
                "prompt": row.get("prompt") or "",
            }
        )
    return out


def guess_labels(items: pl.DataFrame) -> dict[int, str]:
    """Value labels of the blinding guess (the built-in ``source_guess`` item), from the study's
    items when attached, else the built-in wording."""
    for row in items.iter_rows(named=True):
        if (row["instrument_key"], row["item_key"]) == GUESS_ITEM and row["options"]:
            return {int(o["value"]): str(o["label"]) for o in json.loads(row["options"])}
    return {1: "An AI model", 2: "A clinician", 0: "Don't know"}


# --- names -------------------------------------------------------------------------------------


def _is_reserved(name: str) -> bool:
    return (
        name in STATA_RESERVED
        or name.upper() in SPSS_RESERVED
        or re.fullmatch(r"str([1-9][0-9]{0,3})", name) is not None
    )


def stata_names(columns: Iterable[str]) -> dict[str, str]:
    """column -> a name valid in Stata and SPSS, unique without regard to case.

    Characters other than ASCII letters, digits and ``_`` become ``_``; a name starting with a
    digit gets a leading ``_``; a reserved word gets a trailing ``_``; names are cut to 32
    characters; a name taken already (ignoring case) gets ``_2``, ``_3``, ... within 32.

    >>> stata_names(["case", "value", "in", "2nd look"])
    {'case': 'case', 'value': 'value', 'in': 'in_', '2nd look': '_2nd_look'}
    >>> sorted(stata_names(["a" * 40, "A" * 40]).values())
    ['AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA_2', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa']
    """
    columns = list(columns)
    return dict(zip(columns, _unique_names(columns), strict=True))


def _unique_names(columns: Sequence[str]) -> list[str]:
    """``stata_names``' rule over a sequence that may repeat a column (each gets its own name)."""
    out: list[str] = []
    taken: set[str] = set()
    for column in columns:
        base = re.sub(r"[^A-Za-z0-9_]", "_", column.encode("ascii", "replace").decode()) or "_"
        if base[0].isdigit():
            base = "_" + base
        if _is_reserved(base):
            base += "_"
        base = base[:STATA_NAME_CHARS]
        name, n = base, 1
        while name.lower() in taken:
            n += 1
            suffix = f"_{n}"
            name = base[: STATA_NAME_CHARS - len(suffix)] + suffix
        taken.add(name.lower())
        out.append(name)
    return out


def item_column_names(labelled: Sequence[Mapping[str, Any]], base: Iterable[str]) -> list[str]:
    """The ``v_<item>`` column of each labelled item, unique against ``base`` and each other."""
    base = list(base)
    names = _unique_names([*base, *(ITEM_COLUMN_PREFIX + i["item"] for i in labelled)])
    return names[len(base) :]


# --- the statistical-package frame ------------------------------------------------------------


def package_frame(frame: pl.DataFrame, items: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The long export as Stata and SPSS get it, and what describes it.

    Returns (frame, layout). The frame has the long export's columns renamed by ``stata_names``,
    then one ``v_<item>`` Int32 column per labelled item; text nulls as ``""``; times at
    millisecond resolution. ``layout``: ``names`` (export column -> file name), ``item_columns``
    (file name -> the labelled item dict), ``value_labels`` (file name -> {int: label}),
    ``column_labels`` (file name -> label of at most 80 characters), ``measure`` (file name ->
    SPSS measurement level).
    """
    base = list(frame.columns)
    names = stata_names(base)
    labelled = labelled_items(items)
    item_names = item_column_names(labelled, base)
    extra = [
        pl.when(
            (pl.col("instrument") == spec["instrument"])
            & (pl.col("instrument_version") == spec["version"])
            & (pl.col("item") == spec["item"])
        )
        .then(pl.col("value").round(0).cast(pl.Int32))
        .otherwise(None)
        .alias(name)
        for spec, name in zip(labelled, item_names, strict=True)
    ]
    out = frame.with_columns(extra) if extra else frame
    out = out.with_columns(
        pl.col(pl.String).fill_null(""),
        *(pl.col(c).dt.truncate("1ms") for c in TIME_COLUMNS if c in out.columns),
        *(
            pl.col(c).cast(pl.Int32)
            for c in ("position", "revision", "source_guess")
            if c in out.columns
        ),
    ).rename(names)
    column_labels = {
        names[c]: _cut(BASE_COLUMNS.get(c, (c, ""))[0], STATA_LABEL_CHARS) for c in base
    }
    value_labels: dict[str, dict[int, str]] = {}
    measure: dict[str, str] = {}
    if "source_guess" in names:
        value_labels[names["source_guess"]] = guess_labels(items)
        measure[names["source_guess"]] = "nominal"
    item_columns = {}
    for spec, name in zip(labelled, item_names, strict=True):
        item_columns[name] = spec
        column_labels[name] = _cut(f"{spec['item']}: {spec['prompt']}", STATA_LABEL_CHARS)
        value_labels[name] = {k: _cut(v, 32_000) for k, v in spec["labels"].items()}
        measure[name] = {"nominal": "nominal", "ordinal": "ordinal"}.get(spec["level"], "scale")
    for name in ("value", "seconds", "revision", "position"):
        if name in names:
            measure.setdefault(names[name], "scale" if name in ("value", "seconds") else "ordinal")
    return out, {
        "names": names,
        "item_columns": item_columns,
        "value_labels": value_labels,
        "column_labels": column_labels,
        "measure": measure,
    }


def _cut(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- writing -----------------------------------------------------------------------------------


def write(
    frame: pl.DataFrame,
    items: pl.DataFrame,
    path: Path,
    fmt: str,
    *,
    study: str,
    audit_head: str,
    raw_csv: bool = False,
) -> None:
    """Write the long export ``frame`` to ``path`` in ``fmt`` (one of ``FORMATS``).

    CSV: a text cell a spreadsheet would run as a formula gets a leading ``'`` unless
    ``raw_csv``. Parquet: the audit head and study in the file metadata (``clinval.audit_head``,
    ``clinval.study``). Stata and SPSS: ``package_frame``'s columns with variable and value
    labels; the file label names the study and the audit head.
    """
    import pyreadstat

    if fmt == "csv":
        (frame if raw_csv else neutralise_formulas(frame)).write_csv(path)
    elif fmt == "parquet":
        frame.write_parquet(
            path, metadata={"clinval.audit_head": audit_head, "clinval.study": study}
        )
    elif fmt in ("dta", "sav"):
        data, layout = package_frame(frame, items)
        label = _cut(f"Clinval ratings of {study}; audit head {audit_head[:16]}", STATA_LABEL_CHARS)
        if fmt == "dta":
            pyreadstat.write_dta(
                data,
                str(path),
                file_label=label,
                column_labels=layout["column_labels"],
                variable_value_labels=layout["value_labels"],
                version=15,
            )
        else:
            pyreadstat.write_sav(
                data,
                str(path),
                file_label=label,
                column_labels=layout["column_labels"],
                variable_value_labels=layout["value_labels"],
                variable_measure=layout["measure"],
                note=[f"Clinval export of study {study[:50]}", "audit chain head:", audit_head],
            )
    else:
        raise ValueError(f"unknown export format {fmt!r}; one of {', '.join(FORMATS)}")


def zip_folder(folder: Path) -> bytes:
    """The files of ``folder`` (not its subfolders) as one zip, sorted by name, deflated."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in folder.iterdir() if p.is_file()):
            archive.write(path, arcname=path.name)
    return buffer.getvalue()


def sha256_file(path: Path) -> str:
    """SHA-256 of the file's bytes, as 64 hex digits."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- the codebook ------------------------------------------------------------------------------

_POLARS_TYPES = {
    pl.String: "text",
    pl.Float64: "number (double)",
    pl.Int32: "whole number",
    pl.Int64: "whole number",
    pl.Int8: "whole number",
}


def _type_of(dtype: pl.DataType) -> str:
    if isinstance(dtype, pl.Datetime):
        return "date-time (UTC)"
    return _POLARS_TYPES.get(type(dtype), _POLARS_TYPES.get(dtype, str(dtype)))


def codebook(
    frame: pl.DataFrame,
    items: pl.DataFrame,
    instruments: Sequence[Mapping[str, Any]],
    *,
    study: str,
    formats: Sequence[str],
    raw_csv: bool = False,
) -> dict[str, Any]:
    """The codebook of the long export in ``formats``: a JSON-able dict.

    ``variables``: one entry per column of any of the files, each with ``name`` (in CSV and
    Parquet), ``stata_spss_name``, ``formats`` (the files holding it), ``type``, ``label``,
    ``description`` and, where they have them, ``values`` ([{value, label}]) and ``item`` (the
    labelled item behind a ``v_<item>`` column). ``items``: every item of the study's
    instruments with its wording, type, level, direction, scope, options, instrument and
    version. ``instruments``: key, version, title, citation, content hash. ``naming``: how the
    names of .dta/.sav variables were made.
    """
    text_formats = [f for f in formats if f in ("csv", "parquet")]
    package_formats = [f for f in formats if f in ("dta", "sav")]
    data, layout = package_frame(frame, items)
    variables = []
    for column in frame.columns:
        label, description = BASE_COLUMNS.get(column, (column, ""))
        entry: dict[str, Any] = {
            "name": column,
            "stata_spss_name": layout["names"][column] if package_formats else None,
            "formats": list(formats),
            "type": _type_of(frame.schema[column]),
            "label": label,
            "description": description,
        }
        name = layout["names"][column]
        if name in layout["value_labels"]:
            entry["values"] = _values(layout["value_labels"][name])
        variables.append(entry)
    for name, spec in layout["item_columns"].items():
        variables.append(
            {
                "name": None,
                "stata_spss_name": name,
                "formats": package_formats,
                "type": "whole number",
                "label": layout["column_labels"][name],
                "description": (
                    f"the rating of item '{spec['item']}' ({spec['instrument']} "
                    f"{spec['version']}) on its rows, missing on other items' rows; the same "
                    "number as value, with the item's value labels"
                ),
                "values": _values(spec["labels"]),
                "item": {
                    "instrument": spec["instrument"],
                    "version": spec["version"],
                    "key": spec["item"],
                },
            }
        )
    if not package_formats:
        variables = [v for v in variables if v["name"] is not None]
    if not text_formats:
        for v in variables:
            v["formats"] = [f for f in v["formats"] if f in package_formats]
    return {
        "study": study,
        "formats": {f: FORMAT_NAMES[f] for f in formats},
        "rows": frame.height,
        "unit_of_observation": (
            "one row per current submitted rating: one rater's value for one item on one "
            "answer shown (items rated per answer) or on one case (items rated once per case)"
        ),
        "variables": variables,
        "items": _items(items),
        "instruments": [dict(i) for i in instruments],
        "csv_text": (
            "text cells are written as stored"
            if raw_csv
            else "a text cell that a spreadsheet would run as a formula (starting with =, +, -, "
            "@, a tab or a carriage return) is written with a leading ' (only in ratings.csv)"
        ),
        "naming": (
            "CSV and Parquet keep the names above. In .dta and .sav files every name is a valid "
            "Stata and SPSS name (at most 32 ASCII letters, digits or _, not starting with a "
            "digit, no reserved word, unique ignoring case): other characters become _, a "
            "reserved word gets a trailing _, and a clash gets _2, _3, ... The long format's "
            "names are valid as they are. Each item whose options are whole numbers also gets "
            f"a column {ITEM_COLUMN_PREFIX}<item> holding its rating with the item's value "
            "labels (Stata labels whole numbers only, one label set per variable). Missing "
            "text is an empty string in .dta and .sav (neither has missing text); variable "
            "labels are cut to 80 characters (Stata's limit); times are UTC at millisecond "
            "resolution."
        ),
    }


def _values(labels: Mapping[int, str]) -> list[dict[str, Any]]:
    return [{"value": k, "label": v} for k, v in sorted(labels.items())]


def _items(items: pl.DataFrame) -> list[dict[str, Any]]:
    out = []
    for row in items.iter_rows(named=True):
        definition = json.loads(row["definition"]) if row["definition"] else {}
        out.append(
            {
                "instrument": row["instrument_key"],
                "instrument_version": row["instrument_version"],
                "key": row["item_key"],
                "prompt": row.get("prompt") or definition.get("prompt", ""),
                "help": definition.get("help", ""),
                "type": row["type"],
                "level": row["level"],
                "direction": row["direction"],
                "scope": row["scope"],
                "required": bool(row["required"]),
                "options": json.loads(row["options"]) if row["options"] else [],
            }
        )
    return out


def codebook_markdown(book: Mapping[str, Any]) -> str:
    """The codebook as Markdown: variables, then items, then instruments and naming.

    Every text that comes from a file or a form (study name, wording, labels, titles,
    citations) goes through ``markdown_text`` or ``markdown_code``: inert in any viewer."""
    cell = markdown_text
    code = markdown_code

    lines = [
        f"# Codebook: ratings of study {cell(book['study'])}",
        "",
        f"Unit of observation: {book['unit_of_observation']}. Rows: {book['rows']:,}.",
        "",
        "Files: " + "; ".join(f"`ratings.{k}` ({v})" for k, v in book["formats"].items()) + ".",
        "",
        "## Variables",
        "",
        "| name | Stata/SPSS name | files | type | label | description | values |",
        "|---|---|---|---|---|---|---|",
    ]
    for v in book["variables"]:
        values = "; ".join(f"{x['value']} = {cell(x['label'])}" for x in v.get("values", []))
        lines.append(
            "| "
            + " | ".join(
                [
                    code(v["name"]) if v["name"] else "—",
                    code(v["stata_spss_name"]) if v["stata_spss_name"] else "—",
                    ", ".join(v["formats"]),
                    v["type"],
                    cell(v["label"]),
                    cell(v["description"]),
                    values,
                ]
            )
            + " |"
        )
    lines += ["", "## Items", ""]
    for item in book["items"]:
        lines += [
            f"### {code(item['key'])} ({cell(item['instrument'])} "
            f"{cell(item['instrument_version'])})",
            "",
            f"- wording: {cell(item['prompt'])}",
        ]
        if item["help"]:
            lines.append(f"- help shown: {cell(item['help'])}")
        lines.append(
            f"- type {item['type']}, level {item['level']}, direction {item['direction']}, "
            f"rated per {item['scope']}, {'required' if item['required'] else 'optional'}"
        )
        if item["options"]:
            lines.append(
                "- values: "
                + "; ".join(
                    f"{cell(o.get('value'))} = {cell(o.get('label'))}" for o in item["options"]
                )
            )
        lines.append("")
    lines += ["## Instruments", ""]
    for inst in book["instruments"]:
        lines.append(
            f"- {code(inst.get('key'))} version {cell(inst.get('version'))}: "
            f"{cell(inst.get('title'))}; content hash {code(inst.get('content_hash'))}"
            + (f"; source: {cell(inst.get('citation'))}" if inst.get("citation") else "")
        )
    lines += ["", "## Names in .dta and .sav files", "", book["naming"], ""]
    if "csv" in book["formats"]:
        lines += [
            "## Text in ratings.csv",
            "",
            book["csv_text"][0].upper() + book["csv_text"][1:] + ".",
            "",
        ]
    return "\n".join(lines)


def results_records(table: pl.DataFrame) -> list[dict[str, Any]]:
    """The results table's rows as JSON-ready dicts (non-finite numbers as null)."""
    return [
        {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
        for row in table.iter_rows(named=True)
    ]


def results_json(table: pl.DataFrame) -> str:
    """The results table as ``{"results": [row, ...]}`` (indented JSON, one object per row,
    keys as ``analyses.RESULT_COLUMNS``): the bundle's results.json, and what ``python -m study
    results --format json`` prints, byte for byte."""
    return json.dumps({"results": results_records(table)}, indent=2, ensure_ascii=False) + "\n"


def results_csv(table: pl.DataFrame) -> str:
    """The results table as CSV with a header row: the bundle's results.csv, and what ``python
    -m study results --format csv`` prints."""
    return table.write_csv()
