"""The Design screen in a real browser: a coordinator walks from an empty study to a locked
protocol, uploading the demo's own files (data/demo) through the page's file inputs, and the hash
the page shows is the one stored; and in step 2, K-QA's two shapes (a wide JSONL with a
physician's answer, a long CSV with a row per claim) go in through the file inputs with their
mapping files, each previewed (nothing stored) and then imported, and meet on the same cases.

The server is the real ``streamlit run app.py``; Chromium is driven by Playwright. Picking the
person in the demo picker (``?person=N``) stands in for signing in.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import OPERATOR, ROOT, picker_place
from playwright.sync_api import Page, expect
from serving import chromium, serve
from test_mapping import MODELS_TOML, PHYSICIANS_TOML, models_csv, physicians_jsonl

from study.services import people
from study.services.people import DEMO_ISSUER
from study.store import Store

pytestmark = [pytest.mark.browser, pytest.mark.slow]

COORDINATOR = "demo-coordinator"
DEMO_FILES = ROOT / "data" / "demo"
STUDY = "browser-trial"
IDLE = """() => !document.querySelector(
    '[data-testid="stStatusWidgetRunningIcon"], [data-testid="stElementContainer"][data-stale="true"]'
)"""
"""True when no script run is in flight and nothing on the page is stale from an earlier run."""


@pytest.fixture
def browser_page() -> Iterator[Page]:
    with chromium() as browser:
        yield browser.new_page(viewport={"width": 1400, "height": 1800})


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """An empty database whose one person, of the demo picker, coordinates every study."""
    path = tmp_path / "design.duckdb"
    with Store(path) as store:
        people.ensure_user(
            store,
            OPERATOR,
            issuer=DEMO_ISSUER,
            subject=COORDINATOR,
            user_id=COORDINATOR,
            display_name="Demo Coordinator",
        )
        people.grant_role(store, OPERATOR, None, COORDINATOR, "coordinator")
    return path


def settle(page: Page) -> None:
    page.wait_for_function(IDLE, timeout=30_000)


def next_step(page: Page, title: str) -> None:
    page.get_by_role("button", name=re.compile(rf"Next: \d\. {title}")).click()
    expect(page.get_by_role("heading", name=re.compile(rf"\d\. {title}$"))).to_be_visible(
        timeout=30_000
    )
    settle(page)


def upload(page: Page, title: str, kind: str, name: str) -> None:
    uploader = page.get_by_test_id("stFileUploader").filter(has_text=f"{title} file")
    uploader.locator("input[type=file]").set_input_files(str(DEMO_FILES / name))
    expect(uploader).to_contain_text(name, timeout=30_000)
    settle(page)
    page.get_by_role("button", name=f"Import {kind}").click()
    expect(
        page.get_by_text(re.compile(rf"{re.escape(name)}: {kind}: \d+ rows read"))
    ).to_be_visible(timeout=30_000)
    settle(page)


def create_on_the_design_screen(page: Page, url: str, db: Path, name: str, study: str) -> None:
    """Open the Design screen as ``COORDINATOR`` of the server at ``url`` (on ``db``) and create
    the study ``study`` named ``name`` (step 1), up to step 2's heading."""
    place = picker_place(db, COORDINATOR)
    page.goto(f"{url}/?person={place}")
    # The app's own menu first: a server's very first run of a deep link runs the page without
    # app.py (Streamlit's pages-folder mode lasts until st.navigation is first called), and a
    # click in the menu would drop ?person= (the person picked).
    menu = page.get_by_test_id("stSidebarNav")
    expect(menu.get_by_role("link", name="Design", exact=True)).to_be_visible(timeout=90_000)
    page.goto(f"{url}/design?person={place}")
    expect(page.get_by_role("heading", name="Design", exact=True)).to_be_visible(timeout=30_000)
    # as the coordinator, not the local operator (an admin, whose menu holds Analysis)
    expect(menu.get_by_role("link", name="Monitoring")).to_be_visible()
    expect(menu.get_by_role("link", name="Analysis")).to_have_count(0)
    settle(page)
    page.get_by_role("textbox", name="Name").fill(name)
    page.get_by_role("textbox", name="Id (optional)").fill(study)
    page.get_by_role("button", name="Create the study").click()
    expect(page.get_by_text(f"Study {study} created as a draft.")).to_be_visible(timeout=30_000)
    expect(page.get_by_role("heading", name="2. Content")).to_be_visible()
    settle(page)


