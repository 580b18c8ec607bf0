import os
import re

import numpy as np
import pytest

# tests rewrite data fixtures in place, faster than a file's timestamp moves: the decoded-data cache (keyed by
# the files' stat) stays off, except in the tests of the cache itself (tests/nets/test_decoded_cache.py)
os.environ["IWTHEORY_NO_DECODED_CACHE"] = "1"


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def symmetric_mixture(n=60, d=5, sep=5.0, seed=0):
    """A Gaussian-mixture sample closed under (x, y) -> (-x, -y), so an SVM's intercept is 0."""
    r = np.random.default_rng(seed)
    y = np.where(r.random(n) < 0.5, 1.0, -1.0)
    X = r.standard_normal((n, d))
    X[:, 0] += y * sep / 2
    return np.vstack([X, -X]), np.concatenate([y, -y])


def assert_documented_header(path):
    """Every shipped config opens with its command, its runtime and its expected result."""
    text = path.read_text()
    for tag in ("command:", "runtime:", "expected:"):
        assert re.search(rf"^# {tag}", text, re.M), f"{path.name} lacks a '# {tag}' header line"
