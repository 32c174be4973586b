"""The export bundle (``exports.write_bundle`` / ``bundle_zip``): Stata and SPSS files read back
with pyreadstat, the codebook against the files' columns, the manifest against the files, the
sealed seed, who may export, and untrusted text in the report.

Reference values come from outside the exporting code: the built-in instruments' own option
labels (``study/templates``), the ratings read back from the Parquet file written beside them,
direct queries of the database, and ``hashlib`` over the files.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import polars as pl
import pyreadstat
import pytest
from conftest import OPERATOR, RATERS, attach_source_guess, full_values, open_rating, sign_in

from study import audit, audit_verify
from study.canonical import seed_from_hash
from study.exporting import FORMATS, stata_names
from study.instruments import get_builtin
from study.services import analyses, exports, lifecycle
from study.services import rating as rating_service

DEMO = "demo-patient-questions"
DEMO_SEED = 2026  # study.demo.build_demo's default seed, the one the session's demo sealed
BUNDLE = {f"ratings.{f}" for f in FORMATS} | set(exports.BUNDLE_FILES)
KEYS = ["case", "rater", "item", "position"]


def bundle(store, caller, study: str, folder: Path, **options) -> dict:
    folder.mkdir()
    return exports.write_bundle(store, caller, study, folder, **options)


def read_back(path: Path) -> tuple[pl.DataFrame, object]:
    reader = pyreadstat.read_dta if path.suffix == ".dta" else pyreadstat.read_sav
    return reader(str(path), output_format="polars")


@pytest.fixture(scope="module")
def demo_bundle(demo_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo study's bundle in every format, written once by the command line's operator."""
    import shutil

    from study.store import Store

    folder = tmp_path_factory.mktemp("demo-bundle")
    db = folder / "demo.duckdb"
    shutil.copy(demo_template, db)
    with Store(db) as store:
        bundle(store, OPERATOR, DEMO, folder / "bundle", boot=200)
    return folder / "bundle"


@pytest.mark.parametrize("suffix", ["dta", "sav"])
def test_stata_and_spss_files_read_back_with_the_same_ratings_and_labels(
    demo_bundle: Path, suffix: str
) -> None:
    reference = pl.read_parquet(demo_bundle / "ratings.parquet").sort(KEYS, nulls_last=True)
    back, meta = read_back(demo_bundle / f"ratings.{suffix}")
    back = back.sort(KEYS, nulls_last=True)
    assert back.height == reference.height > 0
    for column in ("value", "seconds"):
        assert back.get_column(column).to_list() == reference.get_column(column).to_list()
    for column in ("position", "revision"):
        assert back.get_column(column).cast(pl.Int64).to_list() == (
            reference.get_column(column).cast(pl.Int64).to_list()
        )
    for column in ("case", "arm", "answer", "rater", "item", "label", "value_text", "chosen_arm"):
        # Stata and SPSS have no missing text: a missing cell comes back as ""
        assert back.get_column(column).to_list() == (
            reference.get_column(column).fill_null("").to_list()
        ), column
    # times: UTC, at millisecond resolution in both formats
    stored = reference.get_column("submitted_at").dt.truncate("1ms").to_list()
    diffs = [
        abs((a - b).total_seconds()) for a, b in zip(back["submitted_at"], stored, strict=True)
    ]
    assert max(diffs) < 0.002

    # value labels: the built-in instrument's own wording, on each item's v_ column
    ayers = get_builtin("ayers_harm")
    for item in ("quality", "empathy", "harm_extent", "could_cause_harm"):
        options = next(i for i in ayers.items if i.key == item).options
        assert meta.variable_value_labels[f"v_{item}"] == {o.value: o.label for o in options}
        on_item = back.filter(pl.col("item") == item)
        assert on_item.get_column(f"v_{item}").to_list() == on_item.get_column("value").to_list()
        assert back.filter(pl.col("item") != item).get_column(f"v_{item}").null_count() == (
            back.height - on_item.height
        )
    assert meta.column_names_to_labels["seconds"] == "Seconds on task"
    assert meta.column_names_to_labels["position"] == "Presentation position"
    assert all(len(label or "") <= 80 for label in meta.column_labels)


