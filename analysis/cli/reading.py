"""How ``python -m analysis`` reads its input: a CSV or Parquet file, refused when too large or
binary, with the common missing-value markers read as missing, and repeated ratings left out."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from analysis import columns as C
from analysis._pivot import MISSING_TOKENS
from analysis.errors import AnalysisError, first_line

PARQUET_SUFFIXES = (".parquet", ".pq")
MAX_FILE_MB = 200
"""Largest input file, in megabytes (as the study importers' default): a bigger file is refused
before it is read, not after it has cost minutes and gigabytes."""


def read_table(path: str) -> pl.DataFrame:
    """Read a CSV or Parquet file into polars; every failure becomes one ``AnalysisError`` line."""
    file = Path(path)
    if not file.exists():
        raise AnalysisError(f"file not found: {path}")
    if not file.is_file():
        raise AnalysisError(f"not a file: {path}")
    size = file.stat().st_size
    if size > MAX_FILE_MB * 1_000_000:
        raise AnalysisError(
            f"{path} is {size / 1_000_000:,.0f} MB; files up to {MAX_FILE_MB} MB are read"
        )
    suffix = file.suffix.lower()
    if suffix not in PARQUET_SUFFIXES:
        with file.open("rb") as handle:
            if b"\x00" in handle.read(65_536):
                raise AnalysisError(f"{path} is not a text (CSV) file: it holds NUL bytes")
    try:
        if suffix in PARQUET_SUFFIXES:
            frame = pl.read_parquet(file)
            # The same markers as in CSV, so a file means the same whatever its format.
            frame = frame.with_columns(
                pl.when(pl.col(pl.String).is_in(MISSING_TOKENS))
                .then(None)
                .otherwise(pl.col(pl.String))
                .name.keep()
            )
        else:
            # Whole-file type inference: a column that turns textual on row 10,001 must not
            # fail half-way through the parse. R's write.csv writes NA, pandas NaN: missing,
            # never a category of its own (and a numeric column stays numeric).
            frame = pl.read_csv(
                file,
                separator="\t" if suffix == ".tsv" else ",",
                infer_schema_length=None,
                null_values=list(MISSING_TOKENS),
            )
    except Exception as exc:  # polars/pyarrow raise many types for unreadable input
        kind = "Parquet" if suffix in PARQUET_SUFFIXES else "CSV"
        raise AnalysisError(f"cannot read {path} as {kind}: {first_line(exc)}") from exc
    if frame.width == 0:
        raise AnalysisError(f"{path} has no columns")
    return frame


def first_ratings(frame: pl.DataFrame) -> pl.DataFrame:
    """The file's rows without repeats: a Clinval export's ``phase`` column marks a rater's
    second rating of a case after a washout ("repeat"), which would count that rater twice on
    one unit; every statistic here compares raters or arms, so it reads the first ratings."""
    if C.PHASE not in frame.columns or frame.schema[C.PHASE] != pl.String:
        return frame
    return frame.filter(pl.col(C.PHASE).is_null() | (pl.col(C.PHASE) != "repeat"))
