"""Tables imported by mapping their columns (``study.mapping``, ``content.import_table``): K-QA's
two shapes (a wide JSONL with a physician's answer, a long CSV with one row per claim) become one
study keyed by the hash of the question; bad mappings are refused by key, and nothing is stored."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import polars as pl
import pytest
from conftest import new_study, sign_in

from study import mapping
from study.errors import ValidationError
from study.services import content, monitoring

QUESTIONS = [
    "Can diabetics eat sweets?\n",  # K-QA's physician file ends this one with a line break
    "Is Lexapro addictive?",
    "What helps with a tension headache?",
]

PHYSICIANS_TOML = """
# K-QA questions_w_answers.jsonl: one row per question with a physician's answer (wide)
[cases]
id_from = "question hash"
question = "Question"
specialty = "ICD_10_diag"

[answers]
layout = "wide"

[arms.kqa_physicians]
column = "Free_form_answer"
kind = "clinician"
label = "K-QA physicians"
author_role = "physician"
author_id = "not recorded"
"""

MODELS_TOML = """
# K-QA NLI_medical_annotator.csv: one row per claim of a model's answer (long)
[cases]
id_from = "question hash"
question = "Question"
only_known = true

[answers]
layout = "long"
arm = "llm_x"
text = "answer"

[arms.gpt35]
kind = "llm"
model_name = "gpt-3.5-turbo"
model_version = "not recorded"
generated_at = "not recorded"
prompt = "not recorded"

[arms.gpt4]
kind = "llm"
model_name = "gpt-4"
model_version = "not recorded"
generated_at = "not recorded"
prompt = "not recorded"
"""


def physicians_jsonl(folder: Path) -> Path:
    """K-QA's wide shape: Question, Free_form_answer, Must_have (a list), ICD_10_diag; the
    third question has no physician answer (an empty cell is no answer)."""
    path = folder / "questions_w_answers.jsonl"
    rows = [
        {
            "Question": q,
            "Free_form_answer": f"A physician's answer {i}." if i < 2 else "",
            "Must_have": [f"claim {i}"],
            "ICD_10_diag": "E11" if i == 0 else None,
        }
        for i, q in enumerate(QUESTIONS)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def models_csv(folder: Path, extra: list[list[str]] = ()) -> Path:
    """K-QA's long shape: an unnamed index, Question, llm_x, answer, claim; each answer repeats
    once per claim; one question is not among the physician file's."""
    path = folder / "NLI_medical_annotator.csv"
    rows = [
        # (question, model, answer, claims)
        (" Can diabetics  eat sweets?", "gpt35", "In moderation.", 3),
        (QUESTIONS[0], "gpt4", "Yes, counted in the carbohydrates.", 2),
        (QUESTIONS[1], "gpt4", "Not in the usual sense.", 4),
        ("Does chlamydia show up in urine samples?", "gpt35", "Yes, by NAAT.", 2),
    ]
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["", "Question", "llm_x", "answer", "claim"])
        n = 0
        for question, model, answer, claims in rows:
            for c in range(claims):
                out.writerow([n, question, model, answer, f"claim {c}"])
                n += 1
        out.writerows(extra)
    return path


@pytest.fixture
def kqa(store, tmp_path):
    study = new_study(store, "K-QA")
    return study, sign_in(store, "coordinator")


def test_two_mappings_make_one_study_keyed_by_the_question_hash(store, kqa, tmp_path):
    study, coordinator = kqa
    first = content.import_table(
        store, coordinator, study, physicians_jsonl(tmp_path), PHYSICIANS_TOML, name="physicians"
    )
    assert (first.mapped.rows, first.mapped.cases.height, first.mapped.answers.height) == (3, 3, 2)
    assert first.mapped.folded == 0
    preview = content.preview_table(store, coordinator, study, models_csv(tmp_path), MODELS_TOML)
    # 11 rows: 3 + 2 + 4 claims of three answers to known questions, 2 of an unknown one
    assert (preview.rows, preview.left_out, preview.folded) == (11, 2, 6)
    assert preview.answers.height == 3
    assert (
        monitoring.study_status(store, coordinator, study)["answers"] == 2
    )  # preview stores nothing
    second = content.import_table(
        store, coordinator, study, models_csv(tmp_path), MODELS_TOML, name="models"
    )
    assert "6 rows repeated a case, arm and text" in str(second)
    status = monitoring.study_status(store, coordinator, study)
    assert (status["cases"], status["arms"], status["answers"]) == (3, 3, 5)
    answers = content.list_answers(store, coordinator, study)
    diabetes = mapping.question_hash(QUESTIONS[0])
    assert sorted(answers.filter(pl.col("case_id") == diabetes).get_column("arm_id")) == [
        "gpt35",
        "gpt4",
        "kqa_physicians",
    ]
    kept = content.list_mappings(store, coordinator, study)
    assert kept.get_column("name").to_list() == ["models", "physicians"]
    assert kept.filter(pl.col("name") == "models").get_column("mapping")[0] == MODELS_TOML
    unknown = content.unknown_provenance(store, coordinator, study)
    assert {"model_version", "generated_at", "prompt", "author_id"} <= set(unknown["field"])


