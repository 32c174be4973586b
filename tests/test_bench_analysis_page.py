"""Smoke run of the Analysis screen benchmark (``benchmarks/bench_analysis_page.py --quick``): it
builds its small database with the rating benchmark's builder, unblinds it, renders the screen
through AppTest (first, cached, drawing only) and prints its ratios. No timing is asserted (the
figures are the benchmark's to print, not a test's to judge on a shared machine)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow

LAST = re.compile(r"^first_ratio=(\d+\.\d+) cached_ratio=(\d+\.\d+)$")


def test_quick_run_renders_the_analysis_screen_and_prints_its_ratios(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINVAL_")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_analysis_page.py"), "--quick",
         "--db", str(tmp_path / "bench.duckdb")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert LAST.match(lines[-1]), lines[-5:]
    assert "traceback" not in done.stdout.lower(), done.stdout[-3000:]
    assert "(L) library" in done.stdout and "(D) drawing only" in done.stdout
    # the audit key went next to the database in the temporary folder, not into the project
    assert (tmp_path / "bench.duckdb.audit.key").exists()
    print("\n".join(lines[-4:]))  # the figures, for whoever runs this with -s
