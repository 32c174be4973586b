"""``python -m study`` run as a subprocess, as a coordinator would type it.

Expected counts come from the demo's input files (data/demo) and from direct DuckDB queries in
the test, never from the CLI's own code. Bad input must exit 2 with a short message on stderr,
no traceback, and leave the database exactly as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = ROOT / "data" / "demo"
DEMO_STUDY = "demo-patient-questions"
DRAFT_STUDY = "draft-trial"


def run_cli(*args: str | Path, db: Path | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "study", *map(str, args)]
    if db is not None:
        command += ["--db", str(db)]
    # the audit key stays: the session's key file (conftest), never the project's
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CLINVAL_") or k == "CLINVAL_AUDIT_KEY_FILE"
    }
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def lines_of(path: Path) -> int:
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def copy_db(source: Path, target_dir: Path) -> Path:
    target = target_dir / source.name
    shutil.copy(source, target)
    wal = source.with_name(source.name + ".wal")
    if wal.exists():
        shutil.copy(wal, target.with_name(target.name + ".wal"))
    return target


def snapshot(db: Path) -> dict[str, list[tuple]]:
    """Every row of every table, sorted: equal snapshots mean an unchanged database."""
    with duckdb.connect(str(db), read_only=True) as con:
        tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
        return {
            table: sorted(con.execute(f'SELECT * FROM "{table}"').fetchall(), key=repr)
            for table in tables
        }


@pytest.fixture(scope="module")
def built_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with the demo study (rating) and an empty draft study, built by the CLI."""
    db = tmp_path_factory.mktemp("cli") / "clinval.duckdb"
    demo = run_cli("demo", db=db)
    assert demo.returncode == 0, demo.stderr
    draft = run_cli("init", "--study", "Draft trial", "--id", DRAFT_STUDY, db=db)
    assert draft.returncode == 0, draft.stderr
    assert f"study created: {DRAFT_STUDY}" in draft.stdout
    return db


@pytest.fixture
def db(built_db: Path, tmp_path: Path) -> Path:
    """A private copy of ``built_db`` that a test may change."""
    return copy_db(built_db, tmp_path)


def test_status_prints_the_demo_counts(built_db: Path) -> None:
    result = run_cli("status", "--study", DEMO_STUDY, db=built_db)
    assert result.returncode == 0, result.stderr
    with duckdb.connect(str(built_db), read_only=True) as con:
        done = con.execute(
            "SELECT count(*) FROM assignments WHERE study = ? AND done", [DEMO_STUDY]
        ).fetchall()[0][0]
        ratings = con.execute(
            "SELECT count(*) FROM current_ratings c JOIN assignments a ON a.id = c.assignment"
            " WHERE a.study = ?",
            [DEMO_STUDY],
        ).fetchall()[0][0]
    cases = lines_of(DEMO_DIR / "cases.jsonl")
    expected = {
        "cases": cases,
        "arms": lines_of(DEMO_DIR / "arms.csv") - 1,  # minus the header
        "answers": lines_of(DEMO_DIR / "answers.jsonl"),
        "raters": lines_of(DEMO_DIR / "raters.csv") - 1,
        "assignments": cases * 3,  # the demo protocol: three raters per case
        "done": done,
        "ratings": ratings,
    }
    printed = dict(
        line.split(None, 1) for line in result.stdout.splitlines()[1:] if line.startswith("  ")
    )
    for label, count in expected.items():
        assert printed[label].strip() == str(count), label
    assert 0 < done < expected["assignments"]
    assert "[synthetic demo data]" in result.stdout.splitlines()[0]


def test_status_without_study_lists_every_study(built_db: Path) -> None:
    result = run_cli("status", db=built_db)
    assert result.returncode == 0, result.stderr
    assert f"study {DEMO_STUDY}:" in result.stdout
    assert f"study {DRAFT_STUDY}: Draft trial (draft)" in result.stdout


