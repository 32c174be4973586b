"""The real app in a real browser: ``streamlit run app.py`` driven by headless Chromium.

The server starts on an empty database with ``CLINVAL_DEMO_ON_START=1``, so the first page load
exercises the first-start path (the demo is built behind a spinner) before the overview renders.
Playwright drives Debian's ``chromium`` (it cannot download its own browser here); without it
the test fails with instructions instead of skipping.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright
from serving import CHROMIUM_ARGS, chromium_path, serve

ROOT = Path(__file__).resolve().parent.parent
DEMO_CASES = sum(
    1 for line in (ROOT / "data" / "demo" / "cases.jsonl").read_text().splitlines() if line.strip()
)
SCREENSHOT = os.environ.get("BROWSER_TEST_SCREENSHOT")
"""If set, a copy of the overview screenshot is also saved there (for reviewing the page)."""

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def chromium() -> str:
    return chromium_path()


@pytest.fixture
def app_url(tmp_path: Path) -> Iterator[str]:
    with serve(tmp_path / "browser.duckdb", tmp_path, demo_on_start=True) as served:
        yield served.url


def test_overview_shows_the_demo_study(chromium: str, app_url: str, tmp_path: Path) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2600})
            page.goto(app_url)

            cases = page.get_by_test_id("stMetric").filter(
                has=page.get_by_test_id("stMetricLabel").get_by_text("Cases", exact=True)
            )
            # the first load builds the demo study before the overview appears
            expect(cases.get_by_test_id("stMetricValue")).to_have_text(
                str(DEMO_CASES), timeout=90_000
            )
            expect(page.get_by_text("Synthetic demo data.", exact=False).first).to_be_visible()
            expect(page.get_by_role("heading", name="Instrument items")).to_be_visible()
            expect(page.get_by_test_id("stPlotlyChart")).to_have_count(2)
            expect(page.get_by_test_id("stException")).to_have_count(0)

            # let the charts finish drawing before the screenshot
            page.wait_for_timeout(1500)
            shot = tmp_path / "overview.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            if SCREENSHOT:
                shutil.copy(shot, SCREENSHOT)
        finally:
            browser.close()
