"""Row digests computed beside an import's transaction (``digests.of_frame``) are the digests
that ``audit verify`` recomputes from the stored rows (``Digested.rows_sql``).

An import hashes the rows it is about to store on a thread of its own, from the frame, not from
the table: the two must agree to the byte, or every import would read as tampered. The values
below are the ones where a frame and a stored row could part: JSON parameters that DuckDB
re-serialises (``1e5`` becomes ``100000.0``), control characters (escaped in upper-case hex),
non-BMP characters, quotes and backslashes, empty and missing tags, rubric columns (digested
only where set), and the provenance recorded as not recorded.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import OPERATOR, write_jsonl

from study import audit_verify, digests
from study.services import content, studies
from study.store import Store

AWKWARD = [
    "plain text",
    'quote " and back\\slash / slash',
    "new\nline, tab\t, return\r",
    "control \x01 \x1f and delete \x7f",
    "accents é, CJK 中文, emoji 😀, line separator \u2028",
    "  edge spaces  ",
]


@pytest.fixture
def imported(tmp_path: Path) -> Store:
    """A draft study whose cases, arms and answers hold the awkward values, imported from
    files as a coordinator imports them."""
    store = Store(tmp_path / "study.duckdb")
    studies.create_study(store, OPERATOR, "Digests", study_id="dg")
    cases = [
        {"case_id": f"c{i}", "question": text, "context": text if i % 2 else None}
        | ({"tags": ["a", "é"]} if i % 3 == 0 else {})
        | ({"specialty": "cardiology"} if i == 1 else {})
        for i, text in enumerate(AWKWARD)
    ]
    content.import_cases(store, OPERATOR, "dg", write_jsonl(tmp_path / "cases.jsonl", cases))
    arms = tmp_path / "arms.csv"
    arms.write_text(
        "arm_id,kind,label,model_name,model_version,author_role\n"
        "llm,llm,Model 😀,gpt-x,2025-01-01,\n"
        "doc,clinician,Doctors,,,attending\n",
        encoding="utf-8",
    )
    content.import_arms(store, OPERATOR, "dg", arms)
    params = [
        {"temperature": 1e5, "top_p": 0.10},
        {"stop": ["\n", "é"], "nested": {"x": [1, 2.50, None, True]}},
        {},
    ]
    answers = [
        {
            "case_id": f"c{i}",
            "arm_id": "llm",
            "text": text,
            "model_name": "gpt-x",
            "model_version": "2025-01-01",
            "generated_at": "2025-01-01",
            "prompt": text,
            "parameters": json.dumps(params[i % 3]),
        }
        for i, text in enumerate(AWKWARD)
    ] + [
        {"case_id": f"c{i}", "arm_id": "doc", "text": text[::-1], "author_id": "dr-1"}
        for i, text in enumerate(AWKWARD)
    ]
    path = write_jsonl(tmp_path / "answers.jsonl", answers)
    content.import_answers(store, OPERATOR, "dg", path)
    yield store
    store.close()


@pytest.mark.parametrize("kind", ["cases", "arms", "answers"])
def test_digests_of_the_frame_are_those_of_the_stored_rows(imported: Store, kind: str) -> None:
    spec = digests.DIGESTED[kind]
    stored = imported.read(spec.rows_sql() + " ORDER BY row_id", {"study": "dg"})
    recorded = imported.read(
        "SELECT row_id, digest FROM stored_digests WHERE study = $s AND kind = $k ORDER BY row_id",
        {"s": "dg", "k": kind},
    )
    assert recorded.height == stored.height > 0
    assert recorded.rows() == stored.rows()
    # and from a frame of the stored rows, as an import computes them before storing
    columns = ", ".join((spec.row_id, *spec.columns, *spec.later))
    frame = imported.read(f"SELECT {columns} FROM {spec.table} WHERE study = $s", {"s": "dg"})
    cur = imported.cursor()
    try:
        types = digests.column_types(cur, kind)
    finally:
        cur.close()
    of_frame = digests.of_frame(kind, frame, types)
    assert of_frame.rows.sort("row_id").rows() == stored.rows()
    # the total over them alone is the study's (what the storing event records)
    assert of_frame.total == digests.total(cur := imported.cursor(), "dg", kind)
    cur.close()


def test_a_study_imported_with_awkward_values_verifies(imported: Store) -> None:
    report = audit_verify.verify(imported)
    assert report.ok, report


def test_a_second_import_of_a_kind_adds_to_the_study_total(imported: Store, tmp_path: Path) -> None:
    more = [{"case_id": "later", "question": "q é"}]
    content.import_cases(imported, OPERATOR, "dg", write_jsonl(tmp_path / "more.jsonl", more))
    payload = imported.read(
        "SELECT payload FROM audit_events WHERE action = 'cases.import' ORDER BY seq DESC LIMIT 1"
    ).item()
    cur = imported.cursor()
    try:
        assert json.loads(payload)["stored_sha256"] == digests.total(cur, "dg", "cases")
    finally:
        cur.close()
    assert audit_verify.verify(imported).ok


def test_rows_stored_before_digests_were_kept_are_digested_by_the_next_import(
    imported: Store, tmp_path: Path
) -> None:
    """A database from before row digests (migration 0004 added the table empty): the next
    import of the kind digests the older rows too, not only its own, so that verify finds every
    row accounted for."""
    with imported.transaction() as cur:
        cur.execute("DELETE FROM stored_digests WHERE study = 'dg' AND kind = 'cases'")
    more = [{"case_id": "after-upgrade", "question": "q"}]
    content.import_cases(imported, OPERATOR, "dg", write_jsonl(tmp_path / "more.jsonl", more))
    spec = digests.DIGESTED["cases"]
    stored = imported.read(spec.rows_sql() + " ORDER BY row_id", {"study": "dg"})
    recorded = imported.read(
        "SELECT row_id, digest FROM stored_digests WHERE study = 'dg' AND kind = 'cases'"
        " ORDER BY row_id"
    )
    assert recorded.rows() == stored.rows() and recorded.height == len(AWKWARD) + 1
    payload = imported.read(
        "SELECT payload FROM audit_events WHERE action = 'cases.import' ORDER BY seq DESC LIMIT 1"
    ).item()
    cur = imported.cursor()
    try:
        assert json.loads(payload)["stored_sha256"] == digests.total(cur, "dg", "cases")
    finally:
        cur.close()


def test_a_refused_import_stores_no_digest(imported: Store, tmp_path: Path) -> None:
    before = imported.read("SELECT count(*) AS n FROM stored_digests").item()
    changed = [
        {"case_id": "c0", "question": "another question"},
        {"case_id": "new", "question": "q"},
    ]
    with pytest.raises(Exception, match="different question"):
        content.import_cases(
            imported, OPERATOR, "dg", write_jsonl(tmp_path / "changed.jsonl", changed)
        )
    assert imported.read("SELECT count(*) AS n FROM stored_digests").item() == before
