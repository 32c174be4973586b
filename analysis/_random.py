"""Bootstrap randomness: injected by the caller and always recorded.

Every bootstrap in ``analysis`` takes ``seed`` (an int, a ``numpy.random.Generator`` or None).
None does not mean "irreproducible": a seed is drawn from the operating system's entropy
(``numpy.random.SeedSequence``), reduced to 32 bits, used, and reported in the result (``seed``
column and ``method`` text), so any run can be repeated exactly by passing that seed.
"""

from __future__ import annotations

import numpy as np

from analysis.errors import AnalysisError

Seed = int | np.random.Generator | None

MAX_SEED = 2**63 - 1
"""The largest seed: results record it in a 64-bit integer column (``seed``), so a larger one could
be used but never reported."""

BOOT_CHUNK = 10_000
"""Bootstrap replicates drawn and evaluated at once: memory stays bounded whatever ``boot`` is."""


def draw_seed() -> int:
    """A fresh 32-bit seed from OS entropy (for runs where the caller gave none)."""
    return int(np.random.SeedSequence().entropy) & 0xFFFFFFFF


def resolve_seed(seed: Seed) -> tuple[np.random.Generator, int | None]:
    """The generator to draw from and the seed to record (None only for a caller's Generator).

    A caller who passes a Generator owns its state and its record; an int is used as given; None
    draws a seed (``draw_seed``) so that the run is still reproducible from its result.
    """
    if isinstance(seed, np.random.Generator):
        return seed, None
    if seed is None:
        seed = draw_seed()
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise AnalysisError(
            f"seed must be a non-negative integer, a numpy Generator or None; got {seed!r}"
        )
    if seed > MAX_SEED:
        raise AnalysisError(
            f"seed must be a whole number from 0 to {MAX_SEED} (2**63 - 1, the largest a result "
            "can record); pass a smaller one"
        )
    return np.random.default_rng(int(seed)), int(seed)


def seed_text(seed: int | None, given: object) -> str:
    """How the seed appears in ``method``: 'seed 42' or 'seed 42 (drawn: none was given)'."""
    if seed is None:
        return "seed: the caller's numpy Generator"
    return f"seed {seed}" + (" (drawn: none was given)" if given is None else "")
