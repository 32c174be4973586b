"""The design of a study: its protocol, the lock that freezes it, and the assignment of raters.

The door to the design's services: each is declared here with its permission (``@guarded``,
named "design.<function>" in ``study.access.PERMISSIONS`` and in the audit trail's refusals)
and its contract, and done by the module of its job:

- ``_lock``: what a study must hold to be locked, the protocol versions, their reading back
  (``lock_protocol``, ``get_protocol``, ``arm_coverage``, ``answered_cases``);
- ``_seal``: the assignment seed, drawn, sealed at the lock, shown after unblinding
  (``draw_seed``, ``seed_is_sealed``, ``assignment_seed``);
- ``_assignments``: the raters' assignments, dry-run or stored (``preview_assignments``,
  ``make_assignments``, ``persist_assignments``);
- ``_leaks``: the pre-launch blinding leak report (``leak_report``, ``leak_pairs``);
- ``_rater_view``: a case as raters will see it (``preview_view``; the rating screen's view too);
- ``_drafts``: a draft's design settings between sittings (``save_design_draft``,
  ``design_draft``).

The protocol (primary endpoint, margin, analysis plan, assignment seed) is locked before rating
starts and hashed; nothing in a locked version changes, and a change is a new version with a
reason, the coordinator's alone. Assignments come from ``study.assignment``'s seeded designs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from study.access import Caller, guarded
from study.services import _assignments, _drafts, _leaks, _lock, _rater_view, _seal
from study.services._assignments import DesignSettings
from study.services._drafts import MAX_DRAFT_BYTES
from study.services._seal import MAX_SEED
from study.store import Store

__all__ = [
    "MAX_DRAFT_BYTES",
    "MAX_SEED",
    "answered_cases",
    "arm_coverage",
    "assignment_seed",
    "design_draft",
    "draw_seed",
    "get_protocol",
    "leak_pairs",
    "leak_report",
    "lock_protocol",
    "make_assignments",
    "persist_assignments",
    "preview_assignments",
    "preview_view",
    "save_design_draft",
    "seed_is_sealed",
]


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
    return _lock.lock_protocol(store, caller, study, protocol, reason=reason, seed=seed)


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
    return _lock.get_protocol(store, study, version=version)


@guarded
def arm_coverage(store: Store, caller: Caller, study: str) -> pl.DataFrame:
    """The design summary: which share of the study's cases each arm answers.

    One row per arm by arm_id: arm_id, kind, answers (cases the arm answers), cases (cases in
    the study), missing (cases - answers), share (answers / cases, a fraction in [0, 1]; null
    when the study has no case). Arms may answer different subsets of the cases.
    """
    return _lock.arm_coverage(store, study)


@guarded
def answered_cases(store: Store, caller: Caller, study: str) -> pl.DataFrame:
    """Which arm answered which case, without the answers' text: one row per answer, columns
    case_id and arm_id, by case_id then arm_id. Enough to count the cases with a single answer
    or those two arms share (the cases a paired comparison of them uses)."""
    return _lock.answered_cases(store, study)


@guarded
def draw_seed(store: Store, caller: Caller, study: str) -> int:
    """A fresh assignment seed for the study's design (0 <= seed <= ``MAX_SEED``), drawn from the
    operating system's random source: a draft's dry run shows the design it makes, and the lock
    seals it (``lock_protocol``'s ``seed``); nobody chose it and nobody is shown it."""
    return _seal.draw_seed()


@guarded
def seed_is_sealed(store: Store, caller: Caller, study: str) -> bool:
    """Whether the study sealed an assignment seed (at its lock, or with a stored design); the
    seed itself stays sealed until unblinding (``assignment_seed``)."""
    return _seal.seed_is_sealed(store, study)


@guarded
def assignment_seed(store: Store, caller: Caller, study: str) -> int:
    """The study's assignment seed, once the study is unblinded (``StateError`` before: the
    seed is a blinding secret until then; the protocol shows only its commitment)."""
    return _seal.assignment_seed(store, study)


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
    settings = DesignSettings(raters, raters_per_case, seed, mode, match_specialty)
    return _assignments.preview_assignments(
        store, study, settings, calibration_cases=calibration_cases, repeat_share=repeat_share
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
    settings = DesignSettings(raters, raters_per_case, seed, mode, match_specialty)
    return _assignments.make_assignments(store, caller, study, settings)


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
    return _assignments.persist_assignments(
        store, caller, study, assignments, presentations, seed=seed, design=design
    )


@guarded
def leak_report(store: Store, caller: Caller, study: str) -> pl.DataFrame:
    """The pre-launch blinding leak report of the study's answers, per arm
    (``analysis.leakage.leak_report``: length, markdown, self-identifying phrases, signatures, and
    how well length and format alone tell the arms apart, with a warning above 0.7)."""
    return _leaks.leak_report(store, study)


@guarded
def leak_pairs(store: Store, caller: Caller, study: str) -> pl.DataFrame:
    """How well length and format alone tell each pair of the study's arms apart on the cases
    both answered (``analysis.leakage.pairwise_format_auc``): columns arm_a, arm_b, shared_cases,
    format_auc, warning (above 0.7); no row for two arms that share no case."""
    return _leaks.leak_pairs(store, study)


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
    return _rater_view.case_preview(store, study, case_id=case_id, mode=mode, display=display)


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
    return _drafts.save_design_draft(store, caller, study, settings)


@guarded
def design_draft(store: Store, caller: Caller, study: str) -> dict[str, Any] | None:
    """The design settings kept for ``study`` by ``save_design_draft``, or None when none were.

    Keys: ``settings`` (setting name -> value, as saved), ``saved_at`` (UTC, naive datetime)
    and ``saved_by`` (the actor). Read whatever the study's status: the lock leaves the last
    draft as it was, and from then on the locked protocol is what counts.
    """
    return _drafts.design_draft(store, study)
