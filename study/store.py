"""The DuckDB store: the only module that imports duckdb.

Per process there is one owner of each database file (one DuckDB connection, one write lock),
shared by every ``Store`` opened on that file under any of its names (keyed by device and
inode). Every call takes its own ``cursor()`` (a DuckDB connection object must not be shared
across threads; cursors per thread are fine).
Writes go through ``transaction()``, which serialises writers with a lock, so that a service's
rows and its audit event commit or roll back together and the audit chain never forks.

Reads return polars frames: ``store.read(sql, params)`` or ``cursor.sql(sql, params=...).pl()``.
SQL is parameterised; identifiers in SQL text come only from constants in this package.

The audit chain lives in ``study.audit``; its events are written on a transaction's cursor from
here, so a change and its event commit or roll back together.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from study import keyfile, settings
from study.errors import StudyError
from study.facts import Facts
from study.migrations import MIGRATIONS, Migration

_log = logging.getLogger(__name__)

KEYED_AUDIT_MIGRATION = 4
"""The migration that makes the audit chain keyed (``audit_chain``, the head's seal)."""

Cursor = duckdb.DuckDBPyConnection
ConstraintViolation = duckdb.ConstraintException
"""Raised by DuckDB when a row breaks a key, foreign key, unique, NOT NULL or CHECK constraint."""
TransactionConflict = duckdb.TransactionException
MissingTable = duckdb.CatalogException
"""Raised by DuckDB for a table the schema does not have (a database not migrated yet)."""
DatabaseError = duckdb.Error
"""Base class of every error DuckDB raises."""


class SchemaError(StudyError):
    """The database schema cannot be used by this code (tampered, or newer than the code)."""


def first(rows: list[tuple]) -> tuple | None:
    """The first row of ``cursor.execute(...).fetchall()``, or None.

    DuckDB 2.0 keeps a result open until it is read to the end, and refuses other work on the
    cursor meanwhile, so fetch all rows (queries here return few) rather than ``fetchone()``.
    """
    return rows[0] if rows else None


def utc_now() -> dt.datetime:
    """Now in UTC as a naive datetime (the schema stores UTC ``TIMESTAMP`` without zone)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


# --- the store -------------------------------------------------------------------------------


class DatabaseUnavailable(StudyError):
    """The database file cannot be used: in use by another process, not a database, not Clinval's.

    ``str()`` is a plain sentence for anyone (no path, no process id); ``reason`` is the short
    clause the command line puts after the path it was given. The details (path, DuckDB's own
    message) go to the server log.
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


IN_USE = DatabaseUnavailable(
    "The study database is in use by another process; try again once it is free.",
    "it is in use by another process (is the app running?); stop it and try again",
)


class _Owner:
    """The one DuckDB connection of this process to one database file, shared by every ``Store``
    opened on it: one connection, one write lock, one transaction per thread, one id floor.

    Two connections of one process to one file would each take their own write lock and their own
    transactions, and concurrent submits through them conflict or are lost; sharing the owner
    serialises them as one store does.
    """

    def __init__(self, conn: duckdb.DuckDBPyConnection, read_only: bool) -> None:
        self.conn = conn
        self.read_only = read_only
        self.write_lock = threading.RLock()
        self.local = threading.local()
        self.id_floor: dict[str, int] = {}
        self.users = 0
        self.identity: FileIdentity | None = None  # the key in ``_OWNERS`` (None: in memory)
        self.audit_key: bytes | None = None
        # immutable facts read from this connection's database (``Store.facts``): one map per
        # connection, so a fact never outlives its database or crosses to another
        self.facts = Facts()


FileIdentity = tuple[int, int]
"""A file's (device, inode): the same for every name of the file (hard links, symlinks, relative
or absolute spellings), and different for a new file put in place of an old one."""

_OWNERS: dict[FileIdentity, _Owner] = {}
_OWNERS_LOCK = threading.Lock()


def _file_identity(path: str) -> FileIdentity | None:
    """The identity of the file ``path`` names (symlinks followed), or None if there is none yet.

    Owners are keyed by it, not by the resolved path: a hard link resolves to a path of its own,
    and a second owner (a second DuckDB connection) on the same file loses acknowledged writes.
    While an owner is open its connection holds the file open, so the inode cannot be reused by
    another file meanwhile.
    """
    try:
        found = Path(path).expanduser().stat()
    except FileNotFoundError:
        return None
    return (found.st_dev, found.st_ino)


_ACTIVE = threading.local()
"""The owner whose transaction is open on this thread (for the audit key of its events)."""


def active_audit_key() -> bytes | None:
    """The audit key of the store whose transaction is open on this thread (None: no key)."""
    owner = getattr(_ACTIVE, "owner", None)
    return owner.audit_key if owner is not None else None


def _connect(path: str, read_only: bool) -> duckdb.DuckDBPyConnection:
    """DuckDB's connection to ``path``, its refusals turned into ``DatabaseUnavailable``."""
    try:
        return duckdb.connect(path, read_only=read_only)
    except duckdb.Error as exc:
        text = str(exc).split("\n")[0]
        if isinstance(exc, duckdb.IOException) and "lock" in text.lower():
            _log.warning("database %s is in use by another process: %s", path, text)
            raise IN_USE from None
        if "not a valid DuckDB database file" in text:
            _log.warning("database %s is not a DuckDB file: %s", path, text)
            raise DatabaseUnavailable(
                "The study database file is not a valid DuckDB database file.",
                "the file is not a DuckDB database",
            ) from None
        raise


class Store:
    """One DuckDB database, migrated on open.

    ``path``: a file path (its folder is created), ``":memory:"``, or ``None`` for
    ``settings.db_path()``. Opening applies pending migrations and refuses a database that was
    migrated by newer code or whose applied migrations differ from this code's, and a DuckDB
    file that is not Clinval's (never migrated into one).

    However many times one file is opened in a process, and under whatever name (a hard link, a
    symlink, a relative path), the Stores share one owner (one connection, one write lock); closing the last one closes the connection. ``read_only``:
    open without migrating or writing (the file must be a Clinval database already); a second
    process holding the file gives ``DatabaseUnavailable`` ("in use by another process").

    ``audit_key``: the audit chain's key, read from ``CLINVAL_AUDIT_KEY_FILE``; it is created
    when this call creates the database (or with ``create_key``). ``None`` when there is none:
    the chain can then be verified only in its structure, and new events are refused.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        read_only: bool = False,
        create_key: bool = False,
    ) -> None:
        if path is None:
            path = settings.db_path()
        self.path = str(path)
        memory = self.path == ":memory:"
        creating = memory or not Path(self.path).expanduser().exists()
        if read_only and creating:
            raise DatabaseUnavailable(
                "There is no study database yet.", "there is no database file"
            )
        key_path = settings.audit_key_path()
        # the key first: a refused key file must not leave a new, empty database behind
        had_key = read_only or Path(key_path).is_file()
        key = keyfile.load(key_path, create=(creating or create_key) and not read_only)
        # a key made by this open is the other moment a chain honestly becomes keyed
        key_made = key is not None and not had_key
        if not memory:
            Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        with _OWNERS_LOCK:
            # the file is looked up, and created if need be, under the lock: another thread
            # creating it meanwhile under another spelling would otherwise get a second owner
            identity = None if memory else _file_identity(self.path)
            owner = None if identity is None else _OWNERS.get(identity)
            if owner is not None and owner.read_only and not read_only:
                raise DatabaseUnavailable(
                    "The study database is open read-only in this process.",
                    "it is open read-only in this process",
                )
            fresh = owner is None
            if fresh:
                owner = _Owner(_connect(self.path, read_only), read_only)
                if not memory:
                    # DuckDB created a missing file on connecting: its identity exists only now
                    owner.identity = identity or _file_identity(self.path)
                    _OWNERS[owner.identity] = owner
            owner.users += 1
            if key is not None:
                owner.audit_key = key
        self._owner = owner
        self._closed = False
        if fresh:
            try:
                self._check_is_clinvals()
                if read_only:
                    self._check_schema_read_only()
                else:
                    self.migrate()
                    if key_made:
                        with self.transaction() as cur:
                            self._seal_new_chain(cur)
                    self._checkpoint_after_crash()
            except BaseException:
                self.close()
                raise

    @property
    def read_only(self) -> bool:
        """Whether the database was opened read-only: nothing may be written, not even a
        token's last use."""
        return self._owner.read_only

    @property
    def audit_key(self) -> bytes | None:
        """The audit chain's key (32 bytes), or None when the key file is missing."""
        return self._owner.audit_key

    @property
    def facts(self) -> Facts:
        """Immutable facts of this database kept between calls (``study.facts``), shared by
        every Store of the same file in this process; read them with ``facts.get`` and keep
        them with ``remember``."""
        return self._owner.facts

    def remember(self, key: Any, value: Any) -> None:
        """Keep the immutable fact ``value`` under ``key`` in ``facts``, unless this thread has
        a transaction open: what a transaction reads may be its own uncommitted rows, gone if it
        rolls back (and their ids then taken by other rows)."""
        if getattr(self._local, "cursor", None) is None:
            self._owner.facts.put(key, value)

    @property
    def _conn(self) -> duckdb.DuckDBPyConnection:
        return self._owner.conn

    @property
    def _local(self) -> threading.local:
        return self._owner.local

    @property
    def _write_lock(self) -> threading.RLock:
        return self._owner.write_lock

    @property
    def _id_floor(self) -> dict[str, int]:
        return self._owner.id_floor

    def _check_is_clinvals(self) -> None:
        """Refuse a DuckDB file that holds tables but no Clinval schema: migrating it would add
        Clinval's tables to someone else's database."""
        cur = self._conn.cursor()
        try:
            names = {
                r[0]
                for r in cur.execute(
                    "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
                ).fetchall()
            }
        finally:
            cur.close()
        if names and "schema_migrations" not in names:
            _log.warning("database %s holds tables %s but no Clinval schema", self.path, names)
            raise DatabaseUnavailable(
                "The file is a DuckDB database, but not a Clinval study database; it was left "
                "unchanged.",
                "it is a DuckDB database but not Clinval's (left unchanged)",
            )
        if not names and self._owner.read_only:
            raise DatabaseUnavailable(
                "The study database is empty; create it first.", "it is an empty database"
            )

    def _checkpoint_after_crash(self) -> None:
        """Fold a write-ahead log left by a process that died into the database file, so the
        file alone (a copy, a backup) holds every committed change."""
        if self.path != ":memory:" and Path(self.path + ".wal").exists():
            cur = self._conn.cursor()
            try:
                cur.execute("CHECKPOINT")
            finally:
                cur.close()

    # connection access ---------------------------------------------------------------------

    def cursor(self) -> Cursor:
        """A cursor for one call; close it when done.

        On a thread that holds an open ``transaction()`` this is that transaction's cursor (its
        ``close()`` does nothing), so reads made inside the transaction see its uncommitted
        writes. Elsewhere it is a new cursor on the shared connection: take one per call, per
        thread.
        """
        open_cursor = getattr(self._local, "cursor", None)
        if open_cursor is not None:
            return _JoinedCursor(open_cursor)  # type: ignore[return-value]
        return self._conn.cursor()

    def read(self, sql: str, params: Mapping[str, Any] | list[Any] | None = None) -> pl.DataFrame:
        """Run a read-only query and return a polars frame (inside this thread's open
        transaction, if any, so it sees that transaction's writes)."""
        cur = self.cursor()
        try:
            return cur.sql(sql, params=params).pl()
        finally:
            cur.close()

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        """A cursor inside BEGIN ... COMMIT, rolled back if the block raises.

        Writers are serialised by a process-wide lock (DuckDB allows one process per file, so
        this serialises all writers). While it is open, ``cursor()`` and ``read()`` on the same
        thread use this transaction's cursor; other threads keep their own cursors and do not
        see its writes until it commits.

        A ``transaction()`` opened inside another on the same thread joins the outer one: its
        writes commit or roll back with it. DuckDB has no savepoints, so a joined block that
        raises cannot be undone on its own: the outer transaction is then marked failed and
        rolls back (raising ``StudyError``) even if the exception was caught in between.
        """
        outer = getattr(self._local, "cursor", None)
        if outer is not None:
            try:
                yield outer
            except BaseException:
                self._local.failed = True
                raise
            return
        with self._write_lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN TRANSACTION")
            self._local.cursor = cur
            self._local.failed = False
            outer_owner = getattr(_ACTIVE, "owner", None)
            _ACTIVE.owner = self._owner
            try:
                yield cur
            except BaseException:
                _ACTIVE.owner = outer_owner
                self._local.cursor = None
                try:
                    cur.execute("ROLLBACK")
                finally:
                    cur.close()
                raise
            _ACTIVE.owner = outer_owner
            self._local.cursor = None
            try:
                if self._local.failed:
                    raise StudyError(
                        "A step inside this transaction failed, so none of its changes were "
                        "stored (rolled back)."
                    )
                cur.execute("COMMIT")
            except BaseException:
                # a failed COMMIT leaves DuckDB's transaction aborted; end it before re-raising
                with suppress(duckdb.Error):
                    cur.execute("ROLLBACK")
                raise
            finally:
                cur.close()

    def allocate_ids(self, cur: Cursor, table: str) -> int:
        """First fresh id for ``table``'s BIGINT ``id``; call inside ``transaction()``.

        Writers are serialised, so max(id) + 1 and every id after it are free: the caller numbers
        its new rows consecutively from there. The largest id seen before is kept as a floor so
        the lookup only scans the newest rows (a full max over millions of ratings costs ~10 ms;
        this ~1 ms).
        """
        _check_identifier(table)
        floor = self._id_floor.get(table, 0)
        top = cur.execute(f'SELECT max(id) FROM "{table}" WHERE id >= ?', [floor]).fetchall()[0][0]
        if top is None:
            top = cur.execute(f'SELECT coalesce(max(id), 0) FROM "{table}"').fetchall()[0][0]
        self._id_floor[table] = int(top)
        return int(top) + 1

    def close(self) -> None:
        """Release this Store; the last one of a file closes the shared connection."""
        if self._closed:
            return
        self._closed = True
        with _OWNERS_LOCK:
            self._owner.users -= 1
            if self._owner.users > 0:
                return
            identity = self._owner.identity
            if identity is not None and _OWNERS.get(identity) is self._owner:
                del _OWNERS[identity]
        self._owner.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # migrations ------------------------------------------------------------------------------

    def migrate(self, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
        """Apply pending migrations in order; return the versions applied now.

        Raises ``SchemaError`` when the database records a version this code does not know, or
        when a recorded checksum differs from the code's migration of that version.
        """
        known = {m.version: m for m in migrations}
        expected = list(range(1, len(migrations) + 1))
        if len(known) != len(migrations) or sorted(known) != expected:
            raise SchemaError("migrations must be numbered 1, 2, 3, ... without gaps")
        with self.transaction() as cur:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
                " checksum VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)"
            )
            done = self._check_applied(cur, known)
            new = []
            for migration in sorted(migrations, key=lambda m: m.version):
                if migration.version in done:
                    continue
                cur.execute(migration.sql)
                cur.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?, ?)",
                    [migration.version, migration.name, migration.checksum, utc_now()],
                )
                new.append(migration.version)
            if KEYED_AUDIT_MIGRATION in new:
                self._seal_new_chain(cur)
        return new

    def _check_applied(self, cur: Cursor, known: Mapping[int, Migration]) -> set[int]:
        """The versions applied to the database; ``SchemaError`` for one this code does not
        know, or one recorded with a checksum other than this code's migration of it."""
        applied = cur.execute(
            "SELECT version, name, checksum FROM schema_migrations ORDER BY version"
        ).fetchall()
        for version, name, checksum in applied:
            if version not in known:
                raise SchemaError(
                    f"The database {self.path} has schema version {version} ({name!r}), newer "
                    f"than this code knows (up to {max(known)}): upgrade Clinval."
                )
            if known[version].checksum != checksum:
                raise SchemaError(
                    f"The database {self.path} recorded migration {version} ({name!r}) with "
                    "a checksum that differs from this code's: the migration or the database "
                    "was altered. Refusing to open it: restore the file from a backup."
                )
        return {row[0] for row in applied}

    def _check_schema_read_only(self) -> None:
        """Refuse, without writing, what ``migrate`` refuses: a read-only open (``status``,
        ``audit verify``) must not vouch for a database that the app refuses to open."""
        cur = self._conn.cursor()
        try:
            self._check_applied(cur, {m.version: m for m in MIGRATIONS})
        finally:
            cur.close()

    def _seal_new_chain(self, cur: Cursor) -> None:
        """Mark the chain as keyed by this installation's key (``audit_chain.key_id``) and seal
        its head with the chain's metadata, the moment it honestly becomes keyed.

        Done only in the transaction that applies the keyed-audit migration, or right after
        this open made the key file (``study init`` on a database that had none): a chain with
        events that records no key while its key is at hand is then one rewritten as unkeyed,
        and verify and append refuse it. Marking at any other open would seal a forger's
        downgrade just as well. Without a key at hand nothing is marked."""
        key = self.audit_key
        mark = first(
            cur.execute("SELECT keyed_from, key_id FROM audit_chain WHERE id = 1").fetchall()
        )
        if key is None or mark is None or mark[1] is not None:
            return  # no key; or a chain marked already (by this key or, wrongly, another)
        key_id = keyfile.fingerprint(key)
        keyed_from = mark[0]
        cur.execute("UPDATE audit_chain SET key_id = ? WHERE id = 1", [key_id])
        head = first(cur.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchall())
        if head is not None:
            cur.execute(
                "UPDATE audit_head SET mac = ? WHERE id = 1",
                [keyfile.head_seal(key, head[0], head[1], keyed_from, key_id)],
            )

    def schema_version(self) -> int:
        cur = self.cursor()
        try:
            rows = cur.execute("SELECT max(version) FROM schema_migrations").fetchall()
        finally:
            cur.close()
        return int(rows[0][0] or 0)

    # bulk insert -----------------------------------------------------------------------------

    @staticmethod
    @contextmanager
    def registered(cur: Cursor, name: str, frame: pl.DataFrame) -> Iterator[str]:
        """Make ``frame`` queryable as the view ``name`` on ``cur`` for the block (no copy)."""
        _check_identifier(name)
        cur.register(name, _arrow(frame))
        try:
            yield name
        finally:
            # after a failed statement the transaction is aborted and refuses even this; the
            # registration dies with the cursor anyway
            with suppress(duckdb.Error):
                cur.unregister(name)

    @staticmethod
    def insert_rows(
        cur: Cursor,
        table: str,
        rows: list[Mapping[str, Any]],
        *,
        on_conflict: str | None = None,
    ) -> int:
        """Insert a handful of rows (same keys) in one parameterised statement.

        For the few rows of one submit, where registering an Arrow view costs more than the
        insert; use ``insert_frame`` for bulk data. Each column goes as one list parameter,
        unnested side by side: DuckDB binds 15 lists faster than a VALUES list of 11 x 15
        placeholders (about 1.6 ms against 2.7 ms for a submission's 11 rating rows).
        """
        if not rows:
            return 0
        _check_identifier(table)
        columns = list(rows[0])
        for name in columns:
            _check_identifier(name)
        unnested = ", ".join(f"unnest(${name}) AS {name}" for name in columns)
        sql = f'INSERT INTO "{table}" ({", ".join(columns)}) SELECT {unnested}'
        if on_conflict:
            sql += f" ON CONFLICT {on_conflict}"
        cur.execute(sql, {name: [row[name] for row in rows] for name in columns})
        return len(rows)

    @staticmethod
    def insert_frame(
        cur: Cursor,
        table: str,
        frame: pl.DataFrame,
        *,
        constants: Mapping[str, Any] | None = None,
        on_conflict: str | None = None,
    ) -> int:
        """Insert every row of ``frame`` into ``table`` in one statement; return the row count.

        ``table`` and the frame's column names must be schema identifiers from code (never from
        user input); ``constants`` adds columns with one parameterised value for every row
        (e.g. the study id); ``on_conflict`` (code constant, e.g. ``"(k) DO NOTHING"``) is
        appended as ``ON CONFLICT ...``. Bulk, via DuckDB's scan of the registered Arrow data.
        """
        if frame.height == 0:
            return 0
        _check_identifier(table)
        columns = list(frame.columns)
        for name in columns:
            _check_identifier(name)
        constants = dict(constants or {})
        for name in constants:
            _check_identifier(name)
        view = f"incoming_{table}"
        select = [f'"{c}"' for c in columns] + [f"${c}" for c in constants]
        target = ", ".join(f'"{c}"' for c in [*columns, *constants])
        cur.register(view, _arrow(frame))
        try:
            sql = f'INSERT INTO "{table}" ({target}) SELECT {", ".join(select)} FROM "{view}"'
            if on_conflict:
                sql += f" ON CONFLICT {on_conflict}"
            cur.execute(sql, constants or None)
        finally:
            # after a failed INSERT the transaction is aborted and refuses even this; the
            # registration dies with the cursor anyway
            with suppress(duckdb.Error):
                cur.unregister(view)
        return frame.height


