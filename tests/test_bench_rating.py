"""Smoke run of the rating benchmark (``benchmarks/bench_rating.py --quick``): it builds its small
database, drives the real app and the trivial page over Streamlit's websocket, stops its servers,
and every acknowledged rating is stored exactly once. No timing is asserted (the figures are the
benchmark's to print, not a test's to judge on a shared machine)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow

LAST = re.compile(
    r"^p95_ms=(\S+) throughput_ratio=(\S+) lost=(\d+) duplicated=(\d+) peak_rss_mb=(\d+)"
    r" app_floor_ratio=(\S+) p95_floor_ratio=(\S+)$"
)


def test_quick_run_stores_every_acknowledged_rating_once(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINVAL_")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_rating.py"), "--quick",
         "--db", str(tmp_path / "bench.duckdb")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    match = LAST.match(lines[-1])
    assert match, lines[-5:]
    assert match.group(3) == "0" and match.group(4) == "0", "\n".join(lines[-20:])
    assert "session failures" not in done.stdout, done.stdout[-3000:]
    assert "submits not saved" not in done.stdout, done.stdout[-3000:]
    assert "traceback" not in done.stdout.lower(), done.stdout[-3000:]
    # (d): the floor page under run (a)'s load rated cases and printed its p95
    floor_load = re.search(
        r"\(d\) floor page under run \(a\)'s load.* over (\d+) cases", done.stdout
    )
    assert floor_load and int(floor_load.group(1)) > 0, done.stdout[-3000:]
    acknowledged = int(re.search(r"acknowledged (\d+)", done.stdout).group(1))
    assert acknowledged > 0, done.stdout[-3000:]
    # the audit key went next to the database in the temporary folder, not into the project
    assert (tmp_path / "bench.duckdb.audit.key").exists()

    # the in-process profiler runs on the same database (a copy), with its floor (floor.py)
    profiled = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "profile_submit.py"),
         "--db", str(tmp_path / "bench.duckdb"), "--cases", "5", "--raters", "2"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert profiled.returncode == 0, profiled.stdout[-3000:] + profiled.stderr[-3000:]
    assert re.match(
        r"^per_case_ms=\S+ p95_ms=\S+ cpu_ms=\S+ statements=\S+ floor_ms=\S+ floor_cpu_ms=\S+ "
        r"ratio=\S+ cpu_ratio=\S+$",
        profiled.stdout.strip().splitlines()[-1],
    ), profiled.stdout[-2000:]
