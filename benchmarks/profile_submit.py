"""Server time and DuckDB statements per rated case, in-process: the rating page's service calls.

Not the benchmark (``bench_rating.py`` drives the served app over websockets); this times only
the services the rating screen calls per case, on a copy of a benchmark database, to see where a
submission's time goes. Per case, as ``pages/rate.py`` does after Enter:
``rating.submit_rating`` for the shown assignment (with ``present_next``: it stamps the next
case's first showing in its own transaction), ``rating.next_assignment`` for the next one, and
``rating.mark_presented`` only where that case has no stamp yet. ``--extras`` adds
``rating.assignment_view`` and ``rating.rater_status`` of the next case (what a revision and the
end of the queue read).

Its own baseline, measured in the same run on the same copy so that a noisy machine cancels
out: the floor, one transaction of plain SQL that stores a case's rating rows, current-rating
pointers, done flag and one audit row and head, then reads the next case and its answers (the
work of ``bench_rating``'s floor page, without Streamlit). The last line, for scripts:
``per_case_ms=<mean> p95_ms=<x> cpu_ms=<mean> statements=<per case> floor_ms=<mean>
floor_cpu_ms=<mean> ratio=<mean / floor> cpu_ratio=<cpu / floor's cpu>``; on a shared machine
the CPU figures (every thread of this process) are the steadier ones.

Usage: ``python benchmarks/profile_submit.py --db /tmp/b1m/bench.duckdb [--cases 200]``. The
database (and its ``.audit.key`` next to it) is copied to a temporary folder first: the
original is left untouched. Raters are the benchmark's with the most unrated cases.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

STUDY = "bench-rating"


class _CountingCursor:
    """A DuckDB cursor that counts and times its statements (``execute``, ``sql``)."""

    def __init__(self, cursor: Any, tally: _Tally) -> None:
        self._cursor = cursor
        self._tally = tally

    def execute(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        self._cursor.execute(sql, *args, **kwargs)
        self._tally.add(sql, time.perf_counter() - started)
        return self

    def sql(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        out = self._cursor.sql(sql, *args, **kwargs)
        # a relation runs when read (.pl(), .fetchall()); count it here, time it roughly
        self._tally.add(sql, time.perf_counter() - started)
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


class _CountingConnection:
    def __init__(self, conn: Any, tally: _Tally) -> None:
        self._conn = conn
        self._tally = tally

    def cursor(self) -> _CountingCursor:
        return _CountingCursor(self._conn.cursor(), self._tally)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


class _Tally:
    def __init__(self) -> None:
        self.count = 0
        self.by_sql: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()

    def add(self, sql: str, seconds: float) -> None:
        self.count += 1
        key = " ".join(sql.split())
        # a statement that reads the caller's grants too (access.with_grants): name its own part
        inner = key.find("LEFT JOIN (SELECT ")
        key = ("[grants+] " + key[inner + 11 :] if inner > 0 else key)[:90]
        self.by_sql[key] += 1
        self.seconds[key] += seconds


def _copy(db: Path, folder: Path) -> Path:
    target = folder / db.name
    shutil.copyfile(db, target)
    for suffix in (".wal", ".audit.key"):
        extra = Path(str(db) + suffix)
        if extra.exists():
            shutil.copyfile(extra, Path(str(target) + suffix))
    return target


def _values(view: dict[str, Any], items: list[dict[str, Any]], n: int) -> dict[str, Any]:
    """A valid sheet for the view: varied options, and "could cause harm" consistent with the
    extent of harm (the instrument's rule), never a severe-harm value (no safety alert)."""
    labels = [p["label"] for p in view["presentations"]]
    out: dict[str, Any] = {}
    for item in items:
        options = [o["value"] for o in item.get("options") or []]
        if item["key"] in ("harm_extent", "harm_likelihood", "could_cause_harm"):
            options = [0]
        pick = options[n % len(options)] if options else 1
        if item.get("scope", "answer") == "case":
            out[item["key"]] = pick
        else:
            out[item["key"]] = dict.fromkeys(labels, pick)
    return out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))] * 1000


