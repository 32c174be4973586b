"""A case as the rating screen shows it to a rater: the one shape both a rater's assignment
(``rating.assignment_view``, ``rating.next_assignment``) and a designer's preview of a case
(``design.preview_view``) take, so that the preview shows what raters will see.

The services check the caller; these functions read and shape. Never the arm, the answer's id or
its author, except the preview's ``arms`` (for the designer only).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from study.case_json import stored_criteria
from study.errors import NotFoundError, Problem, ValidationError
from study.services import _queue
from study.services._common import person_key_sql, require_study, rubric_items
from study.services._ownership import AssignmentFacts, keep_facts
from study.store import Cursor, Store, first

SHOWN_PER_MODE = {"side_by_side": None, "pairwise": 2, "separate": 1}
"""How many of a case's answers one screen shows in each assignment mode (None: all)."""


def _screen(
    case: tuple[str, str, str | None, str | None, str | None],
    rubric: list[str],
    presentations: list[dict[str, Any]],
    *,
    display: str,
    values: dict[str, Any],
    done: bool,
) -> dict[str, Any]:
    """What every rater's screen of a case draws: ``case`` as stored, (case_id, question,
    context, conversation, criteria; the last two JSON text or None), ``rubric`` (the study's
    items rated per criterion), ``presentations`` as the screen lists them, ``display``
    (``study.rendering.MODES``), the current ``values`` and whether the case is ``done``."""
    case_id, question, context, conversation, criteria = case
    return {
        "case_id": case_id,
        "question": question,
        "context": context,
        "done": done,
        "presentations": presentations,
        "values": values,
        # how the answers' text is shown, as the protocol says (study.rendering.MODES; default
        # "markdown")
        "display": display,
        "conversation": None if conversation is None else json.loads(conversation),
        "criteria": [
            {"key": c["key"], "criterion": c["criterion"]} for c in stored_criteria(criteria)
        ],
        # raters see a rubric item only on a case with criteria to rate
        "rubric_items": rubric if criteria is not None else [],
    }


