"""The rating screen through AppTest: a demo rater rates, is stopped on missing values, skips.

Blinding on the page: no element carries an arm id, a model name or version, an answer id or an
author. (The browser test checks every websocket frame as well.)
"""

from __future__ import annotations

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


def texts(at: AppTest) -> str:
    parts = [e.value for e in (*at.markdown, *at.caption, *at.subheader, *at.title)]
    parts += [b.label for b in at.button]
    return "\n".join(str(p) for p in parts)


def press_through(at: AppTest, key_index: int = 0) -> AppTest:
    """Pick option ``key_index`` for every field, as the digit/letter keys would."""
    for _ in range(40):
        picks = [b for b in at.button if b.key and b.key.startswith("pick-")]
        if not picks:
            break
        target = picks[min(key_index, len(picks) - 1)]
        at = target.click().run()
        if all(
            "**—**" not in m.value for m in at.markdown if m.value.startswith(("▶", "·", ":blue"))
        ):
            break
    return at


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
    at = press_through(at, key_index=0)
    # the consistency rule: "could cause harm: No" needs "no harm", which option 1 gives
    at = at.button(key="rate-submit").click().run()
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
    at = at.button(key="rate-submit").click().run()
    assert at.error and all("Required" in e.value for e in at.error)
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
