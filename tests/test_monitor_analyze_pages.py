"""The Monitoring and Analysis screens through AppTest, as the demo's people.

- Navigation by role: a coordinator reaches Monitoring and not Analysis, a statistician Analysis
  and not Monitoring, a rater neither.
- Monitoring is blind: no element of the screen (text, tables, figures) carries an arm id, label,
  model name or version while the study is not unblinded. A safety alert is acknowledged with a
  note (a blank note is refused, nothing stored); closing the study needs its confirmation.
- Analysis shows no result before the audited unblinding step; the step needs its confirmation
  and is recorded under the statistician; then the forest plot draws the margin, H0/H1 are
  stated, and the results are cached by the ratings digest (recomputed only when it changes).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import picker_place
from streamlit.testing.v1 import AppTest

from pages.components.results_cache import study_results
from study.demo import DEMO_STUDY_ID
from study.services import analyses
from study.store import Store

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
MONITOR, ANALYZE = "pages/monitor.py", "pages/analyze.py"
COORDINATOR, STATISTICIAN, RATER = "demo-coordinator", "demo-statistician", "demo-rater-01"
DEMO = "demo-patient-questions"


def open_page(monkeypatch, db: Path, person: str, page: str) -> AppTest:
    monkeypatch.setenv("CLINVAL_DB", str(db))
    monkeypatch.setenv("CLINVAL_DEMO_ON_START", "0")
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["person"] = picker_place(db, person)
    at.run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def walk(node) -> list:
    out = []
    for child in getattr(node, "children", {}).values():
        out += [child, *walk(child)]
    return out


def screen(at: AppTest) -> str:
    """Everything the screen sends: every element's proto as text (markdown, tables' Arrow
    bytes, figures' JSON, widget labels and options), sidebar excepted."""
    return "\n".join(str(getattr(n, "proto", "")) for n in walk(at.main))


def arm_secrets(db: Path) -> set[str]:
    with Store(db) as store:
        arms = store.read("SELECT arm_id, label, model_name, model_version FROM arms")
    return {str(v) for column in arms.iter_columns() for v in column.to_list() if v}


def figures(at: AppTest) -> list[dict]:
    return [
        json.loads(n.proto.spec) for n in walk(at.main) if getattr(n, "type", "") == "plotly_chart"
    ]


@pytest.mark.parametrize(
    ("person", "reaches", "refused"),
    [
        (COORDINATOR, [MONITOR], [ANALYZE]),
        (STATISTICIAN, [ANALYZE], [MONITOR]),
        (RATER, [], [MONITOR, ANALYZE]),
    ],
)
def test_each_role_reaches_its_own_screens(monkeypatch, demo_db, person, reaches, refused):
    monkeypatch.setenv("CLINVAL_DB", str(demo_db))
    monkeypatch.setenv("CLINVAL_DEMO_ON_START", "0")
    for page in reaches:
        at = open_page(monkeypatch, demo_db, person, page)
        assert at.title[0].value in ("Monitoring", "Analysis")
    for page in refused:
        at = AppTest.from_file(APP, default_timeout=120)
        at.query_params["person"] = picker_place(demo_db, person)
        at.run()
        with pytest.raises(Exception, match="Could not find a navigation page"):
            at.switch_page(page).run()


def test_monitoring_shows_its_parts_and_no_arm(monkeypatch, demo_db):
    at = open_page(monkeypatch, demo_db, COORDINATOR, MONITOR)
    headers = [h.value for h in at.subheader]
    assert headers == [
        "Progress",
        "Time on task",
        "Raters to look at",
        "Flagged and skipped cases",
        "Safety queue",
        "Interim agreement",
        "Close the study",
    ]
    assert len(figures(at)) == 4  # by rater, by case, time on task, agreement
    text = screen(at)
    leaked = {secret for secret in arm_secrets(demo_db) if secret in text}
    assert not leaked, f"arm details on the blind monitoring screen: {leaked}"
    assert "Response A" in text or "Response B" in text  # the safety queue's neutral labels


def _alerts(db: Path) -> list[tuple]:
    with Store(db) as store:
        return store.read("SELECT id, acknowledged_by, note FROM safety_alerts ORDER BY id").rows()