def test_importing_the_same_table_again_adds_nothing(store, kqa, tmp_path):
    study, coordinator = kqa
    path = physicians_jsonl(tmp_path)
    content.import_table(store, coordinator, study, path, PHYSICIANS_TOML, name="physicians")
    again = content.import_table(
        store, coordinator, study, path, PHYSICIANS_TOML, name="physicians"
    )
    assert [(r.kind, r.added, r.skipped) for r in again.results] == [
        ("cases", 0, 3),
        ("arms", 0, 1),
        ("answers", 0, 2),
    ]
    assert content.list_mappings(store, coordinator, study).height == 1


@pytest.mark.parametrize(
    ("toml", "key", "words"),
    [
        ("[cases\nid_from = 1", None, "not valid TOML"),
        (
            PHYSICIANS_TOML.replace('question = "Question"', 'question = "Questoin"'),
            "cases.question",
            "'Questoin' is not in",
        ),
        (PHYSICIANS_TOML.replace('question = "Question"\n', ""), "cases.question", "missing"),
        (
            PHYSICIANS_TOML.replace('id_from = "question hash"', 'id_from = "hash"'),
            "cases.id_from",
            "question hash",
        ),
        (PHYSICIANS_TOML.replace('layout = "wide"', 'layout = "tall"'), "answers.layout", "long"),
        (
            PHYSICIANS_TOML.replace('kind = "clinician"', 'kind = "doctor"'),
            "arms.kqa_physicians.kind",
            "clinician",
        ),
        (
            PHYSICIANS_TOML.replace('label = "K-QA physicians"', 'lable = "x"'),
            "arms.kqa_physicians.lable",
            "unknown key",
        ),
        (
            PHYSICIANS_TOML.replace('column = "Free_form_answer"', 'column = "answer"'),
            "arms.kqa_physicians.column",
            "'answer' is not in",
        ),
        (PHYSICIANS_TOML.replace('author_id = "not recorded"\n', ""), "arms.kqa_physicians", None),
    ],
)
def test_a_bad_mapping_names_its_key_and_stores_nothing(store, kqa, tmp_path, toml, key, words):
    study, coordinator = kqa
    with pytest.raises(ValidationError) as info:
        content.import_table(store, coordinator, study, physicians_jsonl(tmp_path), toml, name="m")
    problems = info.value.problems
    if key == "arms.kqa_physicians":  # no author_id: the importer's own check, at the table's rows
        assert {p.column for p in problems} == {"author_id"}
        assert {p.row for p in problems} == {1, 2}
        assert all("needs author_id" in p.reason for p in problems)
    else:
        assert key in {p.column for p in problems}, problems
        assert any(words in p.reason for p in problems), problems
    status = monitoring.study_status(store, coordinator, study)
    assert (status["cases"], status["arms"], status["answers"]) == (0, 0, 0)
    assert content.list_mappings(store, coordinator, study).height == 0


def test_an_arm_value_without_an_arm_is_named_with_its_row_count(store, kqa, tmp_path):
    study, coordinator = kqa
    content.import_table(
        store, coordinator, study, physicians_jsonl(tmp_path), PHYSICIANS_TOML, name="physicians"
    )
    path = models_csv(tmp_path, extra=[["99", QUESTIONS[1], "bard", "Maybe.", "c"]] * 2)
    with pytest.raises(ValidationError) as info:
        content.import_table(store, coordinator, study, path, MODELS_TOML, name="models")
    (problem,) = info.value.problems
    assert (problem.file, problem.row, problem.column) == (path.name, 12, "arm (column 'llm_x')")
    assert "'bard' on 2 rows" in problem.reason and "[arms.bard]" in problem.reason
    assert monitoring.study_status(store, coordinator, study)["answers"] == 2


def test_one_case_arm_with_two_texts_is_the_importers_problem_at_the_tables_row(tmp_path):
    path = tmp_path / "long.csv"
    pl.DataFrame(
        {"q": ["Why?", "Why?", "Why?"], "m": ["a", "a", "a"], "t": ["One.", "One.", "Two."]}
    ).write_csv(path)
    toml = """
[cases]
id_from = "question hash"
question = "q"
[answers]
layout = "long"
arm = "m"
text = "t"
[arms.a]
kind = "clinician"
author_role = "nurse"
author_id = "n1"
"""
    with pytest.raises(ValidationError) as info:
        mapping.map_table(path, mapping.parse_mapping(toml))
    (problem,) = info.value.problems
    assert (problem.file, problem.row, problem.column) == ("long.csv", 3, "arm (column 'm')")
    assert "answer for this case" in problem.reason, problem


