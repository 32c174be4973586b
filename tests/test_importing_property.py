"""Property tests: whatever bytes arrive, the readers either return a well-formed frame or raise
``ValidationError``; and a failed import through ``study.services`` leaves the database exactly as
it was."""

from __future__ import annotations

import csv
import io
import re
import tempfile
from pathlib import Path

import polars as pl
import pytest
from conftest import OPERATOR, add_person, sign_in
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from study import importing
from study.errors import ValidationError

SUFFIXES = [".csv", ".jsonl", ".ndjson", ".parquet"]
CASE_IDS = {"c1", "c2"}
ARMS = pl.DataFrame(
    {
        "arm_id": ["gpt", "doc"],
        "kind": ["llm", "clinician"],
        "label": ["GPT", "Doctors"],
        "model_name": ["gpt-4o", None],
        "model_version": ["2024-08-06", None],
        "author_role": [None, "nurse"],
    }
)
FEW = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# headers: mostly real column names, sometimes typos, unicode, quotes or empty names
column_names = st.one_of(
    st.sampled_from(importing.CASE_COLUMNS + importing.ANSWER_COLUMNS + importing.ARM_COLUMNS),
    st.text(min_size=0, max_size=8),
)
cells = st.one_of(
    st.sampled_from(["c1", "c2", "gpt", "doc", "llm", "clinician", "", " ", "2025-03-01", "{}"]),
    st.text(max_size=20),  # any unicode, including quotes, commas, newlines, NUL, surrogates out
)


def _read_any(path: Path, reader: str) -> pl.DataFrame:
    if reader == "cases":
        return importing.read_cases(path)
    if reader == "arms":
        return importing.read_arms(path)
    return importing.read_answers(path, known_case_ids=CASE_IDS, arms=ARMS)


EXPECTED = {
    "cases": importing.CASE_COLUMNS,
    "arms": importing.ARM_COLUMNS,
    "answers": importing.ANSWER_COLUMNS,
}


def _check_outcome(path: Path, reader: str) -> None:
    try:
        frame = _read_any(path, reader)
    except ValidationError as err:
        assert err.problems, "a ValidationError must name at least one problem"
        assert all(p.file == path.name for p in err.problems)
        return
    assert frame.columns == list(EXPECTED[reader])
    assert frame.height >= 1


@FEW
@given(
    data=st.binary(max_size=400),
    suffix=st.sampled_from(SUFFIXES),
    reader=st.sampled_from(sorted(EXPECTED)),
)
def test_random_bytes_give_a_frame_or_a_validation_error(data, suffix, reader):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"input{suffix}"
        path.write_bytes(data)
        _check_outcome(path, reader)


@st.composite
def csv_files(draw) -> str:
    header = draw(st.lists(column_names, min_size=1, max_size=6))
    rows = draw(
        st.lists(st.lists(cells, min_size=0, max_size=len(header) + 1), min_size=0, max_size=6)
    )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=draw(st.sampled_from(["\n", "\r\n"])))
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


@FEW
@given(text=csv_files(), reader=st.sampled_from(sorted(EXPECTED)), bom=st.booleans())
def test_random_csv_gives_a_frame_or_a_validation_error(text, reader, bom):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "input.csv"
        data = text.encode("utf-8", errors="surrogatepass")
        path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
        _check_outcome(path, reader)


json_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    cells,
    st.lists(cells, max_size=3),
    st.dictionaries(st.text(max_size=5), cells, max_size=2),
)


@FEW
@given(
    rows=st.lists(st.dictionaries(column_names, json_values, max_size=6), max_size=5),
    reader=st.sampled_from(sorted(EXPECTED)),
)
def test_random_jsonl_gives_a_frame_or_a_validation_error(rows, reader):
    import json

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "input.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        _check_outcome(path, reader)


def test_a_valid_file_passes_the_same_checks(tmp_path):
    # the property above would pass vacuously if every file failed: one known-good file
    path = tmp_path / "input.csv"
    path.write_text("case_id,question,tags\nc1,q,a;b\n", encoding="utf-8")
    _check_outcome(path, "cases")
    assert importing.read_cases(path)["tags"].to_list() == [["a", "b"]]


