"""The hard-margin SVM through the origin: min |w|^2 / 2 subject to z_n . w >= 1.

Solved as a least-distance programme (Lawson & Hanson, ch. 23) on a growing working set:
the LDP on the working set is one NNLS problem (scipy's active-set solver), the points the
current solution violates join the set, and at the end the dual coefficients are polished by
solving the support set's equality system. When no point is violated, the KKT conditions of
the full problem hold, so the answer is exact up to floating point, not an approximation.
``max_margin_exact`` does the same in rational arithmetic with sympy for small problems.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy.optimize import nnls

from iwtheory.theory.checks import NotSeparableError, margins_matrix

# With the data scaled to max |z_n| = 1, s = 1 - sum(u) = margin^2 / (1 + margin^2) is computed
# with an absolute rounding error near 1e-16; below this the margin cannot be told from zero.
_MIN_S = 1e-13


@dataclass
class MaxMargin:
    """The hard-margin solution: ``w`` has smallest margin 1 and ``w = Z^T alpha``."""

    w: np.ndarray
    alpha: np.ndarray
    support: np.ndarray
    margin: float
    kkt_residual: float
    iterations: int

    @property
    def direction(self) -> np.ndarray:
        """w_hat / |w_hat|."""
        return self.w / np.linalg.norm(self.w)


def _ldp(Zw: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """min |w| s.t. Zw w >= 1 via NNLS; None when the constraints are incompatible."""
    k, d = Zw.shape
    E = np.vstack([Zw.T, np.ones((1, k))])
    f = np.zeros(d + 1)
    f[-1] = 1.0
    u, _ = nnls(E, f, maxiter=max(50 * k, 1000))
    s = 1.0 - u.sum()  # = 1 / (1 + |w|^2) at the optimum; zero iff not separable
    if not s > _MIN_S:
        return None
    w = (Zw.T @ u) / s
    if np.min(Zw @ w) < 1.0 - 1e-6:  # rounding garbage, not a solution
        return None
    return w, u / s


def kkt_residual(Z: np.ndarray, w: np.ndarray, alpha: np.ndarray) -> float:
    """Largest violation of the hard-margin KKT conditions, relative to the data's scale."""
    m = Z @ w
    scale = max(1.0, float(np.linalg.norm(w)) * float(np.abs(Z).max()))
    return float(max(
        np.max(np.maximum(0.0, 1.0 - m)),                      # primal feasibility
        np.max(np.maximum(0.0, -alpha)),                       # dual feasibility
        np.max(np.abs(alpha * (m - 1.0))),                     # complementary slackness
        np.linalg.norm(w - Z.T @ alpha) / scale,               # stationarity
    ))


