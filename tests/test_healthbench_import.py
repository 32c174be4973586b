"""``python -m study import-healthbench``: HealthBench's JSONL as published, into a draft study.

``tests/data/healthbench/sample.jsonl`` was written for this project in HealthBench's format
(fields as simple-evals' ``healthbench_eval.py`` reads them: prompt, prompt_id, rubrics with
criterion, points and tags, example_tags, ideal_completions_data); its conversations are
synthetic, not HealthBench data.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import new_study, sign_in

from study import audit, cli
from study.errors import ValidationError
from study.healthbench import ARM_ID, read_healthbench
from study.services import content
from study.store import Store

DATA = Path(__file__).resolve().parent / "data" / "healthbench"
SAMPLE = DATA / "sample.jsonl"


def test_conversations_rubrics_and_ideal_completions_are_stored(store):
    study = new_study(store, "HealthBench sample")
    coordinator = sign_in(store, "coordinator")
    results = content.import_healthbench(store, coordinator, study, SAMPLE)
    assert [(r.kind, r.added) for r in results] == [("cases", 3), ("arms", 1), ("answers", 2)]
    cases = content.list_cases(store, coordinator, study).sort("case_id").to_dicts()
    first = cases[0]
    assert first["case_id"] == "synthetic-hb-0001"
    assert first["question"] == "A bad headache since this morning, yes."
    assert [m["role"] for m in json.loads(first["conversation"])] == ["user", "assistant", "user"]
    criteria = json.loads(first["criteria"])
    assert [(c["key"], c["points"]) for c in criteria] == [
        ("c1", 9),
        ("c2", 4),
        ("c3", -8),
        ("c4", 2),
    ]
    assert criteria[0]["tags"] == ["level:example", "axis:accuracy"]
    assert first["tags"] == ["theme:emergency_referrals", "physician_agreed_category:emergent"]
    answers = content.list_answers(store, coordinator, study).sort("case_id")
    assert answers["case_id"].to_list() == ["synthetic-hb-0001", "synthetic-hb-0003"]
    assert set(answers["arm_id"]) == {ARM_ID}
    roles = answers["author_role"].to_list()
    assert "Group 1: no model completions shown" in roles[0]
    assert "Group 2: shown Aug/Sep 2024 model completions" in roles[1]
    unknown = content.unknown_provenance(store, coordinator, study)
    assert unknown.height >= 1  # which physician wrote an ideal completion is not published
    # idempotent: the same file again adds nothing
    again = content.import_healthbench(store, coordinator, study, SAMPLE)
    assert [r.added for r in again] == [0, 0, 0]
    events = store.read("SELECT action FROM audit_events ORDER BY seq")["action"].to_list()
    assert events.count(audit.CASES_IMPORT.name) == 2


def test_every_problem_of_a_bad_file_is_named_by_line_and_field(store):
    study = new_study(store, "bad")
    coordinator = sign_in(store, "coordinator")
    with pytest.raises(ValidationError) as err:
        content.import_healthbench(store, coordinator, study, DATA / "bad.jsonl")
    found = {(p.row, p.column): p.reason for p in err.value.problems}
    assert "duplicate prompt_id; first given in line 1" in found[(2, "prompt_id")]
    assert "points must be a finite number" in found[(3, "rubrics")]
    assert "ends with the user's turn" in found[(4, "prompt")]
    assert "not valid JSON" in found[(5, None)]
    assert store.read("SELECT count(*) FROM cases").item() == 0


def test_the_reader_counts_reference_completions_it_leaves_out():
    data = read_healthbench(SAMPLE)
    assert data.reference_completions == 2
    assert data.cases.height == 3 and data.answers.height == 2


def test_the_command_line_imports_and_refuses_with_exit_2(tmp_path, capsys):
    db = tmp_path / "hb.duckdb"
    assert cli.main(["init", "--db", str(db), "--study", "HB", "--id", "hb"]) == 0
    assert cli.main(["import-healthbench", str(SAMPLE), "--study", "hb", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "cases: 3 rows read, 3 added" in out and "answers: 2 rows read, 2 added" in out
    code = cli.main(
        ["import-healthbench", str(DATA / "bad.jsonl"), "--study", "hb", "--db", str(db)]
    )
    assert code == 2
    assert "duplicate prompt_id" in capsys.readouterr().err
    with Store(db) as s:
        assert s.read("SELECT count(*) FROM cases").item() == 3
