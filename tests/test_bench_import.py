"""Smoke run of the import benchmark (``benchmarks/bench_import.py``) on a few hundred cases: the
import and its peer (DuckDB's own ``read_csv`` into the same tables) both store the data, and the
last line carries ``peer_ratio=``. No timing is asserted (the figures are the benchmark's to
print, not a test's to judge on a shared machine)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LAST = re.compile(r"^csv import=(\S+)s peer=(\S+)s peer_ratio=(\d+\.\d+)$")


def test_small_run_prints_the_peer_ratio(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINVAL_")}
    env["CLINVAL_AUDIT_KEY_FILE"] = str(tmp_path / "audit.key")
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_import.py"), "--cases", "300",
         "--repeat", "1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("300 cases, 600 answers"), lines[:2]
    match = LAST.match(lines[-1])
    assert match, lines[-3:]
    assert float(match.group(3)) > 0
    assert "[csv] stored by both: 2 arms, 300 cases, 600 answers" in done.stdout
    assert re.search(r"\[csv\] peer: DuckDB read_csv into the same tables: \d", done.stdout)
