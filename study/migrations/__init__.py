"""Numbered, append-only schema migrations.

Each migration is ``Migration(version, name, sql)``. ``study.store.Store`` applies the pending ones
when it opens a database and records ``(version, name, checksum, applied_at)`` in
``schema_migrations``; it refuses a database whose recorded checksum differs from the code (someone
edited an applied migration, or the database was altered) or whose version is newer than the code.

Never edit a migration that has been committed: append a new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from hashlib import sha256
from importlib import resources


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the SQL text, hex: what ``schema_migrations.checksum`` records."""
        return sha256(self.sql.encode("utf-8")).hexdigest()


def _sql(filename: str) -> str:
    return resources.files(__package__).joinpath(filename).read_text(encoding="utf-8")


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema", _sql("0001_initial.sql")),
    Migration(
        2,
        "unknown provenance and rating comments",
        _sql("0002_unknown_provenance_and_rating_comments.sql"),
    ),
    Migration(3, "case flags and the safety queue", _sql("0003_flags_and_safety.sql")),
    Migration(4, "keyed audit chain, row digests, sealed seed", _sql("0004_keyed_audit.sql")),
    Migration(
        5,
        "assignment phases (calibration, repeats) and first presentation time",
        _sql("0005_calibration_repeats.sql"),
    ),
    Migration(6, "sign-in: first sign-in time, bound identities", _sql("0006_sign_in.sql")),
    Migration(7, "conversation cases and rubric criteria", _sql("0007_rubric_cases.sql")),
    Migration(8, "a draft's design settings", _sql("0008_design_drafts.sql")),
    Migration(9, "personal access tokens", _sql("0009_personal_tokens.sql")),
    Migration(10, "column mappings of imported tables", _sql("0010_import_mappings.sql")),
)