def assignment_view(
    store: Store,
    cur: Cursor,
    study: str,
    rater: str,
    assignment: int,
    content: Mapping[str, Any] | None = None,
    *,
    counts: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """``rating.assignment_view``'s dict for ``rater``'s ``assignment`` (the caller checked
    whose it is); ``content``: the newest protocol's, and ``counts``: (remaining, total), when
    the caller has them already."""
    content = _queue.protocol(cur, study) if content is None else content
    # the assignment, its case and the answers it shows in one statement (every case rated
    # reads this); the answers come as a list in screen order
    (
        owner_study,
        owner,
        case_id,
        shown_order,
        done,
        phase,
        presented_at,
        question,
        context,
        conversation,
        criteria,
        shown,
    ) = cur.execute(
        "SELECT s.study, s.rater, s.case_id, s.shown_order, s.done, s.phase, s.presented_at,"
        " c.question,"
        " c.context, c.conversation, c.criteria, (SELECT list((p.id, p.position, p.label, a.text,"
        f"  {person_key_sql('a.author_id')}) ORDER BY p.position) FROM presentations p"
        "  JOIN answers a ON a.study = p.study AND a.answer_id = p.answer_id"
        "  WHERE p.assignment = $assignment) AS shown"
        " FROM assignments s JOIN cases c ON c.study = s.study AND c.case_id = s.case_id"
        " WHERE s.id = $assignment",
        {"assignment": assignment},
    ).fetchall()[0]
    shown = shown or []
    # the case shown is the one checked next (its first showing, its submission): its facts
    # come with this read for free, so those checks need not read them again
    keep_facts(
        store,
        assignment,
        AssignmentFacts(
            owner_study,
            owner,
            phase,
            criteria,
            tuple((pid, label) for pid, _, label, _, _ in shown),
            tuple(author for *_, author in shown),
        ),
    )
    remaining, total = _counts(cur, study, rater, content) if counts is None else counts
    rubric = rubric_items(cur, study) if criteria is not None else []
    labels = {pid: label for pid, _, label, _, _ in shown}
    values, comment = _current_values(cur, assignment, rubric, labels) if done else ({}, None)
    return _screen(
        (case_id, question, context, conversation, criteria),
        rubric,
        [
            {"presentation": pid, "position": pos, "label": label, "text": text}
            for pid, pos, label, text, _ in shown
        ],
        display=content.get("display") or "markdown",
        values=values,
        done=bool(done),
    ) | {
        "assignment": assignment,
        "shown_order": shown_order,
        "remaining": remaining,
        "total": total,
        "comment": comment,
        "phase": phase,
        "presented_at": presented_at,
    }


def _counts(cur: Cursor, study: str, rater: str, content: Mapping[str, Any]) -> tuple[int, int]:
    """(remaining, total) of the rater's queue, as ``rating.assignment_view`` counts them."""
    remaining, total = cur.execute(
        "SELECT count(*) FILTER (WHERE NOT done), count(*)"
        " FROM assignments a WHERE study = ? AND rater = ? AND a.status <> 'withdrawn'"
        f" AND NOT {_queue.SKIPPED}",
        [study, rater],
    ).fetchall()[0]
    if content.get("repeats") is not None:
        # a repeat of a case skipped or withdrawn is never offered: no part of the work;
        # counted apart, only where repeats exist (a combined query cost 3x per key press)
        gone, gone_pending = cur.execute(
            "SELECT count(*), count(*) FILTER (WHERE NOT a.done) FROM assignments a"
            " WHERE a.study = ? AND a.rater = ? AND a.phase = 'repeat'"
            f" AND a.status <> 'withdrawn' AND NOT {_queue.SKIPPED} AND {_queue.LIVE_GONE}",
            [study, rater],
        ).fetchall()[0]
        remaining, total = remaining - gone_pending, total - gone
    return remaining, total


def _current_values(
    cur: Cursor, assignment: int, rubric: list[str], labels: Mapping[int, str]
) -> tuple[dict[str, Any], str | None]:
    """(the submitted assignment's current values as ``rating.submit_rating`` takes them, its
    newest comment or None); ``labels``: presentation id -> label."""
    # with them, the newest comment on the case (kept with the rows of the submission that
    # gave it), in the same statement
    stored = cur.execute(
        "SELECT r.slot, r.item_key, r.value_num, r.value_text,"
        " (SELECT arg_max(k.comment, k.rating) FROM rating_comments k"
        "  JOIN ratings o ON o.id = k.rating WHERE o.assignment = $a)"
        " FROM current_ratings c JOIN ratings r ON r.id = c.rating WHERE c.assignment = $a"
        " ORDER BY r.slot, r.item_key",
        {"a": assignment},
    ).fetchall()
    values: dict[str, Any] = {}
    for slot, item, num, text, _ in stored:
        value = text if text is not None else (int(num) if float(num).is_integer() else num)
        if item in rubric:
            value = json.loads(value)
        if slot == 0:
            values[item] = value
        else:
            values.setdefault(item, {})[labels[slot]] = value
    return values, (stored[0][4] if stored else None)


def case_preview(
    store: Store, study: str, *, case_id: str | None, mode: str, display: str
) -> dict[str, Any]:
    """``design.preview_view``'s dict: ``case_id`` (default the first case with answers) as a
    rater would see it on a screen of ``mode``, its answers in answer-id order."""
    if mode not in SHOWN_PER_MODE:
        raise ValidationError(
            [Problem("design", None, "mode", f"mode is one of {', '.join(SHOWN_PER_MODE)}")]
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
    from study.shuffle import neutral_label

    shown = answers[: SHOWN_PER_MODE[mode]] if SHOWN_PER_MODE[mode] else answers
    return _screen(
        (case_id, *row),
        rubric,
        [
            {"position": n, "label": neutral_label(n), "text": text}
            for n, (_, text) in enumerate(shown, start=1)
        ],
        display=display,
        values={},
        done=False,
    ) | {"arms": {neutral_label(n): arm for n, (arm, _) in enumerate(shown, start=1)}}
