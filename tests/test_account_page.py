"""The Account screen (pages/account.py): a person creates a personal access token, sees it once,
lists and revokes their own; the operator, who is no person, gets none."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from conftest import ROOT, picker_place
from streamlit.testing.v1 import AppTest

from study.demo import STATISTICIAN
from study.services import tokens
from study.store import Store

APP = str(ROOT / "app.py")
TIMEOUT = 120


def account_as(monkeypatch: pytest.MonkeyPatch, db: Path, user_id: str | None) -> AppTest:
    """The Account screen, first run, as the demo's ``user_id`` (None: the local operator)."""
    monkeypatch.setenv("CLINVAL_DB", str(db))
    monkeypatch.setenv("CLINVAL_DEMO_ON_START", "0")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["person"] = "0" if user_id is None else picker_place(db, user_id)
    return at.switch_page("pages/account.py").run()


def no_failure(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def shown_tokens(at: AppTest) -> list[str]:
    """Every text on the screen that holds a token's secret part (a code block's body)."""
    return [c.value for c in at.code if c.value.startswith(f"{tokens.TOKEN_PREFIX}_")]


def stored_rows(db: Path) -> list[tuple]:
    with Store(db) as store:
        return store.read("SELECT * FROM personal_tokens ORDER BY created_at").rows()


def test_a_token_is_shown_once_listed_without_its_secret_and_revoked(monkeypatch, demo_db):
    me = STATISTICIAN["user_id"]
    at = account_as(monkeypatch, demo_db, me)
    no_failure(at)
    assert at.title[0].value == "Account"
    assert "no personal access tokens yet" in at.info[0].value

    at.text_input[0].input("R on my laptop")
    at.number_input[0].set_value(7)
    at.button[0].click().run()  # the form's submit button
    no_failure(at)
    (token,) = shown_tokens(at)
    assert "shown this once" in at.success[0].value
    table = at.dataframe[0].value
    assert table["Name"].tolist() == ["R on my laptop"]
    assert table["Status"].tolist() == ["active"]
    assert table["Token begins"][0] == token[: len("clv_") + 12] + "_…"

    # the stored row holds the token's SHA-256, never the token or its secret part
    (row,) = stored_rows(demo_db)
    assert token not in repr(row) and token.split("_", 2)[2] not in repr(row)
    assert hashlib.sha256(token.encode()).hexdigest() in row
    with Store(demo_db) as store:
        assert tokens.caller_for_token(store, token).user_id == me

    at.run()  # a rerun (a reload of the same session) does not show it again
    no_failure(at)
    assert shown_tokens(at) == []
    assert at.dataframe[0].value["Last used (UTC)"].notna().all()  # used just above

    revoke = at.button(key="revoke")
    assert revoke.disabled  # not before the confirmation
    at.checkbox(key="revoke_confirm").check().run()
    at.button(key="revoke").click().run()
    no_failure(at)
    assert "is revoked" in at.success[0].value
    assert at.dataframe[0].value["Status"].tolist() == ["revoked"]
    assert not any(b.key == "revoke" for b in at.button)  # nothing left to revoke
    with Store(demo_db) as store, pytest.raises(tokens.TokenRefused, match="revoked"):
        tokens.caller_for_token(store, token)


def test_a_nameless_token_is_refused_on_the_screen(monkeypatch, demo_db):
    at = account_as(monkeypatch, demo_db, "demo-rater-01")
    no_failure(at)
    at.button[0].click().run()
    assert "Give the token a name" in at.error[0].value
    assert shown_tokens(at) == []
    assert stored_rows(demo_db) == []


def test_the_local_operator_is_told_tokens_are_a_persons(monkeypatch, demo_db):
    at = account_as(monkeypatch, demo_db, None)
    no_failure(at)
    assert at.title[0].value == "Account"
    assert "no person" in at.info[0].value
    assert not at.text_input and not at.button
