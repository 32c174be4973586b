"""Inter-rater agreement for one item: every statistic at once (``agreement_table``), the
test-retest variant (``intra_rater_agreement``), and the door to each statistic on its own.

The statistics live by family, each module citing its sources: ``analysis.krippendorff_alpha``
(Krippendorff's alpha), ``analysis.kappa`` (percent agreement, Fleiss', Cohen's and Randolph's
kappa, Gwet's AC1/AC2) and ``analysis.icc`` (the six Shrout & Fleiss ICCs); what they share is in
``analysis._agreement_common``. Their public names are importable from here too, which is where
the services, the CLI and the tests import them from.

Every public function takes a long polars frame, one row per rating, with the unit, rater and value
columns named by keyword (``unit``, ``rater``, ``value``). Units rated by only some raters are
normal: a missing rating is simply an absent row (or a null value). Each function returns a tidy
polars frame, one row per estimate, with the columns of ``RESULT_SCHEMA`` (names from
``analysis.columns``). A statistic that does not apply to the data comes back as a row with
``applicable=False``, a null estimate and the reason in ``note``; nothing is dropped silently.

Hypotheses, for the rows that carry a p-value:

- Fleiss' kappa, Cohen's kappa, Gwet's AC1/AC2, Randolph's kappa: H0 coefficient = 0 (agreement no
  better than chance, as each coefficient defines chance) vs H1 coefficient != 0 (two-sided).
- ICC: H0 ICC = 0 vs H1 ICC > 0 (one-sided F test of Shrout & Fleiss 1979).
- Krippendorff's alpha and percent agreement have no p-value; alpha has a bootstrap interval and,
  in ``note``, the bootstrap probabilities that alpha lies below Krippendorff's 0.667 and 0.800.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from analysis import columns as C
from analysis._agreement_common import (
    LOW_PREVALENCE_SHARE,
    RESULT_SCHEMA,
    agreement_frame,
    read_at_level,
)
from analysis._common import check_ci, join_notes, not_applicable, require_columns
from analysis._pivot import check_level
from analysis._random import Seed
from analysis.errors import AnalysisError
from analysis.icc import EXACT_BLOCK_RATERS, ICC_NOMINAL, icc, icc_not_applicable, icc_rows
from analysis.kappa import (
    Weights,
    ac_row,
    cohen_frame,
    cohen_kappa,
    fleiss_kappa,
    fleiss_row,
    gwet_ac1,
    gwet_ac2,
    percent_agreement,
    percent_row,
    randolph_kappa,
    randolph_row,
)
from analysis.krippendorff_alpha import (
    alpha_from_pattern_counts,
    alpha_rows,
    krippendorff_alpha,
    unit_bootstrap_counts,
    value_patterns,
)

__all__ = [
    "EXACT_BLOCK_RATERS",
    "LOW_PREVALENCE_SHARE",
    "MAX_CATEGORIES_WITHOUT_SCALE",
    "RESULT_SCHEMA",
    "Weights",
    "agreement_table",
    "alpha_from_pattern_counts",
    "cohen_kappa",
    "fleiss_kappa",
    "gwet_ac1",
    "gwet_ac2",
    "icc",
    "intra_rater_agreement",
    "krippendorff_alpha",
    "percent_agreement",
    "randolph_kappa",
    "unit_bootstrap_counts",
    "value_patterns",
]

MAX_CATEGORIES_WITHOUT_SCALE = 20
"""At interval/ratio level, more distinct values than this (and no scale) means continuous data,
for which the categorical statistics do not apply."""


def _stack(parts: list[dict[str, Any] | pl.DataFrame]) -> pl.DataFrame:
    """Result rows and result frames, in order, as one frame."""
    frames: list[pl.DataFrame] = []
    pending: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, pl.DataFrame):
            if pending:
                frames.append(agreement_frame(pending))
                pending = []
            frames.append(part)
        else:
            pending.append(part)
    if pending or not frames:
        frames.append(agreement_frame(pending))
    return pl.concat(frames, how="vertical") if len(frames) > 1 else frames[0]


def agreement_table(
    df: pl.DataFrame,
    *,
    unit: str = C.UNIT,
    rater: str = C.RATER,
    value: str = C.VALUE,
    level: str,
    scale: Sequence[Any] | None = None,
    boot: int = 1000,
    ci: float = 0.95,
    seed: Seed = None,
) -> pl.DataFrame:
    """Every agreement statistic for one item, with not-applicable rows saying why.

    Rows, in order: Krippendorff's alpha at ``level`` (unit bootstrap, ``boot`` replicates,
    ``seed``); percent agreement; Fleiss' kappa; Randolph's free-marginal kappa; Gwet's AC1;
    Gwet's AC2 linear and quadratic; Cohen's kappa unweighted, linear and quadratic for each rater
    pair; the six ICCs. What applies depends on ``level``:

    - nominal: no weighted statistic (categories are unordered) and no ICC;
    - ordinal: all (ICC treats the ordered codes as numbers, which ``note`` says);
    - interval / ratio: all, but the categorical ones only if the values are categories (a
      declared ``scale`` or at most ``MAX_CATEGORIES_WITHOUT_SCALE`` distinct values).

    ``scale`` lists the possible categories, lowest to highest: weighted kappa, AC2 and the q of
    AC1 and Randolph then span the full scale, not only what was observed. The ``level`` column
    repeats ``level`` on every row. Raises ``AnalysisError`` for bad input (see ``read_ratings``).
    """
    check_level(level)
    ci = check_ci(ci)
    rat = read_at_level(df, unit=unit, rater=rater, value=value, level=level, scale=scale)
    rows: list[dict[str, Any] | pl.DataFrame] = list(
        alpha_rows(rat, level=level, boot=boot, ci=ci, seed=seed, bootstrap="units")
    )
    categorical_reason = None
    continuous = rat.n_categories > MAX_CATEGORIES_WITHOUT_SCALE and not rat.scale_given
    if level in ("interval", "ratio") and continuous:
        categorical_reason = (
            f"the {level} values look continuous ({rat.n_categories} distinct values): "
            "kappa-type statistics need categories; declare the scale (scale=[...], --scale in "
            "the CLI) if they are categories"
        )
    categorical = [
        ("percent_agreement", None),
        ("fleiss_kappa", None),
        ("randolph_kappa", None),
        ("gwet_ac1", None),
        ("gwet_ac2", "linear"),
        ("gwet_ac2", "quadratic"),
        ("cohen_kappa", "unweighted"),
        ("cohen_kappa", "linear"),
        ("cohen_kappa", "quadratic"),
    ]
    for stat, variant in categorical:
        na_fields = {C.VARIANT: variant, C.CI_LEVEL: ci, C.N_RATERS: rat.n_raters}
        if categorical_reason:
            rows.append(not_applicable(stat, reason=categorical_reason, **na_fields))
        elif variant in ("linear", "quadratic") and level == "nominal":
            rows.append(
                not_applicable(
                    stat,
                    reason=f"{variant} weights need ordered categories; the item is nominal",
                    **na_fields,
                )
            )
        elif stat == "percent_agreement":
            rows.append(percent_row(rat, ci))
        elif stat == "fleiss_kappa":
            rows.append(fleiss_row(rat, ci))
        elif stat == "randolph_kappa":
            rows.append(randolph_row(rat, ci))
        elif stat in ("gwet_ac1", "gwet_ac2"):
            rows.append(ac_row(rat, ci, variant or "unweighted"))
        else:  # the pair tables are built once (cached on rat) for the three weightings
            rows.append(cohen_frame(rat, variant or "unweighted", ci))
    if level == "nominal":
        rows.extend(icc_not_applicable(ICC_NOMINAL, ci))
    elif not rat.numeric:
        rows.extend(
            icc_not_applicable("the ordinal categories are text; the ICC needs numeric ratings", ci)
        )
    else:
        forms = icc_rows(rat, ci)
        if level == "ordinal":
            for row in forms:
                row[C.NOTE] = join_notes(
                    [row.get(C.NOTE), "treats the ordinal codes as interval numbers"]
                )
        rows.extend(forms)
    return _stack(rows).with_columns(pl.lit(level, dtype=pl.String).alias(C.LEVEL))


FIRST, REPEAT = "live", "repeat"
"""The two occasions of a test-retest pair, as a Clinval export's ``phase`` column names them."""