def test_the_codebook_lists_every_column_of_every_file(demo_bundle: Path) -> None:
    book = json.loads((demo_bundle / "codebook.json").read_text(encoding="utf-8"))
    markdown = (demo_bundle / "codebook.md").read_text(encoding="utf-8")
    columns = {
        "csv": pl.read_csv(demo_bundle / "ratings.csv", n_rows=1).columns,
        "parquet": pl.read_parquet_schema(demo_bundle / "ratings.parquet").names(),
        "dta": pyreadstat.read_dta(str(demo_bundle / "ratings.dta"), metadataonly=True)[
            1
        ].column_names,
        "sav": pyreadstat.read_sav(str(demo_bundle / "ratings.sav"), metadataonly=True)[
            1
        ].column_names,
    }
    for fmt, names in columns.items():
        key = "name" if fmt in ("csv", "parquet") else "stata_spss_name"
        listed = {v[key] for v in book["variables"] if fmt in v["formats"]}
        assert set(names) == listed, fmt
        for name in names:
            assert f"`{name}`" in markdown
    # every item's wording and its instrument's version
    ayers = get_builtin("ayers_harm")
    for item in ayers.items:
        assert item.prompt in markdown
        assert any(
            i["key"] == item.key
            and i["instrument_version"] == ayers.version
            and i["prompt"] == item.prompt
            for i in book["items"]
        )
    assert book["instruments"][0]["content_hash"] == ayers.content_hash()


def test_stata_names_are_valid_identifiers_of_at_most_32_characters() -> None:
    # Stata: [U] 11.3 Naming conventions (letters, digits, _; 32 characters; reserved words)
    names = stata_names(["ok", "in", "3rd", "with space", "é", "x" * 40, "X" * 40, "str80", "_n"])
    assert all(len(n) <= 32 for n in names.values())
    assert all(n.isascii() and (n[0].isalpha() or n[0] == "_") for n in names.values())
    assert len({n.lower() for n in names.values()}) == len(names)
    assert names["ok"] == "ok"
    assert names["in"] != "in" and names["str80"] != "str80" and names["_n"] != "_n"


def test_the_manifest_matches_the_files_and_the_zip_holds_everything(demo) -> None:
    data = exports.bundle_zip(demo, OPERATOR, DEMO, boot=100)
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert set(archive.namelist()) == BUNDLE
    manifest = json.loads(archive.read("manifest.json"))
    listed = {f["name"]: f for f in manifest["files"]}
    assert set(listed) == BUNDLE - {"manifest.json"}
    for name, entry in listed.items():
        content = archive.read(name)
        assert hashlib.sha256(content).hexdigest() == entry["sha256"], name
        assert len(content) == entry["bytes"]
    # the head the bundle records is the chain's head after the export, and the chain holds
    seq, head = audit.head(demo)
    assert manifest["audit_chain_head"] == {"seq": seq, "hash": head}
    assert audit_verify.verify(demo, expect=head).ok
    last = demo.read("SELECT action, payload FROM audit_events ORDER BY seq DESC LIMIT 1").row(0)
    assert last[0] == "ratings.export"
    assert json.loads(last[1])["formats"] == ["bundle", *FORMATS]
    protocol = demo.read("SELECT content_hash FROM protocols WHERE study = $s", {"s": DEMO})
    assert manifest["protocol"]["content_hash"] == protocol.item(0, 0)
    assert manifest["software"]["packages"]["pyreadstat"] == pyreadstat.__version__
    # the Analysis screen's seed (from the protocol's hash), so the report's intervals are its
    seed = analyses.study_results(demo, OPERATOR, DEMO, boot=0)["plan"]["seed"]
    assert seed == seed_from_hash(protocol.item(0, 0))
    assert manifest["seeds"]["analysis_bootstrap"] == {"seed": seed, "replicates": 100}
    assert archive.read("report.html").startswith(b"<!DOCTYPE html>")


