"""``python -m analysis``: agreement, non-inferiority and preference on any long-format file.

Usage (``--format json`` for machines, ``--format table``, the default, for people)::

    python -m analysis agreement FILE --unit COL --rater COL --value COL \\
        --level nominal|ordinal|interval|ratio [--scale V1,V2,...] [--boot N] [--seed S]
    python -m analysis noninferiority FILE --arm COL --value COL --test ARM --reference ARM \\
        --margin M --outcome continuous|binary --method t|bootstrap|mixed|tost|newcombe|\\
        farrington-manning|miettinen-nurminen [--pair COL] [--case COL] [--rater COL] \\
        [--alpha A] [--direction higher|lower] [--welch]
    python -m analysis preference FILE --a COL --b COL --winner COL [--position COL]
    python -m analysis rubric FILE --unit COL --rater COL --met COL [--case COL --points COL] \\
        [--arm COL] [--tag COL] [--grader RATER] [--boot N] [--seed S]

FILE is CSV (``.csv``, ``.tsv``, anything else) or Parquet (``.parquet``, ``.pq``), one row per
rating (or per comparison for ``preference``). Missing values: an empty cell, ``NA`` (R's
write.csv), ``NaN``, ``nan``, ``null`` and ``NULL`` are read as missing, in CSV cells and in
Parquet text columns; a missing rating is left out, never made a category. JSON output is ``{"results": [...]}``, one object
per estimate with ``statistic``, ``variant``, ``estimate``, ``ci_low``, ``ci_high``, ``ci_level``,
``p_value`` (null where undefined), ``method``, ``applicable``, ``note`` and the parameters used;
NaN and infinities are written as null.

Bad input (missing or unreadable file, missing column, text where numbers are needed, a single
rater, an arm not in the file, a method that does not fit the outcome, ...) prints ONE line on
stderr and exits with code 2; no traceback.

This module holds the commands, the parser and ``main``; ``reading`` reads FILE and ``output``
prints the results.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import polars as pl

from analysis import columns as C
from analysis._common import DIRECTIONS, require_columns
from analysis._pivot import LEVELS
from analysis.cli.output import plain_table, to_json, to_table
from analysis.cli.reading import first_ratings, read_table
from analysis.errors import AnalysisError, first_line
from analysis.terminal import escape

EXIT_BAD_INPUT = 2
CONTINUOUS_METHODS = ("t", "bootstrap", "mixed", "tost")
BINARY_METHODS = ("newcombe", "farrington-manning", "miettinen-nurminen")
MAX_BOOT = 100_000
"""Most bootstrap replicates a command accepts (percentile limits are stable long before)."""
MAX_MESSAGE_CHARS = 300
"""Longest error line printed; the rest is counted ("and N more characters")."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (exit 2) instead of usage + message."""

    def error(self, message: str) -> NoReturn:
        raise AnalysisError(f"{self.prog}: {message} (see --help)")


def require_plain_columns(df: pl.DataFrame, columns: Sequence[str], *, value: str) -> None:
    """Refuse missing columns and columns whose type the statistics cannot use, before any of
    them touches one.

    Every named column must exist (``require_columns``) and hold scalars (no lists, arrays,
    structs or binary); ``value`` must in addition be numeric, boolean or text (a category).
    """
    require_columns(df, columns)
    for column in dict.fromkeys(columns):
        dtype = df.schema[column]
        if dtype.is_nested() or dtype in (pl.Binary, pl.Object):
            raise AnalysisError(
                f"column '{column}' holds {dtype} values; it must hold one number or text per row"
            )
    dtype = df.schema[value]
    if dtype.is_float():
        bad = df.with_row_index("_row", offset=1).filter(
            pl.col(value).is_infinite() | pl.col(value).is_nan()
        )
        if bad.height:
            row, number = bad.row(0)[0], bad.get_column(value)[0]
            more = f" (and {bad.height - 1:,} more)" if bad.height > 1 else ""
            raise AnalysisError(
                f"value column '{value}' holds {number} on row {row}{more}; values must be finite"
            )
    if not (
        dtype.is_numeric()
        or dtype in (pl.Boolean, pl.String, pl.Null)
        or isinstance(dtype, pl.Categorical | pl.Enum)
    ):
        raise AnalysisError(
            f"value column '{value}' holds {dtype} values; it must be numbers or text"
        )