def test_init_creates_then_migrates(tmp_path: Path) -> None:
    db = tmp_path / "sub" / "new.duckdb"
    first = run_cli("init", db=db)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("database created:") and db.is_file()
    again = run_cli("init", db=db)
    # nothing was pending: an up-to-date database is not reported as migrated
    assert again.returncode == 0 and again.stdout.startswith("database up to date:")
    assert "nothing to migrate" in again.stdout
    assert run_cli("status", db=db).stdout.strip() == f"no studies in {db}"


def test_imports_fill_a_draft_study(db: Path) -> None:
    for kind, file in (
        ("arms", "arms.csv"),
        ("cases", "cases.jsonl"),
        ("answers", "answers.jsonl"),
    ):
        result = run_cli(f"import-{kind}", DEMO_DIR / file, "--study", DRAFT_STUDY, db=db)
        assert result.returncode == 0, result.stderr
        rows = lines_of(DEMO_DIR / file) - (1 if file.endswith(".csv") else 0)
        assert f"{rows} rows read, {rows} added" in result.stdout
    again = run_cli("import-cases", DEMO_DIR / "cases.jsonl", "--study", DRAFT_STUDY, db=db)
    assert again.returncode == 0, again.stderr
    assert "0 added, 42 already stored" in again.stdout


def test_instruments_list_show_validate(tmp_path: Path) -> None:
    listed = run_cli("instruments", "list")
    assert listed.returncode == 0
    assert any(line.split()[0] == "ayers_harm" for line in listed.stdout.splitlines()[1:])

    shown = run_cli("instruments", "show", "harm", "--format", "json")
    assert shown.returncode == 0, shown.stderr
    definition = json.loads(shown.stdout)
    assert definition["key"] == "harm"
    assert [i["key"] for i in definition["items"]] == [
        "harm_extent",
        "harm_likelihood",
        "could_cause_harm",
    ]
    table = run_cli("instruments", "show", "harm")
    assert table.returncode == 0 and "could_cause_harm" in table.stdout

    saved = tmp_path / "harm.json"
    saved.write_text(shown.stdout, encoding="utf-8")
    valid = run_cli("instruments", "validate", saved)
    assert valid.returncode == 0, valid.stderr
    # the saved JSON round-trips to the same key and version that `show` printed
    assert valid.stdout.startswith(f"valid: harm {definition['version']}, 3 items")


# --- audit --------------------------------------------------------------------------------------


def test_audit_verify_passes_on_an_untouched_database(built_db: Path) -> None:
    with duckdb.connect(str(built_db), read_only=True) as con:
        events = con.execute("SELECT count(*) FROM audit_events").fetchall()[0][0]
        head = con.execute("SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1").fetchall()
    result = run_cli("audit", "verify", db=built_db)
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.strip().splitlines()
    assert first == f"audit chain intact: {events} events"
    head = head[0][0]
    assert second == f"head hash: {head} (record it outside the database)"


def test_audit_verify_counts_the_events_of_every_declared_kind(built_db: Path) -> None:
    from study.audit import EVENT_KINDS

    with duckdb.connect(str(built_db), read_only=True) as con:
        stored = dict(
            con.execute("SELECT action, count(*) FROM audit_events GROUP BY 1").fetchall()
        )
    result = run_cli("audit", "verify", "--kinds", db=built_db)
    assert result.returncode == 0, result.stderr
    counted = dict(line.split() for line in result.stdout.strip().splitlines()[2:])
    assert counted == {name: str(stored.get(name, 0)) for name in EVENT_KINDS}


@pytest.mark.parametrize(
    ("tamper", "seq"),
    [
        ("UPDATE audit_events SET actor = 'mallory' WHERE seq = 17", 17),
        ("UPDATE audit_events SET payload = '{\"rows\":0}' WHERE seq = 30", 30),
        ("DELETE FROM audit_events WHERE seq = 9", 9),
    ],
    ids=["actor edited", "payload edited", "event deleted"],
)
def test_audit_verify_names_the_event_edited_by_hand(db: Path, tamper: str, seq: int) -> None:
    with duckdb.connect(str(db)) as con:
        con.execute(tamper)
    result = run_cli("audit", "verify", db=db)
    assert result.returncode == 1
    assert f"event {seq}" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


# --- export -------------------------------------------------------------------------------------


