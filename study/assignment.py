"""Seeded assignment of raters to cases, with a random answer order and neutral labels.

One call, :func:`design_assignments`, turns the study's cases, raters and answers into two tables
that the store persists when the protocol is locked:

- ``assignments``: one row per (case, rater): who rates which case, where the case sits in the
  rater's queue, and the seed that produced it;
- ``presentations``: one row per (assignment, answer): the position on screen (1-based) and the
  neutral label shown ("Response A", ...), which depends on the position only.

Modes (``MODES``): ``side_by_side`` shows all of a case's answers on one screen; ``pairwise``
shows two of them (with three or more arms the pairs of a case are dealt in turn, so each pair is
shown equally often); ``separate`` shows one answer per screen, and a rater sees at most one
answer of a case, so a case's other answers are never shown with it.

Rules, all checked:

1. every case (``separate``: every answer) goes to exactly ``raters_per_case`` distinct raters;
2. a rater never rates a case for which they wrote one of the answers (``author_id``), and with
   ``match_specialty`` only raters of the case's specialty rate it; a design these constraints
   cannot meet is refused, naming the case and the constraint;
3. loads are balanced: the busiest and the least busy rater differ by at most one assignment
   whenever rule 2 allows it (otherwise the spread is the smallest the exclusions permit);
4. each rater sees each arm equally often in each screen position (within one): the orders of a
   rater's screens come in blocks of k (k answers shown) that form a Latin square (each arm once
   in each position), drawn at random, so every order is equally likely overall and position is
   never confounded with arm within a rater; each rater's queue of cases is in a random order.
   Two-answer screens are oriented together along Euler circuits, so the balance holds over all
   of a rater's pairs whichever arms they show (pairwise with three or more arms, partial
   coverage); screens of three or more answers are balanced within each set of arms they show;
5. the same inputs and seed give the same tables, on any Python version (see
   :class:`study.shuffle.SeededRandom`).

Two optional phases wrap the live design (``PHASES``), each drawn from its own seed derived from
the design's seed, so that adding them leaves the live allocation as it was:

- ``calibration_cases``: gold cases that every rater does first (queue positions 1..C, in an order
  shuffled per rater). They are not dealt to raters as live cases. A calibration screen shows all
  of the case's answers in answer-id order, the same screen for every rater, so that the
  protocol's expected values ("Response A": 4, a pairwise "A") mean the same for everyone.
- ``repeat_share``: each rater gets back round-half-up(share x their live cases) of their live
  cases, drawn at random, as repeat assignments queued after the live ones; a repeat shows the
  same answers in the same positions under the same labels as the first showing (a test-retest of
  one screen: a new order would mix position effects into intra-rater agreement). When a repeat is
  offered (after the washout) is the rating service's business, not the design's.

Pure: no DuckDB, no streamlit.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections import deque
from collections.abc import Mapping, Sequence

import polars as pl

from study.errors import StudyError, listed
from study.shuffle import SeededRandom, neutral_label, shuffled

ALGORITHM = "clinval-assign-3"
"""Name of this algorithm; stored with the seed so an audit knows which code replays it.
(``clinval-assign-1`` shuffled each screen's order independently, without rule 4's balance;
``clinval-assign-2`` had no calibration and no repeats: with neither, this code gives exactly its
tables, so a stored ``clinval-assign-2`` allocation replays with this code.)"""

MODES = ("side_by_side", "pairwise", "separate")

PHASES = ("calibration", "live", "repeat")
"""An assignment's phase: a gold case done first, a study rating, or a live case shown again."""

ASSIGNMENT_COLUMNS = (
    "assignment_id",
    "case_id",
    "rater_id",
    "queue_position",
    "seed",
    "algorithm",
    "phase",
)
PRESENTATION_COLUMNS = ("assignment_id", "case_id", "answer_id", "arm_id", "position", "label")


