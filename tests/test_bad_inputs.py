"""Every bad input probed in issue 12 fails safely: exit 2, one short line on stderr, no
traceback, and neither the database nor the file system changed.

Run in-process (``main(argv)``), so that a fault such as a full disk can be simulated; a bug
would raise here instead of returning 2.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path

import duckdb
import polars as pl
import pytest

from analysis import cli as analysis_cli
from study import cli as study_cli
from study.demo import DEMO_STUDY_ID

MB = 1_000_000


def _snapshot(db: Path) -> dict[str, list[tuple]]:
    with duckdb.connect(str(db), read_only=True) as con:
        tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
        return {t: sorted(con.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in tables}


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _full_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pl.DataFrame, "write_csv", no_space)
    monkeypatch.setattr(pl.DataFrame, "write_parquet", no_space)


def _files_for(folder: Path) -> None:
    (folder / "nul.csv").write_bytes(b"\0" * (5 * MB))
    with duckdb.connect(str(folder / "other.duckdb")) as con:
        con.execute("CREATE TABLE studies (x INTEGER)")
    (folder / "zero_width.csv").write_text("case_id,question\nc\u200b1,Is it safe?\n")
    (folder / "bidi.csv").write_text("case_id,question\nc\u202e1,Is it safe?\n")
    (folder / "inf.csv").write_text(
        "case,arm,value\n"
        + "".join(f"c{i},llm,{v}\nc{i},doc,3\n" for i, v in enumerate(["4", "5", "inf"]))
    )
    (folder / "ratings.csv").write_text("u,r,v\n1,a,1\n1,b,2\n2,a,2\n2,b,2\n")


# (name, which CLI, argv given (db, folder), fault to inject or None, fragment of the message);
# a rejected file is one line and then one line per problem (the CLI's contract for files)
STUDY, ANALYSIS = "study", "analysis"
BAD_INPUTS: list[tuple[str, str, Callable[[Path, Path], list[str]], Callable | None, str]] = [
    (
        "status on a DuckDB file that is not Clinval's",
        STUDY,
        lambda d, f: ["status", "--db", str(f / "other.duckdb")],
        None,
        "not Clinval's",
    ),
    (
        "init on a DuckDB file that is not Clinval's",
        STUDY,
        lambda d, f: ["init", "--db", str(f / "other.duckdb")],
        None,
        "not Clinval's",
    ),
    (
        "a --study that is not UTF-8",
        STUDY,
        lambda d, f: ["status", "--study", "demo\udcff", "--db", str(d)],
        None,
        "not valid UTF-8",
    ),
    (
        "an export to a full disk",
        STUDY,
        lambda d, f: [
            "export",
            "--study",
            DEMO_STUDY_ID,
            "--out",
            str(f / "r.csv"),
            "--db",
            str(d),
        ],
        _full_disk,
        "No space left on device",
    ),
    (
        "demo --seed -1",
        STUDY,
        lambda d, f: ["demo", "--seed", "-1", "--db", str(f / "new" / "demo.duckdb")],
        None,
        "--seed must be a whole number",
    ),
    (
        "demo --seed 2**200",
        STUDY,
        lambda d, f: ["demo", "--seed", str(2**200), "--db", str(f / "new" / "demo.duckdb")],
        None,
        "--seed must be a whole number",
    ),
    (
        "import of 5 MB of NUL bytes",
        STUDY,
        lambda d, f: ["import-cases", str(f / "nul.csv"), "--study", DEMO_STUDY_ID, "--db", str(d)],
        None,
        "not a text file",
    ),
    (
        "analysis agreement on 5 MB of NUL bytes",
        ANALYSIS,
        lambda d, f: (
            ["agreement", str(f / "nul.csv"), "--unit", "u", "--rater", "r", "--value", "v"]
            + ["--level", "ordinal"]
        ),
        None,
        "NUL bytes",
    ),
    (
        "init --study ''",
        STUDY,
        lambda d, f: ["init", "--study", "", "--db", str(f / "new.duckdb")],
        None,
        "needs a name",
    ),
    (
        "an inf rating",
        ANALYSIS,
        lambda d, f: (
            ["noninferiority", str(f / "inf.csv"), "--arm", "arm", "--value", "value"]
            + ["--test", "llm", "--reference", "doc", "--margin", "0.5", "--outcome", "continuous"]
            + ["--method", "t", "--pair", "case"]
        ),
        None,
        "holds inf on row 5",
    ),
    (
        "a case id with a zero-width space",
        STUDY,
        lambda d, f: [
            "import-cases",
            str(f / "zero_width.csv"),
            "--study",
            "draft",
            "--db",
            str(d),
        ],
        None,
        "control characters",
    ),
    (
        "a case id with a right-to-left override",
        STUDY,
        lambda d, f: ["import-cases", str(f / "bidi.csv"), "--study", "draft", "--db", str(d)],
        None,
        "control characters",
    ),
    (
        "a --study with a right-to-left override",
        STUDY,
        lambda d, f: ["status", "--study", "demo\u202e", "--db", str(d)],
        None,
        "U+202E",
    ),
    (
        "--scale ''",
        ANALYSIS,
        lambda d, f: (
            ["agreement", str(f / "ratings.csv"), "--unit", "u", "--rater", "r"]
            + ["--value", "v", "--level", "ordinal", "--scale", ""]
        ),
        None,
        "--scale needs its categories",
    ),
    (
        # the database is created before the id is refused: it must not stay behind
        "init of a new database with a refused study id",
        STUDY,
        lambda d, f: ["init", "--study", "X", "--id", "*", "--db", str(f / "new" / "x.duckdb")],
        None,
        "'*'",
    ),
    (
        "audit verify --expect that is no hash",
        STUDY,
        lambda d, f: ["audit", "verify", "--expect", "abc", "--db", str(d)],
        None,
        "64 hexadecimal digits",
    ),
]


@pytest.fixture
def world(demo_db: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The demo database (with an empty draft study "draft") and a folder of bad files."""
    assert study_cli.main(["init", "--study", "Draft", "--id", "draft", "--db", str(demo_db)]) == 0
    folder = tmp_path / "files"
    folder.mkdir()
    _files_for(folder)
    return demo_db, folder