def test_export_csv_and_parquet_hold_the_same_rows(db: Path, tmp_path: Path) -> None:
    csv, parquet = tmp_path / "ratings.csv", tmp_path / "ratings.parquet"
    for out in (csv, parquet):
        result = run_cli("export", "--study", DEMO_STUDY, "--out", out, db=db)
        assert result.returncode == 0, result.stderr
    explicit = tmp_path / "ratings.data"
    assert (
        run_cli(
            "export", "--study", DEMO_STUDY, "--out", explicit, "--format", "parquet", db=db
        ).returncode
        == 0
    )

    from_parquet = pl.read_parquet(parquet)
    from_csv = pl.read_csv(csv, schema=from_parquet.schema)
    assert_frame_equal(from_csv, from_parquet)
    assert_frame_equal(pl.read_parquet(explicit), from_parquet)

    with duckdb.connect(str(db), read_only=True) as con:
        stored = con.execute(
            "SELECT count(*) FROM current_ratings c JOIN assignments a ON a.id = c.assignment"
            " WHERE a.study = ?",
            [DEMO_STUDY],
        ).fetchall()[0][0]
        exports = con.execute(
            "SELECT count(*) FROM audit_events WHERE action = 'ratings.export'"
        ).fetchall()[0][0]
    assert from_parquet.height == stored > 0
    assert exports == 3, "every export is an audited read"
    required = {
        "case",
        "arm",
        "answer",
        "rater",
        "item",
        "value",
        "position",
        "label",
        "seconds",
        "revision",
        "created_at",
        "submitted_at",
    }
    assert required <= set(from_parquet.columns)
    per_answer = from_parquet.filter(pl.col("answer").is_not_null())
    assert per_answer.get_column("label").is_in(["Response A", "Response B"]).all()
    assert per_answer.get_column("position").is_in([1, 2]).all()


# --- bad input: exit 2, a short message, nothing changed ------------------------------------------


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


