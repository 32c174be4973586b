"""study.importing: every malformed input is reported with file, row, column and reason; good
input comes out the same whatever the format, with text kept byte for byte."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest

from study import importing
from study.errors import Problem, ValidationError

DATA = Path(__file__).parent / "data" / "import"
CASE_IDS = {"c1", "c2", "c3"}

ARMS_CSV = (
    "arm_id,kind,label,model_name,model_version,author_role\n"
    "gpt,llm,GPT arm,gpt-4o,2024-08-06,\n"
    "doc,clinician,Doctors,,,attending physician\n"
)
ANSWER_HEADER = "case_id,arm_id,text,model_version,generated_at,prompt,parameters,author_id\n"
GOOD_ANSWER_ROWS = (
    "c1,gpt,Call 112.,,2025-03-01,Answer: {q},,\n"
    "c2,gpt,Rest.,,2025-03-01,Answer: {q},,\n"
    "c3,gpt,Yes.,,2025-03-01,Answer: {q},,\n"
    "c1,doc,Go to the ER.,,,,,dr1\n"
    "c2,doc,Sleep.,,,,,dr2\n"
    "c3,doc,No.,,,,,dr1\n"
)


@pytest.fixture
def arms() -> pl.DataFrame:
    return importing.read_arms(DATA / "arms.csv")


def write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def problems_of(call) -> list[Problem]:
    with pytest.raises(ValidationError) as info:
        call()
    return info.value.problems


def read(kind: str, path: Path, arms: pl.DataFrame, **kwargs) -> pl.DataFrame:
    if kind == "cases":
        return importing.read_cases(path, **kwargs)
    if kind == "arms":
        return importing.read_arms(path, **kwargs)
    return importing.read_answers(path, known_case_ids=CASE_IDS, arms=arms, **kwargs)


# (id, reader, file name, content, extra kwargs, expected row, column, reason fragment)
MALFORMED = [
    ("missing file", "cases", None, None, {}, None, None, "file not found"),
    ("unknown extension", "cases", "cases.xlsx", "x", {}, None, None, "unknown file type '.xlsx'"),
    ("empty file", "cases", "cases.csv", b"", {}, None, None, "the file is empty"),
    ("BOM only", "cases", "cases.csv", b"\xef\xbb\xbf", {}, None, None, "the file is empty"),
    ("header only", "cases", "cases.csv", "case_id,question\n", {}, None, None, "no data rows"),
    (
        "oversized",
        "cases",
        "cases.csv",
        "case_id,question\nc1,q\n",
        {"max_bytes": 10},
        None,
        None,
        "the limit is 0.0 MB",
    ),
    (
        "not UTF-8 (CSV)",
        "cases",
        "cases.csv",
        b"case_id,question\nc1,caf\xe9\n",
        {},
        1,
        None,
        "not UTF-8: byte 0xe9 at row 1 (line 2), byte offset 23",
    ),
    (
        "not UTF-8 (JSONL)",
        "cases",
        "cases.jsonl",
        b'{"case_id": "c1", "question": "ok"}\n{"case_id": "c2", "question": "caf\xe9"}\n',
        {},
        2,
        None,
        "not UTF-8: byte 0xe9 at line 2",
    ),
    (
        "bad quote in CSV",
        "cases",
        "cases.csv",
        'case_id,question\nc1,fine\nc2,"hi" there\n',
        {},
        2,
        None,
        "line 3: malformed CSV",
    ),
    (
        "too many CSV fields",
        "cases",
        "cases.csv",
        "case_id,question\nc1,a, b\n",
        {},
        1,
        None,
        "row 1 (line 2) has 3 fields; the header has 2",
    ),
    (
        "malformed JSON line",
        "cases",
        "cases.jsonl",
        '{"case_id": "c1", "question": "q"}\n{"case_id": "c2", "question": }\n',
        {},
        2,
        None,
        "not valid JSON",
    ),
    (
        "JSON line not an object",
        "cases",
        "cases.jsonl",
        '{"case_id": "c1", "question": "q"}\n\n["c2", "q"]\n',
        {},
        3,
        None,
        "each line must be a JSON object",
    ),
    (
        "missing required column",
        "cases",
        "cases.csv",
        "case_id,context\nc1,x\n",
        {},
        None,
        "question",
        "required column 'question' is missing",
    ),
    (
        "unknown column (typo)",
        "cases",
        "cases.csv",
        "case_id,questoin\nc1,x\n",
        {},
        None,
        "questoin",
        "unknown column 'questoin' (did you mean 'question'?); allowed columns: case_id, "
        "question, context, specialty, tags",
    ),
    (
        "column twice",
        "cases",
        "cases.csv",
        "case_id,question,question\nc1,x,y\n",
        {},
        None,
        "question",
        "column 'question' appears more than once",
    ),
    (
        "semicolon-separated",
        "cases",
        "cases.csv",
        "case_id;question\nc1;x\n",
        {},
        None,
        "case_id;question",
        "separated by semicolons, not commas",
    ),
    (
        "whitespace-only required text",
        "cases",
        "cases.csv",
        'case_id,question\nc1,ok\nc2," \t "\n',
        {},
        2,
        "question",
        "question is empty; every row needs one",
    ),
    (
        "duplicate id",
        "cases",
        "cases.csv",
        "case_id,question\nc1,a\nc2,b\nc1,c\n",
        {},
        3,
        "case_id",
        "duplicate case_id (case_id 'c1'); first given in row 1",
    ),
    (
        "id with a space",
        "cases",
        "cases.csv",
        "case_id,question\ncase 1,a\n",
        {},
        1,
        "case_id",
        "contains spaces or control characters",
    ),
    (
        "NUL byte",
        "cases",
        "cases.csv",
        "case_id,question\nc1,a\x00b\n",
        {},
        1,
        "question",
        "contains a NUL character",
    ),
    (
        "text too long",
        "cases",
        "cases.csv",
        "case_id,question\nc1," + "x" * 100_001 + "\n",
        {},
        1,
        "question",
        "100,001 characters; at most 100,000 are accepted",
    ),
    (
        "JSON number where text is expected",
        "cases",
        "cases.jsonl",
        '{"case_id": "c1", "question": "q"}\n{"case_id": 2, "question": "q"}\n',
        {},
        2,
        "case_id",
        "must be a JSON string (in quotes), got a number",
    ),
    (
        "JSON tags not a list of strings",
        "cases",
        "cases.jsonl",
        '{"case_id": "c1", "question": "q", "tags": ["a"]}\n'
        '{"case_id": "c2", "question": "q", "tags": ["a", 3]}\n',
        {},
        2,
        "tags",
        "tags must be a list of strings",
    ),
    (
        "arm kind not llm/clinician",
        "arms",
        "arms.csv",
        "arm_id,kind,model_name,model_version\ngpt,LLM,gpt-4o,1\n",
        {},
        1,
        "kind",
        "kind 'LLM' is not one of llm, clinician",
    ),
    (
        "LLM arm without version",
        "arms",
        "arms.csv",
        "arm_id,kind,model_name,model_version\ngpt,llm,gpt-4o,\n",
        {},
        1,
        "model_version",
        "an llm arm needs its model_version",
    ),
    (
        "generated_at not ISO",
        "answers",
        "answers.csv",
        ANSWER_HEADER + GOOD_ANSWER_ROWS.replace("2025-03-01", "01/03/2025", 1),
        {},
        1,
        "generated_at",
        "'01/03/2025' is not an ISO 8601 date",
    ),
    (
        "impossible date",
        "answers",
        "answers.csv",
        ANSWER_HEADER + GOOD_ANSWER_ROWS.replace("2025-03-01", "2025-02-30", 1),
        {},
        1,
        "generated_at",
        "'2025-02-30' is not an ISO 8601 date",
    ),
    (
        "parameters not JSON",
        "answers",
        "answers.csv",
        ANSWER_HEADER + GOOD_ANSWER_ROWS.replace("Answer: {q},,", "Answer: {q},{temp: 0},", 1),
        {},
        1,
        "parameters",
        "parameters is not valid JSON",
    ),
    (
        "parameters not an object",
        "answers",
        "answers.csv",
        ANSWER_HEADER + GOOD_ANSWER_ROWS.replace("Answer: {q},,", 'Answer: {q},"[0.2]",', 1),
        {},
        1,
        "parameters",
        "parameters must be a JSON object {...}, got a list",
    ),
    (
        # Python's json reads NaN, JSON has no such value: stored, it could not be written out
        "parameters holding NaN",
        "answers",
        "answers.csv",
        ANSWER_HEADER
        + GOOD_ANSWER_ROWS.replace("Answer: {q},,", 'Answer: {q},"{""top_p"": NaN}",', 1),
        {},
        1,
        "parameters",
        "parameters holds NaN or Infinity, which JSON does not allow",
    ),
    (
        "unknown case",
        "answers",
        "answers.csv",
        ANSWER_HEADER + GOOD_ANSWER_ROWS + "c9,gpt,x,,2025-03-01,p,,\n",
        {},
        7,
        "case_id",
        "unknown case 'c9'",
    ),
    (
        "unknown arm",
        "answers",
        "answers.csv",
        ANSWER_HEADER + GOOD_ANSWER_ROWS + "c1,gemini,x,,2025-03-01,p,,\n",
        {},
        7,
        "arm_id",
        "unknown arm 'gemini'; the study's arms are: 'gpt', 'doc'",
    ),
    (
        "LLM answer without prompt",
        "answers",
        "answers.csv",
        ANSWER_HEADER + GOOD_ANSWER_ROWS.replace("Answer: {q}", "", 1),
        {},
        1,
        "prompt",
        "an LLM answer needs the prompt",
    ),
    (
        "LLM answer without date",
        "answers",
        "answers.csv",
        ANSWER_HEADER + GOOD_ANSWER_ROWS.replace("2025-03-01", "", 1),
        {},
        1,
        "generated_at",
        "an LLM answer needs its generation date",
    ),
    (
        "clinician answer without author",
        "answers",
        "answers.csv",
        ANSWER_HEADER + GOOD_ANSWER_ROWS.replace(",dr2", ","),
        {},
        5,
        "author_id",
        "a clinician answer needs author_id",
    ),
    (
        "model version differs from the arm",
        "answers",
        "answers.csv",
        ANSWER_HEADER + GOOD_ANSWER_ROWS.replace("Rest.,,", "Rest.,2024-05-13,"),
        {},
        2,
        "model_version",
        "model_version '2024-05-13' differs from the arm's pinned '2024-08-06'",
    ),
    (
        "the same case twice from one arm",
        "answers",
        "answers.csv",
        ANSWER_HEADER + GOOD_ANSWER_ROWS + "c1,gpt,Again.,,2025-03-01,p,,\n",
        {},
        7,
        "arm_id",
        "first given in row 1",
    ),
    (
        "generation date in the future",
        "answers",
        "answers.csv",
        ANSWER_HEADER + GOOD_ANSWER_ROWS.replace("2025-03-01", "2999-01-01", 1),
        {},
        1,
        "generated_at",
        "'2999-01-01' is in the future",
    ),
]


@pytest.mark.parametrize(
    ("kind", "name", "content", "kwargs", "row", "column", "reason"),
    [pytest.param(*case[1:], id=case[0]) for case in MALFORMED],
)
def test_malformed_input_is_reported_where_it_is(
    tmp_path, arms, kind, name, content, kwargs, row, column, reason
):
    path = tmp_path / "nowhere.csv" if name is None else write(tmp_path, name, content)
    found = problems_of(lambda: read(kind, path, arms, **kwargs))
    located = [p for p in found if (p.file, p.row, p.column) == (path.name, row, column)]
    assert any(reason in p.reason for p in located), "\n".join(map(str, found))


@pytest.mark.parametrize(
    ("separator", "word"), [(";", "semicolons"), ("\t", "tabs")], ids=["semicolons", "tabs"]
)
@pytest.mark.parametrize("bom", [False, True], ids=["no-BOM", "BOM"])
def test_a_file_separated_by_something_else_is_one_problem_saying_so(
    tmp_path, separator, word, bom
):
    # As a spreadsheet in a European language saves K-QA's questions: one holds a comma, one a
    # line break (so it is quoted). Read with commas, the rows fall apart in ways that hide why.
    rows = [
        ["case_id", "question"],
        ["kqa-017", "Because I have a fatty liver, can I safely take Imodium?"],
        ["kqa-026", '"Can diabetics eat sweets?\n"'],
        ["kqa-027", "Can I take the painkiller and the antibiotics at the same time?"],
    ]
    text = "".join(separator.join(row) + "\r\n" for row in rows)
    path = write(tmp_path, "cases.csv", ("\ufeff" if bom else "") + text)
    (problem,) = problems_of(lambda: importing.read_cases(path))
    assert (problem.file, problem.row) == ("cases.csv", None)
    assert problem.reason.startswith(f"separated by {word}, not commas: save the file as CSV")


def test_every_problem_is_reported_in_one_go(tmp_path):
    path = write(
        tmp_path,
        "cases.csv",
        "case_id,question,colour\nc1,\nc1,q\nc 3,q\n",
    )
    found = problems_of(lambda: importing.read_cases(path))
    where = {(p.row, p.column) for p in found}
    assert {(None, "colour"), (1, "question"), (2, "case_id"), (3, "case_id")} <= where


def test_problems_of_one_kind_are_capped_and_counted(tmp_path):
    rows = "".join(f"c{i},\n" for i in range(250))
    path = write(tmp_path, "cases.csv", "case_id,question\n" + rows)
    found = problems_of(lambda: importing.read_cases(path))
    empty = [p for p in found if p.reason.startswith("question is empty")]
    assert len(empty) == importing.MAX_PROBLEMS_PER_KIND
    assert [p.reason for p in found if p.row is None] == [
        "... and 50 more rows with the same problem"
    ]


def test_default_size_limit_comes_from_the_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("CLINVAL_MAX_IMPORT_MB", "0")
    path = write(tmp_path, "cases.csv", "case_id,question\nc1,q\n")
    (problem,) = problems_of(lambda: importing.read_cases(path))
    assert "setting CLINVAL_MAX_IMPORT_MB" in problem.reason


FORMULAS = [
    '=HYPERLINK("http://evil.example","click")',
    "+1+1",
    "-2+3",
    "@SUM(A1:A2)",
    "<script>alert('x')</script>",
    '<img src=x onerror="alert(1)">',
    "  leading and trailing spaces  ",
    "line one\r\nline two\nline three",
    "naïve café, 心筋梗塞",
]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_formulas_and_html_are_kept_byte_for_byte(tmp_path, suffix):
    frame = pl.DataFrame({"case_id": [f"c{i}" for i in range(len(FORMULAS))], "question": FORMULAS})
    path = tmp_path / f"cases{suffix}"
    {".csv": frame.write_csv, ".jsonl": frame.write_ndjson, ".parquet": frame.write_parquet}[
        suffix
    ](path)
    got = importing.read_cases(path)
    assert got["question"].to_list() == FORMULAS
    assert [q.encode() for q in got["question"]] == [q.encode() for q in FORMULAS]


def test_fixture_keeps_formula_and_script(tmp_path):
    got = importing.read_cases(DATA / "cases.csv")
    assert got["question"][1] == '=HYPERLINK("http://evil.example","click")'
    assert got["question"][2] == '<script>alert(1)</script> Is "aspirin" safe?'


def test_byte_order_mark_is_removed_and_nothing_else(tmp_path):
    plain = (DATA / "cases.csv").read_bytes()
    path = write(tmp_path, "cases.csv", b"\xef\xbb\xbf" + plain)
    assert importing.read_cases(path).equals(importing.read_cases(DATA / "cases.csv"))
    jsonl = write(tmp_path, "cases.jsonl", b"\xef\xbb\xbf" + (DATA / "cases.jsonl").read_bytes())
    assert importing.read_cases(jsonl).columns == list(importing.CASE_COLUMNS)
    assert importing.read_cases(jsonl)["case_id"][0] == "c1"


def _to_parquet(frame: pl.DataFrame, path: Path) -> Path:
    frame.write_parquet(path)
    return path


def test_the_three_formats_give_identical_case_frames(tmp_path):
    from_csv = importing.read_cases(DATA / "cases.csv")
    from_jsonl = importing.read_cases(DATA / "cases.jsonl")
    # Parquet as a producer would write it: tags as a list column, missing values as nulls
    parquet = _to_parquet(
        pl.DataFrame(
            {
                "case_id": ["c1", "c2", "c3"],
                "question": from_csv["question"].to_list(),
                "context": ["58-year-old man", None, "Line one\nline two"],
                "specialty": ["cardiology", "general", None],
                "tags": [["urgent", "chest pain"], [], ["a", "", "b", ""]],
            }
        ),
        tmp_path / "cases.parquet",
    )
    from_parquet = importing.read_cases(parquet)
    assert from_csv.schema == pl.Schema(
        {
            "case_id": pl.String,
            "question": pl.String,
            "context": pl.String,
            "specialty": pl.String,
            "tags": pl.List(pl.String),
            "conversation": pl.String,
            "criteria": pl.String,
        }
    )
    assert from_csv.equals(from_jsonl)
    assert from_csv.equals(from_parquet)
    assert from_csv["tags"].to_list() == [["urgent", "chest pain"], [], ["a", "b"]]


def test_the_three_formats_give_identical_answer_frames(tmp_path, arms):
    from_csv = importing.read_answers(DATA / "answers.csv", known_case_ids=CASE_IDS, arms=arms)
    raw = pl.read_csv(DATA / "answers.csv", infer_schema=False)
    jsonl = tmp_path / "answers.jsonl"
    with jsonl.open("w", encoding="utf-8") as out:
        for row in raw.iter_rows(named=True):
            if row["parameters"] is not None:  # a JSON object, as a JSONL producer writes it
                row["parameters"] = json.loads(row["parameters"])
            out.write(json.dumps({k: v for k, v in row.items() if v is not None}) + "\n")
    parquet = _to_parquet(raw, tmp_path / "answers.parquet")
    for path in (jsonl, parquet):
        got = importing.read_answers(path, known_case_ids=CASE_IDS, arms=arms)
        assert got.equals(from_csv), path.suffix
    assert from_csv.columns == [*importing.ANSWER_COLUMNS, "not_recorded"]
    assert from_csv.schema["generated_at"] == pl.String


def test_answers_take_model_and_role_from_their_arm_and_default_ids(arms):
    got = importing.read_answers(DATA / "answers.csv", known_case_ids=CASE_IDS, arms=arms)
    llm = got.filter(pl.col("arm_id") == "gpt")
    doc = got.filter(pl.col("arm_id") == "doc")
    assert set(llm["model_version"]) == {"2024-08-06"}
    assert set(llm["model_name"]) == {"gpt-4o"}
    assert llm["author_role"].null_count() == llm.height
    assert set(doc["author_role"]) == {"attending physician"}
    assert doc["model_version"].null_count() == doc.height
    assert got["answer_id"][0] == "c1:gpt"
    # provenance kept as written, date-time and all
    assert got["generated_at"].to_list()[:2] == ["2025-03-01", "2025-03-01T14:05:00Z"]
    assert got["parameters"][0] == '{"temperature":0}'


def test_an_arm_may_answer_some_cases_only(tmp_path, arms):
    only_c1 = write(
        tmp_path, "answers.csv", ANSWER_HEADER + "c1,gpt,Call 112.,,2025-03-01,Answer: {q},,\n"
    )
    got = importing.read_answers(only_c1, known_case_ids=CASE_IDS, arms=arms)
    assert got.select("case_id", "arm_id").rows() == [("c1", "gpt")]


def test_arms_default_label_and_clinician_arm_without_model(tmp_path):
    path = write(tmp_path, "arms.csv", "arm_id,kind\ndocs,clinician\n")
    got = importing.read_arms(path)
    assert got.row(0) == ("docs", "clinician", "docs", None, None, None, [])
    bad = write(tmp_path, "arms2.csv", "arm_id,kind,model_name\ndocs,clinician,gpt-4o\n")
    (problem,) = problems_of(lambda: importing.read_arms(bad))
    assert (problem.row, problem.column) == (1, "model_name")


def test_parquet_typed_columns_are_refused_not_converted(tmp_path):
    path = _to_parquet(
        pl.DataFrame({"case_id": [1, 2], "question": ["a", "b"]}), tmp_path / "cases.parquet"
    )
    (problem,) = problems_of(lambda: importing.read_cases(path))
    assert (problem.row, problem.column) == (None, "case_id")
    assert problem.reason.startswith("stored as Int64; store it as text")


def test_jsonl_blank_lines_are_ignored_and_rows_are_line_numbers(tmp_path):
    path = write(
        tmp_path,
        "cases.jsonl",
        '{"case_id": "c1", "question": "q"}\n\n   \n{"case_id": "c2", "question": ""}\n',
    )
    (problem,) = problems_of(lambda: importing.read_cases(path))
    assert (problem.row, problem.column) == (4, "question")


def test_crlf_line_ends_are_line_ends_not_data(tmp_path):
    path = write(tmp_path, "cases.csv", "case_id,question\r\nc1,q1\r\nc2,q2\r\n")
    assert importing.read_cases(path)["question"].to_list() == ["q1", "q2"]


# --- regressions from review ---------------------------------------------------------------------


def test_a_key_given_twice_in_a_jsonl_object_is_a_problem(tmp_path):
    path = write(
        tmp_path,
        "cases.jsonl",
        '{"case_id":"d1","question":"a"}\n{"case_id":"d2","question":"b","case_id":"d3"}\n'
        '{"case_id":"d4", "question" : "c", "question":"c"}\n',
    )
    found = problems_of(lambda: importing.read_cases(path))
    assert [(p.row, p.column, p.reason) for p in found] == [
        (2, "case_id", "'case_id' appears twice in this object"),
        (3, "question", "'question' appears twice in this object"),
    ]


def test_key_like_text_and_nulls_are_not_duplicate_keys(tmp_path):
    path = write(
        tmp_path,
        "cases.jsonl",
        '{"case_id":"d1","question":"say \\"case_id\\": twice","context":null}\n',
    )
    assert importing.read_cases(path)["question"].to_list() == ['say "case_id": twice']


@pytest.mark.parametrize(
    ("tags", "got"),
    [("[1, 2]", "a list containing a number"), ('["a", true]', "a list containing a boolean")],
)
def test_a_tag_list_of_non_strings_says_what_it_contains(tmp_path, tags, got):
    path = write(tmp_path, "cases.jsonl", f'{{"case_id":"c1","question":"q","tags":{tags}}}\n')
    (problem,) = problems_of(lambda: importing.read_cases(path))
    assert problem.reason.endswith(f"got {got}"), problem.reason


def test_empty_tag_lists_are_no_tags(tmp_path):
    path = write(tmp_path, "cases.jsonl", '{"case_id":"c1","question":"q","tags":[]}\n')
    assert importing.read_cases(path)["tags"].to_list() == [[]]


def test_a_missing_required_column_is_not_also_empty_in_every_row(tmp_path):
    path = write(tmp_path, "cases.csv", "case_id,questoin\nc1,hello\n")
    found = problems_of(lambda: importing.read_cases(path))
    assert [(p.row, p.column) for p in found] == [(None, "questoin"), (None, "question")]
    assert "required column 'question' is missing" in found[1].reason


def test_the_summary_line_comes_after_the_rows_it_summarises(tmp_path):
    rows = "".join(f"c{i},\n" for i in range(300))
    path = write(tmp_path, "cases.csv", "case_id,question\n" + rows + "x y,q\n")
    found = problems_of(lambda: importing.read_cases(path))
    empties = [i for i, p in enumerate(found) if p.reason.startswith("question is empty")]
    (summary,) = [i for i, p in enumerate(found) if p.reason.startswith("... and")]
    assert summary == empties[-1] + 1 and found[summary].repeats == 100
    assert found[-1].row == 301  # later rows still follow, in row order
    assert sum(p.repeats for p in found) == 301


def test_non_utf8_csv_is_located_by_data_row_and_the_rest_is_still_judged(tmp_path):
    path = write(tmp_path, "cases.csv", b'case_id,question\nc1,"two\nlines"\nc2,caf\xe9\nc 3,q\n')
    found = problems_of(lambda: importing.read_cases(path))
    assert [(p.row, p.column) for p in found] == [(2, None), (3, "case_id")]
    assert "byte 0xe9 at row 2 (line 4)" in found[0].reason


def test_non_utf8_jsonl_line_is_reported_once_and_the_rest_is_still_judged(tmp_path):
    content = b'{"case_id":"c1","question":"caf\xe9"}\n{"case_id":"c 2","question":"q"}\n'
    found = problems_of(lambda: importing.read_cases(write(tmp_path, "cases.jsonl", content)))
    assert [(p.row, p.column) for p in found] == [(1, None), (2, "case_id")]
    assert found[0].reason.startswith("not UTF-8: byte 0xe9 at line 1")


def test_an_unreadable_jsonl_line_is_reported_and_the_good_lines_judged(tmp_path, arms):
    lines = [
        '{"case_id":"c1","arm_id":"gpt","text":"x","generated_at":"2025-03-01","prompt":"p"}',
        "{broken",
        '{"case_id":"c9","arm_id":"gpt","text":"x","generated_at":"2025-03-01","prompt":"p"}',
    ]
    path = write(tmp_path, "answers.jsonl", "\n".join(lines) + "\n")
    found = problems_of(lambda: importing.read_answers(path, known_case_ids=CASE_IDS, arms=arms))
    assert [(p.row, p.reason.split(":")[0]) for p in found] == [
        (2, "not valid JSON"),
        (3, "unknown case 'c9'"),
    ]


@pytest.mark.parametrize(
    "written",
    [
        "2025-01-01T14:05:00Z",
        "2025-01-01T23:59:00-05:00",  # 2025-01-02 in UTC: not cut to a date
        "2025-01-01",
        "2025-01-01 10:00",
        "2025-01-01T10:00:00.123+0100",
    ],
)
def test_generated_at_is_kept_exactly_as_written(tmp_path, arms, written):
    rows = "".join(f"{c},gpt,t,{written},p\n" for c in sorted(CASE_IDS))
    path = write(tmp_path, "answers.csv", "case_id,arm_id,text,generated_at,prompt\n" + rows)
    got = importing.read_answers(path, known_case_ids=CASE_IDS, arms=arms)
    assert got["generated_at"].to_list() == [written] * 3


def test_generated_at_in_the_future_is_judged_in_utc(tmp_path, arms):
    now = dt.datetime.now(dt.UTC)
    soon = (now + dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    # the same instant written with another offset
    soon_ny = (now + dt.timedelta(hours=2)).astimezone(dt.timezone(dt.timedelta(hours=-5)))
    past = (now - dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    values = {"c1": soon, "c2": soon_ny.strftime("%Y-%m-%dT%H:%M:%S-05:00"), "c3": past}
    rows = "".join(f"{c},gpt,t,{v},p\n" for c, v in values.items())
    path = write(tmp_path, "answers.csv", "case_id,arm_id,text,generated_at,prompt\n" + rows)
    found = problems_of(lambda: importing.read_answers(path, known_case_ids=CASE_IDS, arms=arms))
    assert [(p.row, p.reason.endswith("is in the future")) for p in found] == [
        (1, True),
        (2, True),
    ]


# --- CSV rows with the wrong number of fields ---------------------------------------------------
# polars fills a short row with nulls as if its last fields were empty; the reader must refuse it.

CASE_HEADER_4 = "case_id,question,context,specialty"


def _short_row_file(eol: str, *, bom: bool, final_eol: bool) -> bytes:
    rows = [
        CASE_HEADER_4,
        'c1,"Chest pain, since ""yesterday""",' + f'"line one{eol}line two",cardiology',
        'c2,"Fever, cough",,',  # empty trailing fields keep their commas: well-formed
        "c7,What is...",  # lost its last two fields
        "c8,q,ctx,general",
    ]
    text = eol.join(rows) + (eol if final_eol else "")
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode()


