"""Serving the real app for browser tests: ``streamlit run app.py`` on a free loopback port, and
Debian's Chromium for Playwright (it cannot download its own browser here).

The app reads its secrets only from the file ``serve`` is given (``--secrets.files``), never from
the project's ``.streamlit/secrets.toml``: without one it runs as the demo without sign-in
whatever a developer configured locally; with one (written into the test's temporary folder by
``write_auth_secrets``) it signs people in through that ``[auth]`` block.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str:
    """The system Chromium; a failure with instructions (never a skip) when it is missing."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail(
            "Chromium is not installed, so the browser tests cannot run. Install it with "
            "`make chromium` (apt-get install chromium) and run the tests again."
        )
    return path


@contextmanager
def chromium() -> Iterator:
    """Debian's Chromium under Playwright (a ``playwright.sync_api.Browser``), closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, server: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {server.returncode} before serving")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().decode().strip() == "ok":
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url}/_stcore/health did not answer 'ok' within {timeout:.0f} s")


@dataclass
class Served:
    url: str
    process: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def write_auth_secrets(
    folder: Path, port: int, metadata_url: str, *, cookie_secret: str = "c" * 48
) -> Path:
    """A secrets file in ``folder`` whose ``[auth]`` block signs in through the provider at
    ``metadata_url`` (any client id: a mock provider accepts it) for an app on ``port``."""
    path = folder / f"secrets-{port}.toml"
    path.write_text(
        "[auth]\n"
        f'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
        f'cookie_secret = "{cookie_secret}"\n'
        'client_id = "clinval-tests"\n'
        'client_secret = "clinval-tests-secret"\n'
        f'server_metadata_url = "{metadata_url}"\n',
        encoding="utf-8",
    )
    return path


@contextmanager
def serve(
    db: Path,
    folder: Path,
    *,
    demo_on_start: bool,
    port: int | None = None,
    secrets: Path | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[Served]:
    """The app on ``db``; stopped on exit, and a traceback in its log fails the test.

    ``secrets``: the only secrets file the app reads (default: none, so the demo without
    sign-in); ``port``: the port it was written for (default: a free one); ``env``: further
    ``CLINVAL_`` settings.
    """
    port = port or free_port()
    secrets = secrets or folder / "no-secrets.toml"  # absent: no [auth], whatever the project has
    extra = env or {}
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINVAL_")}
    env |= {"CLINVAL_DB": str(db), "CLINVAL_DEMO_ON_START": "1" if demo_on_start else "0"}
    env |= extra
    if "CLINVAL_AUDIT_KEY_FILE" in os.environ:
        # the session's audit key (conftest), so the server never writes one into the project
        env["CLINVAL_AUDIT_KEY_FILE"] = os.environ["CLINVAL_AUDIT_KEY_FILE"]
    log_path = folder / f"streamlit-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                "app.py",
                "--server.port",
                str(port),
                "--server.address",
                "127.0.0.1",
                "--server.headless",
                "true",
                "--browser.gatherUsageStats",
                "false",
                "--secrets.files",
                str(secrets),
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    served = Served(f"http://127.0.0.1:{port}", process, log_path)
    try:
        wait_healthy(served.url, process)
        yield served
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
    output = served.output()
    assert "Traceback" not in output, output[-3000:]