BAD_INPUTS = [
    # (id, argv builder (db, files) -> args, expected text on stderr)
    ("unknown flag", lambda d, f: ["status", "--bogus", "--db", d], "unrecognized arguments"),
    ("unknown command", lambda d, f: ["frobnicate", "--db", d], "invalid choice"),
    ("no audit action", lambda d, f: ["audit", "--db", d], "required"),
    (
        "missing file",
        lambda d, f: ["import-cases", f / "nope.csv", "--study", DRAFT_STUDY, "--db", d],
        "no such file",
    ),
    (
        "missing --study",
        lambda d, f: ["import-cases", f / "cases_bad.csv", "--db", d],
        "the following arguments are required: --study",
    ),
    ("unknown study", lambda d, f: ["status", "--study", "nope", "--db", d], "no study 'nope'"),
    (
        "malformed cases file",
        lambda d, f: ["import-cases", f / "cases_bad.csv", "--study", DRAFT_STUDY, "--db", d],
        "cases_bad.csv, row 2",
    ),
    (
        "arm of unknown kind",
        lambda d, f: ["import-arms", f / "arms_bad.csv", "--study", DRAFT_STUDY, "--db", d],
        "arms_bad.csv, row 1",
    ),
    (
        "answers to unknown cases",
        lambda d, f: [
            "import-answers",
            f / "answers_bad.jsonl",
            "--study",
            DRAFT_STUDY,
            "--db",
            d,
        ],
        "answers_bad.jsonl, row 1",
    ),
    (
        "import into a study that is rating",
        lambda d, f: [
            "import-cases",
            f / "cases_new.csv",
            "--study",
            DEMO_STUDY,
            "--db",
            d,
        ],
        "is rating",
    ),
    ("unknown instrument", lambda d, f: ["instruments", "show", "nope"], "no built-in instrument"),
    (
        "invalid instrument file",
        lambda d, f: ["instruments", "validate", f / "bad_instrument.toml"],
        "bad_instrument.toml",
    ),
    (
        "unknown export format",
        lambda d, f: ["export", "--study", DEMO_STUDY, "--out", f / "r.xlsx", "--db", d],
        "cannot tell the export format",
    ),
    (
        "export of unknown study",
        lambda d, f: ["export", "--study", "nope", "--out", f / "r.csv", "--db", d],
        "no study 'nope'",
    ),
    (
        "export into a missing folder",
        lambda d, f: ["export", "--study", DEMO_STUDY, "--out", f / "no" / "r.csv", "--db", d],
        "no such folder",
    ),
    ("second demo", lambda d, f: ["demo", "--db", d], "already holds a demo study"),
    ("empty study name", lambda d, f: ["init", "--study", " ", "--db", d], "needs a name"),
    # '*' is refused by the schema's CHECK if no service validates it first
    ("study id '*'", lambda d, f: ["init", "--study", "X", "--id", "*", "--db", d], "'*'"),
    (
        "export into a folder",
        lambda d, f: ["export", "--study", DEMO_STUDY, "--out", f, "--format", "csv", "--db", d],
        "--out {f} is a folder",
    ),
    (
        "export below a file",
        lambda d, f: (
            ["export", "--study", DEMO_STUDY, "--out", f / "cases_bad.csv" / "r.csv"] + ["--db", d]
        ),
        "cases_bad.csv is a file, not a folder",
    ),
    (
        # sysfs refuses new files even to root, where a chmod-ed folder would not stop anyone
        "export where nobody may write",
        lambda d, f: ["export", "--study", DEMO_STUDY, "--out", "/sys/clinval-r.csv", "--db", d],
        "cannot write --out /sys/clinval-r.csv",
    ),
    (
        "--format contradicts the --out name",
        lambda d, f: (
            ["export", "--study", DEMO_STUDY, "--out", f / "r.csv", "--format", "parquet"]
            + ["--db", d]
        ),
        "--format parquet contradicts the --out file name r.csv",
    ),
    *[
        (name, argv, expected)
        for name, argv, expected in (
            (
                "unknown format in --format",
                lambda d, f: (
                    ["export", "--study", DEMO_STUDY, "--out", f / "r.csv"]
                    + ["--format", "xlsx", "--db", d]
                ),
                "--format xlsx: unknown format 'xlsx'",
            ),
            (
                "several formats for one file",
                lambda d, f: (
                    ["export", "--study", DEMO_STUDY, "--out", f / "r.csv"]
                    + ["--format", "csv,dta", "--db", d]
                ),
                "--format csv,dta names 2 formats and --out one file; add --bundle",
            ),
            (
                "a zip without --bundle",
                lambda d, f: ["export", "--study", DEMO_STUDY, "--out", f / "r.zip", "--db", d],
                "--out r.zip is a zip: the bundle; add --bundle",
            ),
            (
                "a bundle into a folder that holds files",
                lambda d, f: ["export", "--study", DEMO_STUDY, "--out", f, "--bundle", "--db", d],
                "--out {f} exists and is not an empty folder",
            ),
            (
                "a bundle below a missing folder",
                lambda d, f: (
                    ["export", "--study", DEMO_STUDY, "--out", f / "no" / "b.zip"]
                    + ["--bundle", "--db", d]
                ),
                "no such folder for --out: {f}/no",
            ),
            (
                "a bundle with an unknown format",
                lambda d, f: (
                    ["export", "--study", DEMO_STUDY, "--out", f / "b", "--bundle"]
                    + ["--format", "csv,sas", "--db", d]
                ),
                "unknown format 'sas'",
            ),
        )
    ],
    (
        "status of a file that is no database",
        lambda d, f: ["status", "--db", f / "junk.duckdb"],
        "cannot use the database {f}/junk.duckdb: the file is not a DuckDB database",
    ),
    (
        "init over a file that is no database",
        lambda d, f: ["init", "--db", f / "junk.duckdb"],
        "cannot use the database {f}/junk.duckdb: the file is not a DuckDB database",
    ),
    ("init of a folder", lambda d, f: ["init", "--db", f], "--db {f} is a folder"),
    ("status of a folder", lambda d, f: ["status", "--db", f], "--db {f} is a folder"),
    (
        "init below a file",
        lambda d, f: ["init", "--db", f / "cases_bad.csv" / "x.duckdb"],
        "cases_bad.csv is a file, not a folder",
    ),
]