def _boot(text: str) -> int:
    """argparse type of --boot: a whole number in 0..MAX_BOOT."""
    try:
        boot = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got '{text}'") from None
    if not 0 <= boot <= MAX_BOOT:
        raise argparse.ArgumentTypeError(f"must lie in 0..{MAX_BOOT:,}, got {boot:,}")
    return boot


def _numeric(df: pl.DataFrame, column: str, why: str) -> pl.DataFrame:
    """``df`` with ``column`` as Float64, or an error naming the first value that is not a number."""
    series = df[column]
    if series.dtype == pl.Boolean:
        return df.with_columns(pl.col(column).cast(pl.Float64))
    if series.dtype.is_numeric():
        return df
    converted = series.cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)
    bad = series.filter(converted.is_null() & series.is_not_null())
    if bad.len():
        raise AnalysisError(
            f"column '{column}' holds non-numeric values such as '{bad[0]}'; {why} needs numbers"
        )
    return df.with_columns(converted.alias(column))


def _arm_values(df: pl.DataFrame, arm: str) -> list[str]:
    return sorted(v for v in df[arm].cast(pl.String).unique().to_list() if v is not None)


def run_agreement(args: argparse.Namespace, df: pl.DataFrame) -> pl.DataFrame:
    from analysis.agreement import agreement_table

    if args.seed is not None and args.boot == 0:
        raise AnalysisError("--seed has no effect with --boot 0 (no bootstrap); drop one of them")
    require_plain_columns(df, (args.unit, args.rater, args.value), value=args.value)
    if args.level in ("interval", "ratio"):
        df = _numeric(df, args.value, f"level '{args.level}'")
    if getattr(args, "intra", False):
        return _run_intra(args, df)
    raters = df.filter(pl.col(args.value).is_not_null())[args.rater].drop_nulls().unique()
    if raters.len() < 2:
        who = f" ('{raters[0]}')" if raters.len() else ""
        raise AnalysisError(
            f"only {raters.len()} rater{who} in column '{args.rater}'; agreement needs at least two"
        )
    scale = _scale_of(args)
    result = agreement_table(
        df,
        unit=args.unit,
        rater=args.rater,
        value=args.value,
        level=args.level,
        scale=scale,
        boot=args.boot,
        ci=args.ci,
        seed=args.seed,
    )
    return _with_agreement_parameters(result, args)


def _run_intra(args: argparse.Namespace, df: pl.DataFrame) -> pl.DataFrame:
    from analysis.agreement import intra_rater_agreement

    require_plain_columns(df, (C.PHASE,), value=args.value)
    result = intra_rater_agreement(
        df,
        unit=args.unit,
        rater=args.rater,
        value=args.value,
        level=args.level,
        scale=_scale_of(args),
        boot=args.boot,
        ci=args.ci,
        seed=args.seed,
    )
    return _with_agreement_parameters(result, args, intra=True)


def _with_agreement_parameters(
    result: pl.DataFrame, args: argparse.Namespace, **extra: Any
) -> pl.DataFrame:
    """``result`` with the agreement options it was computed with, and ``extra``."""
    return _with_parameters(
        result,
        {
            C.LEVEL: args.level,
            "scale": args.scale,
            "boot": args.boot,
            C.SEED: _used_seed(result, args.seed),
            "unit_column": args.unit,
            "rater_column": args.rater,
            "value_column": args.value,
            **extra,
        },
    )


def _scale_of(args: argparse.Namespace) -> list[str] | None:
    if args.scale is None:
        return None
    scale = [s.strip() for s in args.scale.split(",")]
    if not all(scale):
        raise AnalysisError("--scale needs its categories, lowest first: V1,V2,... (none empty)")
    return scale


