"""Tampering with a rated study's database file, as someone who can write the file but cannot
read the audit key: every edit is caught by ``audit verify``, naming the row or the event.

The edits are those probed in issue 12 (4 that the chain alone caught, 15 that it missed), each
applied to a private copy of the demo study (rated, in ``rating``). A forger who recomputes the
chain does so with a key of their own (they cannot read the deployment's). With the key withheld,
verify still catches what the structure and the stored state show, and says what it could not
check.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable

import pytest
from conftest import OPERATOR

from study import audit, audit_verify, keyfile
from study.canonical import canonical_json, content_hash, sha256_hex
from study.demo import DEMO_STUDY_ID
from study.services import exports
from study.store import Cursor, Store

FORGER_KEY = bytes(range(32))
"""The key a forger recomputes hashes with: not the deployment's, which they cannot read."""


def _rechain(cur: Cursor, start: int, key: bytes | None = FORGER_KEY) -> None:
    """Recompute digests, links and hashes of every event from ``start`` on, and the head, as a
    forger would after editing an event or inserting one."""
    fields = ", ".join(audit.EVENT_FIELDS)
    rows = cur.execute(f"SELECT {fields} FROM audit_events ORDER BY seq").fetchall()
    prev = audit.GENESIS_HASH
    for row in rows:
        event = dict(zip(audit.EVENT_FIELDS, row, strict=True))
        if event["seq"] >= start:
            event["payload_digest"] = sha256_hex(event["payload"])
            event["prev_hash"] = prev
            event["hash"] = audit.event_hash(event, key)
            cur.execute(
                "UPDATE audit_events SET payload_digest = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                [event["payload_digest"], prev, event["hash"], event["seq"]],
            )
        prev = event["hash"]
    seq = rows[-1][0]
    mark = cur.execute("SELECT keyed_from, key_id FROM audit_chain").fetchall()
    mac = (
        keyfile.head_seal(key, seq, prev, mark[0][0], mark[0][1])
        if key is not None and mark
        else None
    )
    cur.execute("UPDATE audit_head SET seq = ?, hash = ?, mac = ?", [seq, prev, mac])


def _forge_event(cur: Cursor, action: str, object_id: str, payload: dict, study=DEMO_STUDY_ID):
    seq = cur.execute("SELECT max(seq) + 1 FROM audit_events").fetchall()[0][0]
    text = canonical_json(payload)
    cur.execute(
        "INSERT INTO audit_events SELECT ?, now()::TIMESTAMP, 'mallory', ?, 'x', ?, ?, ?, ?,"
        " repeat('0', 64), md5(random()::VARCHAR) || md5(random()::VARCHAR)",
        [seq, action, object_id, study, text, sha256_hex(text)],
    )
    _rechain(cur, seq)
    return seq


def _rated(cur: Cursor) -> tuple[int, str]:
    """(assignment, rater) of the first rated assignment."""
    return cur.execute(
        "SELECT id, rater FROM assignments WHERE done ORDER BY id LIMIT 1"
    ).fetchall()[0]


def _without_references(cur: Cursor, assignment: int, change: Callable[[], None], *, shown=False):
    """Run ``change`` with the assignment's ratings (and presentations) set aside, as a forger
    must: DuckDB refuses to update a key column of a row that another table references."""
    tables = ["current_ratings", "ratings"] + (["presentations"] if shown else [])
    for table in tables:
        cur.execute(
            f"CREATE TEMP TABLE saved_{table} AS SELECT * FROM {table} WHERE assignment = ?",
            [assignment],
        )
        cur.execute(f"DELETE FROM {table} WHERE assignment = ?", [assignment])
    change()
    for table in reversed(tables):
        cur.execute(f"INSERT INTO {table} SELECT * FROM saved_{table}")


# --- the edits: each changes the file as a forger would -----------------------------------------


