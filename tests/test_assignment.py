"""Seeded assignment: balance, exclusion of authors, determinism, random order, infeasibility."""

from __future__ import annotations

import itertools

import polars as pl
import pytest
from scipy.stats import binomtest, chisquare

from analysis.leakage import leak_report
from study.assignment import ALGORITHM, design_assignments, design_summary, load_spread
from study.errors import StudyError
from study.shuffle import SeededRandom, neutral_label, neutral_labels, shuffled


def make_answers(
    n_cases: int, arms: tuple[str, ...] = ("clinician", "llm_a"), authors: dict | None = None
) -> tuple[list[str], pl.DataFrame]:
    """Cases c000.. with one answer per arm; ``authors`` maps case -> author of its clinician answer."""
    cases = [f"c{i:03d}" for i in range(n_cases)]
    rows = []
    for case in cases:
        for arm in arms:
            author = (authors or {}).get(case) if arm == "clinician" else None
            rows.append((f"{case}-{arm}", case, arm, author))
    frame = pl.DataFrame(rows, schema=["answer_id", "case_id", "arm_id", "author_id"], orient="row")
    return cases, frame


RATERS = [f"r{i}" for i in range(6)]


@pytest.mark.parametrize(
    ("n_cases", "n_raters", "k"),
    [(40, 6, 3), (41, 6, 3), (7, 6, 2), (10, 4, 4), (1, 3, 1), (50, 7, 3)],
)
def test_every_case_gets_k_distinct_raters_and_loads_differ_by_at_most_one(n_cases, n_raters, k):
    raters = [f"r{i}" for i in range(n_raters)]
    cases, answers = make_answers(n_cases)
    a, p = design_assignments(cases, raters, raters_per_case=k, answers=answers, seed=11)
    per_case = a.group_by("case_id").agg(pl.col("rater_id").n_unique().alias("n"), pl.len())
    assert per_case.height == n_cases
    assert per_case.get_column("n").to_list() == [k] * n_cases
    assert per_case.get_column("len").to_list() == [k] * n_cases
    assert load_spread(a, raters) <= 1
    # Two presentations per assignment, positions 1..2, labels tied to position.
    assert p.height == a.height * 2
    assert set(p.get_column("assignment_id")) == set(a.get_column("assignment_id"))
    assert p.filter(pl.col("position") == 1).get_column("label").unique().to_list() == [
        "Response A"
    ]
    assert p.filter(pl.col("position") == 2).get_column("label").unique().to_list() == [
        "Response B"
    ]
    # Queue positions are 1..load for each rater.
    for _, queue in a.group_by("rater_id"):
        assert sorted(queue.get_column("queue_position")) == list(range(1, queue.height + 1))
    assert a.get_column("seed").unique().to_list() == [11]
    assert a.get_column("algorithm").unique().to_list() == [ALGORITHM]


def test_raters_never_rate_a_case_whose_answer_they_wrote_and_load_stays_balanced():
    # r0 wrote the clinician answer of 15 cases, r3 of 5 more: enough exclusion for a naive
    # greedy design to drift, not enough to force an imbalance.
    authors = {f"c{i:03d}": "r0" for i in range(15)} | {f"c{i:03d}": "r3" for i in range(15, 20)}
    cases, answers = make_answers(41, authors=authors)
    a, _ = design_assignments(cases, RATERS, raters_per_case=3, answers=answers, seed=5)
    pairs = set(a.select("case_id", "rater_id").iter_rows())
    assert not {(c, r) for c, r in authors.items()} & pairs
    assert load_spread(a, RATERS) <= 1


def test_when_exclusions_force_imbalance_the_excluded_rater_gets_all_it_can():
    # r0 wrote an answer in 35 of 41 cases, so it can rate at most 6; the others share the rest.
    authors = {f"c{i:03d}": "r0" for i in range(35)}
    cases, answers = make_answers(41, authors=authors)
    a, _ = design_assignments(cases, RATERS, raters_per_case=3, answers=answers, seed=2)
    loads = dict(a.group_by("rater_id").agg(pl.len()).iter_rows())
    assert loads["r0"] == 6
    others = [loads[r] for r in RATERS[1:]]
    assert sum(others) == 41 * 3 - 6
    assert max(others) - min(others) <= 1