def test_the_sealed_seed_stays_out_of_the_bundle_until_unblinding(demo, tmp_path: Path) -> None:
    blind = bundle(demo, OPERATOR, DEMO, tmp_path / "blind", formats=["csv"], boot=0)
    commitment = demo.read(
        "SELECT commitment FROM sealed_seeds WHERE study = $s", {"s": DEMO}
    ).item(0, 0)
    assert blind["seeds"]["assignment"]["seed"] is None
    assert blind["seeds"]["assignment"]["commitment"] == commitment
    assert "sealed until unblinding" in blind["seeds"]["assignment"]["note"]

    lifecycle.close_rating(demo, OPERATOR, DEMO)
    statistician = sign_in_demo(demo, "demo-statistician")
    lifecycle.unblind(demo, statistician, DEMO)
    open_ = bundle(demo, statistician, DEMO, tmp_path / "open", formats=["csv"], boot=0)
    assert open_["seeds"]["assignment"]["seed"] == DEMO_SEED
    assert open_["seeds"]["assignment"]["commitment"] == commitment
    assert open_["generated_by"] == "demo-statistician"


def sign_in_demo(store, user_id: str):
    from study.services import people

    return people.demo_sign_in(store, user_id)


def test_a_person_exports_the_bundle_only_after_unblinding(demo, tmp_path: Path) -> None:
    from study.errors import StateError

    statistician = sign_in_demo(demo, "demo-statistician")
    before = audit.head(demo)
    with pytest.raises(StateError, match="unblinding"):
        exports.bundle_zip(demo, statistician, DEMO)
    folder = tmp_path / "refused"
    with pytest.raises(StateError, match="unblinding"):
        bundle(demo, statistician, DEMO, folder)
    assert list(folder.iterdir()) == []
    assert audit.head(demo) == before, "a refused export appends no event"


def test_bad_formats_and_folders_are_refused_before_anything_is_written(demo, tmp_path) -> None:
    from study.errors import StudyError

    before = audit.head(demo)
    with pytest.raises(StudyError, match="Export formats are csv, parquet, dta, sav; not 'xlsx'"):
        bundle(demo, OPERATOR, DEMO, tmp_path / "a", formats=["xlsx"])
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    with pytest.raises(StudyError, match="existing, empty folder"):
        exports.write_bundle(demo, OPERATOR, DEMO, full)
    assert audit.head(demo) == before


def test_guesses_travel_on_every_row_of_their_answer_with_labels(store, draft, tmp_path) -> None:
    # the built-in source_guess item beside the rating instrument; every rater guesses "AI"
    # for the answer shown first and "clinician" for the second
    guess = attach_source_guess(store, draft)
    open_rating(store, draft)
    # free text longer than a Stata str2045 (a strL) and text that looks like a formula
    comments = iter([{"Response A": "é" * 3000, "Response B": "=1+1"}])
    for rater in RATERS:
        caller = sign_in(store, rater)
        while (view := rating_service.next_assignment(store, caller, draft)) is not None:
            values = full_values() | {"source_guess": {"Response A": 1, "Response B": 2}}
            comment = next(comments, None)
            if comment:
                values["comment"] = comment
            rating_service.submit_rating(
                store, caller, draft, view["assignment"], values, seconds=3
            )
    bundle(store, OPERATOR, draft, tmp_path / "b", formats=["parquet", "dta", "sav"], boot=50)

    frame = pl.read_parquet(tmp_path / "b" / "ratings.parquet")
    per_answer = frame.filter(pl.col("answer").is_not_null())
    expected = per_answer.get_column("label").replace_strict({"Response A": 1, "Response B": 2})
    assert per_answer.get_column("source_guess").to_list() == expected.to_list()
    assert frame.filter(pl.col("answer").is_null()).get_column("source_guess").null_count() == (
        frame.height - per_answer.height
    )
    quality = per_answer.filter(pl.col("item") == "quality")
    assert set(quality.get_column("value_label").to_list()) <= {"1", "2", "3", "4", "5"}
    for suffix in ("dta", "sav"):
        back, meta = read_back(tmp_path / "b" / f"ratings.{suffix}")
        options = guess.items[0].options
        assert meta.variable_value_labels["source_guess"] == {o.value: o.label for o in options}
        assert back.get_column("source_guess").drop_nulls().sort().to_list() == (
            per_answer.get_column("source_guess").sort().to_list()
        )
        texts = sorted(t for t in back.get_column("value_text").to_list() if t)
        assert texts == sorted(frame.get_column("value_text").drop_nulls().to_list())
        assert "é" * 3000 in texts and "=1+1" in texts  # as stored: only the CSV neutralises
    report = (tmp_path / "b" / "report.html").read_text(encoding="utf-8")
    assert "bang_index" in report and "james_index" in report


