"""Reading a study from the command line: ``status`` (counts, progress, calibration) and ``audit
verify`` (the hash chain). Both open the database read-only."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

import polars as pl

from study.cli.common import (
    EXIT_AUDIT_BROKEN,
    EXIT_OK,
    CliError,
    Escaping,
    acting_caller,
    check_id_text,
    open_store,
)

STATUS_FIELDS = (
    ("cases", "cases"),
    ("arms", "arms"),
    ("answers", "answers"),
    ("raters", "raters"),
    ("assignments", "assignments"),
    ("done", "done"),
    ("ratings", "ratings_submitted"),
)
"""(label printed, key of ``monitoring.study_status``) in the order ``status`` prints them."""


def cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    from study.services import studies

    if args.study is not None:
        check_id_text("--study", args.study)
    with open_store(args.db, create=False, read_only=True) as store:
        _require_current_schema(store, args.db)
        if args.study:
            ids = [args.study]
        else:
            ids = studies.list_studies(store, acting_caller(args, store)).get_column("id").to_list()
            if not ids:
                print(f"no studies in {args.db}", file=out)
                return EXIT_OK
        for n, study_id in enumerate(ids):
            if n:
                print(file=out)
            print_status(store, acting_caller(args, store), study_id, out)
    return EXIT_OK


def _require_current_schema(store: Any, db: Path) -> None:
    """Refuse a database an older Clinval made: a read-only command does not migrate it, and
    today's queries would fail on the tables it lacks."""
    from study.migrations import MIGRATIONS

    version, current = store.schema_version(), MIGRATIONS[-1].version
    if version < current:
        raise CliError(
            f"the database {db} has schema version {version}, made by an older Clinval (this one "
            f"reads version {current}); `status` only reads, so it does not migrate it: run "
            f"`python -m study init --db {db}` once to migrate it (keep a copy first), then "
            "`status` again"
        )


def print_status(store: Any, caller: Any, study_id: str, out: TextIO) -> None:
    from study.services import monitoring, studies

    study = studies.get_study(store, caller, study_id)
    status = monitoring.study_status(store, caller, study_id, per_arm=False)
    badge = " [synthetic demo data]" if study.get("synthetic") else ""
    print(f"study {status['study']}: {study['name']} ({status['status']}){badge}", file=out)
    width = max(len(label) for label, _ in STATUS_FIELDS)
    for label, key in STATUS_FIELDS:
        print(f"  {label:<{width}}  {status[key]}", file=out)
    if status["assignments"]:
        share = 100 * status["done"] / status["assignments"]
        print(f"  {'progress':<{width}}  {share:.1f}% of assignments done", file=out)
    _print_calibration(monitoring.calibration_status(store, caller, study_id), width, out)


def _print_calibration(table: pl.DataFrame, width: int, out: TextIO) -> None:
    """The calibration outcome per rater, when the protocol has a calibration round."""
    table = table.filter(pl.col("attempt").is_not_null())
    if table.is_empty():
        return
    passed = table.get_column("passed").sum()
    threshold = table.item(0, "threshold")
    print(
        f"  {'calibration':<{width}}  {passed} of {table.height} raters passed "
        f"(threshold {threshold:g})",
        file=out,
    )
    for row in table.iter_rows(named=True):
        if row["passed"]:
            how = "passed by the coordinator" if row["decision"] == "pass" else "passed"
        elif row["score"] is not None:
            how = "FAILED: waits for the coordinator (retry or pass)"
        else:
            how = "in calibration"
        done = f"{row['calibration_done']} of {row['calibration_cases']} cases done"
        score = (
            f", score {row['score']:.2f} ({row['matched']} of {row['expected']} gold values)"
            if row["score"] is not None
            else ""
        )
        print(f"    {row['rater']}  {how}; attempt {row['attempt']}: {done}{score}", file=out)


def cmd_audit_verify(args: argparse.Namespace, out: TextIO) -> int:
    from study import audit_verify

    expect = args.expect
    if expect is not None and not _is_hash(expect):
        raise CliError("--expect takes a head hash: 64 hexadecimal digits")
    with open_store(args.db, create=False, read_only=True) as store:
        report = audit_verify.verify(store, expect=expect)
    if report.ok:
        # The head hash is what lets someone prove later that the chain was not rewritten as a
        # whole: it is meant to be copied somewhere outside the database.
        print(f"audit chain intact: {report.events} events", file=out)
        print(f"head hash: {report.head_hash} (record it outside the database)", file=out)
        if args.kinds:
            width = max(len(name) for name in report.counts)
            for name, count in report.counts.items():
                print(f"  {name:<{width}}  {count}", file=out)
        if expect is not None:
            print(f"expected head {expect.lower()}: held by the chain", file=out)
        if report.unchecked:
            print(f"not checked: {report.unchecked}", file=out)
        if report.unkeyed:
            print(
                f"unkeyed: events 1-{report.unkeyed} have plain SHA-256 hashes (written before "
                "the chain was keyed)",
                file=out,
            )
        return EXIT_OK
    err = Escaping(sys.stderr)
    if report.seq is None:
        print(f"audit chain BROKEN: {report.problem}", file=err)
    else:
        print(f"audit chain BROKEN at event {report.seq}: {report.problem}", file=err)
    if report.unchecked:
        print(f"not checked: {report.unchecked}", file=err)
    return EXIT_AUDIT_BROKEN


def _is_hash(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdefABCDEF" for c in text)