def test_same_seed_same_design_and_input_order_does_not_matter():
    cases, answers = make_answers(30)
    a1, p1 = design_assignments(cases, RATERS, raters_per_case=3, answers=answers, seed=42)
    a2, p2 = design_assignments(
        list(reversed(cases)), RATERS, raters_per_case=3, answers=answers.reverse(), seed=42
    )
    assert a1.equals(a2)
    assert p1.equals(p2)
    a3, p3 = design_assignments(cases, RATERS, raters_per_case=3, answers=answers, seed=43)
    assert not (a1.equals(a3) and p1.equals(p3))


def test_seeded_random_is_replayable_from_random_only():
    # The first draw of random.Random(2026).random() is fixed by CPython's documented guarantee
    # that random() sequences are stable across versions for a given seed.
    import random

    assert SeededRandom(2026).random() == random.Random(2026).random()
    assert [SeededRandom(7).below(10) for _ in range(3)] == [SeededRandom(7).below(10)] * 3


def test_llm_answer_position_is_uniform_over_assignments():
    # With two arms, P(LLM shown first) = 1/2 under a uniform shuffle. Exact two-sided binomial
    # test (scipy.stats.binomtest) at alpha = 0.001 over 600 assignments; seeded, so it cannot flake.
    cases, answers = make_answers(200)
    a, p = design_assignments(cases, RATERS, raters_per_case=3, answers=answers, seed=2026)
    first = p.filter(pl.col("position") == 1)
    n_llm_first = first.filter(pl.col("arm_id") == "llm_a").height
    assert first.height == a.height == 600
    assert binomtest(n_llm_first, first.height, 0.5, alternative="two-sided").pvalue > 0.001
    # Not trivially alternating or fixed either: both orders occur often.
    assert 200 < n_llm_first < 400


def test_three_arms_all_six_orders_roughly_equally_often():
    # Chi-square goodness of fit of the 3! orders against uniform (scipy.stats.chisquare),
    # 900 assignments, alpha = 0.001.
    arms = ("clinician", "llm_a", "llm_b")
    cases, answers = make_answers(300, arms=arms)
    _, p = design_assignments(cases, RATERS, raters_per_case=3, answers=answers, seed=9)
    orders = (
        p.sort("assignment_id", "position")
        .group_by("assignment_id", maintain_order=True)
        .agg(pl.col("arm_id").str.join(","))
        .get_column("arm_id")
        .value_counts()
    )
    observed = dict(orders.iter_rows())
    counts = [observed.get(",".join(perm), 0) for perm in itertools.permutations(arms)]
    assert sum(counts) == 900
    assert chisquare(counts).pvalue > 0.001


def test_queue_order_is_shuffled_per_rater():
    cases, answers = make_answers(60)
    a, _ = design_assignments(cases, RATERS, raters_per_case=3, answers=answers, seed=3)
    for _, queue in a.group_by("rater_id"):
        in_queue = queue.sort("queue_position").get_column("case_id").to_list()
        assert in_queue != sorted(in_queue)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"raters_per_case": 7}, "needs 7 raters but only 6 are eligible"),
        ({"raters_per_case": 0}, "at least one rater"),
        ({"raters_per_case": 2.0}, "whole number"),
        ({"raters_per_case": 3, "seed": "x"}, "seed must be a whole number"),
        ({"raters_per_case": 3, "raters": ["r1", "r1", "r2", "r3"]}, "repeated: r1"),
        ({"raters_per_case": 3, "cases": []}, "no cases"),
    ],
)
def test_bad_requests_raise_study_error_with_a_reason(kwargs, message):
    cases, answers = make_answers(4)
    args = {"cases": cases, "raters": RATERS, "answers": answers, "seed": 1} | kwargs
    with pytest.raises(StudyError, match=message):
        design_assignments(args.pop("cases"), args.pop("raters"), **args)


