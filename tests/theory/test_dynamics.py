import numpy as np
import pytest

from iwtheory.theory.checks import DataError, WeightError
from iwtheory.theory.data import bl_toy, soudry_toy
from iwtheory.theory.dynamics import (LinearNet, _layer_grads, end_to_end, gradient_descent, gradient_flow,
                                      init_layers)
from iwtheory.theory.losses import LOGISTIC


def test_gd_with_small_step_tracks_gradient_flow_at_equal_time():
    ds = bl_toy(n_per_class=20, seed=1)
    c = np.where(ds.y > 0, 4.0, 1.0)
    lr, steps = 1e-4, 20_000
    gd = gradient_descent(ds.X, ds.y, c, lr=lr, steps=steps, n_records=5)
    fl = gradient_flow(ds.X, ds.y, c, t_max=lr * steps, n_records=5)
    assert gd.t[-1] == steps and fl.t[-1] == pytest.approx(lr * steps)
    # the Euler error is O(lr); the difference is far below the weights' own size
    np.testing.assert_allclose(gd.w[-1], fl.w[-1], rtol=2e-3, atol=2e-3)
    assert np.linalg.norm(fl.w[-1]) > 0.5


@pytest.mark.parametrize("depth", [1, 2])
def test_each_record_is_the_state_at_its_own_step(depth):
    ds = bl_toy(n_per_class=10, seed=0)
    kw = dict(lr=0.05, net=LinearNet(depth=depth, init_scale=0.0 if depth == 1 else 0.1))
    tr = gradient_descent(ds.X, ds.y, steps=200, n_records=6, **kw)
    for k in (2, 3):
        t = int(tr.t[k])
        fresh = gradient_descent(ds.X, ds.y, steps=t, n_records=2, **kw)
        np.testing.assert_allclose(tr.w[k], fresh.w[-1], rtol=1e-12, atol=1e-14)
        assert tr.angle[k] == pytest.approx(fresh.angle[-1], rel=1e-12)
    assert not np.allclose(tr.w[1], tr.w[-1])


def test_flow_reaches_1e100_with_finite_values_and_falling_angle():
    ds = bl_toy(n_per_class=30, seed=0)
    tr = gradient_flow(ds.X, ds.y, np.where(ds.y > 0, 256.0, 1.0), loss="exponential", t_max=1e100)
    assert tr.t[-1] == pytest.approx(1e100, rel=1e-9)
    assert np.all(np.isfinite(tr.w)) and np.all(np.isfinite(tr.angle))
    late = tr.angle[tr.t > 1e10]
    assert np.all(np.diff(late) < 0)
    assert late[-1] < 0.01
    # the loss is a sum of positive terms that must decrease along the flow
    assert np.all(np.diff(tr.loss) <= 1e-12 * tr.loss[:-1])


def test_sgd_with_full_batch_equals_gd_and_is_seeded():
    ds = soudry_toy(n_random=10, seed=0)
    N = len(ds.y)
    gd = gradient_descent(ds.X, ds.y, lr=0.05, steps=300)
    sgd_full = gradient_descent(ds.X, ds.y, lr=0.05, steps=300, batch_size=N)
    np.testing.assert_allclose(gd.w, sgd_full.w, rtol=1e-12)
    a = gradient_descent(ds.X, ds.y, lr=0.05, steps=300, batch_size=3, net=LinearNet(seed=7))
    b = gradient_descent(ds.X, ds.y, lr=0.05, steps=300, batch_size=3, net=LinearNet(seed=7))
    c = gradient_descent(ds.X, ds.y, lr=0.05, steps=300, batch_size=3, net=LinearNet(seed=8))
    np.testing.assert_array_equal(a.w, b.w)
    assert not np.allclose(a.w[-1], c.w[-1])


def test_deep_layer_gradients_match_finite_differences():
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((7, 4))
    c = rng.uniform(0.5, 2.0, 7)
    layers = init_layers(4, depth=3, widths=[5, 3], init_scale=1.0, seed=2)

    def L(ls):
        return np.sum(c * LOGISTIC.value(Z @ end_to_end(ls)))

    g = Z.T @ (c * LOGISTIC.deriv(Z @ end_to_end(layers)))
    grads = _layer_grads(layers, g)
    h = 1e-6
    for i, W in enumerate(layers):
        for idx in np.ndindex(W.shape):
            plus = [x.copy() for x in layers]
            minus = [x.copy() for x in layers]
            plus[i][idx] += h
            minus[i][idx] -= h
            assert grads[i][idx] == pytest.approx((L(plus) - L(minus)) / (2 * h), rel=1e-5, abs=1e-8)


def test_balanced_initialisation_is_balanced():
    layers = init_layers(5, depth=4, widths=[6, 3, 2], init_scale=0.3, balanced=True, seed=1)
    for Wi, Wn in zip(layers[:-1], layers[1:]):
        np.testing.assert_allclose(Wn.T @ Wn, Wi @ Wi.T, atol=1e-14)
    assert np.linalg.norm(end_to_end(layers)) == pytest.approx(0.3)


@pytest.mark.parametrize("depth", [2, 3])
def test_deep_linear_nets_turn_to_max_margin_and_become_rank_one(depth):
    ds = bl_toy(n_per_class=20, seed=0)
    net = LinearNet(depth=depth, widths=[4] * (depth - 1), init_scale=0.1)
    tr = gradient_flow(ds.X, ds.y, np.where(ds.y > 0, 16.0, 1.0), net=net, t_max=1e40, n_records=30)
    assert tr.angle[-1] < 0.3 * tr.angle[len(tr.t) // 3]
    assert tr.angle[-1] < 0.02
    assert np.all(tr.rank_one[-1] > 0.999)
    assert np.all(tr.alignment[-1] > 0.999)
    gd = gradient_descent(ds.X, ds.y, net=LinearNet(depth=depth, init_scale=0.1), lr=0.01, steps=3000, n_records=10)
    assert gd.loss[-1] < gd.loss[0] and gd.rank_one.shape == (len(gd.t), depth)


def test_deep_net_at_zero_is_refused():
    with pytest.raises(ValueError, match="saddle"):
        init_layers(3, depth=2, init_scale=0.0)


@pytest.mark.parametrize("kw, err, msg", [
    (dict(X=[[np.nan, 1.0]], y=[1.0]), DataError, "NaN"),
    (dict(X=[[1.0, 1.0]], y=[2.0]), DataError, "labels"),
    (dict(X=[[1.0, 1.0]], y=[1.0], weights=[-1.0]), WeightError, "positive"),
    (dict(X=[[1.0, 1.0]], y=[1.0], weights=[1.0, 1.0]), WeightError, "shape"),
    (dict(X=[[1.0, 1.0], [2.0, 2.0]], y=[1.0]), DataError, "2 rows but y has 1"),
])
@pytest.mark.parametrize("fn", [gradient_descent, gradient_flow])
def test_bad_input_is_named(fn, kw, err, msg):
    with pytest.raises(err, match=msg):
        fn(**kw)


def test_bad_hyperparameters_are_named():
    with pytest.raises(ValueError, match="lr"):
        gradient_descent([[1.0, 0.0]], [1.0], lr=0.0)
    with pytest.raises(ValueError, match="batch_size"):
        gradient_descent([[1.0, 0.0]], [1.0], batch_size=5)
    with pytest.raises(ValueError, match="t_max"):
        gradient_flow([[1.0, 0.0]], [1.0], t_max=-1.0)