def _polish(Z: np.ndarray, w: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Re-solve Z_S Z_S^T alpha_S = 1 on the support; keep it only if it is feasible and better."""
    S = np.flatnonzero(alpha > 0)
    if S.size == 0:
        return w, alpha
    a_S, *_ = np.linalg.lstsq(Z[S] @ Z[S].T, np.ones(S.size), rcond=None)
    if np.any(a_S < 0):
        return w, alpha
    a2 = np.zeros_like(alpha)
    a2[S] = a_S
    w2 = Z[S].T @ a_S
    if kkt_residual(Z, w2, a2) < kkt_residual(Z, w, alpha):
        return w2, a2
    return w, alpha


def max_margin(X, y, tol: float = 1e-12, max_iter: int = 200) -> MaxMargin:
    """Hard-margin SVM through the origin (no bias; append a constant feature for one).

    Returns w_hat scaled so that min_n y_n x_n . w_hat = 1, the dual coefficients alpha
    (w_hat = sum_n alpha_n y_n x_n), the support set (alpha_n > 0) and the geometric margin
    1 / |w_hat|. Raises NotSeparableError when no hyperplane through the origin separates the data.
    """
    Z0 = margins_matrix(X, y)
    N, d = Z0.shape
    zmax = float(np.linalg.norm(Z0, axis=1).max())
    if zmax == 0.0:
        raise NotSeparableError("every example is the zero vector, so no hyperplane separates them")
    Z = Z0 / zmax  # solve at unit scale: w for Z0 is w / zmax, alpha for Z0 is alpha / zmax^2
    # Start from the points closest to the hyperplane orthogonal to the mean z.
    v = Z.mean(axis=0)
    order = np.argsort(Z @ v) if np.any(v) else np.arange(N)
    work = np.zeros(N, dtype=bool)
    work[order[: min(N, max(2 * d, 64))]] = True
    for it in range(1, max_iter + 1):
        sol = _ldp(Z[work])
        if sol is None:
            break
        w, a_work = sol
        m = Z @ w
        viol = np.flatnonzero((m < 1.0 - tol) & ~work)
        if viol.size == 0:
            alpha = np.zeros(N)
            alpha[work] = a_work
            w, alpha = _polish(Z, w, alpha)
            w, alpha = w / zmax, alpha / zmax ** 2
            support = np.flatnonzero(alpha > 0)
            return MaxMargin(w, alpha, support, 1.0 / float(np.linalg.norm(w)),
                             kkt_residual(Z0, w, alpha), it)
        # Add the worst violators; a bounded batch keeps each NNLS small.
        add = viol[np.argsort(m[viol])[: max(d, 64)]]
        work[add] = True
    else:
        raise RuntimeError(f"max_margin did not converge in {max_iter} working-set iterations")
    raise NotSeparableError(
        f"the {N} examples in {d} dimensions are not linearly separable through the origin "
        "(the origin lies in the convex hull of the y_n x_n); append a bias feature or check the labels")


def check_separable(X, y, what: str = "the data") -> MaxMargin:
    """Raise NotSeparableError naming ``what`` unless the data is separable; return the solution."""
    try:
        return max_margin(X, y)
    except NotSeparableError as err:
        raise NotSeparableError(f"{what} is not linearly separable: {err}") from None


@dataclass
class ExactMaxMargin:
    """Rational hard-margin solution (sympy objects)."""

    w: object          # sympy Matrix (d x 1)
    alpha: list        # sympy Rationals, one per example
    support: list[int]
    margin_sq: object  # 1 / |w|^2, exact


def max_margin_exact(X, y, guess: MaxMargin | None = None) -> ExactMaxMargin:
    """Exact hard-margin SVM in rational arithmetic for small integer or rational data.

    Tries the float solution's support set first, then every linearly independent subset in
    order of size; a subset whose equality solution is dual and primal feasible satisfies the
    KKT conditions, which for this convex problem certifies the optimum exactly.
    """
    import sympy as sp

    Zf = margins_matrix(X, y)
    N, d = Zf.shape
    if N > 20:
        raise ValueError(f"max_margin_exact enumerates support sets; N = {N} is too large (at most 20)")
    y = np.asarray(y)
    Z = sp.Matrix([[sp.nsimplify(X[i][j], rational=True) * int(y[i]) for j in range(d)] for i in range(N)])

    def attempt(S):
        ZS = Z.extract(list(S), list(range(d)))
        G = ZS * ZS.T
        if G.det() == 0:
            return None
        a = G.LUsolve(sp.ones(len(S), 1))
        if any(v < 0 for v in a):
            return None
        w = ZS.T * a
        if any((Z.row(n) * w)[0] < 1 for n in range(N)):
            return None
        alpha = [sp.Integer(0)] * N
        for k, n in enumerate(S):
            alpha[n] = a[k]
        return ExactMaxMargin(w, alpha, [n for n in S if alpha[n] != 0], 1 / (w.T * w)[0])

    if guess is None:
        try:
            guess = max_margin(Zf, np.ones(N))
        except NotSeparableError:
            raise
    first = tuple(int(i) for i in guess.support)
    if first and (res := attempt(first)) is not None:
        return res
    for k in range(1, min(N, d) + 1):
        for S in itertools.combinations(range(N), k):
            if (res := attempt(S)) is not None:
                return res
    raise NotSeparableError("no support set satisfies the KKT conditions: the data is not separable")
