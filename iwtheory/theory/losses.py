"""Losses of the margin m = y f(x), their derivatives, and weighted sums.

Every loss exposes ``value(m)``, ``deriv(m)`` (= l'(m) <= 0) and ``log_neg_deriv(m)``
(= log(-l'(m))). The last one is what the log-time gradient flow uses: at t = 1e100 the
margins are ~230 and -l' ~ 1e-100, a ratio that only stays exact in log space.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from iwtheory.theory.checks import check_weights



@functools.cache
def _special():
    import scipy.special  # 0.1 s to load: the network runner imports this module only for its tables

    return scipy.special


def expit(x):
    """scipy.special.expit, with scipy.special loaded on first use."""
    return _special().expit(x)

_LOG1P_EXP_M1 = float(np.log1p(np.exp(-1.0)))  # logistic loss at m = 1


@dataclass(frozen=True)
class Loss:
    """A margin loss; ``tail`` is 'exponential' or 'polynomial' (what the asymptotics depend on)."""

    name: str
    tail: str
    alpha: float | None = None

    def value(self, m) -> np.ndarray:
        m = np.asarray(m, dtype=np.float64)
        if self.name == "logistic":
            return np.logaddexp(0.0, -m)
        if self.name == "exponential":
            return np.exp(-m)
        return _poly_value(m, self.alpha)

    def deriv(self, m) -> np.ndarray:
        m = np.asarray(m, dtype=np.float64)
        if self.name == "logistic":
            return -expit(-m)
        if self.name == "exponential":
            return -np.exp(-m)
        return _poly_deriv(m, self.alpha)

    def second_deriv(self, m) -> np.ndarray:
        return np.exp(self.log_second_deriv(m))

    def log_second_deriv(self, m) -> np.ndarray:
        """log l''(m), finite for every finite margin (the flow's Jacobian is built from it)."""
        m = np.asarray(m, dtype=np.float64)
        logistic = -np.logaddexp(0.0, m) - np.logaddexp(0.0, -m)
        if self.name == "logistic":
            return logistic
        if self.name == "exponential":
            return -m
        a = self.alpha
        right = np.log(a * (a + 1)) - (a + 2) * np.log(np.maximum(m, 1.0))
        return np.where(m <= 1.0, logistic - np.log(_LOG1P_EXP_M1), right)

    def log_neg_deriv(self, m) -> np.ndarray:
        m = np.asarray(m, dtype=np.float64)
        if self.name == "logistic":
            return -np.logaddexp(0.0, m)
        if self.name == "exponential":
            return -m
        a = self.alpha
        left = -np.logaddexp(0.0, m) - np.log(_LOG1P_EXP_M1)
        right = np.log(a) - (a + 1) * np.log(np.maximum(m, 1.0))
        return np.where(m <= 1.0, left, right)


def _poly_value(m: np.ndarray, alpha: float) -> np.ndarray:
    left = np.logaddexp(0.0, -m) / _LOG1P_EXP_M1
    right = np.power(np.maximum(m, 1.0), -alpha)
    return np.where(m <= 1.0, left, right)


def _poly_deriv(m: np.ndarray, alpha: float) -> np.ndarray:
    left = -expit(-m) / _LOG1P_EXP_M1
    right = -alpha * np.power(np.maximum(m, 1.0), -alpha - 1)
    return np.where(m <= 1.0, left, right)


LOSSES = ("logistic", "exponential", "polynomial")  # the legal loss names, owned here once

LOGISTIC = Loss("logistic", "exponential")
EXPONENTIAL = Loss("exponential", "exponential")


def polynomial(alpha: float = 1.0) -> Loss:
    """Wang et al. (2022): logistic scaled to 1 at m = 1 for m <= 1, m**-alpha beyond."""
    if not np.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"the polynomial tail needs alpha > 0; got {alpha}")
    return Loss("polynomial", "polynomial", float(alpha))


def get_loss(name: str, alpha: float = 1.0) -> Loss:
    """Look a loss up by name: 'logistic', 'exponential' or 'polynomial' (with ``alpha``)."""
    if name == "logistic":
        return LOGISTIC
    if name == "exponential":
        return EXPONENTIAL
    if name == "polynomial":
        return polynomial(alpha)
    raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")


def weighted_loss(loss: Loss, margins, weights=None) -> float:
    """L_c = sum_n c_n l(m_n) (a sum, as in the theory; the nets average over the batch)."""
    m = np.asarray(margins, dtype=np.float64)
    c = check_weights(weights, m.shape[0])
    return float(np.sum(c * loss.value(m)))


def logistic_smoothness(Z: np.ndarray, c: np.ndarray) -> float:
    """beta of the weighted summed logistic loss sum_n c_n l(z_n . w): l'' <= 1/4, so the Hessian is at most
    Z^T diag(c) Z / 4; gradient descent with steps below 2 / beta decreases the loss."""
    Z, c = np.asarray(Z, dtype=np.float64), np.asarray(c, dtype=np.float64)
    return 0.25 * float(np.linalg.eigvalsh((Z.T * c) @ Z).max())
