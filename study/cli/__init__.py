"""The ``python -m study`` command line: set up a database, import, inspect, verify, export.

Every command takes ``--db PATH`` (default: the ``CLINVAL_DB`` setting) and ``--token TOKEN``
(default: the ``CLINVAL_TOKEN`` setting): without a token a command acts as the local operator
(``system:cli:<account>``), who holds the database file but is no person; with a person's
personal access token it acts as that person (``common.acting_caller``, the one place that decides). Opening,
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

The commands live by family: ``setup`` (init, demo), ``status`` (status, audit verify),
``imports`` (content in and out of a draft), ``people`` (raters, users, tokens), ``design``
(instruments, lock, assign, lifecycle steps) and ``exports`` (results, export); ``common`` holds
what they share and ``failures`` decides which failures are the user's. This module assembles the
parser and runs one command.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from study import settings
from study.cli.common import (
    EXIT_AUDIT_BROKEN,
    EXIT_BAD_INPUT,
    EXIT_OK,
    TOKEN_SETTING,
    CliError,
    Escaping,
    capped,
)
from study.cli.design import (
    cmd_assign,
    cmd_attach_instrument,
    cmd_instruments_list,
    cmd_instruments_show,
    cmd_instruments_validate,
    cmd_lock,
    lifecycle_command,
)
from study.cli.exports import EXPORT_FORMATS, cmd_export, cmd_results
from study.cli.failures import explain, not_yet_there, remove_created
from study.cli.imports import (
    cmd_import_healthbench,
    cmd_import_ratings,
    cmd_import_table,
    cmd_remove,
    import_command,
)
from study.cli.people import (
    cmd_add_raters,
    cmd_tokens_list,
    cmd_tokens_revoke,
    cmd_users_add,
    cmd_users_list,
)
from study.cli.setup import cmd_demo, cmd_init
from study.cli.status import cmd_audit_verify, cmd_status

__all__ = ["EXIT_AUDIT_BROKEN", "EXIT_BAD_INPUT", "EXIT_OK", "CliError", "build_parser", "main"]

MODES = ("side_by_side", "pairwise", "separate")  # study.assignment.MODES, without importing it
ROLE_CHOICES = ("admin", "coordinator", "rater", "statistician")  # study.access.ROLES, likewise


def _path(text: str) -> Path:
    return Path(text).expanduser()


def _argument(*names: str, **options: Any) -> tuple[tuple[str, ...], dict[str, Any]]:
    """One ``add_argument(*names, **options)``, written down for ``_command`` to add."""
    return names, options


FILE = _argument("file", type=_path, metavar="FILE")
"""The input file of an import or a check."""


def _command(
    commands: Any,
    name: str,
    parents: list[argparse.ArgumentParser],
    *arguments: tuple[tuple[str, ...], dict[str, Any]],
    help: str,
    description: str | None = None,
    **defaults: Any,
) -> argparse.ArgumentParser:
    """Add the (sub)command ``name`` with its ``arguments`` to ``commands`` (a subparsers
    action); ``defaults`` (``func``: the command to run) are set on its namespace."""
    parser = commands.add_parser(name, parents=parents, help=help, description=description)
    for names, options in arguments:
        parser.add_argument(*names, **options)
    if defaults:
        parser.set_defaults(**defaults)
    return parser


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

    _command(
        commands,
        "init",
        [common],
        _argument("--study", metavar="NAME", help="also create a draft study with this name"),
        _argument("--id", metavar="ID", help="the new study's id (default: a slug of NAME)"),
        help="create or migrate the database",
        description=(
            "Create the database (or apply pending migrations); optionally create a draft study."
        ),
        func=cmd_init,
        create=True,
    )

    _command(
        commands,
        "demo",
        [common],
        _argument(
            "--seed",
            type=int,
            default=None,
            help="seed of the assignment and the simulated raters (default: the demo's own)",
        ),
        _argument(
            "--tokens",
            type=_path,
            default=None,
            metavar="FILE",
            help=(
                "also write a new JSON file (mode 600) mapping each demo person's e-mail to a "
                "fresh personal access token; on an existing database only if it is a demo database"
            ),
        ),
        help="build the synthetic demo study",
        description="Build the synthetic demo study; refused if the database already holds one.",
        func=cmd_demo,
    )

    for act, role, what in (
        ("open", "coordinator", "open rating of a locked study (locked -> rating)"),
        ("close", "coordinator", "close rating (rating -> closed)"),
        ("unblind", "statistician", "unblind a closed study (closed -> unblinded)"),
    ):
        _command(
            commands,
            act,
            [common, study],
            help=f"{what}: the {role}'s act, with their --token",
            description=(
                f"{what[0].upper()}{what[1:]}. A {role}'s own act: it needs the {role}'s "
                f"personal access token (--token or ${TOKEN_SETTING}); the operator is no person."
            ),
            func=lifecycle_command(act, role),
        )

    _command(
        commands,
        "results",
        [common, study],
        _argument(
            "--format",
            choices=("json", "csv"),
            default="json",
            help='json (default): {"results": [row, ...]}; csv: one line per row, with a header',
        ),
        help="print the study's results table (a statistician's read, with their --token)",
        description=(
            "Print the results table of an unblinded study: one row per planned analysis "
            "(role primary, secondary or sensitivity; in_plan false for the sensitivity analyses "
            "Clinval adds), with item, statistic, method, margin, direction, estimate, ci_low, "
            "ci_high, p_value, p_adjusted, conclusion and more: the rows of the Analysis screen, "
            "the report and the bundle's results.json / results.csv. JSON is "
            '{"results": [...]}. Needs the statistician\'s personal access token.'
        ),
        func=cmd_results,
    )

    for kind in ("cases", "arms", "answers"):
        _command(
            commands,
            f"import-{kind}",
            [common, study],
            FILE,
            help=f"import {kind} from a .csv, .jsonl or .parquet file",
            description=(
                f"Import {kind} into a draft study. All rows are checked first: one problem "
                "anywhere and nothing is stored. Rows identical to stored ones are skipped."
            ),
            func=import_command(kind),
        )

    _command(
        commands,
        "import-table",
        [common, study],
        FILE,
        _argument("--mapping", type=_path, required=True, metavar="MAPPING.toml"),
        _argument("--name", help="name the mapping is kept under (default: its file's stem)"),
        _argument(
            "--preview",
            action="store_true",
            help="map and check only: print the counts, store nothing",
        ),
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
        func=cmd_import_table,
    )

    _command(
        commands,
        "import-healthbench",
        [common, study],
        FILE,
        help="import a HealthBench .jsonl file: conversations, their rubrics, ideal completions",
        description=(
            "Import HealthBench's JSONL as published (prompt, prompt_id, rubrics, example_tags, "
            "ideal_completions_data) into a draft study: each conversation becomes a case with "
            "its rubric criteria, each ideal completion an answer of the clinician arm "
            "healthbench_physicians. All lines are checked first: one problem anywhere and "
            "nothing is stored. Model answers come in with import-answers."
        ),
        func=cmd_import_healthbench,
    )

    _command(
        commands,
        "remove",
        [common, study],
        _argument("what", choices=("answers", "arms", "cases")),
        _argument("ids", nargs="+", metavar="ID"),
        help="remove answers, arms or cases that a draft does not use (audited)",
        description=(
            "Remove from a draft: answers that no assignment shows; arms and cases once their "
            "answers are removed (and no rater is assigned to the case). All or nothing."
        ),
        func=cmd_remove,
    )

    _command(
        commands,
        "import-ratings",
        [common, study],
        FILE,
        help="import ratings collected elsewhere (.csv, .jsonl or .parquet) into a locked study",
        description=(
            "Import one row per rating: case_id, rater_id, item, value, and arm_id for items "
            "rated per answer; optional rated_at, seconds, comment. The study must be locked and "
            "its raters added (add-raters). All rows are checked first: one problem anywhere "
            "and nothing is stored. The study records that its ratings were imported."
        ),
        func=cmd_import_ratings,
    )

    _command(
        commands,
        "add-raters",
        [common, study],
        _argument("raters", nargs="+", metavar="RATER"),
        help="add pseudonymous raters (people with the rater role) to a study",
        description=(
            "Record each RATER id as a pseudonymous person of the study (who never signs in) "
            "and grant them the rater role there."
        ),
        func=cmd_add_raters,
    )

    p = _command(
        commands, "users", [common], help="add people (invitations by e-mail) and list them"
    )
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    _command(
        sub,
        "add",
        [common],
        _argument("--email", required=True, metavar="E", help="their e-mail address"),
        _argument("--name", required=True, metavar="N", help="their name, as the app shows it"),
        _argument("--role", required=True, choices=ROLE_CHOICES, help="the role to grant"),
        _argument(
            "--study",
            metavar="ID",
            default=None,
            help="the study where the role holds (default: every study; admin always holds in all)",
        ),
        help="invite a person by e-mail with a role (the first admin is made this way)",
        description=(
            "Record a person by e-mail with a role, or grant the role to the person who has that "
            "address already. A new person binds to the first sign-in whose ID token carries "
            "the address with email_verified true; from then on only that identity is them."
        ),
        func=cmd_users_add,
    )
    _command(
        sub,
        "list",
        [common],
        help="list people, their roles, and whether they signed in",
        func=cmd_users_list,
    )

    p = _command(
        commands,
        "tokens",
        [common],
        help=(
            "list or revoke personal access tokens (one's own with --token; the operator: anyone's)"
        ),
    )
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    _command(
        sub,
        "list",
        [common],
        _argument("--user", metavar="ID", default=None, help="whose tokens (an admin's view)"),
        help="the tokens of the --token's person, or of --user (the operator without --user: all)",
        func=cmd_tokens_list,
    )
    _command(
        sub,
        "revoke",
        [common],
        _argument("id", metavar="ID"),
        help="revoke a token by its id (the part after clv_): it stops working at once",
        func=cmd_tokens_revoke,
    )

    _command(
        commands,
        "attach-instrument",
        [common, study],
        _argument("instrument", metavar="KEY_OR_FILE"),
        help="add an instrument (built-in key, or a .toml/.json file) and attach it to a draft",
        func=cmd_attach_instrument,
    )

    _command(
        commands,
        "lock",
        [common, study],
        _argument("--protocol", type=_path, metavar="FILE", help="protocol JSON (default: {})"),
        _argument(
            "--reason",
            default=None,
            help=(
                "why, for a protocol version after the first (the coordinator's act: with their "
                f"--token or ${TOKEN_SETTING})"
            ),
        ),
        help="lock the study's protocol (a JSON object) and print each arm's coverage",
        func=cmd_lock,
    )

    p = _command(
        commands, "instruments", [common], help="list, show or validate rating instruments"
    )
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    _command(sub, "list", [common], help="list the built-in instruments", func=cmd_instruments_list)
    _command(
        sub,
        "show",
        [common],
        _argument("key", metavar="KEY"),
        _argument("--format", choices=("table", "json"), default="table"),
        help="show a built-in instrument's items",
        func=cmd_instruments_show,
    )
    _command(
        sub,
        "validate",
        [common],
        FILE,
        help="check an instrument file (.toml/.json)",
        func=cmd_instruments_validate,
    )

    _command(
        commands,
        "status",
        [common],
        _argument("--study", metavar="ID", help="study id (default: every study)"),
        help="counts and progress of one study (default: all)",
        func=cmd_status,
    )

    p = _command(commands, "audit", [common], help="audit trail tools")
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    _command(
        sub,
        "verify",
        [common],
        _argument(
            "--kinds",
            action="store_true",
            help="also print the number of events of every declared kind",
        ),
        _argument(
            "--expect",
            metavar="HASH",
            help=(
                "a head hash recorded earlier (an export's, or this command's); exit 1 if the "
                "chain no longer holds it (rewritten or cut back)"
            ),
        ),
        help="check the hash chain; exit 1 naming the first altered or removed event",
        func=cmd_audit_verify,
    )

    _command(
        commands,
        "assign",
        [common, study],
        _argument("--raters-per-case", type=int, default=3, metavar="N", help="default 3"),
        _argument("--mode", choices=MODES, default="side_by_side", help="default side_by_side"),
        _argument(
            "--seed",
            type=int,
            default=None,
            help=(
                "the design's seed (default: the one sealed at the lock, else drawn; never printed)"
            ),
        ),
        _argument(
            "--match-specialty",
            action="store_true",
            help="only raters of a case's specialty rate it",
        ),
        _argument("--dry-run", action="store_true", help="print the design, store nothing"),
        help="design the assignment of raters to cases (print it with --dry-run, else store it)",
        description=(
            "Design which rater sees which case and in which order, from the study's raters "
            "(people with the rater role), and print its summary: loads per rater, raters per "
            "case, arm x position counts per rater, rater-pair overlap. Without --dry-run the "
            "design is stored for the lock (draft or locked studies)."
        ),
        func=cmd_assign,
    )

    _command(
        commands,
        "export",
        [common, study],
        _argument(
            "--out",
            type=_path,
            required=True,
            metavar="PATH",
            help="output file; with --bundle a new (or empty) folder or a .zip file",
        ),
        _argument(
            "--format",
            default=None,
            metavar="FORMAT[,FORMAT]",
            help=(
                f"{', '.join(EXPORT_FORMATS)}: the file's format (default: from the --out suffix); "
                "with --bundle a comma-separated list (default: all)"
            ),
        ),
        _argument(
            "--bundle",
            action="store_true",
            help="write the bundle: ratings, codebook.md/.json, report.html, manifest.json",
        ),
        _argument(
            "--raw-csv",
            action="store_true",
            help=(
                "write text cells as stored; by default a CSV cell starting with = + - @ (which a "
                "spreadsheet would run as a formula) is written with a leading '"
            ),
        ),
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
        func=cmd_export,
    )
    return parser


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Run one command; return its exit code (argparse itself exits 2 on a bad command line)."""
    out = Escaping(out or sys.stdout)
    parser = build_parser()
    args = parser.parse_args(argv)
    created: list[Path] = []
    try:
        if getattr(args, "db", None) is None:
            args.db = settings.db_path()
        created = not_yet_there(args.db, settings.audit_key_path())
        return args.func(args, out)
    except BrokenPipeError:
        # the reader stopped early (`status | head -1`): not an error of ours, and whatever
        # the command stored is stored. Point stdout at devnull so that the interpreter's final
        # flush does not raise again (Python docs, "Note on SIGPIPE").
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:
        message = explain(exc, args)
        if message is None:
            raise  # a bug in Clinval: the traceback is the report
        remove_created(created)
        print(f"error: {capped(message)}", file=Escaping(sys.stderr))
    return EXIT_BAD_INPUT