def intra_rater_agreement(
    df: pl.DataFrame,
    *,
    unit: str = C.ANSWER,
    rater: str = C.RATER,
    value: str = C.VALUE,
    phase: str = C.PHASE,
    level: str,
    scale: Sequence[Any] | None = None,
    boot: int = 1000,
    ci: float = 0.95,
    seed: Seed = None,
) -> pl.DataFrame:
    """Intra-rater (test-retest) agreement for one item: each rater's first rating of a unit
    against their repeat of it after a washout, pooled over raters.

    ``df``: long ratings of one item with a ``phase`` column, "live" for the first rating and
    "repeat" for the second (other phases and rows without a pair are left out). Each (rater,
    unit) with both ratings is one unit of ``agreement_table``, and the two occasions play the
    two "raters" (``rater_a`` "live", ``rater_b`` "repeat" in Cohen's kappa rows), so every
    statistic there reads as the agreement of a rater with themselves: Krippendorff's alpha at
    ``level`` (bootstrap over the pairs), Cohen's kappa, the ICCs, and so on. Columns:
    ``agreement_table``'s, then ``raters_pooled`` (raters with at least one pair). ``n_units``
    counts pairs. Raises ``AnalysisError`` for a missing column or fewer than one pair.
    """
    require_columns(df, (unit, rater, value, phase))
    both = (
        df.filter(pl.col(phase).is_in([FIRST, REPEAT]) & pl.col(value).is_not_null())
        .group_by(rater, unit)
        .agg(pl.col(phase).n_unique().alias("_occasions"), pl.len().alias("_n"))
    )
    twice = both.filter(pl.col("_n") > pl.col("_occasions"))
    if twice.height:
        who, what = twice.row(0)[:2]
        raise AnalysisError(
            f"rater '{who}' has more than one {FIRST} or {REPEAT} rating of unit '{what}'"
        )
    paired = both.filter(pl.col("_occasions") == 2).select(rater, unit)
    if paired.is_empty():
        raise AnalysisError(
            f"no rater rated a unit both in phase '{FIRST}' and in phase '{REPEAT}': "
            "intra-rater agreement needs repeats"
        )
    pairs = (
        df.join(paired, on=[rater, unit], how="semi")
        .filter(pl.col(phase).is_in([FIRST, REPEAT]))
        .select(
            pl.concat_str([pl.col(rater).cast(pl.String), pl.col(unit).cast(pl.String)],
                          separator="\x1f").alias("_pair"),
            pl.col(phase).alias("_occasion"),
            pl.col(value),
        )
    )  # fmt: skip
    table = agreement_table(
        pairs,
        unit="_pair",
        rater="_occasion",
        value=value,
        level=level,
        scale=scale,
        boot=boot,
        ci=ci,
        seed=seed,
    )
    return table.with_columns(
        pl.lit(paired.get_column(rater).n_unique(), dtype=pl.Int64).alias("raters_pooled")
    )
