"""The Design screen through AppTest, as a coordinator of the demo picker: from a new study to a
locked protocol and open rating, with the demo's own files (data/demo).

- A rejected upload shows the importer's full report (file, row, column, problem) and stores
  nothing; the demo's arms, cases and answers import; K-QA's two shapes go in through step 2's
  column mapping (previewed, nothing stored, then imported), without a script.
- An instrument attaches (a built-in one, or a custom file, whose problems are shown when it is
  broken), and its preview renders the case and the rating sheet; submitting the preview stores
  nothing.
- Calibration and repeats set in step 4 reach the dry run and the locked protocol.
- The dry run shows its tables (loads, overlap, arm x position, raters per case) and the rater x
  case heatmap, and the blinding leak report.
- The lock shows the stored protocol's content hash; a new version needs a reason.
- A rater is invited by e-mail, and rating opens only after the confirmation.
- A rater and a statistician get no Design screen; the demo's coordinator (of one study) sees
  every step of a study in rating, creates none, and step 6 shows the stored hash.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import OPERATOR, ROOT, picker_place
from streamlit.testing.v1 import AppTest
from test_mapping import MODELS_TOML, models_csv, physicians_jsonl

from study.access import system_caller
from study.services import people, studies
from study.services.people import DEMO_ISSUER
from study.store import Store

APP = str(ROOT / "app.py")
DESIGN = "pages/design.py"
DEMO_FILES = ROOT / "data" / "demo"
STUDY = "trial"
COORDINATOR, STATISTICIAN, RATER = "demo-coordinator", "demo-statistician", "demo-rater-01"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """An empty database with three people of the demo picker: a coordinator of every study
    (who may create studies), a statistician and a rater; and one invited rater of another
    study (so the rater's role is real)."""
    path = tmp_path / "design.duckdb"
    with Store(path) as store:
        for user_id, role, study in (
            (COORDINATOR, "coordinator", None),
            (STATISTICIAN, "statistician", None),
            (RATER, "rater", "other"),
        ):
            people.ensure_user(
                store,
                OPERATOR,
                issuer=DEMO_ISSUER,
                subject=user_id,
                user_id=user_id,
                display_name=user_id,
                specialty="cardiology",
            )
            if study and not studies.list_studies(store, OPERATOR).height:
                studies.create_study(store, OPERATOR, "Other", study_id=study)
            people.grant_role(store, OPERATOR, study, user_id, role)
    return path


def open_design(monkeypatch, db: Path, person: str = COORDINATOR) -> AppTest:
    monkeypatch.setenv("CLINVAL_DB", str(db))
    monkeypatch.setenv("CLINVAL_DEMO_ON_START", "0")
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["person"] = picker_place(db, person)
    at.run()
    at.switch_page(DESIGN).run()
    assert_no_exception(at)
    return at


def assert_no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def key(name: str) -> str:
    return f"design:{STUDY}:{name}"


def go(at: AppTest, step: int) -> AppTest:
    at.radio(key="design_step").set_value(step).run()
    assert_no_exception(at)
    return at


def upload(at: AppTest, kind: str, name: str, data: bytes) -> AppTest:
    at.file_uploader(key=key(f"upload-{kind}")).set_value((name, data, "text/plain")).run()
    at.button(key=key(f"import-{kind}")).click().run()
    assert_no_exception(at)
    return at


def table(at: AppTest, *columns: str):
    """The one table on the screen with ``columns`` (AppTest does not expose a table's key)."""
    found = [d.value for d in at.dataframe if set(columns) <= set(d.value.columns)]
    assert len(found) == 1, f"{len(found)} tables with the columns {columns}"
    return found[0]


def errors(at: AppTest) -> str:
    """The error messages as the screen shows them: their Markdown escapes (``plain``) undone."""
    return "\n".join(re.sub(r"\\(.)", r"\1", e.value) for e in at.error)


def stored(db: Path, sql: str):
    with Store(db) as store:
        return store.read(sql, {"s": STUDY} if "$s" in sql else None)


def create(at: AppTest) -> AppTest:
    at.text_input(key="design_new_name").input("Trial study")
    at.text_input(key="design_new_id").input(STUDY)
    at.button(key="FormSubmitter:design_create-Create the study").click().run()
    assert_no_exception(at)
    return at


def import_demo(at: AppTest) -> AppTest:
    go(at, 2)
    for kind, name in (
        ("arms", "arms.csv"),
        ("cases", "cases.jsonl"),
        ("answers", "answers.jsonl"),
    ):
        upload(at, kind, name, (DEMO_FILES / name).read_bytes())
        assert not at.error, errors(at)
    # every file's confirmation is still on the screen, not the last one alone
    confirmed = " ".join(s.value for s in at.success)
    assert all(name.replace(".", "\\.") in confirmed or name in confirmed for _, name in (
        ("arms", "arms.csv"), ("cases", "cases.jsonl"), ("answers", "answers.jsonl")
    ))  # fmt: skip
    return at


def attach(at: AppTest, instrument: str = "ayers_harm") -> AppTest:
    go(at, 3)
    at.selectbox(key=key("builtin")).set_value(instrument).run()
    at.button(key=key("attach-builtin")).click().run()
    assert_no_exception(at)
    assert not at.error, errors(at)
    return at


def plan(at: AppTest) -> AppTest:
    go(at, 5)
    at.selectbox(key=key("primary_item")).set_value("quality").run()
    at.number_input(key=key("margin")).set_value(0.5).run()
    assert_no_exception(at)
    return at


def lock(at: AppTest) -> AppTest:
    go(at, 6)
    at.checkbox(key=key("lock-sure")).check().run()
    at.button(key=key("lock")).click().run()
    assert_no_exception(at)
    assert not at.error, errors(at)
    return at


def test_a_coordinator_creates_a_study(monkeypatch, db):
    at = create(open_design(monkeypatch, db))
    assert stored(db, "SELECT id, name, status FROM studies WHERE id = $s").rows() == [
        (STUDY, "Trial study", "draft")
    ]
    assert at.selectbox(key="design_study").value == STUDY
    assert at.radio(key="design_step").value == 2  # on to the uploads
    # a second study under the same id is refused with the service's message, no traceback
    go(at, 1)
    create(at)
    assert "exists already" in errors(at)


def test_a_rejected_upload_shows_every_problem_and_stores_nothing(monkeypatch, db):
    at = go(create(open_design(monkeypatch, db)), 2)
    # two rows without a question, one id twice: every problem is listed with its row
    bad = b"case_id,question\nc1,\nc2,\nc3,Fine?\nc3,Again?\n"
    upload(at, "cases", "cases.csv", bad)
    assert "nothing was stored" in errors(at)
    assert at.markdown.values.count("**cases.csv was rejected.**") == 1
    report = table(at, "file", "row", "column", "problem")
    assert list(report.columns) == ["file", "row", "column", "problem"]
    assert set(report["file"]) == {"cases.csv"}
    assert report.shape[0] >= 2
    assert {1, 2} <= set(report["row"].dropna().astype(int))
    assert set(report["column"].dropna()) >= {"question"}
    assert stored(db, "SELECT count(*) AS n FROM cases WHERE study = $s").item() == 0


def test_the_demo_files_import_and_show_each_arms_provenance(monkeypatch, db):
    at = import_demo(create(open_design(monkeypatch, db)))
    counts = stored(
        db,
        "SELECT (SELECT count(*) FROM cases WHERE study = $s) AS cases,"
        " (SELECT count(*) FROM arms WHERE study = $s) AS arms,"
        " (SELECT count(*) FROM answers WHERE study = $s) AS answers",
    ).row(0)
    assert counts == (42, 2, 84)
    provenance = table(at, "arm_id", "model_name", "generated")
    assert list(provenance["arm_id"]) == ["clinician", "llm_a"]
    llm = provenance[provenance["arm_id"] == "llm_a"].iloc[0]
    assert (llm["model_name"], llm["model_version"]) == ("demo-llm", "demo-llm-2026-06-01")
    assert llm["answers"] == "42 of 42"
    assert "2. Content ✓" in at.radio(key="design_step").options


def test_unknown_provenance_is_highlighted(monkeypatch, db, tmp_path):
    at = go(create(open_design(monkeypatch, db)), 2)
    upload(
        at,
        "arms",
        "arms.csv",
        b"arm_id,kind,label,model_name,model_version\nllm,llm,An LLM,not recorded,v1\n",
    )
    assert not at.error, errors(at)
    warnings = " ".join(w.value for w in at.warning)
    assert "llm" in warnings and "model_name" in warnings, warnings


def test_step_2_maps_previews_and_imports_both_kqa_shapes_without_a_script(
    monkeypatch, db, tmp_path
):
    at = go(create(open_design(monkeypatch, db, COORDINATOR)), 2)

    def upload_table(path: Path) -> None:
        at.file_uploader(key=key("upload-table")).set_value(
            (path.name, path.read_bytes(), "text/plain")
        ).run()
        assert_no_exception(at)

    def counts() -> tuple[int, int, int]:
        return stored(
            db,
            "SELECT (SELECT count(*) FROM cases WHERE study = $s),"
            " (SELECT count(*) FROM arms WHERE study = $s),"
            " (SELECT count(*) FROM answers WHERE study = $s)",
        ).row(0)

    # the wide file: a hash of the question, one answer column for the physicians' arm
    upload_table(physicians_jsonl(tmp_path))
    at.selectbox(key=key("map-question")).set_value("Question").run()
    at.selectbox(key=key("map-specialty")).set_value("ICD_10_diag").run()
    at.multiselect(key=key("map-answer-columns")).set_value(["Free_form_answer"]).run()
    arm = "map-arm:Free_form_answer"
    at.text_input(key=key(f"{arm}:id")).input("kqa_physicians").run()
    at.selectbox(key=key(f"{arm}:kind")).set_value("clinician").run()
    at.text_input(key=key(f"{arm}:clinician:author_role")).input("physician").run()
    at.button(key=key("map-preview")).click().run()
    assert_no_exception(at)
    assert not at.error, errors(at)
    shown = " ".join(i.value for i in at.info)
    assert "3 rows read as 3 cases, 1 arm, 2 answers" in shown, shown
    assert counts() == (0, 0, 0)  # a preview stores nothing
    at.text_input(key=key("map-name")).input("physicians").run()
    at.button(key=key("map-import")).click().run()
    assert not at.error, errors(at)
    assert counts() == (3, 1, 2)

    # the long file: an arm column and an answer column, a row per claim folded
    upload_table(models_csv(tmp_path))
    at.radio(key=key("map-source")).set_value("Map the columns here").run()
    at.radio(key=key("map-layout")).set_value("long").run()
    at.selectbox(key=key("map-arm-column")).set_value("llm_x").run()
    at.selectbox(key=key("map-text-column")).set_value("answer").run()
    at.checkbox(key=key("map-only-known")).check().run()
    for model in ("gpt35", "gpt4"):
        at.text_input(key=key(f"map-arm:{model}:llm:model_name")).input(model).run()
    at.button(key=key("map-preview")).click().run()
    assert not at.error, errors(at)
    shown = " ".join(i.value for i in at.info)
    assert "6 rows repeated a case, arm and text" in shown and "2 rows left out" in shown, shown
    at.text_input(key=key("map-name")).input("models").run()
    at.button(key=key("map-import")).click().run()
    assert not at.error, errors(at)
    assert counts() == (3, 3, 5)
    kept = stored(db, "SELECT name FROM import_mappings WHERE study = $s ORDER BY name")
    assert kept.get_column("name").to_list() == ["models", "physicians"]

    # a wrong mapping from a file: its key named, nothing stored
    at.radio(key=key("map-source")).set_value("Upload a mapping (TOML)").run()
    at.file_uploader(key=key("map-file")).set_value(
        (
            "bad.toml",
            MODELS_TOML.replace('text = "answer"', 'text = "answr"').encode(),
            "text/plain",
        )
    ).run()
    at.button(key=key("map-import")).click().run()
    assert "'answr' is not in" in " ".join(str(d.value) for d in at.dataframe)
    assert counts() == (3, 3, 5)


def test_an_instrument_attaches_and_its_preview_renders_and_stores_nothing(monkeypatch, db):
    at = attach(import_demo(create(open_design(monkeypatch, db))))
    assert stored(db, "SELECT instrument_key FROM study_instruments WHERE study = $s").rows() == [
        ("ayers_harm",)
    ]
    sheets = [n for n in walk(at._tree) if getattr(n, "type", "") == "bidi_component"]
    assert len(sheets) == 1
    data = json.loads(sheets[0].proto.bytes)
    assert data["fields"] and data["submit_label"].startswith("Submit (preview")
    assert {f["where"] for f in data["fields"]} >= {"Response A", "Response B"}
    shown = " ".join(m.value for m in at.markdown)
    assert "**Response A**" in shown and "**Response B**" in shown
    # the first demo case's question is on the screen as a rater sees it
    question = json.loads((DEMO_FILES / "cases.jsonl").read_text().splitlines()[0])["question"]
    assert any(question[:40] in m.value for m in at.markdown)
    # a submission of the preview is handed back; nothing is stored
    send_sheet(at, sheets[0].proto, data)
    assert_no_exception(at)
    again = json.loads(
        [n for n in walk(at._tree) if getattr(n, "type", "") == "bidi_component"][0].proto.bytes
    )
    assert again["attempt"] == 1 and "nothing was stored" in again["problems"]["sheet"]
    assert stored(db, "SELECT count(*) FROM ratings").item() == 0


def test_the_dry_run_shows_its_tables_the_heatmap_and_the_leak_report(monkeypatch, db):
    at = attach(import_demo(create(open_design(monkeypatch, db))))
    go(at, 4)
    at.number_input(key=key("planned_raters")).set_value(5).run()
    at.number_input(key=key("raters_per_case")).set_value(3).run()
    assert_no_exception(at)
    assert not at.error, errors(at)
    loads = table(at, "rater_id", "assignments", "calibration", "repeats")
    assert len(loads) == 5 and loads["assignments"].sum() == 42 * 3
    per_case = table(at, "case_id", "raters", "answers_shown")
    assert set(per_case["raters"]) == {3}
    positions = table(at, "rater_id", "arm_id", "position 1")
    assert {"rater_id", "arm_id", "position 1", "position 2"} <= set(positions.columns)
    overlap = table(at, "rater_a", "rater_b")
    assert {"rater_a", "rater_b", "shared_cases"} <= set(overlap.columns)
    (heatmap,) = [
        json.loads(n.proto.spec) for n in walk(at._tree) if getattr(n, "type", "") == "plotly_chart"
    ]
    cells = heatmap["data"][0]
    assert cells["type"] == "heatmap"
    assert len(cells["y"]) == 5 and len(cells["x"]) == 42
    assert plotly_array(cells["z"]).sum() == 42 * 3
    leaks = table(at, "arm_id", "format_auc")
    assert list(leaks["arm_id"]) == ["clinician", "llm_a"]
    assert "format_auc" in leaks.columns
    assert "4. Assignment ✓" in at.radio(key="design_step").options


def test_the_lock_shows_the_stored_hash_and_a_new_version_needs_a_reason(monkeypatch, db):
    at = plan(attach(import_demo(create(open_design(monkeypatch, db)))))
    power = [m for m in at.metric if m.label.startswith("Cases for")]
    assert [m.label for m in power] == ["Cases for 80% power", "Cases for 90% power"]
    lock(at)
    digest, version = stored(
        db, "SELECT content_hash, version FROM protocols WHERE study = $s"
    ).row(0)
    assert version == 1
    assert at.code[0].value == digest
    assert any(digest in s.value for s in at.success)
    history = table(at, "version", "content_hash", "reason")
    assert list(history["version"]) == [1] and list(history["content_hash"]) == [digest]
    content = json.loads(stored(db, "SELECT content FROM protocols WHERE study = $s").item())
    assert content["primary_endpoint"]["item"] == "quality"
    assert content["primary_endpoint"]["margin"] == 0.5
    assert "seed" not in content and content["assignment_seed_commitment"]
    # a new version without a reason is refused and stores nothing
    at.button(key=key("amend")).click().run()
    assert_no_exception(at)
    assert "needs a reason" in errors(at)
    assert stored(db, "SELECT count(*) FROM protocols WHERE study = $s").item() == 1
    at.text_input(key=key("amend-reason")).input("Margin agreed with the ethics board").run()
    at.button(key=key("amend")).click().run()
    assert_no_exception(at)
    assert stored(db, "SELECT count(*) FROM protocols WHERE study = $s").item() == 2
    history = table(at, "version", "content_hash", "reason")
    assert list(history["reason"])[1] == "Margin agreed with the ethics board"


def test_raters_are_invited_and_rating_opens_after_the_confirmation(monkeypatch, db):
    at = lock(plan(attach(import_demo(create(open_design(monkeypatch, db))))))
    go(at, 7)
    for address in ("ann@hospital.example", "bob@hospital.example", "cy@hospital.example"):
        at.text_input(key=key("invite-email")).input(address)
        at.button(key=f"FormSubmitter:{key('invite')}-Invite").click().run()
        assert_no_exception(at)
        assert not at.error, errors(at)
    raters = table(at, "id", "email", "waiting")
    assert sorted(raters["email"]) == [
        "ann@hospital.example",
        "bob@hospital.example",
        "cy@hospital.example",
    ]
    assert at.button(key=key("open")).disabled  # not without the confirmation
    at.checkbox(key=key("open-sure")).check().run()
    at.button(key=key("open")).click().run()
    assert_no_exception(at)
    assert not at.error, errors(at)
    assert stored(db, "SELECT status FROM studies WHERE id = $s").item() == "rating"
    assert stored(db, "SELECT count(*) FROM assignments WHERE study = $s").item() == 42 * 2


@pytest.mark.parametrize("person", [RATER, STATISTICIAN])
def test_a_rater_and_a_statistician_get_no_design_screen(monkeypatch, db, person):
    monkeypatch.setenv("CLINVAL_DB", str(db))
    monkeypatch.setenv("CLINVAL_DEMO_ON_START", "0")
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["person"] = picker_place(db, person)
    at.run()
    with pytest.raises(Exception, match="Could not find a navigation page"):
        at.switch_page(DESIGN).run()


# --- the rating sheet as the browser sends it (see tests/test_rate_page.py) ----------------------


def walk(node) -> list:
    out = []
    for child in getattr(node, "children", {}).values():
        out += [child, *walk(child)]
    return out


def plotly_array(value) -> np.ndarray:
    """A figure's array as plotly sends it: a list, or typed bytes {dtype, bdata, shape}."""
    if isinstance(value, dict):
        shape = tuple(int(n) for n in str(value.get("shape", "-1")).split(","))
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).reshape(shape)
    return np.asarray(value)


