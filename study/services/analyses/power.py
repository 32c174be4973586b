"""Planning: the power of a design for its primary non-inferiority comparison."""

from __future__ import annotations

from typing import Any

from analysis.errors import AnalysisError
from study.access import Caller, guarded
from study.errors import Problem, ValidationError
from study.services._common import require_study
from study.store import Store

POWER_TARGETS = (0.8, 0.9)
"""The powers a design is planned for; ``design_power`` says how many cases reach each."""


@guarded
def design_power(
    store: Store,
    caller: Caller,
    study: str,
    *,
    margin: float,
    sd: float,
    icc: float,
    raters_per_case: int,
    alpha: float = 0.025,
    direction: str = "higher",
    expected_difference: float = 0.0,
    cases: int | None = None,
) -> dict[str, Any]:
    """The power of the study's design for its primary non-inferiority comparison, and the
    cases that reach each of ``POWER_TARGETS`` (``analysis.power``: paired by case, design
    effect 1 + (m - 1) ICC, normal approximation; Chow, Shao & Wang 2008, sec. 3.1).

    H0: delta <= -margin (``direction="higher"``; delta >= margin for ``"lower"``), one-sided
    ``alpha``. ``sd``: SD of one rater's paired difference (test - reference) on a case, in
    rating units; ``icc``: intraclass correlation of those differences among the raters of a
    case; ``expected_difference``: the true difference assumed. ``cases``: the live cases of the
    design (default: every case of the study).

    Returns a dict: cases (int), power (of ``cases`` cases, in [0, 1]; None for a study without
    cases), targets: [{power, cases, raters_per_case, achieved_power}] for 0.8 and 0.9, and the
    inputs (margin, sd, icc, raters_per_case, alpha, direction, expected_difference) and method
    repeated. A design that can never show non-inferiority (an expected difference beyond the
    margin), or an input out of range, is a ``ValidationError`` naming it.
    """
    from analysis.power import noninferiority_power, noninferiority_sample_size

    if cases is None:
        cur = store.cursor()
        try:
            require_study(cur, study)
            cases = cur.execute("SELECT count(*) FROM cases WHERE study = ?", [study]).fetchall()[
                0
            ][0]
        finally:
            cur.close()
    design = {
        "margin": float(margin),
        "expected_difference": float(expected_difference),
        "sd": float(sd),
        "icc": float(icc),
        "raters_per_case": int(raters_per_case),
        "alpha": float(alpha),
        "direction": direction,
    }
    try:
        power = noninferiority_power(cases=int(cases), **design) if cases else None
        targets = [noninferiority_sample_size(power=target, **design) for target in POWER_TARGETS]
    except AnalysisError as exc:
        raise ValidationError([Problem("plan", None, None, str(exc))]) from None
    return {
        "cases": int(cases),
        "power": power,
        "targets": [
            {
                "power": target,
                "cases": size.cases,
                "raters_per_case": size.raters_per_case,
                "achieved_power": size.achieved_power,
            }
            for target, size in zip(POWER_TARGETS, targets, strict=True)
        ],
        **design,
        "method": targets[0].method,
    }
