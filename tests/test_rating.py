"""A rater's work (``study.services.rating``): the queue, submissions, revisions, and every
refusal: outside rating, another rater's assignment, one's own answer, invalid values, values
that break an instrument's consistency rules."""

from __future__ import annotations

import threading

import polars as pl
import pytest
from conftest import (
    ARMS,
    CASES,
    INSTRUMENT,
    OPERATOR,
    RATERS,
    add_person,
    answers_rows,
    attach_source_guess,
    full_values,
    make_draft,
    new_study,
    open_rating,
    sign_in,
    write_jsonl,
)

from analysis import columns as col
from study import audit, audit_verify
from study.errors import ConflictError, NotFoundError, PermissionDenied, StateError, ValidationError
from study.facts import Facts
from study.instruments import get_builtin
from study.services import content, design, exports, lifecycle, people
from study.services import instrument_library as instruments
from study.services import rating as rating_service
from study.store import Store

# --- the queue ----------------------------------------------------------------------------------


def test_next_assignment_walks_the_queue_by_the_done_flag(store, rating):
    r1 = sign_in(store, "r1")
    seen = []
    while (view := rating_service.next_assignment(store, r1, rating)) is not None:
        assert [p["label"] for p in view["presentations"]] == ["Response A", "Response B"]
        assert "arm_id" not in view["presentations"][0]  # blinded
        assert view["remaining"] == view["total"] - len(seen)
        seen.append(view["case_id"])
        rating_service.submit_rating(
            store, r1, rating, view["assignment"], full_values(), seconds=5
        )
    assert len(seen) == len(set(seen)) == rating_service.rater_queue(store, r1, rating).height
    assert rating_service.rater_queue(store, r1, rating).get_column("done").all()


# --- submitting ---------------------------------------------------------------------------------


def test_submit_is_refused_outside_rating(store, draft):
    coordinator = sign_in(store, "coordinator")
    r1 = sign_in(store, "r1")
    design.lock_protocol(store, coordinator, draft, {})
    design.make_assignments(
        store, coordinator, draft, raters=["r1", "r2"], raters_per_case=1, seed=1
    )
    assignment = rating_service.rater_queue(store, r1, draft).get_column("assignment")[0]
    with pytest.raises(StateError, match="only while rating"):
        rating_service.submit_rating(store, r1, draft, assignment, full_values())


def test_double_submit_leaves_one_submitted_rating(store, rating):
    r2 = sign_in(store, "r2")
    view = rating_service.next_assignment(store, r2, rating)
    rating_service.submit_rating(store, r2, rating, view["assignment"], full_values())
    with pytest.raises(ConflictError, match="submitted already"):
        rating_service.submit_rating(store, r2, rating, view["assignment"], full_values())
    counts = store.read(
        "SELECT item_key, count(*) AS n FROM ratings WHERE assignment = $a AND status = 'submitted'"
        " GROUP BY item_key ORDER BY item_key",
        {"a": view["assignment"]},
    )
    assert counts.rows() == [("better", 1), ("quality", 2)]  # quality: one per response shown


def test_concurrent_double_submit_from_two_threads_stores_one(store, rating):
    r3 = sign_in(store, "r3")
    view = rating_service.next_assignment(store, r3, rating)
    outcomes = []

    def submit():
        try:
            rating_service.submit_rating(store, r3, rating, view["assignment"], full_values())
            outcomes.append("ok")
        except ConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict", "conflict", "conflict", "ok"]
    assert (
        store.read(
            "SELECT count(*) FROM current_ratings WHERE assignment = $a", {"a": view["assignment"]}
        ).item()
        == 3
    )


def _after_the_check(monkeypatch, then):
    """Make ``submit_rating`` run ``then()`` between its checks (the read of the assignment, with
    the caller's roles) and its transaction: what another tab or the coordinator may do in
    that gap."""
    checked = rating_service._own_assignment

    def check_then(*args, **kwargs):
        row = checked(*args, **kwargs)
        then()
        return row

    monkeypatch.setattr(rating_service, "_own_assignment", check_then)