def send_sheet(at: AppTest, proto, data: dict) -> AppTest:
    """Submit the preview's sheet as its JavaScript does on Enter: one ``submit`` trigger."""
    values = {str(n): f["options"][0]["value"] for n, f in enumerate(data["fields"])}
    states = at._tree.get_widget_states()
    trigger = states.widgets.add()
    trigger.id = f"$$STREAMLIT_INTERNAL_KEY_{proto.id}__events"
    value = {"token": data["token"], "attempt": data["attempt"], "values": values, "texts": {}}
    trigger.json_trigger_value = json.dumps([{"event": "submit", "value": value}])
    return at._run(states)


def test_a_custom_instrument_is_checked_attached_and_previewed(monkeypatch, db):
    at = import_demo(create(open_design(monkeypatch, db)))
    go(at, 3)
    # a broken file: its problems are shown, nothing is attached
    at.file_uploader(key=key("upload-instrument")).set_value(
        ("mine.toml", b'key = "mine"\nversion = "1"\n[[items]]\nkey = "q"\n', "text/plain")
    ).run()
    assert_no_exception(at)
    assert "mine.toml" in errors(at)
    example = ROOT / "data" / "instruments" / "example_custom.toml"
    at.file_uploader(key=key("upload-instrument")).set_value(
        (example.name, example.read_bytes(), "text/plain")
    ).run()
    assert not at.error, errors(at)
    at.button(key=key("attach-custom")).click().run()
    assert_no_exception(at)
    assert stored(db, "SELECT instrument_key FROM study_instruments WHERE study = $s").rows() == [
        ("example_custom",)
    ]
    (sheet,) = [n for n in walk(at._tree) if getattr(n, "type", "") == "bidi_component"]
    prompts = {f["prompt"] for f in json.loads(sheet.proto.bytes)["fields"]}
    assert "Does the answer say when and with whom to follow up?" in prompts