def test_infeasible_when_authors_leave_too_few_eligible_raters():
    # Two raters wrote answers to c001; with 5 raters and 4 per case only 3 remain.
    cases, answers = make_answers(3)
    answers = answers.with_columns(
        pl.when(pl.col("answer_id") == "c001-clinician")
        .then(pl.lit("r0"))
        .when(pl.col("answer_id") == "c001-llm_a")
        .then(pl.lit("r1"))
        .otherwise(pl.col("author_id"))
        .alias("author_id")
    )
    with pytest.raises(StudyError, match=r"case 'c001' needs 4 raters but only 3 .*r0, r1 wrote"):
        design_assignments(cases, RATERS[:5], raters_per_case=4, answers=answers, seed=1)


def test_case_without_answers_and_unknown_case_are_rejected():
    cases, answers = make_answers(3)
    with pytest.raises(StudyError, match="case 'c999' has no answers"):
        design_assignments([*cases, "c999"], RATERS, raters_per_case=2, answers=answers, seed=1)
    with pytest.raises(StudyError, match="not in the study: c002"):
        design_assignments(cases[:2], RATERS, raters_per_case=2, answers=answers, seed=1)


def test_specialty_match_is_preferred_among_equal_loads():
    # 6 cardiology cases, 2 raters per case, 6 raters of whom 2 are cardiologists: balance allows
    # 2 cases each, and the cardiologists should be among the chosen raters early.
    cases, answers = make_answers(6)
    spec = dict.fromkeys(cases, "cardiology")
    rspec = {"r0": "cardiology", "r1": "cardiology"} | {r: "neurology" for r in RATERS[2:]}
    a, _ = design_assignments(
        cases,
        RATERS,
        raters_per_case=2,
        answers=answers,
        seed=1,
        rater_specialty=rspec,
        case_specialty=spec,
    )
    assert load_spread(a, RATERS) == 0
    first_case = a.filter(pl.col("case_id") == "c000").get_column("rater_id").to_list()
    assert set(first_case) == {"r0", "r1"}


@pytest.mark.parametrize(
    ("position", "label"),
    [
        (1, "Response A"),
        (2, "Response B"),
        (26, "Response Z"),
        (27, "Response AA"),
        (53, "Response BA"),
    ],
)
def test_neutral_label(position, label):
    assert neutral_label(position) == label


def test_neutral_labels_and_shuffle_keep_every_item():
    assert neutral_labels(3) == ["Response A", "Response B", "Response C"]
    items = list(range(10))
    out = shuffled(items, SeededRandom(1))
    assert sorted(out) == items and items == list(range(10))
    with pytest.raises(StudyError):
        neutral_label(0)


def test_leak_report_flags_self_identification_markdown_and_signatures():
    answers = pl.DataFrame(
        {
            "arm_id": ["llm", "llm", "clin", "clin"],
            "text": [
                "As an AI language model, I can't examine you.\n\n- Rest\n- Fluids",
                "**Key points**: drink water.",
                "Take paracetamol and rest.\nDr Smith",
                "Usually viral; see your GP if it lasts more than 3 weeks.",
            ],
        }
    )
    report = leak_report(answers)
    rows = {r["arm_id"]: r for r in report.iter_rows(named=True)}
    assert rows["llm"]["share_self_identifying"] == 0.5
    assert rows["llm"]["share_markdown"] == 1.0
    assert rows["clin"]["share_markdown"] == 0.0
    assert rows["clin"]["share_signature"] == 0.5
    assert rows["llm"]["share_signature"] == 0.0
    assert rows["clin"]["n_answers"] == 2
    assert rows["clin"]["mean_words"] == pytest.approx((6 + 12) / 2)


# --- designs that balance what a rater sees (modes, arm x position, constraints, replay) -------


def _position_spread(a: pl.DataFrame, p: pl.DataFrame) -> int:
    """The largest, over raters and arms, of (most - least) times the arm stood in a position."""
    counts = design_summary(a, p)["arm_positions"]
    full = (
        counts.select("rater_id", "arm_id")
        .unique()
        .join(counts.select("position").unique(), how="cross")
        .join(counts, on=["rater_id", "arm_id", "position"], how="left")
        .with_columns(pl.col("shown").fill_null(0))
    )
    spread = full.group_by("rater_id", "arm_id").agg(
        (pl.col("shown").max() - pl.col("shown").min()).alias("d")
    )
    return int(spread.get_column("d").max())


