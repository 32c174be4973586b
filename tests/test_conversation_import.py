"""Conversation cases and per-case criteria in the case importers (CSV, JSONL, Parquet)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from study import importing
from study.errors import ValidationError

CONVERSATION = [
    {"role": "system", "content": "You are a health assistant."},
    {"role": "user", "content": "My two-year-old has a fever of 39.5 C."},
    {"role": "assistant", "content": "Is she drinking and passing urine?"},
    {"role": "user", "content": "Yes, but she is very sleepy."},
]
CRITERIA = [
    {"criterion": "Asks whether the child is hard to wake", "points": 7, "tags": ["axis:accuracy"]},
    {"criterion": "Recommends aspirin", "points": -9, "tags": ["axis:accuracy"]},
    {"criterion": "Is brief", "points": 2},
]


def write_all(tmp_path: Path, rows: list[dict]) -> dict[str, Path]:
    """The same cases as CSV (JSON text columns), JSONL (arrays) and Parquet (lists of structs)."""
    jsonl = tmp_path / "cases.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    csv = tmp_path / "cases.csv"
    pl.DataFrame(
        {
            "case_id": [r["case_id"] for r in rows],
            "question": [r.get("question") for r in rows],
            "conversation": [
                json.dumps(r["conversation"]) if "conversation" in r else None for r in rows
            ],
            "criteria": [json.dumps(r["criteria"]) if "criteria" in r else None for r in rows],
        }
    ).write_csv(csv)
    parquet = tmp_path / "cases.parquet"
    pl.DataFrame(
        {
            "case_id": [r["case_id"] for r in rows],
            "question": [r.get("question") for r in rows],
            "conversation": [r.get("conversation") for r in rows],
            "criteria": [
                [{"tags": [], **c} for c in r["criteria"]] if "criteria" in r else None
                for r in rows
            ],
        }
    ).write_parquet(parquet)
    return {"csv": csv, "jsonl": jsonl, "parquet": parquet}


def test_a_conversation_case_reads_the_same_from_every_format(tmp_path):
    rows = [
        {"case_id": "fever", "conversation": CONVERSATION, "criteria": CRITERIA},
        {"case_id": "plain", "question": "Is ibuprofen safe with asthma?"},
    ]
    frames = {kind: importing.read_cases(path) for kind, path in write_all(tmp_path, rows).items()}
    first = frames["csv"]
    for frame in frames.values():
        assert frame.equals(first)
    fever, plain = first.to_dicts()
    # no question given: the last user turn stands for it
    assert fever["question"] == "Yes, but she is very sleepy."
    assert json.loads(fever["conversation"]) == CONVERSATION
    criteria = json.loads(fever["criteria"])
    assert [c["key"] for c in criteria] == ["c1", "c2", "c3"]
    assert [c["points"] for c in criteria] == [7, -9, 2]
    assert criteria[2]["tags"] == []
    assert plain["conversation"] is None and plain["criteria"] is None


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_bad_conversations_and_criteria_are_named_by_row_and_column(tmp_path, kind):
    rows = [
        {"case_id": "ok", "conversation": CONVERSATION},
        {"case_id": "role", "conversation": [{"role": "doctor", "content": "hi"}]},
        {"case_id": "ends", "conversation": CONVERSATION[:3]},
        {"case_id": "points", "question": "q", "criteria": [{"criterion": "x", "points": "five"}]},
        {"case_id": "empty", "question": "q", "criteria": []},
        {"case_id": "noq"},
    ]
    if kind == "parquet":  # a Parquet column holds one type: text points do not fit a struct
        rows[3]["criteria"] = [{"criterion": "", "points": 1}]
    path = write_all(tmp_path, rows)[kind]
    with pytest.raises(ValidationError) as err:
        importing.read_cases(path)
    found = {(p.row, p.column): p.reason for p in err.value.problems}
    assert "role 'doctor' is not one of system, user, assistant" in found[(2, "conversation")]
    assert "a conversation ends with the user's turn" in found[(3, "conversation")]
    point_problem = "criterion must be non-empty text" if kind == "parquet" else "points must be"
    assert point_problem in found[(4, "criteria")]
    assert "at least one criterion" in found[(5, "criteria")]
    assert "or a conversation" in found[(6, "question")]
    assert len(found) == 5


def test_criteria_keys_are_unique_and_shaped(tmp_path):
    rows = [
        {"case_id": "a", "question": "q", "criteria": [
            {"key": "x", "criterion": "one", "points": 1},
            {"key": "x", "criterion": "two", "points": 1},
        ]},
        {"case_id": "b", "question": "q", "criteria": [{"criterion": "one", "points": 1, "why": 2}]},
    ]  # fmt: skip
    with pytest.raises(ValidationError) as err:
        importing.read_cases(write_all(tmp_path, rows)["jsonl"])
    reasons = [p.reason for p in err.value.problems]
    assert any("key 'x' is used by criterion 1 too" in r for r in reasons)
    assert any("unknown field 'why'" in r for r in reasons)


def test_stored_conversation_cases_are_idempotent_digested_and_verified(store, tmp_path):
    from conftest import new_study, sign_in

    from study import audit_verify, digests
    from study.services import content

    study = new_study(store, "conversations")
    coordinator = sign_in(store, "coordinator")
    rows = [
        {"case_id": "fever", "conversation": CONVERSATION, "criteria": CRITERIA},
        {"case_id": "plain", "question": "Is ibuprofen safe with asthma?"},
    ]
    path = write_all(tmp_path, rows)["jsonl"]
    assert content.import_cases(store, coordinator, study, path).added == 2
    assert content.import_cases(store, coordinator, study, path).skipped == 2
    changed = [dict(rows[0], criteria=[dict(CRITERIA[0], points=8), *CRITERIA[1:]]), rows[1]]
    other = tmp_path / "changed"
    other.mkdir()
    with pytest.raises(ValidationError, match="stored already with a different criteria"):
        content.import_cases(store, coordinator, study, write_all(other, changed)["jsonl"])
    # a case without conversation or criteria keeps the digest it had before migration 7
    older = digests.Digested("cases", "case_id", digests.DIGESTED["cases"].columns)
    sql = "SELECT {} FROM cases t WHERE t.study = $s AND t.case_id = $c"
    for case, same in (("plain", True), ("fever", False)):
        now, before = (
            store.read(sql.format(spec.row_digest_sql()), {"s": study, "c": case}).item()
            for spec in (digests.DIGESTED["cases"], older)
        )
        assert (now == before) is same
    assert audit_verify.verify(store).ok
    # a conversation edited in place is caught by verify
    store.cursor().execute(
        "UPDATE cases SET conversation = replace(conversation, 'sleepy', 'fine') WHERE case_id = 'fever'"
    )
    assert not audit_verify.verify(store).ok