def test_calibration_and_repeats_go_to_the_dry_run_and_the_locked_protocol(monkeypatch, db):
    at = attach(import_demo(create(open_design(monkeypatch, db))))
    go(at, 4)
    at.checkbox(key=key("calibration")).check().run()
    at.multiselect(key=key("calibration_cases")).select("demo-001").run()
    at.text_area(key=key("expected")).input(
        json.dumps({"demo-001": {"quality": {"Response A": 4, "Response B": 4}}})
    ).run()
    at.checkbox(key=key("repeats")).check().run()
    assert_no_exception(at)
    assert not at.error, errors(at)
    loads = table(at, "rater_id", "assignments", "calibration", "repeats")
    assert set(loads["calibration"]) == {1} and loads["repeats"].sum() > 0
    assert loads["assignments"].sum() == 41 * 2  # the calibration case is no live case
    lock(plan(at))
    content = json.loads(stored(db, "SELECT content FROM protocols WHERE study = $s").item())
    assert content["calibration"]["cases"] == ["demo-001"]
    assert content["calibration"]["pass_threshold"] == 0.8
    assert content["repeats"] == {"share": 0.1, "washout_days": 14}


def test_the_intended_use_is_set_in_step_1_and_locked_with_the_protocol(monkeypatch, db):
    at = create(open_design(monkeypatch, db))
    go(at, 1)
    at.text_input(key=key("use_task")).input("replies to portal messages").run()
    at.text_input(key=key("use_language")).input("  English ").run()
    assert_no_exception(at)
    attach(import_demo(at))
    # kept with the draft across steps: step 1 shows what was typed
    go(at, 1)
    assert at.text_input(key=key("use_task")).value == "replies to portal messages"
    lock(plan(at))
    content = json.loads(stored(db, "SELECT content FROM protocols WHERE study = $s").item())
    # stated fields only, trimmed; an empty field is left out rather than locked as ""
    assert content["intended_use"] == {"task": "replies to portal messages", "language": "English"}
    go(at, 1)
    shown = " ".join(m.value for m in at.markdown)
    assert "Task: replies to portal messages" in shown and "Language: English" in shown
    assert key("use_task") not in [t.key for t in at.text_input]  # locked: shown, not editable


