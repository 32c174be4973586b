"""Ratings collected elsewhere: imported into a locked study, checked like every import (every
problem at once, all-or-nothing), then analysed, exported and audited as ratings made in the app."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from conftest import OPERATOR, RATERS, make_draft, sign_in

from analysis.agreement import krippendorff_alpha
from analysis.noninferiority import mean_difference
from study import audit_verify, cli
from study.errors import StateError, ValidationError
from study.services import design, exports, monitoring, rating_imports

HEADER = "case_id,arm_id,rater_id,item,value,rated_at,seconds,comment\n"
QUALITY = {  # (case, rater) -> (clinician, LLM) quality
    ("c1", "r1"): (4, 5),
    ("c1", "r2"): (3, 5),
    ("c2", "r1"): (2, 4),
    ("c2", "r2"): (3, 3),
    ("c3", "r1"): (4, 4),
    ("c3", "r3"): (3, 5),
    ("c4", "r2"): (2, 3),
    ("c4", "r3"): (4, 5),
}


def rating_rows() -> list[dict]:
    """Quality of both answers and the per-case choice (A = clinicians, the first arm_id)."""
    rows = []
    for (case, rater), (clin, llm) in QUALITY.items():
        rows.append(
            {
                "case_id": case,
                "arm_id": "clin",
                "rater_id": rater,
                "item": "quality",
                "value": str(clin),
                "rated_at": "2024-03-01T10:00:00+01:00",
                "seconds": "30",
            }
        )
        rows.append(
            {
                "case_id": case,
                "arm_id": "llm",
                "rater_id": rater,
                "item": "quality",
                "value": str(llm),
            }
        )
        rows.append(
            {
                "case_id": case,
                "rater_id": rater,
                "item": "better",
                "value": "B" if llm > clin else "A",
                "comment": "paper form",
            }
        )
    return rows  # fmt: skip


def write_ratings(folder: Path, rows: list[dict], fmt: str = "csv") -> Path:
    path = folder / f"ratings.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return path
    columns = HEADER.strip().split(",")
    frame = pl.DataFrame(
        [{c: r.get(c) for c in columns} for r in rows], schema=dict.fromkeys(columns, pl.String)
    )
    frame.write_csv(path) if fmt == "csv" else frame.write_parquet(path)
    return path  # fmt: skip


@pytest.fixture
def locked(store, tmp_path: Path) -> str:
    """The draft study locked, with no assignment: ready to take imported ratings."""
    study = make_draft(store, tmp_path)
    design.lock_protocol(store, sign_in(store, "coordinator"), study, {"primary_item": "quality"})
    return study


def _counts(store) -> tuple[int, ...]:
    return store.read(
        "SELECT (SELECT count(*) FROM assignments), (SELECT count(*) FROM presentations),"
        " (SELECT count(*) FROM ratings), (SELECT count(*) FROM audit_events"
        "  WHERE action <> 'access.denied')"
    ).row(0)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_imported_ratings_are_exported_audited_and_analysed_like_app_ratings(
    store, locked, tmp_path, fmt
) -> None:
    coordinator = sign_in(store, "coordinator")
    rows = rating_rows()
    if fmt != "csv":  # JSONL and Parquet may carry numbers as numbers
        for row in rows:
            if row["item"] == "quality" and fmt == "jsonl":
                row["value"] = int(row["value"])
    result = rating_imports.import_ratings(
        store, coordinator, locked, write_ratings(tmp_path, rows, fmt)
    )
    assert (result.ratings, result.assignments, result.raters) == (24, 8, 3)
    assert rating_imports.ratings_origin(store, coordinator, locked)["origin"] == "imported"
    report = audit_verify.verify(store)
    assert report.ok, report.problem
    assert report.counts["ratings.import"] == 1 and report.counts["rating.submit"] == 8
    status = monitoring.study_status(store, coordinator, locked)
    assert (status["assignments"], status["done"], status["ratings_submitted"]) == (8, 8, 24)

    export = exports.export_ratings_long(store, OPERATOR, locked)
    quality = export.filter(pl.col("item") == "quality")
    assert quality.height == 16
    got = {(r["case"], r["rater"], r["arm"]): r["value"] for r in quality.iter_rows(named=True)}
    for (case, rater), (clin, llm) in QUALITY.items():
        assert (got[(case, rater, "clin")], got[(case, rater, "llm")]) == (clin, llm)
    chosen = export.filter(pl.col("item") == "better")
    assert set(chosen["chosen_arm"]) == {"llm", "clin"}  # "A" names the first arm, clin
    first = quality.filter((pl.col("case") == "c1") & (pl.col("rater") == "r1"))
    # 10:00 at +01:00 is 09:00 UTC; seconds on task kept
    assert first.filter(pl.col("arm") == "clin")["submitted_at"][0].hour == 9
    assert first["seconds"].to_list() == [30.0, None]

    # the statistics read the export as they read a study rated in the app
    ni = mean_difference(quality, test="llm", reference="clin", margin=0.5, method="t")
    assert ni["estimate"][0] == pytest.approx(sum(b - a for a, b in QUALITY.values()) / 4 / 2)
    alpha = krippendorff_alpha(
        quality, unit="answer", rater="rater", value="value", level="ordinal", boot=0
    )
    assert alpha["n_units"][0] == 8


def test_every_problem_is_reported_at_once_and_nothing_is_stored(store, locked, tmp_path) -> None:
    good = rating_rows()[:3]
    bad = [
        {**good[0], "case_id": "c9"},  # unknown case
        {**good[0], "arm_id": "gpt-9"},  # unknown arm
        {**good[0], "rater_id": "nobody"},  # unknown rater
        {**good[0], "item": "accuracy"},  # unknown item
        {**good[1], "value": "7"},  # outside the 1-5 scale
        {**good[1], "value": "four"},  # not a number
        {**good[2], "value": "C"},  # not a pairwise choice
        good[0],  # a duplicate of row 1
        {**good[2], "arm_id": "llm"},  # a per-case item given an arm
        {**good[1], "arm_id": None},  # a per-answer item without its arm
        {**good[1], "seconds": "-3"},
        {**good[1], "rated_at": "2999-01-01"},
    ]
    before = _counts(store)
    with pytest.raises(ValidationError) as info:
        rating_imports.import_ratings(
            store, sign_in(store, "coordinator"), locked, write_ratings(tmp_path, good + bad)
        )
    found = [(p.row, p.column, p.reason) for p in info.value.problems]
    expected = [
        (4, "case_id", "unknown case 'c9'"),
        (5, "arm_id", "unknown arm 'gpt-9'"),
        (6, "rater_id", "unknown rater 'nobody'"),
        (7, "item", "unknown item 'accuracy'"),
        (8, "value", "7 is not one of"),
        (9, "value", "takes a number, got 'four'"),
        (10, "value", "'C' is not one of"),
        (11, "item", "duplicate rating"),
        (12, "arm_id", "is rated once per case: leave arm_id empty"),
        (13, "arm_id", "is rated per answer: give the arm_id it rated"),
        (14, "seconds", "is not a number of seconds >= 0"),
        (15, "rated_at", "is in the future"),
    ]
    for row, column, reason in expected:
        assert any(r == row and c == column and reason in text for r, c, text in found), (
            row,
            column,
            reason,
            found,
        )
    assert _counts(store) == before


def test_an_arm_without_an_answer_for_the_case_is_refused(store, tmp_path) -> None:
    study = make_draft(store, tmp_path)
    store.cursor().execute("DELETE FROM presentations")  # none yet; the draft has no design
    row = {**rating_rows()[1], "arm_id": "clin"}
    coordinator = sign_in(store, "coordinator")
    design.lock_protocol(store, coordinator, study, {})
    path = write_ratings(tmp_path, [row, {**row, "case_id": "c5"}])
    with pytest.raises(ValidationError, match="unknown case 'c5'"):
        rating_imports.import_ratings(store, coordinator, study, path)


@pytest.mark.parametrize("state", ["draft", "rating"])
def test_a_study_that_does_not_take_imported_ratings_says_why(store, tmp_path, state) -> None:
    study = make_draft(store, tmp_path)
    coordinator = sign_in(store, "coordinator")
    if state == "rating":
        from conftest import open_rating

        open_rating(store, study)
    with pytest.raises(StateError, match=f"is {state}: ratings collected elsewhere are imported"):
        rating_imports.import_ratings(
            store, coordinator, study, write_ratings(tmp_path, rating_rows())
        )


def test_a_file_is_never_imported_twice(store, locked, tmp_path) -> None:
    coordinator = sign_in(store, "coordinator")
    path = write_ratings(tmp_path, rating_rows())
    rating_imports.import_ratings(store, coordinator, locked, path)
    before = _counts(store)
    with pytest.raises(ValidationError, match="rater 'r1' already has ratings .* case 'c1'"):
        rating_imports.import_ratings(store, coordinator, locked, path)
    assert _counts(store) == before


def test_the_command_line_adds_raters_and_imports_or_exits_2(store, tmp_path, capsys) -> None:
    study = make_draft(store, tmp_path)
    design.lock_protocol(store, sign_in(store, "coordinator"), study, {})
    db = Path(store.path)
    store.close()
    rows = [{**r, "rater_id": r["rater_id"].replace("r", "reader")} for r in rating_rows()]
    path = write_ratings(tmp_path, rows)
    assert cli.main(["import-ratings", str(path), "--study", study, "--db", str(db)]) == 2
    assert "unknown rater 'reader1'" in capsys.readouterr().err
    readers = ["reader1", "reader2", "reader3"]
    assert cli.main(["add-raters", "--study", study, *readers, "--db", str(db)]) == 0
    assert cli.main(["import-ratings", str(path), "--study", study, "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert f"{study}: ratings: 24 imported from ratings.csv (8 rater x case" in out
    assert cli.main(["import-ratings", str(path), "--study", study, "--db", str(db)]) == 2
    assert "already has ratings" in capsys.readouterr().err
    assert cli.main(["audit", "verify", "--db", str(db)]) == 0
    assert set(RATERS).isdisjoint(readers)


def test_a_rater_who_wrote_an_answer_of_the_case_is_refused(store, locked, tmp_path) -> None:
    from study.services import people

    # the clinician answers' author (Dr.Who@example.org) becomes a rater of the study
    author = people.find_user(store, OPERATOR, "https://idp.example", "who")["id"]
    people.grant_role(store, OPERATOR, locked, author, "rater")
    rows = [{**rating_rows()[0], "rater_id": author}]
    with pytest.raises(ValidationError, match="wrote an answer of case 'c1'"):
        rating_imports.import_ratings(
            store, sign_in(store, "coordinator"), locked, write_ratings(tmp_path, rows)
        )


def test_the_overview_says_the_ratings_were_imported(store, locked, tmp_path, monkeypatch) -> None:
    from conftest import run_app

    rating_imports.import_ratings(
        store, sign_in(store, "coordinator"), locked, write_ratings(tmp_path, rating_rows())
    )
    db = store.path
    store.close()
    at = run_app(monkeypatch, db)
    assert not at.exception, [e.message for e in at.exception]
    assert any("Ratings collected elsewhere" in info.value for info in at.info)


@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE ratings SET submitted_at = submitted_at - INTERVAL 1 DAY WHERE id = $r",
        "UPDATE ratings SET seconds_on_task = coalesce(seconds_on_task, 0) + 60 WHERE id = $r",
    ],
    ids=["time", "seconds"],
)
def test_an_imported_ratings_file_time_or_seconds_rewritten_is_named_by_verify(
    store, locked, tmp_path, edit
) -> None:
    coordinator = sign_in(store, "coordinator")
    rating_imports.import_ratings(
        store, coordinator, locked, write_ratings(tmp_path, rating_rows())
    )
    assert audit_verify.verify(store).ok
    cur = store.cursor()
    rating = cur.execute("SELECT max(id) FROM ratings").fetchall()[0][0]
    # what references the rating set aside meanwhile: DuckDB refuses to update a referenced row
    aside = ("current_ratings", "rating_comments", "safety_alerts")
    for table in aside:
        cur.execute(
            f"CREATE TEMP TABLE aside_{table} AS SELECT * FROM {table} WHERE rating = ?", [rating]
        )
        cur.execute(f"DELETE FROM {table} WHERE rating = ?", [rating])
    cur.execute(edit, {"r": rating})
    for table in aside:
        cur.execute(f"INSERT INTO {table} SELECT * FROM aside_{table}")
    report = audit_verify.verify(store)
    assert not report.ok and f"rating {rating} " in report.problem, report.problem
    assert "imported" in report.problem
