"""The rating screen through AppTest: a demo rater rates, is stopped on missing values, skips.

Blinding on the page: no element carries an arm id, a model name or version, an answer id or an
author. (The browser test checks every websocket frame as well.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import picker_place
from streamlit.testing.v1 import AppTest

from study import audit_verify
from study.store import Store

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
RATER = "demo-rater-01"


def open_as(monkeypatch: pytest.MonkeyPatch, db: Path, person: str = RATER) -> AppTest:
    monkeypatch.setenv("CLINVAL_DB", str(db))
    monkeypatch.setenv("CLINVAL_DEMO_ON_START", "0")
    at = AppTest.from_file(APP, default_timeout=90)
    at.query_params["person"] = picker_place(db, person)
    return at.run()


def done_count(db: Path) -> int:
    with Store(db) as store:
        return store.read(
            "SELECT count(*) FROM assignments WHERE rater = $r AND done", {"r": RATER}
        ).item()


def secrets_of(db: Path) -> set[str]:
    """What must never reach a rater's screen: arm ids and labels, model names and versions,
    answer ids and authors."""
    with Store(db) as store:
        arms = store.read("SELECT arm_id, label, model_name, model_version FROM arms")
        answers = store.read("SELECT answer_id, author_id FROM answers")
    values = {v for column in arms.iter_columns() for v in column.to_list() if v}
    values |= {v for column in answers.iter_columns() for v in column.to_list() if v}
    return {str(v) for v in values}


def sheet(at: AppTest):
    """The rating sheet element: its proto (id, JSON data) as the browser receives it."""
    found = [n for n in walk(at._tree) if getattr(n, "type", "") == "bidi_component"]
    assert len(found) == 1, f"expected one rating sheet, found {len(found)}"
    return found[0].proto


def walk(node) -> list:
    out = []
    for child in getattr(node, "children", {}).values():
        out += [child, *walk(child)]
    return out


def sheet_data(at: AppTest) -> dict:
    return json.loads(sheet(at).bytes)


def texts(at: AppTest) -> str:
    parts = [e.value for e in (*at.markdown, *at.caption, *at.subheader, *at.title)]
    parts += [b.label for b in at.button]
    return "\n".join(str(p) for p in parts) + "\n" + sheet(at).bytes.decode()


def send_sheet(at: AppTest, values: dict[str, object], texts: dict | None = None, **payload):
    """Submit the sheet as the browser does when Enter is pressed: one ``submit`` trigger of the
    sheet element (what its JavaScript sends; AppTest runs no JavaScript, so the same widget
    state is put together here), with the fragment's other widgets as they are."""
    data = sheet_data(at)
    states = at._tree.get_widget_states()
    trigger = states.widgets.add()
    trigger.id = f"$$STREAMLIT_INTERNAL_KEY_{sheet(at).id}__events"
    value = {"token": data["token"], "attempt": data["attempt"], "values": values}
    value |= {"texts": texts or {}} | payload
    trigger.json_trigger_value = json.dumps([{"event": "submit", "value": value}])
    return at._run(states)


def first_options(at: AppTest) -> dict[str, object]:
    """Every field's first option, as digit 1 (or the letter A) on each field gives."""
    return {str(n): f["options"][0]["value"] for n, f in enumerate(sheet_data(at)["fields"])}


def test_a_rater_lands_on_the_rating_screen_and_sees_no_source(monkeypatch, demo_db):
    at = open_as(monkeypatch, demo_db)
    assert not at.exception, [e.message for e in at.exception]
    assert at.title[0].value == "Rate"
    shown = texts(at)
    assert "Response A" in shown and "Response B" in shown
    assert "Case " in at.get("progress")[0].proto.text
    leaked = sorted(s for s in secrets_of(demo_db) if s in shown)
    assert leaked == []
    # the keys are shown on screen
    assert "Enter submits" in shown


def test_rating_every_field_by_key_and_submitting_stores_one_rating(monkeypatch, demo_db):
    before = done_count(demo_db)
    at = open_as(monkeypatch, demo_db)
    first_case = at.get("progress")[0].proto.text
    # the consistency rule: "could cause harm: No" needs "no harm", which option 1 gives
    at = send_sheet(at, first_options(at))
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert done_count(demo_db) == before + 1
    assert at.get("progress")[0].proto.text != first_case
    with Store(demo_db) as store:
        report = audit_verify.verify(store)
        seconds = store.read(
            "SELECT max(r.seconds_on_task) FROM ratings r JOIN assignments a"
            " ON a.id = r.assignment WHERE a.rater = $r AND r.actor = $r"
            " AND r.submitted_at = (SELECT max(submitted_at) FROM ratings)",
            {"r": RATER},
        ).item()
    assert report.ok, report.problem
    assert seconds is not None and seconds >= 0  # measured on the server