def test_the_demo_coordinator_sees_every_step_of_a_study_in_rating(monkeypatch, demo_db):
    from study.demo import DEMO_STUDY_ID

    at = open_design(monkeypatch, demo_db)
    assert at.selectbox(key="design_study").value == DEMO_STUDY_ID
    for step in range(1, 8):
        go(at, step)
        assert not at.error, (step, errors(at))
        if step == 1:  # the demo's coordinator holds the role for every study: may create
            assert "design_new_name" in [t.key for t in at.text_input]
    go(at, 6)
    with Store(demo_db) as store:
        digest = store.read(
            "SELECT max_by(content_hash, version) FROM protocols WHERE study = $s",
            {"s": DEMO_STUDY_ID},
        ).item()
    assert at.code[0].value == digest
    go(at, 7)
    assert any("The study is open for rating." in s.value for s in at.success)


def test_a_coordinator_of_one_study_is_told_why_there_is_no_create_form(monkeypatch, demo_db):
    """Only a coordinator for every study creates studies; one who coordinates a single study
    reads why the create form is missing instead of finding nothing."""
    from study.demo import COORDINATOR, DEMO_STUDY_ID

    with Store(demo_db) as store:
        operator = system_caller("cli")
        people.revoke_role(store, operator, None, COORDINATOR["user_id"], "coordinator")
        people.grant_role(store, operator, DEMO_STUDY_ID, COORDINATOR["user_id"], "coordinator")
    at = open_design(monkeypatch, demo_db)
    assert "design_new_name" not in [t.key for t in at.text_input]
    said = " ".join(i.value for i in at.info)
    assert "coordinator's role for every study" in said and "1 study only" in said


