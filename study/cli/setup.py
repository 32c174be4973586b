"""Setting up a database from the command line: ``init`` (create or migrate, optionally with a
draft study) and ``demo`` (the synthetic demo study, and its people's tokens)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any, TextIO

import polars as pl

from study.cli.common import (
    EXIT_OK,
    TOKEN_SETTING,
    CliError,
    acting_caller,
    check_id_text,
    check_new_file,
    open_store,
)
from study.cli.status import print_status


def cmd_init(args: argparse.Namespace, out: TextIO) -> int:
    from study.services import studies
    from study.store import utc_now

    existed = args.db.is_file()
    if args.study is not None and not args.study.strip():
        raise CliError("init --study needs a name (it was empty)")
    if args.id is not None:
        check_id_text("--id", args.id)
    opened_at = utc_now()
    # init is where an existing database gets its audit key, if it has none yet
    with open_store(args.db, create=True, create_key=True) as store:
        version = store.schema_version()
        # opening migrates: the migrations recorded since this command started are the ones it
        # applied, so an up-to-date database is not reported as migrated
        applied = store.read(
            "SELECT version FROM schema_migrations WHERE applied_at >= $t ORDER BY version",
            {"t": opened_at},
        ).get_column("version")
        if not existed:
            print(f"database created: {args.db} (schema version {version})", file=out)
        elif applied.len():
            done = ", ".join(str(v) for v in applied.to_list())
            print(
                f"database migrated: {args.db} (schema version {version}; applied {done})",
                file=out,
            )
        else:
            print(
                f"database up to date: {args.db} (schema version {version}; nothing to migrate)",
                file=out,
            )
        if args.study is not None:
            study_id = studies.create_study(
                store, acting_caller(args, store), args.study, study_id=args.id
            )
            print(f"study created: {study_id} (draft)", file=out)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    """Build the demo study; with ``--tokens FILE`` also write a token for each of its people.

    On a database that exists already, ``--tokens`` builds nothing and issues the tokens only
    if it is a demo database (``tokens.issue_demo_tokens`` decides, and refuses otherwise).
    """
    from study.demo import build_demo
    from study.services import design, studies, tokens

    if args.seed is not None and not 0 <= args.seed <= design.MAX_SEED:
        raise CliError(f"--seed must be a whole number in 0..{design.MAX_SEED}")
    if args.tokens is not None:
        check_new_file("--tokens", args.tokens)
    existed = args.db.is_file()
    with open_store(args.db, create=True) as store:
        caller = acting_caller(args, store)
        if not caller.is_system:
            raise CliError(
                f"demo is the operator's, not a person's: leave out --token and unset "
                f"{TOKEN_SETTING}"
            )
        study_id = None
        if not (existed and args.tokens is not None):
            stored = studies.list_studies(store, caller)
            synthetic = stored.filter(pl.col("synthetic")) if stored.height else stored
            if synthetic.height:
                existing = ", ".join(synthetic.get_column("id").to_list())
                raise CliError(
                    f"{args.db} already holds a demo study ({existing}); use another --db to "
                    "build a fresh one, or add --tokens FILE to issue its people's tokens"
                )
            study_id = build_demo(store) if args.seed is None else build_demo(store, seed=args.seed)
        if args.tokens is not None:
            issued = tokens.issue_demo_tokens(
                store, caller, write=lambda made: _write_secret_json(args.tokens, made)
            )
        if study_id is not None:
            print_status(store, caller, study_id, out)
    if args.tokens is not None:
        print(
            f"personal access tokens of {len(issued)} demo people written to {args.tokens} "
            f"(only you can read it; valid {tokens.DEFAULT_DAYS} days): {', '.join(issued)}",
            file=out,
        )
    return EXIT_OK


def _write_secret_json(path: Path, value: Any) -> None:
    """Write ``value`` as JSON into the new file ``path``, readable by its owner only (0600,
    from the moment it exists: it holds secrets); removed again if writing fails."""
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(value, stream, indent=2, sort_keys=True)
            stream.write("\n")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
