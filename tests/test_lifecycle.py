"""A study's lifecycle after the lock (``study.services.lifecycle``): open rating, close it,
unblind it."""

from __future__ import annotations

import pytest
from conftest import OPERATOR, sign_in

from study.errors import PermissionDenied, StateError
from study.services import design, lifecycle, people, studies


def test_rating_cannot_start_without_assignments(store, draft):
    coordinator = sign_in(store, "coordinator")
    design.lock_protocol(store, coordinator, draft, {})
    with pytest.raises(StateError, match="no assignments"):
        lifecycle.start_rating(store, coordinator, draft)


def test_unblinding_needs_a_closed_study_and_a_statistician(store, rating):
    coordinator = sign_in(store, "coordinator")
    r1 = sign_in(store, "r1")
    lifecycle.close_rating(store, coordinator, rating)
    with pytest.raises(PermissionDenied):
        lifecycle.unblind(store, r1, rating)
    # granting the statistician role is an admin's (a coordinator grants only the rater role)
    people.grant_role(store, OPERATOR, rating, "r1", "statistician")
    lifecycle.unblind(store, r1, rating)
    assert studies.get_study(store, coordinator, rating)["status"] == "unblinded"
