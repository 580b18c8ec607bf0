import numpy as np
import pytest
import sympy as sp
from scipy.optimize import minimize

from iwtheory.theory.dynamics import gradient_flow
from iwtheory.theory.losses import polynomial
from iwtheory.theory.symbolic import (A, B, l2_limit, lam, p0, polynomial_threshold, tau,
                                      two_cluster_data, two_cluster_flow)


def test_two_cluster_flow_solves_its_ode_symbolically():
    f = two_cluster_flow()
    p, q = f["p"].expr, f["q"].expr
    assert sp.simplify(sp.diff(p, tau) - 2 * A * sp.exp(-p)) == 0
    assert sp.simplify(sp.diff(q, tau) - 2 * B * sp.exp(-q)) == 0
    assert sp.simplify(p.subs(tau, 0) - p0) == 0
    assert sp.simplify(f["bias_limit"].expr - sp.log(A / B) / 2) == 0


def test_two_cluster_flow_matches_the_numerical_flow():
    f = two_cluster_flow()
    X, y, c = two_cluster_data(16.0, 0.5)
    tr = gradient_flow(X, y, c, loss="exponential", t_max=1e30, n_records=12)
    w0 = tr.w[0]
    p0v, q0v = w0[0] + w0[1], w0[0] - w0[1]
    np.testing.assert_allclose(tr.w[:, 0], f["w"](tr.t, 16.0, 0.5, p0v, q0v), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(tr.w[:, 1], f["b"](tr.t, 16.0, 0.5, p0v, q0v), rtol=1e-7, atol=1e-9)
    assert f["bias_limit"](16.0, 0.5) == pytest.approx(0.5 * np.log(32.0))


@pytest.mark.parametrize("Aw, Bw, lmb", [(16.0, 1.0, 0.01), (0.25, 2.0, 0.1), (1.0, 1.0, 1.0)])
def test_l2_limit_matches_numerical_minimisation(Aw, Bw, lmb):
    X, y, c = two_cluster_data(Aw, Bw)

    def obj(v):
        m = (X * y[:, None]) @ v
        return np.sum(c * np.exp(-m)) + 0.5 * lmb * v @ v

    res = minimize(obj, np.zeros(2), method="BFGS", options=dict(gtol=1e-12))
    l2 = l2_limit()
    assert l2["w"](Aw, Bw, lmb) == pytest.approx(res.x[0], rel=1e-6)
    assert l2["b"](Aw, Bw, lmb) == pytest.approx(res.x[1], rel=1e-6, abs=1e-7)
    assert np.isrealobj(l2["threshold"](Aw, Bw, lmb))
    # the sympy expression and the numpy function agree
    expr_val = float(l2["p"].expr.subs({A: Aw, B: Bw, lam: lmb}).evalf())
    assert l2["p"](Aw, Bw, lmb) == pytest.approx(expr_val, rel=1e-12)


@pytest.mark.parametrize("Aw, alpha_", [(16.0, 1.0), (0.25, 2.0)])
def test_polynomial_tail_threshold_matches_a_long_flow_and_depends_on_the_weight(Aw, alpha_):
    X, y, c = two_cluster_data(Aw, 1.0)
    tr = gradient_flow(X, y, c, loss=polynomial(alpha_), t_max=1e40, n_records=5)
    measured = -tr.w[-1][1] / tr.w[-1][0]
    pred = polynomial_threshold()(Aw, 1.0, alpha_)
    assert measured == pytest.approx(pred, rel=1e-4)
    assert abs(pred) > 0.05  # the effect does not vanish
