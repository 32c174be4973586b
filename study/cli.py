"""The ``python -m study`` command line: set up a database, import, inspect, verify, export.

Every command takes ``--db PATH`` (default: the ``CLINVAL_DB`` setting) and ``--token TOKEN``
(default: the ``CLINVAL_TOKEN`` setting): without a token a command acts as the local operator
(``system:cli:<account>``), who holds the database file but is no person; with a person's
personal access token it acts as that person (``_caller``, the one place that decides). Opening,
closing and unblinding a study (``open``, ``close``, ``unblind``) are a person's own acts and
need a token, and so does a new version of a locked protocol (``lock``, the coordinator's).
Exit codes:

- 0: done;
- 1: ``audit verify`` found the audit trail altered or incomplete, a stored row that differs from
  its event, or (``--expect``) a head hash the chain no longer holds;
- 2: the input was wrong (unknown study, malformed file, missing database, bad flag, ...); the
  reason is printed on stderr as one line, or a short list for a rejected file. Nothing was
  changed in the database, with one exception: a refusal of the caller's permission is recorded
  as an ``access.denied`` event (``study.access.require``: the audit trail keeps every refused
  attempt). Every other refusal is found before anything is written.

A traceback means a bug in Clinval, never a mistake by the person typing. Commands other than
``init`` and ``demo`` refuse to create a database that is not there, so a mistyped ``--db`` is
reported instead of silently starting an empty study database.

DuckDB allows one process per database file: while the app is running, stop it before using the
CLI on the same file (the CLI says so instead of failing obscurely). ``status`` and ``audit
verify`` open the database read-only. Whatever is printed is escaped for the terminal (control,
invisible and direction-changing characters), and error messages are capped in length.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any, NoReturn, TextIO

import polars as pl

from analysis.terminal import INVISIBLE, escape
from study import settings
from study.errors import StudyError, first_line

EXIT_OK = 0
EXIT_AUDIT_BROKEN = 1
EXIT_BAD_INPUT = 2

EXPORT_FORMATS = ("csv", "parquet", "dta", "sav")  # study.exporting.FORMATS, without importing it
MODES = ("side_by_side", "pairwise", "separate")  # study.assignment.MODES, without importing it
ROLE_CHOICES = ("admin", "coordinator", "rater", "statistician")  # study.access.ROLES, likewise
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


class CliError(StudyError):
    """A mistake on the command line that no service would see (e.g. a missing file)."""


TOKEN_SETTING = "CLINVAL_TOKEN"


def _caller(args: argparse.Namespace, store: Any):
    """The caller every command acts as, decided here only.

    With a personal access token (``--token``, else the ``CLINVAL_TOKEN`` setting), the person
    it belongs to (``tokens.caller_for_token``: refused when unknown, expired, revoked, or the
    person holds no role); the audit trail then records that person, and the token's id in each
    event. Without one, the local operator, named by the OS account (``system:cli:alice``):
    whoever can run this holds the database file itself, but is no person. Resolved once per
    command (a token's last use is recorded once).
    """
    from study.access import system_caller
    from study.services import tokens

    resolved = getattr(args, "resolved_caller", None)
    if resolved is not None:
        return resolved
    token = getattr(args, "token", None)
    if token is None:
        token = str(settings.get(TOKEN_SETTING)) or None
    elif not token.strip():
        raise CliError("--token is empty; pass a personal access token, or leave --token out")
    if token is not None:
        resolved = tokens.caller_for_token(store, token)
    else:
        try:
            account = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry (some containers)
            account = None
        resolved = system_caller("cli", account)
    args.resolved_caller = resolved
    return resolved


def _person(args: argparse.Namespace, store: Any, act: str, role: str):
    """``_caller``, refusing the operator: ``act`` is a ``role``'s own act (separation of
    duties), and the operator at the command line is no person."""
    caller = _caller(args, store)
    if caller.is_system:
        raise _not_the_operators(act, role)
    return caller


def _not_the_operators(act: str, role: str) -> CliError:
    """The refusal of ``act``, a ``role``'s own act, to the operator: it says how to act as them."""
    return CliError(
        f"{act} is a {role}'s own act, and the command line's operator is no person: pass "
        f"the {role}'s personal access token with --token TOKEN (or set {TOKEN_SETTING}); "
        "they create one on the app's Account screen"
    )


# --- opening the database --------------------------------------------------------------------


def _open_store(db: Path, *, create: bool, read_only: bool = False, create_key: bool = False):
    """The migrated ``Store`` at ``db``; refuse a missing file unless ``create``.

    ``read_only``: for commands that only read (``status``, ``audit verify``): the database is
    neither migrated nor written. The store's refusals (not a database file, not Clinval's,
    locked by another process) are worded by ``_explain``.
    """
    from study.store import Store

    if db.is_dir():
        raise CliError(f"--db {db} is a folder, not a database file")
    if not create and not db.is_file():
        raise CliError(f"no database at {db}; run `python -m study init --db {db}` or `demo`")
    for folder in db.parents:
        # Store creates missing folders; a file in the way would otherwise read "File exists".
        if folder.exists():
            if not folder.is_dir():
                raise CliError(f"--db {db}: {folder} is a file, not a folder")
            break
    return Store(db, read_only=read_only, create_key=create_key)


MAX_MESSAGE_CHARS = 600
"""Longest error line printed; the rest is counted ("and N more characters")."""
MAX_MESSAGE_LINES = 12


