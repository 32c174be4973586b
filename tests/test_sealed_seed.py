"""The assignment seed is sealed at the lock: the protocol, the events, the rows and the exports
show only its commitment until the unblinding step reveals it; verify checks it."""

from __future__ import annotations

import pytest
from conftest import OPERATOR, RATERS, sign_in

from study import audit_verify, keyfile
from study.errors import StateError, ValidationError
from study.services import design, lifecycle

SEED = 987_654_321


@pytest.fixture
def locked(store, draft):
    coordinator = sign_in(store, "coordinator")
    design.lock_protocol(store, coordinator, draft, {"margin": 0.5}, seed=SEED)
    design.make_assignments(store, coordinator, draft, raters=list(RATERS), raters_per_case=2)
    return draft


def _everything_readable(store) -> str:
    """Every stored text but the sealed box itself, as one string."""
    tables = store.read("SELECT table_name FROM duckdb_tables()").get_column("table_name")
    return "\n".join(
        str(store.read(f'SELECT * FROM "{t}"').rows()) for t in tables if t != "sealed_seeds"
    )


def test_the_protocol_shows_a_commitment_and_nothing_shows_the_seed(store, locked):
    protocol = design.get_protocol(store, sign_in(store, "coordinator"), locked)["content"]
    salt, commitment = store.read("SELECT salt, commitment FROM sealed_seeds").row(0)
    assert protocol["assignment_seed_commitment"] == commitment == keyfile.commitment(SEED, salt)
    assert str(SEED) not in _everything_readable(store)
    assert store.read("SELECT DISTINCT seed FROM assignments").get_column("seed").to_list() == [0]


def test_the_design_replays_from_the_sealed_seed(store, draft, tmp_path):
    # the same design as one made with the seed given outright
    from study.assignment import design_assignments

    coordinator = sign_in(store, "coordinator")
    design.lock_protocol(store, coordinator, draft, {"margin": 0.5}, seed=SEED)
    design.make_assignments(store, coordinator, draft, raters=list(RATERS), raters_per_case=2)
    stored = store.read(
        "SELECT design_key, rater, case_id FROM assignments ORDER BY design_key"
    ).rows()
    answers = store.read("SELECT answer_id, case_id, arm_id, author_id FROM answers")
    cases = sorted(store.read("SELECT case_id FROM cases").get_column("case_id").to_list())
    replay, _ = design_assignments(
        cases, list(RATERS), raters_per_case=2, answers=answers, seed=SEED
    )
    replayed = sorted(replay.select("assignment_id", "rater_id", "case_id").rows())
    assert stored == replayed


def test_another_seed_than_the_sealed_one_is_refused(store, draft):
    coordinator = sign_in(store, "coordinator")
    design.lock_protocol(store, coordinator, draft, {"margin": 0.5}, seed=SEED)
    with pytest.raises(StateError, match="sealed another assignment seed"):
        design.make_assignments(
            store, coordinator, draft, raters=list(RATERS), raters_per_case=2, seed=SEED + 1
        )


@pytest.mark.parametrize(
    "protocol", [{"seed": 1}, {"assignment": {"seed": 1}}, {"steps": [{"seed": 1}]}]
)
def test_a_protocol_carrying_its_seed_is_refused(store, draft, protocol):
    with pytest.raises(ValidationError, match="must not be in the protocol"):
        design.lock_protocol(store, sign_in(store, "coordinator"), draft, protocol)


def test_unblinding_reveals_the_seed_and_verify_checks_it(store, locked):
    coordinator, statistician = sign_in(store, "coordinator"), sign_in(store, "statistician")
    with pytest.raises(StateError, match="sealed until unblinding"):
        design.assignment_seed(store, statistician, locked)
    lifecycle.start_rating(store, coordinator, locked)
    lifecycle.close_rating(store, coordinator, locked)
    lifecycle.unblind(store, statistician, locked)
    assert design.assignment_seed(store, statistician, locked) == SEED
    revealed = store.read(
        "SELECT json_extract_string(payload, '$.seed') FROM audit_events"
        " WHERE action = 'study.unblinded'"
    ).item()
    assert revealed == str(SEED)
    assert audit_verify.verify(store).ok


def test_a_sealed_seed_swapped_for_another_is_caught(store, locked):
    key = store.audit_key
    salt = keyfile.new_salt()
    store.cursor().execute(
        "UPDATE sealed_seeds SET salt = ?, sealed = ?, commitment = ?",
        [salt, keyfile.seal_seed(key, 1, salt), keyfile.commitment(1, salt)],
    )
    report = audit_verify.verify(store)
    assert not report.ok
    assert f"sealed seed of study {locked}" in report.problem


def test_a_sealed_box_altered_under_its_commitment_is_caught_with_the_key(store, locked):
    store.cursor().execute("UPDATE sealed_seeds SET sealed = '0000000000000001'")
    assert "does not open to its commitment" in audit_verify.verify(store).problem
    withheld = audit_verify.verify(store, key=None)
    assert withheld.ok and "sealed seeds" in withheld.unchecked


def test_a_seed_out_of_range_is_refused(store, draft):
    with pytest.raises(ValidationError, match="whole number"):
        design.lock_protocol(store, OPERATOR, draft, {"margin": 0.5}, seed=-1)