# --- the database is unchanged by a failed import -------------------------------------------


def _dump(store) -> dict[str, list[tuple]]:
    """Every row of every table, sorted, as Python values."""
    tables = store.read(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = 'main' AND table_type = 'BASE TABLE' ORDER BY table_name"
    )["table_name"].to_list()
    dump = {}
    for table in tables:
        rows = store.cursor().execute(f'SELECT * FROM "{table}"').fetchall()
        dump[table] = sorted(rows, key=repr)
    return dump


@pytest.fixture(scope="module")
def study_store(tmp_path_factory):
    """A draft study "prop" with arms and cases, whose coordinator ``alice`` imports."""
    from study.services import content, people, studies
    from study.store import Store

    folder = tmp_path_factory.mktemp("import-db")
    store = Store(folder / "clinval.duckdb")
    store.migrate()
    studies.create_study(store, OPERATOR, "Property", study_id="prop")
    add_person(store, "alice")
    people.grant_role(store, OPERATOR, "prop", "alice", "coordinator")
    alice = sign_in(store, "alice")
    arms = folder / "arms.csv"
    arms.write_text(
        "arm_id,kind,model_name,model_version,author_role\n"
        "gpt,llm,gpt-4o,2024-08-06,\ndoc,clinician,,,nurse\n",
        encoding="utf-8",
    )
    content.import_arms(store, alice, "prop", arms)
    cases = folder / "cases.csv"
    cases.write_text("case_id,question\nc1,first\nc2,second\n", encoding="utf-8")
    content.import_cases(store, alice, "prop", cases)
    yield store
    store.close()


answer_cells = st.one_of(
    st.sampled_from(["c1", "c2", "c3", "gpt", "doc", "x", "", "2025-03-01", "p", "dr1"]),
    st.text(max_size=6),
)


@st.composite
def import_files(draw) -> tuple[str, str]:
    kind = draw(st.sampled_from(["cases", "answers"]))
    allowed = importing.CASE_COLUMNS if kind == "cases" else importing.ANSWER_COLUMNS
    header = draw(
        st.lists(
            st.one_of(st.sampled_from(allowed), st.text(max_size=4)),
            min_size=1,
            max_size=8,
            unique=True,
        )
    )
    rows = draw(
        st.lists(st.lists(answer_cells, min_size=len(header), max_size=len(header)), max_size=5)
    )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return kind, out.getvalue()


@FEW
@given(file=import_files())
def test_a_failed_import_leaves_every_table_as_it_was(study_store, file):
    from study.services import content

    kind, text = file
    alice = sign_in(study_store, "alice")
    before = _dump(study_store)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{kind}.csv"
        path.write_bytes(text.encode("utf-8", errors="surrogatepass"))
        importer = content.import_cases if kind == "cases" else content.import_answers
        try:
            importer(study_store, alice, "prop", path)
        except ValidationError:
            assert _dump(study_store) == before
        else:
            after = _dump(study_store)
            assert after["audit_events"] != before["audit_events"]  # a success is audited


def test_the_database_property_also_sees_successes(study_store, tmp_path):
    # guards against the property passing only because every random file failed; its own study,
    # since a random cases file that happened to be valid may have added cases to "prop"
    from study.services import content, people, studies

    studies.create_study(study_store, OPERATOR, "Property, successes", study_id="prop-ok")
    people.grant_role(study_store, OPERATOR, "prop-ok", "alice", "coordinator")
    alice = sign_in(study_store, "alice")
    (tmp_path / "arms.csv").write_text(
        "arm_id,kind,model_name,model_version,author_role\ngpt,llm,gpt-4o,2024-08-06,\n",
        encoding="utf-8",
    )
    content.import_arms(study_store, alice, "prop-ok", tmp_path / "arms.csv")
    (tmp_path / "cases.csv").write_text("case_id,question\nc1,first\nc2,second\n", "utf-8")
    content.import_cases(study_store, alice, "prop-ok", tmp_path / "cases.csv")
    path = tmp_path / "answers.csv"
    path.write_text(
        "case_id,arm_id,text,generated_at,prompt,author_id\n"
        "c1,gpt,a,2025-03-01,p,\nc2,gpt,b,2025-03-01,p,\n",
        encoding="utf-8",
    )
    before = _dump(study_store)
    result = content.import_answers(study_store, alice, "prop-ok", path)
    assert result.added == 2
    assert _dump(study_store)["answers"] != before["answers"]