def test_a_second_tab_that_read_the_case_before_the_first_stored_it_is_refused(
    store, rating, monkeypatch
):
    r3 = sign_in(store, "r3")
    view = rating_service.next_assignment(store, r3, rating)
    both_read = threading.Barrier(2, timeout=30)
    _after_the_check(monkeypatch, both_read.wait)
    outcomes = []

    def submit():
        try:
            rating_service.submit_rating(store, r3, rating, view["assignment"], full_values())
            outcomes.append("ok")
        except ConflictError:
            outcomes.append("conflict")

    tabs = [threading.Thread(target=submit) for _ in range(2)]
    for tab in tabs:
        tab.start()
    for tab in tabs:
        tab.join()
    # both passed the checks while the case was open; the transaction's gate let one through
    assert sorted(outcomes) == ["conflict", "ok"]
    stored = store.read(
        "SELECT count(*) AS n, count(DISTINCT revision) AS revisions FROM ratings"
        " WHERE assignment = $a",
        {"a": view["assignment"]},
    )
    assert stored.rows() == [(3, 1)]
    assert audit_verify.verify(store).ok


def test_rating_closed_between_the_checks_and_the_write_stores_nothing(store, rating, monkeypatch):
    r1 = sign_in(store, "r1")
    view = rating_service.next_assignment(store, r1, rating)
    coordinator = sign_in(store, "coordinator")
    _after_the_check(monkeypatch, lambda: lifecycle.close_rating(store, coordinator, rating))
    with pytest.raises(StateError, match="only while rating"):
        rating_service.submit_rating(store, r1, rating, view["assignment"], full_values())
    assert store.read("SELECT count(*) FROM ratings").item() == 0
    done = store.read("SELECT done FROM assignments WHERE id = $a", {"a": view["assignment"]})
    assert done.item() is False
    assert audit_verify.verify(store).ok


def test_a_case_shown_after_rating_closed_is_not_stamped(store, rating):
    r1 = sign_in(store, "r1")
    view = rating_service.next_assignment(store, r1, rating)
    lifecycle.close_rating(store, sign_in(store, "coordinator"), rating)
    with pytest.raises(StateError, match="only while rating"):
        rating_service.mark_presented(store, r1, rating, view["assignment"])
    stamp = store.read(
        "SELECT presented_at FROM assignments WHERE id = $a", {"a": view["assignment"]}
    )
    assert stamp.item() is None


class _Counted:
    """The store's connection, counting the statements of every cursor it hands out."""

    def __init__(self, conn, counts: list[str]) -> None:
        self._conn, self._counts = conn, counts

    def cursor(self):
        return _CountedCursor(self._conn.cursor(), self._counts)

    def __getattr__(self, name):
        return getattr(self._conn, name)


class _CountedCursor:
    def __init__(self, cursor, counts: list[str]) -> None:
        self._cursor, self._counts = cursor, counts

    def execute(self, sql, *args, **kwargs):
        self._counts.append(sql)
        self._cursor.execute(sql, *args, **kwargs)
        return self

    def sql(self, sql, *args, **kwargs):
        self._counts.append(sql)
        return self._cursor.sql(sql, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._cursor, name)


def test_a_case_rated_and_the_next_shown_cost_few_statements(store, rating, monkeypatch):
    """What the rating screen runs per case (submit, the next case, its first showing) stays
    within 19 DuckDB statements (35 before the checks were read together), and the checks of
    submit and first showing read no presentation, answer, case or instrument again: what
    cannot change is kept (``store.facts``), since each sub-plan of a statement costs the
    server about a millisecond under a full queue, whatever the table's size."""
    r1 = sign_in(store, "r1")
    view = rating_service.next_assignment(store, r1, rating)
    rating_service.mark_presented(store, r1, rating, view["assignment"])
    # one case first: the study's instruments and r1's names are read once per process
    rating_service.submit_rating(store, r1, rating, view["assignment"], full_values())
    view = rating_service.next_assignment(store, r1, rating)
    rating_service.mark_presented(store, r1, rating, view["assignment"])
    statements: list[str] = []
    owner = store._owner
    monkeypatch.setattr(owner, "conn", _Counted(owner.conn, statements))
    rating_service.submit_rating(store, r1, rating, view["assignment"], full_values())
    after = rating_service.next_assignment(store, r1, rating)
    rating_service.mark_presented(store, r1, rating, after["assignment"])
    assert after["assignment"] != view["assignment"]
    assert len(statements) <= 19, "\n".join(statements)
    checks = [s for s in statements if "FROM roles r WHERE r.user_id" in s]
    assert len(checks) == 3  # submit, next case, first showing: each reads the roles afresh
    for check in checks:
        for table in ("presentations", "answers", "cases", "study_instruments", "users u"):
            assert table not in check, check
    # the next case's view is read once, in one statement, and brings its facts along
    assert sum("presentations" in s for s in statements) == 1
    # a locked protocol version never changes: only its number is read again
    assert not any("SELECT content FROM protocols" in s for s in statements)


