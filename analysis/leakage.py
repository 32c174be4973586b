"""Leak statistics: whether an answer's surface gives its source away, per arm and pair by pair.

Blinding promises that raters cannot tell which arm wrote an answer; the labels and order hide the
arm, but an answer's own form may not (length, markdown, "As an AI", a clinician's sign-off).
Before launch the coordinator reads :func:`leak_report`, per arm: those surface features, and how
well length and format alone tell the arm from the others (:func:`format_auc`, a cross-validated
AUC of a ridge logistic regression), with a warning above :data:`AUC_WARNING`;
:func:`pairwise_format_auc` takes each pair of arms alone on the cases both answered.

Input: one row per answer, with its arm and text (and its case for the pairs). Pure: no DuckDB,
no streamlit, nothing of ``study``. Raters' own guesses of the source are
``analysis.blinding``'s (Bang's and James' indices).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence

import numpy as np
import polars as pl

from analysis._common import require_columns

# Phrases by which an answer gives its source away. Lower-case regular expressions.
SELF_IDENTIFYING = (
    r"\bas an ai\b",
    r"\blanguage model\b",
    r"\bi am an ai\b",
    r"\bi'm an ai\b",
    r"\bi am not a (?:doctor|physician|medical professional)\b",
    r"\bi'm not a (?:doctor|physician|medical professional)\b",
    r"\bchatgpt\b|\bgpt-\d|\bclaude\b|\bgemini\b|\bllama\b|\bbard\b",
    r"\bchatbot\b|\bconversational ai\b",
    # the disclaimers of models prompted as experts (K-QA's GPT-3.5 and GPT-4 answers open so)
    r"\bas a medical expert\b",
    r"\bi(?: cannot| can't| can not| am unable to| am not able to|'m unable to|'m not able to) "
    r"(?:provide|give|offer) (?:you )?(?:with )?(?:personali[sz]ed |individual |specific )?"
    r"medical advice\b",
)
_SELF_RE = re.compile("|".join(SELF_IDENTIFYING), re.IGNORECASE)
_MARKDOWN_RE = re.compile(r"(^|\n)\s*(?:#{1,6}\s|[-*+]\s|\d+\.\s)|\*\*[^*]+\*\*|__[^_]+__")
# A sign-off as the last line: "-- Dr Smith", "Best wishes, J.", "Kind regards", "J. Smith, MD".
_SIGNATURE_RE = re.compile(
    r"^(?:(?:--|\u2014)\s*\S.*|(?:best|kind|warm)\s+(?:wishes|regards)\b.*|regards\b.*"
    r"|dr\.?\s+[a-z][\w.\- ]*|[\w.\- ]+,\s*(?:md|do|rn|np|pa-c|mbbs|mrcp|frcp)\.?)$",
    re.IGNORECASE,
)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def leak_report(answers: pl.DataFrame, *, arm: str = "arm_id", text: str = "text") -> pl.DataFrame:
    """Surface features per arm that could unblind raters, for the coordinator to read pre-launch.

    Parameters
    ----------
    answers : one row per answer with at least the columns ``arm`` and ``text``.

    Returns
    -------
    One row per arm, sorted by arm: ``arm_id`` (named after ``arm``), ``n_answers``,
    ``mean_words``, ``median_words``, ``p25_words`` and ``p75_words`` (whitespace-separated
    tokens), ``share_markdown`` (share of answers with headings, bullet or numbered lists, or
    bold), ``share_self_identifying`` (share matching :data:`SELF_IDENTIFYING`, e.g. "As an AI"),
    ``share_signature`` (share whose last line looks like a sign-off), ``format_auc`` (how well
    length and format alone tell this arm from the others: see :func:`format_auc`; null with one
    arm) and ``warning`` (true when ``format_auc`` exceeds :data:`AUC_WARNING`). Shares are in
    [0, 1]. A large gap between arms on any column is a blinding risk: normalise formatting or
    strip signatures before launch.
    """
    require_columns(answers, (arm, text))
    texts = answers.get_column(text).fill_null("").to_list()
    features = pl.DataFrame(
        {
            arm: answers.get_column(arm),
            "words": [len(t.split()) for t in texts],
            "markdown": [bool(_MARKDOWN_RE.search(t)) for t in texts],
            "self_identifying": [bool(_SELF_RE.search(t)) for t in texts],
            "signature": [bool(_SIGNATURE_RE.match(_last_line(t))) for t in texts],
        },
        schema_overrides={"words": pl.Int64},
    )
    return (
        features.group_by(arm)
        .agg(
            pl.len().cast(pl.Int64).alias("n_answers"),
            pl.col("words").mean().alias("mean_words"),
            pl.col("words").median().alias("median_words"),
            pl.col("words").quantile(0.25, interpolation="linear").alias("p25_words"),
            pl.col("words").quantile(0.75, interpolation="linear").alias("p75_words"),
            pl.col("markdown").mean().alias("share_markdown"),
            pl.col("self_identifying").mean().alias("share_self_identifying"),
            pl.col("signature").mean().alias("share_signature"),
        )
        .sort(arm)
        .join(format_auc(answers, arm=arm, text=text), on=arm, how="left")
        .with_columns((pl.col("format_auc") > AUC_WARNING).fill_null(False).alias("warning"))
    )


AUC_WARNING = 0.7
"""Above this cross-validated AUC, length and format alone tell an arm apart: warn before launch."""


def format_features(texts: Sequence[str]) -> np.ndarray:
    """Length and format of each text, shape (n_texts, 8): log words, log characters, lines,
    bullet or numbered list items, headings, bold spans, mean words per sentence, links."""
    rows = []
    for t in texts:
        words = len(t.split())
        sentences = max(1, len(re.findall(r"[.!?](?:\s|$)", t)))
        rows.append(
            [
                math.log1p(words),
                math.log1p(len(t)),
                t.count("\n") + 1,
                len(re.findall(r"(?m)^\s*(?:[-*+]|\d+\.)\s", t)),
                len(re.findall(r"(?m)^\s*#{1,6}\s", t)),
                len(re.findall(r"\*\*[^*]+\*\*|__[^_]+__", t)),
                words / sentences,
                len(re.findall(r"https?://|\]\(", t)),
            ]
        )
    return np.asarray(rows, dtype=float).reshape(len(rows), 8)


def auc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Area under the ROC curve: the probability that a random positive scores above a random
    negative, ties counting one half (the Mann-Whitney U statistic over n_pos * n_neg).

    >>> auc([0.9, 0.8, 0.3, 0.1], [True, False, True, False])
    0.75
    """
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    from scipy.stats import rankdata

    ranks = rankdata(s, method="average")  # ties share their mean rank
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _ridge_logistic(x: np.ndarray, y: np.ndarray, penalty: float = 1.0) -> np.ndarray:
    """Coefficients (intercept first) of a logistic regression with an L2 penalty on the slopes:
    the penalty keeps the fit finite when length alone separates the arms perfectly."""
    from scipy.optimize import minimize

    design = np.column_stack([np.ones(len(x)), x])

    def loss(beta: np.ndarray) -> tuple[float, np.ndarray]:
        eta = design @ beta
        value = np.sum(np.logaddexp(0, eta) - y * eta) + penalty / 2 * beta[1:] @ beta[1:]
        grad = design.T @ (1 / (1 + np.exp(-eta)) - y)
        grad[1:] += penalty * beta[1:]
        return float(value), grad

    return minimize(loss, np.zeros(design.shape[1]), jac=True, method="L-BFGS-B").x


