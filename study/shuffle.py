"""Seeded shuffles and neutral labels: the order and names under which raters see answers.

Raters must not learn which arm wrote an answer: every answer is shown under a neutral label
("Response A", "Response B", ...) that depends only on its position on screen, and the position
is drawn at random per assignment (:func:`shuffled`, driven by a :class:`SeededRandom`), so a
label says nothing about the arm. The seed is recorded, so an allocation can be replayed for an
audit. Whether the answers themselves give their source away (length, format, "As an AI") is
``analysis.leakage``'s question.

Pure: no DuckDB, no streamlit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from study.errors import StudyError

T = TypeVar("T")

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class SeededRandom:
    """A replayable source of uniform numbers built only on ``random.Random.random()``.

    Python guarantees that ``random.Random(seed).random()`` yields the same sequence in every
    future version, but not ``shuffle``, ``choice`` or ``sample``. Drawing everything from
    ``random()`` keeps a study's recorded seed replayable for an audit years later.
    """

    def __init__(self, seed: int) -> None:
        import random

        if isinstance(seed, bool) or not isinstance(seed, int):
            raise StudyError(f"The seed must be a whole number, got {seed!r}.")
        self.seed = seed
        self._rng = random.Random(seed)

    def random(self) -> float:
        """A float uniform on [0, 1)."""
        return self._rng.random()

    def below(self, n: int) -> int:
        """An integer uniform on 0..n-1 (bias below 2**-40 for any n a study uses)."""
        if n < 1:
            raise StudyError(f"Cannot draw from an empty range (n={n}).")
        return min(int(self._rng.random() * n), n - 1)


def neutral_label(position: int) -> str:
    """The label shown for the answer at 1-based ``position``: 1 -> "Response A", 27 -> "Response AA".

    Spreadsheet-style letters, so any number of answers gets a distinct label.
    """
    if position < 1:
        raise StudyError(f"Positions start at 1, got {position}.")
    letters = ""
    n = position
    while n > 0:
        n, rem = divmod(n - 1, 26)
        letters = _LETTERS[rem] + letters
    return f"Response {letters}"


def neutral_labels(n: int) -> list[str]:
    """Labels for ``n`` answers in screen order: ["Response A", "Response B", ...]."""
    if n < 0:
        raise StudyError(f"The number of answers cannot be negative, got {n}.")
    return [neutral_label(i) for i in range(1, n + 1)]


def shuffled(items: Sequence[T], rng: SeededRandom) -> list[T]:
    """A uniformly random permutation of ``items`` (Fisher-Yates), leaving ``items`` unchanged."""
    out = list(items)
    for i in range(len(out) - 1, 0, -1):
        j = rng.below(i + 1)
        out[i], out[j] = out[j], out[i]
    return out