def _refuse_ignored(args: argparse.Namespace) -> list[str]:
    """Refuse an option the chosen design and method would ignore, rather than run something
    else than asked; return notes for the few that an older contract accepts silently."""
    given = {name for name in _IGNORABLE if getattr(args, name) is not None}
    if args.one_sample:
        ignored = {"arm", "pair"}
        why = "--one-sample reads one value per rating, already test - reference"
        if args.outcome != "continuous" or args.method == "tost":
            raise AnalysisError(
                "--one-sample is for a continuous value that is already test - reference, with "
                "--method t, bootstrap or mixed"
            )
        if args.welch:
            raise AnalysisError("--welch applies to --method tost only")
    elif args.method in BINARY_METHODS:
        ignored = {"pair", "boot", "seed"}
        why = f"--method {args.method} counts every rating as one trial of its arm"
    else:
        ignored = set()
        why = ""
    refused = sorted(given & ignored)
    if refused:
        options = ", ".join(f"--{name}" for name in refused)
        raise AnalysisError(f"{options} would be ignored: {why}; drop {options}")
    if args.method in ("t", "mixed", "tost") and given & {"boot", "seed"}:
        # accepted since the first CLI (scripts pass one option set to every method): kept,
        # and said to have no effect
        options = " and ".join(f"--{n}" for n in sorted(given & {"boot", "seed"}))
        return [f"{options} have no effect on --method {args.method} (no bootstrap)"]
    return []


_IGNORABLE = ("arm", "pair", "case", "rater", "boot", "seed")
"""Options of ``noninferiority`` whose default is None, so that a given one can be told apart."""


def run_noninferiority(args: argparse.Namespace, df: pl.DataFrame) -> pl.DataFrame:
    from analysis import noninferiority as ni

    args = argparse.Namespace(**vars(args))  # defaults are filled in below; --by calls again
    notes = _refuse_ignored(args)
    if args.one_sample:
        return _with_notes(_run_one_sample(args, df), notes)
    if args.test is None or args.reference is None:
        raise AnalysisError(
            "--test and --reference are required (or --one-sample for a value that is already "
            "test - reference)"
        )
    args.arm = args.arm or C.ARM
    if args.method == "tost" and args.pair is None and args.case is not None:
        # --case names the cases that pair the arms: TOST then compares within them, as asked
        args.pair = args.case
    args.case = args.case or C.CASE
    args.rater = args.rater or C.RATER
    args.boot = 2000 if args.boot is None else args.boot
    allowed = CONTINUOUS_METHODS if args.outcome == "continuous" else BINARY_METHODS
    if args.method not in allowed:
        raise AnalysisError(
            f"method '{args.method}' does not fit a {args.outcome} outcome; use one of: "
            + ", ".join(allowed)
        )
    if args.welch and args.method != "tost":
        raise AnalysisError("--welch applies to --method tost only")
    used = [args.arm, args.value]
    if args.method in ("t", "bootstrap", "mixed"):
        used += [args.pair or args.case] + ([args.rater] if args.method != "t" else [])
    elif args.method == "tost" and args.pair:
        used.append(args.pair)
    require_plain_columns(df, used, value=args.value)
    arms = _arm_values(df, args.arm)
    for role, name in (("test", args.test), ("reference", args.reference)):
        if name not in arms:
            raise AnalysisError(
                f"{role} arm '{name}' is not in column '{args.arm}'; arms are: "
                + (", ".join(arms) or "(none)")
            )
    if args.test == args.reference:
        raise AnalysisError("--test and --reference name the same arm")
    df = df.with_columns(pl.col(args.arm).cast(pl.String))
    df = _numeric(df, args.value, f"a {args.outcome} outcome")
    if args.outcome == "binary":
        values = set(df[args.value].drop_nulls().unique().to_list())
        if not values <= {0.0, 1.0}:
            odd = sorted(values - {0.0, 1.0})[0]
            raise AnalysisError(
                f"column '{args.value}' holds {odd:g}; a binary outcome must be 0 or 1"
            )
        df = df.with_columns(pl.col(args.value).cast(pl.Int64))
    _check_margin_alpha(args)
    common: dict[str, Any] = {
        "arm": args.arm,
        "value": args.value,
        "test": args.test,
        "reference": args.reference,
        "margin": args.margin,
        "alpha": args.alpha,
    }
    # "higher is better" unless told otherwise, for both outcomes (as SAS RISKDIFF NONINF);
    # harm rates need --direction lower.
    direction = args.direction or "higher"
    columns = {"arm_column": args.arm, "value_column": args.value}
    if args.method in ("t", "bootstrap", "mixed"):
        kwargs = common | {
            "method": args.method,
            "case": args.case,
            "rater": args.rater,
            "pair": args.pair,
            "boot": args.boot,
            "seed": args.seed,
            "direction": direction,
        }
        result = ni.mean_difference(df, **kwargs)
        columns |= {"case_column": None if args.pair else args.case, "pair_column": args.pair}
        if args.method != "t":
            columns["rater_column"] = args.rater
    elif args.method == "tost":
        result = ni.tost(df, **common, pair=args.pair, welch=args.welch)
        # The module names the statistic "tost" (variant = design); the CLI contract reports
        # every continuous comparison as mean_difference, with the method as its variant.
        result = result.with_columns(
            pl.col(C.VARIANT).alias("design"),
            pl.lit("mean_difference").alias(C.STATISTIC),
            pl.lit("tost").alias(C.VARIANT),
        )
        if args.direction:
            result = _with_notes(
                result,
                [
                    f"--direction {args.direction} has no effect on TOST: equivalence tests "
                    "both sides of the margin"
                ],
            )
        columns["pair_column"] = args.pair
        direction = args.direction  # as given (or null): TOST has none
    else:
        kwargs = common | {"method": args.method, "direction": direction}
        result = ni.risk_difference(df, **kwargs)
    return _with_notes(
        _with_parameters(
            result,
            {
                C.MARGIN: args.margin,
                C.ALPHA: args.alpha,
                C.DIRECTION: direction,
                C.TEST_ARM: args.test,
                C.REFERENCE_ARM: args.reference,
                "outcome": args.outcome,
                "requested_method": args.method,
                **columns,
                "boot": args.boot if args.method == "bootstrap" else None,
                C.SEED: _used_seed(result, args.seed) if args.method == "bootstrap" else None,
            },
        ),
        notes,
    )


