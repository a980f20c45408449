"""The one seed derivation: every random choice ponder makes starts here.

`derive(seed, *labels)` hashes a base seed and any labels into a 64-bit seed (Python's
`hash()` changes between processes; SHA-256 does not). Everything else is built on it:

* `sample_seed(seed, question)`: the seed of sample 0 of a question; sample i is drawn with
  `sample_seed + i`, whichever backend call draws it. It depends on the question's text only,
  so `ponder solve Q --seed S` draws exactly the samples `ponder eval --seed S` stores for Q.
* `rng(seed, *labels)`: a numpy generator for ties, resampling, subsets and bootstraps.
"""

from __future__ import annotations

import hashlib

import numpy as np

SAMPLE_SEED_BITS = 30
"""Sample seeds stay below 2^30 so that seed + i fits every server's 32-bit seed field."""


def derive(seed: int, *labels: object) -> int:
    """A stable 64-bit seed from a base seed and labels."""
    text = "\0".join([str(seed), *(str(label) for label in labels)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def sample_seed(seed: int, question: str) -> int:
    """Seed of sample 0 of `question`; sample i uses this + i."""
    return derive(seed, "samples", question.strip()) & ((1 << SAMPLE_SEED_BITS) - 1)


def rng(seed: int, *labels: object) -> np.random.Generator:
    return np.random.default_rng(derive(seed, *labels))