def test_a_submission_presents_the_next_case_in_its_own_transaction(store, rating, monkeypatch):
    """The rating screen submits with ``present_next``: the case the queue offers next is
    stamped as presented, with its ``assignment.present`` event, in the submission's
    transaction, so the screen needs no first-showing call (its own transaction, access check
    and commit) for it: one commit per case, and fewer statements than submit + next + first
    showing. The record still proves itself (``audit verify``)."""
    r1 = sign_in(store, "r1")
    view = rating_service.next_assignment(store, r1, rating)
    assert view["presented_at"] is None
    rating_service.mark_presented(store, r1, rating, view["assignment"])
    rating_service.submit_rating(
        store, r1, rating, view["assignment"], full_values(), present_next=True
    )
    view = rating_service.next_assignment(store, r1, rating)
    assert view["presented_at"] is not None  # stamped by the submission
    statements: list[str] = []
    owner = store._owner
    monkeypatch.setattr(owner, "conn", _Counted(owner.conn, statements))
    rating_service.submit_rating(
        store, r1, rating, view["assignment"], full_values(), present_next=True
    )
    after = rating_service.next_assignment(store, r1, rating)
    assert after["assignment"] != view["assignment"] and after["presented_at"] is not None
    assert sum(s.strip() == "COMMIT" for s in statements) <= 1, "\n".join(statements)
    assert len(statements) <= 19, "\n".join(statements)
    events = store.read(
        "SELECT object_id, payload FROM audit_events WHERE action = 'assignment.present'"
        " ORDER BY seq"
    )
    assert events.get_column("object_id").to_list()[-1] == str(after["assignment"])
    # the screen's first-showing call, were it made, changes nothing: the stamp stays
    assert (
        rating_service.mark_presented(store, r1, rating, after["assignment"])
        == (after["presented_at"])
    )
    assert audit_verify.verify(store).ok


def test_a_revision_presents_nothing(store, rating):
    """Revising a rated case shows no new case: ``present_next`` stamps only after a first
    submission, so the queue's next case keeps its stamp for when it is really shown."""
    r1 = sign_in(store, "r1")
    first_case = rating_service.next_assignment(store, r1, rating)["assignment"]
    rating_service.submit_rating(store, r1, rating, first_case, full_values())
    waiting = rating_service.next_assignment(store, r1, rating)
    assert waiting["presented_at"] is None
    rating_service.submit_rating(
        store, r1, rating, first_case, full_values(quality_a=2), revise=True, present_next=True
    )
    assert rating_service.next_assignment(store, r1, rating)["presented_at"] is None
    assert (
        store.read(
            "SELECT count(*) AS n FROM audit_events WHERE action = 'assignment.present'"
        ).item()
        == 0
    )


def _warm(store, caller, study) -> int:
    """Show ``caller`` their next case as the rating screen does; its assignment id, whose facts
    are then kept (``store.facts``)."""
    view = rating_service.next_assignment(store, caller, study)
    rating_service.mark_presented(store, caller, study, view["assignment"])
    assert store.facts.get(("assignment", view["assignment"])) is not None
    return view["assignment"]


