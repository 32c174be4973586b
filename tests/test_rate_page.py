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

from study import audit
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
        report = audit.verify(store)
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
    at = open_as(monkeypatch, demo_db)
    first_case = at.get("progress")[0].proto.text
    reason = next(t for t in at.text_input if t.key.startswith("reason-"))
    at = reason.input("Outside my specialty").run()
    at = at.button(key="skip-case").click().run()
    assert not at.exception, [e.message for e in at.exception]
    with Store(demo_db) as store:
        flags = store.read("SELECT kind, reason FROM case_flags").rows()
        assert audit.verify(store).ok
    assert flags == [("skip", "Outside my specialty")]
    assert at.get("progress")[0].proto.text != first_case


def test_a_coordinator_has_no_rating_screen(monkeypatch, demo_db):
    at = open_as(monkeypatch, demo_db, "demo-coordinator")
    assert not at.exception
    assert at.title[0].value == "Study overview"
