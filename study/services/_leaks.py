"""The pre-launch blinding leak report: how far the study's answers, by their length and
format alone, give away the arm behind them (computed by ``analysis.leakage`` through the
analyses door), kept per set of answers so that the Design screen can redraw it on every
change of a setting.

The design's services (``study.services.design``) check the caller; these functions do the work.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from study.store import Store


def leak_report(store: Store, study: str) -> pl.DataFrame:
    """The blinding leak report of the study's answers, per arm (``design.leak_report``)."""
    from study.services.analyses import leak_report as report

    return _by_answers(
        store,
        study,
        "leak_report",
        lambda: report(
            store.read("SELECT arm_id, text FROM answers WHERE study = $s", {"s": study})
        ),
    )


def leak_pairs(store: Store, study: str) -> pl.DataFrame:
    """How well length and format tell each pair of arms apart (``design.leak_pairs``)."""
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