def test_kept_facts_never_cross_to_another_database_with_the_same_ids(store, rating, tmp_path):
    """Assignment ids repeat across databases: the facts kept for one database's assignment
    (its rater, its answers) are never used for another database's assignment of that id."""
    warm = _warm(store, sign_in(store, "r1"), rating)
    other_folder = tmp_path / "other"
    other_folder.mkdir()
    with Store(other_folder / "clinval.duckdb") as other:
        study = make_draft(other, other_folder)
        coordinator = sign_in(other, "coordinator")
        design.lock_protocol(other, coordinator, study, {})
        # r1 rates nothing in this database: every assignment here is r2's or r3's
        design.make_assignments(
            other, coordinator, study, raters=["r2", "r3"], raters_per_case=2, seed=42
        )
        lifecycle.start_rating(other, coordinator, study)
        assert study == rating  # the same study id, and the same assignment id below
        owner = other.read("SELECT rater FROM assignments WHERE id = $a", {"a": warm}).item()
        assert owner in ("r2", "r3")
        assert other.facts is not store.facts
        with pytest.raises(PermissionDenied, match="another rater"):
            rating_service.mark_presented(other, sign_in(other, "r1"), study, warm)
        with pytest.raises(PermissionDenied, match="another rater"):
            rating_service.submit_rating(other, sign_in(other, "r1"), study, warm, full_values())
        assert other.read("SELECT count(*) FROM ratings").item() == 0
        # its own rater is served from its own facts
        assert rating_service.mark_presented(other, sign_in(other, owner), study, warm)
        rating_service.submit_rating(other, sign_in(other, owner), study, warm, full_values())
        assert other.read("SELECT count(*) FROM ratings").item() == 3
    # and the first database still answers from its own
    with pytest.raises(PermissionDenied, match="another rater"):
        rating_service.submit_rating(store, sign_in(store, owner), rating, warm, full_values())
    rating_service.submit_rating(store, sign_in(store, "r1"), rating, warm, full_values())


def test_a_revoked_rater_is_refused_at_once_though_the_facts_are_kept(store, rating):
    r1 = sign_in(store, "r1")
    warm = _warm(store, r1, rating)
    people.revoke_role(store, OPERATOR, rating, "r1", "rater")
    for call in (
        lambda: rating_service.submit_rating(store, r1, rating, warm, full_values()),
        lambda: rating_service.mark_presented(store, r1, rating, warm),
        lambda: rating_service.next_assignment(store, r1, rating),
    ):
        with pytest.raises(PermissionDenied):
            call()
    assert store.read("SELECT count(*) FROM ratings").item() == 0
    denied = store.read(
        "SELECT count(*) FROM audit_events WHERE action = $k AND actor = 'r1'",
        {"k": audit.ACCESS_DENIED.name},
    ).item()
    assert denied == 3


def test_a_withdrawn_assignment_or_a_closed_study_is_refused_though_the_facts_are_kept(
    store, rating
):
    r1 = sign_in(store, "r1")
    warm = _warm(store, r1, rating)
    # no service withdraws an assignment yet; the coordinator's withdrawal is this update
    with store.transaction() as cur:
        cur.execute("UPDATE assignments SET status = 'withdrawn' WHERE id = ?", [warm])
    with pytest.raises(StateError, match="withdrawn"):
        rating_service.submit_rating(store, r1, rating, warm, full_values())
    assert store.read("SELECT count(*) FROM ratings").item() == 0
    other = _warm(store, r1, rating)
    assert other != warm  # a withdrawn case leaves the queue
    lifecycle.close_rating(store, sign_in(store, "coordinator"), rating)
    with pytest.raises(StateError, match="only while rating"):
        rating_service.submit_rating(store, r1, rating, other, full_values())
    assert store.read("SELECT count(*) FROM ratings").item() == 0


def test_a_revision_replaces_the_current_rating_and_keeps_history(store, rating):
    r1 = sign_in(store, "r1")
    view = rating_service.next_assignment(store, r1, rating)
    a = view["assignment"]
    rating_service.submit_rating(store, r1, rating, a, full_values(quality_a=2))
    rating_service.submit_rating(store, r1, rating, a, {"quality": {"Response A": 5}}, revise=True)
    # the study is still blind: only the operator at the command line exports it now
    export = exports.export_ratings_long(store, OPERATOR, rating)
    mine = export.filter((pl.col(col.RATER) == "r1") & (pl.col(col.ITEM) == "quality"))
    assert mine.filter(pl.col(col.LABEL) == "Response A").select(
        col.VALUE, col.REVISION
    ).rows() == [(5.0, 2)]
    history = store.read(
        "SELECT revision, value_num FROM ratings r JOIN presentations p ON p.id = r.presentation"
        " WHERE r.assignment = $a AND p.label = 'Response A' AND item_key = 'quality'"
        " ORDER BY revision",
        {"a": a},
    )
    assert history.rows() == [(1, 2.0), (2, 5.0)]


