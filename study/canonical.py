"""Canonical JSON and content hashes: equal values give equal text, and so equal digests.

The one definition used for protocol hashes, instrument versions, audit payloads and event
hashes. Keys are sorted, there is no white space, UTF-8 is kept as text and NaN is refused, so
the digest of a value does not depend on dict order or on the platform.

>>> canonical_json({"b": 1, "a": [1.5, "é"]})
'{"a":[1.5,"é"],"b":1}'
>>> content_hash({"a": 1}) == content_hash({"a": 1})
True
>>> sha256_hex("abc")
'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from decimal import Decimal
from pathlib import PurePath
from typing import Any


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="microseconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"cannot put {type(value).__name__} into canonical JSON")


def canonical_json(value: Any) -> str:
    """JSON with sorted keys, no spaces, UTF-8 kept, NaN refused: equal values give equal text.

    Datetimes are written ISO 8601 with microseconds, dates ISO 8601, sets sorted, tuples as
    lists, numpy scalars as Python numbers; any other non-JSON type is a ``TypeError``.
    """
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=_json_default,
    )


def sha256_hex(text: str) -> str:
    """Hex SHA-256 (64 characters) of ``text`` encoded as UTF-8."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def content_hash(value: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of ``value``."""
    return sha256_hex(canonical_json(value))


def seed_from_hash(digest: str) -> int:
    """The analysis bootstrap seed a protocol's content hash gives: its first 8 hex digits as an
    integer (0 .. 2**32 - 1). The Analysis screen and the export bundle's report both use it, so
    that one plan on one set of ratings gives the same intervals in both.

    >>> seed_from_hash("02da33371c0a875295eae315d365c78d6a2886c085685e9351eb439913d5fce4")
    47854391
    """
    return int(digest[:8], 16)