def test_a_drafts_settings_come_back_in_a_new_sitting(monkeypatch, db):
    at = attach(import_demo(create(open_design(monkeypatch, db))))
    go(at, 4)
    at.selectbox(key=key("mode")).set_value("separate").run()
    at.number_input(key=key("planned_raters")).set_value(6).run()
    at.number_input(key=key("raters_per_case")).set_value(3).run()
    assert not at.error, errors(at)  # the dry run holds
    plan(at)
    at.number_input(key=key("margin")).set_value(0.75).run()
    assert_no_exception(at)
    kept = stored(
        db, "SELECT payload FROM audit_events WHERE action = 'design.draft' ORDER BY seq"
    ).get_column("payload")
    assert any(json.loads(p)["changed"].get("margin") == 0.75 for p in kept)

    # the tab is closed; the coordinator comes back in another session (another device)
    again = open_design(monkeypatch, db)
    go(again, 4)
    assert again.selectbox(key=key("mode")).value == "separate"
    assert again.number_input(key=key("raters_per_case")).value == 3
    assert again.number_input(key=key("planned_raters")).value == 6
    go(again, 5)
    assert again.selectbox(key=key("primary_item")).value == "quality"
    assert again.number_input(key=key("margin")).value == 0.75
    # reading them back wrote nothing
    assert stored(
        db, "SELECT count(*) FROM audit_events WHERE action = 'design.draft'"
    ).item() == len(kept)

    # the seed is drawn per sitting: a lock without this sitting's dry run says so
    third = go(open_design(monkeypatch, db), 6)
    assert any("not looked at the dry run" in i.value for i in third.info)
    assert not any("not looked at the dry run" in i.value for i in go(again, 6).info)

    # the lock freezes the protocol made from them, and nothing is kept after it
    lock(again)
    content = json.loads(stored(db, "SELECT content FROM protocols WHERE study = $s").item())
    assert content["primary_endpoint"]["margin"] == 0.75
    assert content["assignment"] == content["assignment"] | {
        "mode": "separate",
        "raters_per_case": 3,
    }
    go(again, 5)
    assert stored(
        db, "SELECT count(*) FROM audit_events WHERE action = 'design.draft'"
    ).item() == len(kept)


def test_a_step_label_changed_by_its_mark_does_not_break_the_screen(monkeypatch, db):
    # Attaching an instrument turns the step's label "3. Instrument" into "3. Instrument ✓".
    # The browser still holds the label it drew, and sends it with the next change on the step
    # (another sample case in the preview); Streamlit hands such an unmatched label back as text.
    at = attach(import_demo(create(open_design(monkeypatch, db))))
    assert "3. Instrument ✓" in at.radio(key="design_step").options
    states = at._tree.get_widget_states()
    (step,) = [w for w in states.widgets if w.id.endswith("design_step")]
    step.string_value = "3. Instrument"
    at._run(states)
    assert_no_exception(at)
    assert at.radio(key="design_step").value == 3
    assert any(h.value == "3. Instrument" for h in at.subheader)


# --- third-party data: arms that answered different cases (as K-QA's LLMs did) ---------------

UNEVEN = {
    "arms.csv": "arm_id,kind,label,model_name,model_version,author_role\n"
    "doctors,clinician,Doctors,,,physician\n"
    "llm_a,llm,LLM A,model-a,not recorded,\n"
    "llm_b,llm,LLM B,model-b,not recorded,\n",
    "cases.csv": "case_id,question\n" + "".join(f"q{n},Question {n}?\n" for n in range(1, 9)),
    "answers.csv": "case_id,arm_id,text,generated_at,prompt,author_id\n"
    + "".join(f"q{n},doctors,Doctor's answer {n}.,,,not recorded\n" for n in range(1, 9))
    + "".join(f"q{n},llm_a,LLM A's answer {n}.,not recorded,not recorded,\n" for n in (1, 2, 3))
    + "".join(f"q{n},llm_b,LLM B's answer {n}.,not recorded,not recorded,\n" for n in (4, 5)),
}
"""8 cases answered by the doctors, 3 of them by llm_a and 2 others by llm_b: 3 cases have a
single answer; versions, dates, prompts and authors not recorded."""


def import_uneven(at: AppTest) -> AppTest:
    go(at, 2)
    for kind in ("arms", "cases", "answers"):
        upload(at, kind, f"{kind}.csv", UNEVEN[f"{kind}.csv"].encode())
        assert not at.error, errors(at)
    return at


def test_cases_with_a_single_answer_can_be_rated_when_the_coordinator_says_so(monkeypatch, db):
    # rated per answer (a pairwise item would need two answers on every case)
    at = attach(import_uneven(create(open_design(monkeypatch, db))), "harm")
    go(at, 5)
    at.selectbox(key=key("primary_item")).set_value("harm_extent").run()
    at.radio(key=key("direction")).set_value("lower").run()
    go(at, 4)
    assert (
        "3 case(s) have a single answer: rate them (tick the box above), or remove them before "
        "the lock (`python -m study remove`)."
    ) in [c.value for c in at.caption]
    go(at, 6)
    at.checkbox(key=key("lock-sure")).check().run()
    at.button(key=key("lock")).click().run()
    assert "single_answer_cases" in errors(at)  # refused without the setting: nothing stored
    assert stored(db, "SELECT count(*) FROM protocols WHERE study = $s").item() == 0
    go(at, 4)
    at.checkbox(key=key("single_answer_cases")).check().run()
    lock(at)
    content = json.loads(stored(db, "SELECT content FROM protocols WHERE study = $s").item())
    assert content["single_answer_cases"] is True


def test_the_power_counts_the_cases_both_compared_arms_answered(monkeypatch, db):
    at = attach(import_uneven(create(open_design(monkeypatch, db))), "harm")
    go(at, 5)
    at.selectbox(key=key("primary_item")).set_value("harm_extent").run()
    assert at.selectbox(key=key("test_arm")).value == "llm_a"
    assert at.selectbox(key=key("reference_arm")).value == "doctors"
    # llm_a and the doctors answered q1-q3 together: the paired comparison has 3 cases, not 8
    labels = [m.label for m in at.metric if m.label.startswith("Power with")]
    assert labels == ["Power with 3 cases"]
    assert any(
        "3 of 8 live cases answered by both llm_a and doctors" in c.value for c in at.caption
    )
    at.selectbox(key=key("test_arm")).set_value("llm_b").run()
    assert [m.label for m in at.metric if m.label.startswith("Power with")] == [
        "Power with 2 cases"
    ]


def test_an_unordered_categorical_item_is_no_endpoint(monkeypatch, db):
    # medpalm_physician's first item, "consensus" (1 aligned, 2 opposed, 3 no consensus), is
    # nominal: a mean difference of its codes would be a number without meaning
    at = attach(import_demo(create(open_design(monkeypatch, db))), "medpalm_physician")
    go(at, 5)
    primary = at.selectbox(key=key("primary_item"))
    assert not any(o.startswith("consensus:") for o in primary.options)
    assert primary.value == "harm_extent"
    assert not any(o.startswith("consensus:") for o in at.multiselect(key=key("secondary")).options)