def _check_margin_alpha(args: argparse.Namespace) -> None:
    zero_ok = args.method != "tost"  # equivalence within 0 can never be shown
    if not math.isfinite(args.margin) or args.margin < 0 or (args.margin == 0 and not zero_ok):
        also = " (or 0, a superiority test)" if zero_ok else " for an equivalence test"
        raise AnalysisError(f"--margin must be a positive number{also}, got {args.margin}")
    if not 0 < args.alpha < 0.5:
        raise AnalysisError(f"--alpha is one-sided and must lie in (0, 0.5), got {args.alpha}")


def _run_one_sample(args: argparse.Namespace, df: pl.DataFrame) -> pl.DataFrame:
    """``--one-sample``: the value is already test - reference (e.g. a -2..+2 comparison)."""
    from analysis import noninferiority as ni

    _check_margin_alpha(args)
    case, rater = args.case or C.CASE, args.rater or C.RATER
    used = [args.value, case] + ([rater] if args.method != "t" else [])
    require_plain_columns(df, used, value=args.value)
    df = _numeric(df, args.value, "--one-sample")
    direction = args.direction or "higher"
    test, reference = args.test or "test", args.reference or "reference"
    result = ni.mean_difference_one_sample(
        df,
        value=args.value,
        margin=args.margin,
        direction=direction,
        method=args.method,
        case=case,
        rater=rater,
        alpha=args.alpha,
        boot=2000 if args.boot is None else args.boot,
        seed=args.seed,
        test=test,
        reference=reference,
    )
    bootstrap = args.method == "bootstrap"
    return _with_parameters(
        result,
        {
            C.MARGIN: args.margin,
            C.ALPHA: args.alpha,
            C.DIRECTION: direction,
            "design": "one-sample",
            "outcome": args.outcome,
            "requested_method": args.method,
            "value_column": args.value,
            "case_column": case,
            "rater_column": rater if args.method != "t" else None,
            "boot": (2000 if args.boot is None else args.boot) if bootstrap else None,
            C.SEED: _used_seed(result, args.seed) if bootstrap else None,
        },
    )