@pytest.mark.parametrize(
    ("which", "argv", "fault", "expected"),
    [pytest.param(w, a, f, e, id=name) for name, w, a, f, e in BAD_INPUTS],
)
def test_bad_input_exits_2_with_one_short_line_and_changes_nothing(
    world, which, argv, fault, expected, monkeypatch, capsys
):
    db, folder = world
    before, files_before = _snapshot(db), _files(folder)
    other_before = (folder / "other.duckdb").read_bytes()
    if fault is not None:
        fault(monkeypatch)
    main = study_cli.main if which == STUDY else analysis_cli.main
    capsys.readouterr()
    code = main(argv(db, folder))
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and expected in err, err
    lines = err.splitlines()
    problems = lines[1:]
    assert all(line.startswith("  - ") for line in problems) and len(problems) <= 1, err
    assert all(len(line) < 300 for line in lines), err
    assert "Traceback" not in err
    assert _snapshot(db) == before
    assert _files(folder) == files_before
    assert (folder / "other.duckdb").read_bytes() == other_before


def test_the_table_covers_the_issues_bad_inputs():
    assert len(BAD_INPUTS) == 16


# --- what fails safely without failing: output and exports ------------------------------------


@pytest.mark.parametrize("argv", [["status"], ["audit", "verify", "--kinds"]])
def test_read_only_commands_never_write(demo_db, argv):
    before = demo_db.read_bytes()
    assert study_cli.main([*argv, "--db", str(demo_db)]) == 0
    assert demo_db.read_bytes() == before
    assert not demo_db.with_name(demo_db.name + ".wal").exists()


def test_control_characters_in_names_are_escaped_on_the_terminal(tmp_path, capsys):
    db = str(tmp_path / "ansi.duckdb")
    name = "\x1b[31mRed\x1b[0m \u202eevil"
    assert study_cli.main(["init", "--study", name, "--id", "ansi", "--db", db]) == 0
    capsys.readouterr()
    assert study_cli.main(["status", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out
    assert "\\x1b[31mRed" in out and "\\u202e" in out


def test_a_long_error_is_capped(tmp_path, capsys):
    assert study_cli.main(["status", "--study", "x" * 5000, "--db", str(tmp_path / "no.db")]) == 2
    err = capsys.readouterr().err
    assert len(err) < 1000


def test_csv_exports_neutralise_formula_cells_unless_raw(demo_db, tmp_path, capsys):
    # through the command line: the default and --raw-csv both export, each with its head
    for flag in ([], ["--raw-csv"]):
        out = tmp_path / f"ratings{len(flag)}.csv"
        argv = ["export", "--study", DEMO_STUDY_ID, "--out", str(out), "--db", str(demo_db)]
        assert study_cli.main(argv + flag) == 0
        assert "audit head: " in capsys.readouterr().out
        assert not list(tmp_path.glob(".*.tmp"))  # the temporary file was renamed
    safe, raw = tmp_path / "safe.csv", tmp_path / "raw.csv"
    frame = pl.DataFrame({"case": ['=HYPERLINK("http://x")', "ok"], "value": [-1.0, 2.0]})
    from study.spreadsheet import neutralise_formulas

    neutralise_formulas(frame).write_csv(safe)
    frame.write_csv(raw)
    assert safe.read_text().splitlines()[1].startswith("\"'=HYPERLINK")
    assert raw.read_text().splitlines()[1].startswith('"=HYPERLINK')
    assert ",-1.0" in safe.read_text()  # numbers are left alone
