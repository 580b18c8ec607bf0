import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.svm import SVC

from iwtheory.theory.checks import DataError, NotSeparableError
from iwtheory.theory.maxmargin import kkt_residual, max_margin, max_margin_exact

from ..conftest import symmetric_mixture


def test_closed_form_two_points():
    # z1 = e1, z2 = e2: w_hat = (1, 1), alpha = (1, 1), margin 1/sqrt(2)
    r = max_margin(np.eye(2), np.ones(2))
    np.testing.assert_allclose(r.w, [1.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(r.alpha, [1.0, 1.0], atol=1e-12)
    assert r.margin == pytest.approx(1 / np.sqrt(2))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_sklearn_svc_on_symmetric_data(seed):
    # On data closed under (x, y) -> (-x, -y), SVC's intercept is 0 by symmetry,
    # so SVC with a huge C solves the same hard-margin problem through the origin.
    X, y = symmetric_mixture(n=80, d=6, sep=5.0, seed=seed)
    ours = max_margin(X, y)
    svc = SVC(kernel="linear", C=1e10, tol=1e-10).fit(X, y)
    assert abs(svc.intercept_[0]) < 1e-5
    np.testing.assert_allclose(ours.w, svc.coef_[0], rtol=1e-5, atol=1e-6)
    # a point and its mirror image share one z, so the dual may split alpha between them
    n = len(y) // 2
    assert {i % n for i in ours.support} <= {i % n for i in svc.support_}


def test_kkt_residual_large_problem():
    rng = np.random.default_rng(0)
    N, d = 3000, 300
    y = np.where(rng.random(N) < 0.5, 1.0, -1.0)
    X = rng.standard_normal((N, d))
    X[:, 0] += 3.0 * y
    r = max_margin(X, y)
    assert r.kkt_residual < 1e-9
    m = (X * y[:, None]) @ r.w
    assert m.min() == pytest.approx(1.0, abs=1e-9)
    assert np.all(r.alpha >= 0)
    # an independent check of optimality: the dual objective equals the primal one
    assert r.alpha.sum() == pytest.approx(r.w @ r.w, rel=1e-9)


@pytest.mark.slow
def test_kkt_residual_at_issue_scale():
    rng = np.random.default_rng(1)
    N, d = 10_000, 1_000
    y = np.where(rng.random(N) < 0.5, 1.0, -1.0)
    X = rng.standard_normal((N, d))
    X[:, 0] += 4.0 * y
    r = max_margin(X, y)
    assert r.kkt_residual < 1e-9


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 8), st.integers(3, 40))
def test_random_separable_problems_meet_kkt_and_beat_the_planted_separator(seed, d, n):
    rng = np.random.default_rng(seed)
    w_star = rng.standard_normal(d)
    X = rng.standard_normal((n, d))
    s = X @ w_star
    keep = np.abs(s) > 0.1
    X, y = X[keep], np.sign(s[keep])
    if len(y) == 0:
        return
    r = max_margin(X, y)
    assert r.kkt_residual < 1e-9
    planted = np.min(y * (X @ w_star)) / np.linalg.norm(w_star)
    assert r.margin >= planted - 1e-9


def test_not_separable_raises_clear_error():
    X = np.array([[1.0, 0.0], [-1.0, 0.0]])
    with pytest.raises(NotSeparableError, match="not linearly separable"):
        max_margin(X, np.array([1.0, 1.0]))
    X = np.array([[1.0, 1.0], [2.0, 2.0], [1.5, 1.5]])
    with pytest.raises(NotSeparableError):
        max_margin(X, np.array([1.0, 1.0, -1.0]))