def _with_notes(frame: pl.DataFrame, notes: list[str]) -> pl.DataFrame:
    """``frame`` with ``notes`` appended to every row's note."""
    if not notes:
        return frame
    extra = pl.lit("; ".join(notes))
    if C.NOTE not in frame.columns:
        return frame.with_columns(extra.alias(C.NOTE))
    return frame.with_columns(
        pl.concat_str([pl.col(C.NOTE), extra], separator="; ", ignore_nulls=True).alias(C.NOTE)
    )


def run_preference(args: argparse.Namespace, df: pl.DataFrame) -> pl.DataFrame:
    from analysis.preference import bradley_terry, position_bias, win_rates

    used = [args.a, args.b, args.winner] + [c for c in (args.position, args.first) if c]
    require_plain_columns(df, used, value=args.winner)
    common = {"a": args.a, "b": args.b, "winner": args.winner, "tie": args.tie, "ci": args.ci}
    frames = [
        bradley_terry(df, **common, reference=args.reference, boot=args.boot, seed=args.seed),
        win_rates(df, **common, focus=args.focus),
    ]
    if args.position:
        frames.append(
            position_bias(df, winner_position=args.position, winner=args.winner, tie=args.tie)
        )
    elif args.first:
        frames.append(position_bias(df, first=args.first, winner=args.winner, tie=args.tie))
    result = pl.concat(frames, how="diagonal_relaxed")
    return _with_parameters(
        result,
        {
            "a_column": args.a,
            "b_column": args.b,
            "winner_column": args.winner,
            "tie_label": args.tie,
            "boot": args.boot,
            C.SEED: _used_seed(result, args.seed),
        },
    )


def run_describe(args: argparse.Namespace, df: pl.DataFrame) -> pl.DataFrame:
    from analysis.describe import describe

    used = [c for c in (args.value, args.arm, args.by) if c is not None]
    require_plain_columns(df, used, value=args.value)
    return describe(df, value=args.value, arm=args.arm, by=args.by)


def run_rubric(args: argparse.Namespace, df: pl.DataFrame) -> pl.DataFrame:
    """``rubric``: HealthBench scores (with ``--case`` and ``--points``) and its agreement."""
    from analysis.rubric import healthbench_agreement, rubric_score

    if (args.case is None) != (args.points is None):
        raise AnalysisError("--case and --points go together: give both for the score, or neither")
    if args.case is None:
        for name in ("arm", "tag"):
            if getattr(args, name) is not None:
                raise AnalysisError(
                    f"--{name} would be ignored: it applies to the score, which needs --case "
                    "and --points"
                )
    if args.seed is not None and args.boot == 0:
        raise AnalysisError("--seed has no effect with --boot 0 (no bootstrap); drop one of them")
    used = [args.unit, args.rater, args.met] + [
        c for c in (args.case, args.points, args.arm, args.tag) if c is not None
    ]
    require_plain_columns(df, used, value=args.met)
    seed = args.seed
    if seed is None and args.boot:
        from analysis._random import draw_seed

        seed = draw_seed()  # one seed for both statistics, reported on every row
    shared = {
        "unit": args.unit,
        "rater": args.rater,
        "met": args.met,
        "boot": args.boot,
        "ci": args.ci,
        "seed": seed,
    }
    frames = []
    if args.case is not None:
        frames.append(
            rubric_score(
                df, case=args.case, points=args.points, arm=args.arm, tag=args.tag, **shared
            )
        )
    try:
        frames.append(healthbench_agreement(df, grader=args.grader, **shared))
    except AnalysisError as exc:
        if args.case is None:
            raise  # agreement is all that was asked for
        # the scores stand without it (e.g. one rater so far): say why there is no agreement
        frames.append(
            pl.DataFrame(
                {
                    C.STATISTIC: ["healthbench_agreement"],
                    C.APPLICABLE: [False],
                    C.NOTE: [str(exc)],
                }
            )
        )
    result = pl.concat(frames, how="diagonal_relaxed")
    return _with_parameters(
        result,
        {
            "unit_column": args.unit,
            "rater_column": args.rater,
            "met_column": args.met,
            "case_column": args.case,
            "points_column": args.points,
            "arm_column": args.arm,
            "tag_column": args.tag,
            "grader": args.grader,
        },
    )


