"""Which direction each loss converges to: the predicted limits against independent solutions and simulation."""

import numpy as np
import pytest

from iwtheory.theory.dynamics import LinearNet
from scipy.optimize import minimize

from iwtheory.theory.checks import NotSeparableError
from iwtheory.theory.data import bl_toy, gaussian_mixture
from iwtheory.theory.dynamics import gradient_descent
from iwtheory.theory.geometry import angle
from iwtheory.theory.limits import affine_form, limit, limit_direction, simulate
from iwtheory.theory.losses import get_loss, polynomial
from iwtheory.theory.maxmargin import max_margin

CASES = [("logistic", {}), ("exponential", {}), ("la", {"iota": (1.0, -1.0)}),
         ("vs", {"delta": (2.0, 1.0), "iota": (0.5, 0.0)}), ("label_margin", {"margin": (0.5, 0.1), "s": 2.0}),
         ("vs_softmax", {"delta": (0.5, 1.0), "iota": (-2.2, -0.1)}),
         ("polynomial", {"alpha": 1.0}), ("polynomial", {"alpha": 2.0})]


@pytest.mark.parametrize("loss", [get_loss("logistic"), get_loss("exponential"), polynomial(1.0), polynomial(2.0)],
                         ids=lambda loss: f"{loss.name}{loss.alpha or ''}")
def test_values_and_derivatives_against_finite_differences(loss):
    m = np.concatenate([-np.geomspace(50, 1e-3, 40), np.geomspace(1e-3, 1e6, 80)])
    m = m[np.abs(m - 1.0) > 1e-3]  # the polynomial tail's seam at m = 1 has no second derivative
    h = 1e-5 * np.maximum(1.0, np.abs(m))
    for f, got in ((loss.value, loss.deriv(m)), (loss.deriv, loss.second_deriv(m))):
        hi, lo = f(m + h), f(m - h)
        want = (hi - lo) / (2 * h)
        # central differences: truncation ~ h^2 (relative), rounding ~ eps |f| / h (absolute)
        bound = 1e-4 * np.abs(want) + 4e-16 * np.maximum(np.abs(hi), np.abs(lo)) / h
        assert np.all(np.abs(got - want) <= bound), np.max(np.abs(got - want) / np.maximum(bound, 1e-300))


def test_affine_losses_in_float64_at_huge_margins():
    y = np.array([1.0, -1.0])
    base, a, b = affine_form("vs", y, delta=(2.0, 0.5), iota=(1.0, -1.0))
    m = np.array([1e6, 40.0])
    # the flow uses log(-l'); it stays finite where l' itself underflows
    assert np.all(np.isfinite(base.log_neg_deriv(a * m + b))) and base.deriv(a * m + b)[0] == 0.0


def cost_sensitive_qp(Z, d):
    """min |w|^2 s.t. d_n z_n . w >= 1, by SLSQP: an independent solution of the cost-sensitive max margin."""
    Zd = Z * d[:, None]
    w0 = max_margin(Zd, np.ones(len(d))).w * 1.1
    r = minimize(lambda w: w @ w, w0, jac=lambda w: 2 * w, method="SLSQP",
                 constraints=[{"type": "ineq", "fun": lambda w: Zd @ w - 1, "jac": lambda w: Zd}],
                 options={"ftol": 1e-14, "maxiter": 500})
    return r.x / np.linalg.norm(r.x)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_cost_sensitive_limit_against_a_quadratic_programme(seed):
    ds = gaussian_mixture(n=60, d=4, separation=5.0, seed=seed, bias=True)
    lim = limit(ds.X, ds.y, "vs", weights=7.0, delta=(3.0, 1.0), iota=(0.2, 0.0))
    d = np.where(ds.y > 0, 3.0, 1.0)
    assert angle(lim.direction, cost_sensitive_qp(ds.z, d)) < 1e-6
    assert lim.kind == "cost-sensitive max margin" and lim.kkt_residual < 1e-10
    # and it is not the plain max margin
    assert angle(lim.direction, max_margin(ds.X, ds.y).w) > 1e-3


