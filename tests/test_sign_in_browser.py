"""Sign-in in a real browser: a real OpenID Connect provider on loopback (``oidc-provider-mock``),
the real ``streamlit run app.py`` with an ``[auth]`` block pointing at it, headless Chromium.

The app requires sign-in (``CLINVAL_REQUIRE_AUTH=1``) on a copy of the synthetic demo, whose
people were invited by e-mail: signing in at the provider with a demo rater's e-mail, verified,
makes you that rater. One app serves the module's tests; a second, with a maximum session age
of seconds, serves the session-age test.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import screens_for
from oidc_provider_mock import User, run_server_in_thread
from playwright.sync_api import Browser, Page, expect
from serving import Served, chromium, free_port, serve, write_auth_secrets

from study.demo import COORDINATOR, STATISTICIAN, build_demo, read_raters
from study.store import Store

pytestmark = [pytest.mark.browser, pytest.mark.slow]

RATER = read_raters()[0]
STRANGER = "stranger@hospital.example"
PEOPLE = {
    "rater-at-idp": {"email": RATER["email"], "email_verified": True, "name": "Ada at the IdP"},
    "stat-at-idp": {"email": STATISTICIAN["email"], "email_verified": True, "name": "Stat"},
    "coord-at-idp": {"email": COORDINATOR["email"], "email_verified": True, "name": "Coord"},
    "stranger-at-idp": {"email": STRANGER, "email_verified": True, "name": "A Stranger"},
}
"""The provider's users: subject -> ID-token claims."""
SHORT_SESSION_SECONDS = 12
LOAD = 90_000  # ms: a first page load on 2 busy cores


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    """The mock provider's metadata URL."""
    users = [User(sub=sub, claims=claims) for sub, claims in PEOPLE.items()]
    with run_server_in_thread(user_claims=users) as server:
        yield f"http://localhost:{server.server_port}/.well-known/openid-configuration"


@pytest.fixture(scope="module")
def demo_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("signin-demo") / "template.duckdb"
    with Store(path) as store:
        build_demo(store)
    return path


def _app(folder: Path, demo: Path, metadata_url: str, **env: str):
    db = folder / "clinval.duckdb"
    shutil.copy(demo, db)
    port = free_port()
    secrets = write_auth_secrets(folder, port, metadata_url)
    settings = {"CLINVAL_REQUIRE_AUTH": "1"} | env
    return serve(db, folder, demo_on_start=True, port=port, secrets=secrets, env=settings)


@pytest.fixture(scope="module")
def app(tmp_path_factory, demo_copy: Path, provider: str) -> Iterator[Served]:
    with _app(tmp_path_factory.mktemp("signin-app"), demo_copy, provider) as served:
        yield served


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1300, "height": 1000})
    try:
        yield context.new_page()
    finally:
        context.close()


def sign_in(page: Page, url: str, subject: str) -> None:
    """Press "Sign in", authorise as ``subject`` at the provider, come back to the app."""
    page.goto(url)
    page.get_by_role("button", name="Sign in").click(timeout=LOAD)
    page.wait_for_url(re.compile(r"/oauth2/authorize"), timeout=LOAD)
    page.fill("input[name=sub]", subject)
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(re.compile(re.escape(url) + r"/?($|\?)"), timeout=LOAD)


def heading(page: Page, name: str):
    return page.get_by_role("heading", name=name, exact=True)


def menu(page: Page):
    return page.get_by_test_id("stSidebarNav")


def test_the_signed_out_screen_offers_sign_in_and_nothing_else(app: Served, page: Page):
    for path in ("/", "/rate", "/overview"):
        page.goto(app.url + path)
        expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=LOAD)
        expect(page.get_by_text("Demo without real sign-in")).to_have_count(0)
        expect(heading(page, "Rate")).to_have_count(0)
        expect(heading(page, "Study overview")).to_have_count(0)


def test_a_rater_sees_only_rating_and_another_pages_url_lands_on_it(app: Served, page: Page):
    sign_in(page, app.url, "rater-at-idp")
    expect(heading(page, "Rate")).to_be_visible(timeout=LOAD)
    expect(page.get_by_text("Signed in as")).to_be_visible()
    expect_menu(page, "rater")  # rating, and their own Account (tokens): no other screen
    for path in ("/overview", "/people", "/analyze"):
        page.goto(app.url + path)
        expect(heading(page, "Rate")).to_be_visible(timeout=LOAD)
        expect(heading(page, "Study overview")).to_have_count(0)
        expect(page.get_by_text("Arms", exact=True)).to_have_count(0)


