"""A study's design and lifecycle from the command line: instruments (``instruments``,
``attach-instrument``), the protocol (``lock``), the assignment (``assign``, with its blinding
leak report) and the steps a person takes (``open``, ``close``, ``unblind``)."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TextIO

import polars as pl

from study.cli.common import (
    EXIT_OK,
    TOKEN_SETTING,
    CliError,
    acting_caller,
    acting_person,
    check_id_text,
    existing_file,
    not_the_operators,
    open_store,
    print_table,
)


def lifecycle_command(act: str, role: str) -> Callable[[argparse.Namespace, TextIO], int]:
    """The command for one step of a study's lifecycle: a person's own act, never the
    operator's (``acting_person``)."""

    def command(args: argparse.Namespace, out: TextIO) -> int:
        from study.services import lifecycle, studies

        step = {
            "open": lifecycle.start_rating,
            "close": lifecycle.close_rating,
            "unblind": lifecycle.unblind,
        }[act]
        check_id_text("--study", args.study)
        with open_store(args.db, create=False) as store:
            caller = acting_person(args, store, f"{act} --study {args.study}", role)
            step(store, caller, args.study)
            status = studies.get_study(store, caller, args.study)["status"]
        print(f"{args.study}: {status} (by {caller.actor}, token {caller.token})", file=out)
        return EXIT_OK

    return command


def cmd_attach_instrument(args: argparse.Namespace, out: TextIO) -> int:
    """Add the instrument to the library and attach it to the draft, both or neither: an
    instrument refused by the study (unknown, not a draft, an item clash) used to stay behind in
    the library."""
    from study.access import require
    from study.instruments import get_builtin, load_instrument
    from study.services import instrument_library

    check_id_text("--study", args.study)
    given = Path(args.instrument)
    instrument = (
        load_instrument(existing_file(given))
        if given.suffix.lower() in (".toml", ".json")
        else get_builtin(args.instrument)
    )
    with open_store(args.db, create=False) as store:
        caller = acting_caller(args, store)
        # asked before the transaction: a refusal's access.denied event is written in its own
        # transaction, and the one below would roll it back with everything else
        require(store, caller, "manage_instruments", service="instrument_library.add_instrument")
        require(
            store,
            caller,
            "design_study",
            study=args.study,
            service="instrument_library.attach_instrument",
        )
        with store.transaction():
            key, version = instrument_library.add_instrument(store, caller, instrument)
            instrument_library.attach_instrument(store, caller, args.study, key, version)
    print(f"{args.study}: instrument {key} {version} attached", file=out)
    return EXIT_OK