def test_what_was_never_recorded_is_one_warning_per_field_naming_its_arms(monkeypatch, db):
    at = import_uneven(create(open_design(monkeypatch, db)))
    warnings = [w.value for w in at.warning]
    assert len(warnings) == 4, warnings  # model_version, generated_at, prompt, author_id
    (version,) = [w for w in warnings if w.startswith("`model_version`")]
    # arm ids are imported text: escaped for markdown (llm_a reads as llm_a, never as emphasis)
    assert "**llm\\_a**, **llm\\_b**" in version
    (dates,) = [w for w in warnings if w.startswith("`generated_at`")]
    assert "**llm\\_a** (3 of its answers), **llm\\_b** (2 of its answers)" in dates
    (authors,) = [w for w in warnings if w.startswith("`author_id`")]
    assert "**doctors** (8 of its answers)" in authors and "a rater may be shown" in authors
    provenance = table(at, "arm_id", "model_name", "generated")
    doctors = provenance[provenance["arm_id"] == "doctors"].iloc[0]
    assert (doctors["model_name"], doctors["model_version"]) == ("—", "—")


def test_the_direction_follows_the_primary_items_declaration(monkeypatch, db):
    at = attach(import_uneven(create(open_design(monkeypatch, db))), "harm")
    go(at, 5)
    at.selectbox(key=key("primary_item")).set_value("harm_extent").run()
    assert at.radio(key=key("direction")).value == "lower"  # harm: lower is better
    at.radio(key=key("direction")).set_value("higher").run()  # the coordinator's choice holds
    at.number_input(key=key("margin")).set_value(0.4).run()
    assert at.radio(key=key("direction")).value == "higher"


def test_every_column_of_the_leak_report_is_named_for_people(monkeypatch, db):
    at = attach(import_uneven(create(open_design(monkeypatch, db))), "harm")
    go(at, 4)
    # per arm, and (three arms here) pair by pair
    tables = [d for d in at.dataframe if "format_auc" in d.value.columns]
    assert len(tables) == 2
    for leaks in tables:
        config = json.loads(leaks.proto.columns)
        unnamed = [c for c in leaks.value.columns if not (config.get(c) or {}).get("label")]
        assert unnamed == [], unnamed  # K-QA showed 'mean_words 88.7333' beside 'Median words 83'


def test_the_demo_says_which_invited_raters_can_be_tried(monkeypatch, db):
    # In the demo without sign-in an invited address is nobody the picker offers: a coordinator
    # who invites ann@hospital.example cannot then rate as her to try the screen.
    at = go(create(open_design(monkeypatch, db)), 7)
    assert (
        'Demo without sign-in: only the demo\'s people can be picked under "Acting as". To try '
        "rating yourself, invite a demo rater by address (e.g. "
        "`ada.example@demo.clinval.example`, all in `data/demo/raters.csv`); someone invited "
        "with another address rates once sign-in is configured."
    ) in [c.value for c in at.caption]


def test_the_display_choices_are_the_renderings_modes(monkeypatch, db):
    from study.rendering import MODES

    at = go(attach(import_demo(create(open_design(monkeypatch, db)))), 4)
    assert set(at.selectbox(key=key("display")).options) == {
        "Markdown (headings, lists, emphasis)",
        "Markdown, each line break kept",
        "Plain text, as typed",
    }
    at.selectbox(key=key("display")).set_value("markdown_breaks").run()
    lock(plan(at))
    content = json.loads(stored(db, "SELECT content FROM protocols WHERE study = $s").item())
    assert content["display"] == "markdown_breaks" and content["display"] in MODES