def test_a_statistician_sees_the_study_overview_and_not_the_rating_screen(app: Served, page: Page):
    sign_in(page, app.url, "stat-at-idp")
    expect(heading(page, "Study overview")).to_be_visible(timeout=LOAD)
    # the menu offers exactly the statistician's screens (the analysis, once it is a screen)
    expect_menu(page, "statistician")
    page.goto(app.url + "/rate")
    expect(heading(page, "Study overview")).to_be_visible(timeout=LOAD)
    expect(heading(page, "Rate")).to_have_count(0)


def expect_menu(page: Page, role: str) -> None:
    """The sidebar's menu lists exactly the screens ``app.SCREENS`` opens for ``role``."""
    titles = [title for _, title in screens_for(role)]
    if len(titles) > 1:
        # each link's text is its icon's name, then the title
        links = [re.compile(re.escape(title) + "$") for title in titles]
        expect(menu(page).get_by_role("link")).to_have_text(links, timeout=LOAD)
    else:
        expect(menu(page)).to_have_count(0)  # one screen: Streamlit shows no menu


def test_a_coordinator_sees_their_screens_in_the_menu(app: Served, page: Page):
    sign_in(page, app.url, "coord-at-idp")
    expect(heading(page, "Study overview")).to_be_visible(timeout=LOAD)
    expect_menu(page, "coordinator")
    expect(menu(page).get_by_role("link", name="Rate")).to_have_count(0)


def test_a_person_with_no_role_sees_only_the_no_access_screen(app: Served, page: Page):
    sign_in(page, app.url, "stranger-at-idp")
    expect(heading(page, "No access yet")).to_be_visible(timeout=LOAD)
    expect(page.get_by_text(STRANGER)).to_be_visible()
    for path in ("/rate", "/overview"):
        page.goto(app.url + path)
        expect(heading(page, "No access yet")).to_be_visible(timeout=LOAD)
        expect(heading(page, "Rate")).to_have_count(0)


def test_a_tampered_identity_cookie_is_refused(app: Served, page: Page):
    sign_in(page, app.url, "stat-at-idp")
    expect(heading(page, "Study overview")).to_be_visible(timeout=LOAD)
    context = page.context
    cookie = next(c for c in context.cookies() if c["name"] == "_streamlit_user")
    # claim to be someone else: the payload changes, the signature no longer matches
    value = cookie["value"]
    forged = value.replace(value[10:14], "AAAA" if value[10:14] != "AAAA" else "BBBB")
    context.add_cookies([{**cookie, "value": forged}])
    page.goto(app.url + "/overview")
    expect(page.get_by_text("could not be verified")).to_be_visible(timeout=LOAD)
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    expect(heading(page, "Study overview")).to_have_count(0)


def test_sign_out_ends_the_session(app: Served, page: Page):
    sign_in(page, app.url, "rater-at-idp")
    expect(heading(page, "Rate")).to_be_visible(timeout=LOAD)
    page.get_by_role("button", name="Sign out").click()
    # the provider's end-session page (the mock asks to confirm), then back to the app
    page.get_by_role("button", name="End session").click(timeout=LOAD)
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=LOAD)
    assert not [c for c in page.context.cookies() if c["name"].startswith("_streamlit_user")]
    page.goto(app.url + "/rate")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=LOAD)
    expect(heading(page, "Rate")).to_have_count(0)


def test_a_session_past_its_maximum_age_must_sign_in_again(
    tmp_path: Path, demo_copy: Path, provider: str, page: Page
):
    hours = f"{SHORT_SESSION_SECONDS / 3600:.6f}"
    with _app(tmp_path, demo_copy, provider, CLINVAL_MAX_SESSION_HOURS=hours) as short:
        sign_in(page, short.url, "rater-at-idp")
        expect(heading(page, "Rate")).to_be_visible(timeout=LOAD)
        time.sleep(SHORT_SESSION_SECONDS + 1)  # the token was issued before the page showed
        page.reload()
        expect(page.get_by_text("Your session is older than")).to_be_visible(timeout=LOAD)
        expect(heading(page, "Rate")).to_have_count(0)
        # signing in again gives a fresh session
        page.get_by_role("button", name="Sign in").click()
        page.fill("input[name=sub]", "rater-at-idp")
        page.get_by_role("button", name="Authorize").click()
        expect(heading(page, "Rate")).to_be_visible(timeout=LOAD)
