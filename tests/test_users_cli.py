"""``python -m study users add`` and ``users list`` on a fresh database, run as a subprocess.

The first admin is made this way; bad input exits 2 with one line on stderr and leaves the
database exactly as it was (compared table by table with DuckDB directly).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from test_cli import run_cli, snapshot

from study.services import people
from study.store import Store


@pytest.fixture
def fresh(tmp_path: Path) -> Path:
    db = tmp_path / "fresh.duckdb"
    result = run_cli("init", db=db)
    assert result.returncode == 0, result.stderr
    return db


def test_the_first_admin_then_people_and_their_roles_on_a_fresh_database(fresh: Path) -> None:
    empty = run_cli("users", "list", db=fresh)
    assert (empty.returncode, empty.stderr) == (0, "")
    assert "no people yet" in empty.stdout

    added = run_cli(
        "users", "add", "--email", "Ada@Hospital.example", "--name", "Ada Admin", "--role", "admin",
        db=fresh,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith("added ada@hospital.example as admin")
    run_cli("init", "--study", "Trial", "--id", "trial", db=fresh)
    for email, role in (("rae@hospital.example", "rater"), ("Ada@hospital.example", "rater")):
        result = run_cli(
            "users", "add", "--email", email, "--name", "Someone", "--role", role,
            "--study", "trial", db=fresh,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
    assert "exists already: granted rater in trial" in result.stdout
    again = run_cli(
        "users", "add", "--email", "rae@hospital.example", "--name", "Rae", "--role", "rater",
        "--study", "trial", db=fresh,
    )  # fmt: skip
    assert "nothing changed" in again.stdout

    with duckdb.connect(str(fresh), read_only=True) as con:
        stored = con.execute(
            "SELECT u.id, u.issuer, r.role, r.study FROM users u JOIN roles r ON r.user_id = u.id"
            " ORDER BY u.id, r.scope"
        ).fetchall()
    assert stored == [
        ("ada@hospital.example", "invited", "admin", None),
        ("ada@hospital.example", "invited", "rater", "trial"),
        ("rae@hospital.example", "invited", "rater", "trial"),
    ]

    # Ada signs in with her address verified: the list then says so
    with Store(fresh) as store:
        people.sign_in(
            store,
            issuer="https://idp.example",
            subject="ada-1",
            email="ada@hospital.example",
            email_verified=True,
        )
    listed = run_cli("users", "list", db=fresh)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["id", "name", "e-mail", "roles", "signed", "in"]
    ada = next(line for line in lines if line.startswith("ada@"))
    rae = next(line for line in lines if line.startswith("rae@"))
    assert "admin; rater in trial" in ada and "yes, first " in ada
    assert "rater in trial" in rae and "no (waiting for a verified sign-in)" in rae


BAD = [
    ("not an address", ["--email", "ada", "--name", "A", "--role", "admin"],
     "error: --email 'ada' is not an e-mail address (name@domain)"),
    ("unknown study", ["--email", "a@h.example", "--name", "A", "--role", "rater", "--study", "x"],
     "error: There is no study 'x'."),
    ("admin in one study", ["--email", "a@h.example", "--name", "A", "--role", "admin",
                            "--study", "x"],
     "error: --role admin holds in every study; leave out --study"),
    ("empty name", ["--email", "a@h.example", "--name", "  ", "--role", "rater"],
     "error: --name is empty"),
    ("invisible characters", ["--email", "a\u200b@h.example", "--name", "A", "--role", "rater"],
     "error: --email holds control or invisible characters (U+200B)"),
    ("unknown role", ["--email", "a@h.example", "--name", "A", "--role", "boss"],
     "invalid choice: 'boss'"),
    ("no e-mail", ["--name", "A", "--role", "rater"],
     "the following arguments are required: --email"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "expected"), [pytest.param(a, e, id=n) for n, a, e in BAD])
def test_bad_input_exits_2_with_one_line_and_changes_nothing(
    fresh: Path, argv: list[str], expected: str
) -> None:
    before = snapshot(fresh)
    result = run_cli("users", "add", *argv, db=fresh)
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    if result.stderr.startswith("error:"):
        assert len(result.stderr.splitlines()) == 1
    assert snapshot(fresh) == before


def test_users_refuses_a_database_that_is_not_there(tmp_path: Path) -> None:
    missing = tmp_path / "typo.duckdb"
    for argv in (["users", "list"], ["users", "add", "--email", "a@h.example", "--name", "A",
                                     "--role", "admin"]):  # fmt: skip
        result = run_cli(*argv, db=missing)
        assert result.returncode == 2
        assert result.stderr.startswith(f"error: no database at {missing}")
        assert not missing.exists()
