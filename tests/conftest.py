"""Shared fixtures (a store, people, a draft study, a study in rating, the demo built once per
session and copied per test), and the CI rule that a skipped test is a failure."""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from study.access import Caller, system_caller
from study.instruments import Instrument, Item, Option
from study.services import content, design, lifecycle, people, studies
from study.services import instrument_library as instruments
from study.store import Store

_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # In CI a missing browser or server must not pass silently as a skip.
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"} and _skipped:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ARG001
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"} and _skipped:
        terminalreporter.write_line(
            f"CI=true: {len(_skipped)} skipped test(s) count as failures: "
            + ", ".join(_skipped[:10]),
            red=True,
        )


# --- the two-way bootstrap written out, for tests of analysis.noninferiority -----------------


def pigeonhole_by_loop(df: pl.DataFrame, *, boot: int, seed: int) -> np.ndarray:
    """The two-way (pigeonhole) bootstrap written out replicate by replicate, from its definition.

    Owen (2007), Ann Appl Stat 1:495-519: resample cases and raters independently with
    replacement; the replicate data are the ratings of every (drawn case, drawn rater) pair, with
    multiplicity. The statistic is the mean over drawn cases that have ratings in both arms of the
    difference of that case's arm means. Draws follow the order documented in
    analysis.noninferiority._pigeonhole_replicates: per replicate, the case indices then the rater
    indices (cases and raters numbered by first appearance).
    """
    cases = df["case"].unique(maintain_order=True).to_list()
    raters = df["rater"].unique(maintain_order=True).to_list()
    ratings: dict[tuple, list[float]] = {}
    for row in df.iter_rows(named=True):
        ratings.setdefault((row["case"], row["rater"], row["arm"]), []).append(row["value"])
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(boot):
        drawn_cases = rng.integers(0, len(cases), len(cases))
        drawn_raters = rng.integers(0, len(raters), len(raters))
        diffs = []
        for c in drawn_cases:
            pooled = {"llm": [], "doc": []}
            for r in drawn_raters:
                for a, values in pooled.items():
                    values.extend(ratings.get((cases[c], raters[r], a), []))
            if pooled["llm"] and pooled["doc"]:
                diffs.append(np.mean(pooled["llm"]) - np.mean(pooled["doc"]))
        out.append(float(np.mean(diffs)) if diffs else math.nan)
    return np.array(out)


# --- shared ground: a store, people, a draft study, a study in rating, the demo ----------------

ROOT = Path(__file__).resolve().parent.parent
"""The project folder."""

ISSUER = "https://idp.example"
"""The identity provider the tests' people signed in with."""

OPERATOR = system_caller("cli", "tests")
"""The command line's local operator: a named system actor, as ``python -m study`` acts."""

INSTRUMENT = Instrument(
    key="test_quality",
    version="1.0",
    title="Test quality",
    description="Made up for tests.",
    citation="",
    synthetic=True,
    items=(
        Item(
            key="quality",
            prompt="Quality?",
            type="likert",
            level="ordinal",
            direction="higher_is_better",
            options=tuple(Option(v, str(v)) for v in range(1, 6)),
        ),
        Item(
            key="better",
            prompt="Which is better?",
            type="pairwise_choice",
            level="nominal",
            direction="higher_is_better",
            scope="case",
            options=(Option("A", "A"), Option("B", "B"), Option("tie", "Tie")),
        ),
        Item(key="comment", prompt="Comment", type="free_text", level="none", required=False),
    ),
)
"""Quality per answer (Likert 1-5), a pairwise choice per case, an optional comment."""

CASES = [
    {"case_id": f"c{i}", "question": f"Question {i}?", "specialty": "gp", "tags": ["t"]}
    for i in range(1, 5)
]
ARMS = [
    {"arm_id": "clin", "kind": "clinician", "label": "Clinicians", "author_role": "GP"},
    {"arm_id": "llm", "kind": "llm", "label": "LLM", "model_name": "m", "model_version": "v1"},
]
RATERS = ("r1", "r2", "r3")


