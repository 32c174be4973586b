"""Rating speed: concurrent raters on the real app, against a trivial five-button Streamlit page.

Issue 7, "Speed, measured": N sessions drive the rating screen over Streamlit's own websocket; a
trivial page with five buttons, driven the same way in the same run, is the floor that Streamlit
itself sets.

Database (built once, or reused with ``--db PATH``): one study in ``rating`` with the built-in
``ayers_harm`` instrument (per response: quality 1-5, empathy 1-5, harm extent, harm likelihood,
could cause harm; per case: which response is better), i.e. 11 rating rows per rated case with two
responses. ``--ratings`` (default 1,000,000) rating rows are already stored, spread over
``--raters`` raters (default 300, at least the sessions of all four runs), each of whom also has
``--pending`` (default 150) unrated assignments left. Cases are the 42 synthetic demo cases and
their two answers, repeated (``bench-00001`` ...), enough that no rater sees a case twice.

How the database is built, all as a coordinator would through ``study.services`` except where
said: people (issuer ``people.DEMO_ISSUER``, so that the demo picker ``?person=N`` signs them in;
ids ``bench-rater-0001`` ... in picker order), the study, roles, arms, cases, answers and the
instrument through the services; the protocol locked with a sealed seed; then the **bulk of the
ratings through ``rating_imports.import_ratings``** (the import of ratings collected elsewhere:
one Parquet file, validated, one transaction, ``store.insert_frame`` for the assignments,
presentations, ratings and current-rating pointers, with its ``assignments.persist`` and
``ratings.import`` audit events; the study's origin then reads "mixed"). By default the
benchmark leaves out the import's one ``rating.submit`` audit event per rated case (it replaces
``rating_imports._audit_values`` with a no-op for the build): those events cost about 5 ms each,
some 8 minutes for a million ratings on 2 cores, and the audit trail's integrity is not what is
measured here, so ``audit verify`` reports the bulk's ratings as unrecorded on such a database.
``--audited-import`` keeps them (a slow build after which ``audit verify`` holds). Then the raters' unrated assignments through ``design.persist_assignments`` (a simple
rotation: response order alternates by rater and case; not ``design_assignments``' balancing,
which is not what is measured here) and ``lifecycle.start_rating``. A million ratings through
``rating.submit_rating`` one by one would take hours; the import stores the same rows.

Runs, against ``streamlit run app.py`` (headless, 127.0.0.1, a free port, ``CLINVAL_DB`` the
database, ``CLINVAL_DEMO_ON_START=0``, ``CLINVAL_AUDIT_KEY_FILE`` a key file next to the database
in the temporary or cache folder, never in the project):

(a) ``--sessions`` (100) raters, each a distinct person and websocket session, started over the
    first think time; each reads a case for ``--think`` seconds (10; drawn uniformly from 0.5x to
    1.5x), then presses one option key per field with ``--key-gap`` seconds (0.3, also jittered)
    between presses, then submits; for ``--duration`` seconds (120). The rating sheet handles the
    option keys in the browser (``pages/components/rating_sheet.js``), so they send nothing to
    the server and are only waited for here. Rate-to-next-item = from sending the submit to the
    ``script_finished`` of the run that shows the next case; p50/p95/p99 and rates per second.
    Peak server memory: the largest ``VmHWM`` (peak resident set) of the server process in
    ``/proc/<pid>/status`` during this run.
(b) saturated: ``--saturated-sessions`` (20) other raters rate with no pause at all for
    ``--saturated-duration`` seconds (30); then, on a second server with the app's own
    ``.streamlit/config.toml``, a trivial page with five buttons (written into a temporary
    folder) gets the same number of sessions clicking buttons
    with no pause. Throughput is server round trips (script runs answered) per second: on the
    app each is a whole case rated and stored, on the trivial page a button click; the ratio is
    the app's over the trivial page's.
(c) the floor for the same work: a plain-SQL page (``FLOOR_PAGE``) on the same database, which
    stores a case's rows in one transaction and shows the next case with no check at all, driven
    saturated as in (b) by other raters: cases per second, and the app's over it.
(d) the same floor page under run (a)'s load: ``--sessions`` further raters, each pressing its
    one submit button after the think time plus (a)'s key gaps; its p95 case-to-next is the
    least that p95 can be on this stack and machine for this work (printed with the app's p95
    over it).

A submit is what the sheet's JavaScript sends on Enter: a ``rerun_script`` BackMsg whose
``ClientState`` carries the query string (``person=N``), the page's script hash, the fragment's
id (``Delta.fragment_id`` of the sheet's delta: the rating panel is an ``st.fragment``, so only
it reruns; ``--full-reruns`` sends none, and the whole page reruns), and a ``WidgetStates``
with one ``json_trigger_value`` on the sheet's trigger widget
(``$$STREAMLIT_INTERNAL_KEY_<element id>__events``): ``[{"event": "submit", "value": {token,
attempt, values, texts}}]``, the token and the fields read from the sheet's data in the last
run's ``new_element.bidi_component`` delta. A trivial page's click is a ``trigger_value=True``
for the button's id. Option values: a likert item gets a random value; other items the first
option (no harm, response A), which keeps the harm rules satisfied. A submit is acknowledged
when its run shows the "Saved." toast and the progress line moves to the next case.

After the runs the app server is stopped (DuckDB allows one process) and the stored rows are
counted: per rater, assignments newly done against submits acknowledged: ``lost`` = acknowledged
but not stored, ``duplicated`` = stored beyond what was acknowledged (less submits whose answer
never came, which are printed as ``unconfirmed``); and 11 rating rows per new done assignment.

The benchmark client runs in this process on the same machine (asyncio, the ``websockets``
package that Streamlit itself depends on), so it competes with the server for the CPU, as any
load generator on one machine does. Targets (issue 7): p95 <= 150 ms, throughput ratio >= 0.8,
lost = duplicated = 0, peak RSS <= 1024 MB with 100 sessions; (issue 23) app / floor page
throughput >= 0.8 (run (b) over run (c)) and app p95 <= 1.5x the floor page's (run (a) over run
(d)).

Usage: ``python benchmarks/bench_rating.py [--quick] [--db PATH] [--ratings N] [--sessions N]
[--think S] [--duration S] ...`` (``--help``). The last line is ``p95_ms=<x> throughput_ratio=<y>
lost=<n> duplicated=<m> peak_rss_mb=<z> app_floor_ratio=<a> p95_floor_ratio=<b>``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STUDY = "bench-rating"
RATER_PREFIX = "bench-rater-"
ROWS_PER_CASE = 11  # ayers_harm with two responses: 5 items x 2 responses + the preference
TRIVIAL_PAGE = '''"""Five buttons: the floor Streamlit itself sets (bench_rating.py)."""
import streamlit as st

st.title("Trivial")
clicks = st.session_state.setdefault("clicks", 0)
for i in range(5):
    if st.button(f"Button {i}", key=f"b-{i}"):
        st.session_state["clicks"] += 1
st.write(f"Clicks: {st.session_state['clicks']}")
'''
FLOOR_PAGE = '''"""The same work without Clinval: store a case's ratings, show the next case (bench_rating.py).

