"""Every bad input probed in issue 12 fails safely: exit 2, one short line on stderr, no
traceback, and neither the database nor the file system changed.

Run in-process (``main(argv)``), so that a fault such as a full disk can be simulated; a bug
would raise here instead of returning 2.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Callable
from pathlib import Path

import duckdb
import polars as pl
import pytest
from conftest import full_values, make_draft, open_rating, sign_in

from analysis import cli as analysis_cli
from study import cli as study_cli
from study.demo import DEMO_STUDY_ID
from study.errors import StudyError
from study.services import rating as rating_service
from study.store import Store

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


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_analysis_escapes_the_files_names_on_the_terminal(tmp_path, capsys, fmt):
    # issue 19: python -m analysis printed rater names with their ANSI escapes, raw
    ratings = tmp_path / "ratings.csv"
    evil = "\x1b[2J\x1b[31mdr\u202eevil"
    ratings.write_text(
        "u,r,v\n" + "".join(f"{u},{evil},{u % 2}\n{u},b,{u % 3 % 2}\n" for u in range(1, 7))
    )
    argv = ["agreement", str(ratings), "--unit", "u", "--rater", "r", "--value", "v"]
    assert analysis_cli.main([*argv, "--level", "nominal", "--format", fmt, "--boot", "0"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out
    if fmt == "table":
        assert "\\x1b[2J\\x1b[31mdr\\u202eevil" in out
    else:  # JSON escapes them itself (\u001b), and stays JSON
        assert json.loads(out)["results"]


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


# --- issue 19: the last nine bad inputs --------------------------------------------------------


def _alter_a_migration_checksum(db: Path, folder: Path) -> None:  # noqa: ARG001
    # what someone who can write the file might do; the app refuses such a database
    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE schema_migrations SET checksum = repeat('0', 64) WHERE version = 1")


def _a_submitted_case(db: Path, folder: Path) -> None:
    """A small study of ``conftest``'s in rating beside the demo, with r1's first case
    submitted (60 s on task), ready to be revised."""
    (folder / "draft-files").mkdir()
    with Store(db) as store:
        study = open_rating(store, make_draft(store, folder / "draft-files"))
        r1 = sign_in(store, "r1")
        view = rating_service.next_assignment(store, r1, study)
        rating_service.submit_rating(
            store, r1, study, view["assignment"], full_values(), seconds=60
        )


def _revise_with_seconds(db: Path) -> None:
    with Store(db) as store:
        r1 = sign_in(store, "r1")
        (assignment,) = store.read(
            "SELECT id FROM assignments WHERE rater = 'r1' AND done"
        ).get_column("id")
        rating_service.submit_rating(
            store, r1, "test-study", assignment, full_values(quality_a=1), seconds=5.8, revise=True
        )


SERVICE = "service"
# (name, which CLI (or the service, for a call no command makes), what to do before the snapshot,
# argv given (db, folder) or the call given db, fragment of the one-line message)
ISSUE_19_INPUTS: list[tuple[str, str, Callable | None, Callable, str]] = [
    (
        "1. analysis --seed past 64 bits",
        ANALYSIS,
        None,
        lambda d, f: (
            ["agreement", str(f / "ratings.csv"), "--unit", "u", "--rater", "r", "--value", "v"]
            + ["--level", "ordinal", "--seed", "1208925819614629174706176"]
        ),
        "--seed must be a whole number",
    ),
    (
        "2. audit verify on a database whose migration checksums were altered",
        STUDY,
        _alter_a_migration_checksum,
        lambda d, f: ["audit", "verify", "--db", str(d)],
        "checksum that differs",
    ),
    (
        "3. analysis naming arms that hold terminal escapes",
        ANALYSIS,
        None,
        lambda d, f: (
            ["noninferiority", str(f / "escapes.csv"), "--arm", "arm", "--value", "value"]
            + ["--test", "llm", "--reference", "doc", "--margin", "0.5", "--outcome", "continuous"]
            + ["--method", "t", "--pair", "case"]
        ),
        "\\x1b[2J\\x1b[31mdoc",
    ),
    (
        "4. add-raters with a control character in the id",
        STUDY,
        None,
        lambda d, f: ["add-raters", "--study", "draft", "r\x07x", "--db", str(d)],
        "control or invisible characters",
    ),
    (
        "5. add-raters to a study that does not exist",
        STUDY,
        None,
        lambda d, f: ["add-raters", "--study", "nope", "r7", "--db", str(d)],
        "There is no study 'nope'",
    ),
    (
        "6. attach-instrument to a study that does not exist",
        STUDY,
        None,
        lambda d, f: ["attach-instrument", "quest", "--study", "nope", "--db", str(d)],
        "There is no study 'nope'",
    ),
    (
        "6. attach-instrument to a study in rating",
        STUDY,
        None,
        lambda d, f: ["attach-instrument", "quest", "--study", DEMO_STUDY_ID, "--db", str(d)],
        "needs it to be draft",
    ),
    (
        "7. lock of a second version without a reason",
        STUDY,
        None,
        lambda d, f: ["lock", "--study", DEMO_STUDY_ID, "--db", str(d)],
        "needs --reason",
    ),
    (
        "8. lock of a second version by the operator",
        STUDY,
        None,
        lambda d, f: ["lock", "--study", DEMO_STUDY_ID, "--reason", "a typo", "--db", str(d)],
        "--token",
    ),
    (
        "9. a revision with time on task",
        SERVICE,
        _a_submitted_case,
        lambda d, f: _revise_with_seconds(d),
        "a revision records no time on task",
    ),
]


@pytest.mark.parametrize(
    ("which", "prepare", "given", "expected"),
    [pytest.param(w, p, g, e, id=name) for name, w, p, g, e in ISSUE_19_INPUTS],
)
def test_issue_19s_bad_inputs_exit_2_with_one_line_and_change_nothing(
    world, which, prepare, given, expected, capsys
):
    db, folder = world
    (folder / "escapes.csv").write_text(
        "case,arm,value\n"
        + "".join(f"c{i},llm,4\nc{i},\x1b[2J\x1b[31mdoc,3\n" for i in range(1, 4))
    )
    if prepare is not None:
        prepare(db, folder)
    before, files_before = _snapshot(db), _files(folder)
    capsys.readouterr()
    if which == SERVICE:
        # no command makes this call: the service refuses it, one line, and stores nothing
        with pytest.raises(StudyError) as refused:
            given(db, folder)
        # a ValidationError lists its problems, each a line: here one, the message
        problems = getattr(refused.value, "problems", None)
        assert problems is None or len(problems) == 1, refused.value
        err = f"error: {problems[0].reason if problems else refused.value}\n"
    else:
        main = study_cli.main if which == STUDY else analysis_cli.main
        code = main(given(db, folder))
        err = capsys.readouterr().err
        assert code == 2, err
    assert err.startswith("error: ") and expected in err, err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err and "\x1b" not in err and "\x07" not in err, err
    assert _snapshot(db) == before
    assert _files(folder) == files_before


def test_the_table_covers_issue_19s_nine_inputs():
    assert {name.split(".")[0] for name, *_ in ISSUE_19_INPUTS} == {str(n) for n in range(1, 10)}


def test_a_refused_permission_leaves_its_access_denied_event_and_nothing_else(demo_db, tmp_path):
    # the one exception to "exit 2 changes nothing", as docs/cli.md says where it gives the exit
    # codes: the audit trail keeps every refused attempt (and the token records its last use)
    tokens = tmp_path / "tokens.json"
    assert study_cli.main(["demo", "--tokens", str(tokens), "--db", str(demo_db)]) == 0
    rater = json.loads(tokens.read_text())["ada.example@demo.clinval.example"]
    before = _snapshot(demo_db)
    argv = ["lock", "--study", DEMO_STUDY_ID, "--reason", "looser", "--token", rater]
    assert study_cli.main([*argv, "--db", str(demo_db)]) == 2
    after = _snapshot(demo_db)
    changed = {t for t in after if after[t] != before[t]}
    assert changed <= {"audit_events", "audit_head", "personal_tokens"}, changed
    new = [e for e in after["audit_events"] if e not in before["audit_events"]]
    assert [e[3] for e in new] == ["access.denied"], new
    # the coordinator without a reason: refused before anything is written, no event
    coordinator = json.loads(tokens.read_text())["coordinator@demo.clinval.example"]
    before = _snapshot(demo_db)
    assert study_cli.main([*argv[:3], "--token", coordinator, "--db", str(demo_db)]) == 2
    after = _snapshot(demo_db)
    assert {t for t in after if after[t] != before[t]} <= {"personal_tokens"}
    reference = (Path(__file__).parent.parent / "docs" / "cli.md").read_text(encoding="utf-8")
    exit_codes = reference[reference.index("Exit codes: 0 done") :].split("\n\n")[0]
    assert "access.denied" in exit_codes