def answers_rows(author: str = "dr.who@example.org") -> list[dict]:
    """A clinician answer (by ``author``) and an LLM answer for every case in ``CASES``."""
    rows = []
    for case in CASES:
        rows.append(
            {
                "answer_id": f"{case['case_id']}-clin",
                "case_id": case["case_id"],
                "arm_id": "clin",
                "text": "Clinician answer.",
                "author_id": author,
            }
        )
        rows.append(
            {
                "answer_id": f"{case['case_id']}-llm",
                "case_id": case["case_id"],
                "arm_id": "llm",
                "text": "LLM answer.",
                "generated_at": "2026-01-02",
                "prompt": "Answer the patient.",
                "parameters": '{"temperature":0}',
            }
        )
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def full_values(quality_a: int = 4, quality_b: int = 3, better: str = "A") -> dict:
    """A complete submission for an assignment of the ``rating`` fixture."""
    return {"quality": {"Response A": quality_a, "Response B": quality_b}, "better": better}


def add_person(store: Store, user_id: str, **fields) -> str:
    """Record a person (as the operator) who signs in at ``ISSUER`` with subject ``user_id``."""
    return people.ensure_user(
        store, OPERATOR, issuer=ISSUER, subject=user_id, user_id=user_id, **fields
    )


def sign_in(store: Store, user_id: str) -> Caller:
    """The caller for a stored person, made the way the app makes it: by the sign-in step."""
    row = people.get_user(store, OPERATOR, user_id)
    return people.sign_in(store, issuer=row["issuer"], subject=row["subject"])


def picker_place(db: Path, user_id: str) -> str:
    """The demo picker's ``?person=`` value for ``user_id`` on the database ``db`` (the local
    operator is 0, then the demo's people by id)."""
    with Store(db) as s:
        ids = people.demo_people(s).get_column("id").to_list()
    return str(ids.index(user_id) + 1)


@pytest.fixture(scope="session", autouse=True)
def audit_key_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The audit key of every test database (``CLINVAL_AUDIT_KEY_FILE``), made on first use in a
    session folder, so that no test writes a key into the project's ``.streamlit`` folder."""
    path = tmp_path_factory.mktemp("secrets") / "clinval-audit.key"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CLINVAL_AUDIT_KEY_FILE", str(path))
        yield path


@pytest.fixture
def store(tmp_path: Path):
    """A migrated store on a real DuckDB file."""
    with Store(tmp_path / "clinval.duckdb") as s:
        yield s


def new_study(store: Store, name: str, **options) -> str:
    """A fresh draft study made by the operator, with ``coordinator`` as its coordinator;
    ``options`` as ``studies.create_study`` takes them."""
    add_person(store, "coordinator")
    study = studies.create_study(store, OPERATOR, name, **options)
    people.grant_role(store, OPERATOR, study, "coordinator", "coordinator")
    return study


def make_draft(store: Store, folder: Path) -> str:
    """A draft study "test-study" with cases, arms, answers (from files in ``folder``) and
    ``INSTRUMENT``; see the ``draft`` fixture."""
    for user_id in ("coordinator", "statistician", *RATERS):
        add_person(store, user_id)
    people.ensure_user(store, OPERATOR, issuer=ISSUER, subject="who", email="Dr.Who@example.org")
    study = studies.create_study(store, OPERATOR, "Test study", synthetic=True)
    people.grant_role(store, OPERATOR, study, "coordinator", "coordinator")
    people.grant_role(store, OPERATOR, study, "statistician", "statistician")
    for rater in RATERS:
        people.grant_role(store, OPERATOR, study, rater, "rater")
    coordinator = sign_in(store, "coordinator")
    content.import_arms(store, coordinator, study, write_jsonl(folder / "arms.jsonl", ARMS))
    content.import_cases(store, coordinator, study, write_jsonl(folder / "cases.jsonl", CASES))
    content.import_answers(
        store, coordinator, study, write_jsonl(folder / "answers.jsonl", answers_rows())
    )
    instruments.add_instrument(store, coordinator, INSTRUMENT)
    instruments.attach_instrument(store, coordinator, study, INSTRUMENT.key, INSTRUMENT.version)
    return study