@pytest.mark.parametrize("suffix", [".parquet", ".xlsx"])
def test_parquet_and_excel_tables_map_like_csv(tmp_path, suffix):
    frame = pl.DataFrame(
        {
            "id": ["c1", "c2"],
            "question": ["Q1?", "Q2?"],
            "doc": ["A1.", None],
            "bot": ["B1.", "B2."],
        }
    )
    path = tmp_path / f"wide{suffix}"
    if suffix == ".parquet":
        frame.write_parquet(path)
    else:
        frame.write_excel(path)
    toml = """
[cases]
id_from = "column"
id = "id"
question = "question"
[answers]
layout = "wide"
[arms.doc]
column = "doc"
kind = "clinician"
author_role = "GP"
author_id = "gp1"
[arms.bot]
column = "bot"
kind = "llm"
model_name = "m"
model_version = "1"
generated_at = "2025-01-01"
prompt = { column = "question" }
"""
    mapped = mapping.map_table(path, mapping.parse_mapping(toml))
    assert mapped.cases.get_column("case_id").to_list() == ["c1", "c2"]
    assert sorted(mapped.answers.get_column("answer_id")) == ["c1:bot", "c1:doc", "c2:bot"]
    assert mapped.answers.filter(pl.col("arm_id") == "bot").get_column("prompt").to_list() == [
        "Q1?",
        "Q2?",
    ]


def test_row_numbers_suit_wide_tables_only():
    toml = MODELS_TOML.replace('id_from = "question hash"', 'id_from = "row number"')
    with pytest.raises(ValidationError, match="suits a wide table only"):
        mapping.parse_mapping(toml)


def test_the_command_line_previews_then_imports_and_refuses_a_bad_mapping(tmp_path):
    from test_cli import run_cli

    db = tmp_path / "cli.duckdb"
    assert run_cli("init", "--study", "K-QA", "--id", "kqa", db=db).returncode == 0
    physicians = tmp_path / "kqa_physicians.toml"
    physicians.write_text(PHYSICIANS_TOML, encoding="utf-8")
    table = physicians_jsonl(tmp_path)
    bad = tmp_path / "bad.toml"
    bad.write_text(PHYSICIANS_TOML.replace("[answers]", "[answers"), encoding="utf-8")
    refused = run_cli("import-table", table, "--study", "kqa", "--mapping", bad, db=db)
    assert refused.returncode == 2 and "bad.toml: not valid TOML" in refused.stderr
    seen = run_cli(
        "import-table", table, "--study", "kqa", "--mapping", physicians, "--preview", db=db
    )
    assert seen.returncode == 0, seen.stderr
    assert (
        "3 rows read as 3 cases, 1 arm, 2 answers" in seen.stdout
        and "nothing stored" in seen.stdout
    )
    done = run_cli("import-table", table, "--study", "kqa", "--mapping", physicians, db=db)
    assert done.returncode == 0, done.stderr
    assert "Mapping kept as 'kqa_physicians'" in done.stdout
    status = run_cli("status", "--study", "kqa", db=db).stdout
    assert "answers      2" in status


