"""Soudry et al. (2018) with importance weights: w(t) = w_hat log t + w_tilde_c + o(1).

For an exponential-tailed loss, GD with step ``lr`` on L_c = sum_n c_n l(z_n . w) has, on the
support vectors, lr c_n exp(-z_n . w_tilde_c) = alpha_n, i.e. z_n . w_tilde_c = log(lr c_n / alpha_n),
where alpha are dual coefficients of the hard-margin SVM. Gradient flow is the case lr = 1 with
t the flow time. We compute w_tilde_c as the unique minimiser over span{z_n : n in S} of

    F(v) = sum_{n in S} lr c_n exp(-z_n . v) + w_hat . v,

whose stationarity condition sum_n lr c_n exp(-z_n . v) z_n = w_hat is the statement above; this
stays well defined when the support vectors are linearly dependent and the SVM dual is not unique.
The component of w_tilde orthogonal to that span is fixed by the initialisation and the
transient, not by the theory: ``determined`` says whether that span is all of R^d.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog

from iwtheory.theory.checks import DegenerateSupportError, check_weights, margins_matrix
from iwtheory.theory.geometry import angle, orthogonal_component
from iwtheory.theory.maxmargin import MaxMargin, max_margin


@dataclass
class AsymptoticOffset:
    """The predicted O(1) term of w(t) = w_hat log t + offset, and what follows from it."""

    w_hat: np.ndarray
    offset: np.ndarray       # w_tilde_c (its component in span of the support vectors)
    alpha: np.ndarray        # implied dual coefficients lr c_n exp(-z_n . offset) on the support
    support: np.ndarray
    lr: float
    rank: int                # dimension of span{z_n : n in support}
    determined: bool         # rank == d: the offset is fully predicted

    def predict(self, t) -> np.ndarray:
        """w_hat log t + w_tilde for each t (rows)."""
        t = np.atleast_1d(np.asarray(t, dtype=np.float64))
        return np.log(t)[:, None] * self.w_hat + self.offset

    @property
    def angle_constant(self) -> float:
        """K = lim angle(t) log t = |offset orthogonal to w_hat| / |w_hat|."""
        return float(np.linalg.norm(orthogonal_component(self.offset, self.w_hat)) / np.linalg.norm(self.w_hat))

    def predicted_angle(self, t) -> np.ndarray:
        """Angle between w_hat log t + w_tilde and w_hat (radians)."""
        return angle(self.predict(t), self.w_hat)

    def log_time_to_angle(self, eps: float) -> float:
        """log t at which the predicted angle falls to ``eps`` (log, since t itself overflows)."""
        if not 0 < eps < np.pi / 2:
            raise ValueError(f"eps must lie in (0, pi/2); got {eps}")
        nw = np.linalg.norm(self.w_hat)
        perp = np.linalg.norm(orthogonal_component(self.offset, self.w_hat))
        along = float(self.offset @ self.w_hat) / nw
        return float(max((perp / np.tan(eps) - along) / nw, 0.0))


def _degenerate_points(Z: np.ndarray, active: np.ndarray, w_hat: np.ndarray) -> np.ndarray:
    """Active points whose dual coefficient is zero in every dual solution (an LP per point set)."""
    ZA = Z[active]
    k = len(active)
    # maximise s subject to Z_A^T a = w_hat, a >= s, s <= 1 (variables a, s)
    c = np.zeros(k + 1)
    c[-1] = -1.0
    A_eq = np.hstack([ZA.T, np.zeros((Z.shape[1], 1))])
    A_ub = np.hstack([-np.eye(k), np.ones((k, 1))])
    res = linprog(c, A_ub=A_ub, b_ub=np.zeros(k), A_eq=A_eq, b_eq=w_hat,
                  bounds=[(0, None)] * k + [(None, 1.0)], method="highs")
    scale = max(1.0, float(np.abs(w_hat).max()))
    if res.status == 0 and -res.fun > 1e-9 * scale:
        return np.array([], dtype=int)
    # find which points are forced to zero: maximise each a_n separately
    bad = []
    for j in range(k):
        cj = np.zeros(k)
        cj[j] = -1.0
        r = linprog(cj, A_eq=ZA.T, b_eq=w_hat, bounds=[(0, 1e6 * scale)] * k, method="highs")
        if r.status != 0 or -r.fun <= 1e-9 * scale:
            bad.append(active[j])
    return np.array(bad, dtype=int)


class NewtonError(ValueError):
    """The Newton solve for the offset did not converge (weights or a learning rate far from 1)."""


def asymptotic_offset(X, y, weights=None, lr: float = 1.0, mm: MaxMargin | None = None,
                      margin_tol: float = 1e-8) -> AsymptoticOffset:
    """The predicted w_tilde_c for GD with step ``lr`` (``lr = 1`` for gradient flow in time t).

    Raises DegenerateSupportError when a point lies on the margin but carries zero dual weight
    in every SVM dual solution: its log(lr c_n / alpha_n) is infinite and the o(1) expansion fails.
    """
    Z = margins_matrix(X, y)
    c = check_weights(weights, Z.shape[0])
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be positive; got {lr}")
    mm = mm if mm is not None else max_margin(Z, np.ones(Z.shape[0]))
    w_hat = mm.w
    active = np.flatnonzero(Z @ w_hat <= 1.0 + margin_tol)
    bad = _degenerate_points(Z, active, w_hat)
    if bad.size:
        raise DegenerateSupportError(
            f"examples {bad.tolist()} lie on the margin but have zero dual coefficient in every SVM "
            "solution, so z_n . w_tilde = log(lr c_n / alpha_n) diverges there (Soudry et al.'s "
            "non-degeneracy assumption fails); perturb the data or drop those points")
    ZA, cA = Z[active], lr * c[active]
    U, s, Vt = np.linalg.svd(ZA, full_matrices=False)
    rank = int(np.sum(s > s[0] * 1e-12))
    Q = Vt[:rank].T                                   # orthonormal basis of span(Z_A)
    B = ZA @ Q                                        # (k, rank), full column rank
    g_hat = Q.T @ w_hat
    # start from the least-squares solution of B a = log(lr c / alpha) with the solver's alpha
    a0 = np.where(mm.alpha[active] > 0, mm.alpha[active], np.nan)
    a = np.linalg.lstsq(B, np.nan_to_num(np.log(cA / a0), nan=0.0), rcond=None)[0]
    F = lambda a: float(np.sum(cA * np.exp(-B @ a)) + g_hat @ a)  # noqa: E731
    for _ in range(200):
        e = cA * np.exp(-B @ a)
        grad = g_hat - B.T @ e
        H = (B.T * e) @ B
        step = np.linalg.solve(H, -grad)
        # Newton decrement: below rounding level the objective cannot be improved further
        if -(grad @ step) <= 1e-26 * max(1.0, float(np.sum(e))):
            break
        f0, lam = F(a), 1.0
        # Far away, backtrack; near the optimum F changes below its own rounding, and pure
        # Newton steps converge quadratically there.
        while -(grad @ step) > 1e-8 and F(a + lam * step) > f0 + 1e-4 * lam * (grad @ step) and lam > 1e-12:
            lam /= 2
        a = a + lam * step
    else:
        c = np.asarray(weights if weights is not None else 1.0, dtype=float)
        raise NewtonError(f"the Newton solve for w_tilde did not converge (weights from {c.min():.3g} to "
                          f"{c.max():.3g}, lr {lr:.3g}): log(lr c_n / alpha_n) this far from 0 leaves no usable "
                          "offset; use weights and a learning rate nearer 1")
    offset = Q @ a
    alpha = cA * np.exp(-ZA @ offset)
    return AsymptoticOffset(w_hat, offset, alpha, active, float(lr), rank, rank == Z.shape[1])


@dataclass
class DirectionGap:
    """Predicted gap between two weightings: w_a(t) - w_b(t) -> offset_a - offset_b."""

    difference: np.ndarray
    gap_constant: float      # lim angle(w_a(t), w_b(t)) log t


def predicted_gap(X, y, weights_a, weights_b=None, lr: float = 1.0) -> DirectionGap:
    """Predicted direction gap between runs weighted by ``weights_a`` and ``weights_b`` (default: unweighted)."""
    mm = max_margin(X, y)
    oa = asymptotic_offset(X, y, weights_a, lr, mm)
    ob = asymptotic_offset(X, y, weights_b, lr, mm)
    diff = oa.offset - ob.offset
    K = float(np.linalg.norm(orthogonal_component(diff, mm.w)) / np.linalg.norm(mm.w))
    return DirectionGap(diff, K)
