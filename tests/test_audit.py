"""The audit chain: intact chains verify; an edited or removed event is named; every declared
event kind is documented and counted."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from pathlib import Path

import pytest
from conftest import OPERATOR, sign_in

from study import audit, audit_verify
from study.audit import GENESIS_HASH
from study.canonical import canonical_json
from study.errors import ConflictError
from study.services import content, rating, studies
from study.store import Store

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "audit.duckdb") as s:
        with s.transaction() as cur:
            for i in range(1, 6):
                audit.append(
                    cur,
                    actor="coordinator",
                    kind=audit.INSTRUMENT_ATTACH,
                    object_type="thing",
                    object_id=str(i),
                    study=None,
                    payload={"n": i, "names": ["a", "b"]},
                )
        yield s


def test_an_untouched_chain_verifies(store):
    report = audit_verify.verify(store)
    assert report.ok
    assert report.events == 5
    assert report.problem is None
    assert str(report).startswith("audit trail intact: 5 events, head hash ")


def test_an_empty_chain_verifies(tmp_path):
    with Store(tmp_path / "empty.duckdb") as s:
        assert audit_verify.verify(s).ok
        assert audit_verify.verify(s).events == 0


def test_events_link_to_their_predecessor_and_digest_their_payload(store):
    rows = store.read("SELECT * FROM audit_events ORDER BY seq").to_dicts()
    assert rows[0]["prev_hash"] == GENESIS_HASH
    for before, after in zip(rows, rows[1:], strict=False):
        assert after["prev_hash"] == before["hash"]
    # the digest is SHA-256 of the canonical JSON, computed here independently of the store
    expected = hashlib.sha256(
        json.dumps({"names": ["a", "b"], "n": 3}, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    assert rows[2]["payload_digest"] == expected


HASH_MISMATCH = "audit event 3 was altered: its hash does not match its contents"
DIGEST_MISMATCH = "audit event 3 was altered: its payload does not match its digest"


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("actor", "'someone else'", HASH_MISMATCH),
        ("action", "'test.other'", HASH_MISMATCH),
        ("object_id", "'99'", HASH_MISMATCH),
        ("study", "'s1'", HASH_MISMATCH),
        ("occurred_at", "occurred_at + INTERVAL 1 SECOND", HASH_MISMATCH),
        ("payload_digest", "repeat('0', 64)", DIGEST_MISMATCH),
    ],
)
def test_editing_any_field_of_an_event_names_that_event(store, column, value, message):
    # the SQL text is built from test constants only
    store.cursor().execute(f"UPDATE audit_events SET {column} = {value} WHERE seq = 3")
    report = audit_verify.verify(store)
    assert not report.ok
    assert report.seq == 3
    assert report.problem == message


def test_editing_a_payload_names_that_event(store):
    store.cursor().execute(
        "UPDATE audit_events SET payload = ? WHERE seq = 4", [canonical_json({"n": 40})]
    )
    report = audit_verify.verify(store)
    assert (report.ok, report.seq) == (False, 4)
    assert "payload does not match its digest" in report.problem


def test_rewriting_an_event_with_a_fresh_hash_is_caught_at_the_link(store):
    # a forger who also recomputes the event's own hash still breaks the next event's prev_hash
    store.cursor().execute("UPDATE audit_events SET hash = repeat('f', 64) WHERE seq = 2")
    report = audit_verify.verify(store)
    assert not report.ok
    assert report.seq == 2


@pytest.mark.parametrize(
    ("removed", "message"),
    [
        (3, "audit event 3 is missing: seq jumps 2 -> 4"),
        (1, "audit event 1 is missing: seq jumps 0 -> 2"),
        (5, "audit event 5 is missing: the chain ends at 4 but 5 events were written"),
    ],
)
def test_removing_an_event_names_it(store, removed, message):
    store.cursor().execute("DELETE FROM audit_events WHERE seq = ?", [removed])
    report = audit_verify.verify(store)
    assert (report.ok, report.seq, report.problem) == (False, removed, message)


def test_only_the_first_damage_is_reported(store):
    store.cursor().execute("UPDATE audit_events SET actor = 'x' WHERE seq IN (2, 4)")
    assert audit_verify.verify(store).seq == 2


def test_an_event_appended_outside_the_store_is_detected(store):
    last = store.read("SELECT * FROM audit_events WHERE seq = 5").row(0, named=True)
    store.cursor().execute(
        "INSERT INTO audit_events SELECT 6, occurred_at, actor, action, object_type, object_id,"
        " study, payload, payload_digest, hash, repeat('e', 64) FROM audit_events WHERE seq = 5"
    )
    report = audit_verify.verify(store)
    assert not report.ok
    assert last["hash"] != "e" * 64
    assert report.seq == 6


def test_every_service_change_is_audited_in_its_transaction(tmp_path):
    with Store(tmp_path / "svc.duckdb") as s:
        study = studies.create_study(s, OPERATOR, "Audit study")
        content.add_arm(s, OPERATOR, study, arm_id="doc", kind="clinician", label="Doctors")
        with pytest.raises(ConflictError):
            studies.create_study(s, OPERATOR, "Audit study")  # refused: no event
        events = audit.events(s, study=study)
        assert events.get_column("action").to_list() == ["arms.import", "study.create"]
        assert events.get_column("actor").to_list() == [OPERATOR.actor, OPERATOR.actor]
        assert audit_verify.verify(s).ok


# --- truncation, reordering and rows without events ----------------------------------------


def test_the_report_carries_the_head_hash_to_record_elsewhere(store):
    last = store.read("SELECT hash FROM audit_events WHERE seq = 5").item()
    report = audit_verify.verify(store)
    assert report.head_hash == last
    assert str(report) == f"audit trail intact: 5 events, head hash {last}"


def test_an_empty_chain_has_the_genesis_head(tmp_path):
    with Store(tmp_path / "empty.duckdb") as s:
        assert audit_verify.verify(s).head_hash == GENESIS_HASH


def test_swapping_two_events_names_the_first_one_moved(store):
    cur = store.cursor()
    cur.execute("UPDATE audit_events SET seq = 1000 WHERE seq = 3")
    cur.execute("UPDATE audit_events SET seq = 3 WHERE seq = 4")
    cur.execute("UPDATE audit_events SET seq = 4 WHERE seq = 1000")
    report = audit_verify.verify(store)
    assert (report.ok, report.seq) == (False, 3)
    assert report.problem == HASH_MISMATCH


def _head(store: Store) -> int:
    return store.read("SELECT seq FROM audit_head").item()


def test_deleting_every_event_and_the_head_is_detected(demo):
    cur = demo.cursor()
    cur.execute("DELETE FROM audit_events")
    cur.execute("DELETE FROM audit_head")
    report = audit_verify.verify(demo)
    assert (report.ok, report.events, report.seq) == (False, 0, 1)
    assert "no study.create event" in report.problem


@pytest.mark.parametrize("keep", [5, 40, -1])
def test_cutting_the_tail_and_moving_the_head_back_is_detected(demo, keep):
    keep = _head(demo) + keep if keep < 0 else keep
    cur = demo.cursor()
    cur.execute("DELETE FROM audit_events WHERE seq > ?", [keep])
    cur.execute(
        "UPDATE audit_head SET seq = ?, hash = (SELECT hash FROM audit_events WHERE seq = ?)",
        [keep, keep],
    )
    report = audit_verify.verify(demo)
    assert (report.ok, report.seq) == (False, keep + 1)
    assert report.problem.startswith("audit events are missing"), report.problem


def test_a_rating_revision_altered_in_place_names_the_event_that_recorded_it(demo):
    view = demo.read(
        "SELECT a.id, a.rater FROM assignments a WHERE a.done ORDER BY a.id LIMIT 1"
    ).row(0)
    assignment, rater = view
    labels = demo.read(
        "SELECT label FROM presentations WHERE assignment = $a ORDER BY position", {"a": assignment}
    ).get_column("label")
    study = demo.read("SELECT study FROM assignments WHERE id = $a", {"a": assignment}).item()
    rating.submit_rating(
        demo,
        sign_in(demo, rater),
        study,
        assignment,
        {"quality": {labels[0]: 1}},
        revise=True,
    )
    first_submit = demo.read(
        "SELECT min(seq) FROM audit_events WHERE action = 'rating.submit' AND object_id = $a",
        {"a": str(assignment)},
    ).item()
    # revision 1 is history now (no longer current), so the database lets it be updated
    demo.cursor().execute(
        "UPDATE ratings SET value_num = 6 - value_num WHERE assignment = ? AND revision = 1"
        " AND item_key = 'quality' AND presentation = (SELECT id FROM presentations"
        " WHERE assignment = ? AND position = 1)",
        [assignment, assignment],
    )
    report = audit_verify.verify(demo)
    assert (report.ok, report.seq) == (False, first_submit)
    assert "differs from the value audit event" in report.problem


def test_rows_removed_around_the_store_are_detected(tmp_path):
    with Store(tmp_path / "rows.duckdb") as s:
        study = studies.create_study(s, OPERATOR, "Rows")
        content.add_arm(s, OPERATOR, study, arm_id="doc", kind="clinician", label="Doctors")
        content.add_arm(s, OPERATOR, study, arm_id="gp", kind="clinician", label="GPs")
        assert audit_verify.verify(s).ok
        s.cursor().execute("DELETE FROM arms WHERE arm_id = 'gp'")
        report = audit_verify.verify(s)
    assert not report.ok
    assert report.problem == (
        "study rows stores 1 arms but its arms.import events record 2: rows were removed "
        "around the store"
    )


def test_a_study_inserted_around_the_store_is_detected(store):
    store.cursor().execute(
        "INSERT INTO studies (id, name, created_at, created_by) VALUES ('s9', 'S', now(), 'x')"
    )
    report = audit_verify.verify(store)
    assert (report.ok, report.seq) == (False, 6)
    assert "study s9 has no study.create event" in report.problem


def test_concurrent_writers_are_serialised_and_keep_the_chain_whole(store):
    def work(n):
        for i in range(10):
            with store.transaction() as cur:
                audit.append(
                    cur, actor=f"t{n}", kind=audit.INSTRUMENT_ATTACH, object_type="test", payload=i
                )

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = audit_verify.verify(store)
    assert report.ok, report.problem
    assert report.events == 5 + 40  # the fixture's five, then ten from each of four threads


# --- the declared event kinds ----------------------------------------------------------------


def _documented_kinds() -> dict[str, str]:
    """Kind name -> its row in the table of audit event kinds (docs/administrator.md)."""
    text = (ROOT / "docs" / "administrator.md").read_text(encoding="utf-8")
    section = text.split("### Audit event kinds", 1)[1].split("\n#", 1)[0]
    return {m.group(1): m.group(0) for m in re.finditer(r"^\| `([a-z_.]+)` \|.*$", section, re.M)}


@pytest.mark.parametrize("kind", list(audit.EVENT_KINDS.values()), ids=str)
def test_every_declared_kind_is_documented_in_the_guide(kind):
    assert kind.name in _documented_kinds(), f"the guide's event kinds table lacks {kind.name}"


def test_the_guide_documents_no_kind_that_is_not_declared():
    assert set(_documented_kinds()) <= set(audit.EVENT_KINDS)


@pytest.mark.parametrize("kind", list(audit.EVENT_KINDS.values()), ids=str)
def test_verify_counts_every_declared_kind(tmp_path, kind):
    with Store(tmp_path / "kinds.duckdb") as s:
        with s.transaction() as cur:
            for _ in range(2):
                audit.append(cur, actor="t", kind=kind, object_type="test")
        report = audit_verify.verify(s)
    # whether the rows a kind covers are there is coverage's question; the count is asked here
    assert report.counts == {name: 2 if name == kind.name else 0 for name in audit.EVENT_KINDS}


def test_verify_counts_the_demo_events_by_kind(demo):
    report = audit_verify.verify(demo)
    assert report.ok
    assert sum(report.counts.values()) == report.events
    stored = dict(
        demo.read("SELECT action, count(*) FROM audit_events GROUP BY action").iter_rows()
    )
    assert {k: v for k, v in report.counts.items() if v} == stored
    assert (
        report.counts["rating.submit"]
        == demo.read("SELECT count(*) FROM assignments WHERE done").item()
    )


def test_an_undeclared_kind_cannot_be_appended(store):
    forged = audit.EventKind("study.delete", "not a kind of this code")
    with (
        pytest.raises(ValueError, match="not a declared audit event kind"),
        store.transaction() as cur,
    ):
        audit.append(cur, actor="t", kind=forged, object_type="study")


def test_an_event_of_an_undeclared_kind_breaks_the_chain(store):
    # a forger who recomputes the event's own hash (holding the audit key, even) still writes a
    # kind the code never writes
    cur = store.cursor()
    row = dict(
        zip(
            audit.EVENT_FIELDS,
            cur.execute(
                "SELECT " + ", ".join(audit.EVENT_FIELDS) + " FROM audit_events WHERE seq = 5"
            ).fetchall()[0],
            strict=True,
        )
    )
    row["action"] = "study.delete"
    row["hash"] = audit.event_hash(row, store.audit_key)
    cur.execute(
        "UPDATE audit_events SET action = ?, hash = ? WHERE seq = 5", [row["action"], row["hash"]]
    )
    cur.execute("UPDATE audit_head SET hash = ? WHERE id = 1", [row["hash"]])
    report = audit_verify.verify(store)
    assert (report.ok, report.seq) == (False, 5)
    assert "study.delete" in report.problem
