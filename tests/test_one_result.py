"""One plan, one result: whatever the locked protocol says, the Analysis screen, the bundle's
report, the bundle's results.csv and ``python -m study results`` show the same rows with the
same numbers (they all render ``analyses.study_results``' results table).

Table-driven over protocols: the demo's own plan; a lower-is-better harm item whose endpoint
states no direction (it is tested lower-is-better, from the item's declaration: the screen once
assumed "higher"); a binary secondary with its own margin; free JSON locked from the command
line in the older ``primary_item`` spelling; a one-sample comparative endpoint; a rubric
endpoint. The statistics themselves are checked against outside references elsewhere
(``test_analysis_service``, ``test_case_items_analysis``, ``test_rubric_report``); here the
renderings are compared with each other.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest
from conftest import OPERATOR, run_app, sign_in

from study import cli
from study.demo import DEMO_STUDY_ID, RUBRIC_RATERS, RUBRIC_SIMULATED, RUBRIC_STUDY_ID
from study.demo import STATISTICIAN as RUBRIC_STATISTICIAN
from study.services import design, exports, lifecycle, people, rating, tokens
from study.store import Store

DEMO_COORDINATOR, DEMO_STATISTICIAN = "demo-coordinator", "demo-statistician"
ARMS = {"test": "llm_a", "reference": "clinician"}


# --- the studies: each builder returns (database, study, its statistician), unblinded --------


def _amend_and_unblind(db: Path, plan: dict | None, *, by_cli: Path | None = None) -> None:
    """The demo study, its protocol amended to ``plan`` (by the coordinator, or from the command
    line with the JSON file ``by_cli``), then closed and unblinded."""
    if by_cli is not None:
        # an amendment is the coordinator's act: the command line acts as them by their token
        with Store(db) as store:
            token = tokens.create_token(
                store, sign_in(store, DEMO_COORDINATOR), name="scripted plan", days=1
            ).token
        by_cli.write_text(json.dumps(plan), encoding="utf-8")
        command = ["--token", token, "lock", "--db", str(db), "--study", DEMO_STUDY_ID]
        command += ["--protocol", str(by_cli), "--reason", "plan written by hand"]
        assert cli.main(command, out=io.StringIO()) == 0
    with Store(db) as store:
        coordinator = sign_in(store, DEMO_COORDINATOR)
        if plan is not None and by_cli is None:
            design.lock_protocol(store, coordinator, DEMO_STUDY_ID, plan, reason="new plan")
        lifecycle.close_rating(store, coordinator, DEMO_STUDY_ID)
        lifecycle.unblind(store, sign_in(store, DEMO_STATISTICIAN), DEMO_STUDY_ID)


def demo_plan(db: Path, tmp_path: Path) -> tuple[str, str]:
    _amend_and_unblind(db, None)
    return DEMO_STUDY_ID, DEMO_STATISTICIAN


def harm_without_direction(db: Path, tmp_path: Path) -> tuple[str, str]:
    plan = {
        "arms": ARMS,
        "primary_endpoint": {"item": "quality", "margin": 0.5, "method": "t"},
        # harm_extent declares lower_is_better; the plan says nothing of the direction
        "secondary_endpoints": [{"item": "harm_extent", "margin": 0.5}],
    }
    _amend_and_unblind(db, plan)
    return DEMO_STUDY_ID, DEMO_STATISTICIAN


def binary_secondary(db: Path, tmp_path: Path) -> tuple[str, str]:
    plan = {
        "arms": ARMS,
        "primary_endpoint": {"item": "empathy", "margin": 0.5, "direction": "higher"},
        "secondary_endpoints": [
            {"item": "could_cause_harm", "statistic": "risk_difference", "margin": 0.05},
            {"item": "quality", "margin": 0.25, "direction": "higher", "method": "bootstrap"},
        ],
    }
    _amend_and_unblind(db, plan)
    return DEMO_STUDY_ID, DEMO_STATISTICIAN


def cli_free_json(db: Path, tmp_path: Path) -> tuple[str, str]:
    plan = {"primary_item": "harm_likelihood", "margin": 0.4, "method": "t"}
    _amend_and_unblind(db, plan, by_cli=tmp_path / "plan.json")
    return DEMO_STUDY_ID, DEMO_STATISTICIAN


def one_sample(db: Path, tmp_path: Path) -> tuple[str, str]:
    from test_case_items_analysis import ONE_SAMPLE_PLAN, comparative_study

    with Store(db) as store:
        study = comparative_study(store, tmp_path, ONE_SAMPLE_PLAN)
    return study, "statistician"


def rubric(db: Path, tmp_path: Path) -> tuple[str, str]:
    newcomer_id = next(r for r in RUBRIC_RATERS if r != RUBRIC_SIMULATED)
    statistician = RUBRIC_STATISTICIAN["user_id"]
    with Store(db) as store:
        newcomer = people.demo_sign_in(store, newcomer_id)
        while (view := rating.next_assignment(store, newcomer, RUBRIC_STUDY_ID)) is not None:
            keys = [c["key"] for c in view["criteria"]]
            met = {p["label"]: {k: k == "c1" for k in keys} for p in view["presentations"]}
            rating.submit_rating(
                store, newcomer, RUBRIC_STUDY_ID, view["assignment"], {"rubric": met}
            )
        lifecycle.close_rating(store, OPERATOR, RUBRIC_STUDY_ID)
        people.grant_role(store, OPERATOR, RUBRIC_STUDY_ID, statistician, "statistician")
        lifecycle.unblind(store, sign_in(store, statistician), RUBRIC_STUDY_ID)
    return RUBRIC_STUDY_ID, statistician


SCENARIOS: dict[str, Callable[[Path, Path], tuple[str, str]]] = {
    "demo plan": demo_plan,
    "harm item, no direction": harm_without_direction,
    "binary secondary, own margin": binary_secondary,
    "free JSON locked at the command line": cli_free_json,
    "one-sample comparative score": one_sample,
    "rubric endpoint": rubric,
}


# --- the four renderings -------------------------------------------------------------------


def screen_rows(monkeypatch: pytest.MonkeyPatch, db: Path, study: str) -> pl.DataFrame:
    """The Analysis screen's results table, as the local operator (an admin) sees it."""
    from pages.components.results_cache import study_results

    study_results.clear()
    at = run_app(monkeypatch, db)
    at.query_params["person"] = "0"
    at.run()
    at.switch_page("pages/analyze.py").run()
    picker = at.selectbox(key="analyze_study")
    if picker.value != study:
        picker.set_value(study).run()
    assert not at.exception, [e.value for e in at.exception]
    (table,) = [d.value for d in at.dataframe if {"in_plan", "analysis"} <= set(d.value.columns)]
    return pl.from_pandas(table)


