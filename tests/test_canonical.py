"""Canonical JSON and content hashes: equal values give equal text and equal digests."""

from __future__ import annotations

import pytest

from study.canonical import canonical_json, content_hash


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ({"b": 1, "a": [1, 2]}, {"a": [1, 2], "b": 1}),
        ({"x": "é"}, {"x": "é"}),
    ],
)
def test_canonical_json_ignores_key_order(a, b):
    assert canonical_json(a) == canonical_json(b)
    assert content_hash(a) == content_hash(b)


def test_canonical_json_refuses_nan():
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})