def design_assignments(
    cases: Sequence[str],
    raters: Sequence[str],
    *,
    raters_per_case: int,
    answers: pl.DataFrame,
    seed: int,
    rater_specialty: Mapping[str, str | None] | None = None,
    case_specialty: Mapping[str, str | None] | None = None,
    mode: str = "side_by_side",
    match_specialty: bool = False,
    calibration_cases: Sequence[str] = (),
    repeat_share: float = 0.0,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Assign each case to ``raters_per_case`` raters and fix the order and labels of its answers.

    Parameters
    ----------
    cases : case ids, each once. Cases are processed in sorted order, so the caller's ordering
        does not change the result.
    raters : rater (user) ids, each once; processed in sorted order, like the cases.
    raters_per_case : how many distinct raters see each case (>= 1).
    answers : one row per answer with columns ``answer_id``, ``case_id``, ``arm_id`` and
        ``author_id`` (null for LLM answers). Every case must have at least one answer.
    seed : recorded in every assignment row; the same seed and inputs give the same tables.
    rater_specialty, case_specialty : optional maps to a specialty. When both are given, a rater
        whose specialty matches the case's is preferred among raters of equal load; balance always
        comes first.
    mode : ``"side_by_side"`` (default), ``"pairwise"`` or ``"separate"``; see the module.
    match_specialty : only raters whose specialty equals the case's rate it (a hard constraint;
        a case with no specialty may go to anyone).
    calibration_cases : case ids (of ``cases``) that every rater does first, as calibration; they
        are not live cases. None of their answers may be a rater's own.
    repeat_share : fraction in [0, 1] of each rater's live cases that come back as repeats
        (round half up: 0.1 of 15 cases is 2, of 14 is 1).

    Returns
    -------
    (assignments, presentations)
        ``assignments``: ``assignment_id`` (str, "as-<case>-<rater>"), ``case_id``, ``rater_id``,
        ``queue_position`` (1-based rank in that rater's queue: calibration, then live, then
        repeats), ``seed`` (Int64), ``algorithm``, ``phase`` (``PHASES``); sorted by rater then
        queue position. Ids: "as-<case>-<rater>" (live), "cal-<case>-<rater>",
        "rep-<case>-<rater>". ``presentations``: ``assignment_id``, ``case_id``,
        ``answer_id``, ``arm_id``, ``position`` (1-based on screen), ``label``
        ("Response A" for position 1, ...); sorted by assignment then position.

    Raises
    ------
    StudyError
        duplicate ids, unknown cases in ``answers``, a case without answers, or a case with
        fewer eligible raters (raters who wrote none of its answers) than ``raters_per_case``.
    """
    all_case_ids = _unique_ids(cases, "case")
    gold = sorted(_unique_ids(calibration_cases, "calibration case"))
    unknown_gold = [c for c in gold if c not in set(all_case_ids)]
    if unknown_gold:
        raise StudyError(
            "Calibration cases must be cases of the study: " + ", ".join(unknown_gold) + "."
        )
    if isinstance(repeat_share, bool) or not isinstance(repeat_share, int | float):
        raise StudyError(f"repeat_share must be a number in [0, 1], got {repeat_share!r}.")
    if not 0 <= repeat_share <= 1:
        raise StudyError(f"repeat_share must be in [0, 1], got {repeat_share}.")
    case_ids = [c for c in all_case_ids if c not in set(gold)]
    # sorted, like the cases: the caller's ordering must not change the allocation
    rater_ids = sorted(_unique_ids(raters, "rater"))
    if isinstance(raters_per_case, bool) or not isinstance(raters_per_case, int):
        raise StudyError(f"raters_per_case must be a whole number, got {raters_per_case!r}.")
    if raters_per_case < 1:
        raise StudyError(f"Each case needs at least one rater; raters_per_case={raters_per_case}.")
    if not case_ids:
        raise StudyError(
            "There are no cases to assign" + (" besides the calibration cases." if gold else ".")
        )
    if mode not in MODES:
        raise StudyError(f"mode must be one of {', '.join(MODES)}, not {mode!r}.")
    if match_specialty and not (rater_specialty and case_specialty):
        raise StudyError("Matching specialties needs the raters' and the cases' specialties.")
    needed = [
        c for c in ("answer_id", "case_id", "arm_id", "author_id") if c not in answers.columns
    ]
    if needed:
        raise StudyError(f"The answers table lacks column(s): {', '.join(needed)}.")

    rng = SeededRandom(seed)
    answers_by_case, authors_by_case = _answers_by_case(answers, set(all_case_ids))
    _check_calibration(gold, rater_ids, answers_by_case, authors_by_case)

    eligible: dict[str, list[str]] = {}
    problems: list[tuple[str, str]] = []
    for case in sorted(case_ids):
        if case not in answers_by_case:
            problems.append((case, "has no answers"))
            continue
        if mode == "pairwise" and len(answers_by_case[case]) < 2:
            problems.append((case, "has one answer; a pairwise screen shows two"))
            continue
        ok = [r for r in rater_ids if r not in authors_by_case.get(case, set())]
        wanted = (case_specialty or {}).get(case) if match_specialty else None
        if wanted:
            ok = [r for r in ok if (rater_specialty or {}).get(r) == wanted]
        needed = raters_per_case * (len(answers_by_case[case]) if mode == "separate" else 1)
        if len(ok) < needed:
            authors = sorted(authors_by_case.get(case, set()) & set(rater_ids))
            why = [f"{', '.join(authors)} wrote one of its answers"] if authors else []
            if wanted:
                why.append(f"only raters of its specialty '{wanted}' may rate it")
            if mode == "separate":
                why.append(
                    f"each of its {len(answers_by_case[case])} answers needs raters of its own"
                )
            because = f" ({'; '.join(why)})" if why else ""
            problems.append(
                (case, f"needs {needed} raters but only {len(ok)} are eligible{because}")
            )
        eligible[case] = ok
    if problems:
        raise StudyError(
            "Cannot assign raters: "
            + "; ".join(_grouped(problems))
            + ". Add raters or lower raters per case."
        )

    if mode == "separate":
        shown = _separate_choice(eligible, answers_by_case, rater_ids, raters_per_case, rng)
    else:
        chosen = _balanced_choice(
            eligible, rater_ids, raters_per_case, rng, rater_specialty, case_specialty
        )
        shown = {
            (case, rater): list(answers_by_case[case]) for case in chosen for rater in chosen[case]
        }
        if mode == "pairwise":
            _deal_pairs(shown, chosen, rng)
    assignments, presentations = _tables(shown, rater_ids, seed, rng)
    if not gold and not repeat_share:
        return assignments, presentations
    return _with_phases(
        assignments, presentations, gold, answers_by_case, rater_ids, repeat_share, seed
    )


def repeats_for(live_cases: int, share: float) -> int:
    """How many of a rater's ``live_cases`` come back as repeats: round half up of share x n.

    >>> [repeats_for(n, 0.1) for n in (0, 4, 5, 14, 15, 40)]
    [0, 0, 1, 1, 2, 4]
    """
    return int(math.floor(share * live_cases + 0.5 + 1e-9))


def derived_seed(seed: int, purpose: str) -> int:
    """A seed for one purpose ("calibration", "repeats") drawn from the design's ``seed``:
    the first 63 bits of SHA-256 of "<seed>:<purpose>", so the phases' draws never shift the
    live design's."""
    digest = hashlib.sha256(f"{seed}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def load_spread(assignments: pl.DataFrame, raters: Sequence[str] | None = None) -> int:
    """Busiest minus least busy rater's number of cases (raters with no case count as 0)."""
    counts = dict(
        assignments.group_by("rater_id").agg(pl.len()).iter_rows()  # (rater_id, n)
    )
    pool = list(raters) if raters is not None else list(counts)
    loads = [counts.get(r, 0) for r in pool]
    return max(loads) - min(loads) if loads else 0


# --- internals -----------------------------------------------------------------------------------


def _check_calibration(
    gold: list[str],
    rater_ids: list[str],
    answers_by_case: dict[str, list[tuple[str, str]]],
    authors_by_case: dict[str, set[str]],
) -> None:
    """Every rater does every calibration case: each needs answers, and none may be a rater's."""
    problems = [f"calibration case {c!r} has no answers" for c in gold if c not in answers_by_case]
    for case in gold:
        own = sorted(authors_by_case.get(case, set()) & set(rater_ids))
        if own:
            problems.append(
                f"calibration case {case!r} shows an answer written by {', '.join(own)}, and "
                "every rater does every calibration case"
            )
    if problems:
        raise StudyError("Cannot assign raters: " + "; ".join(problems) + ".")


def _with_phases(
    assignments: pl.DataFrame,
    presentations: pl.DataFrame,
    gold: list[str],
    answers_by_case: dict[str, list[tuple[str, str]]],
    rater_ids: list[str],
    repeat_share: float,
    seed: int,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The live tables with each rater's calibration cases put first and their repeats last."""
    gold_rng = SeededRandom(derived_seed(seed, "calibration"))
    repeat_rng = SeededRandom(derived_seed(seed, "repeats"))
    a_rows: list[tuple[str, str, str, int, int, str, str]] = []
    p_rows: list[tuple[str, str, str, str, int, str]] = []
    for rater in rater_ids:
        for position, case in enumerate(shuffled(gold, gold_rng), start=1):
            key = f"cal-{case}-{rater}"
            a_rows.append((key, case, rater, position, seed, ALGORITHM, "calibration"))
            # answer-id order, the same screen for everyone: expected values name its labels
            for place, (answer_id, arm_id) in enumerate(sorted(answers_by_case[case]), start=1):
                p_rows.append((key, case, answer_id, arm_id, place, neutral_label(place)))
        live = assignments.filter(pl.col("rater_id") == rater).sort("queue_position")
        last = len(gold) + live.height
        drawn = shuffled(sorted(live.get_column("case_id").to_list()), repeat_rng)
        for position, case in enumerate(drawn[: repeats_for(live.height, repeat_share)], 1):
            a_rows.append(
                (f"rep-{case}-{rater}", case, rater, last + position, seed, ALGORITHM, "repeat")
            )
    phased = pl.DataFrame(
        a_rows,
        schema={**dict(assignments.schema), "phase": pl.String},
        orient="row",
    )
    shift = len(gold)
    live = assignments.with_columns(pl.col("queue_position") + shift, pl.lit("live").alias("phase"))
    repeat_screens = (
        phased.filter(pl.col("phase") == "repeat")
        .select("assignment_id", "case_id", "rater_id")
        .join(
            presentations.join(
                assignments.select("assignment_id", "rater_id"), on="assignment_id"
            ).rename({"assignment_id": "first_id"}),
            on=["case_id", "rater_id"],
        )
        .select(presentations.columns)
    )
    gold_screens = pl.DataFrame(p_rows, schema=presentations.schema, orient="row")
    out_a = pl.concat([phased, live]).sort("rater_id", "queue_position")
    out_p = pl.concat([gold_screens, presentations, repeat_screens]).sort(
        "assignment_id", "position"
    )
    return out_a, out_p


def _unique_ids(ids: Sequence[str], what: str) -> list[str]:
    out = [str(i) for i in ids]
    seen: set[str] = set()
    dupes = sorted({i for i in out if i in seen or seen.add(i)})
    if dupes:
        raise StudyError(f"Each {what} id must appear once; repeated: {', '.join(dupes)}.")
    return out


def _answers_by_case(
    answers: pl.DataFrame, case_set: set[str]
) -> tuple[dict[str, list[tuple[str, str]]], dict[str, set[str]]]:
    by_case: dict[str, list[tuple[str, str]]] = {}
    authors: dict[str, set[str]] = {}
    unknown: set[str] = set()
    for answer_id, case_id, arm_id, author_id in answers.select(
        "answer_id", "case_id", "arm_id", "author_id"
    ).iter_rows():
        if case_id not in case_set:
            unknown.add(str(case_id))
            continue
        by_case.setdefault(case_id, []).append((str(answer_id), str(arm_id)))
        if author_id is not None and str(author_id) != "":
            authors.setdefault(case_id, set()).add(str(author_id))
    if unknown:
        raise StudyError(
            "The answers name case(s) that are not in the study: " + ", ".join(sorted(unknown))
        )
    for case in by_case:
        # A stable base order, so the shuffle alone decides the order on screen.
        by_case[case].sort(key=lambda a: (a[1], a[0]))
    return by_case, authors


def _balanced_choice(
    eligible: dict[str, list[str]],
    rater_ids: list[str],
    k: int,
    rng: SeededRandom,
    rater_specialty: Mapping[str, str | None] | None,
    case_specialty: Mapping[str, str | None] | None,
) -> dict[str, list[str]]:
    """Pick k raters per case: greedy by load, then move cases along paths until balanced.

    Greedy least-loaded choice, most constrained cases first, is balanced in the usual case. With
    exclusions it can leave a spread above one; then a case held by an overloaded rater is moved
    to a rater with room, possibly along a chain of such moves (an augmenting path, as in
    max-flow), which keeps every case at k raters and every exclusion intact. Each move lowers
    the sum of squared loads, so the repair terminates; when no path exists the spread is the
    least the exclusions allow.
    """
    load = {r: 0 for r in rater_ids}
    tiebreak = {r: rng.random() for r in rater_ids}
    case_order = sorted(eligible, key=lambda c: (len(eligible[c]), c))
    chosen: dict[str, list[str]] = {}
    for case in case_order:
        spec = (case_specialty or {}).get(case) if rater_specialty else None

        def key(r: str, spec: str | None = spec) -> tuple[int, int, float]:
            match = 0 if spec and (rater_specialty or {}).get(r) == spec else 1
            return (load[r], match, tiebreak[r])

        picked = sorted(eligible[case], key=key)[:k]
        for r in picked:
            load[r] += 1
            # Re-draw the tie-break so equal loads do not always fall to the same raters.
            tiebreak[r] = rng.random()
        chosen[case] = picked

    _rebalance(chosen, eligible, load)
    return chosen


def _rebalance(
    chosen: dict[str, list[str]], eligible: dict[str, list[str]], load: dict[str, int]
) -> None:
    eligible_sets = {c: set(rs) for c, rs in eligible.items()}
    while True:
        path = None
        # Busiest raters first; a move from any rater to one with two fewer cases still helps.
        for level in sorted(set(load.values()), reverse=True):
            sources = sorted(r for r, n in load.items() if n == level)
            path = _find_path(sources, chosen, eligible_sets, load, level)
            if path is not None:
                break
        if path is None:
            return
        # path: [(case, from_rater, to_rater), ...] from a rater at `level` to one with room.
        for case, src, dst in path:
            chosen[case] = [dst if r == src else r for r in chosen[case]]
        load[path[0][1]] -= 1
        load[path[-1][2]] += 1


def _find_path(
    sources: list[str],
    chosen: dict[str, list[str]],
    eligible_sets: dict[str, set[str]],
    load: dict[str, int],
    top: int,
) -> list[tuple[str, str, str]] | None:
    """Breadth-first search for moves from a rater with ``top`` cases to one with <= top - 2.

    Returns the moves in order, each ``(case, from_rater, to_rater)``, or ``None``.
    """
    cases_of: dict[str, list[str]] = {}
    for case in sorted(chosen):
        for r in chosen[case]:
            cases_of.setdefault(r, []).append(case)
    parent: dict[str, tuple[str, str, str] | None] = {s: None for s in sources}
    queue = deque(sources)
    while queue:
        rater = queue.popleft()
        for case in cases_of.get(rater, []):
            holders = set(chosen[case])
            for dst in sorted(eligible_sets[case] - holders):
                if dst in parent:
                    continue
                parent[dst] = (case, rater, dst)
                if load[dst] <= top - 2:
                    path = []
                    node = dst
                    while parent[node] is not None:
                        step = parent[node]
                        path.append(step)
                        node = step[1]
                    return path[::-1]
                queue.append(dst)
    return None


def _separate_choice(
    eligible: dict[str, list[str]],
    answers_by_case: dict[str, list[tuple[str, str]]],
    rater_ids: list[str],
    k: int,
    rng: SeededRandom,
) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """``separate`` mode: each answer to k raters, a rater at most one answer per case.

    Greedy, most constrained cases first: an answer goes to the eligible raters who are least
    loaded, then who have seen its arm least (so each rater meets the arms about equally), then
    at random.
    """
    load = dict.fromkeys(rater_ids, 0)
    per_arm: dict[tuple[str, str], int] = {}
    shown: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for case in sorted(eligible, key=lambda c: (len(eligible[c]), c)):
        free = list(eligible[case])
        for answer in shuffled(answers_by_case[case], rng):
            tiebreak = {r: rng.random() for r in free}
            picked = sorted(
                free, key=lambda r: (load[r], per_arm.get((r, answer[1]), 0), tiebreak[r])
            )[:k]
            for rater in picked:
                load[rater] += 1
                per_arm[(rater, answer[1])] = per_arm.get((rater, answer[1]), 0) + 1
                shown[(case, rater)] = [answer]
                free.remove(rater)
    return shown


def _deal_pairs(
    shown: dict[tuple[str, str], list[tuple[str, str]]],
    chosen: dict[str, list[str]],
    rng: SeededRandom,
) -> None:
    """``pairwise`` mode: keep two answers per screen, dealing each case's pairs in turn from a
    shuffled list of all of its pairs, so every pair is shown equally often (within one)."""
    for case, raters in chosen.items():
        answers = shown[(case, raters[0])]
        pairs = shuffled(list(itertools.combinations(answers, 2)), rng)
        for n, rater in enumerate(raters):
            shown[(case, rater)] = list(pairs[n % len(pairs)])


def _latin_block(k: int, rng: SeededRandom) -> list[list[int]]:
    """k orders of positions 0..k-1 forming a Latin square: rotations of a random order, in
    random sequence. Each order is uniform over all k! orders; within the block each index
    stands once in each position."""
    base = shuffled(list(range(k)), rng)
    return shuffled([base[i:] + base[:i] for i in range(k)], rng)


def _balanced_orders(
    screens: list[list[tuple[str, str]]], rng: SeededRandom
) -> list[list[tuple[str, str]]]:
    """One rater's screens (in queue order) with their answers put in order so that each arm
    stands equally often in each position (within one).

    Screens of two answers are oriented together (:func:`_orient_pairs`), so the balance holds
    over all of them whatever pairs of arms they show. Screens of k > 2 answers that show the
    same set of arms share a sequence of Latin blocks over those arms (sorted), so the balance
    holds within every such set (not across different sets of three or more arms).
    """
    ordered: list[list[tuple[str, str]] | None] = [None] * len(screens)
    pairs = [n for n, answers in enumerate(screens) if len(answers) == 2]
    for n, first in zip(pairs, _orient_pairs([screens[n] for n in pairs], rng), strict=True):
        a, b = sorted(screens[n], key=lambda x: (x[1], x[0]))
        ordered[n] = [a, b] if first == a[1] else [b, a]
    blocks: dict[tuple[str, ...], list[list[int]]] = {}
    for n, answers in enumerate(screens):
        if ordered[n] is not None:
            continue
        by_arm = sorted(answers, key=lambda a: (a[1], a[0]))
        arms = tuple(a[1] for a in by_arm)
        block = blocks.get(arms)
        if not block:
            block = blocks[arms] = _latin_block(len(arms), rng)
        ordered[n] = [by_arm[i] for i in block.pop()]
    return ordered  # type: ignore[return-value]


def _orient_pairs(screens: list[list[tuple[str, str]]], rng: SeededRandom) -> list[str]:
    """For each two-answer screen, the arm shown first, such that every arm is first and second
    equally often (within one) over all the screens.

    The screens are the edges of a multigraph on the arms; orienting the edges along Euler
    circuits (after joining the odd-degree arms to one extra vertex) gives every arm in-degree and
    out-degree within one. Circuits start at a random arm, follow edges in random order, and run
    in a random direction, so either order of a pair is equally likely.
    """
    edges = [(answers[0][1], answers[1][1]) for answers in screens]
    incident: dict[str, list[int]] = {}
    for n, (a, b) in enumerate(edges):
        incident.setdefault(a, []).append(n)
        incident.setdefault(b, []).append(n)
    odd = sorted(arm for arm, ns in incident.items() if len(ns) % 2)
    extra = "\x00"  # not an arm id: the importers refuse control characters
    for arm in odd:
        edges.append((arm, extra))
        incident[arm].append(len(edges) - 1)
        incident.setdefault(extra, []).append(len(edges) - 1)
    for arm in incident:
        incident[arm] = shuffled(incident[arm], rng)
    used = [False] * len(edges)
    first = [""] * len(screens)
    for start in shuffled(sorted(incident), rng):
        if all(used[n] for n in incident[start]):
            continue
        flip = rng.random() < 0.5
        # Hierholzer: walk until stuck, splicing sub-circuits; each edge is taken once, in the
        # direction of the walk
        stack, walk = [(start, None)], []
        while stack:
            arm, via = stack[-1]
            while incident[arm] and used[incident[arm][-1]]:
                incident[arm].pop()
            if incident[arm]:
                n = incident[arm].pop()
                used[n] = True
                a, b = edges[n]
                stack.append((b if a == arm else a, (n, arm)))
            else:
                stack.pop()
                if via is not None:
                    walk.append(via)
        for n, tail in walk:
            if n < len(screens):
                a, b = edges[n]
                head = b if tail == a else a
                first[n] = head if flip else tail
    return first


def _tables(
    shown: dict[tuple[str, str], list[tuple[str, str]]],
    rater_ids: list[str],
    seed: int,
    rng: SeededRandom,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    cases_of: dict[str, list[str]] = {r: [] for r in rater_ids}
    for case, rater in sorted(shown):
        cases_of[rater].append(case)

    a_rows: list[tuple[str, str, str, int, int, str]] = []
    p_rows: list[tuple[str, str, str, str, int, str]] = []
    for rater in rater_ids:
        queue = shuffled(cases_of[rater], rng)
        orders = _balanced_orders([shown[(case, rater)] for case in queue], rng)
        for queue_position, (case, answers) in enumerate(zip(queue, orders, strict=True), start=1):
            assignment_id = f"as-{case}-{rater}"
            a_rows.append((assignment_id, case, rater, queue_position, seed, ALGORITHM))
            for position, (answer_id, arm_id) in enumerate(answers, start=1):
                p_rows.append(
                    (assignment_id, case, answer_id, arm_id, position, neutral_label(position))
                )
    assignments = pl.DataFrame(
        a_rows,
        schema={
            "assignment_id": pl.String,
            "case_id": pl.String,
            "rater_id": pl.String,
            "queue_position": pl.Int64,
            "seed": pl.Int64,
            "algorithm": pl.String,
        },
        orient="row",
    ).with_columns(pl.lit("live").alias("phase"))
    presentations = pl.DataFrame(
        p_rows,
        schema={
            "assignment_id": pl.String,
            "case_id": pl.String,
            "answer_id": pl.String,
            "arm_id": pl.String,
            "position": pl.Int64,
            "label": pl.String,
        },
        orient="row",
    )
    return assignments, presentations


def design_summary(
    assignments: pl.DataFrame, presentations: pl.DataFrame
) -> dict[str, pl.DataFrame]:
    """What a coordinator checks before storing a design, as tables.

    Keys: ``loads`` (rater_id, assignments, cases, calibration, repeats: one row per rater, by
    rater; assignments and cases count live ones, calibration and repeats their own
    assignments), ``raters_per_case`` (case_id, raters, answers_shown), ``arm_positions``
    (rater_id, arm_id, position, shown: how often each rater sees each arm in each screen
    position), ``overlap`` (rater_a, rater_b, shared_cases: for each pair of raters with a case in
    common, rater_a < rater_b), ``coverage`` (rater_id, case_id, phase: one row per assignment,
    every phase, by rater, case and phase: who rates which case). Every table but ``loads`` and
    ``coverage`` describes the live design only: the calibration screens are the same for
    everyone and repeats show a screen again.
    Inputs as ``design_assignments`` returns them (without a ``phase`` column every row is live).
    """
    if "phase" not in assignments.columns:
        assignments = assignments.with_columns(pl.lit("live").alias("phase"))
    coverage = assignments.select("rater_id", "case_id", "phase").sort(
        "rater_id", "case_id", "phase"
    )
    phases = (
        assignments.group_by("rater_id")
        .agg(
            (pl.col("phase") == "live").sum().cast(pl.Int64).alias("assignments"),
            pl.col("case_id").filter(pl.col("phase") == "live").n_unique().alias("cases"),
            (pl.col("phase") == "calibration").sum().cast(pl.Int64).alias("calibration"),
            (pl.col("phase") == "repeat").sum().cast(pl.Int64).alias("repeats"),
        )
        .sort("rater_id")
    )
    assignments = assignments.filter(pl.col("phase") == "live")
    presentations = presentations.join(
        assignments.select("assignment_id"), on="assignment_id", how="semi"
    )
    per_case = (
        presentations.group_by("case_id")
        .agg(
            pl.col("assignment_id").n_unique().alias("raters"),
            pl.col("answer_id").n_unique().alias("answers_shown"),
        )
        .sort("case_id")
    )
    arm_positions = (
        presentations.join(assignments.select("assignment_id", "rater_id"), on="assignment_id")
        .group_by("rater_id", "arm_id", "position")
        .agg(pl.len().alias("shown"))
        .sort("rater_id", "arm_id", "position")
    )
    pairs = assignments.select("case_id", "rater_id")
    overlap = (
        pairs.join(pairs, on="case_id", suffix="_b")
        .filter(pl.col("rater_id") < pl.col("rater_id_b"))
        .group_by(pl.col("rater_id").alias("rater_a"), pl.col("rater_id_b").alias("rater_b"))
        .agg(pl.len().alias("shared_cases"))
        .sort("rater_a", "rater_b")
    )
    return {
        "loads": phases,
        "raters_per_case": per_case,
        "arm_positions": arm_positions,
        "overlap": overlap,
        "coverage": coverage,
    }


def _grouped(problems: list[tuple[str, str]], *, shown: int = 5) -> list[str]:
    """One line per distinct problem of ``problems`` ([(case id, what is wrong)] in case
    order), naming its first case and then how many other cases share it, the first ``shown``
    of them by id: a design that fails on every case reads as one line, not one per case."""
    cases: dict[str, list[str]] = {}
    for case, what in problems:
        cases.setdefault(what, []).append(case)
    lines = []
    for what, ids in cases.items():
        line = f"case {ids[0]!r} {what}"
        if others := ids[1:]:
            named = listed([repr(c) for c in others[:shown]], len(others), aside=False)
            noun = "case" if len(others) == 1 else "cases"
            line += f"; so do {len(others)} other {noun} ({named})"
        lines.append(line)
    return lines
