"""A study's results and exports from the command line: ``results`` (the one results table) and
``export`` (one ratings file, or the whole bundle), each written beside its target and moved
into place only once complete and audited."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TextIO

import polars as pl

from study.cli.common import (
    EXIT_OK,
    CliError,
    acting_caller,
    acting_person,
    check_id_text,
    open_store,
)

EXPORT_FORMATS = ("csv", "parquet", "dta", "sav")  # study.exporting.FORMATS, without importing it


def cmd_results(args: argparse.Namespace, out: TextIO) -> int:
    """Print the study's results table (``analyses.study_results``' ``results``): the rows the
    Analysis screen, the report and the bundle's results.json / results.csv show, byte for byte
    the bundle's file (``exporting.results_json`` / ``results_csv``). A statistician's read, with
    their token: the operator is no person, and results by arm are read after unblinding."""
    from study import exporting
    from study.services import analyses

    check_id_text("--study", args.study)
    with open_store(args.db, create=False) as store:
        caller = acting_person(args, store, f"results --study {args.study}", "statistician")
        table = analyses.results_rows(store, caller, args.study)
    text = exporting.results_json(table) if args.format == "json" else exporting.results_csv(table)
    out.write(text)
    return EXIT_OK


def cmd_export(args: argparse.Namespace, out: TextIO) -> int:
    check_id_text("--study", args.study)
    formats = _format_list(args.format)
    if args.bundle:
        return _export_bundle(args, formats or list(EXPORT_FORMATS), out)
    if args.out.suffix.lower() == ".zip":
        raise CliError(f"--out {args.out.name} is a zip: the bundle; add --bundle to write it")
    if formats and len(formats) > 1:
        raise CliError(
            f"--format {args.format} names {len(formats)} formats and --out one file; "
            "add --bundle to write several"
        )
    return _export_file(args, formats[0] if formats else None, out)


def _format_list(given: str | None) -> list[str] | None:
    """``--format`` as a list (comma-separated, each once); None when not given."""
    if given is None:
        return None
    names = [name.strip().lower() for name in given.split(",")]
    unknown = [name for name in names if name not in EXPORT_FORMATS]
    if unknown or not names:
        raise CliError(
            f"--format {given}: unknown format {', '.join(repr(n) for n in unknown)}; "
            f"choose from {', '.join(EXPORT_FORMATS)} (comma-separated)"
        )
    return list(dict.fromkeys(names))


def _export_file(args: argparse.Namespace, given: str | None, out: TextIO) -> int:
    from study import exporting
    from study.services import exports, instrument_library

    fmt = _export_format(args.out, given)
    # A temporary file next to --out, renamed only once the export and its audit event are
    # complete: a refused or failed export leaves neither a file nor an event.
    temp = _temporary_for(args.out)
    try:
        heads: list[str] = []

        with open_store(args.db, create=False) as store:
            # the items give the value labels of .dta and .sav files
            items = instrument_library.study_items(store, acting_caller(args, store), args.study)

            def write(frame: pl.DataFrame, head: str) -> None:
                heads.append(head)
                try:
                    exporting.write(
                        frame,
                        items,
                        temp,
                        fmt,
                        study=args.study,
                        audit_head=head,
                        raw_csv=args.raw_csv,
                    )
                except OSError as exc:
                    raise CliError(
                        f"cannot write --out {args.out}: {exc.strerror or exc}"
                    ) from None

            frame = exports.export_ratings_long(
                store, acting_caller(args, store), args.study, write=write, formats=[fmt]
            )
        os.replace(temp, args.out)
    finally:
        temp.unlink(missing_ok=True)
    print(f"{frame.height} ratings of study {args.study} written to {args.out} ({fmt})", file=out)
    print(f"audit head: {heads[0]} (record it outside the database)", file=out)
    return EXIT_OK


def _export_bundle(args: argparse.Namespace, formats: list[str], out: TextIO) -> int:
    """The bundle into a new (or empty) folder ``--out``, or into ``--out FILE.zip``: built in a
    temporary folder beside it and moved into place once complete and audited."""
    import shutil
    import tempfile

    from study import exporting
    from study.services import exports

    target = args.out
    as_zip = target.suffix.lower() == ".zip"
    if as_zip:
        temp_file = _temporary_for(target)  # refuses a folder, a missing folder, no write access
        temp_file.unlink()
    elif target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise CliError(
            f"--out {target} exists and is not an empty folder; name a new folder or a .zip file"
        )
    elif not target.parent.is_dir():
        if target.parent.exists():
            raise CliError(f"--out {target}: {target.parent} is a file, not a folder")
        raise CliError(f"no such folder for --out: {target.parent}")
    try:
        work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        mask = os.umask(0)
        os.umask(mask)
        work.chmod(0o777 & ~mask)  # mkdtemp's 700 would outlive the rename into --out
    except OSError as exc:
        raise CliError(f"cannot write --out {target}: {exc.strerror or exc}") from None
    try:
        with open_store(args.db, create=False) as store:
            manifest = exports.write_bundle(
                store,
                acting_caller(args, store),
                args.study,
                work,
                formats=formats,
                raw_csv=args.raw_csv,
            )
        if as_zip:
            staged = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            staged.write_bytes(exporting.zip_folder(work))
            os.replace(staged, target)
        else:
            if target.exists():
                target.rmdir()
            os.replace(work, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if as_zip:
            target.with_name(f".{target.name}.{os.getpid()}.tmp").unlink(missing_ok=True)
    names = ", ".join(f["name"] for f in manifest["files"]) + ", manifest.json"
    print(
        f"{manifest['rows']} ratings of study {args.study}: bundle written to {target} ({names})",
        file=out,
    )
    print(
        f"audit head: {manifest['audit_chain_head']['hash']} (record it outside the database)",
        file=out,
    )
    return EXIT_OK


def _temporary_for(path: Path) -> Path:
    """A new, empty temporary file beside ``path`` (so the final rename stays on one file
    system); refuses an ``--out`` that cannot be written before anything is exported.

    Creating it is the only reliable test (``os.access`` says yes to root on a read-only mount).
    """
    if path.is_dir():
        raise CliError(f"--out {path} is a folder; name a file inside it")
    if not path.parent.is_dir():
        if path.parent.exists():
            raise CliError(f"--out {path}: {path.parent} is a file, not a folder")
        raise CliError(f"no such folder for --out: {path.parent}")
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temp.open("xb"):
            pass
    except OSError as exc:
        raise CliError(f"cannot write --out {path}: {exc.strerror or exc}") from None
    return temp


def _export_format(path: Path, given: str | None) -> str:
    """``--format`` if given, else the format named by the file's suffix; refuse a contradiction."""
    suffix = path.suffix.lower().lstrip(".")
    named = suffix if suffix in EXPORT_FORMATS else None
    if given and named and given != named:
        raise CliError(
            f"--format {given} contradicts the --out file name {path.name}; "
            f"name the file .{given} or drop --format"
        )
    fmt = given or named
    if fmt:
        return fmt
    raise CliError(
        f"cannot tell the export format from '{path.name}'; "
        f"pass --format {' or '.join(EXPORT_FORMATS)} or name the file "
        + " or ".join(f".{f}" for f in EXPORT_FORMATS)
    )
