"""The real app in a real browser: ``streamlit run app.py`` driven by headless Chromium.

The server starts on an empty database with ``CLINVAL_DEMO_ON_START=1``, so the first page load
exercises the first-start path (the demo is built behind a spinner) before the overview renders.
Playwright drives Debian's ``chromium`` (it cannot download its own browser here); without it
the test fails with instructions instead of skipping.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
DEMO_CASES = sum(
    1 for line in (ROOT / "data" / "demo" / "cases.jsonl").read_text().splitlines() if line.strip()
)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOT = os.environ.get("BROWSER_TEST_SCREENSHOT")
"""If set, a copy of the overview screenshot is also saved there (for reviewing the page)."""

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, server: subprocess.Popen, timeout: float = 60) -> None:
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


@pytest.fixture
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail(
            "Chromium is not installed, so the browser tests cannot run. Install it with "
            "`make chromium` (apt-get install chromium) and run the tests again."
        )
    return path


@pytest.fixture
def app_url(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINVAL_")}
    env |= {"CLINVAL_DB": str(tmp_path / "browser.duckdb"), "CLINVAL_DEMO_ON_START": "1"}
    # the session's audit key (conftest), so the server never writes one into the project
    env["CLINVAL_AUDIT_KEY_FILE"] = os.environ["CLINVAL_AUDIT_KEY_FILE"]
    log = open(tmp_path / "streamlit.log", "w+b")  # noqa: SIM115 (closed in the finally below)
    server = subprocess.Popen(
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
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, server)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)
        log.seek(0)
        output = log.read().decode(errors="replace")
        log.close()
        assert "Traceback" not in output, output[-3000:]


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
