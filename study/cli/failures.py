"""Which failures of a command are the user's (exit 2, a message of a line or a few) and which are
bugs (the traceback is the report); and the files a failed command leaves behind, removed."""

from __future__ import annotations

import argparse
import os
from contextlib import suppress
from pathlib import Path

from study.errors import StudyError, first_line


def not_yet_there(db: Path, key: Path) -> list[Path]:
    """What a command may create (the database, its log, its folders, the audit key) and is not
    there yet: removed again if the command fails, so that no empty database is left behind."""
    paths = [db, db.with_name(db.name + ".wal"), key]
    paths += [folder for folder in (*db.parents, *key.parents) if not folder.exists()]
    return [p for p in paths if not p.exists()]


def remove_created(paths: list[Path]) -> None:
    for path in paths:
        if path.is_file():
            path.unlink(missing_ok=True)
    for path in sorted((p for p in paths if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with suppress(OSError):  # not empty: someone else's now
            path.rmdir()


def explain(exc: Exception, args: argparse.Namespace) -> str | None:
    """The message for a failure of the user's making (exit 2), or ``None`` for a bug.

    The one place that decides which failures are the user's: a ``StudyError``; an ``OSError``
    about a path given on the command line (or its folders); DuckDB unable to use the ``--db``
    file (not a database, unreadable, locked by another process); and a database constraint
    refusing a value that no service validated (the transaction is rolled back: nothing stored).
    """
    # Imported here, not at the top: commands that never open a database stay fast to start.
    # store.py owns DuckDB; these two exception types are imported only to tell "the --db file
    # cannot be used" from a bug, as store.py exposes no narrower alias than DatabaseError (every
    # DuckDB error, bugs included).
    from duckdb import IOException, PermissionException

    from study.store import ConstraintViolation, DatabaseUnavailable

    if isinstance(exc, DatabaseUnavailable):
        return f"cannot use the database {getattr(args, 'db', '')}: {exc.reason}"
    if isinstance(exc, StudyError):
        return str(exc)
    if isinstance(exc, OSError) and _about_user_path(exc, args):
        if exc.filename is not None and exc.strerror:
            return f"{exc.filename}: {exc.strerror}"
        return str(exc)
    if isinstance(exc, IOException | PermissionException):
        return f"cannot use the database {getattr(args, 'db', '')}: {_duckdb_reason(exc)}"
    if isinstance(exc, ConstraintViolation):
        return f"the database refused the change, nothing was stored: {_duckdb_reason(exc)}"
    return None


def _about_user_path(exc: OSError, args: argparse.Namespace) -> bool:
    """Whether ``exc`` concerns a path given on the command line, or a folder above one."""
    given = [Path(os.path.abspath(v)) for v in vars(args).values() if isinstance(v, Path)]
    named = [Path(os.path.abspath(f)) for f in (exc.filename, exc.filename2) if f is not None]
    if any(n == g or n in g.parents for n in named for g in given):
        return True
    # Some libraries (polars) raise OSError without a filename, naming the path in the message.
    text = str(exc)
    return any(str(v) in text for v in vars(args).values() if isinstance(v, Path))


def _duckdb_reason(exc: Exception) -> str:
    """DuckDB's message reworded for the person at the shell: first line, no error-class prefix."""
    text = first_line(exc)
    if "lock" in text.lower():
        return "it is in use by another process (is the app running?); stop it and try again"
    if "not a valid DuckDB database file" in text:
        return "the file is not a DuckDB database"
    for prefix in ("IO Error: ", "Permission Error: ", "Constraint Error: "):
        text = text.removeprefix(prefix)
    return text