@pytest.mark.parametrize("stage", ["draft", "rating, nothing rated"])
def test_a_study_without_ratings_still_gets_a_complete_bundle(store, draft, tmp_path, stage):
    # the operator may export at any time: an empty export, a codebook and a report that says
    # what could not be analysed
    study = open_rating(store, draft) if stage.startswith("rating") else draft
    manifest = bundle(store, OPERATOR, study, tmp_path / "b", boot=20)
    assert {p.name for p in (tmp_path / "b").iterdir()} == BUNDLE
    assert manifest["rows"] == 0
    assert pl.read_parquet(tmp_path / "b" / "ratings.parquet").height == 0
    back, _ = read_back(tmp_path / "b" / "ratings.dta")
    assert back.height == 0
    report = (tmp_path / "b" / "report.html").read_text(encoding="utf-8")
    assert "to be completed by the authors" in report


def test_the_report_runs_the_locked_plan_on_the_exported_ratings(demo) -> None:
    # routing, checked by hand: the demo protocol's primary item, arms, margin and direction
    # reach the analysis; the paired t estimate is the mean over cases of the per-case
    # difference of arm means, and the harm endpoint's estimate is the difference of the two
    # arms' shares of "could cause harm" (both computed here with plain polars)
    from study.demo import REFERENCE_ARM, TEST_ARM
    from study.services import analyses

    ratings = exports.export_ratings_long(demo, OPERATOR, DEMO)
    results = analyses.study_results(demo, OPERATOR, DEMO, boot=0)
    ni = results["results"]
    primary = ni.filter(pl.col("role") == "primary")
    assert primary.get_column("item").to_list() == ["quality"]
    # the plan's sensitivity method is a sensitivity row, in the plan; never a second primary
    row = ni.filter((pl.col("role") == "sensitivity") & pl.col("in_plan")).row(0, named=True)
    assert (row["item"], row["method"]) == ("quality", "t")
    assert (row["test_arm"], row["reference_arm"], row["margin"], row["direction"]) == (
        TEST_ARM,
        REFERENCE_ARM,
        0.5,
        "higher",
    )
    quality = ratings.filter(pl.col("item") == "quality")
    per_case = (
        quality.group_by("case", "arm")
        .agg(pl.col("value").mean())
        .pivot(on="arm", index="case", values="value")
        .drop_nulls()
    )
    by_hand = (per_case[TEST_ARM] - per_case[REFERENCE_ARM]).mean()
    assert row["estimate"] == pytest.approx(by_hand, abs=1e-12)

    harm = ni.filter(pl.col("item") == "could_cause_harm").row(0, named=True)
    shares = (
        ratings.filter(pl.col("item") == "could_cause_harm")
        .group_by("arm")
        .agg(pl.col("value").mean())
    )
    share = dict(shares.iter_rows())
    assert harm["role"] == "secondary" and harm["direction"] == "lower"
    assert harm["estimate"] == pytest.approx(share[TEST_ARM] - share[REFERENCE_ARM], abs=1e-12)
    assert harm["p_adjusted"] is not None
    assert {"agreement", "summary", "pairwise"} <= set(results)
    assert results["blinding"].height == 0  # the demo asked no source guesses