def _set_rating_value(cur: Cursor, rating: int, value: float) -> None:
    """Edit a rating in place; its current pointer is set aside meanwhile (DuckDB refuses to
    update a row that another table references)."""
    cur.execute(
        "CREATE TEMP TABLE saved_pointer AS SELECT * FROM current_ratings WHERE rating = ?",
        [rating],
    )
    cur.execute("DELETE FROM current_ratings WHERE rating = ?", [rating])
    cur.execute("UPDATE ratings SET value_num = ? WHERE id = ?", [value, rating])
    cur.execute("INSERT INTO current_ratings SELECT * FROM saved_pointer")
    cur.execute("DROP TABLE saved_pointer")


def edit_rating_value(cur):
    rating, value = cur.execute(
        "SELECT id, value_num FROM ratings WHERE value_num IS NOT NULL ORDER BY id LIMIT 1"
    ).fetchall()[0]
    _set_rating_value(cur, rating, value + 1)


def delete_last_event(cur):
    cur.execute("DELETE FROM audit_events WHERE seq = (SELECT max(seq) FROM audit_events)")


def forge_event_without_hash(cur):
    cur.execute(
        "INSERT INTO audit_events SELECT seq + 1, occurred_at, 'mallory', action, object_type,"
        " object_id, study, payload, payload_digest, hash, repeat('e', 64) FROM audit_events"
        " WHERE seq = (SELECT max(seq) FROM audit_events)"
    )


def edit_event_payload(cur):
    cur.execute("UPDATE audit_events SET payload = '{\"rows\":0}' WHERE seq = 20")


def edit_rating_and_event_rechained(cur):
    assignment, _ = _rated(cur)
    rating, slot, item, value = cur.execute(
        "SELECT r.id, r.slot, r.item_key, r.value_num FROM ratings r WHERE r.assignment = ?"
        " AND r.value_num IS NOT NULL ORDER BY r.id LIMIT 1",
        [assignment],
    ).fetchall()[0]
    new = 1.0 if value != 1.0 else 2.0
    _set_rating_value(cur, rating, new)
    seq, payload = cur.execute(
        "SELECT seq, payload FROM audit_events WHERE action = 'rating.submit' AND object_id = ?",
        [str(assignment)],
    ).fetchall()[0]
    payload = json.loads(payload)
    for v in payload["values"]:
        if v["slot"] == slot and v["item_key"] == item:
            v["value_num"] = new
    cur.execute("UPDATE audit_events SET payload = ? WHERE seq = ?", [canonical_json(payload), seq])
    _rechain(cur, seq)


def forge_rating_with_chained_event(cur):
    assignment, rater = _rated(cur)
    rating = (
        cur.sql(
            "SELECT r.* FROM current_ratings c JOIN ratings r ON r.id = c.rating"
            " WHERE c.assignment = $a AND r.value_num IS NOT NULL ORDER BY r.id LIMIT 1",
            params={"a": assignment},
        )
        .pl()
        .row(0, named=True)
    )
    new_id = cur.execute("SELECT max(id) + 1 FROM ratings").fetchall()[0][0]
    cur.execute(
        "INSERT INTO ratings SELECT ? AS id, assignment, presentation, slot, instrument_key,"
        " instrument_version, item_key, 1.0, value_text, revision + 1, status, seconds_on_task,"
        " created_at, submitted_at, actor FROM ratings WHERE id = ?",
        [new_id, rating["id"]],
    )
    cur.execute("DELETE FROM current_ratings WHERE rating = ?", [rating["id"]])
    cur.execute(
        "INSERT INTO current_ratings VALUES (?, ?, ?, ?)",
        [assignment, rating["slot"], rating["item_key"], new_id],
    )
    value = {k: rating[k] for k in ("slot", "item_key", "value_text")}
    value.update(value_num=1.0, revision=rating["revision"] + 1)
    _forge_event(cur, "rating.revise", str(assignment), {"rater": rater, "values": [value]})


def forge_role_grant(cur):
    cur.execute(
        "INSERT INTO roles VALUES ('demo-rater-01', NULL, '*', 'admin', now()::TIMESTAMP, 'x')"
    )
    _forge_event(cur, "role.grant", "demo-rater-01", {"role": "admin", "study": None}, study=None)