@pytest.fixture
def bad_files(tmp_path: Path) -> Path:
    folder = tmp_path / "files"
    folder.mkdir()
    # row 2 has no question; row 3 repeats row 1's id
    _write(folder / "cases_bad.csv", "case_id,question\nc1,Is it safe?\nc2,\nc1,Again?\n")
    _write(folder / "cases_new.csv", "case_id,question\nnew-1,A new question?\n")
    _write(folder / "arms_bad.csv", "arm_id,kind,label\nx,robot,Robot\n")
    _write(
        folder / "answers_bad.jsonl",
        '{"answer_id": "a1", "case_id": "no-such-case", "arm_id": "clinician", "text": "Hi"}\n',
    )
    _write(folder / "junk.duckdb", "x\n")
    _write(
        folder / "bad_instrument.toml",
        'key = "x"\nversion = "1.0"\ntitle = "X"\n\n[[items]]\nkey = "q"\ntype = "likert"\n',
    )
    return folder


@pytest.mark.parametrize(
    ("argv", "expected"),
    [pytest.param(argv, expected, id=name) for name, argv, expected in BAD_INPUTS],
)
def test_bad_input_exits_2_with_a_message_and_changes_nothing(
    db: Path, bad_files: Path, argv, expected: str
) -> None:
    before = snapshot(db)
    files_before = folder_contents(bad_files)
    result = run_cli(*argv(db, bad_files))
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected.format(f=bad_files) in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(("error:", "usage:"))
    assert len(result.stderr.splitlines()) <= 12
    assert snapshot(db) == before
    # nor a file written or left behind (the junk "database" included)
    assert folder_contents(bad_files) == files_before


ONE_LINE_EXPORT_ERRORS = [
    name
    for name, _, _ in BAD_INPUTS
    if name.startswith(("unknown format in", "several formats", "a zip", "a bundle"))
]


@pytest.mark.parametrize("name", ONE_LINE_EXPORT_ERRORS)
def test_bad_export_flags_give_exit_2_and_one_line(db: Path, bad_files: Path, name: str) -> None:
    argv = next(build for n, build, _ in BAD_INPUTS if n == name)
    result = run_cli(*argv(db, bad_files))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stdout == ""


def folder_contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_missing_database_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "typo.duckdb"
    for argv in (["status"], ["audit", "verify"], ["export", "--study", "x", "--out", "r.csv"]):
        result = run_cli(*argv, db=missing)
        assert result.returncode == 2
        assert result.stderr.strip() == (
            f"error: no database at {missing}; run `python -m study init --db {missing}` or `demo`"
        )
        assert not missing.exists()


def test_database_held_by_another_process_is_reported(db: Path) -> None:
    with duckdb.connect(str(db)):
        result = run_cli("status", db=db)
    assert result.returncode == 2
    assert "in use by another process" in result.stderr
    assert "Traceback" not in result.stderr


# --- what is the user's mistake (exit 2) and what is a bug (traceback) ---------------------------