def _check_id_text(flag: str, value: str) -> None:
    """Refuse an id typed on the command line that is not valid UTF-8 (the shell passed bytes
    that decode to nothing), or that holds control, invisible or direction-changing characters
    (it would show as another id)."""
    if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise CliError(f"{flag} is not valid UTF-8 text")
    bad = sorted({c for c in value if not c.isprintable() or ord(c) in INVISIBLE})
    if bad:
        shown = ", ".join(f"U+{ord(c):04X}" for c in bad[:5])
        raise CliError(
            f"{flag} holds control or invisible characters ({shown}); type the id plainly"
        )


SNIFF_BYTES = 65_536


def _text_file(path: Path) -> Path:
    """Refuse a .csv/.jsonl/.ndjson file that is binary (NUL bytes in its first 64 KiB): reading
    it as text costs seconds and gigabytes to say nothing useful."""
    if path.suffix.lower() in (".csv", ".jsonl", ".ndjson", ".json", ".tsv", ".txt"):
        try:
            with path.open("rb") as handle:
                head = handle.read(SNIFF_BYTES)
        except OSError as exc:
            raise CliError(f"{path}: {exc.strerror or exc}") from None
        if b"\x00" in head:
            raise CliError(f"{path} is not a text file (it holds NUL bytes); export it as text")
    return path


class _Escaping:
    """A text stream that escapes what it is given (``analysis.terminal.escape``) before
    writing it."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(escape(text))

    def flush(self) -> None:
        self._stream.flush()


def _capped(message: str) -> str:
    """At most ``MAX_MESSAGE_LINES`` lines of at most ``MAX_MESSAGE_CHARS`` characters."""
    lines = message.splitlines() or [""]
    kept = []
    for line in lines[:MAX_MESSAGE_LINES]:
        if len(line) > MAX_MESSAGE_CHARS:
            line = f"{line[:MAX_MESSAGE_CHARS]}... (and {len(line) - MAX_MESSAGE_CHARS:,} more characters)"
        kept.append(line)
    if len(lines) > MAX_MESSAGE_LINES:
        kept[-1] += f" (and {len(lines) - MAX_MESSAGE_LINES:,} more lines)"
    return "\n".join(kept)


def _existing_file(path: Path) -> Path:
    if not path.exists():
        raise CliError(f"no such file: {path}")
    if not path.is_file():
        raise CliError(f"not a file: {path}")
    return path


# --- commands --------------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace, out: TextIO) -> int:
    from study.services import studies
    from study.store import utc_now

    existed = args.db.is_file()
    if args.study is not None and not args.study.strip():
        raise CliError("init --study needs a name (it was empty)")
    if args.id is not None:
        _check_id_text("--id", args.id)
    opened_at = utc_now()
    # init is where an existing database gets its audit key, if it has none yet
    with _open_store(args.db, create=True, create_key=True) as store:
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
                store, _caller(args, store), args.study, study_id=args.id
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
        _check_new_file("--tokens", args.tokens)
    existed = args.db.is_file()
    with _open_store(args.db, create=True) as store:
        caller = _caller(args, store)
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
            _print_status(store, caller, study_id, out)
    if args.tokens is not None:
        print(
            f"personal access tokens of {len(issued)} demo people written to {args.tokens} "
            f"(only you can read it; valid {tokens.DEFAULT_DAYS} days): {', '.join(issued)}",
            file=out,
        )
    return EXIT_OK


def _check_new_file(flag: str, path: Path) -> None:
    """Refuse ``path`` for a file this command is to create, before anything is stored."""
    if path.exists():
        raise CliError(f"{flag} {path} exists already; name a new file (it is never overwritten)")
    if not path.parent.is_dir():
        raise CliError(f"no such folder for {flag}: {path.parent}")


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


def cmd_results(args: argparse.Namespace, out: TextIO) -> int:
    """Print the study's results table (``analyses.study_results``' ``results``): the rows the
    Analysis screen, the report and the bundle's results.json / results.csv show, byte for byte
    the bundle's file (``exporting.results_json`` / ``results_csv``). A statistician's read, with
    their token: the operator is no person, and results by arm are read after unblinding."""
    from study import exporting
    from study.services import analyses

    _check_id_text("--study", args.study)
    with _open_store(args.db, create=False) as store:
        caller = _person(args, store, f"results --study {args.study}", "statistician")
        table = analyses.results_rows(store, caller, args.study)
    text = exporting.results_json(table) if args.format == "json" else exporting.results_csv(table)
    out.write(text)
    return EXIT_OK


def _lifecycle_step(act: str, role: str) -> Callable[[argparse.Namespace, TextIO], int]:
    """The command for one step of a study's lifecycle: a person's own act, never the
    operator's (``_person``)."""

    def command(args: argparse.Namespace, out: TextIO) -> int:
        from study.services import lifecycle, studies

        step = {
            "open": lifecycle.start_rating,
            "close": lifecycle.close_rating,
            "unblind": lifecycle.unblind,
        }[act]
        _check_id_text("--study", args.study)
        with _open_store(args.db, create=False) as store:
            caller = _person(args, store, f"{act} --study {args.study}", role)
            step(store, caller, args.study)
            status = studies.get_study(store, caller, args.study)["status"]
        print(f"{args.study}: {status} (by {caller.actor}, token {caller.token})", file=out)
        return EXIT_OK

    return command