def delete_export_event_and_move_head_back(cur, store):
    exports.export_ratings_long(store, OPERATOR, DEMO_STUDY_ID)
    cur.execute("DELETE FROM audit_events WHERE seq = (SELECT max(seq) FROM audit_events)")
    cur.execute(
        "UPDATE audit_head SET seq = seq - 1,"
        " hash = (SELECT hash FROM audit_events WHERE seq = (SELECT max(seq) FROM audit_events))"
    )


def edit_protocol_content(cur):
    cur.execute(
        "UPDATE protocols SET content = replace(content, '\"margin\":0.5', '\"margin\":0.9')"
    )


def edit_protocol_content_and_hash(cur):
    content = json.loads(cur.execute("SELECT content FROM protocols").fetchall()[0][0])
    content["primary_endpoint"]["margin"] = 0.9
    cur.execute(
        "UPDATE protocols SET content = ?, content_hash = ?",
        [canonical_json(content), content_hash(content)],
    )


def delete_current_ratings(cur):
    assignment, _ = _rated(cur)
    cur.execute("DELETE FROM current_ratings WHERE assignment = ?", [assignment])


def set_rated_assignment_pending(cur):
    assignment, _ = _rated(cur)
    cur.execute(
        "UPDATE assignments SET done = false, status = 'pending', done_at = NULL WHERE id = ?",
        [assignment],
    )


def set_status_unblinded(cur):
    cur.execute("UPDATE studies SET status = 'unblinded' WHERE id = ?", [DEMO_STUDY_ID])


def rewrite_llm_model(cur):
    cur.execute(
        "UPDATE arms SET model_name = 'gpt-x', model_version = 'gpt-x-2027' WHERE kind = 'llm'"
    )


def rewrite_answer_text(cur):
    cur.execute(
        "UPDATE answers SET text = 'Rewritten.' WHERE answer_id = (SELECT min(answer_id) FROM answers)"
    )


def insert_role_row(cur):
    cur.execute(
        "INSERT INTO roles VALUES ('demo-rater-01', ?, ?, 'statistician', now()::TIMESTAMP, 'x')",
        [DEMO_STUDY_ID, DEMO_STUDY_ID],
    )


def swap_answers_behind_labels(cur):
    assignment, _ = _rated(cur)
    (p1, l1), (p2, l2) = cur.execute(
        "SELECT id, label FROM presentations WHERE assignment = ? ORDER BY position",
        [assignment],
    ).fetchall()

    def swap():
        # Response A now shows what Response B showed, and the other way round
        cur.execute("UPDATE presentations SET label = 'tmp', position = 99 WHERE id = ?", [p1])
        cur.execute("UPDATE presentations SET label = ?, position = 1 WHERE id = ?", [l1, p2])
        cur.execute("UPDATE presentations SET label = ?, position = 2 WHERE id = ?", [l2, p1])

    _without_references(cur, assignment, swap)


def give_assignment_to_another_rater(cur):
    assignment, rater = _rated(cur)
    case = cur.execute("SELECT case_id FROM assignments WHERE id = ?", [assignment]).fetchall()[0][
        0
    ]
    other, order = cur.execute(
        "SELECT rater, max(shown_order) + 1 FROM assignments WHERE rater <> ? AND rater NOT IN"
        " (SELECT rater FROM assignments WHERE case_id = ?) GROUP BY rater ORDER BY rater LIMIT 1",
        [rater, case],
    ).fetchall()[0]

    def move():
        cur.execute(
            "UPDATE assignments SET rater = ?, shown_order = ? WHERE id = ?",
            [other, order, assignment],
        )

    _without_references(cur, assignment, move, shown=True)


def alter_old_event_and_rechain(cur):
    cur.execute("UPDATE audit_events SET actor = 'mallory' WHERE seq = 3")
    _rechain(cur, 3)


# --- issue 19: rows that feed a result or a safety decision ------------------------------------

_LIVE = "SELECT id FROM assignments WHERE study = ? AND phase = 'live'"


