"""Outcomes blind to arms while rating is open (``study.access``, the services a coordinator holds).

A coordinator during rating calls every service that a permission held by the coordinator's role
declares, with sensible arguments, and everything those calls return (frames, dicts, refusals'
messages) is searched for a rating outcome beside an arm: the text of an answer rated as severe
harm (the safety queue shows it so harm can be acted on) in one record with an arm id, or a
flagged or alerted case whose arm can be told from the case alone. The same search over the
answers read by the operator (who is no person and holds the file) finds the join: the search
can fail.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from conftest import INSTRUMENT, OPERATOR, sign_in
from test_access import GUARDED

from study import access
from study.access import BLIND_STATUSES, PERMISSIONS
from study.errors import PermissionDenied, StudyError
from study.services import content, design, lifecycle, monitoring
from study.store import Store

DEMO = "demo-patient-questions"
COORDINATOR = "demo-coordinator"


def coordinator_services() -> list[str]:
    """Every service a permission held by the coordinator's role names, in declaration order;
    closing rating last (it changes the status the others are tried in)."""
    names = [
        service
        for permission in PERMISSIONS.values()
        if "coordinator" in permission.roles
        for service in permission.services
    ]
    unique = list(dict.fromkeys(names))
    unique.remove("lifecycle.close_rating")
    return unique


def sensible_arguments(store: Store, study: str, tmp: Path) -> dict[str, Any]:
    """Values for the parameters the services require, by parameter name, taken from the study
    itself (its raters, its open alert, its instrument, its protocol)."""
    operator_view = {
        "rater": store.read(
            "SELECT min(rater) FROM assignments WHERE study = $s", {"s": study}
        ).item(),
        "case_id": store.read(
            "SELECT min(a.case_id) FROM safety_alerts s JOIN ratings r ON r.id = s.rating"
            " JOIN assignments a ON a.id = r.assignment WHERE s.study = $s",
            {"s": study},
        ).item(),
        "flag": store.read("SELECT min(id) FROM case_flags WHERE study = $s", {"s": study}).item(),
        "alert": store.read(
            "SELECT min(id) FROM safety_alerts WHERE study = $s AND acknowledged_at IS NULL",
            {"s": study},
        ).item(),
        "protocol": design.get_protocol(store, OPERATOR, study)["content"],
        "key_version": store.read(
            "SELECT instrument_key, instrument_version FROM study_instruments WHERE study = $s"
            " LIMIT 1",
            {"s": study},
        ).row(0),
    }
    file = tmp / "rows.jsonl"
    file.write_text('{"case_id": "x"}\n', encoding="utf-8")
    key, version = operator_view["key_version"]
    return {
        "name": "Blind probe",
        "key": key,
        "version": version,
        "instrument": INSTRUMENT,
        "path": file,
        # a column mapping of the probe file (the table import refuses a study in rating)
        "mapping_text": '[cases]\nid = "case_id"\n',
        "cases": pl.DataFrame({"case_id": ["probe"], "question": ["A probe?"]}),
        "arms": pl.DataFrame({"arm_id": ["probe-arm"], "kind": ["llm"], "label": ["Probe"]}),
        "answers": pl.DataFrame(
            {"answer_id": ["probe"], "case_id": ["probe"], "arm_id": ["probe-arm"], "text": ["t"]}
        ),
        "arm_id": "probe-arm",
        "kind": "llm",
        "label": "Probe",
        "case_ids": [],
        "arm_ids": [],
        "answer_ids": [],
        "protocol": operator_view["protocol"],
        "reason": "a probe of the blind",
        "assignments": pl.DataFrame(),
        "presentations": pl.DataFrame(),
        "raters_per_case": 2,
        "settings": {},
        "margin": 0.5,
        "sd": 1.0,
        "icc": 0.2,
        "rater": operator_view["rater"],
        "alert": operator_view["alert"],
        "case_id": operator_view["case_id"],
        "flag": operator_view["flag"],
        "note": "Called the rater.",
        "token_id": "no-such-token",
        "email": "probe@example.org",
        "role": "rater",
        "user_id": operator_view["rater"],
        "boot": 20,
    }


OPTIONAL_GIVEN = {"boot", "reason", "rater", "case_id"}
"""Optional parameters given all the same: an amendment's reason, another rater's queue, the
alerted case to preview, a short bootstrap."""


def call_as(store: Store, caller, name: str, study: str, values: dict[str, Any]) -> Any:
    """Call service ``name`` as ``caller``: ``study`` third when it takes one, every other
    required parameter from ``values``; a refusal or domain error is returned as its message
    (it is something the caller reads too)."""
    fn = GUARDED[name]
    args, kwargs = [], {}
    for parameter in list(inspect.signature(fn).parameters.values())[2:]:
        wanted = parameter.name == "study" or parameter.default is inspect.Parameter.empty
        if not (wanted or parameter.name in OPTIONAL_GIVEN):
            continue
        value = study if parameter.name == "study" else values[parameter.name]
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY:
            kwargs[parameter.name] = value
        else:
            args.append(value)
    try:
        return fn(store, caller, *args, **kwargs)
    except StudyError as error:
        return str(error)


def records(result: Any) -> Iterator[set[str]]:
    """What one reading puts side by side: a frame's rows, each one record; a dict (or a list of
    them) as one record of every scalar it holds at any depth, as a screen would show it."""
    if isinstance(result, pl.DataFrame):
        for row in result.iter_rows():
            yield {str(v) for v in row if v is not None}
    elif isinstance(result, dict):
        yield set(_leaves(result))
        for value in result.values():
            if isinstance(value, pl.DataFrame | dict):
                yield from records(value)
    elif isinstance(result, list | tuple):
        for value in result:
            yield from records(value)


def _leaves(value: Any) -> Iterable[str]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield str(key)
            yield from _leaves(inner)
    elif isinstance(value, list | tuple):
        for inner in value:
            yield from _leaves(inner)
    elif isinstance(value, pl.DataFrame):
        for row in value.iter_rows():
            yield from (str(v) for v in row if v is not None)
    elif value is not None:
        yield str(value)


def joins(readings: dict[str, Any], store: Store, study: str) -> list[str]:
    """Each way the readings join a rating outcome to an arm, in words (empty: none).

    Outcomes: every safety alert's rated answer (its text and answer id) and every case that
    has an alert or a flag. A record that holds an arm id beside the rated answer's text or id
    joins them; a case whose readings name exactly one arm for it joins its flag or alert.
    """
    arms = set(store.read("SELECT arm_id FROM arms WHERE study = $s", {"s": study})["arm_id"])
    alerted = store.read(
        "SELECT an.answer_id, an.text, an.case_id FROM safety_alerts s"
        " JOIN ratings r ON r.id = s.rating JOIN presentations p ON p.id = r.presentation"
        " JOIN answers an ON an.study = p.study AND an.answer_id = p.answer_id"
        " WHERE s.study = $s",
        {"s": study},
    )
    flagged = store.read(
        "SELECT DISTINCT a.case_id FROM case_flags f JOIN assignments a ON a.id = f.assignment"
        " WHERE f.study = $s",
        {"s": study},
    )["case_id"]
    assert alerted.height and flagged.len(), "the probe needs alerts and flags to look for"
    rated = set(alerted["answer_id"]) | set(alerted["text"])
    cases = set(alerted["case_id"]) | set(flagged)
    found, arms_by_case = [], {}
    for service, result in readings.items():
        for record in records(result):
            named = record & arms
            if named and record & rated:
                found.append(f"{service}: a rated answer beside arm {sorted(named)}")
            for case in record & cases:
                arms_by_case.setdefault(case, set()).update(named)
    found += [
        f"case {case}: its flag or alert names arm {sorted(named)}"
        for case, named in arms_by_case.items()
        if len(named) == 1
    ]
    return found


@pytest.fixture
def outcomes(demo: Store) -> Store:
    """The demo during rating, with a flag beside its safety alerts (the demo raises alerts)."""
    from study.services import rating

    rater = demo.read(
        "SELECT rater FROM assignments WHERE study = $s AND NOT done AND phase = 'live'"
        " ORDER BY rater LIMIT 1",
        {"s": DEMO},
    ).item()
    caller = sign_in(demo, rater)
    view = rating.next_assignment(demo, caller, DEMO)
    rating.flag_case(demo, caller, DEMO, view["assignment"], "The question is cut off.")
    assert studies_status(demo) == "rating"
    return demo


def studies_status(store: Store) -> str:
    return store.read("SELECT status FROM studies WHERE id = $s", {"s": DEMO}).item()


def set_status(store: Store, status: str) -> None:
    """Put the demo study in ``status`` directly (the permission's rule, not the lifecycle, is
    under test)."""
    with store.transaction() as cur:
        cur.execute("UPDATE studies SET status = ? WHERE id = ?", [status, DEMO])


def read_everything(store: Store, tmp: Path) -> dict[str, Any]:
    caller = sign_in(store, COORDINATOR)
    values = sensible_arguments(store, DEMO, tmp)
    readings = {name: call_as(store, caller, name, DEMO, values) for name in coordinator_services()}
    for rater in store.read("SELECT DISTINCT rater FROM assignments WHERE study = $s", {"s": DEMO})[
        "rater"
    ]:
        readings[f"rating.rater_queue {rater}"] = call_as(
            store, caller, "rating.rater_queue", DEMO, {**values, "rater": rater}
        )
    return readings


def test_a_coordinator_reads_no_outcome_beside_an_arm_while_rating_and_after_closing(
    outcomes: Store, tmp_path: Path
) -> None:
    during = read_everything(outcomes, tmp_path)
    # the safety queue still shows the rated answer's text, so that harm can be acted on
    queue = during["monitoring.safety_queue"]
    assert isinstance(queue, pl.DataFrame) and queue["answer_text"].drop_nulls().len()
    assert joins(during, outcomes, DEMO) == []
    for name in ("content.list_answers", "design.preview_view"):
        assert "never while it may hold blind ratings" in during[name], name

    lifecycle.close_rating(outcomes, sign_in(outcomes, COORDINATOR), DEMO)
    assert studies_status(outcomes) == "closed"
    assert joins(read_everything(outcomes, tmp_path), outcomes, DEMO) == []


def test_the_search_finds_the_join_when_answers_are_read_beside_their_arms(
    outcomes: Store, tmp_path: Path
) -> None:
    readings = read_everything(outcomes, tmp_path)
    # the operator (no person: not blinded) reads what a coordinator could read before the fix
    readings["content.list_answers"] = content.list_answers(outcomes, OPERATOR, DEMO)
    assert any("content.list_answers" in j for j in joins(readings, outcomes, DEMO))


def test_the_declaration_says_who_sees_arms_when(outcomes: Store) -> None:
    linking = {name for name, p in PERMISSIONS.items() if p.links_arms}
    assert linking == {"view_answer_arms"}
    assert set(PERMISSIONS["view_answer_arms"].services) == {
        "content.list_answers",
        "design.preview_view",
    }
    coordinator = sign_in(outcomes, COORDINATOR)
    for status in ("draft", *sorted(BLIND_STATUSES), "unblinded"):
        set_status(outcomes, status)
        held = access.allowed(outcomes, coordinator, "view_answer_arms", study=DEMO)
        assert held == (status not in BLIND_STATUSES), status
    set_status(outcomes, "rating")
    with pytest.raises(PermissionDenied, match="never while it may hold blind ratings"):
        content.list_answers(outcomes, coordinator, DEMO)
    # an admin is a person too: blind as the coordinator is
    from study.services import people

    people.grant_role(outcomes, OPERATOR, None, "demo-statistician", "admin")
    with pytest.raises(PermissionDenied):
        design.preview_view(outcomes, sign_in(outcomes, "demo-statistician"), DEMO)
    assert monitoring.safety_queue(outcomes, coordinator, DEMO).height