def profile(db: Path, cases: int, extras: bool, raters_wanted: int) -> dict[str, Any]:
    from study.access import Caller
    from study.services import instrument_library, people, rating
    from study.store import Store

    store = Store(db)
    tally = _Tally()
    owner = store._owner  # noqa: SLF001 (a profiling wrapper around the one connection)
    owner.conn = _CountingConnection(owner.conn, tally)
    try:
        raters = (
            store.read(
                "SELECT rater FROM assignments WHERE study = $s GROUP BY rater"
                " ORDER BY count(*) FILTER (WHERE NOT done) DESC, rater LIMIT $n",
                {"s": STUDY, "n": raters_wanted},
            )
            .get_column("rater")
            .to_list()
        )
        # the benchmark's raters are synthetic people of the demo's issuer, picked as the app's
        # picker does
        callers: list[Caller] = [people.demo_sign_in(store, r) for r in raters]
        items = [
            json.loads(d)
            for d in instrument_library.study_items(store, callers[0], STUDY).get_column(
                "definition"
            )
        ]
        views = {}
        for caller in callers:
            views[caller.user_id] = rating.next_assignment(store, caller, STUDY)
            rating.mark_presented(store, caller, STUDY, views[caller.user_id]["assignment"])
        times: list[float] = []
        cpu: list[float] = []
        counts: list[int] = []
        per_service: dict[str, list[float]] = {}
        tally.by_sql.clear()
        tally.seconds.clear()

        def timed(name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            out = fn(*args, **kwargs)
            per_service.setdefault(name, []).append(time.perf_counter() - started)
            return out

        for n in range(cases):
            caller = callers[n % len(callers)]
            view = views[caller.user_id]
            if view is None:
                raise SystemExit(f"{caller.user_id} has no case left: use more --raters")
            before = tally.count
            started = time.perf_counter()
            cpu_started = time.process_time()
            timed(
                "submit_rating",
                rating.submit_rating,
                store,
                caller,
                STUDY,
                view["assignment"],
                _values(view, items, n),
                present_next=True,
            )
            view = timed("next_assignment", rating.next_assignment, store, caller, STUDY)
            if view is not None and view["presented_at"] is None:
                timed(
                    "mark_presented",
                    rating.mark_presented,
                    store,
                    caller,
                    STUDY,
                    view["assignment"],
                )
            if view is not None and extras:
                timed(
                    "assignment_view",
                    rating.assignment_view,
                    store,
                    caller,
                    STUDY,
                    view["assignment"],
                )
                timed("rater_status", rating.rater_status, store, caller, STUDY)
            times.append(time.perf_counter() - started)
            cpu.append(time.process_time() - cpu_started)
            counts.append(tally.count - before)
            views[caller.user_id] = view
        floor = _floor(store, raters, cases)
        return {
            "times": times,
            "cpu": cpu,
            "counts": counts,
            "per_service": per_service,
            "tally": tally,
            "floor": floor,
        }
    finally:
        owner.conn = owner.conn._conn  # noqa: SLF001
        store.close()


def _floor(store: Any, raters: list[str], cases: int) -> list[tuple[float, float]]:
    """Per case (wall, CPU seconds): ``floor.py``'s plain SQL, as ``bench_rating``'s floor page
    runs it without Streamlit: the rater's case shown (read back), then stored."""
    import floor

    conn = store._owner.conn._conn  # noqa: SLF001
    items = conn.execute(floor.ITEMS_SQL, [STUDY]).fetchall()
    times = []
    cur = conn.cursor()
    for n in range(cases):
        started = time.perf_counter()
        cpu_started = time.process_time()
        case = floor.next_case(cur, STUDY, raters[n % len(raters)])
        if case is None:
            break
        assignment, _, shown = case
        floor.store_case(cur, assignment, [p for p, _, _ in shown], items)
        times.append((time.perf_counter() - started, time.process_time() - cpu_started))
    cur.close()
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, default=Path("/tmp/b1m/bench.duckdb"))
    parser.add_argument("--cases", type=int, default=200, help="cases rated (default 200)")
    parser.add_argument("--raters", type=int, default=4, help="raters taking turns (default 4)")
    parser.add_argument("--extras", action="store_true", help="add assignment_view, rater_status")
    parser.add_argument("--top", type=int, default=25, help="statements listed (default 25)")
    args = parser.parse_args(argv)
    if not args.db.exists():
        print(f"{args.db}: no such database (build one with bench_rating.py)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="clinval-profile-") as folder:
        db = _copy(args.db, Path(folder))
        os.environ["CLINVAL_AUDIT_KEY_FILE"] = str(db) + ".audit.key"
        os.environ["CLINVAL_DB"] = str(db)
        out = profile(db, args.cases, args.extras, args.raters)
    times, counts, tally = out["times"], out["counts"], out["tally"]
    floor = [wall for wall, _ in out["floor"]]
    floor_cpu = [cpu for _, cpu in out["floor"]]
    print(f"{len(times)} cases, {len(set(counts))} distinct statement counts per case")
    print("per service (ms): " + ", ".join(
        f"{name} {statistics.mean(v) * 1000:.2f}" for name, v in out["per_service"].items()
    ))  # fmt: skip
    print(f"\n{'calls':>6} {'ms/call':>8} {'ms/case':>8}  statement")
    ranked = sorted(tally.by_sql.items(), key=lambda kv: -tally.seconds[kv[0]])
    for sql, calls in ranked[: args.top]:
        seconds = tally.seconds[sql]
        print(
            f"{calls:>6} {seconds / calls * 1000:>8.2f} {seconds / len(times) * 1000:>8.2f}  {sql}"
        )
    mean = statistics.mean(times) * 1000
    cpu = statistics.mean(out["cpu"]) * 1000
    floor_mean = statistics.mean(floor) * 1000
    floor_cpu_mean = statistics.mean(floor_cpu) * 1000
    print(
        f"\nper case: mean {mean:.1f} ms, p50 {_pct(times, 50):.1f}, p95 {_pct(times, 95):.1f},"
        f" CPU {cpu:.1f} ms (every thread of the process); {statistics.mean(counts):.1f} statements"
    )
    print(
        f"floor (plain SQL, same writes, no checks): mean {floor_mean:.1f} ms, CPU"
        f" {floor_cpu_mean:.1f} ms per case"
    )
    # CPU time is the steadier figure on a shared machine: another process's load stretches
    # the wall clock, not this process's CPU time
    print(
        f"per_case_ms={mean:.1f} p95_ms={_pct(times, 95):.1f} cpu_ms={cpu:.1f}"
        f" statements={statistics.mean(counts):.1f} floor_ms={floor_mean:.1f}"
        f" floor_cpu_ms={floor_cpu_mean:.1f} ratio={mean / floor_mean:.2f}"
        f" cpu_ratio={cpu / floor_cpu_mean:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
