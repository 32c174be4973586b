"""The Export page through AppTest: a statistician is told to unblind first, then prepares the
bundle and gets every file and the zip; a rater never reaches the page."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from conftest import picker_place, sign_in
from streamlit.testing.v1 import AppTest

from study import audit_verify
from study.services import lifecycle, studies
from study.store import Store

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
STATISTICIAN = "demo-statistician"


def open_export(monkeypatch: pytest.MonkeyPatch, db: Path, person: str) -> AppTest:
    monkeypatch.setenv("CLINVAL_DB", str(db))
    monkeypatch.setenv("CLINVAL_DEMO_ON_START", "0")
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["person"] = picker_place(db, person)
    at.run()
    return at.switch_page("pages/export.py").run()


def demo_study(db: Path) -> str:
    with Store(db) as store:
        frame = studies.list_studies(store, sign_in(store, STATISTICIAN))
        return frame.filter(frame["status"] == "rating")["id"][0]


def test_before_unblinding_the_statistician_is_sent_to_unblind_first(monkeypatch, demo_db):
    at = open_export(monkeypatch, demo_db, STATISTICIAN)
    assert not at.exception, [e.message for e in at.exception]
    assert at.title[0].value == "Export"
    study = demo_study(demo_db)
    at.selectbox(key="export_study").set_value(study).run()
    at = at.button[0].click().run()  # the form's submit button
    assert not at.exception, [e.message for e in at.exception]
    assert any("Unblind the study" in info.value for info in at.info), [i.value for i in at.info]
    with Store(demo_db) as store:
        kinds = audit_verify.verify(store).counts
    assert kinds.get("ratings.export", 0) == 0  # nothing left Clinval


def test_after_unblinding_every_file_and_the_zip_are_offered(monkeypatch, demo_db):
    study = demo_study(demo_db)
    with Store(demo_db) as store:
        statistician = sign_in(store, STATISTICIAN)
        coordinator = sign_in(store, "demo-coordinator")
        lifecycle.close_rating(store, coordinator, study)
        lifecycle.unblind(store, statistician, study)
    at = open_export(monkeypatch, demo_db, STATISTICIAN)
    at.selectbox(key="export_study").set_value(study).run()
    at = at.button[0].click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    labels = [d.label for d in at.get("download_button")]
    assert labels[0] == "Download everything (zip)"
    files = at.session_state["export_files"]["files"]
    assert {"ratings.csv", "ratings.dta", "ratings.sav", "report.html", "codebook.md"} <= set(files)
    with zipfile.ZipFile(io.BytesIO(files[f"{study}-bundle.zip"])) as bundle:
        assert "manifest.json" in bundle.namelist()
    with Store(demo_db) as store:
        report = audit_verify.verify(store)
    assert report.ok and report.counts.get("ratings.export") == 1


def test_a_rater_has_no_export_page(monkeypatch, demo_db):
    monkeypatch.setenv("CLINVAL_DB", str(demo_db))
    monkeypatch.setenv("CLINVAL_DEMO_ON_START", "0")
    at = AppTest.from_file(APP, default_timeout=90)
    at.query_params["person"] = picker_place(demo_db, "demo-rater-01")
    at.run()
    assert at.title[0].value == "Rate"