def _set_aside(cur: Cursor, table: str, ids: list[int], change: Callable[[], None]) -> None:
    """Run ``change`` on rows ``ids`` of ``table`` (ratings or assignments) with every row that
    references them set aside meanwhile, as a forger must: DuckDB refuses to update a row that
    another table references."""
    if table == "ratings":
        ratings = ids
        aside = [
            ("safety_alerts", "rating"),
            ("rating_comments", "rating"),
            ("current_ratings", "rating"),
        ]
    else:
        ratings = [
            r[0]
            for r in cur.execute(
                "SELECT id FROM ratings WHERE list_contains(?, assignment)", [ids]
            ).fetchall()
        ]
        aside = [
            ("safety_alerts", "rating"),
            ("rating_comments", "rating"),
            ("current_ratings", "assignment"),
            ("ratings", "assignment"),
            ("case_flags", "assignment"),
            ("presentations", "assignment"),
        ]
    saved = []
    for n, (dependent, column) in enumerate(aside):
        keys = ratings if column == "rating" else ids
        name = f"aside_{dependent}_{n}"
        cur.execute(
            f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {dependent}"
            f" WHERE list_contains(?, {column})",
            [keys],
        )
        cur.execute(f"DELETE FROM {dependent} WHERE list_contains(?, {column})", [keys])
        saved.append((dependent, name))
    change()
    for dependent, name in reversed(saved):
        cur.execute(f"INSERT INTO {dependent} SELECT * FROM {name}")


def discard_low_llm_quality_ratings(cur):
    # the probe's edit: nine low LLM quality ratings discarded moved the result 0.22 -> 0.52
    ids = [
        r[0]
        for r in cur.execute(
            "SELECT r.id FROM ratings r JOIN presentations p ON p.id = r.presentation"
            " JOIN answers a ON a.study = p.study AND a.answer_id = p.answer_id"
            " JOIN arms m ON m.study = a.study AND m.arm_id = a.arm_id"
            " WHERE r.item_key = 'quality' AND m.kind = 'llm' ORDER BY r.value_num, r.id LIMIT 9"
        ).fetchall()
    ]
    _set_aside(
        cur,
        "ratings",
        ids,
        lambda: cur.execute(
            "UPDATE ratings SET status = 'discarded', submitted_at = NULL"
            " WHERE list_contains(?, id)",
            [ids],
        ),
    )


def move_a_submission_time(cur):
    rating = cur.execute("SELECT max(id) FROM ratings").fetchall()[0][0]
    _set_aside(
        cur,
        "ratings",
        [rating],
        lambda: cur.execute(
            "UPDATE ratings SET submitted_at = submitted_at - INTERVAL 3 DAY WHERE id = ?",
            [rating],
        ),
    )


def set_live_assignments_to_calibration(cur):
    ids = [
        r[0]
        for r in cur.execute(_LIVE + " AND done ORDER BY id LIMIT 8", [DEMO_STUDY_ID]).fetchall()
    ]
    _set_aside(
        cur,
        "assignments",
        ids,
        lambda: cur.execute(
            "UPDATE assignments SET phase = 'calibration' WHERE list_contains(?, id)", [ids]
        ),
    )


def withdraw_pending_assignments(cur):
    ids = [
        r[0]
        for r in cur.execute(
            _LIVE + " AND NOT done ORDER BY id LIMIT 5", [DEMO_STUDY_ID]
        ).fetchall()
    ]
    _set_aside(
        cur,
        "assignments",
        ids,
        lambda: cur.execute(
            "UPDATE assignments SET status = 'withdrawn' WHERE list_contains(?, id)", [ids]
        ),
    )


def rewrite_a_ratings_actor(cur):
    rating = cur.execute("SELECT min(id) FROM ratings").fetchall()[0][0]
    _set_aside(
        cur,
        "ratings",
        [rating],
        lambda: cur.execute("UPDATE ratings SET actor = 'demo-rater-02' WHERE id = ?", [rating]),
    )


def rewrite_a_ratings_seconds(cur):
    rating = cur.execute(
        "SELECT min(id) FROM ratings WHERE seconds_on_task IS NOT NULL"
    ).fetchall()[0][0]
    _set_aside(
        cur,
        "ratings",
        [rating],
        lambda: cur.execute(
            "UPDATE ratings SET seconds_on_task = seconds_on_task * 10 WHERE id = ?", [rating]
        ),
    )