def test_with_three_arms_the_leak_report_compares_each_pair_on_shared_cases(monkeypatch, db):
    # the demo's LLM answers split between two LLM arms by case, as K-QA's models were
    at = go(create(open_design(monkeypatch, db)), 2)
    arms = (DEMO_FILES / "arms.csv").read_text(encoding="utf-8").rstrip("\n")
    arms += "\nllm_b,llm,Second demo LLM (synthetic demo),demo-llm-b,demo-llm-b-2026-06-01,\n"
    answers = []
    for line in (DEMO_FILES / "answers.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["arm_id"] == "llm_a" and row["case_id"] > "demo-021":
            row |= {"arm_id": "llm_b", "answer_id": row["answer_id"] + "-b"}
            row |= {"model_name": "demo-llm-b", "model_version": "demo-llm-b-2026-06-01"}
        answers.append(json.dumps(row))
    upload(at, "arms", "arms.csv", arms.encode())
    upload(at, "cases", "cases.jsonl", (DEMO_FILES / "cases.jsonl").read_bytes())
    upload(at, "answers", "answers.jsonl", "\n".join(answers).encode())
    assert not at.error, errors(at)
    at = go(attach(at), 4)
    pairs = table(at, "arm_a", "arm_b", "shared_cases", "format_auc")
    assert [
        tuple(r) for r in pairs[["arm_a", "arm_b", "shared_cases"]].itertuples(index=False)
    ] == [
        ("clinician", "llm_a", 21),
        ("clinician", "llm_b", 21),
    ]
    # the demo's LLM writes longer, formatted answers than its clinicians: told apart per pair
    assert pairs["warning"].all()
    assert any("On the cases they share" in w.value for w in at.warning)


# --- every endpoint stated: its own margin (in its units), direction and method, and its H0 ----


def secondary_key(item: str, name: str) -> str:
    return key(f"secondary:{item}:{name}")


def plan_the_demos_endpoints(at: AppTest) -> AppTest:
    """Step 5 as the demo's own plan (study.demo.demo_protocol): quality 0.5 points, higher,
    mixed model with t as sensitivity; empathy 0.5 points; could_cause_harm 5 percentage
    points, lower, Newcombe; better_response described by win rates."""
    plan(at)
    at.selectbox(key=key("method")).set_value("mixed").run()
    at.multiselect(key=key("sensitivity")).select("t").run()
    for item in ("empathy", "could_cause_harm", "better_response"):
        at.multiselect(key=key("secondary")).select(item).run()
    at.number_input(key=secondary_key("empathy", "margin")).set_value(0.5).run()
    at.selectbox(key=secondary_key("empathy", "method")).set_value("mixed").run()
    at.number_input(key=secondary_key("could_cause_harm", "margin")).set_value(5.0).run()
    assert_no_exception(at)
    return at


def test_the_plan_locks_a_binary_secondary_with_its_own_margin_and_direction(monkeypatch, db):
    from study.demo import demo_protocol
    from study.instruments import get_builtin

    at = attach(import_demo(create(open_design(monkeypatch, db))))
    plan_the_demos_endpoints(at)
    harm = at.number_input(key=secondary_key("could_cause_harm", "margin"))
    assert harm.label == "Margin (percentage points)" and harm.value == 5.0
    assert at.number_input(key=secondary_key("empathy", "margin")).label == (
        "Margin (rating points)"
    )
    # the item declares "lower is better": the direction starts there, not at "higher"
    assert at.radio(key=secondary_key("could_cause_harm", "direction")).value == "lower"
    assert at.selectbox(key=secondary_key("could_cause_harm", "method")).options == [
        "Newcombe's hybrid score interval",
        "Farrington-Manning score test",
        "Miettinen-Nurminen score test",
    ]
    assert not at.error, errors(at)
    lock(at)
    content = json.loads(stored(db, "SELECT content FROM protocols WHERE study = $s").item())
    secondary = content["secondary_endpoints"]
    assert secondary[1] == {
        "item": "could_cause_harm",
        "statistic": "risk_difference",
        "margin": 0.05,
        "direction": "lower",
        "method": "newcombe",
    }
    # the wizard now writes the demo's own plan, endpoint for endpoint
    demo = demo_protocol(instrument={"key": get_builtin("ayers_harm").key})
    assert secondary == demo["secondary_endpoints"]
    assert {k: content["primary_endpoint"][k] for k in ("item", "margin", "direction")} == {
        "item": "quality",
        "margin": 0.5,
        "direction": "higher",
    }


def test_a_secondary_scale_item_gets_its_own_margin(monkeypatch, db):
    at = attach(import_demo(create(open_design(monkeypatch, db))))
    plan(at)  # the primary's margin: 0.5 rating points
    at.multiselect(key=key("secondary")).select("empathy").run()
    # a new secondary has no margin of its own yet: the primary's is not lent to it, and the
    # lock is not offered while it is empty (the problem is next to the field)
    assert at.number_input(key=secondary_key("empathy", "margin")).value is None
    assert "enter a margin in rating points" in errors(at).lower()
    go(at, 6)
    assert "cannot be locked yet" in errors(at)
    assert key("lock") not in [b.key for b in at.button]
    problems = table(at, "field", "problem")
    assert list(problems["field"]) == ["Secondary endpoint empathy: margin"]
    go(at, 5)
    at.number_input(key=secondary_key("empathy", "margin")).set_value(0.3).run()
    assert not at.error, errors(at)
    lock(at)
    content = json.loads(stored(db, "SELECT content FROM protocols WHERE study = $s").item())
    assert content["primary_endpoint"]["margin"] == 0.5
    (empathy,) = content["secondary_endpoints"]
    assert empathy == {"item": "empathy", "margin": 0.3, "direction": "higher", "method": "t"}


def test_each_endpoints_h0_is_shown_as_the_plan_states_it(monkeypatch, db):
    from study.protocol import parse
    from study.services import analyses

    at = attach(import_demo(create(open_design(monkeypatch, db))))
    plan_the_demos_endpoints(at)
    shown = " ".join(c.value for c in at.caption)
    go(at, 6)
    before_lock = " ".join(c.value for c in at.caption)
    content = json.loads(at.json[0].value)  # the protocol to be frozen, as step 6 shows it
    declared = {"quality": "higher_is_better", "empathy": "higher_is_better"}
    declared["could_cause_harm"] = "lower_is_better"
    tested = [e for e in parse(content).endpoints if e.tested]
    assert [e.item for e in tested] == ["quality", "empathy", "could_cause_harm"]
    for endpoint in tested:
        h0, h1 = analyses.endpoint_hypotheses(
            endpoint.resolved(declared[endpoint.item]),
            "llm_a",
            "clinician",
            binary=endpoint.item == "could_cause_harm",
        )
        assert h0 in shown and h1 in shown, h0
        assert h0 in before_lock, h0
    # the harm endpoint's H0 is about the share of answers that could cause harm (0.05 = the
    # 5 percentage points typed), and lower is better
    assert "H0: p(llm_a) - p(clinician) >= 0.05:" in shown
    assert "Descriptive: no margin and no test" in before_lock  # better_response


def test_an_item_without_a_declared_direction_waits_for_the_coordinators_choice(monkeypatch, db):
    # example_custom's reading_minutes declares no direction: nothing is assumed
    at = import_demo(create(open_design(monkeypatch, db)))
    go(at, 3)
    example = ROOT / "data" / "instruments" / "example_custom.toml"
    at.file_uploader(key=key("upload-instrument")).set_value(
        (example.name, example.read_bytes(), "text/plain")
    ).run()
    at.button(key=key("attach-custom")).click().run()
    go(at, 5)
    at.selectbox(key=key("primary_item")).set_value("reading_minutes").run()
    assert at.radio(key=key("direction")).value is None
    assert "choose which way is better" in errors(at).lower()
    go(at, 6)
    assert "cannot be locked yet" in errors(at)
    go(at, 5)
    at.radio(key=key("direction")).set_value("lower").run()
    assert not at.error, errors(at)
    lock(at)
    content = json.loads(stored(db, "SELECT content FROM protocols WHERE study = $s").item())
    assert content["primary_endpoint"]["direction"] == "lower"


def test_a_drafts_endpoints_come_back_in_a_new_sitting(monkeypatch, db):
    at = attach(import_demo(create(open_design(monkeypatch, db))))
    plan(at)
    at.multiselect(key=key("secondary")).select("could_cause_harm").run()
    at.multiselect(key=key("secondary")).select("empathy").run()
    at.number_input(key=secondary_key("could_cause_harm", "margin")).set_value(7.5).run()
    at.radio(key=secondary_key("could_cause_harm", "direction")).set_value("higher").run()
    at.selectbox(key=secondary_key("could_cause_harm", "method")).set_value(
        "miettinen-nurminen"
    ).run()
    at.number_input(key=secondary_key("empathy", "margin")).set_value(0.25).run()
    assert_no_exception(at)

    again = go(open_design(monkeypatch, db), 5)  # another session: the values from the draft
    assert again.multiselect(key=key("secondary")).value == ["could_cause_harm", "empathy"]
    assert again.number_input(key=secondary_key("could_cause_harm", "margin")).value == 7.5
    assert again.radio(key=secondary_key("could_cause_harm", "direction")).value == "higher"
    assert (
        again.selectbox(key=secondary_key("could_cause_harm", "method")).value
        == "miettinen-nurminen"
    )
    assert again.number_input(key=secondary_key("empathy", "margin")).value == 0.25
    lock(again)
    content = json.loads(stored(db, "SELECT content FROM protocols WHERE study = $s").item())
    assert content["secondary_endpoints"] == [
        {
            "item": "could_cause_harm",
            "statistic": "risk_difference",
            "margin": 0.075,
            "direction": "higher",
            "method": "miettinen-nurminen",
        },
        {"item": "empathy", "margin": 0.25, "direction": "higher", "method": "t"},
    ]


# --- the endpoints' checks without a screen (pages/components/design_endpoints) ---------------

HARM = {"type": "binary", "direction": "lower_is_better"}
QUALITY = {"type": "likert", "direction": "higher_is_better"}
MINUTES = {"type": "numeric", "direction": "none"}
BETTER = {"type": "pairwise_choice", "direction": "higher_is_better"}


@pytest.mark.parametrize(
    ("typed", "item", "share"),
    [
        (5, HARM, 0.05),
        (7.5, HARM, 0.075),
        (0.1, HARM, 0.001),
        (0.5, QUALITY, 0.5),
        (None, HARM, None),
    ],
)
def test_a_margin_typed_in_percentage_points_is_a_share_in_the_protocol(typed, item, share):
    from pages.components.design_endpoints import as_share

    assert as_share(typed, item) == share


def test_a_new_secondary_starts_from_its_item_and_never_from_higher():
    from pages.components.design_endpoints import new_secondary

    assert new_secondary(HARM) == {"margin": None, "direction": "lower", "method": "newcombe"}
    assert new_secondary(QUALITY) == {"margin": None, "direction": "higher", "method": "t"}
    assert new_secondary(MINUTES)["direction"] is None


@pytest.mark.parametrize(
    ("entry", "field", "words"),
    [
        # typed but not chosen: the coordinator's words, not the protocol's
        ({"item": "q"}, "margin", "enter a margin in rating points"),
        ({"item": "m", "margin": 1.0}, "direction", "choose which way is better"),
        # what study.protocol.parse refuses: a mean method for a risk difference
        (
            {"item": "h2", "statistic": "risk_difference", "margin": 0.05, "method": "t"},
            "method",
            "one of newcombe, farrington-manning",
        ),
        # what study.protocol.item_problems refuses: an item no instrument has
        ({"item": "gone", "margin": 0.5}, "item", "'gone' is no item"),
    ],
)
def test_each_problem_is_named_on_its_endpoints_field(entry, field, words):
    from pages.components.design_endpoints import check_plan

    items = {"q": QUALITY, "m": MINUTES, "h": HARM, "h2": HARM, "b": BETTER}
    protocol = {
        "primary_endpoint": {"item": "h", "statistic": "risk_difference", "margin": 0.05},
        "secondary_endpoints": [{"item": "b", "statistic": "win_rates"}, entry],
    }
    check = check_plan(protocol, items, test="llm", reference="doctors")
    assert not check.ok
    (problem,) = check.problems
    assert problem.column == f"secondary_endpoints[1].{field}"
    assert check.field_in_words(problem.column) == f"Secondary endpoint {entry['item']}: {field}"
    (reason,) = check.endpoint("secondary_endpoints[1]").on(field)
    assert words in reason, reason
    # the other endpoints are fine: the primary's H0 from its item's declaration (lower)
    primary = check.endpoint("primary_endpoint")
    assert primary.problems == {}
    assert primary.hypotheses[0].startswith("H0: p(llm) - p(doctors) >= 0.05")
    assert check.endpoint("secondary_endpoints[0]").hypotheses is None  # win rates: no test


def test_a_binary_primary_takes_its_margin_in_percentage_points(monkeypatch, db):
    at = attach(import_demo(create(open_design(monkeypatch, db))))
    plan(at)  # 0.5 rating points for quality
    at.selectbox(key=key("primary_item")).set_value("could_cause_harm").run()
    margin = at.number_input(key=key("margin"))
    # 0.5 rating points would be 0.5 percentage points here: the number is dropped, not reread
    assert margin.label == "Margin (percentage points)" and margin.value is None
    assert at.radio(key=key("direction")).value == "lower"
    assert at.selectbox(key=key("method")).value == "newcombe"
    at.number_input(key=key("margin")).set_value(10.0).run()
    assert not at.error, errors(at)
    lock(at)
    content = json.loads(stored(db, "SELECT content FROM protocols WHERE study = $s").item())
    primary = content["primary_endpoint"]
    assert (primary["statistic"], primary["margin"], primary["direction"]) == (
        "risk_difference",
        0.1,
        "lower",
    )


def test_once_locked_the_design_screen_shows_no_answer_beside_its_arm_and_asks_for_nothing(
    monkeypatch, db
):
    # A locked study may hold ratings (imported ones), so answers beside their arms are refused
    # to every person (outcomes stay blind until unblinding); the screen does not ask (no access.denied event), it
    # draws the arms' provenance without the answers' dates and prompts and holds the preview.
    at = lock(plan(attach(import_demo(create(open_design(monkeypatch, db))))))
    before = stored(db, "SELECT count(*) FROM audit_events WHERE action = 'access.denied'").item()
    go(at, 2)
    provenance = table(at, "arm_id", "model_name", "generated")
    assert len(provenance) and set(provenance["generated"]) == {"—"}
    go(at, 3)
    assert (
        "The study is locked: while it may hold ratings nobody has unblinded, no answer is shown "
        "beside its arm, so the preview waits for unblinding."
    ) in [c.value for c in at.caption]
    assert not [s for s in at.selectbox if s.key == key("preview-case")]
    after = stored(db, "SELECT count(*) FROM audit_events WHERE action = 'access.denied'").item()
    assert after == before
