"""Imported and typed text is shown as text on every screen, in Chromium.

A study whose name, case questions, arm label, item wording, option labels and a rater's flag
reason are hostile Markdown and HTML (an image, a tag, a link, Streamlit's directives and math)
is opened on every screen the local operator (an admin) has. Every request the browser makes to
anything but the app's own loopback address is recorded and refused: there must be none, and
the hostile name must read back as the characters typed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from conftest import (
    ARMS,
    CASES,
    INSTRUMENT,
    OPERATOR,
    RATERS,
    add_person,
    answers_rows,
    full_values,
    open_rating,
    sign_in,
    write_jsonl,
)
from playwright.sync_api import Browser, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from serving import chromium, serve

from study.instruments import Option
from study.services import content, people, rating, studies
from study.services import instrument_library as instruments
from study.store import Store

pytestmark = [pytest.mark.browser, pytest.mark.slow]

OUTSIDE = "evil.example"
HOSTILE = (
    f"Trial ![n](http://{OUTSIDE}/name.png) <img src=http://{OUTSIDE}/tag.png> "
    f"[l](http://{OUTSIDE}/link) :red[red] $x^2$ **bold**"
)
"""A name a coordinator might paste: every kind of markup that can fetch or style."""

SCREENS = ("overview", "people", "design", "monitor", "analyze", "export", "account")
"""The screens the local operator opens (``app.SCREENS`` for an admin, by URL path)."""

IDLE = """() => !document.querySelector(
    '[data-testid="stStatusWidgetRunningIcon"], [data-testid="stElementContainer"][data-stale="true"]'
)"""


def hostile(what: str) -> str:
    return (
        f"{what} ![{what}](http://{OUTSIDE}/{what}.png) <img src=http://{OUTSIDE}/{what}-tag.png>"
    )


def build(path: Path, folder: Path) -> str:
    """A study "test-study" named ``HOSTILE``, its cases, arm label, item wording and option
    labels hostile, open for rating with one rating and one flag with a hostile reason."""
    with Store(path) as store:
        for user_id in ("coordinator", "statistician", *RATERS):
            add_person(store, user_id)
        people.ensure_user(
            store, OPERATOR, issuer="https://idp.example", subject="who", email="Dr.Who@example.org"
        )
        study = studies.create_study(store, OPERATOR, HOSTILE, study_id="test-study")
        people.grant_role(store, OPERATOR, study, "coordinator", "coordinator")
        people.grant_role(store, OPERATOR, study, "statistician", "statistician")
        for rater in RATERS:
            people.grant_role(store, OPERATOR, study, rater, "rater")
        coordinator = sign_in(store, "coordinator")
        arms = [{**arm, "label": hostile("arm")} for arm in ARMS]
        cases = [{**case, "question": hostile("question")} for case in CASES]
        content.import_arms(store, coordinator, study, write_jsonl(folder / "arms.jsonl", arms))
        content.import_cases(store, coordinator, study, write_jsonl(folder / "cases.jsonl", cases))
        content.import_answers(
            store, coordinator, study, write_jsonl(folder / "answers.jsonl", answers_rows())
        )
        quality = dataclasses.replace(
            INSTRUMENT.items[0],
            prompt=hostile("wording"),
            options=tuple(Option(v, hostile(f"option{v}")) for v in range(1, 6)),
        )
        instrument = dataclasses.replace(
            INSTRUMENT, title=hostile("instrument"), items=(quality, *INSTRUMENT.items[1:])
        )
        instruments.add_instrument(store, coordinator, instrument)
        instruments.attach_instrument(store, coordinator, study, instrument.key, instrument.version)
        open_rating(store, study)
        r1 = sign_in(store, "r1")
        view = rating.next_assignment(store, r1, study)
        rating.submit_rating(store, r1, study, view["assignment"], full_values(), seconds=30)
        view = rating.next_assignment(store, r1, study)
        rating.flag_case(store, r1, study, view["assignment"], hostile("reason"))
    return study


@pytest.fixture
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


def watched(browser: Browser, outside: list[str]) -> Page:
    """A page whose every request off the loopback address is recorded in ``outside`` and
    refused (the test machine has no network to lean on, and a refused fetch still counts)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1600})

    def route(handled) -> None:
        host = urlparse(handled.request.url).hostname
        if host in ("127.0.0.1", "localhost"):
            handled.continue_()
        else:
            outside.append(handled.request.url)
            handled.abort()

    context.route("**/*", route)
    return context.new_page()


def open_screen(page: Page, url: str) -> None:
    """Open ``url`` and wait until the screen has drawn and its run has ended."""
    page.goto(url)
    expect(page.get_by_test_id("stMain").get_by_role("heading").first).to_be_visible(timeout=90_000)
    page.wait_for_function(IDLE, timeout=60_000)
    page.wait_for_timeout(800)  # images in rendered markdown load after the run ends


def test_hostile_text_is_shown_as_text_on_every_screen(browser: Browser, tmp_path: Path) -> None:
    db = tmp_path / "hostile.duckdb"
    build(db, tmp_path)
    outside: list[str] = []
    with serve(db, tmp_path, demo_on_start=False) as served:
        page = watched(browser, outside)
        for screen in SCREENS:
            open_screen(page, f"{served.url}/{screen}?person=0")
            expect(page.get_by_test_id("stException")).to_have_count(0)
            assert outside == [], f"{screen} fetched {outside}"
        # the Design screen's step 1 and Monitoring's close box show the name as typed
        open_screen(page, f"{served.url}/design?person=0")
        expect(page.get_by_text(f"![n](http://{OUTSIDE}/name.png)").first).to_be_visible()
        for step in range(2, 8):  # content, instrument, assignment, plan, lock, open
            page.get_by_test_id("stRadio").get_by_text(f"{step}.", exact=False).first.click()
            expect(page.get_by_role("heading", name=f"{step}.", exact=False).first).to_be_visible(
                timeout=30_000
            )
            page.wait_for_function(IDLE, timeout=60_000)
            page.wait_for_timeout(500)
            expect(page.get_by_test_id("stException")).to_have_count(0)
            assert outside == [], f"design step {step} fetched {outside}"
        open_screen(page, f"{served.url}/monitor?person=0")
        expect(page.get_by_test_id("stCheckbox").first).to_contain_text(
            f"<img src=http://{OUTSIDE}/tag.png> [l](http://{OUTSIDE}/link) :red[red] $x^2$"
        )
        # a flagged case opened: its hostile question and the rater's reason, as text
        # the screen may still be finishing a run when the box is first clicked (its list then
        # closes again): wait for it to settle, and open the list until it shows
        page.wait_for_function(IDLE, timeout=60_000)
        chooser = page.get_by_test_id("stSelectbox").filter(has_text="Open a flagged")
        chooser.scroll_into_view_if_needed()
        for _ in range(3):
            chooser.click()
            try:
                page.get_by_role("option").first.wait_for(state="visible", timeout=8_000)
                break
            except PlaywrightTimeout:
                page.wait_for_function(IDLE, timeout=60_000)
        page.get_by_role("option").first.click()
        opened = page.locator(".st-key-monitor_flagged_case")
        expect(opened.get_by_text("reason ![reason]", exact=False)).to_be_visible(timeout=30_000)
        expect(opened.get_by_text("question ![question]", exact=False)).to_be_visible()
        page.wait_for_function(IDLE, timeout=60_000)
        page.wait_for_timeout(800)
    assert outside == []