def run_by(args: argparse.Namespace, df: pl.DataFrame) -> pl.DataFrame:
    """``--by COL``: the command once per value of COL, each result row led by that value.

    A group that cannot be analysed gives one row with ``applicable`` false and the reason in
    ``note``; when no group can, the first group's error is raised.
    """
    require_plain_columns(df, [args.by], value=args.by)
    frames, errors = [], []
    for (key,), group in df.group_by(args.by, maintain_order=True):
        try:
            result = args.run(args, group)
        except AnalysisError as exc:
            errors.append(exc)
            result = pl.DataFrame(
                {
                    C.STATISTIC: [args.command],
                    C.APPLICABLE: [False],
                    C.NOTE: [f"{args.by} {key}: {exc}"],
                }
            )
        if args.by in result.columns:
            raise AnalysisError(f"--by {args.by} clashes with a result column of that name")
        frames.append(result.select(pl.lit(key).alias(args.by), pl.all()))
    if len(errors) == len(frames):
        raise errors[0]
    return pl.concat(frames, how="diagonal_relaxed")


def _with_parameters(frame: pl.DataFrame, parameters: dict[str, Any]) -> pl.DataFrame:
    """Repeat the CLI parameters on every row, without overwriting what a statistic reported
    (a column the statistics filled on some rows only gets the parameter on the others)."""
    given = {name: value for name, value in parameters.items() if value is not None}
    return frame.with_columns(
        *(
            (
                pl.col(name).fill_null(pl.lit(value)) if name in frame.columns else pl.lit(value)
            ).alias(name)
            for name, value in given.items()
        )
    )


def _used_seed(frame: pl.DataFrame, given: int | None) -> int | None:
    """The seed the bootstrap used: as given, or the one it drew (recorded in ``seed``)."""
    if given is not None or C.SEED not in frame.columns:
        return given
    drawn = frame[C.SEED].drop_nulls()
    return int(drawn[0]) if drawn.len() else None


