"""The settings table of docs/administrator.md and study.settings.SETTINGS must list the same
settings."""

from __future__ import annotations

import re

import pytest

from study import settings
from study.errors import ConfigError

GUIDE = settings.PROJECT_ROOT / "docs" / "administrator.md"
ROW = re.compile(r"^\|\s*`(CLINVAL_[A-Z0-9_]+)`\s*\|\s*`([^`]*)`\s*\|\s*(.+?)\s*\|\s*$")


def _documented() -> dict[str, tuple[str, str]]:
    rows = {}
    for line in GUIDE.read_text(encoding="utf-8").splitlines():
        m = ROW.match(line)
        if m:
            rows[m.group(1)] = (m.group(2), m.group(3))
    return rows


def test_every_setting_is_documented_with_its_default():
    documented = _documented()
    declared = {s.name: s for s in settings.SETTINGS}
    assert set(documented) == set(declared), (
        f"undocumented: {sorted(set(declared) - set(documented))}; "
        f"documented but not declared: {sorted(set(documented) - set(declared))}"
    )
    for name, (default, meaning) in documented.items():
        assert default == declared[name].default, f"{name}: documented default {default!r}"
        assert meaning == declared[name].help, (
            f"{name}: documented meaning differs from the help text"
        )


@pytest.mark.parametrize(
    ("name", "raw", "fragment"),
    [
        ("CLINVAL_MAX_IMPORT_MB", "lots", "whole number"),
        ("CLINVAL_MAX_IMPORT_MB", "-3", "must not be negative"),
        ("CLINVAL_DEMO_ON_START", "5", "must be 0 or 1"),
        ("CLINVAL_DEMO_ON_START", "yes", "must be 0 or 1"),
    ],
)
def test_bad_setting_values_are_refused_with_a_clear_message(monkeypatch, name, raw, fragment):
    monkeypatch.setenv(name, raw)
    with pytest.raises(ConfigError, match=fragment):
        settings.validate_all()


def test_relative_database_path_is_taken_from_the_project_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("CLINVAL_DB", "data/x.duckdb")
    assert settings.db_path() == settings.PROJECT_ROOT / "data" / "x.duckdb"
    monkeypatch.setenv("CLINVAL_DB", str(tmp_path / "y.duckdb"))
    assert settings.db_path() == tmp_path / "y.duckdb"