The statements are ``benchmarks/floor.py``'s (shared with profile_submit.py); this page serves
them through Streamlit as the rating screen does: one button press stores the case and shows the
next one.
"""
import os, sys, threading

import duckdb
import streamlit as st

sys.path.insert(0, os.environ["BENCH_FLOOR_DIR"])
import floor  # noqa: E402

STUDY = os.environ["BENCH_FLOOR_STUDY"]


@st.cache_resource
def db():
    conn = duckdb.connect(os.environ["CLINVAL_DB"])
    return conn, conn.execute(floor.ITEMS_SQL, [STUDY]).fetchall(), threading.Lock()


conn, items, lock = db()
rater = st.query_params.get("rater", "")


def submit():
    assignment, _, shown = st.session_state.pop("case")
    with lock:  # one writer at a time, as Clinval's store does
        floor.store_case(conn.cursor(), assignment, [p for p, _, _ in shown], items)


if "case" not in st.session_state:
    st.session_state["case"] = floor.next_case(conn.cursor(), STUDY, rater)
case = st.session_state["case"]
if case is None:
    st.write("Done.")
else:
    st.markdown(case[1])
    for column, (_, label, text) in zip(st.columns(len(case[2])), case[2]):
        column.markdown(f"**{label}**")
        column.markdown(text)
    st.button("Submit", key="b-submit", on_click=submit)
'''
"""The floor page: the rating screen's per-case work reduced to its SQL (run (c))."""

TARGETS = {
    "p95_ms": 150.0,
    "throughput_ratio": 0.8,
    "lost": 0,
    "duplicated": 0,
    "rss": 1024.0,
    # issue 23: against the floor page doing the same writes (runs (c) and (d))
    "app_floor_ratio": 0.8,
    "p95_floor_ratio": 1.5,
}


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


# --- the database ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    ratings: int
    raters: int
    pending: int

    @property
    def done_per_rater(self) -> int:
        return max(1, math.ceil(self.ratings / ROWS_PER_CASE / self.raters))

    @property
    def cases(self) -> int:
        # each rater rates consecutive cases (mod n) from an offset: no case twice per rater
        return max(420, self.done_per_rater + self.pending + 10)