BY_HELP = "repeat the analysis for each value of this column (e.g. item in a long export)"
SEED_HELP = (
    "bootstrap seed; without it a seed is drawn, used and reported (seed in the results), "
    "so the run can be repeated"
)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m analysis",
        description="Agreement, non-inferiority, pairwise preference and rubric scores on a "
        "long-format file.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "file",
            metavar="FILE",
            help="CSV or Parquet file, long format; cells that are empty or NA, NaN, nan, null, "
            "NULL (in CSV, or in Parquet text columns) are missing values",
        )
        p.add_argument(
            "--format",
            choices=("table", "json"),
            default="table",
            help="table for people (default), json for machines",
        )

    agreement = sub.add_parser("agreement", help="agreement statistics for one item")
    common(agreement)
    agreement.add_argument("--unit", default=C.UNIT, help="unit column (default: unit)")
    agreement.add_argument("--rater", default=C.RATER, help="rater column (default: rater)")
    agreement.add_argument("--value", default=C.VALUE, help="value column (default: value)")
    agreement.add_argument("--level", required=True, choices=LEVELS, help="level of measurement")
    agreement.add_argument("--scale", help="declared categories, lowest first: V1,V2,...")
    agreement.add_argument(
        "--boot", type=_boot, default=1000, help=f"bootstrap replicates, 0..{MAX_BOOT:,}"
    )
    agreement.add_argument("--seed", type=int, default=None, help=SEED_HELP)
    agreement.add_argument("--ci", type=float, default=0.95, help="confidence level")
    agreement.add_argument("--by", default=None, help=BY_HELP)
    agreement.add_argument(
        "--intra",
        action="store_true",
        help="intra-rater (test-retest) agreement: each rater's first rating of a unit (phase "
        "'live') against their repeat of it (phase 'repeat'), from the phase column of a "
        "Clinval export; without it, repeat rows are left out",
    )
    agreement.set_defaults(run=run_agreement)

    ni = sub.add_parser("noninferiority", help="non-inferiority of a test arm vs a reference")
    common(ni)
    ni.add_argument("--arm", default=None, help="arm column (default: arm)")
    ni.add_argument("--value", default=C.VALUE, help="outcome column (default: value)")
    ni.add_argument("--test", default=None, help="test arm (e.g. the LLM); required but with "
                    "--one-sample, where it only names the test side")  # fmt: skip
    ni.add_argument("--reference", default=None, help="reference arm (e.g. clinicians); as --test")
    ni.add_argument(
        "--margin",
        required=True,
        type=float,
        help="non-inferiority margin (>= 0; 0 is a superiority test; > 0 for tost)",
    )
    ni.add_argument("--outcome", required=True, choices=("continuous", "binary"))
    ni.add_argument("--method", required=True, choices=CONTINUOUS_METHODS + BINARY_METHODS)
    ni.add_argument("--pair", default=None, help="column pairing test and reference rows")
    ni.add_argument(
        "--case", default=None, help="case column (default: case); with tost it pairs the arms"
    )
    ni.add_argument("--rater", default=None, help="rater column (default: rater)")
    ni.add_argument(
        "--one-sample",
        action="store_true",
        help="the value is already test - reference (e.g. a -2..+2 comparison): one-sample t, "
        "bootstrap over cases and raters, or mixed model with only the intercept fixed",
    )
    ni.add_argument("--by", default=None, help=BY_HELP)
    ni.add_argument("--alpha", type=float, default=0.025, help="one-sided alpha (default 0.025)")
    ni.add_argument(
        "--direction",
        choices=DIRECTIONS,
        default=None,
        help="higher or lower is better (default: higher, for both outcomes); for harm rates "
        "pass --direction lower; ignored, with a note, by tost",
    )
    ni.add_argument(
        "--welch", action="store_true", help="TOST with Welch's unequal variances (tost only)"
    )
    ni.add_argument(
        "--boot",
        type=_boot,
        default=None,
        help=f"bootstrap replicates (bootstrap; default 2000), 100..{MAX_BOOT:,}",
    )
    ni.add_argument("--seed", type=int, default=None, help=SEED_HELP)
    ni.set_defaults(run=run_noninferiority)

    desc = sub.add_parser("describe", help="n, missing, mean, SD, median, quartiles per arm/group")
    common(desc)
    desc.add_argument("--value", required=True, help="the numeric column described")
    desc.add_argument("--arm", default=None, help="describe per value of this column too")
    desc.add_argument("--by", default=None, help="describe per value of this column (e.g. item)")
    desc.set_defaults(run=run_describe)

    pref = sub.add_parser("preference", help="win rates and Bradley-Terry from comparisons")
    common(pref)
    pref.add_argument("--a", default="a", help="column of the first competitor (default: a)")
    pref.add_argument("--b", default="b", help="column of the second competitor (default: b)")
    pref.add_argument("--winner", default="winner", help="winner column (a value, b value, tie)")
    pref.add_argument("--tie", default="tie", help="label of a tie (default: tie)")
    pref.add_argument("--reference", default=None, help="competitor fixed at log-ability 0")
    pref.add_argument("--focus", default=None, help="report win rates from this competitor's side")
    pref.add_argument("--position", default=None, help="column: winner shown first/second/tie")
    pref.add_argument("--first", default=None, help="column: competitor shown first")
    pref.add_argument(
        "--boot", type=_boot, default=1000, help=f"bootstrap replicates, 0..{MAX_BOOT:,}"
    )
    pref.add_argument("--seed", type=int, default=None, help=SEED_HELP)
    pref.add_argument("--ci", type=float, default=0.95, help="confidence level")
    pref.set_defaults(run=run_preference)

    rubric = sub.add_parser(
        "rubric", help="HealthBench rubric scores and met/not-met agreement (balanced F1)"
    )
    common(rubric)
    rubric.add_argument("--unit", required=True, help="unit column: one answer x criterion")
    rubric.add_argument("--rater", required=True, help="rater column")
    rubric.add_argument("--met", required=True, help="met column: true/false, 1/0 or yes/no")
    rubric.add_argument("--case", default=None, help="case column (with --points: the score)")
    rubric.add_argument("--points", default=None, help="points column (negative allowed)")
    rubric.add_argument("--arm", default=None, help="score each arm apart (with --case)")
    rubric.add_argument(
        "--tag", default=None, help="tags column, ';'-separated: a score per tag (with --case)"
    )
    rubric.add_argument(
        "--grader", default=None, help="a rater id that is a model grader: compared with the others"
    )
    rubric.add_argument(
        "--boot", type=_boot, default=1000, help=f"bootstrap replicates, 0..{MAX_BOOT:,}"
    )
    rubric.add_argument("--seed", type=int, default=None, help=SEED_HELP)
    rubric.add_argument("--ci", type=float, default=0.95, help="confidence level")
    rubric.set_defaults(run=run_rubric)
    return parser