def _import(kind: str) -> Callable[[argparse.Namespace, TextIO], int]:
    def command(args: argparse.Namespace, out: TextIO) -> int:
        from study.services import content

        importer = {
            "cases": content.import_cases,
            "arms": content.import_arms,
            "answers": content.import_answers,
        }[kind]
        _check_id_text("--study", args.study)
        path = _text_file(_existing_file(args.file))
        with _open_store(args.db, create=False) as store:
            result = importer(store, _caller(args, store), args.study, path)
        print(f"{args.study}: {result}", file=out)
        return EXIT_OK

    return command


def cmd_import_healthbench(args: argparse.Namespace, out: TextIO) -> int:
    from study.services import content

    _check_id_text("--study", args.study)
    path = _text_file(_existing_file(args.file))
    with _open_store(args.db, create=False) as store:
        results = content.import_healthbench(store, _caller(args, store), args.study, path)
    for result in results:
        print(f"{args.study}: {result}", file=out)
    return EXIT_OK


def cmd_import_table(args: argparse.Namespace, out: TextIO) -> int:
    """Import any table through a column mapping (``content.import_table``); the mapping is
    kept with the study under --name (default: the mapping file's name without .toml)."""
    from study.services import content

    _check_id_text("--study", args.study)
    path = _text_file(_existing_file(args.file))
    mapping_path = _existing_file(args.mapping)
    try:
        mapping_text = mapping_path.read_bytes()
    except OSError as exc:
        raise CliError(f"{mapping_path}: {exc.strerror or exc}") from None
    name = args.name if args.name is not None else mapping_path.stem
    with _open_store(args.db, create=False) as store:
        caller = _caller(args, store)
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

    path = _existing_file(args.file)
    with _open_store(args.db, create=False) as store:
        result = rating_imports.import_ratings(store, _caller(args, store), args.study, path)
    print(f"{args.study}: {result}", file=out)
    return EXIT_OK


PSEUDONYM_ISSUER = "pseudonymous"
"""Issuer recorded for raters added by id only (``add-raters``): pseudonymous people of a study
who never sign in, e.g. the readers of a study rated elsewhere."""


def cmd_add_raters(args: argparse.Namespace, out: TextIO) -> int:
    """Every rater is added, or none: checked first, then written in one transaction (an unknown
    study used to be found only after the first person and their event were stored)."""
    from study.access import require
    from study.services import people, studies

    _check_id_text("--study", args.study)
    for rater in args.raters:
        _check_id_text(f"RATER {rater!r}", rater)
    added: list[tuple[str, bool]] = []
    with _open_store(args.db, create=False) as store:
        caller = _caller(args, store)
        # asked before the transaction: a refusal's access.denied event is written in its own
        # transaction, and the one below would roll it back with everything else
        require(store, caller, "manage_users", service="people.ensure_user")
        studies.get_study(store, caller, args.study)
        with store.transaction():
            for rater in args.raters:
                user_id = people.ensure_user(
                    store,
                    caller,
                    issuer=f"{PSEUDONYM_ISSUER}:{args.study}",
                    subject=rater,
                    user_id=rater,
                )
                added.append(
                    (user_id, people.grant_role(store, caller, args.study, user_id, "rater"))
                )
    for user_id, granted in added:
        print(f"{args.study}: rater {user_id}" + ("" if granted else " (already)"), file=out)
    return EXIT_OK


def cmd_users_add(args: argparse.Namespace, out: TextIO) -> int:
    from study.services import people

    _check_id_text("--email", args.email)
    _check_id_text("--name", args.name)
    if args.study is not None:
        _check_id_text("--study", args.study)
    if args.role == "admin" and args.study is not None:
        raise CliError("--role admin holds in every study; leave out --study")
    from study.errors import ValidationError

    if not args.name.strip():
        raise CliError("--name is empty; give the person's name as the app should show it")
    with _open_store(args.db, create=False) as store:
        try:
            made = people.invite(
                store,
                _caller(args, store),
                args.study,
                args.email,
                args.role,
                display_name=args.name,
            )
        except ValidationError as exc:  # one address, so one line
            raise CliError(f"--email {exc.problems[0].reason}") from None
    where = (
        f" in {args.study}" if args.study else (" (every study)" if args.role != "admin" else "")
    )
    who = made["user_id"]
    if made["created"]:
        said = f"added {who} as {args.role}{where}; they bind on their first sign-in with {who}"
    elif made["granted"]:
        said = f"{who} exists already: granted {args.role}{where}"
    else:
        said = f"{who} holds {args.role}{where} already: nothing changed"
    print(said, file=out)
    return EXIT_OK


def cmd_users_list(args: argparse.Namespace, out: TextIO) -> int:
    from study.services import people

    with _open_store(args.db, create=False) as store:
        frame = people.list_people(store, _caller(args, store))
    if frame.height == 0:
        print("no people yet; add the first admin with `users add --role admin`", file=out)
        return EXIT_OK
    rows = []
    for row in frame.iter_rows(named=True):
        if row["signed_in"]:
            signed = f"yes, first {row['first_sign_in']:%Y-%m-%d %H:%M} UTC"
        else:
            signed = "no (waiting for a verified sign-in)" if row["waiting"] else "no"
        rows.append(
            (
                row["id"],
                row["display_name"] or "",
                row["email"] or "",
                row["roles"] or "none",
                signed,
            )
        )
    _print_table(("id", "name", "e-mail", "roles", "signed in"), rows, out)
    return EXIT_OK


