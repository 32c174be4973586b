"""The protocol's lock: what a study must hold before it, the versions it freezes, and how a
locked version reads back.

The protocol (primary endpoint, margin, analysis plan, the assignment seed's commitment) is
locked before rating starts and hashed; nothing in a locked version changes, and a change is a
new version with a reason, the coordinator's alone. The design's services
(``study.services.design``) check the caller; these functions do the work.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import polars as pl

from study import audit
from study.access import Caller, require
from study.canonical import canonical_json, content_hash
from study.errors import NotFoundError, Problem, StateError, ValidationError, listed
from study.protocol import Plan, item_problems, newest_version, primary_spec, read_plan
from study.protocol import parse as parse_plan
from study.services import _seal
from study.services._common import MAX_LISTED, column, require_study, rubric_items
from study.store import Cursor, Store, utc_now


def lock_protocol(
    store: Store,
    caller: Caller,
    study: str,
    protocol: Mapping[str, Any],
    *,
    reason: str | None = None,
    seed: int | None = None,
) -> str:
    """Freeze ``protocol`` as the study's next version (``design.lock_protocol`` checks the
    caller first and says what is refused); returns its hash."""
    _seal.refuse_public_seed(protocol)
    _check_display(protocol)
    _check_phase_shape(protocol)
    plan = parse_plan(protocol)  # a protocol no service could read is refused here, field named
    seal = _seal.new_seal(store, seed) if seed is not None else None
    if seal is not None:
        protocol = {**protocol, "assignment_seed_commitment": seal["commitment"]}
    digest = content_hash(dict(protocol))
    cur = store.cursor()
    try:
        status = require_study(cur, study)["status"]
    finally:
        cur.close()
    if status != "draft":
        # a missing reason is wrong whoever asks: said before the permission check, so that this
        # refusal leaves no access.denied event behind (issue 19)
        _require_reason(study, reason)
        # checked before the transaction, so that the refusal's audit event is kept
        require(store, caller, "amend_protocol", study=study, service=_LOCK)
    with store.transaction() as cur:
        row = require_study(cur, study, ("draft", "locked", "rating"))
        if row["status"] != status:
            raise StateError(f"Study '{study}' changed state meanwhile; try again.")
        version = (newest_version(cur, study) or 0) + 1
        if row["status"] == "draft":
            _check_ready_to_lock(cur, study, protocol)
        _check_plan_items(cur, study, plan)
        _check_phases(cur, study, protocol)
        if row["status"] != "draft":
            _require_reason(study, reason)
        locked_at = utc_now()
        cur.execute(
            "INSERT INTO protocols (study, version, content, content_hash, reason, locked_at,"
            " locked_by) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                study,
                version,
                canonical_json(dict(protocol)),
                digest,
                reason,
                locked_at,
                caller.actor,
            ],
        )
        if row["status"] == "draft":
            cur.execute("UPDATE studies SET status = 'locked' WHERE id = ?", [study])
        payload: dict[str, Any] = {
            "version": version,
            "content_hash": digest,
            "reason": reason,
            # what audit verify holds the protocol row and the study's instruments to
            "locked_at": locked_at.isoformat(),
            "instruments": _locked_instruments(cur, study),
        }
        if seal is not None:
            _seal.store_seal(cur, study, seal)
            payload["seed_commitment"] = seal["commitment"]
        audit.append(
            cur,
            actor=caller.actor,
            kind=audit.PROTOCOL_LOCK,
            object_type="protocol",
            object_id=f"{study}@{version}",
            study=study,
            payload=payload,
        )
    return digest


def _check_plan_items(cur: Cursor, study: str, plan: Plan) -> None:
    """The plan's endpoints against the study's items (``study.protocol.item_problems``): each
    names an attached item, and a tested one has a direction, stated or declared by its item (a
    rubric item's HealthBench score is higher-is-better by its definition)."""
    items = {
        item.key: {
            "type": item.type,
            "direction": "higher_is_better" if item.criteria == "case" else item.direction,
        }
        for instrument in _study_instruments(cur, study)
        for item in instrument.items
    }
    problems = item_problems(plan, items)
    if problems:
        raise ValidationError(problems)


def _check_display(protocol: Mapping[str, Any]) -> None:
    """The protocol's ``display`` (how answers are shown to raters), if given, is one of
    ``study.rendering.MODES``."""
    from study.rendering import MODES

    shown = protocol.get("display", "markdown")
    if shown not in MODES:
        raise ValidationError(
            [
                Problem(
                    "protocol",
                    None,
                    "display",
                    f"answers are shown as {', '.join(MODES[:-1])} or {MODES[-1]}, not {shown!r}",
                )
            ]
        )


def _check_phase_shape(protocol: Mapping[str, Any]) -> None:
    """The shape of the protocol's ``calibration`` and ``repeats`` (``study.phases``)."""
    from study.phases import shape_problems

    problems = shape_problems(protocol)
    if problems:
        raise ValidationError(problems)


def _check_phases(cur: Cursor, study: str, protocol: Mapping[str, Any]) -> None:
    """The calibration's cases and expected values against the study's cases, answers and
    items; and, once assignments are stored, that the design's phases stay as they were made."""
    from study.phases import calibration_of, content_problems, repeats_of

    calibration = calibration_of(protocol)
    problems = []
    if calibration is not None:
        answers: dict[str, list[str]] = {}
        for case_id, answer_id in cur.execute(
            "SELECT case_id, answer_id FROM answers WHERE study = ?", [study]
        ).fetchall():
            answers.setdefault(case_id, []).append(answer_id)
        cases = [
            r[0]
            for r in cur.execute("SELECT case_id FROM cases WHERE study = ?", [study]).fetchall()
        ]
        items = {item.key: item for inst in _study_instruments(cur, study) for item in inst.items}
        problems += content_problems(calibration, cases=cases, answers=answers, items=items)
    stored = cur.execute("SELECT count(*) FROM assignments WHERE study = ?", [study]).fetchall()
    if stored[0][0]:
        before = read_plan(cur, study)
        made_with = dict(before.content) if before else {}
        old_cal, new_cal = calibration_of(made_with), calibration
        old_rep, new_rep = repeats_of(made_with), repeats_of(protocol)
        if sorted(old_cal.cases if old_cal else ()) != sorted(new_cal.cases if new_cal else ()):
            problems.append(
                Problem(
                    "protocol",
                    None,
                    "calibration.cases",
                    "the study's assignments were made with "
                    + (
                        f"calibration cases {', '.join(sorted(old_cal.cases))}"
                        if old_cal
                        else "no calibration round"
                    )
                    + "; a protocol version after the design cannot change them",
                )
            )
        if (old_rep.share if old_rep else None) != (new_rep.share if new_rep else None):
            problems.append(
                Problem(
                    "protocol",
                    None,
                    "repeats.share",
                    "the study's assignments were made with "
                    + (f"a repeat share of {old_rep.share}" if old_rep else "no repeats")
                    + "; a protocol version after the design cannot change it",
                )
            )
    if problems:
        raise ValidationError(problems)


def _locked_instruments(cur: Cursor, study: str) -> list[dict[str, str]]:
    """The study's attached instruments as the lock records them: [{key, version,
    content_hash}] in position order (``audit_state`` compares the links and the library's
    definitions with it)."""
    return [
        {"key": key, "version": version, "content_hash": digest}
        for key, version, digest in cur.execute(
            "SELECT s.instrument_key, s.instrument_version, i.content_hash"
            " FROM study_instruments s JOIN instruments i ON i.key = s.instrument_key"
            " AND i.version = s.instrument_version WHERE s.study = ? ORDER BY s.position",
            [study],
        ).fetchall()
    ]


def _study_instruments(cur: Cursor, study: str) -> tuple:
    """The study's attached instruments (``study.instruments.Instrument``), in position order."""
    from study.services.instrument_library import instrument_from_json

    return tuple(
        instrument_from_json(definition, digest)
        for definition, digest in cur.execute(
            "SELECT i.definition, i.content_hash FROM study_instruments s JOIN instruments i"
            " ON i.key = s.instrument_key AND i.version = s.instrument_version"
            " WHERE s.study = ? ORDER BY s.position",
            [study],
        ).fetchall()
    )


_LOCK = "design.lock_protocol"
"""The service the amendment check names in a refusal (the guarded one callers call)."""


def _require_reason(study: str, reason: str | None) -> None:
    """A protocol version after the first records why it was made."""
    if not (reason and reason.strip()):
        raise StateError(
            f"Study '{study}' has a locked protocol; a change is a new version and needs a reason."
        )


def _check_ready_to_lock(cur: Cursor, study: str, protocol: Mapping[str, Any]) -> None:
    """Refuse to lock a design that could never be rated as the protocol says.

    After the lock no answer can be added and nothing unlocks. Needs at least one arm, one case
    and one attached instrument; every case needs an answer and every arm some answers. Arms may
    cover different cases: a case with a single answer is accepted only when the protocol says
    ``"single_answer_cases": true``, and never when an item compares two answers (pairwise).
    """
    counts = cur.execute(
        "SELECT (SELECT count(*) FROM arms WHERE study = $s),"
        " (SELECT count(*) FROM cases WHERE study = $s),"
        " (SELECT count(*) FROM study_instruments WHERE study = $s)",
        {"s": study},
    ).fetchall()[0]
    reasons = [
        f"it has no {what}"
        for what, n in zip(("arm", "case", "attached instrument"), counts, strict=True)
        if not n
    ]
    coverage = _coverage(cur, study)
    idle = coverage.filter(pl.col("answers") == 0).get_column("arm_id").to_list()
    if idle:
        reasons.append(
            "arms without any answer (import their answers or remove the arms): "
            + listed([f"'{a}'" for a in idle[:MAX_LISTED]], len(idle))
        )
    shown = _answers_per_case(cur, study)
    for fewest, why in _too_few_answers(cur, study, protocol):
        short = shown.filter(pl.col("answers") < fewest)
        if short.height:
            cases = listed(
                [f"'{c}' ({n})" for c, n in short.head(MAX_LISTED).iter_rows()], short.height
            )
            reasons.append(
                f"{short.height:,} case(s) have fewer than {fewest} answers {why}: {cases}"
            )
    reasons += _cases_without_rubric(cur, study)
    if reasons:
        raise StateError(
            f"Study '{study}' cannot be locked yet (after the lock answers can no longer be "
            f"added): {'; '.join(reasons)}. Coverage per arm: {_coverage_text(coverage)}."
        )


def _cases_without_rubric(cur: Cursor, study: str) -> list[str]:
    """A reason to refuse the lock when an item is rated per criterion of the case (a rubric
    item, ``criteria = "case"``) and some cases have no criteria: nothing to rate there."""
    if not rubric_items(cur, study):
        return []
    missing = column(
        cur,
        "SELECT case_id FROM cases WHERE study = ? AND criteria IS NULL ORDER BY case_id",
        [study],
    )
    if not missing:
        return []
    return [
        f"{len(missing):,} case(s) have no rubric criteria for the rubric item: "
        + listed([f"'{c}'" for c in missing[:MAX_LISTED]], len(missing))
    ]


def _too_few_answers(cur: Cursor, study: str, protocol: Mapping[str, Any]) -> list[tuple[int, str]]:
    """(fewest answers a case needs, why) for what the protocol and instruments ask."""
    needs = []
    pairwise = cur.execute(
        "SELECT count(*) FROM study_instruments s JOIN items i ON i.instrument_key ="
        " s.instrument_key AND i.instrument_version = s.instrument_version"
        " WHERE s.study = ? AND i.type = 'pairwise_choice'",
        [study],
    ).fetchall()[0][0]
    if pairwise:
        needs.append((2, "(a pairwise item compares two)"))
    elif protocol.get("single_answer_cases") is not True:
        needs.append(
            (2, '(a side-by-side screen with one answer needs "single_answer_cases": true)')
        )
    needs.append((1, "(nothing to rate)"))
    return needs


def _answers_per_case(cur: Cursor, study: str) -> pl.DataFrame:
    """case_id, answers (count, 0 for none), by case_id."""
    return cur.sql(
        "SELECT c.case_id, count(a.answer_id) AS answers FROM cases c LEFT JOIN answers a"
        " ON a.study = c.study AND a.case_id = c.case_id WHERE c.study = $s"
        " GROUP BY c.case_id ORDER BY c.case_id",
        params={"s": study},
    ).pl()


_COVERAGE_SQL = """
SELECT r.arm_id, r.kind, count(a.answer_id) AS answers,
       (SELECT count(*) FROM cases WHERE study = $s) AS cases
FROM arms r LEFT JOIN answers a ON a.study = r.study AND a.arm_id = r.arm_id
WHERE r.study = $s GROUP BY r.arm_id, r.kind ORDER BY r.arm_id
"""


def _coverage(cur: Cursor, study: str) -> pl.DataFrame:
    frame = cur.sql(_COVERAGE_SQL, params={"s": study}).pl()
    return frame.with_columns(
        pl.col("answers").cast(pl.Int64),
        pl.col("cases").cast(pl.Int64),
        (pl.col("cases") - pl.col("answers")).cast(pl.Int64).alias("missing"),
        pl.when(pl.col("cases") > 0)
        .then(pl.col("answers") / pl.col("cases"))
        .otherwise(None)
        .alias("share"),
    )


def _coverage_text(coverage: pl.DataFrame) -> str:
    return "; ".join(
        f"{arm} {answers}/{cases}"
        for arm, answers, cases in coverage.select("arm_id", "answers", "cases").iter_rows()
    )


def arm_coverage(store: Store, study: str) -> pl.DataFrame:
    """Each arm's share of the study's cases (``design.arm_coverage``)."""
    cur = store.cursor()
    try:
        return _coverage(cur, study)
    finally:
        cur.close()


def answered_cases(store: Store, study: str) -> pl.DataFrame:
    """Which arm answered which case (``design.answered_cases``)."""
    return store.read(
        "SELECT case_id, arm_id FROM answers WHERE study = $s ORDER BY case_id, arm_id",
        {"s": study},
    )


def get_protocol(store: Store, study: str, *, version: int | None = None) -> dict[str, Any]:
    """The protocol ``version`` (default the newest) and its reading
    (``design.get_protocol``)."""
    cur = store.cursor()
    try:
        plan = read_plan(cur, study, version=version)
        directions = dict(
            cur.execute(
                "SELECT i.item_key, i.direction FROM study_instruments s JOIN items i"
                " ON i.instrument_key = s.instrument_key"
                " AND i.instrument_version = s.instrument_version WHERE s.study = ?",
                [study],
            ).fetchall()
        )
    finally:
        cur.close()
    if plan is None:
        raise NotFoundError(f"Study '{study}' has no locked protocol.")
    return {
        "version": plan.version,
        "content": json.loads(json.dumps(dict(plan.content))),
        "content_hash": plan.content_hash,
        "reason": plan.reason,
        "locked_at": plan.locked_at,
        "locked_by": plan.locked_by,
        "plan": plan.resolve(directions),
        "primary_endpoint": dict((primary_spec(plan.content) or (None, {}))[1]),
        "test_arm": plan.test_arm,
        "reference_arm": plan.reference_arm,
    }
