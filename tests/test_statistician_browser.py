"""A statistician's walk in a real browser: from the audited unblinding step on the Analysis
screen to the bundle's zip downloaded from the Export screen, with no console error on the way.

The server is the real ``streamlit run app.py`` in demo mode on a copy of the demo database,
whose main study the coordinator has closed through the lifecycle service before serving (the
demo ends in ``rating``). Navigation is by the sidebar's links, as a person moves between
screens, so that the demo person chosen in the URL must survive it.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import picker_place, sign_in
from playwright.sync_api import Page, expect
from serving import chromium, serve

from study import audit, audit_verify
from study.demo import COORDINATOR, DEMO_STUDY_ID, STATISTICIAN
from study.services import lifecycle
from study.store import Store

pytestmark = [pytest.mark.browser, pytest.mark.slow]

IDLE = """() => !document.querySelector(
    '[data-testid="stStatusWidgetRunningIcon"], [data-testid="stElementContainer"][data-stale="true"]'
)"""
"""True when no script run is in flight and nothing on the page is stale from an earlier run."""


@pytest.fixture
def watched_page() -> Iterator[tuple[Page, list[str]]]:
    """A Chromium page and the list its console errors and uncaught page errors go to."""
    problems: list[str] = []
    with chromium() as browser:
        page = browser.new_context(
            viewport={"width": 1400, "height": 1600}, accept_downloads=True
        ).new_page()
        page.on(
            "console",
            lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
        )
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        yield page, problems


def go_to(page: Page, screen: str) -> None:
    """Follow the sidebar's link to ``screen`` and wait for its title."""
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=screen).click()
    expect(page.get_by_role("heading", name=screen, exact=True)).to_be_visible(timeout=30_000)
    page.wait_for_function(IDLE, timeout=60_000)


def test_a_statistician_unblinds_sees_the_forest_plot_and_downloads_the_bundle(
    watched_page: tuple[Page, list[str]], demo_db: Path, tmp_path: Path
) -> None:
    page, problems = watched_page
    with Store(demo_db) as store:
        lifecycle.close_rating(store, sign_in(store, COORDINATOR["user_id"]), DEMO_STUDY_ID)
    place = picker_place(demo_db, STATISTICIAN["user_id"])

    with serve(demo_db, tmp_path, demo_on_start=False) as served:
        page.goto(f"{served.url}/?person={place}")
        expect(page.get_by_role("heading", name="Study overview")).to_be_visible(timeout=90_000)

        go_to(page, "Analysis")
        expect(page.get_by_text("closed study id demo-patient-questions")).to_be_visible()
        unblind = page.get_by_role("button", name="Unblind the study")
        expect(unblind).to_be_disabled()
        page.get_by_text("I am the study's statistician and unblind").click()
        expect(unblind).to_be_enabled(timeout=15_000)
        unblind.click()
        expect(page.get_by_role("heading", name="Primary result")).to_be_visible(timeout=60_000)
        forest = page.get_by_test_id("stPlotlyChart").first
        expect(forest).to_be_visible(timeout=30_000)
        # plotly draws the margin's dashed line with its annotation as SVG text
        expect(forest.locator("svg text", has_text="margin -0.5")).to_have_count(1)
        expect(forest.locator(".shapelayer path")).not_to_have_count(0)
        expect(page.get_by_text("Δ = llm_a − clinician").first).to_be_visible()
        assert f"person={place}" in page.url, page.url

        go_to(page, "Export")
        page.get_by_role("button", name="Prepare the exports").click()
        zip_button = page.get_by_role("button", name="Download everything (zip)")
        expect(zip_button).to_be_visible(timeout=90_000)
        with page.expect_download(timeout=30_000) as download_info:
            zip_button.click()
        download = download_info.value
        assert download.suggested_filename == f"{DEMO_STUDY_ID}-bundle.zip"
        saved = tmp_path / download.suggested_filename
        download.save_as(saved)
        page.wait_for_function(IDLE, timeout=30_000)
        expect(page.get_by_test_id("stException")).to_have_count(0)

    with zipfile.ZipFile(io.BytesIO(saved.read_bytes())) as bundle:
        names = set(bundle.namelist())
        manifest = json.loads(bundle.read("manifest.json"))
    expected = {"ratings.csv", "ratings.parquet", "ratings.dta", "ratings.sav"}
    expected |= {
        "codebook.md",
        "codebook.json",
        "results.csv",
        "results.json",
        "report.html",
        "manifest.json",
    }
    assert expected <= names, sorted(names)
    # the manifest vouches for the files it came with, and was made after the unblinding
    digests = {f["name"]: f["sha256"] for f in manifest["files"]}
    assert expected - {"manifest.json"} <= set(digests), sorted(digests)
    assert manifest["status"] == "unblinded" and manifest["generated_by"] == STATISTICIAN["user_id"]

    with Store(demo_db) as store:
        trail = audit.events(store, study=DEMO_STUDY_ID)
        report = audit_verify.verify(store)
    unblinded = trail.filter(trail["action"] == "study.unblinded")
    assert unblinded.height == 1
    assert unblinded["actor"][0] == STATISTICIAN["user_id"]
    exported = trail.filter(trail["action"] == "ratings.export")
    assert exported["actor"].to_list() == [STATISTICIAN["user_id"]]
    assert report.ok
    assert problems == []
