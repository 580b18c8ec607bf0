import numpy as np
import pytest

from iwtheory.theory.asymptotics import asymptotic_offset, predicted_gap
from iwtheory.theory.checks import DegenerateSupportError
from iwtheory.theory.data import bl_toy
from iwtheory.theory.dynamics import gradient_descent, gradient_flow
from iwtheory.theory.maxmargin import max_margin

Z2 = np.array([[1.0, 0.2], [-0.3, 1.0]])


def test_offset_solves_the_support_vector_equations():
    c = np.array([4.0, 1.0])
    mm = max_margin(Z2, np.ones(2))
    off = asymptotic_offset(Z2, np.ones(2), c, lr=0.1)
    # z_n . w_tilde = log(eta c_n / alpha_n), with alpha from the SVM solver
    np.testing.assert_allclose(Z2 @ off.offset, np.log(0.1 * c / mm.alpha), rtol=1e-12)
    assert off.determined and off.rank == 2


@pytest.mark.slow
@pytest.mark.parametrize("loss, tol", [("exponential", 5e-5), ("logistic", 2e-4)])
def test_gd_after_a_million_steps_matches_the_asymptotic_form(loss, tol):
    # the check: z1 = (1, 0.2), z2 = (-0.3, 1), eta = 0.1, c = (4, 1): 4 decimals for the
    # exponential loss; the logistic loss's e^{-2m} correction still moves the 4th decimal at 1e6
    c = np.array([4.0, 1.0])
    tr = gradient_descent(Z2, np.ones(2), c, loss=loss, lr=0.1, steps=10**6, n_records=4)
    pred = asymptotic_offset(Z2, np.ones(2), c, lr=0.1).predict(10**6)[0]
    assert tr.t[-1] == 10**6
    np.testing.assert_allclose(tr.w[-1], pred, rtol=0, atol=tol)


def test_flow_angle_times_log_t_approaches_the_predicted_constant():
    ds = bl_toy(n_per_class=30, seed=2)
    for weight in (1.0, 64.0):
        c = np.where(ds.y > 0, weight, 1.0)
        off = asymptotic_offset(ds.X, ds.y, c)
        tr = gradient_flow(ds.X, ds.y, c, loss="exponential", t_max=1e100, n_records=40)
        # ~ w_hat log t + w_tilde: the measured direction equals the predicted one to O(1/t)
        np.testing.assert_allclose(tr.w[-1], off.predict(1e100)[0], rtol=1e-6, atol=1e-6)
        measured = tr.angle[-1] * np.log(tr.t[-1])
        assert measured == pytest.approx(off.angle_constant, rel=0.05)


def test_limit_direction_does_not_depend_on_the_weights():
    ds = bl_toy(n_per_class=30, seed=0)
    finals = [gradient_flow(ds.X, ds.y, np.where(ds.y > 0, w, 1.0), t_max=1e100, n_records=5).w[-1]
              for w in (1 / 256, 1.0, 256.0)]
    dirs = [f / np.linalg.norm(f) for f in finals]
    w_hat = max_margin(ds.X, ds.y).direction
    for d in dirs:
        assert np.arccos(np.clip(d @ w_hat, -1, 1)) < 0.01


def test_predicted_gap_on_the_support_is_log_weight_ratio():
    ds = bl_toy(n_per_class=30, seed=0)
    ca = np.where(ds.y > 0, 16.0, 1.0)
    gap = predicted_gap(ds.X, ds.y, ca)
    mm = max_margin(ds.X, ds.y)
    Zs = (ds.X * ds.y[:, None])[mm.support]
    np.testing.assert_allclose(Zs @ gap.difference, np.log(ca[mm.support]), atol=1e-10)
    assert gap.gap_constant > 0
    assert predicted_gap(ds.X, ds.y, np.ones(len(ds.y))).gap_constant == pytest.approx(0.0, abs=1e-12)


def test_log_time_to_angle_inverts_the_predicted_angle():
    ds = bl_toy(n_per_class=30, seed=0)
    off = asymptotic_offset(ds.X, ds.y, np.where(ds.y > 0, 64.0, 1.0))
    for eps in (0.05, 0.01, 0.002):
        s = off.log_time_to_angle(eps)
        assert off.predicted_angle(np.exp(s))[0] == pytest.approx(eps, rel=1e-9)
        assert s == pytest.approx(off.angle_constant / eps, rel=0.2)  # the K / log t approximation


def test_degenerate_support_is_reported():
    # w_hat = (1, 0); z2 = (1, 1) lies on the margin but alpha_2 = 0 in every dual solution
    Z = np.array([[1.0, 0.0], [1.0, 1.0]])
    with pytest.raises(DegenerateSupportError, match=r"examples \[1\]"):
        asymptotic_offset(Z, np.ones(2))


def test_dependent_support_vectors_still_give_the_unique_offset():
    # a duplicated support vector with different weights acts like one vector with their sum
    Z = np.array([[1.0, 0.2], [1.0, 0.2], [-0.3, 1.0]])
    off = asymptotic_offset(Z, np.ones(3), [1.0, 3.0, 1.0], lr=1.0)
    ref = asymptotic_offset(Z[1:], np.ones(2), [4.0, 1.0], lr=1.0)
    np.testing.assert_allclose(off.offset, ref.offset, atol=1e-10)


def test_weight_normalisation_does_not_move_the_limit():
    """weight_norm = "mean" rescales every weight by one constant k; then L_kc = k L_c, so gradient flow with
    kc is flow with c at time k t, w_tilde shifts by w_hat log k, and the limit direction and K_c stay."""
    ds = bl_toy(n_per_class=15, seed=0)
    c = np.where(ds.y > 0, 16.0, 1.0)
    k = len(c) / c.sum()  # what "mean" does: the weights then average 1
    a, b = asymptotic_offset(ds.X, ds.y, c), asymptotic_offset(ds.X, ds.y, k * c)
    np.testing.assert_allclose(b.offset, a.offset + np.log(k) * a.w_hat, atol=1e-9)
    assert b.angle_constant == pytest.approx(a.angle_constant, rel=1e-9)
    fa = gradient_flow(ds.X, ds.y, c, loss="exponential", t_max=1e12, n_records=24)
    fb = gradient_flow(ds.X, ds.y, k * c, loss="exponential", t_max=1e12 / k, n_records=24)
    # the same path: w_kc(t / k) = w_c(t)
    assert fb.t[-1] * k == pytest.approx(fa.t[-1], rel=1e-9)
    np.testing.assert_allclose(fb.w[-1], fa.w[-1], rtol=1e-6)
    assert fa.angle[-1] == pytest.approx(fb.angle[-1], rel=1e-6)
