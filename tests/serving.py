"""Serving the real app for browser tests: ``streamlit run app.py`` on a free loopback port, and
Debian's Chromium for Playwright (it cannot download its own browser here)."""

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


@contextmanager
def serve(db: Path, folder: Path, *, demo_on_start: bool) -> Iterator[Served]:
    """The app on ``db``; stopped on exit, and a traceback in its log fails the test."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINVAL_")}
    env |= {"CLINVAL_DB": str(db), "CLINVAL_DEMO_ON_START": "1" if demo_on_start else "0"}
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