def open_rating(store: Store, study: str) -> str:
    """Lock ``study`` (margin 0.5 on quality), assign 2 of r1-r3 per case (seed 42), start."""
    coordinator = sign_in(store, "coordinator")
    design.lock_protocol(store, coordinator, study, {"primary_item": "quality", "margin": 0.5})
    n = design.make_assignments(
        store, coordinator, study, raters=list(RATERS), raters_per_case=2, seed=42
    )
    assert n == 8
    lifecycle.start_rating(store, coordinator, study)
    return study


def attach_source_guess(store: Store, study: str):
    """Attach the built-in ``source_guess`` instrument ("who wrote this answer?") to the draft
    ``study`` beside its rating instrument, as its coordinator; return the instrument."""
    from study.instruments import get_builtin

    coordinator = sign_in(store, "coordinator")
    guess = get_builtin("source_guess")
    instruments.add_instrument(store, coordinator, guess)
    instruments.attach_instrument(store, coordinator, study, guess.key, guess.version)
    return guess


@pytest.fixture
def draft(store: Store, tmp_path: Path) -> str:
    """A draft study "test-study" with cases, arms, answers (from files) and ``INSTRUMENT``.

    People: ``coordinator`` (its coordinator), ``statistician``, raters r1-r3 (rater role),
    and ``who`` (Dr.Who@example.org, the clinician answers' author, no role). The operator
    creates the study and grants the roles; the coordinator imports and attaches.
    """
    return make_draft(store, tmp_path)


@pytest.fixture
def rating(store: Store, draft: str) -> str:
    """The draft study locked, assigned (2 raters per case, seed 42) and open for rating."""
    return open_rating(store, draft)


APP_TIMEOUT = 90  # the first start may build the demo study (a few seconds on 2 cores)


def run_app(monkeypatch: pytest.MonkeyPatch, db: Path, *, demo_on_start: str = "0"):
    """The app's first run through Streamlit's AppTest on the database ``db`` (closed by the
    caller first: one process, one connection)."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CLINVAL_DB", str(db))
    monkeypatch.setenv("CLINVAL_DEMO_ON_START", demo_on_start)
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=APP_TIMEOUT).run()


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo study (with its simulated ratings), built once per test session."""
    from study.demo import build_demo

    path = tmp_path_factory.mktemp("demo-template") / "demo.duckdb"
    with Store(path) as s:
        build_demo(s)
    return path


@pytest.fixture
def demo_db(demo_template: Path, tmp_path: Path) -> Path:
    """A private copy of the demo database file, for a test that changes it."""
    path = tmp_path / "demo.duckdb"
    shutil.copy(demo_template, path)
    return path


@pytest.fixture
def demo(demo_db: Path):
    """A store on a private copy of the demo database."""
    with Store(demo_db) as s:
        yield s


def screens_for(*roles: str) -> list[tuple[str, str]]:
    """(script, title) of the screens ``app.SCREENS`` opens for someone holding ``roles``, in
    menu order: read from app.py's source (importing it would run the app)."""
    import ast

    tree = ast.parse((ROOT / "app.py").read_text(encoding="utf-8"))
    (table,) = [
        node.value
        for node in tree.body
        if isinstance(node, ast.AnnAssign)
        and isinstance(node.target, ast.Name)
        and node.target.id == "SCREENS"
    ]
    screens = []
    for row in table.elts:
        script, title = row.elts[0].value, row.elts[1].value
        allowed = {c.value for c in ast.walk(row.elts[3]) if isinstance(c, ast.Constant)}
        if allowed & set(roles):
            screens.append((script, title))
    return screens