class _Tables(HTMLParser):
    """Every table of an HTML page as rows of cell texts (a details row is skipped)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self._row = [] if "details" not in (dict(attrs).get("class") or "") else None
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "sup":
            self._skip += 1  # a note's number is not the cell's text

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[-1].append(self._row)
            self._row = None
        elif tag == "sup":
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if self._cell is not None and not self._skip:
            self._cell.append(data)


def report_rows(html: str) -> list[dict[str, str]]:
    """The report's results table: the table whose header starts item, analysis, method."""
    parser = _Tables()
    parser.feed(html)
    (table,) = [t for t in parser.tables if t and t[0][:3] == ["item", "analysis", "method"]]
    header, *rows = table
    return [dict(zip(header, row, strict=True)) for row in rows]


def _number(x: float | None, digits: int) -> str:
    """A number as the report writes it (``report._num`` / ``report._p``)."""
    if x is None or x != x:
        return "—"
    if digits == 4 and 0 <= x < 0.0001:
        return "<0.0001"
    return f"{x:.{digits}f}"


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_the_screen_the_report_the_bundle_and_the_command_line_show_one_result(
    monkeypatch, demo_db: Path, tmp_path: Path, scenario: str
) -> None:
    study, statistician = SCENARIOS[scenario](demo_db, tmp_path)
    folder = tmp_path / "bundle"
    folder.mkdir()
    with Store(demo_db) as store:
        exports.write_bundle(store, OPERATOR, study, folder, formats=["csv"])
        issued = tokens.create_token(store, sign_in(store, statistician), name="check", days=1)
    bundle = pl.read_csv(folder / "results.csv", infer_schema_length=None)
    assert bundle.height, "the plan produced no row"

    printed = io.StringIO()
    code = cli.main(
        ["--token", issued.token, "results", "--db", str(demo_db), "--study", study], out=printed
    )
    assert code == 0
    assert printed.getvalue() == (folder / "results.json").read_text(encoding="utf-8")
    command = pl.DataFrame(json.loads(printed.getvalue())["results"], infer_schema_length=None)

    screen = screen_rows(monkeypatch, demo_db, study)
    report = report_rows((folder / "report.html").read_text(encoding="utf-8"))

    key = ["role", "analysis", "item"]
    assert screen.select(key).rows() == bundle.select(key).rows() == command.select(key).rows()
    assert [(r["item"], r["analysis"]) for r in report] == bundle.select("item", "analysis").rows()
    for column in ("estimate", "ci_low", "ci_high", "p_value", "p_adjusted"):
        want = bundle.get_column(column).cast(pl.Float64).to_list()
        got = command.get_column(column).cast(pl.Float64).to_list()
        assert got == pytest.approx(want, nan_ok=True), column
        if column in ("p_value", "p_adjusted"):  # the screen shows p as people read it
            shown = [None if p is None else "< 0.0001" if p < 1e-4 else f"{p:.2g}" for p in want]
            assert screen.get_column(column).to_list() == shown, column
        else:
            got = screen.get_column(column).cast(pl.Float64).to_list()
            assert got == pytest.approx(want, nan_ok=True), column
    # the report rounds: 3 decimals for estimates, 4 for p (below 0.0001: "<0.0001")
    for row, want in zip(report, bundle.iter_rows(named=True), strict=True):
        assert row["estimate"] == _number(want["estimate"], 3)
        assert row["interval"] == f"{_number(want['ci_low'], 3)} to {_number(want['ci_high'], 3)}"
        assert row["p"] == _number(want["p_value"], 4)
        assert row["p (Holm)"] == _number(want["p_adjusted"], 4)

    if scenario == "harm item, no direction":
        harm = bundle.filter(pl.col("item") == "harm_extent").row(0, named=True)
        assert harm["direction"] == "lower" and harm["applicable"]
        assert ">= 0.5" in harm["h0"]  # H0: test - reference >= margin: lower is better
    if scenario == "binary secondary, own margin":
        harm = bundle.filter(pl.col("item") == "could_cause_harm").row(0, named=True)
        assert (harm["statistic"], harm["margin"], harm["direction"]) == (
            "risk_difference",
            0.05,
            "lower",
        )
        quality = bundle.filter(pl.col("item") == "quality").row(0, named=True)
        assert (quality["margin"], quality["method"]) == (0.25, "bootstrap")


