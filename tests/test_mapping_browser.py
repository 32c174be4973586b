"""Design step 2 in a real browser: K-QA's two shapes (a wide JSONL with a physician's answer, a
long CSV with a row per claim) go in through the page's file inputs with their mapping files,
each previewed (nothing stored) and then imported, and meet on the same cases: no script."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import picker_place
from playwright.sync_api import Page, expect
from serving import serve
from test_design_browser import COORDINATOR, browser_page, db, settle  # noqa: F401 (fixtures)
from test_mapping import MODELS_TOML, PHYSICIANS_TOML, models_csv, physicians_jsonl

from study.store import Store

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STUDY = "kqa-browser"


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


def counts(db_path: Path) -> tuple[int, int, int]:
    with Store(db_path) as store:
        return store.read(
            "SELECT (SELECT count(*) FROM cases WHERE study = $s),"
            " (SELECT count(*) FROM arms WHERE study = $s),"
            " (SELECT count(*) FROM answers WHERE study = $s)",
            {"s": STUDY},
        ).row(0)


def test_kqa_shapes_are_mapped_previewed_and_imported_in_the_browser(
    browser_page: Page,  # noqa: F811
    db: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    page = browser_page
    files = tmp_path / "files"
    files.mkdir()
    physicians = files / "kqa_physicians.toml"
    physicians.write_text(PHYSICIANS_TOML, encoding="utf-8")
    models = files / "kqa_models.toml"
    models.write_text(MODELS_TOML, encoding="utf-8")
    place = picker_place(db, COORDINATOR)
    with serve(db, tmp_path, demo_on_start=False) as served:
        page.goto(f"{served.url}/?person={place}")
        menu = page.get_by_test_id("stSidebarNav")
        expect(menu.get_by_role("link", name="Design", exact=True)).to_be_visible(timeout=90_000)
        page.goto(f"{served.url}/design?person={place}")
        expect(page.get_by_role("heading", name="Design", exact=True)).to_be_visible(timeout=30_000)
        settle(page)
        page.get_by_role("textbox", name="Name").fill("K-QA")
        page.get_by_role("textbox", name="Id (optional)").fill(STUDY)
        page.get_by_role("button", name="Create the study").click()
        expect(page.get_by_role("heading", name="2. Content")).to_be_visible(timeout=30_000)
        settle(page)
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
    assert counts(db) == (3, 3, 5)
