"""The design of a study: its protocol, the lock that freezes it, and the assignment of raters.

The protocol (primary endpoint, margin, analysis plan, assignment seed) is locked before rating
starts and hashed; nothing in a locked version changes, and a change is a new version with a
reason, the coordinator's alone. Assignments come from ``study.assignment``'s seeded designs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import polars as pl

from study import audit, keyfile
from study.access import Caller, guarded, require
from study.canonical import canonical_json, content_hash
from study.errors import (
    NotFoundError,
    PermissionDenied,
    Problem,
    StateError,
    ValidationError,
    listed,
)
from study.protocol import Plan, item_problems, newest_version, primary_spec, read_plan
from study.protocol import parse as parse_plan
from study.services._common import (
    MAX_LISTED,
    audit_design,
    author_owner_sql,
    column,
    constraint_reason,
    require_study,
    rubric_items,
    sealed_seed,
)
from study.store import ConstraintViolation, Cursor, Store, first, utc_now


@guarded
def lock_protocol(
    store: Store,
    caller: Caller,
    study: str,
    protocol: Mapping[str, Any],
    *,
    reason: str | None = None,
    seed: int | None = None,
) -> str:
    """Freeze ``protocol`` (a JSON-able dict) as the study's next protocol version.

    Returns the protocol's hash: SHA-256 of its canonical JSON.

    ``seed``: the assignment seed (0 <= seed < 2**63), sealed here until unblinding: the
    protocol stores its commitment (``assignment_seed_commitment``: SHA-256 of seed and a salt)
    instead, and ``make_assignments`` / ``persist_assignments`` use it. A protocol that carries a
    ``seed`` itself is refused (it would be public). Only the first version may seal a seed.

    The protocol may name a calibration round and repeats (``study.phases``: their shape, and
    what is checked here against the study's cases, answers and items; each problem is named).
    Once assignments are stored, a new version may change the expected values, the pass
    threshold and the washout, but not the calibration cases nor the share repeated (the
    design was made with them).

    From ``draft`` this is version 1 and the study becomes ``locked``; it needs at least one arm,
    one case, an attached instrument and an answer from every arm to every case (after the lock
    no answer can be added; the refusal lists the missing (case, arm) answers, up to 20). Later
    (``locked`` or ``rating``) a new version needs a ``reason`` and leaves the status alone,
    and is the study's coordinator's alone (permission ``amend_protocol``).
    """
    _refuse_public_seed(protocol)
    _check_display(protocol)
    _check_phase_shape(protocol)
    plan = parse_plan(protocol)  # a protocol no service could read is refused here, field named
    seal = _new_seal(store, seed) if seed is not None else None
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
            _store_seal(cur, study, seal)
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


MAX_SEED = 2**63 - 1
"""Largest assignment seed (the schema's BIGINT)."""


def _refuse_public_seed(protocol: Mapping[str, Any]) -> None:
    """Refuse a protocol that carries a seed in its content: it would be shown to everyone who
    reads the protocol, and with it the allocation could be replayed before unblinding."""

    def holds_seed(value: Any) -> bool:
        if isinstance(value, Mapping):
            return any(k == "seed" or holds_seed(v) for k, v in value.items())
        if isinstance(value, list | tuple):
            return any(holds_seed(v) for v in value)
        return False

    if holds_seed(protocol):
        raise ValidationError(
            [
                Problem(
                    "protocol",
                    None,
                    "seed",
                    "the assignment seed must not be in the protocol's content (everyone who "
                    "reads the protocol would see it); pass it as the lock's seed, which seals "
                    "it until unblinding",
                )
            ]
        )


def _new_seal(store: Store, seed: int) -> dict[str, str]:
    """Salt, sealed seed and commitment for ``seed`` under the store's audit key."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ValidationError(
            [Problem("protocol", None, "seed", f"must be a whole number in 0..{MAX_SEED}")]
        )
    key = store.audit_key
    if key is None:
        raise audit.AuditKeyError(
            "The assignment seed cannot be sealed: this installation has no audit key "
            "(setting CLINVAL_AUDIT_KEY_FILE)."
        )
    salt = keyfile.new_salt()
    return {
        "salt": salt,
        "sealed": keyfile.seal_seed(key, seed, salt),
        "commitment": keyfile.commitment(seed, salt),
    }


def _store_seal(cur: Cursor, study: str, seal: Mapping[str, str]) -> None:
    if first(cur.execute("SELECT 1 FROM sealed_seeds WHERE study = ?", [study]).fetchall()):
        raise StateError(f"Study '{study}' sealed its assignment seed already; it cannot change.")
    cur.execute(
        "INSERT INTO sealed_seeds (study, salt, sealed, commitment) VALUES (?, ?, ?, ?)",
        [study, seal["salt"], seal["sealed"], seal["commitment"]],
    )


@guarded
def assignment_seed(store: Store, caller: Caller, study: str) -> int:
    """The study's assignment seed, once the study is unblinded (``StateError`` before: the
    seed is a blinding secret until then; the protocol shows only its commitment)."""
    cur = store.cursor()
    try:
        status = require_study(cur, study)["status"]
        if status != "unblinded":
            raise StateError(
                f"Study '{study}' is {status}: its assignment seed is sealed until unblinding."
            )
        seed = sealed_seed(store, cur, study)
    finally:
        cur.close()
    if seed is None:
        raise NotFoundError(f"Study '{study}' sealed no assignment seed.")
    return seed


_LOCK = "design.lock_protocol"


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


@guarded
def arm_coverage(store: Store, caller: Caller, study: str) -> pl.DataFrame:
    """The design summary: which share of the study's cases each arm answers.

    One row per arm by arm_id: arm_id, kind, answers (cases the arm answers), cases (cases in
    the study), missing (cases - answers), share (answers / cases, a fraction in [0, 1]; null
    when the study has no case). Arms may answer different subsets of the cases.
    """
    cur = store.cursor()
    try:
        return _coverage(cur, study)
    finally:
        cur.close()


@guarded
def answered_cases(store: Store, caller: Caller, study: str) -> pl.DataFrame:
    """Which arm answered which case, without the answers' text: one row per answer, columns
    case_id and arm_id, by case_id then arm_id. Enough to count the cases with a single answer
    or those two arms share (the cases a paired comparison of them uses)."""
    return store.read(
        "SELECT case_id, arm_id FROM answers WHERE study = $s ORDER BY case_id, arm_id",
        {"s": study},
    )


@guarded
def get_protocol(
    store: Store, caller: Caller, study: str, *, version: int | None = None
) -> dict[str, Any]:
    """The protocol row (version, content dict, content_hash, reason, locked_at, locked_by) and
    its reading by ``study.protocol``.

    ``version``: a given version (default: the newest). ``content`` is the protocol exactly as
    locked (a copy). ``plan``: the ``study.protocol.Plan``, its endpoints' directions filled from
    the items' declarations. For display: ``primary_endpoint``, the primary endpoint as the
    protocol states it ({} when there is none), and ``test_arm`` / ``reference_arm`` (None when
    it names none).
    """
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


@guarded
def persist_assignments(
    store: Store,
    caller: Caller,
    study: str,
    assignments: pl.DataFrame,
    presentations: pl.DataFrame,
    *,
    seed: int | None = None,
    design: Mapping[str, Any] | None = None,
) -> int:
    """Store a design from ``study.assignment.design_assignments``; return assignments added.

    ``design``: the parameters it was made with, recorded in the audit event for a replay.

    ``seed``: the seed the design was made with; it must be the seed sealed at the lock, if one
    was (None: that one). A seed not sealed yet is sealed now. Either way only its commitment is
    recorded in the audit trail, and the assignment rows carry 0: the seed stays sealed until
    unblinding.

    ``assignments``: assignment_id, case_id, rater_id, queue_position, seed, algorithm and phase
    (optional; "live" when absent).
    ``presentations``: assignment_id, answer_id, position, label. Allowed in ``draft`` or
    ``locked``. Refuses raters who are not users, answers not in the study, and any rater
    shown an answer they wrote.
    """
    with store.transaction() as cur:
        require_study(cur, study, ("draft", "locked"))
        seed, seal = _design_seed(store, cur, study, seed)
        _check_design_frames(assignments, presentations, seed)
        first_id = store.allocate_ids(cur, "assignments")
        numbered = _numbered_assignments(assignments, first_id, 0)
        _refuse_unknown_raters(cur, numbered)
        shown = _numbered_presentations(
            presentations, numbered, store.allocate_ids(cur, "presentations")
        )
        try:
            store.insert_frame(cur, "assignments", numbered, constants={"study": study})
            store.insert_frame(cur, "presentations", shown, constants={"study": study})
        except ConstraintViolation as exc:
            raise ValidationError(
                [Problem("assignments", None, None, constraint_reason(exc))]
            ) from None
        _refuse_own_answers(cur, study, first_id)
        audit_design(cur, caller, study, seal, numbered, shown, design=design)
    return numbered.height


def _design_seed(store: Store, cur: Cursor, study: str, seed: int | None) -> tuple[int, str]:
    """(the design's seed, its commitment): the seed sealed at the lock, or ``seed`` sealed now."""
    sealed = sealed_seed(store, cur, study)
    if sealed is not None:
        if seed is not None and int(seed) != sealed:
            raise StateError(
                f"Study '{study}' sealed another assignment seed at its lock; design with that one."
            )
        seed = sealed
    elif seed is None:
        raise StateError(f"Study '{study}' sealed no assignment seed; give the design's seed.")
    else:
        _store_seal(cur, study, _new_seal(store, int(seed)))
    commitment = cur.execute(
        "SELECT commitment FROM sealed_seeds WHERE study = ?", [study]
    ).fetchall()[0][0]
    return int(seed), commitment


def _check_design_frames(assignments: pl.DataFrame, presentations: pl.DataFrame, seed: int) -> None:
    needed = {
        "assignments": ({"assignment_id", "case_id", "rater_id", "queue_position"}, assignments),
        "presentations": ({"assignment_id", "answer_id", "position", "label"}, presentations),
    }
    problems = [
        Problem(name, None, column, "column missing")
        for name, (columns, frame) in needed.items()
        for column in sorted(columns - set(frame.columns))
    ]
    if problems:
        raise ValidationError(problems)
    if "seed" in assignments.columns:
        seeds = set(assignments.get_column("seed").unique().to_list())
        if seeds - {seed}:
            raise ValidationError(
                [Problem("assignments", None, "seed", f"rows carry seed {seeds}, not {seed}")]
            )


def _numbered_assignments(assignments: pl.DataFrame, first_id: int, seed: int) -> pl.DataFrame:
    """The design's assignments as rows of ``assignments``, ids from ``first_id`` on."""
    algorithm = (
        pl.col("algorithm").cast(pl.String)
        if "algorithm" in assignments.columns
        else pl.lit("unspecified")
    )
    return assignments.select(
        pl.col("assignment_id").cast(pl.String).alias("design_key"),
        pl.col("rater_id").cast(pl.String).alias("rater"),
        pl.col("case_id").cast(pl.String),
        pl.col("queue_position").cast(pl.Int32).alias("shown_order"),
        (pl.int_range(pl.len(), dtype=pl.Int64) + first_id).alias("id"),
        pl.lit(int(seed), dtype=pl.Int64).alias("seed"),
        algorithm.alias("algorithm"),
        pl.lit(utc_now()).alias("created_at"),
        (
            pl.col("phase").cast(pl.String) if "phase" in assignments.columns else pl.lit("live")
        ).alias("phase"),
    )


def _refuse_unknown_raters(cur: Cursor, numbered: pl.DataFrame) -> None:
    users = set(cur.sql("SELECT id FROM users").pl().get_column("id").to_list())
    unknown = sorted(set(numbered.get_column("rater").to_list()) - users)
    if unknown:
        raise NotFoundError(
            "These raters are not users yet (add them first): "
            + listed(unknown[:MAX_LISTED], len(unknown))
        )


def _numbered_presentations(
    presentations: pl.DataFrame, numbered: pl.DataFrame, first_id: int
) -> pl.DataFrame:
    """The design's presentations as rows of ``presentations``, pointing at the numbered
    assignments, ids from ``first_id`` on; refuses one of an assignment not in the design."""
    shown = presentations.select(
        pl.col("assignment_id").cast(pl.String).alias("design_key"),
        pl.col("answer_id").cast(pl.String),
        pl.col("position").cast(pl.Int32),
        pl.col("label").cast(pl.String),
    ).join(
        numbered.select("design_key", pl.col("id").alias("assignment")),
        on="design_key",
        how="left",
    )
    orphans = shown.filter(pl.col("assignment").is_null()).get_column("design_key").unique()
    if orphans.len():
        problems = [
            Problem("presentations", None, "assignment_id", f"unknown assignment '{k}'")
            for k in orphans.sort().head(MAX_LISTED)
        ]
        if orphans.len() > MAX_LISTED:
            problems.append(
                Problem.summary("presentations", "assignment_id", orphans.len() - MAX_LISTED)
            )
        raise ValidationError(problems)
    return shown.drop("design_key").with_columns(
        (pl.int_range(pl.len(), dtype=pl.Int64) + first_id).alias("id")
    )


def _refuse_own_answers(cur: Cursor, study: str, first_id: int) -> None:
    """Refuse the new assignments (ids from ``first_id``) if one shows a rater their answer."""
    own = cur.execute(
        "SELECT s.rater, s.case_id, a.answer_id FROM assignments s"
        " JOIN presentations p ON p.assignment = s.id"
        " JOIN answers a ON a.study = p.study AND a.answer_id = p.answer_id"
        " JOIN users u ON u.id = s.rater"
        f" WHERE s.study = ? AND s.id >= ? AND {author_owner_sql()}",
        [study, first_id],
    ).fetchall()
    if own:
        raise PermissionDenied(
            "A rater would rate their own answer: "
            + "; ".join(f"{r} on case {c} (answer {x})" for r, c, x in own[:10])
        )


@guarded
def make_assignments(
    store: Store,
    caller: Caller,
    study: str,
    *,
    raters: list[str] | None = None,
    raters_per_case: int,
    seed: int | None = None,
    mode: str = "side_by_side",
    match_specialty: bool = False,
) -> int:
    """Design assignments with ``study.assignment.design_assignments`` and persist them.

    ``raters``: user ids (default: every person holding the rater role in the study). ``seed``:
    None for the seed sealed at the lock (opened here, never shown), else a seed that is sealed
    now (or must equal the sealed one). Authors are matched to raters by user id, e-mail or
    subject, so a rater never gets a case whose answers include one they wrote. ``mode`` and
    ``match_specialty`` as the design takes them. The locked protocol's calibration cases and
    repeat share (``study.phases``), if any, go to the design too (none before the lock).
    Returns the number of assignments stored (calibration and repeats included).
    """
    seed = _seed_for(store, study, seed)
    raters = _raters(store, study) if raters is None else raters
    a, p = _design(store, study, raters, raters_per_case, seed, mode, match_specialty)
    parameters = {
        "mode": mode,
        "raters_per_case": raters_per_case,
        "match_specialty": match_specialty,
        "raters": sorted(raters),
    }
    gold, share = _phases(store, study)
    if gold or share:
        # what design_assignments was called with besides the above, for a replay
        parameters |= {"calibration_cases": sorted(gold), "repeat_share": share}
    return persist_assignments(store, caller, study, a, p, seed=seed, design=parameters)


def _seed_for(store: Store, study: str, seed: int | None) -> int:
    """``seed``, or the one sealed at the lock when None."""
    if seed is not None:
        return seed
    cur = store.cursor()
    try:
        sealed = sealed_seed(store, cur, study)
    finally:
        cur.close()
    if sealed is None:
        raise StateError(f"Study '{study}' sealed no assignment seed; give the design's seed.")
    return sealed


@guarded
def preview_assignments(
    store: Store,
    caller: Caller,
    study: str,
    *,
    raters: list[str] | None = None,
    raters_per_case: int,
    seed: int | None = None,
    mode: str = "side_by_side",
    match_specialty: bool = False,
    calibration_cases: list[str] | None = None,
    repeat_share: float | None = None,
) -> dict[str, pl.DataFrame]:
    """The design ``make_assignments`` would store, summarised and not stored (a dry run).

    Returns ``study.assignment.design_summary``'s tables (loads with its calibration and repeats
    counts, raters_per_case, arm_positions, overlap, coverage). It names arms, so it is for the
    study's designers only.

    ``raters``: user ids, or names standing for raters not invited yet (a plan: they have no
    specialty and wrote no answer). ``calibration_cases`` and ``repeat_share``: the phases a
    draft's protocol will name, for a dry run before the lock (None: the locked protocol's,
    none before the lock); the same seed then gives the design ``make_assignments`` stores
    after the lock.
    """
    from study.assignment import design_summary

    seed = _seed_for(store, study, seed)
    phases = None
    if calibration_cases is not None or repeat_share is not None:
        gold, share = _phases(store, study)
        phases = (
            gold if calibration_cases is None else list(calibration_cases),
            share if repeat_share is None else float(repeat_share),
        )
    a, p = _design(store, study, raters, raters_per_case, seed, mode, match_specialty, phases)
    return design_summary(a, p)


def _raters(store: Store, study: str) -> list[str]:
    """Every person holding the rater role in ``study``, by id."""
    frame = store.read(
        "SELECT DISTINCT user_id FROM roles WHERE study = $s AND role = 'rater' ORDER BY user_id",
        {"s": study},
    )
    if frame.height == 0:
        raise StateError(f"Study '{study}' has no raters yet: grant people the rater role.")
    return frame.get_column("user_id").to_list()


def _design(
    store: Store,
    study: str,
    raters: list[str] | None,
    raters_per_case: int,
    seed: int,
    mode: str,
    match_specialty: bool,
    phases: tuple[list[str], float] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The design's tables; ``phases``: (calibration cases, repeat share), default the locked
    protocol's."""
    from study.assignment import design_assignments

    bare = store.read(
        "SELECT c.case_id FROM cases c WHERE c.study = $s AND NOT EXISTS"
        " (SELECT 1 FROM answers a WHERE a.study = c.study AND a.case_id = c.case_id)"
        " ORDER BY c.case_id",
        {"s": study},
    ).get_column("case_id")
    if bare.len():
        shown = listed([f"'{c}'" for c in bare.head(MAX_LISTED).to_list()], bare.len())
        raise StateError(
            f"Cannot assign raters: {bare.len():,} case(s) have no answers to rate: {shown}. "
            "Import their answers (while the study is a draft) before making assignments."
        )
    raters = _raters(store, study) if raters is None else raters
    case_spec = store.read(
        "SELECT case_id, specialty FROM cases WHERE study = $s ORDER BY case_id", {"s": study}
    )
    answers = store.read(
        "SELECT a.answer_id, a.case_id, a.arm_id,"
        " coalesce(u.id, a.author_id) AS author_id FROM answers a"
        " LEFT JOIN users u ON " + author_owner_sql() + " WHERE a.study = $s"
        " ORDER BY a.case_id, a.arm_id",
        {"s": study},
    ).unique(subset="answer_id", keep="first", maintain_order=True)
    specialties = store.read(
        "SELECT id, specialty FROM users WHERE list_contains($r, id)", {"r": list(raters)}
    )
    gold, share = _phases(store, study) if phases is None else phases
    return design_assignments(
        case_spec.get_column("case_id").to_list(),
        raters,
        raters_per_case=raters_per_case,
        answers=answers,
        seed=seed,
        rater_specialty=dict(specialties.iter_rows()),
        case_specialty=dict(case_spec.iter_rows()),
        mode=mode,
        match_specialty=match_specialty,
        calibration_cases=gold,
        repeat_share=share,
    )


def _phases(store: Store, study: str) -> tuple[list[str], float]:
    """(calibration case ids, repeat share) of the study's newest locked protocol; ([], 0.0)
    before the lock or when it names neither."""
    cur = store.cursor()
    try:
        plan = read_plan(cur, study)
    finally:
        cur.close()
    calibration = plan.calibration if plan else None
    repeats = plan.repeats if plan else None
    return (
        list(calibration.cases) if calibration else [],
        repeats.share if repeats else 0.0,
    )


@guarded
def leak_report(store: Store, caller: Caller, study: str) -> pl.DataFrame:
    """The pre-launch blinding leak report of the study's answers, per arm
    (``study.blinding.leak_report``: length, markdown, self-identifying phrases, signatures, and
    how well length and format alone tell the arms apart, with a warning above 0.7)."""
    from study.services.analyses import leak_report as report

    return _by_answers(
        store,
        study,
        "leak_report",
        lambda: report(
            store.read("SELECT arm_id, text FROM answers WHERE study = $s", {"s": study})
        ),
    )


@guarded
def leak_pairs(store: Store, caller: Caller, study: str) -> pl.DataFrame:
    """How well length and format alone tell each pair of the study's arms apart on the cases
    both answered (``study.blinding.pairwise_format_auc``): columns arm_a, arm_b, shared_cases,
    format_auc, warning (above 0.7); no row for two arms that share no case."""
    from study.services.analyses import pairwise_format_auc

    return _by_answers(
        store,
        study,
        "leak_pairs",
        lambda: pairwise_format_auc(
            store.read("SELECT arm_id, case_id, text FROM answers WHERE study = $s", {"s": study})
        ),
    )


def _by_answers(
    store: Store, study: str, name: str, compute: Callable[[], pl.DataFrame]
) -> pl.DataFrame:
    """``compute()``, a report made from the study's answers alone (deterministic: its folds
    have a fixed seed), kept in ``store.facts`` under a fingerprint of those answers. The Design
    screen redraws step 4 on every change of a setting, and the cross-validated classifiers
    take a second or two on a few hundred answers (K-QA's 251), while the answers change only
    when a draft's content does. The fingerprint (the count and a sum of row hashes over every
    column the reports read) changes with any answer added, removed or changed."""
    cur = store.cursor()
    try:
        count, digest = cur.execute(
            "SELECT count(*), coalesce(sum(hash(answer_id, arm_id, case_id, text)), 0)"
            " FROM answers WHERE study = ?",
            [study],
        ).fetchall()[0]
    finally:
        cur.close()
    key = (name, study, int(count), int(digest))
    found = store.facts.get(key)
    if found is None:
        found = compute()
        store.remember(key, found)
    return found


@guarded
def seed_is_sealed(store: Store, caller: Caller, study: str) -> bool:
    """Whether the study sealed an assignment seed (at its lock, or with a stored design); the
    seed itself stays sealed until unblinding (``assignment_seed``)."""
    cur = store.cursor()
    try:
        return bool(cur.execute("SELECT 1 FROM sealed_seeds WHERE study = ?", [study]).fetchall())
    finally:
        cur.close()


_SHOWN_PER_MODE = {"side_by_side": None, "pairwise": 2, "separate": 1}
"""How many of a case's answers one screen shows in each assignment mode (None: all)."""


@guarded
def preview_view(
    store: Store,
    caller: Caller,
    study: str,
    *,
    case_id: str | None = None,
    mode: str = "side_by_side",
    display: str = "markdown",
) -> dict[str, Any]:
    """One case as the rating screen would show it to a rater, for the designer's preview;
    nothing is stored and no assignment is needed.

    The dict has the keys of ``rating.assignment_view`` that draw the screen: ``case_id``,
    ``question``, ``context``, ``conversation``, ``criteria``, ``rubric_items``,
    ``presentations`` ([{position, label, text}]), ``display``, ``values`` (empty), ``done``
    (False), plus ``arms`` (the arm behind each label, for the designer only: never shown to a
    rater). The answers come in answer-id order (as a calibration screen shows them); a real
    screen's order is the design's. ``mode`` ("side_by_side", "pairwise", "separate") says
    how many of them one screen shows: all, the first two, the first one. ``case_id``: default
    the first case (by id) that has answers; ``NotFoundError`` when there is none.
    """
    if mode not in _SHOWN_PER_MODE:
        raise ValidationError(
            [Problem("design", None, "mode", f"mode is one of {', '.join(_SHOWN_PER_MODE)}")]
        )
    cur = store.cursor()
    try:
        require_study(cur, study)
        if case_id is None:
            found = first(
                cur.execute("SELECT min(case_id) FROM answers WHERE study = ?", [study]).fetchall()
            )
            case_id = found[0] if found else None
        row = first(
            cur.execute(
                "SELECT question, context, conversation, criteria FROM cases"
                " WHERE study = ? AND case_id = ?",
                [study, case_id],
            ).fetchall()
        )
        if case_id is None or row is None:
            raise NotFoundError(
                f"Study '{study}' has no case with answers to preview"
                + (f" (asked for '{case_id}')." if case_id else "; import cases and answers.")
            )
        answers = cur.execute(
            "SELECT arm_id, text FROM answers WHERE study = ? AND case_id = ? ORDER BY answer_id",
            [study, case_id],
        ).fetchall()
        rubric = rubric_items(cur, study)
    finally:
        cur.close()
    from study.case_json import stored_criteria
    from study.shuffle import neutral_label

    question, context, conversation, criteria = row
    shown = answers[: _SHOWN_PER_MODE[mode]] if _SHOWN_PER_MODE[mode] else answers
    return {
        "case_id": case_id,
        "question": question,
        "context": context,
        "conversation": None if conversation is None else json.loads(conversation),
        "criteria": [
            {"key": c["key"], "criterion": c["criterion"]} for c in stored_criteria(criteria)
        ],
        "rubric_items": rubric if criteria is not None else [],
        "presentations": [
            {"position": n, "label": neutral_label(n), "text": text}
            for n, (_, text) in enumerate(shown, start=1)
        ],
        "arms": {neutral_label(n): arm for n, (arm, _) in enumerate(shown, start=1)},
        "display": display,
        "values": {},
        "done": False,
    }


# --- a draft's settings, between sittings -----------------------------------------------------

MAX_DRAFT_BYTES = 64 * 1024
"""The largest draft settings kept (bytes of canonical JSON): a screen's form values, never data."""


@guarded
def save_design_draft(
    store: Store, caller: Caller, study: str, settings: Mapping[str, Any]
) -> list[str]:
    """Keep a draft study's design settings (the Design screen's assignment settings, analysis
    plan and power assumptions: a JSON object of setting name -> value) so that the coordinator
    finds them again in another sitting or on another device. Nothing here is the protocol: the
    lock freezes the protocol made from them.

    Returns the names of the settings that changed, sorted (empty: nothing changed and nothing
    was written). A change replaces the kept object and appends a ``design.draft`` event with
    the changed settings' new values (a removed setting as null). Only while the study is a
    draft; never a ``seed`` (it stays sealed until unblinding); at most ``MAX_DRAFT_BYTES``.
    """
    text = _draft_text(settings)
    with store.transaction() as cur:
        require_study(cur, study, ("draft",))
        row = first(
            cur.execute("SELECT settings FROM design_drafts WHERE study = ?", [study]).fetchall()
        )
        before: dict[str, Any] = json.loads(row[0]) if row else {}
        after: dict[str, Any] = json.loads(text)
        changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        if not changed:
            return []
        now = utc_now()
        if row:
            cur.execute(
                "UPDATE design_drafts SET settings = ?, saved_at = ?, saved_by = ? WHERE study = ?",
                [text, now, caller.actor, study],
            )
        else:
            cur.execute(
                "INSERT INTO design_drafts (study, settings, saved_at, saved_by)"
                " VALUES (?, ?, ?, ?)",
                [study, text, now, caller.actor],
            )
        audit.append(
            cur,
            actor=caller.actor,
            kind=audit.DESIGN_DRAFT,
            object_type="study",
            object_id=study,
            study=study,
            payload={"changed": {k: after.get(k) for k in changed}},
        )
    return changed


@guarded
def design_draft(store: Store, caller: Caller, study: str) -> dict[str, Any] | None:
    """The design settings kept for ``study`` by ``save_design_draft``, or None when none were.

    Keys: ``settings`` (setting name -> value, as saved), ``saved_at`` (UTC, naive datetime)
    and ``saved_by`` (the actor). Read whatever the study's status: the lock leaves the last
    draft as it was, and from then on the locked protocol is what counts.
    """
    cur = store.cursor()
    try:
        require_study(cur, study)
        row = first(
            cur.execute(
                "SELECT settings, saved_at, saved_by FROM design_drafts WHERE study = ?", [study]
            ).fetchall()
        )
    finally:
        cur.close()
    if row is None:
        return None
    return {"settings": json.loads(row[0]), "saved_at": row[1], "saved_by": row[2]}


def _draft_text(settings: Any) -> str:
    """``settings`` as canonical JSON text, or ``ValidationError`` naming what is wrong: not an
    object, a key that is not a non-empty string, a value JSON cannot hold, a seed, too big."""

    def problem(column: str | None, reason: str) -> ValidationError:
        return ValidationError([Problem("design settings", None, column, reason)])

    if not isinstance(settings, Mapping):
        raise problem(
            None, f"the settings must be an object of name -> value, not {type(settings).__name__}"
        )
    for key in settings:
        if not isinstance(key, str) or not key.strip():
            raise problem(None, f"{key!r} is not a setting's name (a non-empty string)")
    if "seed" in settings:
        raise problem(
            "seed",
            "the assignment seed is never kept with a draft's settings: it is drawn for the "
            "dry run and sealed at the lock",
        )
    try:
        text = canonical_json(dict(settings))
    except (TypeError, ValueError) as error:
        raise problem(None, f"a value cannot be kept as JSON: {error}") from None
    size = len(text.encode("utf-8"))
    if size > MAX_DRAFT_BYTES:
        raise problem(
            None, f"the settings take {size:,} bytes, more than the {MAX_DRAFT_BYTES:,} kept"
        )
    return text
