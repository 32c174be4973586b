"""Whose an assignment is: the rule that a rater acts only on their own assignments and never on
an answer they wrote, checked on every case rated, with what never changes about an assignment
kept between calls so that the check costs one short statement.

``rating`` (its showing, submission, flags and skips) checks with ``own_assignment``; the rater's
view of a case (``_rater_view``) keeps the facts it reads anyway (``keep_facts``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from study.access import Caller, check_grants, refuse, with_grants
from study.errors import NotFoundError
from study.instruments import Instrument
from study.services._common import person_key_sql
from study.services.instrument_library import instrument_from_json
from study.store import Store


@dataclass(frozen=True, slots=True)
class AssignmentFacts:
    """What never changes about an assignment once it is stored, kept between calls in
    ``store.facts`` (``keep_facts``) so that a rater's checks on it (its first showing, its
    submission) re-read only its state.

    Why these cannot change: assignments are never deleted, and their only updates are the
    state (``done``, ``status``, ``done_at``, ``presented_at``; read afresh on every call), never
    study, rater or phase (a calibration retry makes new assignments); presentations, answers
    (their author ids) and cases are never updated, and are removed only from a draft when no
    assignment uses them (``content.remove_*``), so even a draft's assignments keep theirs.
    Facts are kept only when read outside a transaction (``Store.remember``).
    """

    study: str
    rater: str
    phase: str
    criteria: str | None  # the case's rubric, as stored (``study.case_json.stored_criteria``)
    labels: tuple[tuple[int, str], ...]  # (presentation id, label) in screen order
    authors: tuple[str | None, ...]  # each answer shown's author id, as person_key_sql has it


def keep_facts(store: Store, assignment: int, facts: AssignmentFacts) -> None:
    """Keep ``facts`` of ``assignment`` for the next check of it."""
    store.remember(("assignment", assignment), facts)


def as_id(assignment: Any) -> int | None:
    """An assignment id as given (an int, or text of one), or None for anything else."""
    try:
        return int(assignment)
    except (TypeError, ValueError):
        return None


def own_assignment(
    store: Store, caller: Caller, study: str, assignment: Any, *, service: str, sheet: bool = False
) -> dict[str, Any]:
    """The caller's assignment as it stands, read with the caller's roles in one statement: the
    guard's check (``check_grants``) first, then refuse (audited, as ``service``) an assignment
    of another study or rater and one showing the caller's own answer. Before any transaction,
    so that a refusal's event is kept.

    Keys: id, study, rater, done, status, study_status, phase, presented_at; with ``sheet`` also
    what a submission is checked against: criteria (the case's rubric, null for most cases),
    labels ([(presentation id, label)] in screen order) and instruments (``Instrument``s in the
    study's order).
    """
    row, facts, me, instruments = _read(store, caller, study, assignment, sheet=sheet)
    if (facts.study, facts.rater) != (study, caller.user_id):
        why = f"Assignment {assignment} belongs to another rater."
        refuse(store, caller, why, study=study, service=service)
    if any(author is not None and author in me for author in facts.authors):
        why = "A rater may not rate an answer they wrote."
        refuse(store, caller, why, study=study, service=service)
    row.update(study=facts.study, rater=facts.rater, phase=facts.phase)
    if sheet:
        row.update(criteria=facts.criteria, labels=list(facts.labels), instruments=instruments)
    return row


def _read(
    store: Store, caller: Caller, study: str, assignment: Any, *, sheet: bool
) -> tuple[dict[str, Any], AssignmentFacts, frozenset[str], tuple[Instrument, ...] | None]:
    """(the assignment's state, its facts, the caller's names, the study's instruments when
    ``sheet``), after the guard's check and ``NotFoundError`` for no such assignment.

    The statement reads afresh what can change: the caller's roles (a revoke counts at once),
    the study's status, the assignment's state. What cannot (``AssignmentFacts``, the study's
    instruments once it left its draft, the caller's names) comes from ``store.facts`` once it
    was read: the check is then one short statement (about 2 ms against 8 on a 1M-rating
    database, where each sub-plan costs a millisecond whatever the table's size).
    """
    assignment_id = as_id(assignment)
    facts: AssignmentFacts | None = (
        store.facts.get(("assignment", assignment_id)) if assignment_id is not None else None
    )
    # a person's id, e-mail and subject are never updated (people.ensure_user and invite insert
    # them; sign-in binds a provider's identity in ``identities`` and stamps first_sign_in only),
    # so whether an answer is theirs needs no fresh read of them
    me: frozenset[str] | None = store.facts.get(("person", caller.user_id))
    instruments: tuple[Instrument, ...] | None = (
        store.facts.get(("instruments", study)) if sheet else None
    )
    params: dict[str, Any] = {"caller": caller.user_id, "assignment": assignment_id}
    if facts is not None and me is not None and (instruments is not None or not sheet):
        # the study's status by the study named: if the assignment is another study's, the
        # call is refused before the status is used
        sql = (
            "SELECT s.id, s.done, s.status, s.presented_at,"
            " (SELECT status FROM studies WHERE id = $study) AS study_status"
            " FROM assignments s WHERE s.id = $assignment"
        )
        params["study"] = study
    else:
        sql = _everything_sql(me is None, sheet and instruments is None)
        if sheet and instruments is None:
            params["study"] = study
        facts = None
    cur = store.cursor()
    try:
        result = cur.execute(with_grants(sql), params)
        names = [d[0] for d in result.description]
        row = dict(zip(names, result.fetchall()[0], strict=True))
    finally:
        cur.close()
    check_grants(store, caller, row.pop("grants"), row.pop("known"))
    if row["id"] is None:
        raise NotFoundError(f"There is no assignment {assignment}.")
    if facts is None:
        shown = row.pop("shown") or []
        facts = AssignmentFacts(
            row["study"],
            row["rater"],
            row["phase"],
            row["criteria"],
            tuple((pid, label) for pid, label, _ in shown),
            tuple(author for _, _, author in shown),
        )
        keep_facts(store, row["id"], facts)
    if "me" in row:
        me = frozenset(k for k in row.pop("me") or () if k is not None)
        store.remember(("person", caller.user_id), me)
    if "instruments" in row:
        instruments = tuple(
            instrument_from_json(d, digest) for d, digest in row.pop("instruments") or []
        )
        # instruments are attached to a draft only (instrument_library.attach_instrument), and an
        # instrument version is never changed once added: past the draft the list is final
        # (the status is the study named, which is the assignment's once checked)
        if row["study_status"] != "draft" and facts.study == study:
            store.remember(("instruments", study), instruments)
    return row, facts, me or frozenset(), instruments


def _everything_sql(with_me: bool, with_instruments: bool) -> str:
    """The statement that reads the facts (then kept) with the state; ``with_me``: the caller's
    names too (compared with answers' authors as ``author_owner_sql`` does), ``with_instruments``:
    the study's instruments too."""
    sql = (
        "SELECT s.id, s.study, s.rater, s.done, s.status, t.status AS study_status, s.phase,"
        " s.presented_at, c.criteria, (SELECT list((p.id, p.label,"
        f" {person_key_sql('a.author_id')}) ORDER BY p.position) FROM presentations p"
        "  JOIN answers a ON a.study = p.study AND a.answer_id = p.answer_id"
        "  WHERE p.assignment = $assignment) AS shown"
    )
    if with_me:
        sql += (
            f", (SELECT [{person_key_sql('u.id')}, {person_key_sql('u.email')},"
            f" {person_key_sql('u.subject')}] FROM users u WHERE u.id = $caller) AS me"
        )
    if with_instruments:
        sql += (
            ", (SELECT list((i.definition, i.content_hash) ORDER BY si.position)"
            "  FROM study_instruments si JOIN instruments i ON i.key = si.instrument_key"
            "  AND i.version = si.instrument_version WHERE si.study = $study) AS instruments"
        )
    return sql + (
        " FROM assignments s JOIN studies t ON t.id = s.study"
        " JOIN cases c ON c.study = s.study AND c.case_id = s.case_id"
        " WHERE s.id = $assignment"
    )