@pytest.mark.parametrize("eol", ["\n", "\r\n"], ids=["LF", "CRLF"])
@pytest.mark.parametrize("bom", [False, True], ids=["no-BOM", "BOM"])
@pytest.mark.parametrize("final_eol", [True, False], ids=["final-newline", "no-final-newline"])
def test_a_short_csv_row_is_a_problem_not_nulls(tmp_path, eol, bom, final_eol):
    path = write(tmp_path, "cases.csv", _short_row_file(eol, bom=bom, final_eol=final_eol))
    found = problems_of(lambda: importing.read_cases(path))
    # row 3 starts on line 5: the quoted value of row 1 spans two lines
    assert [(p.row, p.column, p.reason.split(" (")[0]) for p in found] == [
        (3, None, "row 3"),
    ]
    assert found[0].reason.startswith("row 3 (line 5) has 2 fields; the header has 4")


@pytest.mark.parametrize("eol", ["\n", "\r\n"], ids=["LF", "CRLF"])
@pytest.mark.parametrize("bom", [False, True], ids=["no-BOM", "BOM"])
@pytest.mark.parametrize("final_eol", [True, False], ids=["final-newline", "no-final-newline"])
def test_the_same_file_with_every_field_is_accepted(tmp_path, eol, bom, final_eol):
    content = _short_row_file(eol, bom=bom, final_eol=final_eol).replace(
        b"c7,What is...", b"c7,What is...,,"
    )
    got = importing.read_cases(write(tmp_path, "cases.csv", content))
    assert got["case_id"].to_list() == ["c1", "c2", "c7", "c8"]
    assert got["question"][0] == 'Chest pain, since "yesterday"'
    assert got["context"][0] == f"line one{eol}line two"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(
            "case_id,question\nc1,q\nc2\nc3,q\n",
            [
                (2, "row 2 (line 3) has 1 field; the header has 2 (a comma is missing"),
                (2, "question is empty"),
            ],
            id="one field",
        ),
        pytest.param(
            "case_id,question\nc1,q\n\nc3,q\n",
            [(2, "row 2 (line 3) is a blank line; the header has 2 fields")],
            id="blank line (one problem, not one per required column)",
        ),
        pytest.param(
            "case_id,question\nc1,q\nc2,q\n\n",
            [(3, "row 3 (line 4) is a blank line; the header has 2 fields")],
            id="blank line at the end",
        ),
        pytest.param(
            'case_id,question,context\nc1,"a\n\nb",x\nc2,q\n',
            [(2, "row 2 (line 5) has 2 fields; the header has 3")],
            id="blank line inside quotes is data, the short row after it is not",
        ),
        pytest.param(
            "case_id,question,context\nc1,q,x,y\nc2,q\n",
            [
                (1, "row 1 (line 2) has 4 fields; the header has 3"),
                (2, "row 2 (line 3) has 2 fields; the header has 3"),
            ],
            id="too many and too few in one file",
        ),
    ],
)
def test_rows_with_the_wrong_field_count_are_each_located(tmp_path, content, expected):
    found = problems_of(lambda: importing.read_cases(write(tmp_path, "cases.csv", content)))
    got = [(p.row, p.reason) for p in found]
    assert len(got) == len(expected), got
    for (row, reason), (want_row, prefix) in zip(got, expected, strict=True):
        assert (row, reason[: len(prefix)]) == (want_row, prefix), got


