"""The command line acting as a person: ``--token`` / ``CLINVAL_TOKEN``, the lifecycle commands
(``open``, ``close``, ``unblind``) that only a person may run, and ``demo --tokens``.

Run in-process through ``study.cli.main`` on real DuckDB files; the expectations come from the
demo's people (study.demo) and from the audit trail read back, never from the CLI's own code.
"""

from __future__ import annotations

import io
import json
import stat
import zipfile
from pathlib import Path

import pytest

from study import audit, audit_verify
from study.cli import EXIT_BAD_INPUT, EXIT_OK, main
from study.demo import COORDINATOR, DEMO_STUDY_ID, STATISTICIAN
from study.store import Store

COORDINATOR_EMAIL = COORDINATOR["email"]
STATISTICIAN_EMAIL = STATISTICIAN["email"]


@pytest.fixture(autouse=True)
def no_token_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLINVAL_TOKEN", raising=False)


def cli(*argv: str | Path) -> tuple[int, str]:
    out = io.StringIO()
    code = main([str(a) for a in argv], out=out)
    return code, out.getvalue()


def demo_tokens(db: Path, folder: Path) -> dict[str, str]:
    path = folder / "tokens.json"
    code, said = cli("demo", "--db", db, "--tokens", path)
    assert code == EXIT_OK, said
    return json.loads(path.read_text(encoding="utf-8"))


def status_of(db: Path) -> str:
    with Store(db) as store:
        return store.read("SELECT status FROM studies WHERE id = $s", {"s": DEMO_STUDY_ID}).item()


def trail(db: Path, *kinds: audit.EventKind) -> list[tuple[str, str, dict]]:
    """(actor, action, payload) of the events of ``kinds``, oldest first."""
    with Store(db) as store:
        rows = store.read(
            "SELECT actor, action, payload FROM audit_events"
            " WHERE list_contains($k, action) ORDER BY seq",
            {"k": [k.name for k in kinds]},
        ).rows()
    return [(actor, action, json.loads(payload)) for actor, action, payload in rows]


def token_id(token: str) -> str:
    return token.split("_")[1]


def test_the_coordinator_closes_and_the_statistician_unblinds_and_exports_with_tokens(
    demo_db: Path, tmp_path: Path
) -> None:
    issued = demo_tokens(demo_db, tmp_path)
    assert COORDINATOR_EMAIL in issued and STATISTICIAN_EMAIL in issued
    coordinator, statistician = issued[COORDINATOR_EMAIL], issued[STATISTICIAN_EMAIL]
    assert status_of(demo_db) == "rating"

    code, said = cli("close", "--db", demo_db, "--study", DEMO_STUDY_ID, "--token", coordinator)
    assert code == EXIT_OK and "closed" in said and COORDINATOR["user_id"] in said
    # --token is global: before the command as well as after it
    code, said = cli("--token", statistician, "unblind", "--db", demo_db, "--study", DEMO_STUDY_ID)
    assert code == EXIT_OK and "unblinded" in said
    bundle = tmp_path / "bundle.zip"
    code, said = cli(
        "export", "--db", demo_db, "--study", DEMO_STUDY_ID, "--bundle", "--out", bundle,
        "--format", "csv", "--token", statistician,
    )  # fmt: skip
    assert code == EXIT_OK, said
    assert "ratings.csv" in zipfile.ZipFile(bundle).namelist()

    acts = trail(demo_db, audit.STUDY_CLOSED, audit.STUDY_UNBLINDED, audit.RATINGS_EXPORT)
    assert [(actor, action) for actor, action, _ in acts] == [
        (COORDINATOR["user_id"], "study.closed"),
        (STATISTICIAN["user_id"], "study.unblinded"),
        (STATISTICIAN["user_id"], "ratings.export"),
    ]
    assert [payload[audit.VIA_TOKEN] for _, _, payload in acts] == [
        token_id(coordinator),
        token_id(statistician),
        token_id(statistician),
    ]
    with Store(demo_db) as store:
        assert audit_verify.verify(store).ok


def test_the_operator_may_not_open_close_or_unblind(demo_db: Path, capsys) -> None:
    for act in ("close", "unblind", "open"):
        code, _ = cli(act, "--db", demo_db, "--study", DEMO_STUDY_ID)
        assert code == EXIT_BAD_INPUT
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1
        assert "operator is no person" in err and "--token" in err and "Account" in err
    assert status_of(demo_db) == "rating"
    assert trail(demo_db, audit.STUDY_CLOSED, audit.STUDY_UNBLINDED, audit.ACCESS_DENIED) == []


def test_a_coordinators_token_cannot_unblind(demo_db: Path, tmp_path: Path, capsys) -> None:
    coordinator = demo_tokens(demo_db, tmp_path)[COORDINATOR_EMAIL]
    assert cli("close", "--db", demo_db, "--study", DEMO_STUDY_ID, "--token", coordinator)[0] == 0
    capsys.readouterr()
    code, _ = cli("unblind", "--db", demo_db, "--study", DEMO_STUDY_ID, "--token", coordinator)
    assert code == EXIT_BAD_INPUT
    assert "You may not unblind" in capsys.readouterr().err
    assert status_of(demo_db) == "closed"
    ((actor, _, payload),) = trail(demo_db, audit.ACCESS_DENIED)
    assert actor == COORDINATOR["user_id"] and payload[audit.VIA_TOKEN] == token_id(coordinator)