def cmd_tokens_list(args: argparse.Namespace, out: TextIO) -> int:
    from study.services import tokens

    if args.user is not None:
        _check_id_text("--user", args.user)
    with _open_store(args.db, create=False) as store:
        frame = tokens.list_tokens(store, _caller(args, store), user_id=args.user)
    if frame.is_empty():
        print(
            "no personal access tokens (a person makes one on the app's Account screen)", file=out
        )
        return EXIT_OK

    def when(value: Any) -> str:
        return "" if value is None else f"{value:%Y-%m-%d %H:%M}"

    rows = [
        (
            r["id"],
            r["user_id"],
            r["name"],
            when(r["created_at"]),
            when(r["expires_at"]),
            when(r["last_used_at"]),
            r["status"],
        )
        for r in frame.iter_rows(named=True)
    ]
    header = ("id", "person", "name", "created (UTC)", "expires", "last used", "status")
    _print_table(header, rows, out)
    return EXIT_OK


def cmd_tokens_revoke(args: argparse.Namespace, out: TextIO) -> int:
    from study.services import tokens

    _check_id_text("ID", args.id)
    # the id as listed, or as the token begins (clv_<id>_...), the whole token included
    token_id = args.id.strip().removeprefix(f"{tokens.TOKEN_PREFIX}_").split("_")[0]
    with _open_store(args.db, create=False) as store:
        tokens.revoke_token(store, _caller(args, store), token_id)
    print(f"token {token_id} revoked: it no longer works", file=out)
    return EXIT_OK