@pytest.mark.parametrize("alpha, c", [(1.0, 16.0), (2.0, 0.1), (0.5, 4.0)])
def test_the_polynomial_limit_against_a_direct_minimisation(alpha, c):
    ds = bl_toy(n_per_class=15, seed=3)
    lim = limit(ds.X, ds.y, "polynomial", weights=c, alpha=alpha)
    cw = np.where(ds.y > 0, c, 1.0)
    Z = ds.z

    def f(v):
        m = Z @ (v / np.linalg.norm(v))
        return np.sum(cw * m ** -alpha) if np.all(m > 0) else 1e30

    r = minimize(f, max_margin(ds.X, ds.y).w, method="Nelder-Mead",
                 options={"xatol": 1e-12, "fatol": 1e-14, "maxiter": 20000, "maxfev": 40000})
    assert angle(lim.direction, r.x) < 1e-5 and lim.kkt_residual < 1e-10
    assert f(lim.direction) <= r.fun * (1 + 1e-12)
    # weights matter here: the unweighted limit is another direction
    assert angle(lim.direction, limit_direction(ds.X, ds.y, "polynomial", alpha=alpha)) > 1e-3


def test_weights_and_offsets_leave_the_exponential_tails_at_the_max_margin():
    ds = bl_toy(n_per_class=20, seed=1)
    w_hat = max_margin(ds.X, ds.y).direction
    for loss, params in CASES[:6]:
        for c in (1 / 16, 16.0):
            u = limit_direction(ds.X, ds.y, loss, weights=c, power=2.0, **params)
            if loss == "vs":
                assert angle(u, w_hat) > 1e-2
            else:
                assert angle(u, w_hat) < 1e-12


def test_the_label_margin_with_an_exponential_tail_is_a_reweighting_exactly():
    ds = bl_toy(n_per_class=10, seed=2)
    s, margin = 1.5, (0.4, 0.1)
    base, sc, b = affine_form("label_margin", ds.y, margin=margin, s=s, base="exponential")
    c = np.where(ds.y > 0, 4.0, 1.0)
    lm = gradient_descent(ds.X * sc[:, None], ds.y, weights=c, loss=base, offsets=b, lr=1e-3, steps=2000,
                            n_records=10)
    rew = gradient_descent(ds.X * s, ds.y, weights=c * np.exp(s * np.where(ds.y > 0, *margin)), loss="exponential",
                           lr=1e-3, steps=2000, n_records=10)
    np.testing.assert_allclose(lm.w, rew.w, rtol=1e-12, atol=1e-14)


def test_limits_refuse_non_separable_data_and_bad_parameters():
    X = np.array([[1.0, 0.0], [-1.0, 0.0]])
    y = np.ones(2)
    for loss, params in CASES:
        with pytest.raises(NotSeparableError):
            limit(X, y, loss, **params)
    ds = bl_toy(n_per_class=5)
    with pytest.raises(ValueError, match="vs needs delta > 0"):
        limit(ds.X, ds.y, "vs", delta=(0.0, 1.0))
    with pytest.raises(ValueError, match="la takes"):
        limit(ds.X, ds.y, "la", margin=(1.0, 0.0))
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        limit(ds.X, ds.y, "hinge")


@pytest.mark.parametrize("loss, params", CASES, ids=lambda v: str(v))
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_simulated_directions_meet_their_predicted_limits(loss, params, depth):
    ds = bl_toy(n_per_class=20, seed=0)
    lim = limit(ds.X, ds.y, loss, weights=16.0, **params)
    tr = simulate(ds.X, ds.y, loss, 16.0, "flow", loss_params=params, t_max=1e50, n_records=25,
                  net=LinearNet(depth=depth, init_scale=0.0 if depth == 1 else 0.1))
    to_limit = angle(tr.w, lim.direction)
    late = tr.t >= 1e10
    # exponential tails approach like K / log t: from t = 1e10 to 1e50 the angle falls at least by half
    assert to_limit[-1] < 0.02 and to_limit[-1] <= 0.5 * to_limit[late][0] + 1e-12
    if loss in ("vs", "polynomial"):  # these keep the weights' effect: the plain max margin is not their limit
        assert angle(tr.w[-1], max_margin(ds.X, ds.y).w) > 1e-2