def delete_the_instrument_link(cur):
    cur.execute(
        "DELETE FROM study_instruments WHERE study = ? AND instrument_key = 'ayers_harm'",
        [DEMO_STUDY_ID],
    )


def delete_severe_harm_alerts(cur):
    assert cur.execute("SELECT count(*) FROM safety_alerts").fetchall()[0][0] > 0
    cur.execute("DELETE FROM safety_alerts")


def acknowledge_an_alert_without_event(cur):
    cur.execute(
        "UPDATE safety_alerts SET acknowledged_at = now()::TIMESTAMP,"
        " acknowledged_by = 'demo-coordinator', note = 'seen' WHERE id = (SELECT min(id)"
        " FROM safety_alerts)"
    )


def _rater_marks(store: Store, kind: str) -> None:
    """Have a demo rater flag (or skip) one of their pending cases through the service."""
    from study.services import people
    from study.services import rating as rates

    rater, assignment = store.read(
        "SELECT rater, min(id) FROM assignments WHERE study = $s AND NOT done"
        " GROUP BY rater ORDER BY rater LIMIT 1",
        {"s": DEMO_STUDY_ID},
    ).row(0)
    caller = people.demo_sign_in(store, rater)
    mark = rates.flag_case if kind == "flag" else rates.skip_case
    mark(store, caller, DEMO_STUDY_ID, assignment, "The case is wrong.")


def delete_a_case_flag(cur, store):
    _rater_marks(store, "flag")
    assert audit_verify.verify(store).ok
    cur.execute("DELETE FROM case_flags WHERE kind = 'flag'")


def delete_a_skip(cur, store):
    _rater_marks(store, "skip")
    assert audit_verify.verify(store).ok
    cur.execute("DELETE FROM case_flags WHERE kind = 'skip'")


def set_back_an_acknowledgement(cur, store):
    from study.services import monitoring, people

    coordinator = people.demo_sign_in(store, "demo-coordinator")
    alert = cur.execute("SELECT min(id) FROM safety_alerts").fetchall()[0][0]
    monitoring.acknowledge_alert(store, coordinator, DEMO_STUDY_ID, alert, note="Called the rater.")
    assert audit_verify.verify(store).ok
    cur.execute(
        "UPDATE safety_alerts SET acknowledged_at = NULL, acknowledged_by = NULL, note = NULL"
        " WHERE id = ?",
        [alert],
    )


def edit_an_instruments_definition(cur):
    cur.execute(
        "UPDATE instruments SET definition = replace(CAST(definition AS VARCHAR),"
        " 'Severe harm or death', 'Serious harm') WHERE key = 'ayers_harm'"
    )


def edit_an_option_label(cur):
    # renaming the harm scale's "Severe" option stops future safety alerts
    cur.execute(
        "UPDATE items SET options = replace(CAST(options AS VARCHAR), 'Severe harm or death',"
        " 'Serious harm') WHERE item_key = 'harm_extent'"
    )


def rewrite_a_persons_email(cur):
    cur.execute("UPDATE users SET email = 'mallory@evil.example' WHERE id = 'demo-statistician'")


def rewrite_a_raters_specialty(cur):
    cur.execute("UPDATE users SET specialty = 'neurosurgery' WHERE id = 'demo-rater-01'")


def rename_the_study(cur):
    cur.execute("UPDATE studies SET name = 'Another study' WHERE id = ?", [DEMO_STUDY_ID])


def clear_the_synthetic_flag(cur):
    cur.execute("UPDATE studies SET synthetic = false WHERE id = ?", [DEMO_STUDY_ID])


def rewrite_locked_by(cur):
    cur.execute(
        "UPDATE protocols SET locked_by = 'demo-coordinator' WHERE study = ?", [DEMO_STUDY_ID]
    )


def move_locked_at(cur):
    cur.execute(
        "UPDATE protocols SET locked_at = locked_at - INTERVAL 30 DAY WHERE study = ?",
        [DEMO_STUDY_ID],
    )


def downgrade_keyed_from_past_the_end(cur):
    cur.execute("UPDATE audit_events SET actor = 'mallory' WHERE seq = 3")
    cur.execute(
        "UPDATE audit_chain SET keyed_from = (SELECT seq + 1 FROM audit_head), key_id = NULL"
    )
    _rechain(cur, 1, key=None)