def test_the_token_can_come_from_the_environment(demo_db: Path, tmp_path: Path, monkeypatch):
    coordinator = demo_tokens(demo_db, tmp_path)[COORDINATOR_EMAIL]
    monkeypatch.setenv("CLINVAL_TOKEN", coordinator)
    code, said = cli("close", "--db", demo_db, "--study", DEMO_STUDY_ID)
    assert code == EXIT_OK, said
    ((actor, _, payload),) = trail(demo_db, audit.STUDY_CLOSED)
    assert actor == COORDINATOR["user_id"] and payload[audit.VIA_TOKEN] == token_id(coordinator)


@pytest.mark.parametrize(
    ("token", "said"),
    [
        ("clv_0123456789ab_" + "s3cr3t" * 8, "unknown to this database"),
        ("s3cr3t" * 8, "not a Clinval personal access token"),
        ("", "--token is empty"),
    ],
)
def test_a_bad_token_is_one_line_exit_2_and_stores_nothing(
    demo_db: Path, capsys, token: str, said: str
) -> None:
    with Store(demo_db) as store:
        before = audit.head(store)
    code, _ = cli("close", "--db", demo_db, "--study", DEMO_STUDY_ID, "--token", token)
    assert code == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert said in err and len(err.strip().splitlines()) == 1
    assert "s3cr3t" not in err
    with Store(demo_db) as store:
        assert audit.head(store) == before
    assert status_of(demo_db) == "rating"


def test_demo_tokens_file_is_the_owners_only_and_opens_every_demo_person(
    tmp_path: Path,
) -> None:
    db = tmp_path / "fresh.duckdb"  # built and given tokens by one command
    issued = demo_tokens(db, tmp_path)
    path = tmp_path / "tokens.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with Store(db) as store:
        people = store.read(
            "SELECT u.email FROM users u WHERE u.issuer = 'demo'"
            " AND EXISTS (SELECT 1 FROM roles r WHERE r.user_id = u.id) ORDER BY 1"
        )["email"].to_list()
        assert sorted(issued) == people
        created = store.read(
            "SELECT count(*) FROM audit_events WHERE action = $k", {"k": audit.TOKEN_CREATE.name}
        ).item()
    assert created == len(people)


def test_demo_tokens_are_refused_on_a_database_that_is_not_a_demo(tmp_path: Path, capsys) -> None:
    db = tmp_path / "real.duckdb"
    assert cli("init", "--db", db, "--study", "Real trial")[0] == EXIT_OK
    path = tmp_path / "tokens.json"
    code, _ = cli("demo", "--db", db, "--tokens", path)
    assert code == EXIT_BAD_INPUT
    assert "not a demo database" in capsys.readouterr().err
    assert not path.exists()
    with Store(db) as store:
        assert store.read("SELECT count(*) FROM personal_tokens").item() == 0
        assert store.read("SELECT count(*) FROM studies").item() == 1  # no demo built into it


def test_demo_tokens_never_overwrite_a_file(demo_db: Path, tmp_path: Path, capsys) -> None:
    path = tmp_path / "tokens.json"
    path.write_text("mine", encoding="utf-8")
    code, _ = cli("demo", "--db", demo_db, "--tokens", path)
    assert code == EXIT_BAD_INPUT
    assert "exists already" in capsys.readouterr().err
    assert path.read_text(encoding="utf-8") == "mine"
    with Store(demo_db) as store:
        assert store.read("SELECT count(*) FROM personal_tokens").item() == 0


def test_tokens_are_listed_and_revoked_from_the_command_line(
    demo_db: Path, tmp_path: Path, capsys
) -> None:
    issued = demo_tokens(demo_db, tmp_path)
    coordinator, rater = issued[COORDINATOR_EMAIL], issued["ada.example@demo.clinval.example"]

    code, listed = cli("tokens", "list", "--db", demo_db)  # the operator: everyone's
    assert code == EXIT_OK
    assert {token_id(t) for t in issued.values()} <= set(listed.split())
    assert not any(t.split("_", 2)[2] in listed for t in issued.values())  # no secret
    code, mine = cli("tokens", "list", "--db", demo_db, "--token", rater)
    assert code == EXIT_OK and token_id(rater) in mine and token_id(coordinator) not in mine

    # a rater may not revoke the coordinator's token
    code, _ = cli("tokens", "revoke", token_id(coordinator), "--db", demo_db, "--token", rater)
    assert code == EXIT_BAD_INPUT and "only your own" in capsys.readouterr().err
    # the operator (who holds the file) may: the token stops working at once
    code, said = cli("tokens", "revoke", f"clv_{token_id(coordinator)}_", "--db", demo_db)
    assert code == EXIT_OK and "revoked" in said
    code, _ = cli("close", "--db", demo_db, "--study", DEMO_STUDY_ID, "--token", coordinator)
    assert code == EXIT_BAD_INPUT and "was revoked" in capsys.readouterr().err
    assert status_of(demo_db) == "rating"
    ((actor, _, payload),) = trail(demo_db, audit.TOKEN_REVOKE)
    assert actor.startswith("system:cli") and payload == {"user": COORDINATOR["user_id"]}