def test_a_revision_keeps_unchanged_values_as_they_are_and_one_that_changes_nothing_is_refused(
    store, rating
):
    # a screen that re-sends every value must not make each a new revision (with the revision's
    # time on task, and a severe-harm value raising its alert again)
    r1 = sign_in(store, "r1")
    a = rating_service.next_assignment(store, r1, rating)["assignment"]
    rating_service.submit_rating(store, r1, rating, a, full_values(), seconds=60.0)
    with pytest.raises(ValidationError, match="no value changed"):
        rating_service.submit_rating(store, r1, rating, a, full_values(), revise=True)
    # a revision records no time on task: a revision's few seconds would be counted beside the
    # first submission's in a time-per-case summary
    with pytest.raises(ValidationError, match="a revision records no time on task"):
        rating_service.submit_rating(
            store, r1, rating, a, full_values(quality_a=1), seconds=2.0, revise=True
        )
    rating_service.submit_rating(store, r1, rating, a, full_values(quality_a=1), revise=True)
    revisions = store.read(
        "SELECT item_key, revision, seconds_on_task FROM ratings WHERE assignment = $a"
        " AND revision > 1",
        {"a": a},
    ).rows()
    assert revisions == [("quality", 2, None)]
    assert audit_verify.verify(store).ok


@pytest.mark.parametrize(
    ("values", "column", "reason"),
    [
        ({"quality": {"Response A": 4}, "better": "A"}, "quality", "required"),
        ({"quality": {"Response A": 4, "Response B": 9}, "better": "A"}, "quality", "not one of"),
        ({"quality": {"Response A": 4, "Response B": 3}}, "better", "required"),
        ({"quality": {"Response A": 4, "Response B": 3}, "better": "C"}, "better", "not one of"),
        ({**full_values(), "mood": 3}, "mood", "not an item"),
        ({"quality": 4, "better": "A"}, "quality", "one value per response"),
        (
            {"quality": {"Response Z": 4, "Response B": 3}, "better": "A"},
            "quality",
            "no 'Response Z'",
        ),
        ({**full_values(), "comment": {"Response A": 7}}, "comment", "takes text"),
    ],
)
def test_invalid_values_are_refused_and_nothing_is_stored(store, rating, values, column, reason):
    r1 = sign_in(store, "r1")
    view = rating_service.next_assignment(store, r1, rating)
    before = audit_verify.verify(store).events
    with pytest.raises(ValidationError) as info:
        rating_service.submit_rating(store, r1, rating, view["assignment"], values)
    assert any(p.column == column and reason in p.reason for p in info.value.problems), (
        info.value.problems
    )
    assert store.read("SELECT count(*) FROM ratings").item() == 0
    assert rating_service.next_assignment(store, r1, rating)["assignment"] == view["assignment"]
    assert audit_verify.verify(store).events == before


def test_only_the_assigned_rater_may_submit(store, rating):
    r1 = sign_in(store, "r1")
    view = rating_service.next_assignment(store, r1, rating)
    with pytest.raises(PermissionDenied):
        rating_service.submit_rating(store, sign_in(store, "r2"), rating, view["assignment"], {})
    with pytest.raises(NotFoundError):
        rating_service.submit_rating(store, r1, rating, 10_000, {})


def test_negative_seconds_are_refused(store, rating):
    r1 = sign_in(store, "r1")
    view = rating_service.next_assignment(store, r1, rating)
    with pytest.raises(ValidationError, match="seconds"):
        rating_service.submit_rating(
            store, r1, rating, view["assignment"], full_values(), seconds=-1
        )


def test_revise_of_a_never_submitted_assignment_is_refused(store, rating):
    r1 = sign_in(store, "r1")
    view = rating_service.next_assignment(store, r1, rating)
    with pytest.raises(StateError, match="not been submitted yet"):
        rating_service.submit_rating(
            store, r1, rating, view["assignment"], {"quality": {"Response A": 3}}, revise=True
        )
    assert store.read("SELECT count(*) FROM ratings").item() == 0
    assert rating_service.next_assignment(store, r1, rating)["assignment"] == view["assignment"]


