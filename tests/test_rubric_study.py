"""A rubric study end to end on the demo's rubric study: the view's conversation and criteria,
met / not-met submissions checked per criterion, the per-criterion export, the analyses, and the
lock's refusal of cases without criteria."""

from __future__ import annotations

import json

import polars as pl
import pytest
from conftest import new_study, sign_in

from study import audit_verify
from study.access import system_caller
from study.demo import RUBRIC_RATERS, RUBRIC_SIMULATED, RUBRIC_STUDY_ID
from study.errors import ConflictError, StateError, ValidationError
from study.instruments import InstrumentError, Item, get_builtin
from study.services import analyses, content, design, exports, people, rating
from study.services import instrument_library as instruments

NEWCOMER = next(r for r in RUBRIC_RATERS if r != RUBRIC_SIMULATED)


def test_the_view_gives_the_conversation_and_the_criteria_without_points(demo):
    caller = people.demo_sign_in(demo, NEWCOMER)
    view = rating.next_assignment(demo, caller, RUBRIC_STUDY_ID)
    assert [m["role"] for m in view["conversation"]] == ["user", "assistant", "user"]
    assert all(set(m) == {"role", "content"} for m in view["conversation"])
    assert view["rubric_items"] == ["rubric"]
    assert [c["key"] for c in view["criteria"]] == ["c1", "c2", "c3", "c4", "c5"]
    # raters judge what a criterion says; its points (and tags) are not shown
    assert all(set(c) == {"key", "criterion"} for c in view["criteria"])
    assert view["values"] == {}
    assert len(view["presentations"]) == 2
    # the main demo study's view has no conversation or criteria
    main = rating.next_assignment(
        demo, people.demo_sign_in(demo, "demo-rater-01"), "demo-patient-questions"
    )
    assert main["conversation"] is None and main["criteria"] == [] and main["rubric_items"] == []


def labels(view, met: set[str]) -> dict:
    keys = [c["key"] for c in view["criteria"]]
    return {p["label"]: {k: k in met for k in keys} for p in view["presentations"]}


def test_every_criterion_needs_a_label_and_a_submission_reads_back(demo):
    caller = people.demo_sign_in(demo, NEWCOMER)
    view = rating.next_assignment(demo, caller, RUBRIC_STUDY_ID)
    first, second = (p["label"] for p in view["presentations"])
    given = labels(view, {"c1", "c2"})
    partial = {first: given[first], second: {"c1": True}}
    with pytest.raises(ValidationError) as err:
        rating.submit_rating(demo, caller, RUBRIC_STUDY_ID, view["assignment"], {"rubric": partial})
    assert f"item 'rubric', {second}: criterion 'c2' needs met or not met" in str(err.value)
    wrong = {first: given[first] | {"c9": True}, second: given[second]}
    with pytest.raises(ValidationError, match="'c9' is not a criterion of this case"):
        rating.submit_rating(demo, caller, RUBRIC_STUDY_ID, view["assignment"], {"rubric": wrong})
    odd = {first: given[first] | {"c1": "yes"}, second: given[second]}
    with pytest.raises(ValidationError, match="met \\(true\\) or not met \\(false\\)"):
        rating.submit_rating(demo, caller, RUBRIC_STUDY_ID, view["assignment"], {"rubric": odd})
    with pytest.raises(ValidationError, match="required, but has no value"):
        rating.submit_rating(demo, caller, RUBRIC_STUDY_ID, view["assignment"], {})

    seq = rating.submit_rating(
        demo, caller, RUBRIC_STUDY_ID, view["assignment"], {"rubric": given}, seconds=41
    )
    event = demo.read("SELECT payload FROM audit_events WHERE seq = $s", {"s": seq}).item()
    stored = [v["value_text"] for v in json.loads(event)["values"]]
    assert json.loads(stored[0]) == {"c1": True, "c2": True, "c3": False, "c4": False, "c5": False}
    again = rating.assignment_view(demo, caller, RUBRIC_STUDY_ID, view["assignment"])
    assert again["values"] == {"rubric": given}
    with pytest.raises(ConflictError):
        rating.submit_rating(demo, caller, RUBRIC_STUDY_ID, view["assignment"], {"rubric": given})
    # a revision changes one criterion of one answer: one new revision of that answer's labels
    changed = {first: given[first] | {"c4": True}}
    rating.submit_rating(
        demo, caller, RUBRIC_STUDY_ID, view["assignment"], {"rubric": changed}, revise=True
    )
    assert (
        rating.assignment_view(demo, caller, RUBRIC_STUDY_ID, view["assignment"])["values"][
            "rubric"
        ][first]["c4"]
        is True
    )
    assert audit_verify.verify(demo).ok