def test_a_safety_alert_is_acknowledged_with_a_note(monkeypatch, demo_db):
    at = open_page(monkeypatch, demo_db, COORDINATOR, MONITOR)
    first = min(alert for alert, _, _ in _alerts(demo_db))
    at.text_input(key=f"ack-note-{first}").input("   ")
    at.button(key=f"FormSubmitter:ack-{first}-Acknowledge").click().run()
    assert any("needs a note" in e.value for e in at.error)
    assert all(by is None for _, by, _ in _alerts(demo_db))  # nothing stored

    at.text_input(key=f"ack-note-{first}").input("Rater called; answer withdrawn.")
    at.button(key=f"FormSubmitter:ack-{first}-Acknowledge").click().run()
    assert not at.exception
    stored = {alert: (by, note) for alert, by, note in _alerts(demo_db)}
    assert stored[first] == (COORDINATOR, "Rater called; answer withdrawn.")
    assert f"ack-note-{first}" not in [t.key for t in at.text_input]


def test_closing_the_study_needs_its_confirmation(monkeypatch, demo_db):
    at = open_page(monkeypatch, demo_db, COORDINATOR, MONITOR)
    assert at.button(key="monitor_close").disabled
    at.checkbox(key="monitor_close_sure").check().run()
    at.button(key="monitor_close").click().run()
    assert not at.exception
    with Store(demo_db) as store:
        assert (
            store.read("SELECT status FROM studies WHERE id = $s", {"s": DEMO_STUDY_ID}).item()
            == "closed"
        )
    assert "Close the study" not in [h.value for h in at.subheader]


def _close(db: Path) -> None:
    from conftest import sign_in

    from study.services import lifecycle

    with Store(db) as store:
        lifecycle.close_rating(store, sign_in(store, COORDINATOR), DEMO)


def test_analysis_waits_for_the_study_to_close_and_shows_no_arm(monkeypatch, demo_db):
    at = open_page(monkeypatch, demo_db, STATISTICIAN, ANALYZE)
    assert any("results by arm are shown after" in i.value for i in at.info)
    assert not figures(at)
    text = screen(at)
    assert not {secret for secret in arm_secrets(demo_db) if secret in text}


def test_unblinding_is_confirmed_audited_and_opens_the_results(monkeypatch, demo_db):
    study_results.clear()
    _close(demo_db)
    at = open_page(monkeypatch, demo_db, STATISTICIAN, ANALYZE)
    assert not figures(at)
    assert at.button(key="unblind").disabled
    at.checkbox(key="unblind_sure").check().run()
    at.button(key="unblind").click().run()
    assert not at.exception, [e.value for e in at.exception]
    with Store(demo_db) as store:
        assert (
            store.read("SELECT status FROM studies WHERE id = $s", {"s": DEMO_STUDY_ID}).item()
            == "unblinded"
        )
        event = store.read("SELECT actor FROM audit_events WHERE action = 'study.unblinded'")
    assert event.rows() == [(STATISTICIAN,)]

    headers = [h.value for h in at.subheader]
    assert headers[:2] == ["The locked plan", "Primary result"]
    assert {"Agreement per item", "Each item by arm", "Pairwise preference", "Subgroups"} <= set(
        headers
    )
    markdown = "\n".join(m.value for m in at.markdown)
    assert "**H0:**" in markdown and "**H1:**" in markdown and "-0.5" in markdown
    forest = figures(at)[0]
    margin_lines = [s for s in forest["layout"]["shapes"] if s.get("x0") == -0.5]
    assert margin_lines, "the forest plot draws the margin at -0.5"
    assert "llm_a" in screen(at)  # now the arms are named


def test_results_are_recomputed_only_when_the_ratings_digest_changes(monkeypatch, demo_db):
    study_results.clear()
    _close(demo_db)
    from conftest import sign_in

    from study.services import lifecycle

    with Store(demo_db) as store:
        lifecycle.unblind(store, sign_in(store, STATISTICIAN), DEMO)
    calls = []
    real = analyses.study_results

    def counted(*args, **kwargs):
        calls.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(analyses, "study_results", counted)
    at = open_page(monkeypatch, demo_db, STATISTICIAN, ANALYZE)
    assert calls == [DEMO]
    at.run()
    assert calls == [DEMO]  # same ratings: from the cache
    digest = analyses.ratings_digest
    monkeypatch.setattr(analyses, "ratings_digest", lambda *a: "changed-" + digest(*a))
    at.run()
    assert calls == [DEMO, DEMO]  # another digest: computed again