def test_a_coordinator_walks_from_an_empty_study_to_a_locked_protocol(
    browser_page: Page, db: Path, tmp_path: Path
) -> None:
    page = browser_page
    with serve(db, tmp_path, demo_on_start=False) as served:
        # 1. a new study
        create_on_the_design_screen(page, served.url, db, "Browser trial", STUDY)
        # 2. the demo's files, through the file inputs
        upload(page, "Arms", "arms", "arms.csv")
        upload(page, "Cases", "cases", "cases.jsonl")
        upload(page, "Answers", "answers", "answers.jsonl")
        expect(page.get_by_text("2. Content ✓")).to_be_visible()
        # 3. the first built-in instrument, and its preview: the sheet a rater gets
        next_step(page, "Instrument")
        page.get_by_role("button", name="Attach this instrument").click()
        expect(page.get_by_text(re.compile(r"Instrument \S+ \S+ attached\."))).to_be_visible(
            timeout=30_000
        )
        expect(page.locator(".sheet .field").first).to_be_visible(timeout=30_000)
        # 4. the dry run with planned raters: its tables and heatmap
        next_step(page, "Assignment")
        expect(page.get_by_text("Loads per rater")).to_be_visible()
        expect(page.get_by_test_id("stPlotlyChart")).to_have_count(1, timeout=30_000)
        # 5. the plan's defaults (the first comparable item, margin 0.5) and its power
        next_step(page, "Analysis plan")
        expect(page.get_by_text("Cases for 80% power")).to_be_visible(timeout=30_000)
        # 6. the lock, behind its confirmation
        next_step(page, "Lock")
        lock = page.get_by_role("button", name="Lock the protocol")
        expect(lock).to_be_disabled()
        page.get_by_text("I have checked the protocol").click()
        expect(lock).to_be_enabled(timeout=30_000)
        lock.click()
        expect(page.get_by_text("Protocol hash")).to_be_visible(timeout=30_000)
        shown = page.get_by_test_id("stCode").inner_text().strip()
        expect(page.get_by_test_id("stException")).to_have_count(0)
    with Store(db) as store:
        stored = store.read(
            "SELECT content_hash, version FROM protocols WHERE study = $s", {"s": STUDY}
        )
        status = store.read("SELECT status FROM studies WHERE id = $s", {"s": STUDY}).item()
    assert re.fullmatch(r"[0-9a-f]{64}", shown), shown
    assert stored.rows() == [(shown, 1)]
    assert status == "locked"


# --- step 2: tables mapped by their columns (K-QA's two shapes) ---------------------------------

KQA_STUDY = "kqa-browser"


def put_file(page: Page, label: str, path: Path) -> None:
    settle(page)  # a rerun in flight may show the uploader twice, once stale
    uploader = page.get_by_test_id("stFileUploader").filter(has_text=label)
    uploader.locator("input[type=file]").set_input_files(str(path))
    settle(page)
    # the uploader shows a long name cut in the middle ("questi...swers.jsonl")
    expect(uploader.last).to_contain_text(path.name[:6], timeout=30_000)
    settle(page)


def map_preview_import(page: Page, table: Path, mapping: Path, name: str, seen: str) -> None:
    put_file(page, "with any columns", table)
    expect(
        page.get_by_text(re.compile(rf"{re.escape(table.name)}: \d+ rows; columns"))
    ).to_be_visible(timeout=30_000)
    page.get_by_text("Upload a mapping (TOML)").click()
    settle(page)
    put_file(page, "Mapping file", mapping)
    page.get_by_role("textbox", name="Keep the mapping as").fill(name)
    page.get_by_role("textbox", name="Keep the mapping as").press("Enter")
    settle(page)
    page.get_by_role("button", name="Preview", exact=True).click()
    expect(page.get_by_text(re.compile(r"Preview, nothing stored\."))).to_be_visible(timeout=30_000)
    expect(page.get_by_text(seen)).to_be_visible()
    settle(page)
    page.get_by_role("button", name="Import the table").click()
    expect(page.get_by_text(f"Mapping kept as '{name}'")).to_be_visible(timeout=30_000)
    settle(page)


def counts(db_path: Path, study: str) -> tuple[int, int, int]:
    with Store(db_path) as store:
        return store.read(
            "SELECT (SELECT count(*) FROM cases WHERE study = $s),"
            " (SELECT count(*) FROM arms WHERE study = $s),"
            " (SELECT count(*) FROM answers WHERE study = $s)",
            {"s": study},
        ).row(0)


def test_kqa_shapes_are_mapped_previewed_and_imported_in_the_browser(
    browser_page: Page, db: Path, tmp_path: Path
) -> None:
    page = browser_page
    files = tmp_path / "files"
    files.mkdir()
    physicians = files / "kqa_physicians.toml"
    physicians.write_text(PHYSICIANS_TOML, encoding="utf-8")
    models = files / "kqa_models.toml"
    models.write_text(MODELS_TOML, encoding="utf-8")
    with serve(db, tmp_path, demo_on_start=False) as served:
        create_on_the_design_screen(page, served.url, db, "K-QA", KQA_STUDY)
        map_preview_import(
            page, physicians_jsonl(files), physicians, "physicians", "3 rows read as 3 cases"
        )
        # the server holds the database: what is stored shows in step 2's counts
        expect(page.get_by_test_id("stMetric").filter(has_text="Answers")).to_contain_text("2")
        map_preview_import(
            page,
            models_csv(files),
            models,
            "models",
            re.compile("6 rows repeated a case, arm and text"),
        )
        expect(page.get_by_test_id("stMetric").filter(has_text="Answers")).to_contain_text("5")
        expect(page.get_by_test_id("stException")).to_have_count(0)
    assert counts(db, KQA_STUDY) == (3, 3, 5)