# --- field counts: well-formed CSV always passes; one dropped field is always found ------------

# the characters that make CSV hard: separators, quotes and line breaks inside values
tricky_text = st.text(alphabet=st.sampled_from(list(',"\n\r ;ab\u00e9')), max_size=12)
LINE_BREAK = re.compile(r"\r\n|\r|\n")  # what counts as a line in "row R (line N)"


def _csv_cell(draw, value: str) -> str:
    needs_quotes = any(ch in value for ch in ',"\r\n')
    if needs_quotes or draw(st.booleans()):
        return '"' + value.replace('"', '""') + '"'
    return value


@st.composite
def well_formed_cases(draw) -> tuple[list[str], list[list[str]], str, bool, bool]:
    """(header, rows of values, line end, BOM, final line end) of a valid cases file whose
    optional values are random text full of commas, quotes and line breaks."""
    optional = draw(st.sampled_from([[], ["context"], ["context", "specialty"]]))
    header = ["case_id", "question", *optional]
    n = draw(st.integers(min_value=1, max_value=6))
    rows = [
        [f"c{i}", "q" + draw(tricky_text), *(draw(tricky_text) for _ in optional)] for i in range(n)
    ]
    return (
        header,
        rows,
        draw(st.sampled_from(["\n", "\r\n"])),
        draw(st.booleans()),
        draw(st.booleans()),
    )


def _render(draw, header, rows, eol, final_eol) -> tuple[str, list[int]]:
    """The CSV text and the offset where each data row starts."""
    lines = [",".join(_csv_cell(draw, h) for h in header)]
    starts = []
    offset = len(lines[0]) + len(eol)
    for row in rows:
        line = ",".join(_csv_cell(draw, v) for v in row)
        starts.append(offset)
        offset += len(line) + len(eol)
        lines.append(line)
    return eol.join(lines) + (eol if final_eol else ""), starts


def _write(folder: str, text: str, bom: bool) -> Path:
    path = Path(folder) / "cases.csv"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return path


@FEW
@given(case=well_formed_cases(), data=st.data())
def test_well_formed_csv_never_has_a_field_count_problem(case, data):
    header, rows, eol, bom, final_eol = case
    text, _ = _render(data.draw, header, rows, eol, final_eol)
    with tempfile.TemporaryDirectory() as tmp:
        got = importing.read_cases(_write(tmp, text, bom))
    assert got.select(header).rows() == [tuple(v if v != "" else None for v in r) for r in rows]


@FEW
@given(case=well_formed_cases(), data=st.data())
def test_a_row_missing_one_field_is_always_found(case, data):
    header, rows, eol, bom, final_eol = case
    r = data.draw(st.integers(min_value=0, max_value=len(rows) - 1), label="row")
    dropped = data.draw(st.integers(min_value=0, max_value=len(header) - 1), label="field")
    rows[r] = [v for i, v in enumerate(rows[r]) if i != dropped]
    text, starts = _render(data.draw, header, rows, eol, final_eol)
    line = 1 + len(LINE_BREAK.findall(text, 0, starts[r]))
    with tempfile.TemporaryDirectory() as tmp, pytest.raises(ValidationError) as info:
        importing.read_cases(_write(tmp, text, bom))
    fields = len(header) - 1
    expected = (
        f"row {r + 1} (line {line}) has {fields} field{'s' if fields > 1 else ''}; "
        f"the header has {len(header)}"
    )
    located = [p for p in info.value.problems if p.row == r + 1 and p.column is None]
    assert [p.reason[: len(expected)] for p in located] == [expected], info.value.problems