@pytest.mark.parametrize(
    ("arms", "n_cases", "seed"),
    [
        (("clinician", "llm_a"), 40, 1),
        (("clinician", "llm_a"), 41, 2),
        (("clinician", "llm_a", "llm_b"), 50, 3),
        (("clinician", "llm_a", "llm_b", "llm_c"), 37, 4),
    ],
)
def test_each_rater_sees_each_arm_equally_often_in_each_position(arms, n_cases, seed):
    cases, answers = make_answers(n_cases, arms=arms)
    a, p = design_assignments(cases, RATERS, raters_per_case=3, answers=answers, seed=seed)
    assert _position_spread(a, p) <= 1
    # and not by a fixed order: several orders occur for every rater
    orders = (
        p.sort("assignment_id", "position")
        .join(a.select("assignment_id", "rater_id"), on="assignment_id")
        .group_by("rater_id", "assignment_id")
        .agg(pl.col("arm_id").str.join(","))
        .group_by("rater_id")
        .agg(pl.col("arm_id").n_unique().alias("orders"))
    )
    assert orders.get_column("orders").min() >= min(len(arms), 2)


def test_an_allocation_replays_exactly_from_its_seed_and_changes_with_it():
    cases, answers = make_answers(30, arms=("clinician", "llm_a", "llm_b"))
    first = design_assignments(cases, RATERS, raters_per_case=2, answers=answers, seed=99)
    again = design_assignments(cases, RATERS, raters_per_case=2, answers=answers, seed=99)
    other = design_assignments(cases, RATERS, raters_per_case=2, answers=answers, seed=100)
    assert first[0].equals(again[0]) and first[1].equals(again[1])
    assert not first[1].equals(other[1])


def test_separate_mode_shows_one_answer_per_screen_and_never_two_of_a_case_to_one_rater():
    cases, answers = make_answers(24)
    raters = [f"r{i}" for i in range(8)]
    a, p = design_assignments(
        cases, raters, raters_per_case=2, answers=answers, seed=5, mode="separate"
    )
    assert p.height == a.height == 24 * 2 * 2  # every answer to two raters, one per screen
    assert p.get_column("position").unique().to_list() == [1]
    assert a.select("case_id", "rater_id").is_unique().all()
    per_answer = p.group_by("answer_id").agg(pl.len().alias("n"))
    assert per_answer.get_column("n").unique().to_list() == [2]
    assert load_spread(a, raters) <= 1
    arms_seen = (
        p.join(a.select("assignment_id", "rater_id"), on="assignment_id")
        .group_by("rater_id", "arm_id")
        .agg(pl.len().alias("n"))
        .group_by("rater_id")
        .agg((pl.col("n").max() - pl.col("n").min()).alias("d"))
    )
    assert arms_seen.get_column("d").max() <= 1


def test_pairwise_mode_deals_every_pair_of_three_arms_equally_often():
    arms = ("clinician", "llm_a", "llm_b")
    cases, answers = make_answers(30, arms=arms)
    a, p = design_assignments(
        cases, RATERS, raters_per_case=3, answers=answers, seed=8, mode="pairwise"
    )
    assert p.height == a.height * 2
    pairs = (
        p.group_by("assignment_id")
        .agg(pl.col("arm_id").sort().str.join("+").alias("pair"))
        .get_column("pair")
        .value_counts()
    )
    # 30 cases x 3 raters, each case's three pairs dealt once each: 30 of every pair
    assert dict(pairs.iter_rows()) == {
        "clinician+llm_a": 30,
        "clinician+llm_b": 30,
        "llm_a+llm_b": 30,
    }


def test_pairwise_mode_refuses_a_case_with_one_answer():
    cases, answers = make_answers(3)
    answers = answers.filter(~((pl.col("case_id") == "c001") & (pl.col("arm_id") == "llm_a")))
    with pytest.raises(StudyError, match="c001.*one answer; a pairwise screen shows two"):
        design_assignments(
            cases, RATERS, raters_per_case=2, answers=answers, seed=1, mode="pairwise"
        )