@pytest.mark.parametrize("X, y, msg", [
    (np.array([[np.nan, 1.0]]), np.array([1.0]), "NaN or infinite"),
    (np.array([[np.inf, 1.0]]), np.array([1.0]), "NaN or infinite"),
    (np.array([[1.0, 1.0]]), np.array([0.0]), "labels must be -1 or \\+1"),
    (np.array([[1.0, 1.0]]), np.array([1.0, -1.0]), "1 rows but y has 2"),
    (np.array([1.0, 1.0]), np.array([1.0]), "2-D array"),
])
def test_bad_input(X, y, msg):
    with pytest.raises(DataError, match=msg):
        max_margin(X, y)


def test_exact_rational_solution():
    X = np.array([[2, 1], [1, 3], [-1, -1], [0, -2], [3, 3]])
    y = np.array([1, 1, -1, -1, 1])
    ex = max_margin_exact(X, y)
    fl = max_margin(X, y)
    np.testing.assert_allclose(np.array(ex.w, dtype=float).ravel(), fl.w, atol=1e-10)
    # exact KKT: every margin >= 1, support margins exactly 1, w = sum alpha z, alpha >= 0
    Z = sp.Matrix(X) .multiply_elementwise(sp.Matrix([[int(v)] * 2 for v in y]))
    margins = Z * ex.w
    assert all(m >= 1 for m in margins)
    assert all(margins[n] == 1 for n in ex.support)
    assert sum((ex.alpha[n] * Z.row(n).T for n in range(len(y))), sp.zeros(2, 1)) == ex.w
    assert all(a >= 0 and a.is_rational for a in ex.alpha)


def test_kkt_residual_detects_a_wrong_solution():
    Z = np.eye(2)
    assert kkt_residual(Z, np.array([1.0, 1.0]), np.array([1.0, 1.0])) < 1e-15
    assert kkt_residual(Z, np.array([0.5, 1.0]), np.array([0.5, 1.0])) >= 0.5


@pytest.mark.parametrize("e", [3e-6, 1e-7, 1e-12, 1e-14])
def test_a_margin_tiny_relative_to_the_largest_point(e):
    # z = (1, e), (-1, e), (0.5, 2e): the only separator through the origin is w = (0, 1/e)
    X = np.array([[1.0, e], [-1.0, e], [0.5, 2 * e]])
    r = max_margin(X, np.ones(3))
    np.testing.assert_allclose(r.w * e, [0.0, 1.0], atol=1e-12)
    assert r.margin == pytest.approx(e, rel=1e-12) and r.kkt_residual < 1e-12
    np.testing.assert_allclose(r.alpha * e * e, [0.5, 0.5, 0.0], atol=1e-9)  # by symmetry


def test_below_float64_resolution_is_refused_not_answered():
    X = np.array([[1.0, 1e-16], [-1.0, 1e-16], [0.5, 2e-16]])
    with pytest.raises(NotSeparableError, match="float64's precision"):
        max_margin(X, np.ones(3))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_feature_scales_spread_over_five_decades(seed):
    rng = np.random.default_rng(seed)
    scales = np.logspace(0, 5, 10)
    X = rng.standard_normal((300, 10)) * scales
    y = np.sign(X @ (rng.standard_normal(10) / scales))
    r = max_margin(X, y)
    # the KKT conditions certify the optimum of this convex problem
    assert r.kkt_residual < 1e-8
    assert np.min(y * (X @ r.w)) == pytest.approx(1.0, abs=1e-9)
    assert np.linalg.norm((X * y[:, None]).T @ r.alpha - r.w) <= 1e-8 * np.linalg.norm(r.w)


@pytest.mark.parametrize("k", [1e154, 1e300, 1e-155, 1e-300])
def test_every_scale_float64_holds_gives_the_same_direction(k):
    X, y = symmetric_mixture(n=40, d=4, sep=4.0, seed=3)
    ref = max_margin(X, y)
    r = max_margin(X * k, y)
    np.testing.assert_allclose(r.w * k, ref.w, rtol=1e-10)
    assert r.margin == pytest.approx(ref.margin * k, rel=1e-10)
    assert r.kkt_residual == pytest.approx(ref.kkt_residual, abs=1e-12)
