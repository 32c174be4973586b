"""The built-in instruments (``study/templates/*.toml``) and combining instruments into one.

``BUILTIN`` maps each key to its instrument, read once at import; ``ayers_harm`` is built here by
``combine`` from ``ayers2023`` and ``harm``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from study.errors import InstrumentError, NotFoundError
from study.instrument_definition import Instrument
from study.instrument_files import load_instrument
from study.instrument_items import listing


def combine(
    key: str,
    title: str,
    *instruments: Instrument,
    version: str = "1.0",
    description: str | None = None,
    citation: str | None = None,
) -> Instrument:
    """One instrument holding the items of ``instruments`` in order (e.g. Ayers + harm).

    Item keys must be unique across the parts (the parts' consistency rules are kept); ``citation`` defaults to the parts' citations,
    one per line, and ``description`` to a list of the parts with their versions and hashes.
    """
    if not instruments:
        raise InstrumentError(f"combine('{key}'): give at least one instrument to combine")
    owner: dict[str, str] = {}
    clashes = []
    for part in instruments:
        if not isinstance(part, Instrument):
            raise InstrumentError(f"combine('{key}'): {part!r} is not an Instrument")
        for item in part.items:
            if item.key in owner:
                clashes.append(
                    f"combine('{key}'): item '{item.key}' is in both '{owner[item.key]}' and "
                    f"'{part.key}'; rename one in a custom instrument"
                )
            else:
                owner[item.key] = part.key
    if clashes:
        raise InstrumentError("\n".join(clashes))
    if description is None:
        description = (
            "Combines, in this order: "
            + "; ".join(
                f"{part.key} v{part.version} ({part.title}; sha256 {part.content_hash()[:12]})"
                for part in instruments
            )
            + "."
        )
    if citation is None:
        citations: list[str] = []
        for part in instruments:
            for line in part.citation.splitlines():
                if line.strip() and line not in citations:
                    citations.append(line)
        citation = "\n".join(citations)
    return Instrument(
        key=key,
        version=version,
        title=title,
        description=description,
        citation=citation,
        items=tuple(item for part in instruments for item in part.items),
        synthetic=any(part.synthetic for part in instruments),
        rules=tuple(rule for part in instruments for rule in part.rules),
    )


TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"


def _load_builtin() -> Mapping[str, Instrument]:
    found: dict[str, Instrument] = {}
    for file in sorted(TEMPLATE_DIR.glob("*.toml")):
        instrument = load_instrument(file)
        if instrument.key != file.stem:
            raise InstrumentError(
                f"{file}: field 'key': {instrument.key!r} must match the file name {file.stem!r}"
            )
        found[instrument.key] = instrument
    found["ayers_harm"] = combine(
        "ayers_harm",
        "Ayers et al. 2023 preference, quality and empathy, with possible harm",
        found["ayers2023"],
        found["harm"],
        version="1.1",
    )
    return MappingProxyType(dict(sorted(found.items())))


BUILTIN: Mapping[str, Instrument] = _load_builtin()


def get_builtin(key: str) -> Instrument:
    """The built-in instrument ``key``; ``NotFoundError`` lists the available keys."""
    try:
        return BUILTIN[key]
    except KeyError:
        raise NotFoundError(
            f"no built-in instrument '{key}'; available: {listing(BUILTIN)}"
        ) from None


def list_builtin() -> list[Instrument]:
    """Every built-in instrument, sorted by key."""
    return list(BUILTIN.values())
