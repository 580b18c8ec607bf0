"""Every random stream the package draws, named once: a seed and a purpose give the stream.

A stream's entropy is spelled here and nowhere else, in the forms the records were made with (so they stay the
same): the seed itself, the seed with a stream number (``[seed, k]``, which NumPy's ``SeedSequence`` keeps apart
from every plain seed), or the seed plus an offset for torch generators, which take one integer. Two purposes
that share a form on purpose (a task's subsampling and its feature images both follow ``subsample_seed``) say so.
"""

from __future__ import annotations

import numpy as np

ORDER_OFFSET, DROPOUT_OFFSET = 10**6, 2 * 10**6  # torch streams of a net beside its initialisation

_ENTROPY = {
    "init": lambda s: s,                   # a model's initialisation (linear, deep linear, nets)
    "data": lambda s: s,                   # a synthetic dataset's points (theory generators, synthetic images)
    "start": lambda s: s,                  # random starting points of a solver (limits' multi-start)
    "subsample": lambda s: s,              # which training images a task keeps
    "features": lambda s: s,               # which training images the feature files hold (subsample_seed)
    "noise_probe": lambda s: s,            # the uniform-noise probe set (noise_seed)
    "validation": lambda s: [s, 1],        # the held-out split of each class
    "label_noise": lambda s: [s, 2],       # which training labels a noisy task flips
    "test_cap": lambda s: [s, 3],          # the task's test images, when capped
    "other_probe": lambda s: s + 1,        # the other classes' probe images, when capped
    "sgd_order": lambda s: s + 1,          # the theory's SGD sample order (beside "init")
    "toy_test": lambda s: s + 1,           # the long runs' test points (from the data seed)
    "toy_noise": lambda s: s + 2,          # the long runs' noise probe points (from the data seed)
    "batch_order": lambda s: s + ORDER_OFFSET,    # a net's minibatch order (torch)
    "dropout": lambda s: s + DROPOUT_OFFSET,      # a net's dropout masks (torch)
}
PURPOSES = tuple(_ENTROPY)


def entropy(seed: int, purpose: str) -> int | list[int]:
    """The entropy of stream ``purpose`` for ``seed`` (a non-negative integer)."""
    if purpose not in _ENTROPY:
        raise ValueError(f"unknown random stream {purpose!r}; known: {PURPOSES}")
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise ValueError(f"a seed must be a non-negative integer; got {seed!r}")
    return _ENTROPY[purpose](int(seed))


def rng(seed: int, purpose: str) -> np.random.Generator:
    """A NumPy generator for stream ``purpose`` of ``seed`` (PCG64 on the stream's ``SeedSequence``)."""
    return np.random.default_rng(np.random.SeedSequence(entropy(seed, purpose)))


def int_seed(seed: int, purpose: str) -> int:
    """Stream ``purpose`` of ``seed`` as one integer, for what takes one (torch generators, a generator's seed)."""
    e = entropy(seed, purpose)
    if not isinstance(e, int):
        raise ValueError(f"stream {purpose!r} is a NumPy stream ({e}); it has no one-integer form")
    return e