def test_short_rows_in_an_answers_file_are_located(tmp_path, arms):
    rows = GOOD_ANSWER_ROWS.replace("c2,doc,Sleep.,,,,,dr2\n", "c2,doc,Sleep.\n")
    path = write(tmp_path, "answers.csv", ANSWER_HEADER + rows)
    found = problems_of(lambda: read("answers", path, arms))
    counts = [p for p in found if p.column is None]
    assert [(p.row, p.reason[:45]) for p in counts] == [
        (5, "row 5 (line 6) has 3 fields; the header has 8")
    ]


def test_short_rows_are_capped_and_counted(tmp_path):
    rows = "".join(f"c{i},q\n" for i in range(250))
    path = write(tmp_path, "cases.csv", "case_id,question,context\n" + rows)
    found = problems_of(lambda: importing.read_cases(path))
    assert len(found) == importing.MAX_PROBLEMS_PER_KIND + 1
    assert found[0].reason.startswith("row 1 (line 2) has 2 fields; the header has 3")
    assert found[-1].reason == "... and 50 more rows with the same problem"
    assert found[-1].repeats == 50


def test_a_short_row_is_found_alongside_bytes_that_are_not_utf8(tmp_path):
    content = b"case_id,question,context\nc1,caf\xe9,x\nc2,q\n"
    found = problems_of(lambda: importing.read_cases(write(tmp_path, "cases.csv", content)))
    assert [(p.row, p.reason[:20]) for p in found] == [
        (1, "not UTF-8: byte 0xe9"),
        (2, "row 2 (line 3) has 2"),
    ]