def test_submit_refuses_an_own_answer_matched_ignoring_case(store):
    # the submit check is the last line of defence for an assignment written around the services
    # (persist_assignments refuses it); it must match authors the same way
    study = new_study(store, "Gaps")
    coordinator = sign_in(store, "coordinator")
    content.add_arms(store, coordinator, study, pl.DataFrame(ARMS))
    content.add_cases(store, coordinator, study, pl.DataFrame(CASES))
    content.add_answers(
        store,
        coordinator,
        study,
        pl.DataFrame(answers_rows(author="DR1"), infer_schema_length=None),
    )
    instruments.add_instrument(store, coordinator, INSTRUMENT)
    instruments.attach_instrument(store, coordinator, study, INSTRUMENT.key, INSTRUMENT.version)
    people.ensure_user(store, OPERATOR, issuer="i", subject="s-dr1", user_id="dr1")
    people.grant_role(store, coordinator, study, "dr1", "rater")
    design.lock_protocol(store, coordinator, study, {})
    cur = store.cursor()
    cur.execute(
        "INSERT INTO assignments (id, study, design_key, rater, case_id, seed, algorithm,"
        " shown_order, created_at) VALUES (1, ?, 'k1', 'dr1', 'c1', 1, 'hand', 1, now())",
        [study],
    )
    cur.execute(
        "INSERT INTO presentations VALUES (1, 1, ?, 'c1-clin', 1, 'Response A'),"
        " (2, 1, ?, 'c1-llm', 2, 'Response B')",
        [study, study],
    )
    lifecycle.start_rating(store, coordinator, study)
    with pytest.raises(PermissionDenied, match="they wrote"):
        rating_service.submit_rating(store, sign_in(store, "dr1"), study, 1, full_values())
    assert store.read("SELECT count(*) FROM ratings").item() == 0
    # the assignment's facts and dr1's names are kept now: decided from them, the same refusal
    assert store.facts.get(("assignment", 1)) is not None
    assert store.facts.get(("person", "dr1")) is not None
    for call in (
        lambda: rating_service.submit_rating(store, sign_in(store, "dr1"), study, 1, full_values()),
        lambda: rating_service.mark_presented(store, sign_in(store, "dr1"), study, 1),
    ):
        with pytest.raises(PermissionDenied, match="they wrote"):
            call()
    assert store.read("SELECT count(*) FROM ratings").item() == 0
    assert store.read("SELECT presented_at FROM assignments WHERE id = 1").item() is None


def test_value_errors_name_the_response_and_are_not_repeated(store, rating):
    r1 = sign_in(store, "r1")
    view = rating_service.next_assignment(store, r1, rating)
    values = {"quality": {"Response A": 6, "Response B": 6}, "better": "A"}
    with pytest.raises(ValidationError) as info:
        rating_service.submit_rating(store, r1, rating, view["assignment"], values)
    reasons = [p.reason for p in info.value.problems]
    assert len(reasons) == len(set(reasons)) == 2
    assert reasons[0].startswith("item 'quality', Response A: 6 is not one of")
    assert reasons[1].startswith("item 'quality', Response B: 6 is not one of")
    # a repeated identical problem is listed once
    values = {"quality": {"Response A": 4, "Response B": 3}, "better": "A", "mood": 1}
    with pytest.raises(ValidationError) as info:
        rating_service.submit_rating(store, r1, rating, view["assignment"], {**values, "x": 1})
    assert len(info.value.problems) == len(set(info.value.problems)) == 2


# --- instrument consistency rules at submit ----------------------------------------------------


@pytest.fixture
def harm_rating(store, tmp_path):
    """A study rated with the built-in harm instrument, whose rules tie its two harm items."""
    study = new_study(store, "Harm study", synthetic=True)
    coordinator = sign_in(store, "coordinator")
    content.import_arms(store, coordinator, study, write_jsonl(tmp_path / "arms.jsonl", ARMS))
    content.import_cases(store, coordinator, study, write_jsonl(tmp_path / "cases.jsonl", CASES))
    content.import_answers(
        store, coordinator, study, write_jsonl(tmp_path / "answers.jsonl", answers_rows())
    )
    harm = get_builtin("harm")
    instruments.add_instrument(store, coordinator, harm)
    instruments.attach_instrument(store, coordinator, study, harm.key, harm.version)
    add_person(store, "r1")
    people.grant_role(store, coordinator, study, "r1", "rater")
    design.lock_protocol(store, coordinator, study, {"primary_item": "could_cause_harm"})
    design.make_assignments(store, coordinator, study, raters=["r1"], raters_per_case=1, seed=1)
    lifecycle.start_rating(store, coordinator, study)
    return study, rating_service.next_assignment(store, sign_in(store, "r1"), study)["assignment"]