def test_submitting_with_required_values_missing_says_so_next_to_the_item(monkeypatch, demo_db):
    before = done_count(demo_db)
    at = open_as(monkeypatch, demo_db)
    # the sheet says so in the browser before sending; a payload that leaves values out (an
    # old tab, a crafted message) is refused by the service, and its reasons come back to the
    # sheet next to their fields
    picked = first_options(at)
    del picked["0"], picked["3"]
    at = send_sheet(at, picked)
    assert not at.exception, [e.message for e in at.exception]
    data = sheet_data(at)
    assert data["attempt"] == 1
    assert set(data["problems"]) == {"0", "3"}, data["problems"]
    assert "required" in data["problems"]["0"]
    assert done_count(demo_db) == before


def test_a_submission_for_another_sheet_is_ignored(monkeypatch, demo_db):
    # a stale tab or a message crafted with an old token stores nothing
    before = done_count(demo_db)
    at = open_as(monkeypatch, demo_db)
    at = send_sheet(at, first_options(at), token="999999-1")
    assert not at.exception
    assert done_count(demo_db) == before


def test_skipping_with_a_reason_takes_the_case_out_of_the_queue(monkeypatch, demo_db):
    # issue 23: skip (and flag) are sheet actions now, sent with the reason typed in the sheet
    # (key S), no longer a Streamlit text box and button under an expander
    at = open_as(monkeypatch, demo_db)
    first_case = at.get("progress")[0].proto.text
    actions = sheet_data(at)["actions"]
    assert (actions["flag"], actions["skip"], actions["cancel"]) == (True, True, False)
    at = send_sheet(at, {}, action="skip", reason="Outside my specialty")
    assert not at.exception, [e.message for e in at.exception]
    with Store(demo_db) as store:
        flags = store.read("SELECT kind, reason FROM case_flags").rows()
        assert audit_verify.verify(store).ok
    assert flags == [("skip", "Outside my specialty")]
    assert at.get("progress")[0].proto.text != first_case


def test_a_flag_without_a_reason_is_refused_beside_its_field_and_the_case_stays(
    monkeypatch, demo_db
):
    at = open_as(monkeypatch, demo_db)
    first_case = at.get("progress")[0].proto.text
    at = send_sheet(at, {}, action="flag", reason="  ")
    assert not at.exception, [e.message for e in at.exception]
    data = sheet_data(at)
    # beside the reason box (the sheet's "mark" row), not at the top of the page
    assert data["problems"] == {"mark": "A flag needs a reason: type it here, then press Enter."}
    assert not at.error
    at = send_sheet(at, {}, action="flag", reason="The question is cut off")
    with Store(demo_db) as store:
        flags = store.read("SELECT kind, reason FROM case_flags").rows()
    assert flags == [("flag", "The question is cut off")]
    assert at.get("progress")[0].proto.text == first_case  # a flagged case stays


def test_a_broken_consistency_rule_is_said_in_the_items_words_beside_the_field(
    monkeypatch, demo_db
):
    at = open_as(monkeypatch, demo_db)
    fields = sheet_data(at)["fields"]
    picked = first_options(at)
    # Response A: harm extent "Mild or moderate harm" while "could cause harm" is "No"
    extent = next(n for n, f in enumerate(fields) if f["prompt"].startswith("If someone acted"))
    picked[str(extent)] = fields[extent]["options"][1]["value"]
    at = send_sheet(at, picked)
    problems = sheet_data(at)["problems"]
    assert problems == {
        str(extent): 'You answered "No" to "Could acting on this answer cause the patient '
        'harm?", so "If someone acted on this answer, what is the extent of possible harm?" '
        'cannot be "Mild or moderate harm": pick "No harm", or change the first answer.'
    }
    assert fields[extent]["where"] == "Response A"


def test_a_comment_is_stored_with_the_rating_and_shown_again_when_revising(monkeypatch, demo_db):
    at = open_as(monkeypatch, demo_db)
    at = send_sheet(at, first_options(at), comment="  Both miss the red flags.  ")
    assert not at.exception, [e.message for e in at.exception]
    with Store(demo_db) as store:
        stored = store.read("SELECT comment FROM rating_comments").rows()
        assert audit_verify.verify(store).ok
    assert stored == [("Both miss the red flags.",)]
    # R: the case just rated opens for revision, with its comment, numbered as the picker is
    assert sheet_data(at)["actions"]["revise"]
    at = send_sheet(at, {}, action="revise")
    assert not at.exception, [e.message for e in at.exception]
    data = sheet_data(at)
    assert data["revising"] and data["comment"] == "Both miss the red flags."
    done = done_count(demo_db)  # the demo's rater has rated cases before: this is the last
    assert at.get("progress")[0].proto.text == f"Revising rated case {done} of {done}"


def test_a_coordinator_has_no_rating_screen(monkeypatch, demo_db):
    at = open_as(monkeypatch, demo_db, "demo-coordinator")
    assert not at.exception
    assert at.title[0].value == "Study overview"