def test_the_export_has_one_row_per_answer_and_criterion(demo):
    frame = exports.export_ratings_long(demo, system_caller("cli"), RUBRIC_STUDY_ID)
    criteria = {
        case: len(json.loads(text))
        for case, text in content.list_cases(demo, system_caller("cli"), RUBRIC_STUDY_ID)
        .select("case_id", "criteria")
        .iter_rows()
    }
    per_answer = frame.group_by("case", "answer", "rater").len()
    for case, _, _, n in per_answer.iter_rows():
        assert n == criteria[case]
    assert set(frame["value"].unique().to_list()) <= {0.0, 1.0}
    assert frame["value_text"].null_count() == frame.height
    row = frame.filter(pl.col("criterion_unit") == "rubric-001:clinician:c4").row(0, named=True)
    assert row["points"] == -9.0 and row["criterion"] == "c4"
    assert row["criterion_tags"].split(";") == [
        "axis:accuracy",
        "synthetic",
        "theme:emergency_referrals",
    ]
    # the main demo's export is as it was: no rubric columns
    main = exports.export_ratings_long(demo, system_caller("cli"), "demo-patient-questions")
    assert "criterion" not in main.columns


def test_rubric_results_score_the_arms_and_test_non_inferiority(demo):
    # both demo raters rate everything first, so that agreement has pairs
    caller = people.demo_sign_in(demo, NEWCOMER)
    while (view := rating.next_assignment(demo, caller, RUBRIC_STUDY_ID)) is not None:
        rating.submit_rating(
            demo,
            caller,
            RUBRIC_STUDY_ID,
            view["assignment"],
            {"rubric": labels(view, {"c1", "c2"})},
        )
    result = analyses.rubric_results(
        demo, system_caller("cli"), RUBRIC_STUDY_ID, test="llm_a", reference="clinician",
        margin=0.1, boot=200, seed=5,
    )  # fmt: skip
    overall = result.filter(
        (pl.col("statistic") == "rubric_score") & (pl.col("variant") == "overall")
    )
    assert sorted(overall["arm"].to_list()) == ["clinician", "llm_a"]
    assert overall["n_raters"].to_list() == [2, 2]
    balanced = result.filter(
        (pl.col("statistic") == "healthbench_agreement") & (pl.col("variant") == "balanced_f1")
    )
    assert set(balanced["rater"]) == {*RUBRIC_RATERS, "clinicians"}
    ni = result.filter(pl.col("statistic") == "mean_difference").row(0, named=True)
    assert ni["test_arm"] == "llm_a" and ni["margin"] == 0.1 and ni["applicable"]


def test_a_person_reads_rubric_results_only_after_unblinding(demo):
    statistician = people.demo_sign_in(demo, "demo-statistician")
    with pytest.raises(Exception) as err:
        analyses.rubric_results(
            demo, statistician, RUBRIC_STUDY_ID, test="llm_a", reference="clinician", margin=0.1
        )
    assert type(err.value).__name__ in ("PermissionDenied", "StateError")


def test_the_lock_refuses_a_rubric_item_on_cases_without_criteria(store, tmp_path):
    study = new_study(store, "rubric without criteria")
    coordinator = sign_in(store, "coordinator")
    (tmp_path / "cases.csv").write_text("case_id,question\nq1,Is this fine?\n")
    (tmp_path / "arms.csv").write_text("arm_id,kind,label,model_name,model_version,author_role\n"
                                       "doc,clinician,Doctors,,,GP\n")  # fmt: skip
    (tmp_path / "answers.csv").write_text("case_id,arm_id,text,author_id\nq1,doc,Yes.,a1\n")
    for kind in ("cases", "arms", "answers"):
        getattr(content, f"import_{kind}")(store, coordinator, study, tmp_path / f"{kind}.csv")
    key, version = instruments.add_instrument(store, coordinator, get_builtin("healthbench_rubric"))
    instruments.attach_instrument(store, coordinator, study, key, version)
    with pytest.raises(StateError, match="1 case\\(s\\) have no rubric criteria .*'q1'"):
        design.lock_protocol(store, coordinator, study, {"single_answer_cases": True})