HARM_B_CONSISTENT = {"could_cause_harm": {"Response B": 1}, "harm_extent": {"Response B": 1}}
"""A revision of Response B's two harm items that keeps their rule: could cause harm, mild."""


def harm_values(extent_b=0, could_b=0):
    return {
        "harm_extent": {"Response A": 0, "Response B": extent_b},
        "harm_likelihood": {"Response A": 0, "Response B": 0},
        "could_cause_harm": {"Response A": 0, "Response B": could_b},
    }


def test_a_rating_that_breaks_a_consistency_rule_is_refused(store, harm_rating):
    study, assignment = harm_rating
    with pytest.raises(ValidationError) as caught:
        rating_service.submit_rating(
            store, sign_in(store, "r1"), study, assignment, harm_values(extent_b=2)
        )
    # in the words the rater read, named by the item to change (so the screen puts
    # it beside that field); check_consistency keeps the importer's terse form
    [problem] = caught.value.problems
    assert problem.column == "harm_extent"
    assert problem.reason == (
        'Response B: You answered "No" to "Could acting on this answer cause the patient harm?",'
        ' so "If someone acted on this answer, what is the extent of possible harm?" cannot be'
        ' "Severe harm or death": pick "No harm", or change the first answer.'
    )
    assert exports.export_ratings_long(store, OPERATOR, study).height == 0


def test_a_comment_is_stored_with_the_submission_and_a_revision_keeps_the_first(store, harm_rating):
    # the rating screen's comment box; stored as an imported rating's comment is
    # (rating_comments, with the submission's first row), audited, and shown on revision
    study, assignment = harm_rating
    r1 = sign_in(store, "r1")
    rating_service.submit_rating(store, r1, study, assignment, harm_values(), comment="Unclear.")
    view = rating_service.assignment_view(store, r1, study, assignment)
    assert view["comment"] == "Unclear."
    rating_service.submit_rating(
        store,
        r1,
        study,
        assignment,
        HARM_B_CONSISTENT,
        revise=True,
        comment="B could harm.",
    )
    assert rating_service.assignment_view(store, r1, study, assignment)["comment"] == (
        "B could harm."
    )
    stored = store.read(
        "SELECT k.comment, r.revision FROM rating_comments k JOIN ratings r ON r.id = k.rating"
        " ORDER BY k.rating"
    ).rows()
    assert stored == [("Unclear.", 1), ("B could harm.", 2)]
    events = store.read(
        "SELECT payload FROM audit_events WHERE action IN ('rating.submit', 'rating.revise')"
        " ORDER BY seq"
    ).get_column("payload")
    assert ['"comment":"Unclear."' in p.replace(" ", "") for p in events] == [True, False]


def test_a_revision_may_not_contradict_an_item_rated_earlier(store, harm_rating):
    study, assignment = harm_rating
    r1 = sign_in(store, "r1")
    rating_service.submit_rating(store, r1, study, assignment, harm_values())
    before = exports.export_ratings_long(store, OPERATOR, study)
    with pytest.raises(ValidationError, match='You answered "Yes" to .* cannot be "No harm"'):
        rating_service.submit_rating(
            store, r1, study, assignment, {"could_cause_harm": {"Response B": 1}}, revise=True
        )
    # a consistent revision of both items goes through
    rating_service.submit_rating(
        store,
        r1,
        study,
        assignment,
        HARM_B_CONSISTENT,
        revise=True,
    )
    after = exports.export_ratings_long(store, OPERATOR, study)
    assert after.height == before.height


# --- the blinding question -----------------------------------------------------------------------