def cmd_lock(args: argparse.Namespace, out: TextIO) -> int:
    from study.services import design, studies

    protocol: dict[str, Any] = {}
    if args.protocol is not None:
        try:
            protocol = json.loads(existing_file(args.protocol).read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise CliError(f"{args.protocol} is not a JSON file: {exc}") from None
        if not isinstance(protocol, dict):
            raise CliError(f"{args.protocol} must hold a JSON object {{...}}")
    check_id_text("--study", args.study)
    with open_store(args.db, create=False) as store:
        caller = acting_caller(args, store)
        # a person's lock goes straight to the service, which says what they lack; the operator
        # is told here that amending is not theirs, instead of a refusal recorded as access.denied
        if caller.is_system and studies.get_study(store, caller, args.study)["status"] != "draft":
            _refuse_operator_amendment(args)
        digest = design.lock_protocol(store, caller, args.study, protocol, reason=args.reason)
        coverage = design.arm_coverage(store, acting_caller(args, store), args.study)
    print(f"{args.study}: protocol locked, hash {digest}", file=out)
    for arm, answers, cases in coverage.select("arm_id", "answers", "cases").iter_rows():
        print(f"  arm {arm}: answers {answers} of {cases} cases", file=out)
    return EXIT_OK


def _refuse_operator_amendment(args: argparse.Namespace) -> NoReturn:
    """Refuse the operator a protocol version after the first: it needs a reason and is the
    study's coordinator's own act (``amend_protocol``), so say both, before anything is stored."""
    if not (args.reason and args.reason.strip()):
        raise CliError(
            f"study {args.study} has a locked protocol: a change is a new protocol version, which "
            'needs --reason "why" and the coordinator\'s personal access token (--token TOKEN '
            f"or {TOKEN_SETTING})"
        )
    raise not_the_operators(f"a new protocol version (lock --study {args.study})", "coordinator")


def cmd_instruments_list(args: argparse.Namespace, out: TextIO) -> int:
    from study.instruments import list_builtin

    rows = [
        (i.key, i.version, str(len(i.items)), "synthetic" if i.synthetic else "", i.title)
        for i in list_builtin()
    ]
    print_table(("key", "version", "items", "", "title"), rows, out)
    return EXIT_OK


def cmd_instruments_show(args: argparse.Namespace, out: TextIO) -> int:
    from study.instruments import get_builtin

    instrument = get_builtin(args.key)
    if args.format == "json":
        print(json.dumps(instrument.to_dict(), indent=2, ensure_ascii=False), file=out)
        return EXIT_OK
    print(f"{instrument.key} {instrument.version}: {instrument.title}", file=out)
    if instrument.citation:
        print(f"citation: {instrument.citation}", file=out)
    print(f"content hash: {instrument.content_hash()}", file=out)
    rows = [
        (
            item.key,
            item.type,
            item.level,
            item.direction,
            item.scope,
            "yes" if item.required else "no",
            "each criterion of the case: met | not met"
            if item.per_case_criteria
            else " | ".join(f"{o.value}={o.label}" for o in item.options),
        )
        for item in instrument.items
    ]
    print_table(("item", "type", "level", "direction", "scope", "required", "options"), rows, out)
    return EXIT_OK


def cmd_instruments_validate(args: argparse.Namespace, out: TextIO) -> int:
    from study.instruments import load_instrument

    instrument = load_instrument(existing_file(args.file))
    print(
        f"valid: {instrument.key} {instrument.version}, {len(instrument.items)} items, "
        f"content hash {instrument.content_hash()}",
        file=out,
    )
    return EXIT_OK


def cmd_assign(args: argparse.Namespace, out: TextIO) -> int:
    from study.services import design

    with open_store(args.db, create=False) as store:
        # the seed is a blinding secret, never printed: the one sealed at the lock if there is
        # one, else --seed, else drawn here (and sealed with the design when it is stored)
        seed = args.seed
        drawn = seed is None and not design.seed_is_sealed(
            store, acting_caller(args, store), args.study
        )
        if drawn:
            seed = int.from_bytes(os.urandom(7), "big")
        options = {
            "raters_per_case": args.raters_per_case,
            "seed": seed,
            "mode": args.mode,
            "match_specialty": args.match_specialty,
        }
        summary = design.preview_assignments(
            store, acting_caller(args, store), args.study, **options
        )
        _print_design(summary, args, out)
        _print_leaks(design.leak_report(store, acting_caller(args, store), args.study), out)
        if drawn and args.dry_run:
            print(
                "\nthe seed was drawn for this run only: pass --seed S to preview and then store "
                "one and the same design",
                file=out,
            )
        if not args.dry_run:
            stored = design.make_assignments(
                store, acting_caller(args, store), args.study, **options
            )
            print(f"{stored} assignments stored for study {args.study} (seed sealed)", file=out)
    return EXIT_OK


def _print_design(summary: dict[str, pl.DataFrame], args: argparse.Namespace, out: TextIO) -> None:
    loads = summary["loads"]
    per_case = summary["raters_per_case"].get_column("raters")
    print(
        f"design for study {args.study}: mode {args.mode}, {args.raters_per_case} raters per case"
        f"{', specialties matched' if args.match_specialty else ''}",
        file=out,
    )
    print(
        f"  {loads.height} raters, {loads.get_column('assignments').sum()} assignments over "
        f"{per_case.len()} cases; raters per case {per_case.min()}-{per_case.max()}",
        file=out,
    )
    # from the locked protocol's calibration and repeats (none before the lock)
    gold, again = loads.get_column("calibration"), loads.get_column("repeats")
    print(
        f"  calibration: {gold.sum()} assignments ({_span(gold)} per rater, before any live "
        f"case); repeats: {again.sum()} assignments ({_span(again)} per rater, after the "
        "washout)",
        file=out,
    )
    print("\nloads per rater", file=out)
    print_table(
        ("rater", "assignments", "calibration", "repeats"),
        loads.select("rater_id", "assignments", "calibration", "repeats").rows(),
        out,
    )
    print("\narm x position per rater (times shown)", file=out)
    grid = (
        summary["arm_positions"]
        .with_columns(pl.format("pos {}", "position").alias("at"))
        .pivot(on="at", index=["rater_id", "arm_id"], values="shown", sort_columns=True)
        .fill_null(0)
    )
    print_table(("rater", "arm", *grid.columns[2:]), grid.rows(), out)
    print("\nrater-pair overlap (cases in common)", file=out)
    overlap = summary["overlap"]
    print_table(("rater", "rater", "shared"), overlap.rows(), out)


def _span(counts: pl.Series) -> str:
    """ "n" when every rater has n, else "lo-hi"."""
    low, high = counts.min(), counts.max()
    return f"{low}" if low == high else f"{low}-{high}"


def _print_leaks(report: pl.DataFrame, out: TextIO) -> None:
    from study.services.analyses import AUC_WARNING

    print("\nblinding leak report per arm", file=out)
    rows = [
        (
            r["arm_id"],
            str(r["n_answers"]),
            f"{r['median_words']:.0f}",
            f"{r['share_markdown']:.0%}",
            f"{r['share_self_identifying']:.0%}",
            f"{r['share_signature']:.0%}",
            "-" if r["format_auc"] is None else f"{r['format_auc']:.2f}",
        )
        for r in report.iter_rows(named=True)
    ]
    header = ("arm", "answers", "median words", "markdown", "self-identifying", "signed", "AUC")
    print_table(header, rows, out)
    for r in report.filter(pl.col("warning")).iter_rows(named=True):
        print(
            f"warning: length and format alone tell arm {r['arm_id']} apart "
            f"(cross-validated AUC {r['format_auc']:.2f} > {AUC_WARNING}): raters may guess the source",
            file=out,
        )