def delete_the_chain_row(cur):
    cur.execute("DELETE FROM audit_chain")


EDITS: list[tuple[str, Callable, str, bool]] = [
    # (name, edit, a fragment the finding must hold: the row or the event it names,
    #  whether verify catches it without the key too)
    ("rating value edited", edit_rating_value, "differs from the value audit event", True),
    ("last event deleted", delete_last_event, "is missing", True),
    ("event forged without its hash", forge_event_without_hash, "audit event", True),
    ("event payload edited", edit_event_payload, "audit event 20 was altered", True),
    (
        "rating and its event edited, chain recomputed",
        edit_rating_and_event_rechained,
        "audit event",
        False,
    ),
    # the forged event's actor is not the rating's: the row check catches it without the key
    ("rating forged with a chained event", forge_rating_with_chained_event, "audit event", True),
    ("role grant forged with a chained event", forge_role_grant, "audit event", False),
    (
        "export event deleted, head moved back",
        delete_export_event_and_move_head_back,
        "missing",
        False,
    ),
    ("protocol content changed", edit_protocol_content, "protocol demo-patient-questions@1", True),
    ("protocol content and hash changed", edit_protocol_content_and_hash, "protocol demo-", True),
    ("current ratings deleted", delete_current_ratings, "the current rating of assignment 1", True),
    ("rated assignment set back to pending", set_rated_assignment_pending, "assignment 1", True),
    ("status set to unblinded", set_status_unblinded, f"study {DEMO_STUDY_ID} is unblinded", True),
    ("LLM arm's model rewritten", rewrite_llm_model, "arm llm", True),
    ("answer text rewritten", rewrite_answer_text, "answer ", True),
    ("role row inserted", insert_role_row, "role statistician of user demo-rater-01", True),
    ("answers behind Response A and B swapped", swap_answers_behind_labels, "presentation ", True),
    (
        "rated assignment given to another rater",
        give_assignment_to_another_rater,
        "assignment 1",
        True,
    ),
    (
        "old event altered, whole chain recomputed",
        alter_old_event_and_rechain,
        "audit event 3",
        False,
    ),
    # issue 19
    ("low LLM quality ratings discarded", discard_low_llm_quality_ratings, "is discarded", True),
    ("a submission time moved", move_a_submission_time, "submission time differs", True),
    (
        "live assignments set to calibration",
        set_live_assignments_to_calibration,
        "(phase, attempt)",
        True,
    ),
    ("pending assignments withdrawn", withdraw_pending_assignments, "is withdrawn", True),
    ("a rating's actor rewritten", rewrite_a_ratings_actor, "names actor demo-rater-02", True),
    ("a rating's seconds rewritten", rewrite_a_ratings_seconds, "seconds on task", True),
    ("the study's instrument link deleted", delete_the_instrument_link, "ayers_harm@1.1", True),
    ("severe-harm safety alerts deleted", delete_severe_harm_alerts, "raised a safety alert", True),
    (
        "an alert acknowledged without event",
        acknowledge_an_alert_without_event,
        "marked acknowledged",
        True,
    ),
    ("an acknowledgement set back", set_back_an_acknowledgement, "is unacknowledged", True),
    ("a case flag deleted", delete_a_case_flag, "case flag", True),
    ("a skip deleted", delete_a_skip, "case flag", True),
    (
        "an instrument's definition edited",
        edit_an_instruments_definition,
        "instrument ayers_harm@1.1's definition",
        True,
    ),
    ("an option label edited", edit_an_option_label, "item harm_extent", True),
    (
        "a person's e-mail rewritten",
        rewrite_a_persons_email,
        "user demo-statistician's e-mail",
        True,
    ),
    (
        "a rater's specialty rewritten",
        rewrite_a_raters_specialty,
        "user demo-rater-01's name or specialty",
        True,
    ),
    ("the study renamed", rename_the_study, "name or synthetic flag", True),
    ("the synthetic flag cleared", clear_the_synthetic_flag, "name or synthetic flag", True),
    ("protocol locked_by rewritten", rewrite_locked_by, "lock metadata", True),
    ("protocol locked_at moved", move_locked_at, "lock metadata", True),
    (
        "keyed_from moved past the end, rehashed unkeyed",
        downgrade_keyed_from_past_the_end,
        "downgrade",
        False,
    ),
    ("the audit_chain row deleted", delete_the_chain_row, "audit_chain", True),
]