def test_source_guesses_are_rated_like_any_item_and_give_bangs_index(store, draft):
    # A study that asks "who do you think wrote this?": the built-in source_guess instrument is
    # attached beside the rating instrument; every guess is stored per answer, and the export
    # (codes 1 = llm, 2 = clinician, 0 = don't know) feeds analysis.blinding.bang_index.
    from analysis.blinding import bang_index

    coordinator = sign_in(store, "coordinator")
    attach_source_guess(store, draft)
    open_rating(store, draft)
    # every rater guesses right for every answer it is shown: BI = 1 for both arms
    for rater in RATERS:
        caller = sign_in(store, rater)
        while (view := rating_service.next_assignment(store, caller, draft)) is not None:
            truth = dict(
                store.read(
                    "SELECT p.label, a.arm_id FROM presentations p JOIN answers a"
                    " ON a.study = p.study AND a.answer_id = p.answer_id WHERE p.assignment = $a",
                    {"a": view["assignment"]},
                ).iter_rows()
            )
            values = full_values() | {
                "source_guess": {label: 1 if arm == "llm" else 2 for label, arm in truth.items()}
            }
            rating_service.submit_rating(store, caller, draft, view["assignment"], values)
    lifecycle.close_rating(store, coordinator, draft)
    lifecycle.unblind(store, sign_in(store, "statistician"), draft)
    long = exports.export_ratings_long(store, sign_in(store, "statistician"), draft)
    guesses = long.filter(pl.col("item") == "source_guess").with_columns(
        pl.col("value")
        .replace_strict({1.0: "llm", 2.0: "clinician", 0.0: "dont_know"})
        .alias("guess")
    )
    assert guesses.height == 8 * 2  # 8 assignments, two answers each
    result = bang_index(guesses, arm="arm", guess="guess", kind={"llm": "llm", "clin": "clinician"})
    assert dict(zip(result["arm"], result["estimate"], strict=True)) == {"clin": 1.0, "llm": 1.0}


def test_the_protocol_says_whether_answers_show_as_plain_text_or_markdown(store, draft):
    coordinator = sign_in(store, "coordinator")
    with pytest.raises(ValidationError, match="plain, markdown or markdown_breaks, not 'html'"):
        design.lock_protocol(store, coordinator, draft, {"margin": 0.5, "display": "html"})
    design.lock_protocol(store, coordinator, draft, {"margin": 0.5, "display": "plain"})
    design.make_assignments(store, coordinator, draft, raters_per_case=2, seed=3)
    lifecycle.start_rating(store, coordinator, draft)
    view = rating_service.next_assignment(store, sign_in(store, "r1"), draft)
    assert view["display"] == "plain"


def test_kept_facts_are_bounded_and_never_read_inside_a_transaction(store, rating):
    """The map drops the least recently used fact beyond its limit; a fact read inside a
    transaction is not kept (the transaction may roll back, and its rows' ids be taken by
    others)."""
    facts = Facts(limit=2)
    facts.put(("a", 1), 1)
    facts.put(("a", 2), 2)
    assert facts.get(("a", 1)) == 1  # now the most recent
    facts.put(("a", 3), 3)
    assert (facts.get(("a", 1)), facts.get(("a", 2)), facts.get(("a", 3))) == (1, None, 3)
    assert len(facts) == 2
    r1 = sign_in(store, "r1")
    store.facts.clear()
    with pytest.raises(RuntimeError), store.transaction():
        view = rating_service.next_assignment(store, r1, rating)
        assert view is not None
        raise RuntimeError("rolled back")
    assert len(store.facts) == 0
    assert rating_service.next_assignment(store, r1, rating)["assignment"] == view["assignment"]
    assert store.facts.get(("assignment", view["assignment"])) is not None


def test_an_amended_protocol_counts_at_once_though_the_earlier_version_is_kept(store, rating):
    r1 = sign_in(store, "r1")
    assert rating_service.next_assignment(store, r1, rating)["display"] == "markdown"
    assert store.facts.get(("protocol", rating, 1)) is not None
    protocol = {"primary_item": "quality", "margin": 0.5, "display": "plain"}
    design.lock_protocol(
        store, sign_in(store, "coordinator"), rating, protocol, reason="answers as plain text"
    )
    assert rating_service.next_assignment(store, r1, rating)["display"] == "plain"
