"""The DuckDB store: migrations, constraints that refuse impossible rows, transactions."""

from __future__ import annotations

import threading

import polars as pl
import pytest

from study import audit, audit_verify
from study.errors import StudyError
from study.migrations import MIGRATIONS, Migration
from study.store import ConstraintViolation, DatabaseError, SchemaError, Store, first


@pytest.fixture
def store(tmp_path):
    # a folder that does not exist yet: the store creates it
    with Store(tmp_path / "sub" / "clinval.duckdb") as s:
        yield s


def _seed_rows(store: Store) -> None:
    """One valid row in every table, so each impossible row below breaks exactly one rule."""
    cur = store.cursor()
    for sql in (
        "INSERT INTO studies (id, name, created_at, created_by) VALUES ('s1', 'S', now(), 't')",
        "INSERT INTO arms VALUES ('s1', 'llm', 'llm', 'LLM', 'm', '1', NULL)",
        "INSERT INTO arms VALUES ('s1', 'doc', 'clinician', 'Doctors', NULL, NULL, 'GP')",
        "INSERT INTO cases (study, case_id, question, context, specialty, tags) VALUES ('s1', 'c1', 'q?', NULL, NULL, [])",
        "INSERT INTO answers (study, answer_id, case_id, arm_id, text)"
        " VALUES ('s1', 'a1', 'c1', 'llm', 'text')",
        "INSERT INTO answers (study, answer_id, case_id, arm_id, text)"
        " VALUES ('s1', 'a2', 'c1', 'doc', 'text')",
        "INSERT INTO users (id, issuer, subject, created_at) VALUES ('u1', 'iss', 'sub1', now())",
        "INSERT INTO instruments VALUES ('q', '1', NULL, '{}', repeat('a', 64), now())",
        "INSERT INTO items VALUES ('q', '1', 'acc', 1, 'likert', 'ordinal', true,"
        " 'higher_is_better', 'answer', NULL, '{}')",
        "INSERT INTO assignments (id, study, design_key, rater, case_id, seed, algorithm,"
        " shown_order, created_at) VALUES (1, 's1', 'k1', 'u1', 'c1', 7, 'x', 1, now())",
        "INSERT INTO presentations VALUES (1, 1, 's1', 'a1', 1, 'Response A')",
        "INSERT INTO ratings VALUES (1, 1, 1, 1, 'q', '1', 'acc', 4, NULL, 1, 'submitted', 3.0,"
        " now(), now(), 'u1')",
        "INSERT INTO current_ratings VALUES (1, 1, 'acc', 1)",
    ):
        cur.execute(sql)