def _failing_status(exc: Exception):
    def command(args, out):  # noqa: ARG001
        raise exc

    return command


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        pytest.param(
            duckdb.ConstraintException(
                'Constraint Error: CHECK constraint failed on table "studies"'
            ),
            "error: the database refused the change, nothing was stored: CHECK constraint failed "
            'on table "studies"',
            id="constraint the services did not check",
        ),
        pytest.param(
            duckdb.IOException('IO Error: Could not set lock on file "x.duckdb"'),
            "error: cannot use the database {db}: it is in use by another process",
            id="lock",
        ),
        pytest.param(
            PermissionError(13, "Permission denied", "{db}"),
            "error: {db}: Permission denied",
            id="unreadable --db",
        ),
        pytest.param(
            FileNotFoundError(2, "No such file or directory", "{parent}"),
            "error: {parent}: No such file or directory",
            id="a folder above --db vanished",
        ),
    ],
)
def test_operational_failures_of_the_users_making_exit_2(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    exc: Exception,
    expected: str,
) -> None:
    from study import cli

    db = tmp_path / "sub" / "c.duckdb"
    if isinstance(exc, OSError):  # the failure names the user's path
        exc.filename = exc.filename.format(db=db, parent=db.parent)
    monkeypatch.setattr(cli, "cmd_status", _failing_status(exc))
    assert cli.main(["status", "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(expected.format(db=db, parent=db.parent)), err
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(
    "exc",
    [
        pytest.param(KeyError("status"), id="plain bug"),
        pytest.param(FileNotFoundError(2, "No such file", "/opt/clinval/x.sql"), id="own file"),
        pytest.param(duckdb.BinderException("Binder Error: no column x"), id="bad SQL"),
    ],
)
def test_a_bug_still_raises_with_its_traceback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, exc: Exception
) -> None:
    from study import cli

    monkeypatch.setattr(cli, "cmd_status", _failing_status(exc))
    with pytest.raises(type(exc)):
        cli.main(["status", "--db", str(tmp_path / "c.duckdb")])


def test_export_infers_the_format_from_the_suffix(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.parquet"
    result = run_cli("export", "--study", DEMO_STUDY, "--out", out, db=db)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:4] == b"PAR1"  # the Parquet magic number (Parquet format spec)
    assert "(parquet)" in result.stdout


def test_export_bundle_into_a_folder_and_a_zip(db: Path, tmp_path: Path) -> None:
    import hashlib
    import zipfile

    import pyreadstat

    folder, archive = tmp_path / "bundle", tmp_path / "bundle.zip"
    first = run_cli("export", "--study", DEMO_STUDY, "--out", folder, "--bundle", db=db)
    assert first.returncode == 0, first.stderr
    expected = {"ratings.csv", "ratings.parquet", "ratings.dta", "ratings.sav"} | {
        "codebook.md",
        "codebook.json",
        "results.csv",
        "results.json",
        "report.html",
        "manifest.json",
    }
    assert {p.name for p in folder.iterdir()} == expected
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    for entry in manifest["files"]:
        digest = hashlib.sha256((folder / entry["name"]).read_bytes()).hexdigest()
        assert digest == entry["sha256"]
    assert f"audit head: {manifest['audit_chain_head']['hash']}" in first.stdout
    frame, meta = pyreadstat.read_dta(str(folder / "ratings.dta"), output_format="polars")
    assert frame.height == pl.read_parquet(folder / "ratings.parquet").height > 0
    assert meta.variable_value_labels["v_could_cause_harm"] == {0: "No", 1: "Yes"}

    second = run_cli(
        "export", "--study", DEMO_STUDY, "--out", archive, "--bundle", "--format", "sav,csv", db=db
    )
    assert second.returncode == 0, second.stderr
    with zipfile.ZipFile(archive) as z:
        assert set(z.namelist()) == {"ratings.sav", "ratings.csv"} | (
            expected - {f"ratings.{f}" for f in ("csv", "parquet", "dta", "sav")}
        )
    # nothing left beside the outputs (the temporary folder and file are gone)
    left = {p.name for p in tmp_path.iterdir()} - {db.name, f"{db.name}.wal"}
    assert left == {"bundle", "bundle.zip"}


# --- assign ------------------------------------------------------------------------------------


@pytest.fixture
def draft_db(tmp_path: Path) -> Path:
    from conftest import make_draft

    from study.store import Store

    db = tmp_path / "draft.duckdb"
    with Store(db) as store:
        make_draft(store, tmp_path)
    return db


def _stored_assignments(db: Path) -> int:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT count(*) FROM assignments").fetchall()[0][0]


def test_assign_dry_run_prints_the_design_and_stores_nothing(draft_db: Path) -> None:
    result = run_cli(
        "assign", "--study", "test-study", "--raters-per-case", "2", "--seed", "7", "--dry-run",
        db=draft_db,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("design for study test-study: mode side_by_side, 2 raters per case\n")
    assert "seed" not in out and " 7" not in out.split("\n")[0]  # a blinding secret
    assert "3 raters, 8 assignments over 4 cases; raters per case 2-2" in out
    for heading in (
        "loads per rater",
        "arm x position per rater",
        "rater-pair overlap",
        "blinding leak report per arm",
    ):
        assert heading in out
    grid = [line.split() for line in out.split("arm x position per rater")[1].splitlines()[2:8]]
    assert [row[:2] for row in grid] == [
        [r, arm] for r in ("r1", "r2", "r3") for arm in ("clin", "llm")
    ]
    assert _stored_assignments(draft_db) == 0


def test_assign_without_dry_run_stores_the_same_design_it_prints(draft_db: Path) -> None:
    shown = run_cli("assign", "--study", "test-study", "--seed", "7", "--dry-run", db=draft_db)
    stored = run_cli("assign", "--study", "test-study", "--seed", "7", db=draft_db)
    assert stored.returncode == 0, stored.stderr
    assert stored.stdout.startswith(shown.stdout)
    assert stored.stdout.rstrip().endswith(
        "12 assignments stored for study test-study (seed sealed)"
    )
    assert _stored_assignments(draft_db) == 12


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--raters-per-case", "5"], "needs 5 raters but only 3 are eligible"),
        (["--mode", "separate"], "needs 6 raters but only 3 are eligible"),
        (["--match-specialty", "--raters-per-case", "1"], "needs 1 raters but only 0"),
    ],
    ids=["too many raters per case", "separate needs more raters", "no rater of the specialty"],
)
def test_assign_refuses_an_infeasible_design_in_one_line(draft_db, args, message) -> None:
    result = run_cli("assign", "--study", "test-study", "--seed", "1", *args, db=draft_db)
    assert result.returncode == 2
    assert result.stderr.startswith("error: Cannot assign raters")
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert _stored_assignments(draft_db) == 0