class _JoinedCursor:
    """This thread's open transaction cursor, lent to a caller that will ``close()`` it.

    Everything is the transaction's cursor except ``close()``, which must not end the
    transaction: the ``transaction()`` that opened the cursor closes it.
    """

    __slots__ = ("_cursor",)

    def __init__(self, cursor: Cursor) -> None:
        self._cursor = cursor

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)

    def close(self) -> None:
        pass

    def __enter__(self) -> _JoinedCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def scratch_query(sql: str, frames: Mapping[str, pl.DataFrame]) -> pl.DataFrame:
    """Run ``sql`` over ``frames`` (each queryable under its key) in a private in-memory DuckDB,
    apart from any study database: for computing with DuckDB's own functions (the row digests'
    ``to_json``) on a thread of its own, while a transaction on the study file goes on.

    Holds no study data beyond the frames and writes nothing anywhere; closed on return.
    """
    con = duckdb.connect(":memory:")
    try:
        for name, frame in frames.items():
            _check_identifier(name)
            con.register(name, _arrow(frame))
        return con.sql(sql).pl()
    finally:
        con.close()


def _arrow(frame: pl.DataFrame):
    """``frame`` as an Arrow table without copying its strings.

    Polars' default (oldest) Arrow level converts string views to ``large_string``, a copy of all
    the text (~0.1 s per 170 MB of answers); DuckDB scans ``string_view`` directly.
    """
    return frame.to_arrow(compat_level=pl.CompatLevel.newest())


def _check_identifier(name: str) -> None:
    if not name or not (name.replace("_", "a").isalnum() and name.isascii()):
        raise ValueError(f"not a plain SQL identifier: {name!r}")
