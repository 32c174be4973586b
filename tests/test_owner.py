"""One owner per database file: one process shares one connection and one write lock however
many times it opens the file; a second process is told plainly; a crash leaves no log behind."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import RATERS, full_values, sign_in

from study import audit, audit_verify, cli
from study.errors import ConflictError, StudyError
from study.services import rating as rating_service
from study.store import DatabaseUnavailable, Store

ROOT = Path(__file__).resolve().parent.parent


def test_one_file_opened_twice_in_one_process_loses_no_submit(store, rating):
    """Each rater submits every assignment of theirs twice at once, once through each Store:
    every assignment is stored exactly once, and "submitted already" is said only of stored
    ones."""
    second = Store(store.path)
    try:
        assert second.audit_key == store.audit_key
        outcomes: dict[int, list[str]] = {}
        lock = threading.Lock()

        def submit(through: Store, rater: str, assignment: int) -> None:
            caller = sign_in(through, rater)
            try:
                rating_service.submit_rating(through, caller, rating, assignment, full_values())
                outcome = "stored"
            except ConflictError as exc:
                outcome = "conflict" if "submitted already" in str(exc) else f"other: {exc}"
            except Exception as exc:  # noqa: BLE001  (what the issue saw: raw DuckDB errors)
                outcome = f"error: {type(exc).__name__}: {exc}"
            with lock:
                outcomes.setdefault(assignment, []).append(outcome)

        work = []
        for rater in RATERS:
            queue = rating_service.rater_queue(store, sign_in(store, rater), rating)
            for assignment in queue.get_column("assignment").to_list():
                work += [(s, rater, assignment) for s in (store, second)]
        threads = [threading.Thread(target=submit, args=job) for job in work]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        assert len(outcomes) == 8
        for assignment, seen in outcomes.items():
            assert sorted(seen) == ["conflict", "stored"], (assignment, seen)
        stored = second.read("SELECT count(DISTINCT assignment) FROM current_ratings").item()
        assert stored == 8  # every "submitted already" refers to a stored rating
        assert store.read("SELECT count(*) FROM assignments WHERE done").item() == 8
        assert audit_verify.verify(second).ok
    finally:
        second.close()
    # the first Store still works after the second one closed: the connection is shared
    assert store.read("SELECT count(*) FROM ratings").item() > 0


def test_the_last_store_of_a_file_closes_its_connection(tmp_path):
    path = tmp_path / "shared.duckdb"
    first, again = Store(path), Store(str(path.parent / "." / path.name))
    assert first._owner is again._owner
    first.close()
    assert again.read("SELECT 1").item() == 1
    again.close()
    reopened = Store(path)  # a fresh owner, not the closed connection
    assert reopened._owner is not first._owner
    reopened.close()


HOLD = (
    "import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('held', flush=True);"
    " sys.stdin.read()"
)


@contextmanager
def held_by_another_process(path: Path) -> Iterator[None]:
    """While the block runs, another process holds the Clinval database at ``path``."""
    Store(path).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.communicate("")


def test_a_second_process_gets_a_plain_in_use_error(tmp_path):
    path = tmp_path / "held.duckdb"
    with held_by_another_process(path), pytest.raises(DatabaseUnavailable) as caught:
        Store(path)
    message = str(caught.value)
    assert "in use by another process" in message
    assert str(tmp_path) not in message and "PID" not in message
    assert isinstance(caught.value, StudyError)


CRASH = (
    "import os, sys; from study.store import Store; from study.services import studies;"
    " from study.access import system_caller; s = Store(sys.argv[1]);"
    " studies.create_study(s, system_caller('cli', 'crash'), 'Crashed');"
    " os._exit(0)"
)


def test_after_a_crash_the_write_ahead_log_is_checkpointed(tmp_path):
    path = tmp_path / "crash.duckdb"
    Store(path).close()
    died = subprocess.run(
        [sys.executable, "-c", CRASH, str(path)], cwd=ROOT, capture_output=True, text=True
    )
    assert died.returncode == 0, died.stderr
    wal = path.with_name(path.name + ".wal")
    assert wal.exists()  # the process died before DuckDB folded its log in
    with Store(path) as s:
        assert s.read("SELECT count(*) FROM studies").item() == 1
        assert not wal.exists() or wal.stat().st_size == 0
        assert audit_verify.verify(s).ok


def test_a_duckdb_file_that_is_not_clinvals_is_refused_and_left_alone(tmp_path):
    import duckdb

    path = tmp_path / "other.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE studies (x INTEGER)")
    before = path.read_bytes()
    for read_only in (False, True):
        with pytest.raises(DatabaseUnavailable, match="not a Clinval study database"):
            Store(path, read_only=read_only)
    assert path.read_bytes() == before
    with duckdb.connect(str(path), read_only=True) as con:
        tables = con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
    assert tables == [("studies",)]


# --- an existing (schema 1) chain, migrated --------------------------------------------------


def _v1_database(path: Path) -> None:
    """A database as schema 1 left it: three events with plain SHA-256 hashes, no key."""
    import duckdb

    from study.canonical import canonical_json, sha256_hex
    from study.migrations import MIGRATIONS
    from study.store import utc_now

    first_migration = MIGRATIONS[0]
    with duckdb.connect(str(path)) as con:
        con.execute(first_migration.sql)
        con.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
            " checksum VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)"
        )
        con.execute(
            "INSERT INTO schema_migrations VALUES (1, ?, ?, now()::TIMESTAMP)",
            [first_migration.name, first_migration.checksum],
        )
        prev = audit.GENESIS_HASH
        for seq in (1, 2, 3):
            payload = canonical_json({"n": seq})
            event = {
                "seq": seq,
                "occurred_at": utc_now(),
                "actor": "old",
                "action": audit.INSTRUMENT_ATTACH.name,
                "object_type": "thing",
                "object_id": str(seq),
                "study": None,
                "payload_digest": sha256_hex(payload),
                "prev_hash": prev,
            }
            event["hash"] = audit.event_hash(event)
            con.execute(
                "INSERT INTO audit_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [*list(event.values())[:7], payload, *list(event.values())[7:]],
            )
            prev = event["hash"]
        con.execute("INSERT INTO audit_head VALUES (1, 3, ?)", [prev])


def test_an_existing_chain_is_read_as_it_is_then_keyed_from_its_next_event(tmp_path):
    from study import cli

    path = tmp_path / "v1.duckdb"
    _v1_database(path)
    before = path.read_bytes()
    # read-only: verified without migrating or writing
    assert cli.main(["audit", "verify", "--db", str(path)]) == 0
    assert path.read_bytes() == before
    with Store(path) as s:  # migration 2: the old events stay, new ones are keyed
        assert s.read("SELECT keyed_from FROM audit_chain").item() == 4
        with s.transaction() as cur:
            audit.append(cur, actor="new", kind=audit.INSTRUMENT_ATTACH, object_type="thing")
        assert audit_verify.verify(s).ok and audit_verify.verify(s).unchecked is None
        assert "of 1 events" in audit_verify.verify(s, key=None).unchecked
        assert audit_verify.verify(s).unkeyed == 3
        # an old event rewritten with its plain hashes recomputed breaks the first keyed link
        cur = s.cursor()
        cur.execute("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2")
        fields = ", ".join(audit.EVENT_FIELDS)
        prev = cur.execute("SELECT hash FROM audit_events WHERE seq = 1").fetchall()[0][0]
        for seq in (2, 3):
            row = cur.execute(f"SELECT {fields} FROM audit_events WHERE seq = ?", [seq]).fetchall()
            event = dict(zip(audit.EVENT_FIELDS, row[0], strict=True))
            event["prev_hash"] = prev
            prev = audit.event_hash(event)
            cur.execute(
                "UPDATE audit_events SET prev_hash = ?, hash = ? WHERE seq = ?",
                [event["prev_hash"], prev, seq],
            )
        report = audit_verify.verify(s)
        assert (report.ok, report.seq) == (False, 3)
        assert "prev_hash mismatch between events 3 and 4" in report.problem


def test_the_app_says_a_plain_sentence_when_another_process_holds_the_file(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    path = tmp_path / "held.duckdb"
    monkeypatch.setenv("CLINVAL_DB", str(path))
    monkeypatch.setenv("CLINVAL_DEMO_ON_START", "0")
    with held_by_another_process(path):
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    message = at.error[0].value
    assert "in use by another process" in message
    assert str(tmp_path) not in message and "PID" not in message and "duckdb" not in message


# --- the audit key ---------------------------------------------------------------------------


def test_the_key_is_made_with_a_new_database_private_to_its_owner(tmp_path, monkeypatch):
    key_file = tmp_path / "secrets" / "audit.key"
    monkeypatch.setenv("CLINVAL_AUDIT_KEY_FILE", str(key_file))
    with Store(tmp_path / "new.duckdb") as s:
        assert s.audit_key is not None and len(s.audit_key) == 32
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert key_file.read_text().strip() == Store(tmp_path / "new.duckdb").audit_key.hex()


def test_without_its_key_a_keyed_database_refuses_new_events_and_stores_nothing(
    demo_db, tmp_path, monkeypatch
):
    from conftest import OPERATOR

    from study.audit import AuditKeyError
    from study.services import studies

    for key_file in (tmp_path / "missing.key", tmp_path / "other.key"):
        if key_file.name == "other.key":
            key_file.write_text("ab" * 32 + "\n")
        monkeypatch.setenv("CLINVAL_AUDIT_KEY_FILE", str(key_file))
        with Store(demo_db) as s:
            before = s.read("SELECT count(*) FROM audit_events").item()
            with pytest.raises(AuditKeyError, match="Nothing was stored"):
                studies.create_study(s, OPERATOR, "Unkeyed")
            assert s.read("SELECT count(*) FROM audit_events").item() == before
            assert s.read("SELECT count(*) FROM studies WHERE name = 'Unkeyed'").item() == 0
            report = audit_verify.verify(s)
            if key_file.name == "other.key":
                assert not report.ok and "not the key this chain records" in report.problem
            else:
                assert report.ok and "could not check the keys" in report.unchecked


@pytest.mark.parametrize("text", ["", "not hex", "ab" * 16])
def test_a_malformed_key_file_is_refused_not_replaced(tmp_path, monkeypatch, text):
    from study.errors import ConfigError

    key_file = tmp_path / "bad.key"
    key_file.write_text(text)
    monkeypatch.setenv("CLINVAL_AUDIT_KEY_FILE", str(key_file))
    with pytest.raises(ConfigError, match="64 hex digits"):
        Store(tmp_path / "new.duckdb")
    assert key_file.read_text() == text
    assert not (tmp_path / "new.duckdb").exists()


# --- one owner per file, whatever its name -------------------------------------------------------


def test_a_hard_link_a_symlink_and_the_path_share_one_owner_and_lose_no_submit(
    tmp_path, store, rating
):
    # found in issue 19: the owner was keyed by the resolved path, so a hard link opened a second
    # DuckDB connection in the process and 20 of 40 acknowledged submits were gone on reopening
    path = Path(store.path)
    hard, soft = tmp_path / "hard.duckdb", tmp_path / "soft.duckdb"
    hard.hardlink_to(path)
    soft.symlink_to(path)
    relative = path.parent / ".." / path.parent.name / path.name
    spellings = [store, Store(hard), Store(soft), Store(relative)]
    try:
        assert all(s._owner is store._owner for s in spellings)
        acknowledged: list[int] = []
        errors: list[BaseException] = []

        def rate_all(through: Store, rater: str) -> None:
            try:
                who = sign_in(through, rater)
                while (view := rating_service.next_assignment(through, who, rating)) is not None:
                    rating_service.submit_rating(
                        through, who, rating, view["assignment"], full_values(), seconds=1
                    )
                    acknowledged.append(view["assignment"])
            except BaseException as exc:  # reported below: a thread's failure must fail the test
                errors.append(exc)

        threads = [
            threading.Thread(target=rate_all, args=(through, rater))
            # the path, the hard link and the symlink each carry one rater's submits, at once
            for through, rater in zip(spellings[:3], ("r1", "r2", "r3"), strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors
        assert len(acknowledged) == 8
    finally:
        for s in spellings:
            s.close()
    with Store(soft) as reopened:
        done = reopened.read(
            "SELECT id FROM assignments WHERE study = $s AND done ORDER BY id", {"s": rating}
        ).get_column("id")
        submitted = reopened.read(
            "SELECT count(DISTINCT assignment) AS n FROM ratings WHERE status = 'submitted'"
        ).item()
        assert done.to_list() == sorted(acknowledged)
        assert submitted == 8
        assert audit_verify.verify(reopened).ok
    # and as the command line checks it, through the hard link
    assert cli.main(["audit", "verify", "--db", str(hard)], out=io.StringIO()) == 0


def test_a_file_created_through_one_name_is_owned_once(tmp_path):
    # a file that does not exist yet has no identity: the owner takes it once DuckDB made the file
    path = tmp_path / "new.duckdb"
    link = tmp_path / "link.duckdb"
    link.symlink_to(path)  # dangling until the first Store creates the file
    with Store(link) as first_open, Store(path) as second:
        assert second._owner is first_open._owner


def test_a_file_replaced_on_disk_gets_its_own_owner(tmp_path):
    path = tmp_path / "clinval.duckdb"
    with Store(path):
        pass
    with Store(path) as old:
        moved = tmp_path / "old.duckdb"
        path.rename(moved)  # another file takes the name while the old one is open
        with Store(path) as new:
            assert new._owner is not old._owner
            with Store(moved) as old_again:
                assert old_again._owner is old._owner