def test_init_names_the_migrations_it_applied(tmp_path: Path, capsys) -> None:
    from study import cli
    from study.migrations import MIGRATIONS
    from study.store import Store

    db = tmp_path / "old.duckdb"
    with Store(db) as store:  # a database from before migration 3
        cur = store.cursor()
        for table in ("safety_alerts", "case_flags"):
            cur.execute(f"DROP TABLE {table}")
        cur.execute("DELETE FROM schema_migrations WHERE version = 3")
    assert cli.main(["init", "--db", str(db)]) == 0

    assert capsys.readouterr().out.startswith(
        f"database migrated: {db} (schema version {MIGRATIONS[-1].version}; applied 3)"
    )


def test_status_on_a_database_from_an_older_clinval_says_how_to_migrate_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A database made before migration 3 (the ClinSumm import of December 2026 was at version
    2; its locked study with assignments gave `status` a DuckDB traceback, "Table with name
    case_flags does not exist"): the read-only command does not migrate, so it says how to, and
    changes nothing."""
    from study import cli
    from study.migrations import MIGRATIONS
    from study.store import Store

    db = tmp_path / "old.duckdb"
    with monkeypatch.context() as patch:
        patch.setattr(Store.migrate, "__defaults__", (MIGRATIONS[:2],))
        with Store(db) as old:
            # today's services need today's tables: the row as version 2's code wrote it
            cur = old.cursor()
            cur.execute(
                "INSERT INTO studies (id, name, created_at, created_by)"
                " VALUES ('old', 'Old study', now(), 'system:cli:tests')"
            )
            cur.close()
    before = snapshot(db)
    assert cli.main(["status", "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: the database {db} has schema version 2"), err
    assert f"python -m study init --db {db}" in err
    assert len(err.splitlines()) == 1
    assert snapshot(db) == before
    # and after `init` migrates it, status reads it
    assert cli.main(["init", "--db", str(db)]) == 0
    assert cli.main(["status", "--db", str(db)]) == 0
    assert "study old: Old study (draft)" in capsys.readouterr().out


def test_a_reader_that_stops_early_gets_no_traceback(built_db: Path) -> None:
    # `python -m study status | head -1`: the pipe is closed before the command writes
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CLINVAL_") or k == "CLINVAL_AUDIT_KEY_FILE"
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "study", "status", "--db", str(built_db)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    process.stdout.close()  # the reader is gone before Python has started
    stderr = process.stderr.read()
    assert process.wait(timeout=120) == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
