"""What every ``python -m study`` command shares: exit codes, who acts, the database, checks on
what was typed, and printing that is safe for the terminal.

``acting_caller`` is the one place that decides whom a command acts as; ``open_store`` the one
place that opens the ``--db`` file. Everything printed goes through ``Escaping`` (control,
invisible and direction-changing characters escaped) and error messages through ``capped``.
"""

from __future__ import annotations

import argparse
import getpass
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from analysis.terminal import INVISIBLE, escape
from study import settings
from study.errors import StudyError

EXIT_OK = 0
EXIT_AUDIT_BROKEN = 1
EXIT_BAD_INPUT = 2


class CliError(StudyError):
    """A mistake on the command line that no service would see (e.g. a missing file)."""


TOKEN_SETTING = "CLINVAL_TOKEN"


def acting_caller(args: argparse.Namespace, store: Any):
    """The caller every command acts as, decided here only.

    With a personal access token (``--token``, else the ``CLINVAL_TOKEN`` setting), the person
    it belongs to (``tokens.caller_for_token``: refused when unknown, expired, revoked, or the
    person holds no role); the audit trail then records that person, and the token's id in each
    event. Without one, the local operator, named by the OS account (``system:cli:alice``):
    whoever can run this holds the database file itself, but is no person. Resolved once per
    command (a token's last use is recorded once).
    """
    from study.access import system_caller
    from study.services import tokens

    resolved = getattr(args, "resolved_caller", None)
    if resolved is not None:
        return resolved
    token = getattr(args, "token", None)
    if token is None:
        token = str(settings.get(TOKEN_SETTING)) or None
    elif not token.strip():
        raise CliError("--token is empty; pass a personal access token, or leave --token out")
    if token is not None:
        resolved = tokens.caller_for_token(store, token)
    else:
        try:
            account = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry (some containers)
            account = None
        resolved = system_caller("cli", account)
    args.resolved_caller = resolved
    return resolved


def acting_person(args: argparse.Namespace, store: Any, act: str, role: str):
    """``acting_caller``, refusing the operator: ``act`` is a ``role``'s own act (separation of
    duties), and the operator at the command line is no person."""
    caller = acting_caller(args, store)
    if caller.is_system:
        raise not_the_operators(act, role)
    return caller


def not_the_operators(act: str, role: str) -> CliError:
    """The refusal of ``act``, a ``role``'s own act, to the operator: it says how to act as them."""
    return CliError(
        f"{act} is a {role}'s own act, and the command line's operator is no person: pass "
        f"the {role}'s personal access token with --token TOKEN (or set {TOKEN_SETTING}); "
        "they create one on the app's Account screen"
    )


def open_store(db: Path, *, create: bool, read_only: bool = False, create_key: bool = False):
    """The migrated ``Store`` at ``db``; refuse a missing file unless ``create``.

    ``read_only``: for commands that only read (``status``, ``audit verify``): the database is
    neither migrated nor written. The store's refusals (not a database file, not Clinval's,
    locked by another process) are worded by ``explain``.
    """
    from study.store import Store

    if db.is_dir():
        raise CliError(f"--db {db} is a folder, not a database file")
    if not create and not db.is_file():
        raise CliError(f"no database at {db}; run `python -m study init --db {db}` or `demo`")
    for folder in db.parents:
        # Store creates missing folders; a file in the way would otherwise read "File exists".
        if folder.exists():
            if not folder.is_dir():
                raise CliError(f"--db {db}: {folder} is a file, not a folder")
            break
    return Store(db, read_only=read_only, create_key=create_key)


MAX_MESSAGE_CHARS = 600
"""Longest error line printed; the rest is counted ("and N more characters")."""
MAX_MESSAGE_LINES = 12


def check_id_text(flag: str, value: str) -> None:
    """Refuse an id typed on the command line that is not valid UTF-8 (the shell passed bytes
    that decode to nothing), or that holds control, invisible or direction-changing characters
    (it would show as another id)."""
    if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise CliError(f"{flag} is not valid UTF-8 text")
    bad = sorted({c for c in value if not c.isprintable() or ord(c) in INVISIBLE})
    if bad:
        shown = ", ".join(f"U+{ord(c):04X}" for c in bad[:5])
        raise CliError(
            f"{flag} holds control or invisible characters ({shown}); type the id plainly"
        )


SNIFF_BYTES = 65_536


def text_file(path: Path) -> Path:
    """Refuse a .csv/.jsonl/.ndjson file that is binary (NUL bytes in its first 64 KiB): reading
    it as text costs seconds and gigabytes to say nothing useful."""
    if path.suffix.lower() in (".csv", ".jsonl", ".ndjson", ".json", ".tsv", ".txt"):
        try:
            with path.open("rb") as handle:
                head = handle.read(SNIFF_BYTES)
        except OSError as exc:
            raise CliError(f"{path}: {exc.strerror or exc}") from None
        if b"\x00" in head:
            raise CliError(f"{path} is not a text file (it holds NUL bytes); export it as text")
    return path


class Escaping:
    """A text stream that escapes what it is given (``analysis.terminal.escape``) before
    writing it."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(escape(text))

    def flush(self) -> None:
        self._stream.flush()


def capped(message: str) -> str:
    """At most ``MAX_MESSAGE_LINES`` lines of at most ``MAX_MESSAGE_CHARS`` characters."""
    lines = message.splitlines() or [""]
    kept = []
    for line in lines[:MAX_MESSAGE_LINES]:
        if len(line) > MAX_MESSAGE_CHARS:
            line = f"{line[:MAX_MESSAGE_CHARS]}... (and {len(line) - MAX_MESSAGE_CHARS:,} more characters)"
        kept.append(line)
    if len(lines) > MAX_MESSAGE_LINES:
        kept[-1] += f" (and {len(lines) - MAX_MESSAGE_LINES:,} more lines)"
    return "\n".join(kept)


def existing_file(path: Path) -> Path:
    if not path.exists():
        raise CliError(f"no such file: {path}")
    if not path.is_file():
        raise CliError(f"not a file: {path}")
    return path


def check_new_file(flag: str, path: Path) -> None:
    """Refuse ``path`` for a file this command is to create, before anything is stored."""
    if path.exists():
        raise CliError(f"{flag} {path} exists already; name a new file (it is never overwritten)")
    if not path.parent.is_dir():
        raise CliError(f"no such folder for {flag}: {path.parent}")


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]], out: TextIO) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print(
            "  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip(), file=out
        )
