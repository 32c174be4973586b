"""Arms that answer only some cases: coverage per arm, the lock's readiness, the designs, and
removing what a draft does not use (audited)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import polars as pl
import pytest
from conftest import ARMS, CASES, INSTRUMENT, OPERATOR, add_person, answers_rows, new_study, sign_in

from study import audit_verify
from study.errors import StateError, ValidationError
from study.services import content, design, people
from study.services import instrument_library as instruments

SINGLE = dataclasses.replace(INSTRUMENT, key="single_quality", items=INSTRUMENT.items[:1])
"""The test instrument's quality item alone: no pairwise comparison."""


def _partial_study(store, instrument=SINGLE) -> str:
    """Four cases; the clinicians answer all, the LLM only c1 and c2."""
    study = new_study(store, "Partial")
    coordinator = sign_in(store, "coordinator")
    content.add_arms(store, coordinator, study, pl.DataFrame(ARMS))
    content.add_cases(store, coordinator, study, pl.DataFrame(CASES))
    rows = [r for r in answers_rows() if r["arm_id"] == "clin" or r["case_id"] in ("c1", "c2")]
    content.add_answers(store, coordinator, study, _answers(rows))
    instruments.add_instrument(store, coordinator, instrument)
    instruments.attach_instrument(store, coordinator, study, instrument.key, instrument.version)
    return study


def _answers(rows: list[dict]) -> pl.DataFrame:
    columns = sorted({k for r in rows for k in r})
    return pl.DataFrame([{c: r.get(c) for c in columns} for r in rows])


def test_coverage_reports_each_arms_share_of_the_cases(store) -> None:
    study = _partial_study(store)
    coverage = design.arm_coverage(store, sign_in(store, "coordinator"), study)
    assert coverage.select("arm_id", "answers", "cases", "missing", "share").rows() == [
        ("clin", 4, 4, 0, 1.0),
        ("llm", 2, 4, 2, 0.5),
    ]


def test_a_single_answer_case_needs_the_protocol_to_allow_it(store) -> None:
    study = _partial_study(store)
    coordinator = sign_in(store, "coordinator")
    with pytest.raises(StateError) as info:
        design.lock_protocol(store, coordinator, study, {})
    message = str(info.value)
    assert "2 case(s) have fewer than 2 answers" in message
    assert '"single_answer_cases": true' in message
    assert "Coverage per arm: clin 4/4; llm 2/4." in message
    design.lock_protocol(store, coordinator, study, {"single_answer_cases": True})
    # designs show the answers that exist: one on c3 and c4, two on c1 and c2
    for rater in ("r1", "r2"):
        add_person(store, rater)
        people.grant_role(store, OPERATOR, study, rater, "rater")
    design.make_assignments(
        store, coordinator, study, raters=["r1", "r2"], raters_per_case=2, seed=3
    )
    shown = store.read(
        "SELECT s.case_id, count(*) AS n FROM assignments s JOIN presentations p"
        " ON p.assignment = s.id WHERE s.study = $s GROUP BY s.case_id, s.id ORDER BY 1",
        {"s": study},
    )
    per_case = dict(shown.unique("case_id").iter_rows())
    assert per_case == {"c1": 2, "c2": 2, "c3": 1, "c4": 1}


def test_a_pairwise_item_needs_two_answers_whatever_the_protocol_says(store) -> None:
    study = _partial_study(store, INSTRUMENT)
    with pytest.raises(StateError, match=r"a pairwise item compares two\): 'c3' \(1\), 'c4' \(1\)"):
        design.lock_protocol(
            store, sign_in(store, "coordinator"), study, {"single_answer_cases": True}
        )


def test_unused_answers_arms_and_cases_are_removed_with_an_audit_event(store) -> None:
    study = _partial_study(store)
    coordinator = sign_in(store, "coordinator")
    with pytest.raises(ValidationError, match="arm 'llm' is in use: it has answers"):
        content.remove_arms(store, coordinator, study, ["llm"])
    assert content.remove_answers(store, coordinator, study, ["c1-llm", "c2-llm"]) == 2
    assert content.remove_arms(store, coordinator, study, ["llm"]) == 1
    content.remove_answers(store, coordinator, study, ["c4-clin"])
    assert content.remove_cases(store, coordinator, study, ["c4"]) == 1
    assert content.list_arms(store, coordinator, study).get_column("arm_id").to_list() == ["clin"]
    assert content.list_cases(store, coordinator, study).height == 3
    report = audit_verify.verify(store)
    assert report.ok, report.problem
    assert (
        report.counts["answers.remove"],
        report.counts["arms.remove"],
        report.counts["cases.remove"],
    ) == (2, 1, 1)


@pytest.mark.parametrize(
    ("remove", "ids", "reason"),
    [
        (content.remove_cases, ["c9"], "study 'partial' has no case 'c9'"),
        (content.remove_cases, ["c1"], "case 'c1' is in use: it has answers (remove them first)"),
        (content.remove_answers, ["nope"], "study 'partial' has no answer 'nope'"),
        (content.remove_arms, [], "name the arms"),
    ],
)
def test_removal_refuses_unknown_and_used_rows(store, remove, ids, reason) -> None:
    study = _partial_study(store)
    with pytest.raises(ValidationError) as info:
        remove(store, sign_in(store, "coordinator"), study, ids)
    assert reason in str(info.value)
    assert audit_verify.verify(store).ok


def test_removal_is_for_drafts_and_shown_answers_stay(store, rating) -> None:
    coordinator = sign_in(store, "coordinator")
    with pytest.raises(StateError, match="this needs it to be draft"):
        content.remove_answers(store, coordinator, rating, ["c1-llm"])


def test_a_rows_removal_around_the_store_is_still_caught(store, tmp_path: Path) -> None:
    study = _partial_study(store)
    store.cursor().execute("DELETE FROM answers WHERE answer_id = 'c1-llm'")
    report = audit_verify.verify(store)
    assert not report.ok
    assert f"study {study} stores 5 answers but its answers.import events record 6" in (
        report.problem
    )


def test_the_command_line_removes_what_a_draft_does_not_use(store, capsys) -> None:
    from study import cli

    study = _partial_study(store)
    db = store.path
    store.close()
    args = ["--study", study, "--db", db]
    assert cli.main(["remove", "arms", "llm", *args]) == 2
    assert "arm 'llm' is in use: it has answers" in capsys.readouterr().err
    assert cli.main(["remove", "answers", "c1-llm", "c2-llm", *args]) == 0
    assert cli.main(["remove", "arms", "llm", *args]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{study}: 2 answers removed",
        f"{study}: 1 arms removed",
    ]
    assert cli.main(["audit", "verify", "--db", db]) == 0
