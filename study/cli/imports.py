"""Bringing a study's content in and out of a draft from the command line: cases, arms, answers
(``import-*``, ``import-table``, ``import-healthbench``), ratings collected elsewhere
(``import-ratings``), and ``remove``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TextIO

from study.cli.common import (
    EXIT_OK,
    CliError,
    acting_caller,
    check_id_text,
    existing_file,
    open_store,
    text_file,
)


def import_command(kind: str) -> Callable[[argparse.Namespace, TextIO], int]:
    """The command ``import-<kind>`` for cases, arms or answers: ``content.import_<kind>``."""

    def command(args: argparse.Namespace, out: TextIO) -> int:
        from study.services import content

        importer = getattr(content, f"import_{kind}")
        check_id_text("--study", args.study)
        path = text_file(existing_file(args.file))
        with open_store(args.db, create=False) as store:
            result = importer(store, acting_caller(args, store), args.study, path)
        print(f"{args.study}: {result}", file=out)
        return EXIT_OK

    return command


def cmd_import_healthbench(args: argparse.Namespace, out: TextIO) -> int:
    from study.services import content

    check_id_text("--study", args.study)
    path = text_file(existing_file(args.file))
    with open_store(args.db, create=False) as store:
        results = content.import_healthbench(store, acting_caller(args, store), args.study, path)
    for result in results:
        print(f"{args.study}: {result}", file=out)
    return EXIT_OK


def cmd_import_table(args: argparse.Namespace, out: TextIO) -> int:
    """Import any table through a column mapping (``content.import_table``); the mapping is
    kept with the study under --name (default: the mapping file's name without .toml)."""
    from study.services import content

    check_id_text("--study", args.study)
    path = text_file(existing_file(args.file))
    mapping_path = existing_file(args.mapping)
    try:
        mapping_text = mapping_path.read_bytes()
    except OSError as exc:
        raise CliError(f"{mapping_path}: {exc.strerror or exc}") from None
    name = args.name if args.name is not None else mapping_path.stem
    with open_store(args.db, create=False) as store:
        caller = acting_caller(args, store)
        if args.preview:
            mapped = content.preview_table(
                store, caller, args.study, path, mapping_text, mapping_source=mapping_path.name
            )
            print(f"{args.study}: {mapped.summary()} (preview: nothing stored)", file=out)
            return EXIT_OK
        result = content.import_table(
            store,
            caller,
            args.study,
            path,
            mapping_text,
            name=name,
            mapping_source=mapping_path.name,
        )
    print(f"{args.study}: {result}", file=out)
    return EXIT_OK


def cmd_import_ratings(args: argparse.Namespace, out: TextIO) -> int:
    from study.services import rating_imports

    path = existing_file(args.file)
    with open_store(args.db, create=False) as store:
        result = rating_imports.import_ratings(store, acting_caller(args, store), args.study, path)
    print(f"{args.study}: {result}", file=out)
    return EXIT_OK


def cmd_remove(args: argparse.Namespace, out: TextIO) -> int:
    from study.services import content

    remover = {
        "answers": content.remove_answers,
        "arms": content.remove_arms,
        "cases": content.remove_cases,
    }[args.what]
    with open_store(args.db, create=False) as store:
        removed = remover(store, acting_caller(args, store), args.study, list(args.ids))
    print(f"{args.study}: {removed} {args.what} removed", file=out)
    return EXIT_OK