def test_a_study_without_unblinding_has_no_results_at_the_command_line(demo_db: Path) -> None:
    with Store(demo_db) as store:
        issued = tokens.create_token(store, sign_in(store, DEMO_STATISTICIAN), name="c", days=1)
    err = io.StringIO()
    code = cli.main(
        ["--token", issued.token, "results", "--db", str(demo_db), "--study", DEMO_STUDY_ID],
        out=err,
    )
    assert code == 2 and err.getvalue() == ""


def test_a_statistician_scripts_the_study_end_to_end_with_the_demos_tokens(tmp_path: Path) -> None:
    """The command line acts as a person: the demo's tokens close (coordinator), unblind,
    print the results and export the bundle (statistician), each a real ``python -m study``
    process; the bundle's results.json is the printed results, row for row and byte for byte,
    and the audit trail names the people, not the operator."""
    from test_cli import run_cli

    from study.demo import COORDINATOR, STATISTICIAN

    db, keys = tmp_path / "demo.duckdb", tmp_path / "tokens.json"
    assert run_cli("demo", "--tokens", keys, db=db).returncode == 0
    issued = json.loads(keys.read_text(encoding="utf-8"))
    coordinator, statistician = issued[COORDINATOR["email"]], issued[STATISTICIAN["email"]]

    def as_person(token: str, *args: str | Path):
        done = run_cli("--token", token, *args, db=db)
        assert done.returncode == 0, done.stderr
        return done.stdout

    as_person(coordinator, "close", "--study", DEMO_STUDY_ID)
    as_person(statistician, "unblind", "--study", DEMO_STUDY_ID)
    printed = as_person(statistician, "results", "--study", DEMO_STUDY_ID, "--format", "json")
    as_csv = as_person(statistician, "results", "--study", DEMO_STUDY_ID, "--format", "csv")
    folder = tmp_path / "bundle"
    as_person(statistician, "export", "--study", DEMO_STUDY_ID, "--out", folder, "--bundle")

    rows = json.loads(printed)["results"]
    assert rows == json.loads((folder / "results.json").read_text(encoding="utf-8"))["results"]
    assert printed == (folder / "results.json").read_text(encoding="utf-8")
    assert as_csv == (folder / "results.csv").read_text(encoding="utf-8")
    keys_needed = {"role", "in_plan", "item", "statistic", "method", "margin", "direction"}
    keys_needed |= {"estimate", "ci_low", "ci_high", "p_value", "p_adjusted", "conclusion"}
    assert all(keys_needed <= set(row) for row in rows)
    assert [r["role"] for r in rows if r["in_plan"]][:2] == ["primary", "sensitivity"]
    assert {r["direction"] for r in rows if r["item"] == "could_cause_harm"} == {"lower"}
    with Store(db) as store:
        acts = store.read(
            "SELECT actor, action FROM audit_events WHERE action IN"
            " ('study.closed', 'study.unblinded', 'ratings.export') ORDER BY seq"
        ).rows()
    assert acts == [
        (COORDINATOR["user_id"], "study.closed"),
        (STATISTICIAN["user_id"], "study.unblinded"),
        (STATISTICIAN["user_id"], "ratings.export"),
    ]
