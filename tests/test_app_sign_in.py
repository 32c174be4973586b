"""The app with sign-in configured, through AppTest (``at.secrets`` holds the ``[auth]`` block,
``at.user`` the signed-in person's ID-token claims, as ``st.user`` would hold them).

Navigation is checked by what the router registered: ``AppTest.switch_page`` refuses a page that
``st.navigation`` did not register for this person. The people are the synthetic demo's (the
demo database, copied per test), whose verified e-mail binds them as an invitation would.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from conftest import APP_TIMEOUT, OPERATOR, ROOT, screens_for
from streamlit.testing.v1 import AppTest

from study.demo import COORDINATOR, STATISTICIAN, read_raters
from study.services import people
from study.store import Store

APP = str(ROOT / "app.py")
PAGES = sorted(f"pages/{p.name}" for p in (ROOT / "pages").glob("*.py"))
IDP = "https://login.hospital.example"
SECRET = "s" * 40
AUTH = {
    "redirect_uri": "http://localhost:8501/oauth2callback",
    "cookie_secret": SECRET,
    "client_id": "clinval",
    "client_secret": "not-a-real-secret",
    "server_metadata_url": f"{IDP}/.well-known/openid-configuration",
}
RATER = read_raters()[0]


def claims(email: str, *, subject: str | None = None, verified=True, age_hours: float = 0.1):
    """``st.user`` of someone signed in at ``IDP`` ``age_hours`` ago."""
    return {
        "is_logged_in": True,
        "iss": IDP,
        "sub": subject or f"sub-{email}",
        "email": email,
        "email_verified": verified,
        "name": email.split("@")[0],
        "iat": int(time.time() - age_hours * 3600),
    }


def app(monkeypatch, db: Path, *, user: dict | None, auth: dict | None = AUTH, **env) -> AppTest:
    monkeypatch.setenv("CLINVAL_DB", str(db))
    monkeypatch.setenv("CLINVAL_DEMO_ON_START", "0")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    at = AppTest.from_file(APP, default_timeout=APP_TIMEOUT)
    if auth is not None:
        at.secrets["auth"] = auth
    at.user = user if user is not None else {"is_logged_in": False}
    return at.run()


def registered(at: AppTest) -> list[str]:
    """The pages ``st.navigation`` registered in the last run (AppTest refuses the others)."""
    found = []
    for page in PAGES:
        try:
            at.switch_page(page)
        except ValueError:
            continue
        found.append(page)
    return found


def no_failure(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]


def buttons(at: AppTest) -> list[str]:
    return [b.label for b in at.button]


# --- signed out, misconfigured ---------------------------------------------------------------


def test_signed_out_sees_only_the_sign_in_button_and_no_picker(monkeypatch, demo_db):
    at = app(monkeypatch, demo_db, user=None)
    no_failure(at)
    assert buttons(at) == ["Sign in"]
    assert registered(at) == ["pages/sign_in.py"]
    assert not at.selectbox and not at.metric
    assert not any("Demo without real sign-in" in w.value for w in at.warning)


def test_several_providers_each_get_a_button_with_their_name(monkeypatch, demo_db):
    shared = {"redirect_uri": AUTH["redirect_uri"], "cookie_secret": SECRET}
    provider = {k: AUTH[k] for k in ("client_id", "client_secret", "server_metadata_url")}
    at = app(
        monkeypatch, demo_db, user=None, auth=shared | {"microsoft": provider, "okta": provider}
    )
    no_failure(at)
    assert buttons(at) == ["Sign in with Microsoft", "Sign in with Okta"]


@pytest.mark.parametrize(
    ("broken", "fragment"),
    [
        pytest.param({"cookie_secret": None}, "cookie_secret is missing", id="no cookie secret"),
        pytest.param({"cookie_secret": "short"}, "cookie_secret is 5 characters", id="short"),
        pytest.param({"redirect_uri": None}, "redirect_uri is missing", id="no redirect"),
        pytest.param(
            {"redirect_uri": "http://localhost:8501/"}, "ending in /oauth2callback", id="bad redirect"
        ),
        pytest.param({"client_secret": None}, "[auth] lacks client_secret", id="no client secret"),
        pytest.param(
            {"server_metadata_url": "http://idp.example/x"}, "must be an absolute https URL",
            id="plain http to a remote provider",
        ),
        pytest.param(
            {"client_id": None, "client_secret": None, "server_metadata_url": None},
            "no provider",
            id="no provider at all",
        ),
    ],
)  # fmt: skip
def test_a_malformed_auth_block_stops_the_app_with_what_is_wrong(
    monkeypatch, demo_db, broken, fragment
):
    auth = {k: v for k, v in (AUTH | broken).items() if v is not None}
    at = app(monkeypatch, demo_db, user=claims(RATER["email"]), auth=auth)
    no_failure(at)
    assert len(at.error) == 1
    assert at.error[0].value.startswith("Clinval cannot start: The [auth] block")
    assert fragment in at.error[0].value
    assert SECRET not in at.error[0].value and "not-a-real-secret" not in at.error[0].value
    assert not at.button and not at.selectbox and not at.title


def test_required_sign_in_without_auth_refuses_to_start_and_builds_nothing(
    monkeypatch, tmp_path: Path
):
    db = tmp_path / "deployment.duckdb"
    at = app(
        monkeypatch, db, user=None, auth=None, CLINVAL_REQUIRE_AUTH="1", CLINVAL_DEMO_ON_START="1"
    )
    no_failure(at)
    assert "CLINVAL_REQUIRE_AUTH=1" in at.error[0].value and "[auth]" in at.error[0].value
    assert not at.selectbox  # the picker never appears
    assert not db.exists()


def test_required_sign_in_never_builds_the_demo_on_start(monkeypatch, tmp_path: Path):
    db = tmp_path / "deployment.duckdb"
    at = app(monkeypatch, db, user=None, CLINVAL_REQUIRE_AUTH="1", CLINVAL_DEMO_ON_START="1")
    no_failure(at)
    assert buttons(at) == ["Sign in"]
    with Store(db) as store:
        assert store.read("SELECT count(*) FROM studies").item() == 0
        assert store.read("SELECT count(*) FROM users").item() == 0


def test_an_unreachable_provider_is_a_sentence_not_a_traceback(monkeypatch, demo_db):
    with socket.socket() as sock:  # a port that nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    auth = AUTH | {
        "server_metadata_url": f"http://127.0.0.1:{port}/.well-known/openid-configuration"
    }
    at = app(monkeypatch, demo_db, user=None, auth=auth)
    at.button(key="sign_in_default").click().run()
    no_failure(at)
    assert "The sign-in service cannot be reached right now." in at.error[0].value
    assert str(port) not in at.error[0].value


# --- signed in: navigation by role -----------------------------------------------------------


def test_a_rater_gets_the_rating_screen_alone(monkeypatch, demo_db):
    at = app(monkeypatch, demo_db, user=claims(RATER["email"]))
    no_failure(at)
    assert registered(at) == ["pages/account.py", "pages/rate.py"]
    assert at.title[0].value == "Rate"
    assert not at.metric and not at.dataframe
    assert any("Signed in as" in c.value for c in at.sidebar.caption)
    with Store(demo_db) as store:  # the verified e-mail bound the demo's rater
        assert people.find_user(store, OPERATOR, IDP, f"sub-{RATER['email']}") is None
        bound = store.read("SELECT user_id FROM identities").rows()
    assert bound == [(RATER["user_id"],)]


def test_a_statistician_gets_the_overview_and_not_the_rating_screen(monkeypatch, demo_db):
    at = app(monkeypatch, demo_db, user=claims(STATISTICIAN["email"]))
    no_failure(at)
    pages = registered(at)
    assert "pages/overview.py" in pages
    assert "pages/rate.py" not in pages and "pages/people.py" not in pages
    assert pages == sorted(script for script, _ in screens_for("statistician"))
    assert at.title[0].value == "Study overview"


def test_a_coordinator_gets_the_overview_and_the_invitations(monkeypatch, demo_db):
    at = app(monkeypatch, demo_db, user=claims(COORDINATOR["email"]))
    no_failure(at)
    pages = registered(at)
    assert {"pages/overview.py", "pages/people.py"} <= set(pages)
    assert "pages/rate.py" not in pages
    assert pages == sorted(script for script, _ in screens_for("coordinator"))


def test_the_screen_table_gives_a_rater_the_rating_screen_and_their_account_only():
    # whatever screens are added, one that only rates must land on rating and see no other but
    # their own Account (their personal access tokens), which every role opens
    assert screens_for("rater") == [("pages/rate.py", "Rate"), ("pages/account.py", "Account")]
    assert ("pages/rate.py", "Rate") not in screens_for("admin", "coordinator", "statistician")


def test_a_coordinator_invites_a_rater_by_e_mail_from_the_app(monkeypatch, demo_db):
    at = app(monkeypatch, demo_db, user=claims(COORDINATOR["email"]))
    at.switch_page("pages/people.py").run()
    no_failure(at)
    assert at.selectbox(key="invite_study").value == "demo-patient-questions"
    assert not any(s.key == "invite_role" for s in at.selectbox)  # raters only
    at.text_input[0].input("New.Rater@Hospital.example")
    at.text_input[1].input("Dr New")
    at.button[-1].click().run()
    no_failure(at)
    assert "new.rater@hospital.example is invited as rater" in at.success[0].value
    at.text_input[0].input("not an address")
    at.button[-1].click().run()
    assert "is not an e-mail address" in at.error[0].value
    with Store(demo_db) as store:
        listed = people.list_people(store, OPERATOR)
    row = listed.filter(listed["id"] == "new.rater@hospital.example").row(0, named=True)
    assert row["roles"] == "rater in demo-patient-questions" and row["waiting"]


def test_a_person_with_no_role_sees_only_the_no_access_screen(monkeypatch, demo_db):
    at = app(monkeypatch, demo_db, user=claims("stranger@hospital.example"))
    no_failure(at)
    assert registered(at) == ["pages/no_access.py"]
    assert at.title[0].value == "No access yet"
    assert "stranger@hospital.example" in [c.value for c in at.code]
    assert not at.metric and not at.dataframe and not at.selectbox


def test_an_unverified_e_mail_binds_nobody_and_the_screen_says_why(monkeypatch, demo_db):
    at = app(monkeypatch, demo_db, user=claims(RATER["email"], verified=False))
    no_failure(at)
    assert registered(at) == ["pages/no_access.py"]
    assert RATER["email"] not in [c.value for c in at.code]
    assert any("email_verified" in c.value for c in at.caption)


@pytest.mark.parametrize(
    ("hours", "age", "expired"), [("12", 11.9, False), ("12", 12.1, True), ("0.5", 1, True)]
)
def test_a_session_past_its_maximum_age_must_sign_in_again(
    monkeypatch, demo_db, hours, age, expired
):
    user = claims(RATER["email"], age_hours=age)
    at = app(monkeypatch, demo_db, user=user, CLINVAL_MAX_SESSION_HOURS=hours)
    no_failure(at)
    if expired:
        assert registered(at) == ["pages/sign_in.py"]
        assert f"older than {float(hours):g} hour" in at.warning[0].value
        assert buttons(at) == ["Sign in"]
    else:
        assert registered(at) == ["pages/account.py", "pages/rate.py"]


def test_a_session_without_an_issue_time_is_refused(monkeypatch, demo_db):
    user = claims(RATER["email"])
    del user["iat"]
    at = app(monkeypatch, demo_db, user=user)
    assert registered(at) == ["pages/sign_in.py"]
    assert "no time of issue" in at.warning[0].value
