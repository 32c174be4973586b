"""The assignment of raters to cases: a design made with ``study.assignment``'s seeded
designs from the study's cases, answers and raters, dry-run or stored with its audit event.

A rater never gets a case whose answers include one they wrote; the seed is the one sealed at
the lock (``study.services._seal``). The design's services (``study.services.design``) check
the caller; these functions do the work.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from study.access import Caller
from study.errors import (
    NotFoundError,
    PermissionDenied,
    Problem,
    StateError,
    ValidationError,
    listed,
)
from study.protocol import read_plan
from study.services import _seal
from study.services._common import (
    MAX_LISTED,
    audit_design,
    author_owner_sql,
    constraint_reason,
    require_study,
    sealed_seed,
)
from study.store import ConstraintViolation, Cursor, Store, utc_now


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
    """Store a design from ``study.assignment.design_assignments``
    (``design.persist_assignments``); returns the assignments added."""
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
        _seal.store_seal(cur, study, _seal.new_seal(store, int(seed)))
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


@dataclass(frozen=True, slots=True)
class DesignSettings:
    """How a design is made (``design.make_assignments`` and ``design.preview_assignments`` say
    what each means): ``raters`` (None: every rater of the study), ``raters_per_case``, ``seed``
    (None: the one sealed at the lock), ``mode``, ``match_specialty``."""

    raters: list[str] | None
    raters_per_case: int
    seed: int | None
    mode: str
    match_specialty: bool


def make_assignments(store: Store, caller: Caller, study: str, settings: DesignSettings) -> int:
    """Design the study's assignments and store them (``design.make_assignments``); returns
    the assignments stored."""
    seed = _seal.seed_for(store, study, settings.seed)
    raters = _raters(store, study) if settings.raters is None else settings.raters
    a, p = _design(store, study, raters, settings, seed)
    parameters = {
        "mode": settings.mode,
        "raters_per_case": settings.raters_per_case,
        "match_specialty": settings.match_specialty,
        "raters": sorted(raters),
    }
    gold, share = _phases(store, study)
    if gold or share:
        # what design_assignments was called with besides the above, for a replay
        parameters |= {"calibration_cases": sorted(gold), "repeat_share": share}
    return persist_assignments(store, caller, study, a, p, seed=seed, design=parameters)


def preview_assignments(
    store: Store,
    study: str,
    settings: DesignSettings,
    *,
    calibration_cases: list[str] | None,
    repeat_share: float | None,
) -> dict[str, pl.DataFrame]:
    """The design ``make_assignments`` would store, summarised (``design.preview_assignments``)."""
    from study.assignment import design_summary

    seed = _seal.seed_for(store, study, settings.seed)
    phases = None
    if calibration_cases is not None or repeat_share is not None:
        gold, share = _phases(store, study)
        phases = (
            gold if calibration_cases is None else list(calibration_cases),
            share if repeat_share is None else float(repeat_share),
        )
    a, p = _design(store, study, settings.raters, settings, seed, phases)
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
    settings: DesignSettings,
    seed: int,
    phases: tuple[list[str], float] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The design's tables for ``raters`` (None: the study's) with ``settings`` and ``seed``
    (the settings' own resolved); ``phases``: (calibration cases, repeat share), default the
    locked protocol's."""
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
        raters_per_case=settings.raters_per_case,
        answers=answers,
        seed=seed,
        rater_specialty=dict(specialties.iter_rows()),
        case_specialty=dict(case_spec.iter_rows()),
        mode=settings.mode,
        match_specialty=settings.match_specialty,
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