def cmd_attach_instrument(args: argparse.Namespace, out: TextIO) -> int:
    """Add the instrument to the library and attach it to the draft, both or neither: an
    instrument refused by the study (unknown, not a draft, an item clash) used to stay behind in
    the library."""
    from study.access import require
    from study.instruments import get_builtin, load_instrument
    from study.services import instrument_library

    _check_id_text("--study", args.study)
    given = Path(args.instrument)
    instrument = (
        load_instrument(_existing_file(given))
        if given.suffix.lower() in (".toml", ".json")
        else get_builtin(args.instrument)
    )
    with _open_store(args.db, create=False) as store:
        caller = _caller(args, store)
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
            protocol = json.loads(_existing_file(args.protocol).read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise CliError(f"{args.protocol} is not a JSON file: {exc}") from None
        if not isinstance(protocol, dict):
            raise CliError(f"{args.protocol} must hold a JSON object {{...}}")
    _check_id_text("--study", args.study)
    with _open_store(args.db, create=False) as store:
        caller = _caller(args, store)
        # a person's lock goes straight to the service, which says what they lack; the operator
        # is told here that amending is not theirs, instead of a refusal recorded as access.denied
        if caller.is_system and studies.get_study(store, caller, args.study)["status"] != "draft":
            _refuse_operator_amendment(args)
        digest = design.lock_protocol(store, caller, args.study, protocol, reason=args.reason)
        coverage = design.arm_coverage(store, _caller(args, store), args.study)
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
    raise _not_the_operators(f"a new protocol version (lock --study {args.study})", "coordinator")


def cmd_remove(args: argparse.Namespace, out: TextIO) -> int:
    from study.services import content

    remover = {
        "answers": content.remove_answers,
        "arms": content.remove_arms,
        "cases": content.remove_cases,
    }[args.what]
    with _open_store(args.db, create=False) as store:
        removed = remover(store, _caller(args, store), args.study, list(args.ids))
    print(f"{args.study}: {removed} {args.what} removed", file=out)
    return EXIT_OK


def cmd_instruments_list(args: argparse.Namespace, out: TextIO) -> int:
    from study.instruments import list_builtin

    rows = [
        (i.key, i.version, str(len(i.items)), "synthetic" if i.synthetic else "", i.title)
        for i in list_builtin()
    ]
    _print_table(("key", "version", "items", "", "title"), rows, out)
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
    _print_table(("item", "type", "level", "direction", "scope", "required", "options"), rows, out)
    return EXIT_OK


def cmd_instruments_validate(args: argparse.Namespace, out: TextIO) -> int:
    from study.instruments import load_instrument

    instrument = load_instrument(_existing_file(args.file))
    print(
        f"valid: {instrument.key} {instrument.version}, {len(instrument.items)} items, "
        f"content hash {instrument.content_hash()}",
        file=out,
    )
    return EXIT_OK


def cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    from study.services import studies

    if args.study is not None:
        _check_id_text("--study", args.study)
    with _open_store(args.db, create=False, read_only=True) as store:
        _require_current_schema(store, args.db)
        if args.study:
            ids = [args.study]
        else:
            ids = studies.list_studies(store, _caller(args, store)).get_column("id").to_list()
            if not ids:
                print(f"no studies in {args.db}", file=out)
                return EXIT_OK
        for n, study_id in enumerate(ids):
            if n:
                print(file=out)
            _print_status(store, _caller(args, store), study_id, out)
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


def _print_status(store: Any, caller: Any, study_id: str, out: TextIO) -> None:
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
    from study import audit

    expect = args.expect
    if expect is not None and not _is_hash(expect):
        raise CliError("--expect takes a head hash: 64 hexadecimal digits")
    with _open_store(args.db, create=False, read_only=True) as store:
        report = audit.verify(store, expect=expect)
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
    err = _Escaping(sys.stderr)
    if report.seq is None:
        print(f"audit chain BROKEN: {report.problem}", file=err)
    else:
        print(f"audit chain BROKEN at event {report.seq}: {report.problem}", file=err)
    if report.unchecked:
        print(f"not checked: {report.unchecked}", file=err)
    return EXIT_AUDIT_BROKEN


def cmd_assign(args: argparse.Namespace, out: TextIO) -> int:
    from study.services import design

    with _open_store(args.db, create=False) as store:
        # the seed is a blinding secret, never printed: the one sealed at the lock if there is
        # one, else --seed, else drawn here (and sealed with the design when it is stored)
        seed = args.seed
        drawn = seed is None and not design.seed_is_sealed(store, _caller(args, store), args.study)
        if drawn:
            seed = int.from_bytes(os.urandom(7), "big")
        options = {
            "raters_per_case": args.raters_per_case,
            "seed": seed,
            "mode": args.mode,
            "match_specialty": args.match_specialty,
        }
        summary = design.preview_assignments(store, _caller(args, store), args.study, **options)
        _print_design(summary, args, out)
        _print_leaks(design.leak_report(store, _caller(args, store), args.study), out)
        if drawn and args.dry_run:
            print(
                "\nthe seed was drawn for this run only: pass --seed S to preview and then store "
                "one and the same design",
                file=out,
            )
        if not args.dry_run:
            stored = design.make_assignments(store, _caller(args, store), args.study, **options)
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
    _print_table(
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
    _print_table(("rater", "arm", *grid.columns[2:]), grid.rows(), out)
    print("\nrater-pair overlap (cases in common)", file=out)
    overlap = summary["overlap"]
    _print_table(("rater", "rater", "shared"), overlap.rows(), out)


def _span(counts: pl.Series) -> str:
    """ "n" when every rater has n, else "lo-hi"."""
    low, high = counts.min(), counts.max()
    return f"{low}" if low == high else f"{low}-{high}"


def _print_leaks(report: pl.DataFrame, out: TextIO) -> None:
    from study.blinding import AUC_WARNING

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
    _print_table(header, rows, out)
    for r in report.filter(pl.col("warning")).iter_rows(named=True):
        print(
            f"warning: length and format alone tell arm {r['arm_id']} apart "
            f"(cross-validated AUC {r['format_auc']:.2f} > {AUC_WARNING}): raters may guess the source",
            file=out,
        )


def _is_hash(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdefABCDEF" for c in text)


def cmd_export(args: argparse.Namespace, out: TextIO) -> int:
    _check_id_text("--study", args.study)
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

        with _open_store(args.db, create=False) as store:
            # the items give the value labels of .dta and .sav files
            items = instrument_library.study_items(store, _caller(args, store), args.study)

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
                store, _caller(args, store), args.study, write=write, formats=[fmt]
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
        with _open_store(args.db, create=False) as store:
            manifest = exports.write_bundle(
                store, _caller(args, store), args.study, work, formats=formats, raw_csv=args.raw_csv
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


def _print_table(header: Sequence[str], rows: Sequence[Sequence[str]], out: TextIO) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print(
            "  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip(), file=out
        )


# --- parsing ---------------------------------------------------------------------------------


def _path(text: str) -> Path:
    return Path(text).expanduser()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; every subcommand accepts ``--db``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--db",
        type=_path,
        # SUPPRESS: --db may come before or after the (sub)command without one erasing the other
        default=argparse.SUPPRESS,
        metavar="PATH",
        help="DuckDB database file (default: $CLINVAL_DB, else data/clinval.duckdb)",
    )
    common.add_argument(
        "--token",
        default=argparse.SUPPRESS,
        metavar="TOKEN",
        help=f"a personal access token (Account screen): act as its person, not as the "
        f"operator (default: ${TOKEN_SETTING}, which keeps it out of the process list)",
    )
    study = argparse.ArgumentParser(add_help=False)
    study.add_argument("--study", required=True, metavar="ID", help="study id")

    parser = argparse.ArgumentParser(
        parents=[common],
        prog="python -m study",
        description="Clinval study administration: set up, import, inspect, verify, export.",
        epilog="Exit codes: 0 done, 1 audit trail broken, 2 bad input (nothing changed, but "
        "for the access.denied event that records a refused permission).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser(
        "init",
        parents=[common],
        help="create or migrate the database",
        description=(
            "Create the database (or apply pending migrations); optionally create a draft study."
        ),
    )
    p.add_argument("--study", metavar="NAME", help="also create a draft study with this name")
    p.add_argument("--id", metavar="ID", help="the new study's id (default: a slug of NAME)")
    p.set_defaults(func=cmd_init, create=True)

    p = commands.add_parser(
        "demo",
        parents=[common],
        help="build the synthetic demo study",
        description="Build the synthetic demo study; refused if the database already holds one.",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the assignment and the simulated raters (default: the demo's own)",
    )
    p.add_argument(
        "--tokens",
        type=_path,
        default=None,
        metavar="FILE",
        help="also write a new JSON file (mode 600) mapping each demo person's e-mail to a "
        "fresh personal access token; on an existing database only if it is a demo database",
    )
    p.set_defaults(func=cmd_demo)

    for act, role, what in (
        ("open", "coordinator", "open rating of a locked study (locked -> rating)"),
        ("close", "coordinator", "close rating (rating -> closed)"),
        ("unblind", "statistician", "unblind a closed study (closed -> unblinded)"),
    ):
        p = commands.add_parser(
            act,
            parents=[common, study],
            help=f"{what}: the {role}'s act, with their --token",
            description=(
                f"{what[0].upper()}{what[1:]}. A {role}'s own act: it needs the {role}'s "
                f"personal access token (--token or ${TOKEN_SETTING}); the operator is no person."
            ),
        )
        p.set_defaults(func=_lifecycle_step(act, role))

    p = commands.add_parser(
        "results",
        parents=[common, study],
        help="print the study's results table (a statistician's read, with their --token)",
        description=(
            "Print the results table of an unblinded study: one row per planned analysis "
            "(role primary, secondary or sensitivity; in_plan false for the sensitivity analyses "
            "Clinval adds), with item, statistic, method, margin, direction, estimate, ci_low, "
            "ci_high, p_value, p_adjusted, conclusion and more: the rows of the Analysis screen, "
            "the report and the bundle's results.json / results.csv. JSON is "
            '{"results": [...]}. Needs the statistician\'s personal access token.'
        ),
    )
    p.add_argument(
        "--format",
        choices=("json", "csv"),
        default="json",
        help='json (default): {"results": [row, ...]}; csv: one line per row, with a header',
    )
    p.set_defaults(func=cmd_results)

    for kind in ("cases", "arms", "answers"):
        p = commands.add_parser(
            f"import-{kind}",
            parents=[common, study],
            help=f"import {kind} from a .csv, .jsonl or .parquet file",
            description=(
                f"Import {kind} into a draft study. All rows are checked first: one problem "
                "anywhere and nothing is stored. Rows identical to stored ones are skipped."
            ),
        )
        p.add_argument("file", type=_path, metavar="FILE")
        p.set_defaults(func=_import(kind))

    p = commands.add_parser(
        "import-table",
        parents=[common, study],
        help="import any .csv/.jsonl/.parquet/.xlsx table through a column mapping (TOML)",
        description=(
            "Import a table whose columns are not Clinval's: MAPPING.toml says which column is "
            "the case id (or a hash of the question, or the row number), the question, context, "
            "specialty and tags, and either one answer column per arm (wide) or an arm column "
            "and an answer column (long), with each arm's kind and provenance (see "
            "study/mapping.py and the README's recipe). Rows that repeat a case, arm and text "
            "are kept once. Everything is checked first: one problem anywhere and nothing is "
            "stored. The mapping is kept with the study under --name."
        ),
    )
    p.add_argument("file", type=_path, metavar="FILE")
    p.add_argument("--mapping", type=_path, required=True, metavar="MAPPING.toml")
    p.add_argument("--name", help="name the mapping is kept under (default: its file's stem)")
    p.add_argument(
        "--preview", action="store_true", help="map and check only: print the counts, store nothing"
    )
    p.set_defaults(func=cmd_import_table)

    p = commands.add_parser(
        "import-healthbench",
        parents=[common, study],
        help="import a HealthBench .jsonl file: conversations, their rubrics, ideal completions",
        description=(
            "Import HealthBench's JSONL as published (prompt, prompt_id, rubrics, example_tags, "
            "ideal_completions_data) into a draft study: each conversation becomes a case with "
            "its rubric criteria, each ideal completion an answer of the clinician arm "
            "healthbench_physicians. All lines are checked first: one problem anywhere and "
            "nothing is stored. Model answers come in with import-answers."
        ),
    )
    p.add_argument("file", type=_path, metavar="FILE")
    p.set_defaults(func=cmd_import_healthbench)

    p = commands.add_parser(
        "remove",
        parents=[common, study],
        help="remove answers, arms or cases that a draft does not use (audited)",
        description=(
            "Remove from a draft: answers that no assignment shows; arms and cases once their "
            "answers are removed (and no rater is assigned to the case). All or nothing."
        ),
    )
    p.add_argument("what", choices=("answers", "arms", "cases"))
    p.add_argument("ids", nargs="+", metavar="ID")
    p.set_defaults(func=cmd_remove)

    p = commands.add_parser(
        "import-ratings",
        parents=[common, study],
        help="import ratings collected elsewhere (.csv, .jsonl or .parquet) into a locked study",
        description=(
            "Import one row per rating: case_id, rater_id, item, value, and arm_id for items "
            "rated per answer; optional rated_at, seconds, comment. The study must be locked and "
            "its raters added (add-raters). All rows are checked first: one problem anywhere "
            "and nothing is stored. The study records that its ratings were imported."
        ),
    )
    p.add_argument("file", type=_path, metavar="FILE")
    p.set_defaults(func=cmd_import_ratings)

    p = commands.add_parser(
        "add-raters",
        parents=[common, study],
        help="add pseudonymous raters (people with the rater role) to a study",
        description=(
            "Record each RATER id as a pseudonymous person of the study (who never signs in) "
            "and grant them the rater role there."
        ),
    )
    p.add_argument("raters", nargs="+", metavar="RATER")
    p.set_defaults(func=cmd_add_raters)

    p = commands.add_parser(
        "users", parents=[common], help="add people (invitations by e-mail) and list them"
    )
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = sub.add_parser(
        "add",
        parents=[common],
        help="invite a person by e-mail with a role (the first admin is made this way)",
        description=(
            "Record a person by e-mail with a role, or grant the role to the person who has that "
            "address already. A new person binds to the first sign-in whose ID token carries "
            "the address with email_verified true; from then on only that identity is them."
        ),
    )
    q.add_argument("--email", required=True, metavar="E", help="their e-mail address")
    q.add_argument("--name", required=True, metavar="N", help="their name, as the app shows it")
    q.add_argument("--role", required=True, choices=ROLE_CHOICES, help="the role to grant")
    q.add_argument(
        "--study",
        metavar="ID",
        default=None,
        help="the study where the role holds (default: every study; admin always holds in all)",
    )
    q.set_defaults(func=cmd_users_add)
    q = sub.add_parser(
        "list", parents=[common], help="list people, their roles, and whether they signed in"
    )
    q.set_defaults(func=cmd_users_list)

    p = commands.add_parser(
        "tokens",
        parents=[common],
        help="list or revoke personal access tokens (one's own with --token; the operator: anyone's)",
    )
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = sub.add_parser(
        "list",
        parents=[common],
        help="the tokens of the --token's person, or of --user (the operator without --user: all)",
    )
    q.add_argument("--user", metavar="ID", default=None, help="whose tokens (an admin's view)")
    q.set_defaults(func=cmd_tokens_list)
    q = sub.add_parser(
        "revoke",
        parents=[common],
        help="revoke a token by its id (the part after clv_): it stops working at once",
    )
    q.add_argument("id", metavar="ID")
    q.set_defaults(func=cmd_tokens_revoke)

    p = commands.add_parser(
        "attach-instrument",
        parents=[common, study],
        help="add an instrument (built-in key, or a .toml/.json file) and attach it to a draft",
    )
    p.add_argument("instrument", metavar="KEY_OR_FILE")
    p.set_defaults(func=cmd_attach_instrument)

    p = commands.add_parser(
        "lock",
        parents=[common, study],
        help="lock the study's protocol (a JSON object) and print each arm's coverage",
    )
    p.add_argument("--protocol", type=_path, metavar="FILE", help="protocol JSON (default: {})")
    p.add_argument(
        "--reason",
        default=None,
        help="why, for a protocol version after the first (the coordinator's act: with their "
        f"--token or ${TOKEN_SETTING})",
    )
    p.set_defaults(func=cmd_lock)

    p = commands.add_parser(
        "instruments", parents=[common], help="list, show or validate rating instruments"
    )
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = sub.add_parser("list", parents=[common], help="list the built-in instruments")
    q.set_defaults(func=cmd_instruments_list)
    q = sub.add_parser("show", parents=[common], help="show a built-in instrument's items")
    q.add_argument("key", metavar="KEY")
    q.add_argument("--format", choices=("table", "json"), default="table")
    q.set_defaults(func=cmd_instruments_show)
    q = sub.add_parser("validate", parents=[common], help="check an instrument file (.toml/.json)")
    q.add_argument("file", type=_path, metavar="FILE")
    q.set_defaults(func=cmd_instruments_validate)

    p = commands.add_parser(
        "status", parents=[common], help="counts and progress of one study (default: all)"
    )
    p.add_argument("--study", metavar="ID", help="study id (default: every study)")
    p.set_defaults(func=cmd_status)

    p = commands.add_parser("audit", parents=[common], help="audit trail tools")
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = sub.add_parser(
        "verify",
        parents=[common],
        help="check the hash chain; exit 1 naming the first altered or removed event",
    )
    q.add_argument(
        "--kinds",
        action="store_true",
        help="also print the number of events of every declared kind",
    )
    q.add_argument(
        "--expect",
        metavar="HASH",
        help="a head hash recorded earlier (an export's, or this command's); exit 1 if the chain "
        "no longer holds it (rewritten or cut back)",
    )
    q.set_defaults(func=cmd_audit_verify)

    p = commands.add_parser(
        "assign",
        parents=[common, study],
        help="design the assignment of raters to cases (print it with --dry-run, else store it)",
        description=(
            "Design which rater sees which case and in which order, from the study's raters "
            "(people with the rater role), and print its summary: loads per rater, raters per "
            "case, arm x position counts per rater, rater-pair overlap. Without --dry-run the "
            "design is stored for the lock (draft or locked studies)."
        ),
    )
    p.add_argument("--raters-per-case", type=int, default=3, metavar="N", help="default 3")
    p.add_argument("--mode", choices=MODES, default="side_by_side", help="default side_by_side")
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="the design's seed (default: the one sealed at the lock, else drawn; never printed)",
    )
    p.add_argument(
        "--match-specialty",
        action="store_true",
        help="only raters of a case's specialty rate it",
    )
    p.add_argument("--dry-run", action="store_true", help="print the design, store nothing")
    p.set_defaults(func=cmd_assign)

    p = commands.add_parser(
        "export",
        parents=[common, study],
        help="write the study's ratings in long format (one row per rating), or the whole bundle",
        description=(
            "Write one row per current submitted rating: study, case, arm, answer, rater, item, "
            "value, value_text, position, label, seconds, revision, instrument, "
            "instrument_version, created_at, submitted_at (UTC), chosen_answer, chosen_arm, "
            "value_label, source_guess, as CSV, Parquet, Stata .dta or SPSS .sav (with variable "
            "and value labels). --bundle writes the ratings in every --format with the codebook "
            "(Markdown and JSON), the HTML report and the reproducibility manifest into a new "
            "folder or a .zip file. The export is recorded in the audit trail."
        ),
    )
    p.add_argument(
        "--out",
        type=_path,
        required=True,
        metavar="PATH",
        help="output file; with --bundle a new (or empty) folder or a .zip file",
    )
    p.add_argument(
        "--format",
        default=None,
        metavar="FORMAT[,FORMAT]",
        help=f"{', '.join(EXPORT_FORMATS)}: the file's format (default: from the --out suffix); "
        "with --bundle a comma-separated list (default: all)",
    )
    p.add_argument(
        "--bundle",
        action="store_true",
        help="write the bundle: ratings, codebook.md/.json, report.html, manifest.json",
    )
    p.add_argument(
        "--raw-csv",
        action="store_true",
        help="write text cells as stored; by default a CSV cell starting with = + - @ (which a "
        "spreadsheet would run as a formula) is written with a leading '",
    )
    p.set_defaults(func=cmd_export)
    return parser


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Run one command; return its exit code (argparse itself exits 2 on a bad command line)."""
    out = _Escaping(out or sys.stdout)
    parser = build_parser()
    args = parser.parse_args(argv)
    created: list[Path] = []
    try:
        if getattr(args, "db", None) is None:
            args.db = settings.db_path()
        created = _not_yet_there(args.db, settings.audit_key_path())
        return args.func(args, out)
    except BrokenPipeError:
        # the reader stopped early (`status | head -1`): not an error of ours, and whatever
        # the command stored is stored. Point stdout at devnull so that the interpreter's final
        # flush does not raise again (Python docs, "Note on SIGPIPE").
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:
        message = _explain(exc, args)
        if message is None:
            raise  # a bug in Clinval: the traceback is the report
        _remove_created(created)
        print(f"error: {_capped(message)}", file=_Escaping(sys.stderr))
    return EXIT_BAD_INPUT


def _not_yet_there(db: Path, key: Path) -> list[Path]:
    """What a command may create (the database, its log, its folders, the audit key) and is not
    there yet: removed again if the command fails, so that no empty database is left behind."""
    paths = [db, db.with_name(db.name + ".wal"), key]
    paths += [folder for folder in (*db.parents, *key.parents) if not folder.exists()]
    return [p for p in paths if not p.exists()]


def _remove_created(paths: list[Path]) -> None:
    for path in paths:
        if path.is_file():
            path.unlink(missing_ok=True)
    for path in sorted((p for p in paths if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with suppress(OSError):  # not empty: someone else's now
            path.rmdir()


def _explain(exc: Exception, args: argparse.Namespace) -> str | None:
    """The message for a failure of the user's making (exit 2), or ``None`` for a bug.

    The one place that decides which failures are the user's: a ``StudyError``; an ``OSError``
    about a path given on the command line (or its folders); DuckDB unable to use the ``--db``
    file (not a database, unreadable, locked by another process); and a database constraint
    refusing a value that no service validated (the transaction is rolled back: nothing stored).
    """
    # Imported here, not at the top: commands that never open a database stay fast to start.
    # store.py owns DuckDB; these two exception types are imported only to tell "the --db file
    # cannot be used" from a bug, as store.py exposes no narrower alias than DatabaseError (every
    # DuckDB error, bugs included).
    from duckdb import IOException, PermissionException

    from study.store import ConstraintViolation, DatabaseUnavailable

    if isinstance(exc, DatabaseUnavailable):
        return f"cannot use the database {getattr(args, 'db', '')}: {exc.reason}"
    if isinstance(exc, StudyError):
        return str(exc)
    if isinstance(exc, OSError) and _about_user_path(exc, args):
        if exc.filename is not None and exc.strerror:
            return f"{exc.filename}: {exc.strerror}"
        return str(exc)
    if isinstance(exc, IOException | PermissionException):
        return f"cannot use the database {getattr(args, 'db', '')}: {_duckdb_reason(exc)}"
    if isinstance(exc, ConstraintViolation):
        return f"the database refused the change, nothing was stored: {_duckdb_reason(exc)}"
    return None


def _about_user_path(exc: OSError, args: argparse.Namespace) -> bool:
    """Whether ``exc`` concerns a path given on the command line, or a folder above one."""
    given = [Path(os.path.abspath(v)) for v in vars(args).values() if isinstance(v, Path)]
    named = [Path(os.path.abspath(f)) for f in (exc.filename, exc.filename2) if f is not None]
    if any(n == g or n in g.parents for n in named for g in given):
        return True
    # Some libraries (polars) raise OSError without a filename, naming the path in the message.
    text = str(exc)
    return any(str(v) in text for v in vars(args).values() if isinstance(v, Path))


def _duckdb_reason(exc: Exception) -> str:
    """DuckDB's message reworded for the person at the shell: first line, no error-class prefix."""
    text = first_line(exc)
    if "lock" in text.lower():
        return "it is in use by another process (is the app running?); stop it and try again"
    if "not a valid DuckDB database file" in text:
        return "the file is not a DuckDB database"
    for prefix in ("IO Error: ", "Permission Error: ", "Constraint Error: "):
        text = text.removeprefix(prefix)
    return text