def _apply(store: Store, edit: Callable) -> None:
    cur = store.cursor()
    try:
        # an edit that first needs something done through the services takes the store too
        if len(inspect.signature(edit).parameters) == 2:
            edit(cur, store)
        else:
            edit(cur)
    finally:
        cur.close()


def test_the_untouched_demo_verifies_with_and_without_the_key(demo):
    assert audit_verify.verify(demo).ok
    assert audit_verify.verify(demo).unchecked is None
    withheld = audit_verify.verify(demo, key=None)
    assert withheld.ok
    assert withheld.unchecked.startswith("could not check the keys of ")


_CASES = [pytest.param(e, n, bare, id=name) for name, e, n, bare in EDITS]


@pytest.mark.parametrize(("edit", "named", "caught_without_key"), _CASES)
def test_every_edit_is_caught_naming_the_row_or_event(demo, edit, named, caught_without_key):
    _apply(demo, edit)
    report = audit_verify.verify(demo)
    assert not report.ok, f"not caught: {edit.__name__}"
    assert report.seq is not None
    assert named in report.problem, report.problem


@pytest.mark.parametrize(("edit", "named", "caught_without_key"), _CASES)
def test_with_the_key_withheld_verify_catches_or_says_what_it_could_not_check(
    demo, edit, named, caught_without_key
):
    _apply(demo, edit)
    report = audit_verify.verify(demo, key=None)
    # whether caught or not, verify says what it could not check without the key
    assert "cannot tell a chain recomputed" in report.unchecked
    if caught_without_key:
        assert not report.ok and named in report.problem, report.problem
    else:
        # only a chain recomputed by a forger passes for intact without the key
        assert report.ok, report.problem


def test_the_tamper_suite_covers_issue_twelves_and_issue_nineteens_edits():
    # 19 edits probed in issue 12, 22 from issue 19 (its list, and a set-back acknowledgement,
    # a moved submission time, a deleted skip); all caught with the key
    assert len(EDITS) == 41
    assert sum(bare for *_, bare in EDITS) == 36  # caught without the key too


# --- the anchored head ---------------------------------------------------------------------------


def test_a_recorded_head_is_held_by_the_grown_chain_and_lost_by_a_rewritten_one(demo, tmp_path):
    import polars as pl

    from study import cli

    recorded = audit.head(demo)[1]
    out = tmp_path / "ratings.parquet"

    def write(frame, head):
        frame.write_parquet(out, metadata={"clinval.audit_head": head})

    exports.export_ratings_long(demo, OPERATOR, DEMO_STUDY_ID, write=write)
    in_file = pl.read_parquet_metadata(out)["clinval.audit_head"]
    assert in_file == audit.head(demo)[1] != recorded  # the export's own event is in the head
    assert exports.audit_head(demo, OPERATOR, DEMO_STUDY_ID)["hash"] == in_file
    # the chain grew since the head was recorded: it still holds it
    assert audit_verify.verify(demo, expect=recorded).ok
    assert audit_verify.verify(demo, key=None, expect=in_file).ok
    # rewritten with a forger's key: without the key, only the anchor shows it
    alter_old_event_and_rechain(demo.cursor())
    withheld = audit_verify.verify(demo, key=None, expect=in_file)
    assert not withheld.ok and withheld.seq is None
    assert "no longer holds the head hash" in withheld.problem
    path = demo.path
    demo.close()
    assert cli.main(["audit", "verify", "--expect", in_file, "--db", path]) == 1


# --- rewriting the chain's key mark ------------------------------------------------------------


def test_a_key_mark_rewritten_with_the_chain_is_refused(demo):
    cur = demo.cursor()
    cur.execute("UPDATE audit_events SET actor = 'mallory' WHERE seq = 3")
    cur.execute("UPDATE audit_chain SET key_id = 'feedfeedfeedfeed'")
    _rechain(cur, 3)
    report = audit_verify.verify(demo)
    assert not report.ok and "not the key this chain records" in report.problem


