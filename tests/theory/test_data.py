import subprocess
import sys

import numpy as np
import pytest

from iwtheory.theory.checks import NotSeparableError
from iwtheory.theory.data import bl_toy, gaussian_mixture, make_dataset, soudry_toy
from iwtheory.theory.maxmargin import max_margin


@pytest.mark.parametrize("make", [bl_toy, soudry_toy, gaussian_mixture])
def test_generators_are_seeded_separable_and_labelled(make):
    a, b, c = make(seed=0), make(seed=0), make(seed=1)
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.array_equal(a.X, c.X)
    assert set(np.unique(a.y)) == {-1.0, 1.0}
    assert max_margin(a.X, a.y).margin > 0


def test_bias_feature_is_a_constant_column():
    ds = gaussian_mixture(n=50, d=3, seed=0, bias=True)
    assert ds.X.shape == (50, 4)
    np.testing.assert_array_equal(ds.X[:, -1], 1.0)
    assert bl_toy().bias and bl_toy().X.shape[1] == 3


def test_soudry_toy_max_margin_is_known_in_closed_form():
    for seed in range(4):
        ds = soudry_toy(n_random=30, seed=seed)
        r = max_margin(ds.X, ds.y)
        np.testing.assert_allclose(r.w, [0.5, 0.5], atol=1e-10)
        assert r.margin == pytest.approx(np.sqrt(2))


def test_bl_toy_positive_class_is_a_rotated_translated_copy():
    ds = bl_toy(n_per_class=200, seed=3, angle_deg=90.0, shift=(0.0, 4.0))
    pos, neg = ds.X[ds.y > 0, :2], ds.X[ds.y < 0, :2]
    np.testing.assert_allclose(pos.mean(0), [0.0, 4.0], atol=0.15)
    np.testing.assert_allclose(neg.mean(0), [0.0, 0.0], atol=0.15)
    # rotation by 90 degrees swaps the spreads of the two axes
    assert neg[:, 0].std() > 2 * neg[:, 1].std()
    assert pos[:, 1].std() > 2 * pos[:, 0].std()


def test_overlapping_mixture_is_reported_not_separable():
    with pytest.raises(NotSeparableError, match="gaussian_mixture"):
        gaussian_mixture(n=300, d=2, separation=0.0, seed=0)


def test_make_dataset_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown dataset"):
        make_dataset("cifar")


def test_theory_and_compare_never_import_torch():
    code = ("import sys, iwtheory.theory, iwtheory.compare, iwtheory.theory.symbolic;"
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