def test_a_short_row_the_csv_module_cannot_locate_is_still_a_problem(tmp_path, monkeypatch):
    # should the two parsers ever disagree, the totals still refuse the file
    monkeypatch.setattr(
        importing._Reader, "_field_count_problems", lambda self, text, *, strict: ([], None)
    )
    path = write(tmp_path, "cases.csv", "case_id,question,context\nc1,q,x\nc2,q\n")
    (problem,) = problems_of(lambda: importing.read_cases(path))
    assert (problem.row, problem.column) == (None, None)
    assert problem.reason.startswith(
        "the commas do not add up: 2 rows of 3 fields need 6 separators, the file has 5"
    )


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("\n\ncase_id,question\nc1,q\n", id="blank lines before the header"),
        pytest.param('"case_id","question"\r\n"c1","a, b"\r\n', id="everything quoted"),
        pytest.param('case_id,question,context\nc1,"x,\n\n,y",\n', id="commas and blank lines"),
        pytest.param('case_id,question\nc1,"say ""a,b"""', id="escaped quotes, no newline"),
        pytest.param("case_id,question,context\nc1,q,\n", id="last field empty"),
        pytest.param("case_id,question,context\nc1,q,x", id="last column filled"),
    ],
)
def test_well_formed_csv_passes_the_field_count(tmp_path, content):
    got = importing.read_cases(write(tmp_path, "cases.csv", content))
    assert got.height == 1