def _stratified_folds(y: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold (0..k-1) of each answer, shape (n,): each class (``y`` true, then false) in a random
    order dealt round the folds. The order is a Fisher-Yates shuffle on
    ``random.Random(seed).random()``, whose sequence Python keeps the same in every version, so a
    figure the coordinator read before launch is the one the report shows later."""
    rng = random.Random(seed)
    fold = np.empty(len(y), dtype=int)
    for cls in (True, False):
        members = list(np.flatnonzero(y == cls))
        for i in range(len(members) - 1, 0, -1):
            j = min(int(rng.random() * (i + 1)), i)
            members[i], members[j] = members[j], members[i]
        for position, index in enumerate(members):
            fold[index] = position % k
    return fold


def format_auc(
    answers: pl.DataFrame, *, arm: str = "arm_id", text: str = "text", folds: int = 5, seed: int = 0
) -> pl.DataFrame:
    """How well length and format alone tell each arm from the others: a cross-validated AUC.

    For each arm, a penalised logistic regression on :func:`format_features` (standardised on the
    training folds) predicts "this arm" against "any other arm"; the answers are split into
    ``folds`` stratified folds (fewer when an arm has fewer answers), drawn with ``seed``, and the
    AUC (:func:`auc`) is taken over the out-of-fold predictions, so it measures what a rater
    could learn, not what the model memorised. 0.5: no better than chance; 1: fully separable.

    Returns one row per arm: ``arm`` (named after the argument) and ``format_auc`` (Float64,
    null when the arms cannot be compared: one arm, or an arm with fewer than two answers).
    """
    arms = answers.get_column(arm).cast(pl.String).to_list()
    names = sorted(set(arms))
    features = format_features(answers.get_column(text).fill_null("").to_list())
    result = []
    for name in names:
        y = np.array([a == name for a in arms])
        k = min(folds, int(y.sum()), int((~y).sum()))
        if len(names) < 2 or k < 2:
            result.append(None)
            continue
        fold = _stratified_folds(y, k, seed)
        scores = np.empty(len(y))
        for f in range(k):
            train, test = fold != f, fold == f
            centre = features[train].mean(axis=0)
            scale = features[train].std(axis=0)
            scale[scale == 0] = 1.0
            beta = _ridge_logistic((features[train] - centre) / scale, y[train].astype(float))
            scores[test] = (
                np.column_stack([np.ones(test.sum()), (features[test] - centre) / scale]) @ beta
            )
        result.append(auc(scores, y))
    return pl.DataFrame(
        {arm: names, "format_auc": result}, schema={arm: pl.String, "format_auc": pl.Float64}
    )


def pairwise_format_auc(
    answers: pl.DataFrame,
    *,
    arm: str = "arm_id",
    text: str = "text",
    case: str = "case_id",
    folds: int = 5,
    seed: int = 0,
) -> pl.DataFrame:
    """How well length and format alone tell two arms apart on the cases both answered: the
    comparison a rater faces when their answers to one case are shown together or in turn.

    :func:`format_auc`'s per-arm figure pools every other arm as "the others": with several LLM
    arms answering different cases, an arm that stands out against one of them can look
    unremarkable against the pool. Here each pair of arms is taken alone, on only the cases that
    both answered (so that the questions themselves, which set much of an answer's length, are
    the same on both sides), with :func:`format_auc`'s cross-validated classifier.

    Returns one row per pair of arms with at least one shared case, sorted by ``arm_a`` then
    ``arm_b`` (``arm_a`` < ``arm_b``): ``arm_a``, ``arm_b``, ``shared_cases`` (Int64),
    ``format_auc`` (Float64; how well "arm_a" is told from "arm_b", 0.5 chance, 1 separable;
    null when one side has fewer than two answers there) and ``warning`` (above
    :data:`AUC_WARNING`).
    """
    require_columns(answers, (arm, text, case))
    frame = answers.select(
        pl.col(arm).cast(pl.String).alias("arm"),
        pl.col(case).cast(pl.String).alias("case"),
        pl.col(text).alias("text"),
    )
    cases_of = {
        name: set(group.get_column("case").to_list())
        for (name,), group in frame.group_by("arm", maintain_order=True)
    }
    names = sorted(cases_of)
    rows = []
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            shared = cases_of[first] & cases_of[second]
            if not shared:
                continue
            pair = frame.filter(
                pl.col("arm").is_in([first, second]) & pl.col("case").is_in(sorted(shared))
            )
            found = format_auc(pair, arm="arm", text="text", folds=folds, seed=seed)
            value = found.filter(pl.col("arm") == first).get_column("format_auc").item()
            rows.append((first, second, len(shared), value))
    return pl.DataFrame(
        rows,
        schema={
            "arm_a": pl.String,
            "arm_b": pl.String,
            "shared_cases": pl.Int64,
            "format_auc": pl.Float64,
        },
        orient="row",
    ).with_columns((pl.col("format_auc") > AUC_WARNING).fill_null(False).alias("warning"))
