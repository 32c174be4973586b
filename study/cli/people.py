"""People and their tokens from the command line: pseudonymous raters (``add-raters``), people
invited by e-mail (``users``) and personal access tokens (``tokens``)."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from study.cli.common import (
    EXIT_OK,
    CliError,
    acting_caller,
    check_id_text,
    open_store,
    print_table,
)

PSEUDONYM_ISSUER = "pseudonymous"
"""Issuer recorded for raters added by id only (``add-raters``): pseudonymous people of a study
who never sign in, e.g. the readers of a study rated elsewhere."""


def cmd_add_raters(args: argparse.Namespace, out: TextIO) -> int:
    """Every rater is added, or none: checked first, then written in one transaction (an unknown
    study used to be found only after the first person and their event were stored)."""
    from study.access import require
    from study.services import people, studies

    check_id_text("--study", args.study)
    for rater in args.raters:
        check_id_text(f"RATER {rater!r}", rater)
    added: list[tuple[str, bool]] = []
    with open_store(args.db, create=False) as store:
        caller = acting_caller(args, store)
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

    check_id_text("--email", args.email)
    check_id_text("--name", args.name)
    if args.study is not None:
        check_id_text("--study", args.study)
    if args.role == "admin" and args.study is not None:
        raise CliError("--role admin holds in every study; leave out --study")
    from study.errors import ValidationError

    if not args.name.strip():
        raise CliError("--name is empty; give the person's name as the app should show it")
    with open_store(args.db, create=False) as store:
        try:
            made = people.invite(
                store,
                acting_caller(args, store),
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

    with open_store(args.db, create=False) as store:
        frame = people.list_people(store, acting_caller(args, store))
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
    print_table(("id", "name", "e-mail", "roles", "signed in"), rows, out)
    return EXIT_OK


def cmd_tokens_list(args: argparse.Namespace, out: TextIO) -> int:
    from study.services import tokens

    if args.user is not None:
        check_id_text("--user", args.user)
    with open_store(args.db, create=False) as store:
        frame = tokens.list_tokens(store, acting_caller(args, store), user_id=args.user)
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
    print_table(header, rows, out)
    return EXIT_OK


def cmd_tokens_revoke(args: argparse.Namespace, out: TextIO) -> int:
    from study.services import tokens

    check_id_text("ID", args.id)
    # the id as listed, or as the token begins (clv_<id>_...), the whole token included
    token_id = args.id.strip().removeprefix(f"{tokens.TOKEN_PREFIX}_").split("_")[0]
    with open_store(args.db, create=False) as store:
        tokens.revoke_token(store, acting_caller(args, store), token_id)
    print(f"token {token_id} revoked: it no longer works", file=out)
    return EXIT_OK