def _downgrade(cur: Cursor, keyed_from: str, key_id: str | None) -> None:
    """Rewrite every event with plain SHA-256 (no key needed) after moving the chain's
    metadata: ``keyed_from`` is SQL over the head's seq (``h``)."""
    cur.execute("UPDATE audit_events SET actor = 'mallory' WHERE seq = 3")
    cur.execute(
        f"UPDATE audit_chain SET keyed_from = (SELECT {keyed_from} FROM audit_head), key_id = ?",
        [key_id],
    )
    _rechain(cur, 1, key=None)


@pytest.mark.parametrize(
    ("keyed_from", "clear_mark", "caught_without_key"),
    [
        pytest.param("seq + 1000000", True, True, id="keyed_from far past the end"),
        pytest.param("seq + 1", True, False, id="keyed_from just past the end, mark cleared"),
        pytest.param("seq + 1", False, False, id="keyed_from just past the end, mark kept"),
    ],
)
def test_a_chain_rewritten_as_unkeyed_is_a_failure_and_takes_no_more_events(
    demo, keyed_from, clear_mark, caught_without_key
):
    from study.audit import ChainMarkError
    from study.services import studies

    recorded = audit.head(demo)[1]
    cur = demo.cursor()
    key_id = None if clear_mark else cur.execute("SELECT key_id FROM audit_chain").fetchall()[0][0]
    _downgrade(cur, keyed_from, key_id)
    report = audit_verify.verify(demo)
    assert not report.ok and report.seq is not None
    assert "downgrade" in report.problem or "not sealed" in report.problem, report.problem
    withheld = audit_verify.verify(demo, key=None)
    if caught_without_key:
        assert not withheld.ok and "past its end" in withheld.problem
    else:
        # a true chain written before keying looks just like this: verify says it cannot tell
        assert withheld.ok and "cannot tell a chain recomputed" in withheld.unchecked
    # the head recorded outside shows the rewrite too
    assert not audit_verify.verify(demo, key=None, expect=recorded).ok
    # and the app writes nothing more to it (its next keyed event would seal the downgrade)
    events = audit_verify.verify(demo, key=None).events
    with pytest.raises(ChainMarkError, match="Nothing was stored"):
        studies.create_study(demo, OPERATOR, "After the downgrade")
    assert demo.read("SELECT count(*) FROM audit_events").item() == events


def test_a_deleted_chain_row_is_a_failure_with_or_without_the_key(demo):
    from study.audit import ChainMarkError
    from study.services import studies

    demo.cursor().execute("DELETE FROM audit_chain")
    for key in (demo.audit_key, None):
        report = audit_verify.verify(demo, key=key)
        assert not report.ok and "audit_chain" in report.problem and "missing" in report.problem
    with pytest.raises(ChainMarkError):
        studies.create_study(demo, OPERATOR, "After the row went")


def test_an_older_database_without_phase_digests_still_proves_a_calibration_phase(demo):
    # made older: its design events never recorded phase digests (as before December 2026),
    # the chain rewritten under the true key, as the older code itself would have written it
    cur = demo.cursor()
    persisted = cur.execute(
        "SELECT seq, payload FROM audit_events WHERE action = 'assignments.persist' ORDER BY seq"
    ).fetchall()
    for seq, payload in persisted:
        payload = json.loads(payload)
        del payload["stored_sha256"]["assignment_phases"]
        cur.execute(
            "UPDATE audit_events SET payload = ? WHERE seq = ?", [canonical_json(payload), seq]
        )
    cur.execute("DELETE FROM stored_digests WHERE kind = 'assignment_phases'")
    _rechain(cur, persisted[0][0], key=demo.audit_key)
    assert audit_verify.verify(demo).ok
    set_live_assignments_to_calibration(cur)
    report = audit_verify.verify(demo)
    assert not report.ok and "is a calibration assignment" in report.problem, report.problem
    assert "is no calibration case of the protocol" in report.problem
