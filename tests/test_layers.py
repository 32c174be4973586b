"""The layering rules from STYLE.md, checked on the source with ``ast`` (nothing is imported).

- ``study/`` and ``analysis/`` never import streamlit (the core must run without a UI).
- ``analysis/`` never imports duckdb (statistics take frames, not connections) nor ``study``
  (the library at the bottom knows nothing of the application above it).
- ``study`` reaches ``analysis`` only through ``study/services/analyses.py``.
- A person's ``Caller`` is minted only by the sign-in step (``study/services/people.py``, and
  ``study/services/tokens.py`` for a personal access token at the command line).
- ``app.py`` and ``pages/`` hold no SQL: they import neither duckdb nor (pages) ``study.store``,
  call no store or connection method that runs SQL, and hold no string literal written as a SQL
  statement (this codebase writes SQL keywords in capitals, so prose such as "Select a study"
  is not mistaken for SQL). They call ``study.services`` instead.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SQL_STATEMENT = re.compile(
    r"\b(SELECT\b.+\bFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|"
    r"CREATE\s+(OR\s+REPLACE\s+)?(TABLE|VIEW|INDEX|SEQUENCE)|DROP\s+(TABLE|VIEW)|ALTER\s+TABLE|"
    r"WITH\s+\w+\s+AS\s*\()",
    re.DOTALL,  # case-sensitive on purpose: SQL is written in capitals here, prose is not
)
SQL_RUNNING_METHODS = frozenset(
    {"execute", "executemany", "sql", "query", "read", "cursor", "transaction", "register"}
)
"""Methods of ``Store`` and DuckDB connections that run SQL; pages call services instead."""


def _py_files(*parts: str) -> list[Path]:
    files: list[Path] = []
    for part in parts:
        path = ROOT / part
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(sorted(path.rglob("*.py")))
    return files


def imported_roots(source: str) -> set[str]:
    """Top-level package names imported anywhere in ``source`` (also inside functions)."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            roots.add(node.args[0].value.split(".")[0])
    return roots


def imported_modules(source: str) -> set[str]:
    """Dotted names of absolute imports (``from a.b import c`` gives ``a.b`` and ``a.b.c``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def sql_literals(source: str) -> list[str]:
    """String constants in ``source`` written as SQL statements."""
    return [
        node.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and SQL_STATEMENT.search(node.value)
    ]


def sql_calls(source: str) -> list[str]:
    """SQL-running methods called in ``source`` (``store.read(...)``, ``cur.execute(...)``)."""
    return [
        node.func.attr
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in SQL_RUNNING_METHODS
    ]


# The checkers themselves must be able to fail: each is run on snippets that break the rule.
@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("import streamlit as st", {"streamlit"}),
        ("from streamlit.testing.v1 import AppTest", {"streamlit"}),
        ("def f():\n    import duckdb\n", {"duckdb"}),
        ("import importlib\nimportlib.import_module('duckdb')", {"importlib", "duckdb"}),
        ("from . import store", set()),
    ],
)
def test_imported_roots_sees_every_form_of_import(snippet: str, expected: set[str]) -> None:
    assert imported_roots(snippet) == expected


@pytest.mark.parametrize(
    ("snippet", "is_sql"),
    [
        ("q = 'SELECT count(*) FROM ratings'", True),
        ("q = '''\n  SELECT *\n  FROM cases WHERE id = ?'''", True),
        ("q = 'INSERT INTO audit VALUES (?)'", True),
        ("q = 'UPDATE studies SET status = ?'", True),
        ("q = 'DELETE FROM x'", True),
        ("q = 'WITH t AS (SELECT 1) SELECT * FROM t'", True),
        ("st.header('Select a study')", False),
        ("st.caption('Select the arms from the table below')", False),
        ("st.write('Update the protocol before locking')", False),
    ],
)
def test_sql_literals_recognises_statements_not_prose(snippet: str, is_sql: bool) -> None:
    assert bool(sql_literals(snippet)) is is_sql


@pytest.mark.parametrize(
    ("snippet", "calls"),
    [
        ("store.read('x')", ["read"]),
        ("cur = store.cursor()\ncur.execute(q)", ["cursor", "execute"]),
        ("with store.transaction() as cur:\n    pass", ["transaction"]),
        ("services.list_cases(store, 's')", []),
        ("pl.read_csv(path)", []),
    ],
)
def test_sql_calls_sees_store_and_connection_methods(snippet: str, calls: list[str]) -> None:
    assert sorted(sql_calls(snippet)) == sorted(calls)


def test_imported_roots_sees_a_study_import_inside_analysis() -> None:
    snippet = "def f():\n    from study.errors import StudyError\n"
    assert "study" in imported_roots(snippet)


def names_called(source: str) -> set[str]:
    """Names of the functions ``source`` calls or imports by name (``f(...)``, ``m.f(...)``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            names.add(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))
        elif isinstance(node, ast.ImportFrom):
            names.update(alias.name for alias in node.names)
    return names


def test_names_called_sees_calls_and_imports() -> None:
    assert "person_caller" in names_called("from study.access import person_caller")
    assert "person_caller" in names_called("access.person_caller('x', via='oidc')")


def test_imported_modules_sees_from_imports() -> None:
    assert "study.store" in imported_modules("from study.store import Store")
    assert "study.store" in imported_modules("from study import store")