IMPOSSIBLE_ROWS = [
    (
        "unknown status",
        "INSERT INTO studies (id, name, status, created_at, created_by)"
        " VALUES ('s2', 'S', 'open', now(), 't')",
    ),
    (
        "duplicate study",
        "INSERT INTO studies (id, name, created_at, created_by) VALUES ('s1', 'S', now(), 't')",
    ),
    (
        "blank study name",
        "INSERT INTO studies (id, name, created_at, created_by) VALUES ('s3', '  ', now(), 't')",
    ),
    (
        "llm arm without model version",
        "INSERT INTO arms VALUES ('s1', 'x', 'llm', 'X', 'm', NULL, NULL)",
    ),
    ("unknown arm kind", "INSERT INTO arms VALUES ('s1', 'x', 'robot', 'X', NULL, NULL, NULL)"),
    (
        "arm of a missing study",
        "INSERT INTO arms VALUES ('nope', 'x', 'clinician', 'X', NULL, NULL, NULL)",
    ),
    (
        "duplicate case",
        "INSERT INTO cases (study, case_id, question, context, specialty, tags) VALUES ('s1', 'c1', 'again', NULL, NULL, [])",
    ),
    (
        "empty question",
        "INSERT INTO cases (study, case_id, question, context, specialty, tags) VALUES ('s1', 'c2', '', NULL, NULL, [])",
    ),
    # the not-blank CHECK trims only strings with an edge space: all-space text is one of them
    (
        "blank question",
        "INSERT INTO cases (study, case_id, question, context, specialty, tags) VALUES ('s1', 'c2', '   ', NULL, NULL, [])",
    ),
    (
        "empty answer text",
        "INSERT INTO answers (study, answer_id, case_id, arm_id, text)"
        " VALUES ('s1', 'a9', 'c1', 'llm', '')",
    ),
    (
        "blank answer text",
        "INSERT INTO answers (study, answer_id, case_id, arm_id, text)"
        " VALUES ('s1', 'a9', 'c1', 'llm', '   ')",
    ),
    (
        "answer to a missing case",
        "INSERT INTO answers (study, answer_id, case_id, arm_id, text)"
        " VALUES ('s1', 'a9', 'c9', 'llm', 't')",
    ),
    (
        "answer from a missing arm",
        "INSERT INTO answers (study, answer_id, case_id, arm_id, text)"
        " VALUES ('s1', 'a9', 'c1', 'gpt9', 't')",
    ),
    (
        "second answer of one arm to one case",
        "INSERT INTO answers (study, answer_id, case_id, arm_id, text)"
        " VALUES ('s1', 'a9', 'c1', 'llm', 't')",
    ),
    (
        "malformed parameters JSON",
        "INSERT INTO answers (study, answer_id, case_id, arm_id, text, parameters)"
        " VALUES ('s1', 'a9', 'c1', 'llm', 't', '{bad')",
    ),
    (
        "user with same issuer and subject",
        "INSERT INTO users (id, issuer, subject, created_at) VALUES ('u2', 'iss', 'sub1', now())",
    ),
    ("unknown role", "INSERT INTO roles VALUES ('u1', NULL, '*', 'superuser', now(), 't')"),
    (
        "role scope inconsistent with study",
        "INSERT INTO roles VALUES ('u1', 's1', '*', 'rater', now(), 't')",
    ),
    (
        "item with unknown level",
        "INSERT INTO items VALUES ('q', '1', 'x', 2, 'likert', 'ordinalish', true, 'none',"
        " 'answer', NULL, '{}')",
    ),
    (
        "two items at one position",
        "INSERT INTO items VALUES ('q', '1', 'x', 1, 'likert', 'ordinal', true, 'none',"
        " 'answer', NULL, '{}')",
    ),
    (
        "second assignment of a case to one rater",
        "INSERT INTO assignments (id, study, design_key, rater, case_id, seed, algorithm,"
        " shown_order, created_at) VALUES (2, 's1', 'k2', 'u1', 'c1', 7, 'x', 2, now())",
    ),
    (
        "assignment done without done_at",
        "INSERT INTO assignments (id, study, design_key, rater, case_id, seed, algorithm, status,"
        " done, shown_order, created_at) VALUES (2, 's1', 'k2', 'u1', 'c1', 7, 'x', 'done', true,"
        " 2, now())",
    ),
    (
        "two presentations at one position",
        "INSERT INTO presentations VALUES (2, 1, 's1', 'a2', 1, 'Response B')",
    ),
    (
        "two presentations with one label",
        "INSERT INTO presentations VALUES (2, 1, 's1', 'a2', 2, 'Response A')",
    ),
    (
        "presentation of a missing answer",
        "INSERT INTO presentations VALUES (2, 1, 's1', 'zz', 2, 'Response B')",
    ),
    (
        "same rating revision twice",
        "INSERT INTO ratings VALUES (2, 1, 1, 1, 'q', '1', 'acc', 5, NULL, 1, 'submitted', 3.0,"
        " now(), now(), 'u1')",
    ),
    (
        "submitted rating without value",
        "INSERT INTO ratings VALUES (2, 1, 1, 1, 'q', '1', 'acc', NULL, NULL, 2, 'submitted',"
        " 3.0, now(), now(), 'u1')",
    ),
    (
        "rating slot not matching its presentation",
        "INSERT INTO ratings VALUES (2, 1, 1, 0, 'q', '1', 'acc', 5, NULL, 2, 'submitted', 3.0,"
        " now(), now(), 'u1')",
    ),
    (
        "rating of an item that does not exist",
        "INSERT INTO ratings VALUES (2, 1, 1, 1, 'q', '1', 'nope', 5, NULL, 2, 'submitted', 3.0,"
        " now(), now(), 'u1')",
    ),
    (
        "negative time on task",
        "INSERT INTO ratings VALUES (2, 1, 1, 1, 'q', '1', 'acc', 5, NULL, 2, 'submitted', -1.0,"
        " now(), now(), 'u1')",
    ),
    (
        "unknown rating status",
        "INSERT INTO ratings VALUES (2, 1, 1, 1, 'q', '1', 'acc', 5, NULL, 2, 'final', 3.0,"
        " now(), now(), 'u1')",
    ),
    (
        "non-finite rating value",
        "INSERT INTO ratings VALUES (2, 1, 1, 1, 'q', '1', 'acc', 'inf'::DOUBLE, NULL, 2,"
        " 'submitted', 3.0, now(), now(), 'u1')",
    ),
    ("second current rating for one item", "INSERT INTO current_ratings VALUES (1, 1, 'acc', 1)"),
    (
        "protocol version 2 without a reason",
        "INSERT INTO protocols VALUES ('s1', 2, '{}', repeat('a', 64), NULL, now(), 't')",
    ),
]