# Library messages name keyword arguments; on the command line they are options.
_OPTION_WORDING = (
    (re.compile(r"\(scale=\[\.\.\.\], --scale in the CLI\)"), "(--scale V1,V2,...)"),
    (re.compile(r"\bpair \(--pair\)"), "--pair"),
    (re.compile(r"\bwelch=True\b"), "--welch"),
    (
        re.compile(
            r"^(boot|seed|ci|alpha|margin|direction|reference|focus)( '[^']*')? (must|is)\b"
        ),
        r"--\1\2 \3",
    ),
)


def _cli_wording(message: str) -> str:
    for pattern, replacement in _OPTION_WORDING:
        message = pattern.sub(replacement, message)
    return message


_NEGATIVE = re.compile(r"^-\.?\d")


def _negative_values_attached(argv: Sequence[str] | None) -> list[str]:
    """``--scale -2,-1,0,1,2`` as written: argparse takes a value that starts with ``-`` for an
    option unless it is a plain number, so a value that starts like a negative number is
    attached to its option (``--scale=-2,-1,0,1,2``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    out: list[str] = []
    i = 0
    while i < len(args):
        token = args[i]
        if (
            token.startswith("--")
            and "=" not in token
            and i + 1 < len(args)
            and _NEGATIVE.match(args[i + 1])
        ):
            out.append(f"{token}={args[i + 1]}")
            i += 2
            continue
        out.append(token)
        i += 1
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 bad input)."""
    try:
        args = build_parser().parse_args(_negative_values_attached(argv))
        table = read_table(args.file)
        if not getattr(args, "intra", False):
            table = first_ratings(table)
        grouped = getattr(args, "by", None) is not None and args.command != "describe"
        frame = run_by(args, table) if grouped else args.run(args, table)
        if args.format == "json":
            output = to_json(frame)
        else:
            lead = (args.by,) if grouped else ()
            output = (
                plain_table(frame) if args.command == "describe" else to_table(frame, lead=lead)
            )
    except (ValueError, pl.exceptions.PolarsError) as exc:
        # ValueError covers AnalysisError; a plain ValueError from a library, or a polars error
        # on data of an unexpected shape, is bad input too: one line, no traceback.
        message = (
            " ".join(first_line(exc).split())
            if isinstance(exc, pl.exceptions.PolarsError)
            else (" ".join(str(exc).split()) or type(exc).__name__)
        )
        message = _cli_wording(message)
        if len(message) > MAX_MESSAGE_CHARS:
            rest = len(message) - MAX_MESSAGE_CHARS
            message = f"{message[:MAX_MESSAGE_CHARS]}... (and {rest:,} more characters)"
        # the message may quote the file's own names (arms, raters): escaped like the output
        print(f"error: {escape(message)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        # names and values come from the file: a rater named with an ANSI escape must not
        # recolour, clear or rewrite the terminal
        print(escape(output))
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader stopped early (`... | head`): not an error of ours. Point stdout at devnull
        # so that the interpreter's final flush does not raise again (Python docs, signal module).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
