import numpy as np
import pytest

from iwtheory.theory.checks import WeightError
from iwtheory.theory.losses import EXPONENTIAL, LOGISTIC, get_loss, polynomial, weighted_loss

LOSSES = [LOGISTIC, EXPONENTIAL, polynomial(1.0), polynomial(2.5)]
GRID = np.array([-5.0, -1.0, -0.3, 0.0, 0.5, 0.99, 1.5, 3.0, 10.0, 40.0])


@pytest.mark.parametrize("loss", LOSSES, ids=lambda lo: f"{lo.name}{lo.alpha or ''}")
def test_derivatives_match_finite_differences(loss):
    h = 1e-6
    m = GRID[np.abs(GRID - 1.0) > 1e-3]  # the polynomial tail has a kink at m = 1
    fd = (loss.value(m + h) - loss.value(m - h)) / (2 * h)
    np.testing.assert_allclose(loss.deriv(m), fd, rtol=1e-5, atol=1e-10)
    fd2 = (loss.deriv(m + h) - loss.deriv(m - h)) / (2 * h)
    np.testing.assert_allclose(loss.second_deriv(m), fd2, rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("loss", LOSSES, ids=lambda lo: f"{lo.name}{lo.alpha or ''}")
def test_log_forms_agree_where_representable_and_stay_finite_beyond(loss):
    m = GRID
    np.testing.assert_allclose(loss.log_neg_deriv(m), np.log(-loss.deriv(m)), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(loss.log_second_deriv(m), np.log(loss.second_deriv(m)), rtol=1e-10, atol=1e-10)
    huge = np.array([1e3, 1e5, 1e10])
    assert np.all(np.isfinite(loss.log_neg_deriv(huge)))
    assert np.all(np.isfinite(loss.log_second_deriv(huge)))
    assert np.all(np.isfinite(loss.value(huge))) and np.all(loss.value(huge) >= 0)
    assert np.all(np.isfinite(loss.deriv(huge))) and np.all(loss.deriv(huge) <= 0)


def test_known_values():
    # logistic: log(1 + e^-m) in closed form at m = 0 and asymptotically -m for m -> -oo
    assert LOGISTIC.value(0.0) == pytest.approx(np.log(2.0))
    assert LOGISTIC.value(-1e3) == pytest.approx(1e3)
    assert LOGISTIC.log_neg_deriv(1e3) == pytest.approx(-1e3)
    assert EXPONENTIAL.log_neg_deriv(1e3) == -1e3
    p = polynomial(2.0)
    assert p.value(1.0) == pytest.approx(1.0)
    assert p.value(4.0) == pytest.approx(4.0 ** -2)
    assert p.deriv(4.0) == pytest.approx(-2 * 4.0 ** -3)
    assert p.value(0.0) == pytest.approx(np.log(2.0) / np.log1p(np.exp(-1.0)))


def test_weighted_loss_and_bad_weights():
    m = np.array([0.0, 1.0])
    assert weighted_loss(LOGISTIC, m, [2.0, 3.0]) == pytest.approx(2 * np.log(2) + 3 * np.log1p(np.exp(-1)))
    with pytest.raises(WeightError, match="strictly positive"):
        weighted_loss(LOGISTIC, m, [1.0, 0.0])
    with pytest.raises(WeightError, match="shape"):
        weighted_loss(LOGISTIC, m, [1.0, 1.0, 1.0])
    with pytest.raises(WeightError, match="NaN"):
        weighted_loss(LOGISTIC, m, [1.0, np.nan])
    with pytest.raises(ValueError, match="unknown loss"):
        get_loss("hinge")
    with pytest.raises(ValueError, match="alpha > 0"):
        polynomial(0.0)