@pytest.mark.parametrize(("what", "sql"), IMPOSSIBLE_ROWS, ids=[w for w, _ in IMPOSSIBLE_ROWS])
def test_the_database_refuses_impossible_rows(store, what, sql):  # noqa: ARG001
    _seed_rows(store)
    before = store.read("SELECT count(*) AS n FROM ratings").item()
    with pytest.raises(DatabaseError) as info:
        store.cursor().execute(sql)
    # a constraint, or (for malformed JSON) a conversion error, never an accepted row
    assert "Constraint" in type(info.value).__name__ or "Conversion" in type(info.value).__name__
    assert store.read("SELECT count(*) AS n FROM ratings").item() == before


def test_valid_seed_rows_are_accepted(store):
    _seed_rows(store)
    assert store.read("SELECT count(*) FROM current_ratings").item() == 1


def test_migrations_apply_once_and_are_recorded(tmp_path):
    path = tmp_path / "db.duckdb"
    with Store(path) as s:
        recorded = s.read("SELECT version, name, checksum FROM schema_migrations ORDER BY version")
        assert recorded.rows() == [(m.version, m.name, m.checksum) for m in MIGRATIONS]
        assert s.migrate() == []
    with Store(path) as s:  # reopening applies nothing and keeps one row per migration
        assert s.schema_version() == MIGRATIONS[-1].version
        assert s.read("SELECT count(*) FROM schema_migrations").item() == len(MIGRATIONS)


@pytest.mark.parametrize("read_only", [False, True])
def test_a_database_whose_applied_migration_changed_is_refused(tmp_path, read_only):
    # read-only too (issue 19): `audit verify` said "intact" on a database the app refuses
    path = tmp_path / "db.duckdb"
    with Store(path) as s:
        s.cursor().execute("UPDATE schema_migrations SET checksum = 'tampered' WHERE version = 1")
    with pytest.raises(SchemaError, match="checksum that differs"):
        Store(path, read_only=read_only)


@pytest.mark.parametrize("read_only", [False, True])
def test_a_database_from_newer_code_is_refused(tmp_path, read_only):
    path = tmp_path / "db.duckdb"
    with Store(path) as s:
        s.cursor().execute("INSERT INTO schema_migrations VALUES (999, 'future', 'x', now())")
    with pytest.raises(SchemaError, match="newer than this code"):
        Store(path, read_only=read_only)


def test_pending_migrations_are_applied_in_order_on_open(store):
    extra = (*MIGRATIONS, Migration(len(MIGRATIONS) + 1, "note", "CREATE TABLE notes (x INTEGER)"))
    assert store.migrate(extra) == [len(MIGRATIONS) + 1]
    assert store.migrate(extra) == []
    assert store.read("SELECT count(*) FROM notes").item() == 0


def test_migrations_with_a_gap_are_refused(store):
    with pytest.raises(SchemaError, match="without gaps"):
        store.migrate((*MIGRATIONS, Migration(len(MIGRATIONS) + 2, "gap", "SELECT 1")))


def test_a_failing_migration_leaves_the_schema_as_it_was(store):
    broken = (
        *MIGRATIONS,
        Migration(len(MIGRATIONS) + 1, "broken", "CREATE TABLE t (x INT); SELEC"),
    )
    with pytest.raises(Exception, match="syntax error"):
        store.migrate(broken)
    assert store.schema_version() == MIGRATIONS[-1].version
    assert (
        store.read("SELECT count(*) FROM information_schema.tables WHERE table_name = 't'").item()
        == 0
    )


def test_rollback_leaves_rows_and_audit_untouched(store):
    with store.transaction() as cur:
        cur.execute(
            "INSERT INTO studies (id, name, created_at, created_by) VALUES ('s1', 'S', now(), 't')"
        )
        audit.append(cur, actor="t", kind=audit.STUDY_CREATE, object_type="study", object_id="s1")
    with pytest.raises(RuntimeError), store.transaction() as cur:
        cur.execute("UPDATE studies SET status = 'locked' WHERE id = 's1'")
        audit.append(cur, actor="t", kind=audit.STUDY_RATING, object_type="study", object_id="s1")
        raise RuntimeError("boom")
    assert store.read("SELECT status FROM studies").item() == "draft"
    assert store.read("SELECT count(*) FROM audit_events").item() == 1
    assert audit_verify.verify(store).ok


def test_a_constraint_failure_inside_a_transaction_rolls_back_earlier_writes(store):
    _seed_rows(store)
    with pytest.raises(ConstraintViolation), store.transaction() as cur:
        cur.execute(
            "INSERT INTO cases (study, case_id, question, context, specialty, tags) VALUES ('s1', 'c2', 'new', NULL, NULL, [])"
        )
        cur.execute(
            "INSERT INTO cases (study, case_id, question, context, specialty, tags) VALUES ('s1', 'c1', 'duplicate', NULL, NULL, [])"
        )
    assert store.read("SELECT count(*) FROM cases").item() == 1


