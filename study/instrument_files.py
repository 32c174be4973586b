"""Read an instrument file (TOML or JSON) into a checked ``Instrument``.

The fields of a file are told in ``study.instruments``; the checks are the instrument's own.
JSON NaN/Infinity and a field given twice in one object are refused, as TOML refuses them.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from study.errors import InstrumentError, NotFoundError
from study.instrument_definition import Instrument

MAX_FILE_BYTES = 1_000_000
"""The largest instrument file read, in bytes."""


def parse_instrument(text: str | bytes, *, suffix: str, source: str = "<instrument>") -> Instrument:
    """Parse an instrument from TOML (``suffix=".toml"``) or JSON (``".json"``) text or bytes.

    For uploads that arrive as bytes rather than a path; ``source`` names them in errors.
    Syntax errors report the line and column.
    """
    suffix = suffix.lower()
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InstrumentError(
                f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})"
            ) from None
    text = text.removeprefix("\ufeff")
    if suffix == ".toml":
        try:
            data: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InstrumentError(f"{source}: TOML syntax error: {exc}") from None
    elif suffix == ".json":
        try:
            data = json.loads(
                text,
                parse_constant=_reject_json_constant,
                object_pairs_hook=_json_object_without_duplicates,
            )
        except json.JSONDecodeError as exc:
            raise InstrumentError(
                f"{source}: JSON syntax error at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            ) from None
        except _JsonContentError as exc:
            raise InstrumentError(f"{source}: {exc}") from None
    else:
        raise InstrumentError(
            f"{source}: unsupported file type {suffix or '(none)'!r}; use .toml or .json"
        )
    return Instrument.from_dict(data, source=source)


def load_instrument(path: str | Path, *, max_bytes: int = MAX_FILE_BYTES) -> Instrument:
    """Read and validate an instrument file (``.toml`` or ``.json``, chosen by extension).

    Errors name the file, the item and the field; a missing file raises ``NotFoundError``.
    """
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise InstrumentError(
            f"{file}: unsupported file type {suffix or '(none)'!r}; use .toml or .json"
        )
    try:
        size = file.stat().st_size
    except FileNotFoundError:
        raise NotFoundError(f"{file}: no such file") from None
    if size > max_bytes:
        raise InstrumentError(
            f"{file}: the file is {size} bytes; instrument files are limited to {max_bytes}"
        )
    return parse_instrument(file.read_bytes(), suffix=suffix, source=str(file))


class _JsonContentError(ValueError):
    pass


def _reject_json_constant(name: str) -> Any:
    raise _JsonContentError(f"{name} is not allowed in an instrument file")


def _json_object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name in out:
            raise _JsonContentError(f"duplicate field {name!r} in one JSON object")
        out[name] = value
    return out
