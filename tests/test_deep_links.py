"""A screen's URL opened first in a new session (AppTest's first run on a page, as Streamlit
runs a typed URL before ``st.navigation`` has ever been called): it goes through ``app.py``,
which shows the screen to a person whose roles open it and their first screen to anyone else.
Every screen in ``app.SCREENS`` is tried by every role (the admin: the demo's local operator,
picker place 0), so a screen added later is checked too."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ROOT, picker_place, screens_for
from streamlit.testing.v1 import AppTest

from study.demo import COORDINATOR, STATISTICIAN

APP = str(ROOT / "app.py")
PEOPLE = {
    "coordinator": COORDINATOR["user_id"],
    "statistician": STATISTICIAN["user_id"],
    "rater": "demo-rater-01",
    "admin": None,  # the local operator: a system caller, who holds the admin's screens
}
EVERY_SCREEN = sorted({script for role in PEOPLE for script, _ in screens_for(role)})


def first_run_on(
    db: Path, monkeypatch: pytest.MonkeyPatch, person: str | None, script: str
) -> AppTest:
    monkeypatch.setenv("CLINVAL_DB", str(db))
    monkeypatch.setenv("CLINVAL_DEMO_ON_START", "0")
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["person"] = "0" if person is None else picker_place(db, person)
    return at.switch_page(script).run()


@pytest.mark.parametrize("role", sorted(PEOPLE))
def test_a_screen_url_opened_first_goes_through_the_app(demo_db, monkeypatch, role):
    opened = dict(screens_for(role))
    first_title = screens_for(role)[0][1]
    for script in EVERY_SCREEN:
        at = first_run_on(demo_db, monkeypatch, PEOPLE[role], script)
        assert not at.exception, (script, [e.message for e in at.exception])
        titles = [t.value for t in at.title]
        expected = opened.get(script, first_title)
        assert titles and _shown(titles[0], expected), (role, script, titles)


def _shown(title: str, screen: str) -> bool:
    """The screen's title in the menu is its page title, or a longer heading begins with it
    ("Overview" shows "Study overview")."""
    return screen.lower() in title.lower()