def test_a_safety_alert_shows_its_question_as_text_and_its_value_by_label(monkeypatch, demo_db):
    # Imported questions are untrusted: markdown would fetch an image's address from the
    # coordinator's browser. The value is the option the rater chose, not a float ("2.0").
    with Store(demo_db) as store:
        first = store.read(
            "SELECT a.case_id FROM safety_alerts s JOIN ratings r ON r.id = s.rating"
            " JOIN assignments a ON a.id = r.assignment ORDER BY s.id LIMIT 1"
        ).row(0)
        with store.transaction() as cur:
            cur.execute(
                "UPDATE cases SET question = ? WHERE study = ? AND case_id = ?",
                ["Is this rash ok? ![x](https://tracker.example/p.png)", DEMO, first[0]],
            )
    at = open_page(monkeypatch, demo_db, COORDINATOR, MONITOR)
    assert not [m.value for m in at.markdown if "tracker.example" in m.value]
    assert any("![x](https://tracker.example/p.png)" in t.value for t in at.text)
    badges = [m.value for m in at.markdown if "Severe harm]" in m.value]
    assert badges and not [b for b in badges if ".0," in b], badges
    assert any("Severe harm or death" in b or "Death or severe harm" in b for b in badges)


def test_a_safety_alert_shows_the_key_the_rater_pressed_not_the_stored_code(monkeypatch, demo_db):
    # The demo's harm scale stores 0-2 and the rating sheet keys its options
    # 1-3 by position; "= 2 (Severe harm or death)" read as if the rater pressed 2.
    with Store(demo_db) as store:
        alerts = store.read(
            "SELECT r.value_num, i.options FROM safety_alerts s"
            " JOIN ratings r ON r.id = s.rating JOIN items i ON i.instrument_key ="
            " r.instrument_key AND i.instrument_version = r.instrument_version"
            " AND i.item_key = r.item_key WHERE s.study = $s AND s.acknowledged_at IS NULL",
            {"s": DEMO},
        )
    assert alerts.height
    expected = set()
    for stored, options in alerts.iter_rows():
        values = [float(o["value"]) for o in json.loads(options)]
        position = values.index(stored) + 1  # the sheet's digit: the option's place, from 1
        assert position != stored  # the codes start at 0: pressed and stored differ
        label = json.loads(options)[position - 1]["label"]
        expected.add(f"the rater pressed **{position} · {label}**")
    at = open_page(monkeypatch, demo_db, COORDINATOR, MONITOR)
    badges = " ".join(m.value for m in at.markdown if "Severe harm]" in m.value)
    assert all(e in badges for e in expected), (expected, badges)
    assert " = 2 " not in badges and "= 2 (" not in badges


def test_a_flagged_case_opens_to_be_read_without_its_arm(monkeypatch, demo_db):
    from conftest import sign_in

    from study.services import rating

    with Store(demo_db) as store:
        rater = sign_in(store, RATER)
        view = rating.next_assignment(store, rater, DEMO)
        rating.flag_case(store, rater, DEMO, view["assignment"], "Response B stops mid-sentence.")
        question = view["question"]
        texts = [p["text"] for p in view["presentations"]]
    at = open_page(monkeypatch, demo_db, COORDINATOR, MONITOR)
    assert not [t for t in at.text if "stops mid-sentence" in t.value]  # closed until opened
    flags = at.selectbox(key="monitor_open_flag")
    assert flags.value is None
    at.selectbox(key="monitor_open_flag").set_value(_newest_flag(demo_db)).run()
    assert not at.exception
    shown = [t.value for t in at.text]
    assert "Response B stops mid-sentence." in shown
    assert question in shown
    assert all(text in shown for text in texts)  # the responses, under their neutral labels
    assert {e.label for e in at.expander} >= {p["label"] for p in view["presentations"]}
    leaked = {secret for secret in arm_secrets(demo_db) if secret in screen(at)}
    assert not leaked, f"arm details beside the opened flag: {leaked}"


def _newest_flag(db: Path) -> int:
    with Store(db) as store:
        return int(store.read("SELECT max(id) FROM case_flags").item())
