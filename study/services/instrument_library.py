"""The instrument library and the instruments a study uses.

Instruments are versioned by content hash: a key and version, once stored, never change. A draft
study attaches instrument versions; their items are what raters answer.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

import polars as pl

from study import audit
from study.access import Caller, guarded
from study.errors import ConflictError, NotFoundError
from study.instruments import Instrument, item_rows
from study.services._common import require_study
from study.store import Store, first, utc_now


def _as_instrument(instrument: Instrument | Mapping[str, Any]) -> Instrument:
    if isinstance(instrument, Instrument):
        return instrument
    if isinstance(instrument, Mapping):
        return Instrument.from_dict(dict(instrument))
    raise TypeError(f"expected an Instrument or its to_dict(), got {type(instrument).__name__}")


_ITEM_SCHEMA = {
    "item_key": pl.String,
    "position": pl.Int32,
    "type": pl.String,
    "level": pl.String,
    "required": pl.Boolean,
    "direction": pl.String,
    "scope": pl.String,
    "options": pl.String,
    "definition": pl.String,
}


@guarded
def add_instrument(
    store: Store, caller: Caller, instrument: Instrument | Mapping[str, Any]
) -> tuple[str, str]:
    """Store an instrument and its items; return (key, version).

    ``instrument``: a ``study.instruments.Instrument`` or its ``to_dict()`` (validated here).
    Versioned by content hash: the same key and version again with the same hash is a no-op;
    with a different hash it is a ``ConflictError`` (publish a new version instead).
    """
    inst = _as_instrument(instrument)
    digest = inst.content_hash()
    items = pl.DataFrame(
        item_rows(inst),
        schema=_ITEM_SCHEMA,
    )
    with store.transaction() as cur:
        stored = first(
            cur.execute(
                "SELECT content_hash FROM instruments WHERE key = ? AND version = ?",
                [inst.key, inst.version],
            ).fetchall()
        )
        if stored is not None:
            if stored[0] == digest:
                return inst.key, inst.version
            raise ConflictError(
                f"Instrument '{inst.key}' version {inst.version} is stored already with different "
                "content; give the changed instrument a new version."
            )
        cur.execute(
            "INSERT INTO instruments (key, version, title, definition, content_hash, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [inst.key, inst.version, inst.title, inst.canonical_json(), digest, utc_now()],
        )
        store.insert_frame(
            cur,
            "items",
            items,
            constants={"instrument_key": inst.key, "instrument_version": inst.version},
        )
        audit.append(
            cur,
            actor=caller.actor,
            kind=audit.INSTRUMENT_ADD,
            object_type="instrument",
            object_id=f"{inst.key}@{inst.version}",
            payload={"key": inst.key, "version": inst.version, "content_hash": digest},
        )
    return inst.key, inst.version


@guarded
def get_instrument(store: Store, caller: Caller, key: str, version: str) -> Instrument:
    """The stored instrument ``key`` at ``version``."""
    cur = store.cursor()
    try:
        row = first(
            cur.execute(
                "SELECT definition, content_hash FROM instruments WHERE key = ? AND version = ?",
                [key, str(version)],
            ).fetchall()
        )
    finally:
        cur.close()
    if row is None:
        raise NotFoundError(f"There is no instrument '{key}' version {version}.")
    return instrument_from_json(row[0], row[1])


@functools.lru_cache(maxsize=64)
def instrument_from_json(definition: str, digest: str) -> Instrument:  # noqa: ARG001
    """The instrument stored as ``definition`` (cached by its content hash ``digest``)."""
    # keyed by the content hash too, so a cached object is never reused for other content
    return Instrument.from_dict(json.loads(definition))


@guarded
def study_instruments(store: Store, caller: Caller, study: str) -> list[Instrument]:
    """The instruments attached to the study, in the order attached."""
    frame = store.read(
        "SELECT i.definition, i.content_hash FROM study_instruments s JOIN instruments i"
        " ON i.key = s.instrument_key AND i.version = s.instrument_version"
        " WHERE s.study = $s ORDER BY s.position",
        {"s": study},
    )
    return [instrument_from_json(d, h) for d, h in frame.iter_rows()]


@guarded
def attach_instrument(store: Store, caller: Caller, study: str, key: str, version: str) -> None:
    """Use instrument ``key`` at ``version`` in the study (draft only; one version per key)."""
    version = str(version)
    with store.transaction() as cur:
        require_study(cur, study, ("draft",))
        if not cur.execute(
            "SELECT 1 FROM instruments WHERE key = ? AND version = ?", [key, version]
        ).fetchall():
            raise NotFoundError(f"There is no instrument '{key}' version {version}; add it first.")
        attached = first(
            cur.execute(
                "SELECT instrument_version FROM study_instruments"
                " WHERE study = ? AND instrument_key = ?",
                [study, key],
            ).fetchall()
        )
        if attached is not None:
            if attached[0] == version:
                return
            raise ConflictError(
                f"Study '{study}' uses instrument '{key}' version {attached[0]} already."
            )
        clash = cur.execute(
            "SELECT i.item_key FROM items i JOIN items j ON i.item_key = j.item_key"
            " JOIN study_instruments s ON s.instrument_key = j.instrument_key"
            "  AND s.instrument_version = j.instrument_version"
            " WHERE s.study = ? AND i.instrument_key = ? AND i.instrument_version = ?",
            [study, key, version],
        ).fetchall()
        if clash:
            names = ", ".join(sorted(r[0] for r in clash))
            raise ConflictError(
                f"Instrument '{key}' has items named like items already in the study: {names}."
            )
        position = cur.execute(
            "SELECT coalesce(max(position), 0) + 1 FROM study_instruments WHERE study = ?",
            [study],
        ).fetchall()[0][0]
        cur.execute(
            "INSERT INTO study_instruments VALUES (?, ?, ?, ?)", [study, key, version, position]
        )
        audit.append(
            cur,
            actor=caller.actor,
            kind=audit.INSTRUMENT_ATTACH,
            object_type="study",
            object_id=study,
            study=study,
            payload={
                "key": key,
                "version": version,
                # the definition attached, for audit verify to hold the library to
                "content_hash": first(
                    cur.execute(
                        "SELECT content_hash FROM instruments WHERE key = ? AND version = ?",
                        [key, version],
                    ).fetchall()
                )[0],
            },
        )


@guarded
def study_items(store: Store, caller: Caller, study: str) -> pl.DataFrame:
    """Items of the study's instruments in display order.

    Columns: instrument_key, instrument_version, item_key, position, type, level, required,
    direction, scope, options (JSON text), definition (JSON text of the item), prompt (the
    item's question to raters, taken from its definition; "" if it has none).
    """
    return store.read(_STUDY_ITEMS_SQL, {"s": study})


_STUDY_ITEMS_SQL = (
    "SELECT i.*, coalesce(json_extract_string(i.definition, '$.prompt'), '') AS prompt"
    " FROM study_instruments s JOIN items i ON i.instrument_key = s.instrument_key"
    " AND i.instrument_version = s.instrument_version WHERE s.study = $s"
    " ORDER BY s.position, i.position"
)
