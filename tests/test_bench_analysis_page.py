"""Smoke run of the Analysis screen benchmark (``benchmarks/bench_analysis_page.py --quick``): it
builds its small database with the rating benchmark's builder, unblinds it, renders the screen
through AppTest (first, cached, drawing only) and prints its ratios. No timing is asserted (the
figures are the benchmark's to print, not a test's to judge on a shared machine)."""

from __future__ import annotations

import hashlib
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


def test_from_copies_a_rating_benchmark_database_and_leaves_it_untouched(tmp_path: Path) -> None:
    """``--from``: how the full-size run starts from the rating benchmark's 1M-rating database
    (``/tmp/b1m/bench.duckdb``) without changing it; here a quick database stands in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINVAL_")}
    script = str(ROOT / "benchmarks" / "bench_analysis_page.py")
    source = tmp_path / "source" / "bench.duckdb"
    source.parent.mkdir()
    build = [sys.executable, "-c", (
        "import sys; sys.path[:0] = [sys.argv[1], sys.argv[1] + '/benchmarks']; "
        "import os; os.environ['CLINVAL_AUDIT_KEY_FILE'] = sys.argv[2] + '.audit.key'; "
        "import bench_rating, pathlib; p = pathlib.Path(sys.argv[2]); "
        "bench_rating.build_database(p, bench_rating.Layout(22_000, 30, 1), p.parent)"
    ), str(ROOT), str(source)]  # fmt: skip
    subprocess.run(build, cwd=ROOT, env=env, check=True, capture_output=True, timeout=600)
    before = hashlib.sha256(source.read_bytes()).hexdigest()
    copy = tmp_path / "copy" / "bench.duckdb"
    copy.parent.mkdir()
    done = subprocess.run(
        [sys.executable, script, "--quick", "--from", str(source), "--db", str(copy)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert LAST.match(done.stdout.strip().splitlines()[-1])
    assert "copying" in done.stdout and "study unblinded" in done.stdout
    assert hashlib.sha256(source.read_bytes()).hexdigest() == before  # still in rating
    assert (copy.parent / "bench.duckdb.audit.key").exists()

    missing = subprocess.run(
        [sys.executable, script, "--quick", "--from", str(tmp_path / "none.duckdb")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert missing.returncode == 2
    assert "none.duckdb" in missing.stderr and "bench_rating.py" in missing.stderr