CORE = _py_files("study", "analysis")
ANALYSIS = _py_files("analysis")
UI = _py_files("app.py", "pages")


def test_the_scanned_trees_exist() -> None:
    # Guards against the parametrised tests below silently running over nothing.
    assert CORE and ANALYSIS and UI
    assert ROOT / "app.py" in UI and ROOT / "pages" / "overview.py" in UI


@pytest.mark.parametrize("path", CORE, ids=lambda p: str(p.relative_to(ROOT)))
def test_core_never_imports_streamlit(path: Path) -> None:
    assert "streamlit" not in imported_roots(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", ANALYSIS, ids=lambda p: str(p.relative_to(ROOT)))
def test_analysis_never_imports_duckdb(path: Path) -> None:
    assert "duckdb" not in imported_roots(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", ANALYSIS, ids=lambda p: str(p.relative_to(ROOT)))
def test_analysis_never_imports_study(path: Path) -> None:
    assert "study" not in imported_roots(path.read_text(encoding="utf-8"))


STUDY = _py_files("study")
ANALYSES_DOOR = ROOT / "study" / "services" / "analyses"


@pytest.mark.parametrize("path", STUDY, ids=lambda p: str(p.relative_to(ROOT)))
def test_study_reaches_analysis_only_through_its_analyses_service(path: Path) -> None:
    if ANALYSES_DOOR in path.parents:
        return
    text = path.read_text(encoding="utf-8")
    # the one exception: both command lines print through analysis.terminal's escape (plain
    # text handling, no statistics, no scipy: importing it through the door would load the
    # statistics and cost every `python -m study` call about a second); study/cli/common.py is
    # the one module of study that may import it
    if path == ROOT / "study" / "cli" / "common.py":
        text = text.replace("from analysis.terminal import", "from terminal_escape import")
    assert "analysis" not in imported_roots(text)


def test_the_analyses_service_is_the_door() -> None:
    # guards the exemption above: the door exists and does use the library
    assert "analysis" in imported_roots((ANALYSES_DOOR / "__init__.py").read_text(encoding="utf-8"))


MINT = {
    "person_caller": {ROOT / "study" / "access.py", ROOT / "study" / "services" / "people.py"},
    # the command line's sign-in step: a checked personal access token
    "token_caller": {ROOT / "study" / "access.py", ROOT / "study" / "services" / "tokens.py"},
}
"""Each factory of a person's caller, and the only files that may call it."""


@pytest.mark.parametrize(
    "path", [*CORE, *UI, *_py_files("tests", "benchmarks")], ids=lambda p: str(p.relative_to(ROOT))
)
def test_only_the_sign_in_step_mints_a_persons_caller(path: Path) -> None:
    if path == Path(__file__):
        return
    called = names_called(path.read_text(encoding="utf-8"))
    for factory, minters in MINT.items():
        assert path in minters or factory not in called, f"{factory} outside the sign-in step"


@pytest.mark.parametrize("path", UI, ids=lambda p: str(p.relative_to(ROOT)))
def test_ui_holds_no_sql(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    assert "duckdb" not in imported_roots(source), "the UI calls study.services, not DuckDB"
    assert sql_literals(source) == []
    assert sql_calls(source) == [], "queries belong in study.services, not in the UI"
    if path.parent.name == "pages":
        assert not any(m.startswith("study.store") for m in imported_modules(source)), (
            "pages get the Store from app.py and pass it to study.services"
        )


def test_pages_folder_holds_only_pages() -> None:
    # Helper modules never live in pages/: every file there is registered with st.Page in app.py.
    app_source = (ROOT / "app.py").read_text(encoding="utf-8")
    for page in sorted((ROOT / "pages").glob("*.py")):
        assert f'"pages/{page.name}"' in app_source, f"{page.name} is not registered in app.py"


@pytest.mark.parametrize("path", UI, ids=lambda p: str(p.relative_to(ROOT)))
def test_ui_scripts_hold_no_bare_string_that_streamlit_would_print(path: Path) -> None:
    # Streamlit's "magic" writes a bare expression of the app's scripts onto the page: a string
    # meant as a constant's docstring would show to every visitor. The module docstring is exempt.
    body = ast.parse(path.read_text(encoding="utf-8")).body
    bare = [
        node.lineno
        for node in body[1:]
        if isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    ]
    assert bare == [], f"bare strings at lines {bare}: write them as comments"


PROTOCOL_READERS = {
    ROOT / "study" / "protocol.py",
    # the audit verifier compares the stored protocols with their lock events, row by row
    ROOT / "study" / "audit_verify.py",
    ROOT / "study" / "audit_state.py",
}


@pytest.mark.parametrize("path", [*CORE, *UI], ids=lambda p: str(p.relative_to(ROOT)))
def test_the_locked_protocol_is_read_in_study_protocol_only(path: Path) -> None:
    """One reading of the protocol: every service asks ``study.protocol`` for the ``Plan``
    (the screen and the report once read it each their own way and tested a harm item in
    opposite directions)."""
    if path in PROTOCOL_READERS:
        return
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"\bFROM\s+protocols\b", text, re.IGNORECASE), path
    assert not re.search(r"\bprotocols\.content\b", text), path


def test_the_protocol_readers_exemption_is_used() -> None:
    assert re.search(r"\bFROM\s+protocols\b", (ROOT / "study" / "protocol.py").read_text())