def test_nested_transactions_join_the_outer_one(store):
    _seed_rows(store)
    with pytest.raises(RuntimeError), store.transaction() as outer:
        with store.transaction() as inner:
            assert inner is outer
            inner.execute(
                "INSERT INTO cases (study, case_id, question, context, specialty, tags) VALUES ('s1', 'c2', 'new', NULL, NULL, [])"
            )
        raise RuntimeError("outer fails after the inner block finished")
    assert store.read("SELECT count(*) FROM cases").item() == 1


def test_insert_frame_writes_all_rows_with_constants(store):
    _seed_rows(store)
    frame = pl.DataFrame({"case_id": ["c2", "c3"], "question": ["a?", "b?"], "tags": [["x"], []]})
    with store.transaction() as cur:
        assert store.insert_frame(cur, "cases", frame, constants={"study": "s1"}) == 2
    stored = store.read("SELECT case_id, tags FROM cases WHERE case_id <> 'c1' ORDER BY case_id")
    assert stored.rows() == [("c2", ["x"]), ("c3", [])]


@pytest.mark.parametrize("name", ["cases; DROP TABLE studies", "", 'ca"ses', "cäses"])
def test_insert_frame_refuses_identifiers_that_are_not_plain(store, name):
    with pytest.raises(ValueError, match="identifier"), store.transaction() as cur:
        store.insert_frame(cur, name, pl.DataFrame({"a": [1]}))


def test_reads_from_many_threads_each_take_their_own_cursor(store):
    _seed_rows(store)
    errors, results = [], []

    def work():
        try:
            for _ in range(20):
                results.append(store.read("SELECT count(*) FROM answers").item())
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert results == [2] * 160


def test_memory_store_works_for_tests():
    with Store(":memory:") as s:
        assert s.schema_version() == MIGRATIONS[-1].version


def test_first_returns_none_for_no_rows(store):
    assert first(store.cursor().execute("SELECT 1 WHERE false").fetchall()) is None


def _case_count(store: Store) -> int:
    return store.read("SELECT count(*) FROM cases").item()


def test_reads_inside_a_transaction_see_its_writes_and_other_threads_do_not(store):
    _seed_rows(store)
    seen_elsewhere = []

    def other_thread():
        seen_elsewhere.append(_case_count(store))

    with store.transaction() as cur:
        cur.execute(
            "INSERT INTO cases (study, case_id, question, context, specialty, tags) VALUES ('s1', 'c2', 'new', NULL, NULL, [])"
        )
        assert _case_count(store) == 2  # store.read on this thread: the transaction's cursor
        lent = store.cursor()
        assert lent.execute("SELECT count(*) FROM cases").fetchall() == [(2,)]
        lent.close()  # must not end the transaction
        cur.execute(
            "INSERT INTO cases (study, case_id, question, context, specialty, tags) VALUES ('s1', 'c3', 'newer', NULL, NULL, [])"
        )
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    assert seen_elsewhere == [1]  # another thread reads the committed state only
    assert _case_count(store) == 3


def test_a_rollback_undoes_what_reads_inside_the_transaction_saw(store):
    _seed_rows(store)
    with pytest.raises(KeyboardInterrupt), store.transaction() as cur:
        cur.execute(
            "INSERT INTO cases (study, case_id, question, context, specialty, tags) VALUES ('s1', 'c2', 'new', NULL, NULL, [])"
        )
        assert _case_count(store) == 2
        raise KeyboardInterrupt  # an interrupt rolls back like any error
    assert _case_count(store) == 1
    # the store is usable afterwards, by this thread and with fresh cursors
    with store.transaction() as cur:
        cur.execute(
            "INSERT INTO cases (study, case_id, question, context, specialty, tags) VALUES ('s1', 'c2', 'again', NULL, NULL, [])"
        )
    assert _case_count(store) == 2


def test_a_failed_nested_block_rolls_back_the_outer_one_even_if_caught(store):
    # DuckDB has no savepoints: the inner block's writes cannot be undone alone, so the outer
    # transaction must not commit them half-done
    _seed_rows(store)
    with pytest.raises(StudyError, match="rolled back"), store.transaction() as outer:
        outer.execute(
            "INSERT INTO cases (study, case_id, question, context, specialty, tags) VALUES ('s1', 'c2', 'kept?', NULL, NULL, [])"
        )
        try:
            with store.transaction() as inner:
                inner.execute(
                    "INSERT INTO cases (study, case_id, question, context, specialty, tags) VALUES ('s1', 'c3', 'half', NULL, NULL, [])"
                )
                raise RuntimeError("the inner step fails after writing")
        except RuntimeError:
            pass
    assert _case_count(store) == 1