def build_database(db: Path, layout: Layout, folder: Path, *, audited: bool = False) -> None:
    """The study described in the module docstring, in a new database file ``db``.

    ``audited``: keep the import's ``rating.submit`` event per rated case (about 5 ms each, so
    some 8 minutes for a million ratings on a small machine); without it those events are left
    out and ``audit verify`` reports the imported ratings as unrecorded.
    """
    from study.access import system_caller
    from study.instruments import get_builtin
    from study.services import (
        content,
        design,
        instrument_library,
        lifecycle,
        people,
        rating_imports,
        studies,
    )
    from study.store import Store

    demo = ROOT / "data" / "demo"
    cases_in = [json.loads(line) for line in (demo / "cases.jsonl").read_text().splitlines()]
    answers_in = [json.loads(line) for line in (demo / "answers.jsonl").read_text().splitlines()]
    by_case: dict[str, dict[str, dict]] = {}
    for a in answers_in:
        by_case.setdefault(a["case_id"], {})[a["arm_id"]] = a
    n_cases = layout.cases
    cases, answers = [], []
    for i in range(n_cases):
        src = cases_in[i % len(cases_in)]
        case_id = f"bench-{i:05d}"
        cases.append({**src, "case_id": case_id, "tags": ["synthetic", "benchmark"]})
        for arm, answer in by_case[src["case_id"]].items():
            answers.append({**answer, "answer_id": f"{case_id}-{arm}", "case_id": case_id})
    arms_csv = (demo / "arms.csv").read_text()

    def jsonl(name: str, rows: list[dict]) -> Path:
        path = folder / name
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return path

    started = time.perf_counter()
    store = Store(db)
    try:
        builder = system_caller("demo")
        rater_ids = [f"{RATER_PREFIX}{n:04d}" for n in range(1, layout.raters + 1)]
        for user_id in rater_ids:
            people.ensure_user(
                store,
                builder,
                issuer=people.DEMO_ISSUER,
                subject=user_id,
                email=f"{user_id}@bench.clinval.example",
                display_name=f"Bench rater {user_id[-4:]} (synthetic)",
                user_id=user_id,
            )
        studies.create_study(
            store, builder, "Rating benchmark (synthetic)", study_id=STUDY, synthetic=True
        )
        for user_id in rater_ids:
            people.grant_role(store, builder, STUDY, user_id, "rater")
        (folder / "arms.csv").write_text(arms_csv)
        content.import_arms(store, builder, STUDY, folder / "arms.csv")
        content.import_cases(store, builder, STUDY, jsonl("cases.jsonl", cases))
        content.import_answers(store, builder, STUDY, jsonl("answers.jsonl", answers))
        instrument = get_builtin("ayers_harm")
        key, version = instrument_library.add_instrument(store, builder, instrument)
        instrument_library.attach_instrument(store, builder, STUDY, key, version)
        protocol = {
            "title": "Rating benchmark (synthetic)",
            "instrument": {"key": key, "version": version},
            "primary_endpoint": {"item": "quality", "margin": 0.5},
        }
        design.lock_protocol(store, builder, STUDY, protocol, seed=20260601)
        log(f"study, people and content stored ({time.perf_counter() - started:.1f} s)")

        # the bulk: ratings collected "elsewhere", imported in one transaction
        ratings_file = folder / "ratings.parquet"
        frame = _ratings_frame(layout, rater_ids)
        frame.write_parquet(ratings_file)
        log(f"importing {frame.height:,} ratings through rating_imports.import_ratings ...")
        t = time.perf_counter()
        if audited:
            stored = rating_imports.import_ratings(store, builder, STUDY, ratings_file)
        else:
            kept = rating_imports._audit_values
            rating_imports._audit_values = lambda *args, **kwargs: None
            try:
                stored = rating_imports.import_ratings(store, builder, STUDY, ratings_file)
            finally:
                rating_imports._audit_values = kept
        log(f"imported: {stored} ({time.perf_counter() - t:.1f} s)")

        # the raters' unrated assignments, after the imported ones in their queues
        done = layout.done_per_rater
        rows, shown = [], []
        for r, rater in enumerate(rater_ids):
            for j in range(layout.pending):
                c = (r * 7 + done + j) % n_cases
                key_ = f"{rater}:{c}"
                rows.append((key_, f"bench-{c:05d}", rater, done + j + 1))
                first = ("clinician", "llm_a") if (r + j) % 2 else ("llm_a", "clinician")
                for pos, arm in enumerate(first, start=1):
                    shown.append((key_, f"bench-{c:05d}-{arm}", pos, f"Response {'AB'[pos - 1]}"))
        assignments = pl.DataFrame(
            rows,
            schema={
                "assignment_id": pl.String,
                "case_id": pl.String,
                "rater_id": pl.String,
                "queue_position": pl.Int32,
            },
            orient="row",
        ).with_columns(pl.lit("bench-rotation").alias("algorithm"))
        presentations = pl.DataFrame(
            shown,
            schema={
                "assignment_id": pl.String,
                "answer_id": pl.String,
                "position": pl.Int32,
                "label": pl.String,
            },
            orient="row",
        )
        t = time.perf_counter()
        design.persist_assignments(store, builder, STUDY, assignments, presentations)
        lifecycle.start_rating(store, builder, STUDY)
        log(
            f"{assignments.height:,} unrated assignments stored and rating opened "
            f"({time.perf_counter() - t:.1f} s)"
        )
    finally:
        store.close()


def _ratings_frame(layout: Layout, rater_ids: list[str]) -> pl.DataFrame:
    """The imported ratings: per rater ``done_per_rater`` consecutive cases, 11 rows each."""
    rng = np.random.default_rng(7)
    done = layout.done_per_rater
    n_raters = len(rater_ids)
    r_idx = np.repeat(np.arange(n_raters), done)
    c_idx = (r_idx * 7 + np.tile(np.arange(done), n_raters)) % layout.cases
    n = r_idx.size
    case = np.array([f"bench-{c:05d}" for c in range(layout.cases)])[c_idx]
    rater = np.array(rater_ids)[r_idx]
    seconds = np.round(rng.uniform(20, 120, n), 1)
    parts = [
        pl.DataFrame(
            {
                "case_id": case,
                "rater_id": rater,
                "item": "better_response",
                "value": rng.choice(np.array(["A", "B", "tie"]), n),
                "arm_id": None,
                "seconds": seconds,
            },
            schema_overrides={"arm_id": pl.String},
        )
    ]
    for arm in ("clinician", "llm_a"):
        harm = rng.random(n) < 0.08
        values = {
            "quality": rng.integers(1, 6, n),
            "empathy": rng.integers(1, 6, n),
            "harm_extent": np.where(harm, rng.integers(1, 3, n), 0),
            "harm_likelihood": np.where(harm, rng.integers(0, 3, n), 0),
            "could_cause_harm": harm.astype(int),
        }
        for item, vals in values.items():
            parts.append(
                pl.DataFrame(
                    {
                        "case_id": case,
                        "rater_id": rater,
                        "item": item,
                        "value": vals.astype(str),
                        "arm_id": arm,
                        "seconds": seconds,
                    }
                )
            )
    return pl.concat(parts)


def pick_raters(db: Path, wanted: int, pending_min: int) -> tuple[list[str], dict[str, int], int]:
    """(the ``wanted`` raters with the most unrated assignments, in picker order, the picker's
    ``?person=`` place of every demo person, rating rows stored). Read before a server starts."""
    from study.services import people
    from study.store import Store

    with Store(db, read_only=True) as store:
        places = {uid: n + 1 for n, uid in enumerate(people.demo_people(store).get_column("id"))}
        left = store.read(
            "SELECT rater, count(*) FILTER (WHERE NOT done) AS todo FROM assignments"
            " WHERE study = $s GROUP BY rater ORDER BY todo DESC, rater",
            {"s": STUDY},
        )
        rows = store.read("SELECT count(*) AS n FROM ratings").item()
    chosen = left.filter(pl.col("todo") >= pending_min).head(wanted)
    if chosen.height < wanted:
        raise SystemExit(
            f"The database has {chosen.height} raters with at least {pending_min} unrated cases "
            f"left; {wanted} are needed. Build a new one (another --db, or more --raters)."
        )
    return chosen.get_column("rater").to_list(), places, rows


