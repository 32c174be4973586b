"""Screen URLs in a real browser: a screen's URL typed into a fresh session goes through
``app.py`` (even as the first request the server ever gets), and the demo person chosen in the
URL survives moving between screens by the sidebar's links and a reload.

Why the first request matters: with the screens in a folder named ``pages/``, Streamlit runs a
typed screen URL as a script of its own until ``st.navigation`` has been called once in the
process (see ``pages/components/handover.py``); that used to fail with a KeyError on "store".
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import picker_place
from playwright.sync_api import Browser, Page, expect
from serving import chromium, serve

from study.demo import COORDINATOR

pytestmark = [pytest.mark.browser, pytest.mark.slow]

IDLE = """() => !document.querySelector(
    '[data-testid="stStatusWidgetRunningIcon"], [data-testid="stElementContainer"][data-stale="true"]'
)"""


@pytest.fixture
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


def fresh_page(browser: Browser) -> Page:
    """A page in a new context: no cookie, no session, as a new visitor."""
    return browser.new_context(viewport={"width": 1300, "height": 1000}).new_page()


def menu(page: Page) -> list[str]:
    links = page.get_by_test_id("stSidebarNav").get_by_role("link")
    return [name.strip().split("\n")[-1] for name in links.all_inner_texts()]


def heading(page: Page, name: str):
    return page.get_by_role("heading", name=name, exact=True)


def test_typed_screen_urls_go_through_the_app_and_the_demo_person_survives_navigation(
    browser: Browser, demo_db: Path, tmp_path: Path
) -> None:
    coordinator = picker_place(demo_db, COORDINATOR["user_id"])
    rater = picker_place(demo_db, "demo-rater-01")
    with serve(demo_db, tmp_path, demo_on_start=False) as served:
        # the server's very first session opens a screen by its URL
        page = fresh_page(browser)
        page.goto(f"{served.url}/monitor?person={coordinator}")
        expect(heading(page, "Monitoring")).to_be_visible(timeout=90_000)
        assert menu(page) == ["Overview", "People", "Design", "Monitoring", "Account"]

        # a screen the person's roles do not open: their first screen instead, and nothing of it
        other = fresh_page(browser)
        other.goto(f"{served.url}/people?person={rater}")
        expect(heading(other, "Rate")).to_be_visible(timeout=60_000)
        expect(heading(other, "People")).to_have_count(0)
        assert menu(other) == ["Rate", "Account"]  # rating, and their own tokens

        # a sidebar link opens the screen's URL without the query: the person stays, and the
        # URL gets them back, so that a reload resumes as the same person on the same screen
        page.get_by_test_id("stSidebarNav").get_by_role("link", name="Overview").click()
        expect(heading(page, "Study overview")).to_be_visible(timeout=30_000)
        page.wait_for_function(IDLE, timeout=30_000)
        assert menu(page) == ["Overview", "People", "Design", "Monitoring", "Account"]
        page.get_by_test_id("stSidebarNav").get_by_role("link", name="Monitoring").click()
        expect(heading(page, "Monitoring")).to_be_visible(timeout=30_000)
        expect(page).to_have_url(f"{served.url}/monitor?person={coordinator}", timeout=15_000)
        page.reload()
        expect(heading(page, "Monitoring")).to_be_visible(timeout=30_000)
        assert menu(page) == ["Overview", "People", "Design", "Monitoring", "Account"]
        for shown in (page, other):
            expect(shown.get_by_test_id("stException")).to_have_count(0)
