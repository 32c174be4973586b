"""Settings, declared once as (name, default, help) and read from the environment.

Every setting is documented in the settings table of docs/administrator.md; ``tests/test_settings_docs.py``
fails when the table and this list drift apart.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from study.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    default: str
    help: str
    kind: type = str
    choices: tuple[str, ...] = ()


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "CLINVAL_DB",
        "data/clinval.duckdb",
        "Path of the DuckDB database file; relative paths are taken from the project folder.",
    ),
    Setting(
        "CLINVAL_DEMO_ON_START",
        "1",
        "Build the synthetic demo study when the app starts on an empty database (1 or 0).",
        int,
        ("0", "1"),
    ),
    Setting(
        "CLINVAL_AUDIT_KEY_FILE",
        ".streamlit/clinval-audit.key",
        "File holding the secret key of the audit chain (created with the database, mode 600); "
        "keep it with the deployment's secrets, never next to the database; relative paths are "
        "taken from the project folder.",
    ),
    Setting(
        "CLINVAL_MAX_IMPORT_MB",
        "200",
        "Largest file, in megabytes, that an import accepts.",
        int,
    ),
    Setting(
        "CLINVAL_REQUIRE_AUTH",
        "0",
        "Refuse to serve without real sign-in (1 or 0): with 1 the app stops with a message when "
        "`.streamlit/secrets.toml` has no `[auth]` block, never offers the demo's picker and "
        "never builds the demo on start. A deployment sets 1.",
        int,
        ("0", "1"),
    ),
    Setting(
        "CLINVAL_MAX_SESSION_HOURS",
        "12",
        "Hours after signing in at the provider (the ID token's `iat`) after which the app asks "
        "the person to sign in again; Streamlit's own sign-in cookie lasts 30 days. A decimal "
        "number above 0.",
        float,
    ),
    Setting(
        "CLINVAL_TOKEN",
        "",
        "A personal access token (made on the app's Account screen): `python -m study` commands "
        "then act as its person instead of the local operator, as `--token` does; empty: the "
        "operator.",
    ),
    Setting(
        "CLINVAL_ACCESS_CONTACT",
        "",
        "Who a signed-in person without any role is told to ask for access (a name, an e-mail "
        "address); empty: the coordinator of their study or their Clinval administrator.",
    ),
)

_BY_NAME = {s.name: s for s in SETTINGS}


def get(name: str) -> str | int | float:
    """Return the value of setting ``name`` from the environment, or its default, validated."""
    setting = _BY_NAME[name]
    raw = os.environ.get(name, setting.default).strip()
    if setting.choices and raw not in setting.choices:
        allowed = " or ".join(setting.choices)
        raise ConfigError(f"Setting {name} must be {allowed}, got {raw!r}.")
    if setting.kind is int:
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"Setting {name} must be a whole number, got {raw!r}.") from None
        if value < 0:
            raise ConfigError(f"Setting {name} must not be negative, got {value}.")
        return value
    if setting.kind is float:
        try:
            number = float(raw)
        except ValueError:
            raise ConfigError(f"Setting {name} must be a number, got {raw!r}.") from None
        if not number > 0 or number == float("inf"):
            raise ConfigError(f"Setting {name} must be a number above 0, got {raw!r}.")
        return number
    return raw


def db_path() -> Path:
    """The database path from ``CLINVAL_DB``, resolved against the project folder."""
    path = Path(str(get("CLINVAL_DB"))).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def audit_key_path() -> Path:
    """The audit key file from ``CLINVAL_AUDIT_KEY_FILE``, resolved against the project folder."""
    path = Path(str(get("CLINVAL_AUDIT_KEY_FILE"))).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def validate_all() -> None:
    """Read every setting once so that a bad value fails at start-up, not mid-session."""
    for setting in SETTINGS:
        get(setting.name)