def done_counts(db: Path, raters: list[str]) -> tuple[dict[str, int], int, int]:
    """(done assignments per rater, rating rows stored, rating rows of revision > 1)."""
    from study.store import Store

    with Store(db, read_only=True) as store:
        done = dict(
            store.read(
                "SELECT rater, count(*) FILTER (WHERE done) AS n FROM assignments"
                " WHERE study = $s GROUP BY rater",
                {"s": STUDY},
            ).iter_rows()
        )
        rows = store.read("SELECT count(*) AS n FROM ratings").item()
        revised = store.read("SELECT count(*) AS n FROM ratings WHERE revision > 1").item()
    return {r: int(done.get(r, 0)) for r in raters}, int(rows), int(revised)


# --- servers -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``streamlit run <script>`` on 127.0.0.1 and a free port; ``stop()`` ends it (its own
    process group, by its id)."""

    def __init__(self, script: Path, cwd: Path, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.url = f"http://127.0.0.1:{self.port}"
        with open(log_path, "wb") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "streamlit",
                    "run",
                    str(script),
                    "--server.port",
                    str(self.port),
                    "--server.address",
                    "127.0.0.1",
                    "--server.headless",
                    "true",
                    "--server.fileWatcherType",
                    "none",
                    "--server.runOnSave",
                    "false",
                    "--browser.gatherUsageStats",
                    "false",
                ],
                cwd=cwd,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _SERVERS.append(self)

    def wait_healthy(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"streamlit exited with {self.process.returncode}: {self.tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                    if r.read().decode().strip() == "ok":
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.url} was not healthy within {timeout:.0f} s")

    def status_kb(self, field_name: str) -> int:
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    def tail(self, n: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-n:]

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        if self in _SERVERS:
            _SERVERS.remove(self)


_SERVERS: list[Server] = []


# --- the websocket client ----------------------------------------------------------------------

RUN_TIMEOUT = 60.0


@dataclass
class RunResult:
    seconds: float
    status: int
    buttons: dict[str, tuple[str, str]]  # user key -> (widget id, fragment id)
    progress: str | None
    toasts: list[str]
    errors: list[str]
    lines: list[str]  # markdown bodies
    sheet: dict | None = None  # the rating sheet's data, as its element carried it


class Session:
    """One browser tab, as far as the server can tell: a websocket on ``/_stcore/stream``."""

    def __init__(self, url: str, query: str, full_reruns: bool = False) -> None:
        self.ws_url = url.replace("http://", "ws://") + "/_stcore/stream"
        self.query = query
        self.page_hash = ""
        self.full_reruns = full_reruns
        self.ws = None
        self.buttons: dict[str, tuple[str, str]] = {}
        self.sheet: tuple[str, str] | None = None  # (element id, fragment id) of the sheet

    async def connect(self) -> None:
        import websockets

        self.ws = await websockets.connect(
            self.ws_url, subprotocols=["streamlit"], max_size=None, open_timeout=60,
            ping_interval=None, close_timeout=2,
        )  # fmt: skip

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()

    async def run(self, press: str | None = None, submit: dict | None = None) -> RunResult:
        """Send one rerun (a press of the button with user key ``press``, the sheet's
        ``submit`` trigger with the payload ``submit``, or a plain load) and read until its
        ``script_finished``."""
        from streamlit.proto.BackMsg_pb2 import BackMsg
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        msg = BackMsg()
        state = msg.rerun_script
        state.query_string = self.query
        state.page_script_hash = self.page_hash
        fragment_id = ""
        if press is not None:
            widget_id, fragment_id = self.buttons[press]
            widget = state.widget_states.widgets.add()
            widget.id = widget_id
            widget.trigger_value = True
        elif submit is not None:
            # what the sheet's JavaScript sends on Enter: one trigger event on the element
            sheet_id, fragment_id = self.sheet
            # the element's own (empty) state travels with every rerun the browser sends;
            # Streamlit reads the trigger's payload through it
            base = state.widget_states.widgets.add()
            base.id = sheet_id
            base.json_value = "{}"
            widget = state.widget_states.widgets.add()
            widget.id = f"$$STREAMLIT_INTERNAL_KEY_{sheet_id}__events"
            widget.json_trigger_value = json.dumps([{"event": "submit", "value": submit}])
        if fragment_id and not self.full_reruns:
            state.fragment_id = fragment_id
        started = time.perf_counter()
        await self.ws.send(msg.SerializeToString())
        buttons: dict[str, tuple[str, str]] = {}
        progress, toasts, errors, lines, sheet = None, [], [], [], None
        while True:
            data = await asyncio.wait_for(self.ws.recv(), RUN_TIMEOUT)
            fwd = ForwardMsg()
            fwd.ParseFromString(data)
            kind = fwd.WhichOneof("type")
            if kind == "new_session":
                self.page_hash = fwd.new_session.page_script_hash or self.page_hash
            elif kind == "delta" and fwd.delta.WhichOneof("type") == "new_element":
                element = fwd.delta.new_element
                which = element.WhichOneof("type")
                if which == "button":
                    user_key = element.button.id.split("-", 2)[-1]
                    buttons[user_key] = (element.button.id, fwd.delta.fragment_id)
                elif which == "progress":
                    progress = element.progress.text
                elif which == "toast":
                    toasts.append(element.toast.body)
                elif which == "alert" and element.alert.format == 1:  # ERROR
                    errors.append(element.alert.body)
                elif which == "exception":
                    errors.append(f"{element.exception.type}: {element.exception.message}")
                elif which == "markdown":
                    lines.append(element.markdown.body)
                elif which == "bidi_component":
                    self.sheet = (element.bidi_component.id, fwd.delta.fragment_id)
                    sheet = json.loads(element.bidi_component.bytes or b"null")
            elif kind == "script_finished":
                seconds = time.perf_counter() - started
                if fwd.script_finished == ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY:
                    # the fragments that ran replaced their elements; the rest of the page stays
                    ran = set(fwd.metadata.run.fragment_ids) | {f for _, f in buttons.values()}
                    kept = {k: v for k, v in self.buttons.items() if v[1] not in ran}
                    self.buttons = kept | buttons
                else:
                    self.buttons = buttons
                if sheet is None and fwd.script_finished != (
                    ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY
                ):
                    self.sheet = None
                return RunResult(
                    seconds, fwd.script_finished, buttons, progress, toasts, errors, lines, sheet
                )


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)  # submit -> next case shown
    clicks: int = 0
    click_seconds: list[float] = field(default_factory=list)
    acked: dict[str, int] = field(default_factory=dict)
    unconfirmed: dict[str, int] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    first_loads: list[float] = field(default_factory=list)
    fragment_runs: int = 0
    full_runs: int = 0


def _case_number(progress: str | None) -> int | None:
    if progress and progress.startswith("Case "):
        with contextlib.suppress(ValueError, IndexError):
            return int(progress.split()[1])
    return None


async def rater_session(
    url: str,
    rater: str,
    place: int,
    stats: Stats,
    *,
    deadline: float,
    think: float,
    key_gap: float,
    start_delay: float,
    full_reruns: bool,
    seed: int,
) -> None:
    """One rater: load the page, then rate case after case until ``deadline``."""
    rng = random.Random(seed)
    await asyncio.sleep(start_delay)
    session = Session(url, f"person={place}", full_reruns)
    in_flight = False  # a submit sent whose answer has not come (timed out or cancelled)
    stats.acked.setdefault(rater, 0)
    try:
        await session.connect()
        shown = await session.run()
        stats.first_loads.append(shown.seconds)
        if shown.sheet is None:
            stats.failures.append(
                f"{rater}: no rating sheet on the first load ({shown.errors or shown.progress})"
            )
            return
        while time.monotonic() < deadline:
            if think:
                await _pause(think * rng.uniform(0.5, 1.5), deadline)
            # the keys: one per field, handled in the browser (no message to the server)
            fields = shown.sheet["fields"]
            if key_gap:
                await _pause(sum(key_gap * rng.uniform(0.5, 1.5) for _ in fields), deadline)
            if time.monotonic() >= deadline:
                break
            values = {
                str(n): (
                    rng.choice(f["options"])["value"]
                    if f["type"] == "likert"
                    else f["options"][0]["value"]
                )
                for n, f in enumerate(fields)
            }
            payload = {
                "token": shown.sheet["token"],
                "attempt": shown.sheet["attempt"],
                "values": values,
                "texts": {},
            }
            before = _case_number(shown.progress)
            in_flight = True
            try:
                result = await _press(session, None, stats, submit=payload)
            except TimeoutError:
                stats.failures.append(f"{rater}: no answer to a submit within {RUN_TIMEOUT:.0f} s")
                return
            in_flight = False
            after = _case_number(result.progress)
            if "Saved." in result.toasts:
                stats.acked[rater] += 1
                stats.latencies.append(result.seconds)
                if before is not None and after is not None and after != before + 1:
                    stats.failures.append(f"{rater}: saved, but case {before} -> {after}")
            else:
                problems = (result.sheet or {}).get("problems")
                stats.refused.append(f"{rater}: {problems or result.errors or result.progress}")
                return
            shown = result
            if shown.sheet is None:
                return  # queue done
    except TimeoutError:
        stats.failures.append(f"{rater}: a run took longer than {RUN_TIMEOUT:.0f} s")
    except Exception as error:  # noqa: BLE001 - reported, never hidden
        stats.failures.append(f"{rater}: {type(error).__name__}: {error}")
    finally:
        if in_flight:
            stats.unconfirmed[rater] = stats.unconfirmed.get(rater, 0) + 1
        await session.close()


async def _pause(seconds: float, deadline: float) -> None:
    """Sleep, but not past the deadline (a session stops within one press of it)."""
    await asyncio.sleep(max(0.0, min(seconds, deadline - time.monotonic())))


async def _press(
    session: Session, key: str | None, stats: Stats, *, submit: dict | None = None
) -> RunResult:
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    result = await session.run(key, submit)
    stats.clicks += 1
    stats.click_seconds.append(result.seconds)
    if result.status == ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY:
        stats.fragment_runs += 1
    else:
        stats.full_runs += 1
    return result


async def trivial_session(
    url: str,
    stats: Stats,
    *,
    deadline: float,
    seed: int,
    query: str = "",
    keys: int = 5,
    think: float = 0.0,
    start_delay: float = 0.0,
) -> None:
    """Click the page's buttons (``b-0`` ... or, with ``keys=0``, ``b-submit``): with no pause,
    or after ``think`` seconds (drawn from 0.5x to 1.5x) each, starting after ``start_delay``."""
    rng = random.Random(seed)
    session = Session(url, query)
    try:
        await _pause(start_delay, deadline)
        await session.connect()
        first = await session.run()
        stats.first_loads.append(first.seconds)
        while time.monotonic() < deadline:
            if think:
                await _pause(think * rng.uniform(0.5, 1.5), deadline)
                if time.monotonic() >= deadline:
                    return
            result = await _press(
                session, f"b-{rng.randrange(keys)}" if keys else "b-submit", stats
            )
            if not keys and "b-submit" not in result.buttons:
                return  # the floor page's rater has no case left
    except Exception as error:  # noqa: BLE001
        stats.failures.append(f"trivial: {type(error).__name__}: {error}")
    finally:
        await session.close()


async def drive(sessions: list, deadline: float, poll=None) -> None:
    """Run the session coroutines; ``poll()`` every 0.5 s meanwhile; progress every 10 s."""
    tasks = [asyncio.ensure_future(s) for s in sessions]
    last = time.monotonic()
    hard_stop = deadline + 2 * RUN_TIMEOUT
    # Ctrl-C (or SIGTERM) while the sessions run: stop them, then stop the servers (main)
    loop = asyncio.get_running_loop()
    interrupted = asyncio.Event()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        loop.add_signal_handler(sig, interrupted.set)
    try:
        await _watch(tasks, deadline, hard_stop, interrupted, poll, last)
    finally:
        for sig, handler in previous.items():
            loop.remove_signal_handler(sig)
            signal.signal(sig, handler)
    await asyncio.gather(*tasks, return_exceptions=True)
    if interrupted.is_set():
        raise KeyboardInterrupt


async def _watch(tasks, deadline, hard_stop, interrupted, poll, last) -> None:
    while not all(t.done() for t in tasks):
        await asyncio.sleep(0.5)
        if interrupted.is_set():
            for t in tasks:
                t.cancel()
            return
        if poll is not None:
            poll()
        now = time.monotonic()
        if now - last >= 10:
            last = now
            left = max(0, deadline - now)
            log(f"  ... {sum(not t.done() for t in tasks)} sessions running, {left:.0f} s left")
        if now > hard_stop:
            for t in tasks:
                t.cancel()
            return


# --- reporting ---------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values) * 1000, q)) if values else float("nan")


def verdict(ok: bool) -> str:
    return "pass" if ok else "MISS"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="See the module docstring for what is built, driven and counted.",
    )  # fmt: skip
    parser.add_argument("--ratings", type=int, default=1_000_000, help="rating rows stored")
    parser.add_argument("--raters", type=int, default=300, help="raters holding them")
    parser.add_argument("--pending", type=int, default=150, help="unrated cases per rater")
    parser.add_argument("--db", type=Path, help="cache: reuse this database, or build it here")
    parser.add_argument("--sessions", type=int, default=100, help="sessions of run (a)")
    parser.add_argument("--think", type=float, default=10.0, help="seconds per case, run (a)")
    parser.add_argument("--key-gap", type=float, default=0.3, help="seconds between key presses")
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of run (a)")
    parser.add_argument("--saturated-sessions", type=int, default=20)
    parser.add_argument("--saturated-duration", type=float, default=30.0)
    parser.add_argument(
        "--full-reruns", action="store_true", help="send no fragment id: every press reruns all"
    )
    parser.add_argument(
        "--audited-import",
        action="store_true",
        help="build with a rating.submit audit event per imported case (slow; audit verify holds)",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.ratings = min(args.ratings, 22_000)
        args.raters, args.pending = 30, 40
        args.sessions, args.think, args.key_gap, args.duration = 4, 0.5, 0.0, 12.0
        args.saturated_sessions, args.saturated_duration = 2, 5.0
    args.raters = max(args.raters, 2 * (args.sessions + args.saturated_sessions))

    with tempfile.TemporaryDirectory(prefix="bench-rating-") as tmp:
        folder = Path(tmp)
        db = args.db.expanduser().resolve() if args.db else folder / "bench.duckdb"
        key_file = db.with_name(db.name + ".audit.key")
        os.environ["CLINVAL_AUDIT_KEY_FILE"] = str(key_file)
        layout = Layout(args.ratings, args.raters, args.pending)

        def terminate(signum, frame) -> None:  # noqa: ARG001
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, terminate)  # SIGTERM too stops the servers on its way out
        try:
            return _run(args, folder, db, key_file, layout)
        except KeyboardInterrupt:
            log("interrupted: stopping the servers")
            return 130
        finally:
            for server in list(_SERVERS):
                server.stop()


def page_server(folder: Path, name: str, script: str, env: dict[str, str]) -> Server:
    """Serve ``script`` as ``<folder>/<name>/<name>.py`` (log ``<folder>/<name>.log``) with the
    app's own ``.streamlit/config.toml`` (no garbage collection after every run, no file
    watcher), so that it differs from the app only in the script it runs; wait until healthy."""
    page = folder / name / f"{name}.py"
    (page.parent / ".streamlit").mkdir(parents=True)
    page.write_text(script)
    (page.parent / ".streamlit" / "config.toml").write_text(
        (ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    server = Server(page, page.parent, env, folder / f"{name}.log")
    server.wait_healthy()
    return server


def _run(args, folder: Path, db: Path, key_file: Path, layout: Layout) -> int:
    if db.exists():
        log(f"reusing {db}")
    else:
        log(
            f"building {db.name}: {layout.ratings:,} ratings over {layout.raters} raters, "
            f"{layout.pending} unrated cases each ..."
        )
        t = time.perf_counter()
        db.parent.mkdir(parents=True, exist_ok=True)
        build_database(db, layout, folder, audited=args.audited_import)
        log(f"built in {time.perf_counter() - t:.1f} s")
    wanted = args.sessions + args.saturated_sessions
    # the floor page's runs (c) and (d) get raters of their own, after the app's
    raters, places, rows_before = pick_raters(
        db, wanted + args.saturated_sessions + args.sessions, pending_min=20
    )
    floor_raters = raters[wanted : wanted + args.saturated_sessions]
    floor_load_raters, raters = raters[wanted + args.saturated_sessions :], raters[:wanted]
    before, _, revised_before = done_counts(db, raters)
    log(f"database: {rows_before:,} rating rows; {wanted} raters picked for the sessions")

    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINVAL_")}
    env |= {
        "CLINVAL_DB": str(db),
        "CLINVAL_DEMO_ON_START": "0",
        "CLINVAL_AUDIT_KEY_FILE": str(key_file),
    }
    app = Server(ROOT / "app.py", ROOT, env, folder / "app.log")
    app.wait_healthy()
    log(f"app serving at {app.url} (pid {app.process.pid})")

    # (a) many sessions with think time
    stats_a = Stats()
    peak_kb = [0]

    def poll() -> None:
        peak_kb[0] = max(peak_kb[0], app.status_kb("VmHWM"), app.status_kb("VmRSS"))

    log(
        f"(a) {args.sessions} sessions, think {args.think:g} s, key gap {args.key_gap:g} s, "
        f"{args.duration:g} s ..."
    )
    t0, cpu0 = time.monotonic(), time.process_time()
    deadline = t0 + args.duration
    spread = max(args.think, 1.0)
    asyncio.run(
        drive(
            [
                rater_session(
                    app.url, rater, places[rater], stats_a, deadline=deadline, think=args.think,
                    key_gap=args.key_gap, start_delay=spread * n / max(args.sessions, 1),
                    full_reruns=args.full_reruns, seed=n,
                )
                for n, rater in enumerate(raters[: args.sessions])
            ],
            deadline,
            poll,
        )
    )  # fmt: skip
    poll()
    elapsed_a = time.monotonic() - t0
    client_cpu_a = time.process_time() - cpu0
    peak_rss_mb = peak_kb[0] / 1024
    done_a = sum(stats_a.acked.values())
    log(
        f"(a) {done_a} rates acknowledged in {elapsed_a:.1f} s ({done_a / elapsed_a:.2f}/s), "
        f"{stats_a.clicks} presses ({stats_a.fragment_runs} fragment runs, "
        f"{stats_a.full_runs} full runs); first load p50 {pct(stats_a.first_loads, 50):.0f} ms, "
        f"max {pct(stats_a.first_loads, 100):.0f} ms"
    )

    # (b) saturated: the app, then the trivial page
    log(f"(b) app saturated: {args.saturated_sessions} sessions, {args.saturated_duration:g} s ...")
    stats_b = Stats()
    t0 = time.monotonic()
    deadline = t0 + args.saturated_duration
    asyncio.run(
        drive(
            [
                rater_session(
                    app.url, rater, places[rater], stats_b, deadline=deadline, think=0.0,
                    key_gap=0.0, start_delay=0.0, full_reruns=args.full_reruns, seed=1000 + n,
                )
                for n, rater in enumerate(raters[args.sessions : wanted])
            ],
            deadline,
        )
    )  # fmt: skip
    # clicks are counted from the first answered press to the deadline: connect and first load
    # are not clicks
    elapsed_b = time.monotonic() - t0
    app_cps = stats_b.clicks / elapsed_b
    log(
        f"(b) app: {stats_b.clicks} presses in {elapsed_b:.1f} s = {app_cps:.1f} clicks/s, "
        f"{sum(stats_b.acked.values())} rates"
    )
    app.stop()
    app_log = (folder / "app.log").read_text(errors="replace")
    # what the app stored, counted before the floor page (c) writes for its own raters
    after, rows_after, revised_after = done_counts(db, raters)

    trivial = page_server(folder, "trivial", TRIVIAL_PAGE, env)
    log(f"(b) trivial page: {args.saturated_sessions} sessions, {args.saturated_duration:g} s ...")
    stats_t = Stats()
    t0 = time.monotonic()
    deadline = t0 + args.saturated_duration
    asyncio.run(
        drive(
            [
                trivial_session(trivial.url, stats_t, deadline=deadline, seed=n)
                for n in range(args.saturated_sessions)
            ],
            deadline,
        )
    )
    elapsed_t = time.monotonic() - t0
    trivial.stop()
    trivial_cps = stats_t.clicks / elapsed_t
    log(f"(b) trivial: {stats_t.clicks} clicks in {elapsed_t:.1f} s = {trivial_cps:.1f} clicks/s")

    # (c) the floor for the same work: the case's rows stored and the next case shown, in SQL
    floor = page_server(
        folder,
        "floor",
        FLOOR_PAGE,
        env | {"BENCH_FLOOR_DIR": str(ROOT / "benchmarks"), "BENCH_FLOOR_STUDY": STUDY},
    )
    log(f"(c) floor page: {len(floor_raters)} sessions, {args.saturated_duration:g} s ...")
    stats_f = Stats()
    t0 = time.monotonic()
    deadline = t0 + args.saturated_duration
    asyncio.run(
        drive(
            [
                trivial_session(
                    floor.url, stats_f, deadline=deadline, seed=n, query=f"rater={rater}", keys=0
                )
                for n, rater in enumerate(floor_raters)
            ],
            deadline,
        )
    )
    elapsed_f = time.monotonic() - t0
    floor_cps = stats_f.clicks / elapsed_f
    log(f"(c) floor: {stats_f.clicks} cases in {elapsed_f:.1f} s = {floor_cps:.1f} cases/s")

    # (d) the floor page under run (a)'s load: as many sessions, each case read for the think
    # time plus the key presses that (a)'s raters make in the browser
    floor_think = args.think + ROWS_PER_CASE * args.key_gap
    log(
        f"(d) floor page: {len(floor_load_raters)} sessions, think {floor_think:g} s, "
        f"{args.duration:g} s ..."
    )
    stats_d = Stats()
    t0 = time.monotonic()
    deadline = t0 + args.duration
    spread = max(floor_think, 1.0)
    asyncio.run(
        drive(
            [
                trivial_session(
                    floor.url, stats_d, deadline=deadline, seed=2000 + n, query=f"rater={rater}",
                    keys=0, think=floor_think, start_delay=spread * n / max(args.sessions, 1),
                )
                for n, rater in enumerate(floor_load_raters)
            ],
            deadline,
        )
    )  # fmt: skip
    elapsed_d = time.monotonic() - t0
    floor.stop()
    floor_log = (folder / "floor.log").read_text(errors="replace")
    log(f"(d) floor under load: {stats_d.clicks} cases in {elapsed_d:.1f} s")
    acked: dict[str, int] = {}
    unconfirmed: dict[str, int] = {}
    for stats in (stats_a, stats_b):
        for rater, n in stats.acked.items():
            acked[rater] = acked.get(rater, 0) + n
        for rater, n in stats.unconfirmed.items():
            unconfirmed[rater] = unconfirmed.get(rater, 0) + n
    stored = {r: after[r] - before[r] for r in raters}
    lost = sum(max(0, acked.get(r, 0) - stored[r]) for r in raters)
    duplicated = sum(max(0, stored[r] - acked.get(r, 0) - unconfirmed.get(r, 0)) for r in raters)
    new_rows = rows_after - rows_before
    total_acked = sum(acked.values())

    lat = stats_a.latencies
    p50, p95, p99 = pct(lat, 50), pct(lat, 95), pct(lat, 99)
    ratio = app_cps / trivial_cps if trivial_cps else float("nan")
    print()
    print(f"database: {rows_before:,} rating rows before, {rows_after:,} after")
    print(
        f"(a) {args.sessions} sessions, think {args.think:g} s: rate-to-next-item "
        f"p50 {p50:.0f} ms, p95 {p95:.0f} ms, p99 {p99:.0f} ms over {len(lat)} rates; "
        f"throughput {len(lat) / elapsed_a:.2f} rates/s; every press p50 "
        f"{pct(stats_a.click_seconds, 50):.0f} ms p95 {pct(stats_a.click_seconds, 95):.0f} ms"
    )
    print(
        f"(b) saturated, {args.saturated_sessions} sessions: app {app_cps:.1f} clicks/s "
        f"({sum(stats_b.acked.values()) / elapsed_b:.2f} rates/s, press p50 "
        f"{pct(stats_b.click_seconds, 50):.0f} ms), trivial page {trivial_cps:.1f} clicks/s "
        f"(p50 {pct(stats_t.click_seconds, 50):.0f} ms); ratio {ratio:.2f}"
    )
    print(
        f"stored: {sum(stored.values())} newly done assignments, {new_rows:,} new rating rows "
        f"(expected {ROWS_PER_CASE * sum(stored.values()):,}), revisions "
        f"{revised_after - revised_before}; acknowledged {total_acked}, unconfirmed "
        f"{sum(unconfirmed.values())}"
    )
    mode = "full reruns (no fragment id)" if args.full_reruns else "fragment reruns"
    print(f"presses sent as {mode}: {stats_a.fragment_runs + stats_b.fragment_runs} ran as "
          f"fragment runs, {stats_a.full_runs + stats_b.full_runs} as full runs")  # fmt: skip
    if not lat:
        print(
            "(a) no rate was completed within the run, so rate-to-next-item was not measured "
            "(printed as nan): every session was still filling its first case; a longer "
            "--duration lets some finish"
        )
    print(
        f"(c) floor for the same work (the case's rows stored in one transaction and the next "
        f"case shown, in plain SQL on the same database), {len(floor_raters)} sessions: "
        f"{floor_cps:.1f} cases/s (p50 {pct(stats_f.click_seconds, 50):.0f} ms); app / floor "
        f"{app_cps / floor_cps if floor_cps else float('nan'):.2f}; floor / trivial page "
        f"{floor_cps / trivial_cps if trivial_cps else float('nan'):.2f}"
    )
    floor_p95 = pct(stats_d.click_seconds, 95)
    print(
        f"(d) floor page under run (a)'s load, {len(floor_load_raters)} sessions, think "
        f"{floor_think:g} s: case-to-next p50 {pct(stats_d.click_seconds, 50):.0f} ms, p95 "
        f"{floor_p95:.0f} ms, p99 {pct(stats_d.click_seconds, 99):.0f} ms over "
        f"{stats_d.clicks} cases ({stats_d.clicks / elapsed_d:.2f}/s); app p95 / floor p95 "
        f"{p95 / floor_p95 if floor_p95 else float('nan'):.2f}"
    )
    if "Traceback" in floor_log:
        print("the floor page's log holds a traceback:\n" + floor_log[-2000:])
    problems = (
        stats_a.failures + stats_b.failures + stats_t.failures + stats_f.failures + stats_d.failures
    )
    refused = stats_a.refused + stats_b.refused
    if refused:
        print(f"submits not saved: {len(refused)}, e.g. {refused[:3]}")
    if problems:
        print(f"session failures: {len(problems)}, e.g. {problems[:5]}")
    if "Traceback" in app_log:
        print("the app's log holds a traceback:\n" + app_log[-2000:])
    print(f"server peak RSS during (a): {peak_rss_mb:.0f} MB; the benchmark client's own CPU "
          f"during (a): {client_cpu_a:.1f} s in {elapsed_a:.0f} s")  # fmt: skip
    print("targets:")
    print(f"  p95 rate-to-next-item <= {TARGETS['p95_ms']:.0f} ms: {p95:.0f} ms "
          f"{verdict(p95 <= TARGETS['p95_ms'])}")  # fmt: skip
    print(f"  throughput ratio >= {TARGETS['throughput_ratio']}: {ratio:.2f} "
          f"{verdict(ratio >= TARGETS['throughput_ratio'])}")  # fmt: skip
    print(f"  lost = 0: {lost} {verdict(lost == 0)}; duplicated = 0: {duplicated} "
          f"{verdict(duplicated == 0)}")  # fmt: skip
    print(f"  peak RSS <= {TARGETS['rss']:.0f} MB: {peak_rss_mb:.0f} MB "
          f"{verdict(peak_rss_mb <= TARGETS['rss'])}")  # fmt: skip
    app_floor = app_cps / floor_cps if floor_cps else float("nan")
    p95_floor = p95 / floor_p95 if floor_p95 else float("nan")
    print(f"  app / floor page >= {TARGETS['app_floor_ratio']}: {app_floor:.2f} "
          f"{verdict(app_floor >= TARGETS['app_floor_ratio'])}")  # fmt: skip
    print(f"  app p95 / floor page p95 <= {TARGETS['p95_floor_ratio']}: {p95_floor:.2f} "
          f"{verdict(p95_floor <= TARGETS['p95_floor_ratio'])}")  # fmt: skip
    print(
        f"p95_ms={p95:.0f} throughput_ratio={ratio:.2f} lost={lost} duplicated={duplicated} "
        f"peak_rss_mb={peak_rss_mb:.0f} app_floor_ratio={app_floor:.2f} "
        f"p95_floor_ratio={p95_floor:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
