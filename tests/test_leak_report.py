"""The pre-launch leak report's distinguishability: how well length and format alone tell the
arms apart (``analysis.leakage.format_auc``), with a warning above 0.7."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy.stats import mannwhitneyu

from analysis.leakage import AUC_WARNING, auc, format_auc, leak_report, pairwise_format_auc


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_auc_equals_the_mann_whitney_u_over_the_pairs(seed):
    # Reference: scipy.stats.mannwhitneyu's U for the positives, divided by n_pos * n_neg, is the
    # ROC AUC with ties counted one half (Hanley & McNeil 1982); ties included on purpose.
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 6, size=40).astype(float)
    labels = rng.random(40) < 0.4
    u = mannwhitneyu(scores[labels], scores[~labels], alternative="two-sided").statistic
    assert auc(scores, labels) == pytest.approx(u / (labels.sum() * (~labels).sum()), abs=1e-12)


def _answers(lengths_a, lengths_b, *, markdown_b=False) -> pl.DataFrame:
    rows = []
    for n in lengths_a:
        rows.append(("a", " ".join(["word"] * n) + "."))
    for n in lengths_b:
        body = " ".join(["word"] * n) + "."
        rows.append(("b", f"**Summary**\n- {body}\n- more" if markdown_b else body))
    return pl.DataFrame(rows, schema=["arm_id", "text"], orient="row")


def test_arms_that_differ_in_length_and_format_are_told_apart_and_warned_about():
    rng = np.random.default_rng(0)
    answers = _answers(rng.integers(40, 80, 30), rng.integers(150, 250, 30), markdown_b=True)
    report = leak_report(answers)
    assert report.get_column("format_auc").min() > 0.95
    assert report.get_column("warning").to_list() == [True, True]


def test_arms_drawn_from_one_distribution_stay_near_chance():
    rng = np.random.default_rng(1)
    lengths = rng.integers(40, 200, 120)
    answers = _answers(lengths[:60], lengths[60:])
    aucs = format_auc(answers).get_column("format_auc").to_list()
    assert all(abs(v - 0.5) < 0.2 for v in aucs), aucs
    assert not leak_report(answers).get_column("warning").any()
    assert AUC_WARNING == 0.7


def test_one_arm_or_too_few_answers_give_no_auc():
    assert format_auc(_answers([10, 20, 30], [])).get_column("format_auc").to_list() == [None]
    one_b = format_auc(_answers([10, 20, 30], [40]))
    assert one_b.get_column("format_auc").to_list() == [None, None]


@pytest.mark.parametrize(
    ("text", "identifies"),
    [
        # K-QA's model answers (Manes et al. 2024), as published
        ("As a medical expert, I cannot provide personalized medical advice. However, ...", True),
        ("I am a large language model, also known as a conversational AI or chatbot", True),
        ("As an AI language model, I can't examine you.", True),
        ("I'm not able to give medical advice, but rest helps.", True),
        # K-QA's physicians: advice to see a doctor is no self-identification
        ("Seek medical advice if the rash spreads; consult your healthcare provider.", False),
        ("It is important to consult with a doctor before taking it with Tylenol.", False),
    ],
)
def test_self_identifying_phrases_of_real_answers(text, identifies):
    report = leak_report(pl.DataFrame({"arm_id": ["x"], "text": [text]}))
    assert report.get_column("share_self_identifying").item() == (1.0 if identifies else 0.0)


def test_each_pair_of_arms_is_compared_on_the_cases_both_answered():
    # Three arms as in K-QA: a clinician arm on every case, two LLM arms on different halves.
    # llm_a writes long bulleted answers; llm_b writes like the clinician. Pooled against "the
    # others", llm_a's contrast is diluted by llm_b; pair by pair it is plain, and llm_a and
    # llm_b, who share no case, are never compared.
    rng = np.random.default_rng(2)
    rows = []
    for n in range(40):
        case = f"c{n:02d}"
        rows.append(("clin", case, " ".join(["word"] * int(rng.integers(40, 90))) + "."))
        if n < 20:
            body = " ".join(["word"] * int(rng.integers(150, 250)))
            rows.append(("llm_a", case, f"**Summary**\n- {body}.\n- more"))
        else:
            rows.append(("llm_b", case, " ".join(["word"] * int(rng.integers(40, 90))) + "."))
    answers = pl.DataFrame(rows, schema=["arm_id", "case_id", "text"], orient="row")
    pairs = pairwise_format_auc(answers)
    assert pairs.select("arm_a", "arm_b", "shared_cases").rows() == [
        ("clin", "llm_a", 20),
        ("clin", "llm_b", 20),
    ]
    auc_a, auc_b = pairs.get_column("format_auc").to_list()
    assert auc_a == 1.0  # length and bullets separate clin from llm_a on every shared case
    assert abs(auc_b - 0.5) < 0.25  # clin and llm_b write alike
    assert pairs.get_column("warning").to_list() == [True, False]
    # pooled against llm_a and llm_b together, the clinician arm's contrast is diluted
    pooled = format_auc(answers).filter(pl.col("arm_id") == "clin").get_column("format_auc")
    assert pooled.item() < auc_a - 0.1, pooled.item()
    # the pair's figure is format_auc on the shared cases alone (same folds, same seed)
    shared = answers.filter(pl.col("arm_id").is_in(["clin", "llm_a"]) & (pl.col("case_id") < "c20"))
    alone = format_auc(shared).filter(pl.col("arm_id") == "clin").get_column("format_auc").item()
    assert auc_a == alone