def test_design_step_2_maps_previews_and_imports_both_kqa_shapes_without_a_script(
    monkeypatch, tmp_path
):
    from test_design_page import (
        COORDINATOR,
        assert_no_exception,
        create,
        errors,
        go,
        key,
        open_design,
        stored,
    )
    from test_design_page import db as design_db

    db = design_db.__wrapped__(tmp_path)
    at = go(create(open_design(monkeypatch, db, COORDINATOR)), 2)

    def upload_table(path: Path) -> None:
        at.file_uploader(key=key("upload-table")).set_value(
            (path.name, path.read_bytes(), "text/plain")
        ).run()
        assert_no_exception(at)

    def counts() -> tuple[int, int, int]:
        return stored(
            db,
            "SELECT (SELECT count(*) FROM cases WHERE study = $s),"
            " (SELECT count(*) FROM arms WHERE study = $s),"
            " (SELECT count(*) FROM answers WHERE study = $s)",
        ).row(0)

    # the wide file: a hash of the question, one answer column for the physicians' arm
    upload_table(physicians_jsonl(tmp_path))
    at.selectbox(key=key("map-question")).set_value("Question").run()
    at.selectbox(key=key("map-specialty")).set_value("ICD_10_diag").run()
    at.multiselect(key=key("map-answer-columns")).set_value(["Free_form_answer"]).run()
    arm = "map-arm:Free_form_answer"
    at.text_input(key=key(f"{arm}:id")).input("kqa_physicians").run()
    at.selectbox(key=key(f"{arm}:kind")).set_value("clinician").run()
    at.text_input(key=key(f"{arm}:clinician:author_role")).input("physician").run()
    at.button(key=key("map-preview")).click().run()
    assert_no_exception(at)
    assert not at.error, errors(at)
    shown = " ".join(i.value for i in at.info)
    assert "3 rows read as 3 cases, 1 arm, 2 answers" in shown, shown
    assert counts() == (0, 0, 0)  # a preview stores nothing
    at.text_input(key=key("map-name")).input("physicians").run()
    at.button(key=key("map-import")).click().run()
    assert not at.error, errors(at)
    assert counts() == (3, 1, 2)

    # the long file: an arm column and an answer column, a row per claim folded
    upload_table(models_csv(tmp_path))
    at.radio(key=key("map-source")).set_value("Map the columns here").run()
    at.radio(key=key("map-layout")).set_value("long").run()
    at.selectbox(key=key("map-arm-column")).set_value("llm_x").run()
    at.selectbox(key=key("map-text-column")).set_value("answer").run()
    at.checkbox(key=key("map-only-known")).check().run()
    for model in ("gpt35", "gpt4"):
        at.text_input(key=key(f"map-arm:{model}:llm:model_name")).input(model).run()
    at.button(key=key("map-preview")).click().run()
    assert not at.error, errors(at)
    shown = " ".join(i.value for i in at.info)
    assert "6 rows repeated a case, arm and text" in shown and "2 rows left out" in shown, shown
    at.text_input(key=key("map-name")).input("models").run()
    at.button(key=key("map-import")).click().run()
    assert not at.error, errors(at)
    assert counts() == (3, 3, 5)
    kept = stored(db, "SELECT name FROM import_mappings WHERE study = $s ORDER BY name")
    assert kept.get_column("name").to_list() == ["models", "physicians"]

    # a wrong mapping from a file: its key named, nothing stored
    at.radio(key=key("map-source")).set_value("Upload a mapping (TOML)").run()
    at.file_uploader(key=key("map-file")).set_value(
        (
            "bad.toml",
            MODELS_TOML.replace('text = "answer"', 'text = "answr"').encode(),
            "text/plain",
        )
    ).run()
    at.button(key=key("map-import")).click().run()
    assert "'answr' is not in" in " ".join(str(d.value) for d in at.dataframe)
    assert counts() == (3, 3, 5)


def test_the_guide_s_recipe_mappings_parse_and_match_the_shapes_tested_here():
    guide = (Path(__file__).parent.parent / "docs" / "coordinator.md").read_text(encoding="utf-8")
    recipe = guide[guide.index("Recipe, K-QA") :]
    blocks = [b.split("```", 1)[0] for b in recipe.split("```toml\n")[1:3]]
    physicians, models = (mapping.parse_mapping(b) for b in blocks)
    assert physicians.layout == "wide" and models.layout == "long"
    assert physicians.arms["kqa_physicians"]["column"] == "Free_form_answer"
    assert (models.answers["arm"], models.answers["text"]) == ("llm_x", "answer")
    assert models.cases["only_known"] is True


def test_a_table_with_no_answer_left_says_why(store, kqa, tmp_path):
    study, coordinator = kqa
    with pytest.raises(ValidationError, match="all 11 rows were left out"):
        content.preview_table(store, coordinator, study, models_csv(tmp_path), MODELS_TOML)


def test_the_preview_refuses_what_the_import_would_and_leaves_no_trace(store, kqa, tmp_path):
    study, coordinator = kqa
    content.import_table(
        store, coordinator, study, physicians_jsonl(tmp_path), PHYSICIANS_TOML, name="physicians"
    )
    events = store.read("SELECT count(*) FROM audit_events").item()
    # every case again: the diabetes question is stored with a line break, written here without
    all_cases = MODELS_TOML.replace("only_known = true", "only_known = false")
    for attempt in (content.preview_table, content.import_table):
        extra = {"name": "models"} if attempt is content.import_table else {}
        with pytest.raises(ValidationError) as info:
            attempt(store, coordinator, study, models_csv(tmp_path), all_cases, **extra)
        assert any(
            p.column == "question" and "stored already with a different question" in p.reason
            for p in info.value.problems
        ), info.value.problems
    assert store.read("SELECT count(*) FROM audit_events").item() == events
    status = monitoring.study_status(store, coordinator, study)
    assert (status["cases"], status["arms"], status["answers"]) == (3, 1, 2)
    # and a preview that passes stores nothing either, audit included
    content.preview_table(store, coordinator, study, models_csv(tmp_path), MODELS_TOML)
    assert store.read("SELECT count(*) FROM audit_events").item() == events
    assert monitoring.study_status(store, coordinator, study)["answers"] == 2