def test_a_case_criteria_item_is_nominal_per_answer_without_options():
    with pytest.raises(InstrumentError) as err:
        Item(key="r", prompt="Met?", type="rubric_criterion", level="ordinal", scope="case",
             criteria="case")  # fmt: skip
    text = str(err.value)
    assert "field 'level'" in text and "field 'scope'" in text
    with pytest.raises(InstrumentError, match="only rubric_criterion items"):
        Item(key="r", prompt="Met?", type="binary", level="nominal", criteria="case")
    item = get_builtin("healthbench_rubric").item("rubric")
    assert item.per_case_criteria and item.to_dict()["criteria"] == "case"
    # an item without the field keeps the dictionary (and so the hash) it always had
    assert "criteria" not in get_builtin("harm").items[0].to_dict()


def test_a_model_graders_labels_come_in_as_ratings_and_meet_the_clinicians(store, tmp_path):
    from analysis.rubric import healthbench_agreement
    from study.demo import RUBRIC_DIR
    from study.services import rating_imports

    study = new_study(store, "graded elsewhere")
    coordinator = sign_in(store, "coordinator")
    for kind, name in (
        ("arms", "arms.csv"),
        ("cases", "cases.jsonl"),
        ("answers", "answers.jsonl"),
    ):
        getattr(content, f"import_{kind}")(store, coordinator, study, RUBRIC_DIR / name)
    key, version = instruments.add_instrument(store, coordinator, get_builtin("healthbench_rubric"))
    instruments.attach_instrument(store, coordinator, study, key, version)
    design.lock_protocol(store, coordinator, study, {})
    operator = system_caller("cli")
    for rater in ("clin-1", "clin-2", "model-grader"):
        people.ensure_user(store, operator, issuer="pseudonymous", subject=rater, user_id=rater)
        people.grant_role(store, operator, study, rater, "rater")
    # case rubric-002 (4 criteria), both answers: the clinicians differ on c3 of the LLM answer,
    # the grader sides with clin-1
    met = {
        ("clin-1", "llm_a"): {"c1", "c2", "c3"},
        ("clin-2", "llm_a"): {"c1", "c2"},
        ("model-grader", "llm_a"): {"c1", "c2", "c3"},
    }
    lines = ["case_id,rater_id,item,arm_id,value"]
    for rater in ("clin-1", "clin-2", "model-grader"):
        for arm in ("llm_a", "clinician"):
            labels = met.get((rater, arm), {"c1", "c2", "c3"})
            value = json.dumps({f"c{i}": f"c{i}" in labels for i in range(1, 5)})
            lines.append(f'rubric-002,{rater},rubric,{arm},"{value.replace(chr(34), chr(34) * 2)}"')
    path = tmp_path / "graded.csv"
    path.write_text("\n".join(lines) + "\n")
    bad = tmp_path / "bad.csv"
    bad.write_text(lines[0] + "\n" + lines[1].replace("c4", "c9") + "\n")
    with pytest.raises(ValidationError, match="'c9' is not a criterion of this case"):
        rating_imports.import_ratings(store, coordinator, study, bad)
    rating_imports.import_ratings(store, coordinator, study, path)
    frame = exports.export_ratings_long(store, operator, study)
    assert frame.height == 3 * 2 * 4  # raters x answers x criteria
    agreement = healthbench_agreement(
        frame, unit="criterion_unit", rater="rater", met="value", grader="model-grader"
    )
    grader = {
        r["variant"]: r["estimate"] for r in agreement.to_dicts() if r["rater"] == "model-grader"
    }
    # grader vs clin-1: all 8 units agree (6 met, 2 not met); vs clin-2: llm c3 the grader says
    # met, clin-2 not: TT 6 + 5, TF 0 + 1, FT 0, FF 2 + 2 -> precision_met 11/12, recall_met 1
    assert grader["precision_met"] == pytest.approx(11 / 12)
    assert grader["recall_met"] == 1.0