def test_specialty_matching_gives_each_case_to_raters_of_its_specialty_only():
    cases, answers = make_answers(12)
    case_specialty = {c: ("cardiology" if i % 2 else "neurology") for i, c in enumerate(cases)}
    rater_specialty = {r: ("cardiology" if i < 3 else "neurology") for i, r in enumerate(RATERS)}
    a, _ = design_assignments(
        cases,
        RATERS,
        raters_per_case=2,
        answers=answers,
        seed=3,
        case_specialty=case_specialty,
        rater_specialty=rater_specialty,
        match_specialty=True,
    )
    assert all(
        rater_specialty[r] == case_specialty[c]
        for c, r in a.select("case_id", "rater_id").iter_rows()
    )


def test_an_infeasible_specialty_constraint_is_refused_naming_it():
    cases, answers = make_answers(4)
    with pytest.raises(StudyError, match="only raters of its specialty 'nephrology' may rate it"):
        design_assignments(
            cases,
            RATERS,
            raters_per_case=2,
            answers=answers,
            seed=3,
            case_specialty=dict.fromkeys(cases, "nephrology"),
            rater_specialty={"r0": "nephrology"},
            match_specialty=True,
        )


def test_separate_mode_refuses_a_case_with_more_answers_than_raters_can_cover():
    cases, answers = make_answers(2, arms=("clinician", "llm_a", "llm_b"))
    with pytest.raises(StudyError, match="needs 9 raters but only 6 are eligible"):
        design_assignments(
            cases, RATERS, raters_per_case=3, answers=answers, seed=1, mode="separate"
        )


def test_the_design_summary_counts_loads_cases_positions_and_overlap():
    cases, answers = make_answers(10)
    a, p = design_assignments(cases, RATERS[:3], raters_per_case=2, answers=answers, seed=2)
    summary = design_summary(a, p)
    assert summary["loads"].get_column("assignments").sum() == 20
    assert summary["raters_per_case"].get_column("raters").unique().to_list() == [2]
    assert summary["arm_positions"].get_column("shown").sum() == 40
    # three raters, two per case: every pair shares some cases, and the shares add up to 10
    assert summary["overlap"].get_column("shared_cases").sum() == 10


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
@pytest.mark.parametrize("n_arms", [3, 4])
def test_pairwise_screens_balance_each_arm_over_positions_across_pairs(seed, n_arms):
    # found in review: with three or more arms a rater meets several pairs, and balancing each
    # pair on its own left totals off by two; the pairs are now oriented together
    arms = ("clinician", "llm_a", "llm_b", "llm_c")[:n_arms]
    cases, answers = make_answers(10 * n_arms, arms=arms)
    a, p = design_assignments(
        cases, RATERS[:4], raters_per_case=2, answers=answers, seed=seed, mode="pairwise"
    )
    assert _position_spread(a, p) <= 1


def test_partial_coverage_mixes_two_and_three_answer_screens_and_stays_balanced_for_pairs():
    cases, answers = make_answers(30, arms=("clinician", "llm_a", "llm_b"))
    # every third case lacks llm_b: those screens show a pair, the others all three arms
    answers = answers.filter(
        ~((pl.col("arm_id") == "llm_b") & (pl.col("case_id").str.slice(1).cast(pl.Int64) % 3 == 0))
    )
    a, p = design_assignments(cases, RATERS, raters_per_case=3, answers=answers, seed=5)
    two = p.group_by("assignment_id").agg(pl.len().alias("n")).filter(pl.col("n") == 2)
    pairs_only = p.filter(pl.col("assignment_id").is_in(two.get_column("assignment_id").implode()))
    assert (
        _position_spread(
            a.filter(pl.col("assignment_id").is_in(two["assignment_id"].implode())), pairs_only
        )
        <= 1
    )


def test_a_design_that_fails_on_every_case_says_so_in_one_line_per_reason():
    # 42 cases, each short of raters for the same reason: one line naming the first case, the
    # count of the others and five of them, not 42 lines the coordinator must scroll through
    cases, answers = make_answers(42)
    with pytest.raises(StudyError) as refused:
        design_assignments(
            cases, RATERS, raters_per_case=4, answers=answers, seed=1, mode="separate"
        )
    message = str(refused.value)
    first, *others = sorted(cases)
    assert message == (
        f"Cannot assign raters: case {first!r} needs 8 raters but only 6 are eligible (each of"
        f" its 2 answers needs raters of its own); so do 41 other cases ("
        + ", ".join(repr(c) for c in others[:5])
        + " and 36 more). Add raters or lower raters per case."
    )
