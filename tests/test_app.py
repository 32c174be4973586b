"""The app through Streamlit's AppTest: router, first start, and the study overview.

Each test points ``CLINVAL_DB`` at its own file; ``app.py`` caches one Store per path, so tests
do not see each other's databases. Expected counts come from the demo's input files.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import OPERATOR, picker_place, run_app
from streamlit.testing.v1 import AppTest

from study.demo import build_demo
from study.instruments import get_builtin
from study.services import studies
from study.store import Store

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
DEMO_DIR = ROOT / "data" / "demo"
TIMEOUT = 90  # the first start builds the demo study (a few seconds on 2 cores)


def lines_of(path: Path) -> int:
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


DEMO_CASES = lines_of(DEMO_DIR / "cases.jsonl")
DEMO_COUNTS = {
    "Cases": DEMO_CASES,
    "Arms": lines_of(DEMO_DIR / "arms.csv") - 1,  # minus the header
    "Answers": lines_of(DEMO_DIR / "answers.jsonl"),
    "Raters": lines_of(DEMO_DIR / "raters.csv") - 1,
    "Assignments": DEMO_CASES * 3,  # the demo protocol: three raters per case
}


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def no_failure(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


@pytest.fixture(scope="module")
def demo_and_draft_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("app") / "clinval.duckdb"
    with Store(db) as store:
        build_demo(store)
        studies.create_study(store, OPERATOR, "Draft trial", study_id="draft-trial")
    return db


def test_first_start_builds_the_demo_and_shows_its_counts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    at = run_app(monkeypatch, tmp_path / "first.duckdb", demo_on_start="1")
    no_failure(at)
    shown = metrics(at)
    for label, count in DEMO_COUNTS.items():
        assert shown[label] == f"{count:,}", label
    # the built-in template the demo attaches, at whatever version the code ships
    # shown whole, as text that wraps (a metric cut it to "ayers_har…" in its quarter box)
    assert f"ayers_harm {get_builtin('ayers_harm').version}" in [t.value for t in at.text]
    assert shown["Non-inferiority margin"] == "0.5"
    assert any("Synthetic demo data" in w.value for w in at.warning)
    assert at.selectbox(key="overview_study").value == "demo-patient-questions"
    assert len(at.get("plotly_chart")) == 2
    assert len(at.dataframe) == 2  # arms, instrument items


def test_empty_database_without_demo_explains_what_to_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    at = run_app(monkeypatch, tmp_path / "empty.duckdb", demo_on_start="0")
    no_failure(at)
    assert "There is no study yet" in at.info[0].value
    assert not at.metric


def test_overview_switches_between_studies(
    monkeypatch: pytest.MonkeyPatch, demo_and_draft_db: Path
) -> None:
    at = run_app(monkeypatch, demo_and_draft_db)
    no_failure(at)
    selector = at.selectbox(key="overview_study")
    assert set(selector.options) >= {
        "Demo: patient questions (synthetic) (demo-patient-questions)",
        "Draft trial (draft-trial)",
    }

    selector.set_value("draft-trial").run()
    no_failure(at)
    assert at.header[0].value == "Draft trial"
    assert any("not locked yet" in i.value for i in at.info)
    assert not any("Synthetic demo data" in w.value for w in at.warning)
    assert metrics(at)["Cases"] == "0"
    assert "none attached" in [t.value for t in at.text]
    assert not at.get("plotly_chart")

    selector = at.selectbox(key="overview_study")
    selector.set_value("demo-patient-questions").run()
    no_failure(at)
    assert metrics(at)["Cases"] == str(DEMO_COUNTS["Cases"])


def test_an_invalid_setting_stops_the_app_with_a_message(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CLINVAL_MAX_IMPORT_MB", "lots")
    at = run_app(monkeypatch, tmp_path / "unused.duckdb")
    assert not at.exception
    assert "CLINVAL_MAX_IMPORT_MB" in at.error[0].value
    assert not (tmp_path / "unused.duckdb").exists()


@pytest.mark.parametrize(
    ("where", "reason", "shown"),
    [
        pytest.param(
            "junk.duckdb",
            "not a DuckDB database",
            "The study database file is not a valid DuckDB database file.",
            id="not a database",
        ),
        pytest.param(".", "Is a directory", "cannot open its database", id="a folder"),
        pytest.param(
            "junk.duckdb/sub/clinval.duckdb",
            "Not a directory",
            "cannot open its database",
            id="below a file",
        ),
    ],
)
def test_an_unusable_database_stops_the_app_naming_no_path_and_logs_the_reason(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    where: str,
    reason: str,
    shown: str,
) -> None:
    junk = tmp_path / "junk.duckdb"
    junk.write_text("not a database\n", encoding="utf-8")
    db = tmp_path / where
    with caplog.at_level("WARNING", logger="study"):
        at = run_app(monkeypatch, db)
    assert not at.exception, [e.message for e in at.exception]
    assert len(at.error) == 1
    message = at.error[0].value
    # a visitor sees a sentence, never the path nor the database's own error text
    assert shown in message and "server log" in message
    assert str(tmp_path) not in message and "Error" not in message
    # the operator finds both in the server log
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("study"))
    assert str(db) in logged and reason in logged
    assert junk.read_text(encoding="utf-8") == "not a database\n"  # left as it was


def test_demo_on_start_leaves_a_database_with_studies_alone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    db = tmp_path / "has-a-study.duckdb"
    with Store(db) as store:
        studies.create_study(store, OPERATOR, "Draft trial", study_id="draft-trial")
    at = run_app(monkeypatch, db, demo_on_start="1")
    no_failure(at)
    assert at.selectbox(key="overview_study").options == ["Draft trial (draft-trial)"]
    at.run()  # a rerun asks the cached demo step again: still nothing built
    no_failure(at)
    assert at.selectbox(key="overview_study").options == ["Draft trial (draft-trial)"]


def test_overview_tables_show_arm_counts_and_item_prompts(
    monkeypatch: pytest.MonkeyPatch, demo_and_draft_db: Path
) -> None:
    at = run_app(monkeypatch, demo_and_draft_db)
    at.selectbox(key="overview_study").set_value("demo-patient-questions").run()
    no_failure(at)
    arms, items = (frame.value for frame in at.dataframe)
    assert int(arms["answers"].sum()) == DEMO_COUNTS["Answers"]
    assert int(arms["ratings"].sum()) > 0
    demo_items = get_builtin("ayers_harm").items
    assert list(items["item_key"]) == [item.key for item in demo_items]
    assert list(items["prompt"]) == [item.prompt for item in demo_items]


def run_as(monkeypatch: pytest.MonkeyPatch, db: Path, person: str) -> AppTest:
    """The app's first run with ``person`` picked in the demo picker.

    A fresh AppTest per person: AppTest re-detects the ``pages/`` folder on every rerun and then
    runs the page alone, without ``app.py`` (the real server keeps ``st.navigation``'s registry),
    so a change of the picker must start a new session to reach the router.
    """
    monkeypatch.setenv("CLINVAL_DB", str(db))
    monkeypatch.setenv("CLINVAL_DEMO_ON_START", "0")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["person"] = picker_place(db, person)
    return at.run()


def test_the_demo_without_sign_in_says_so_and_acts_as_the_person_picked(
    monkeypatch: pytest.MonkeyPatch, demo_and_draft_db: Path
) -> None:
    at = run_app(monkeypatch, demo_and_draft_db)
    no_failure(at)
    assert any("Demo without real sign-in" in w.value for w in at.warning)
    picker = at.selectbox(key="demo_person")
    assert picker.value == "Local operator (no sign-in)"  # who sees every study
    shown = set(picker.options)  # display names with each person's roles
    assert "Local operator (no sign-in)" in shown
    assert "Demo Coordinator (demo) — coordinator" in shown
    assert "Dr Ada Example (demo) — rater" in shown

    at = run_as(monkeypatch, demo_and_draft_db, "demo-statistician")
    no_failure(at)
    # the demo statistician holds a role in the demo study only
    assert at.selectbox(key="overview_study").options == [
        "Demo: patient questions (synthetic) (demo-patient-questions)"
    ]
    assert metrics(at)["Arms"] == str(DEMO_COUNTS["Arms"])

    at = run_as(monkeypatch, demo_and_draft_db, "demo-coordinator")
    no_failure(at)
    # the demo coordinator is a coordinator for every study (so that they may create one)
    assert "Draft trial (draft-trial)" in at.selectbox(key="overview_study").options

    at = run_as(monkeypatch, demo_and_draft_db, "demo-rater-01")
    no_failure(at)
    # a rater gets the rating screen alone: no protocol, no arms, nobody else's progress
    assert at.title[0].value == "Rate"
    assert not at.metric and not at.dataframe and not at.get("plotly_chart")
    assert at.get("progress")[0].proto.text.startswith("Case ")
