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
from iwtheory.theory.geometry import safe_norm, unit


@dataclass
class MaxMargin:
    """The hard-margin solution: ``w`` has smallest margin 1 and ``w = Z^T alpha``.

    ``kkt_residual`` is relative to the data's scale (computed on the problem rescaled to
    max |z_n| = 1), so it means the same at every scale.
    """

    w: np.ndarray
    alpha: np.ndarray
    support: np.ndarray
    margin: float
    kkt_residual: float
    iterations: int

    @property
    def direction(self) -> np.ndarray:
        """w_hat / |w_hat|."""
        return unit(self.w)


def _pow2_scale(Z: np.ndarray) -> float:
    """A power of two near max |Z|: dividing by it is exact, so rescaling adds no rounding."""
    return float(np.ldexp(1.0, int(np.frexp(np.max(np.abs(Z)))[1])))


def _ldp(Zw: np.ndarray, kappa: float) -> tuple[np.ndarray, np.ndarray, float] | None:
    """min |w| s.t. Zw w >= 1, through the least-distance programme min |w'| s.t. Zw w' >= kappa (w = w' / kappa).

    The NNLS form of the LDP (Lawson & Hanson, ch. 23) loses the digits of s = 1 / (1 + |w'|^2), so
    kappa is chosen near the set's margin, where |w'| ~ 1 and s ~ 1/2: a tiny margin relative to the
    data no longer costs accuracy. Each solve also yields a point of the convex hull of the rows,
    whose norm bounds the margin from above and sets the next kappa. None when the origin lies in the
    hull (not separable) to the precision float64 allows.
    """
    k, d = Zw.shape
    f = np.zeros(d + 1)
    f[-1] = 1.0
    last_bound = np.inf
    for _ in range(80):
        E = np.vstack([Zw.T, np.full((1, k), kappa)])
        u, _ = nnls(E, f, maxiter=max(50 * k, 1000))
        total = float(u.sum())
        s = 1.0 - kappa * total
        r = Zw.T @ u
        if s > 0.05:
            # accurate to NNLS's precision on this conditioning (1e-5 relative at worst seen);
            # it only has to find the support, which the polish then solves exactly
            w = r / (s * kappa)
            if total == 0.0 or np.min(Zw @ w) < 1.0 - 1e-3:
                return None  # NNLS gave up at its tolerance: no hyperplane float64 can tell apart
            return w, u / (s * kappa), kappa
        if total <= 0.0:
            return None
        bound = float(safe_norm(r)) / total  # |a point of the hull| >= the margin
        if bound == 0.0 or not bound < 0.5 * last_bound:
            return None  # the bound stopped shrinking: the origin is in the hull up to rounding
        last_bound = kappa = bound
    return None


def _kkt_unit(Z: np.ndarray, w: np.ndarray, alpha: np.ndarray) -> float:
    """KKT violation of a solution of the unit-scale problem (max |z| about 1), every term dimensionless."""
    m = Z @ w
    amax = float(np.max(alpha)) if alpha.size and np.max(alpha) > 0 else 1.0
    return float(max(
        np.max(np.maximum(0.0, 1.0 - m)),                              # primal feasibility
        np.max(np.maximum(0.0, -alpha)) / amax,                        # dual feasibility
        np.max(np.abs(alpha * (m - 1.0))) / amax,                      # complementary slackness
        float(safe_norm(w - Z.T @ alpha)) / max(float(safe_norm(w)), 1e-300),  # stationarity
    ))


def kkt_residual(Z: np.ndarray, w: np.ndarray, alpha: np.ndarray) -> float:
    """Largest violation of the hard-margin KKT conditions, relative to the data's scale."""
    Z = np.asarray(Z, dtype=np.float64)
    sc = _pow2_scale(Z)
    with np.errstate(over="ignore", under="ignore"):
        return _kkt_unit(Z / sc, np.asarray(w) * sc, np.asarray(alpha) * sc * sc)


def _polish(Z: np.ndarray, w: np.ndarray, alpha: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Make the working-set answer exact: solve the support's equalities z_n . w = 1 (minimum-norm least
    squares, conditioned like Z_S rather than its Gram matrix) and the dual Z_S^T alpha = w by NNLS; points
    this leaves violated join the support and it is solved again. The result with the smallest KKT
    residual is kept."""
    best = (_kkt_unit(Z, w, alpha), w, alpha)
    S = np.flatnonzero(alpha > 0)
    for _ in range(20):
        if S.size == 0:
            break
        w2 = np.linalg.lstsq(Z[S], np.ones(S.size), rcond=None)[0]
        a_S = np.linalg.lstsq(Z[S].T, w2, rcond=None)[0]  # unique when the support is independent
        if np.any(a_S < 0):
            a_S, _ = nnls(Z[S].T, w2, maxiter=max(50 * S.size, 1000))
        a2 = np.zeros_like(alpha)
        a2[S] = a_S
        res = _kkt_unit(Z, w2, a2)
        if res < best[0]:
            best = (res, w2, a2)
        m = Z @ w2
        viol = np.flatnonzero(m < 1.0 - tol)
        if viol.size == 0:
            break
        S = np.union1d(np.flatnonzero(a2 > 0), viol[np.argsort(m[viol])[:1]])
    return best[1], best[2]


def max_margin(X, y, tol: float = 1e-12, max_iter: int = 200) -> MaxMargin:
    """Hard-margin SVM through the origin (no bias; append a constant feature for one).

    Returns w_hat scaled so that min_n y_n x_n . w_hat = 1, the dual coefficients alpha
    (w_hat = sum_n alpha_n y_n x_n), the support set (alpha_n > 0) and the geometric margin
    1 / |w_hat|. Exact at any scale and conditioning float64 represents: the data is rescaled by a
    power of two, and the least-distance solves adapt to the margin (see ``_ldp``). Raises
    NotSeparableError when no hyperplane through the origin separates the data.
    """
    Z0 = margins_matrix(X, y)
    N, d = Z0.shape
    if not np.any(Z0):
        raise NotSeparableError("every example is the zero vector, so no hyperplane separates them")
    sc = _pow2_scale(Z0)
    Z = Z0 / sc  # solve at unit scale: w for Z0 is w / sc, alpha for Z0 is alpha / sc^2
    # Start from the points closest to the hyperplane orthogonal to the mean z.
    v = Z.mean(axis=0)
    order = np.argsort(Z @ v) if np.any(v) else np.arange(N)
    work = np.zeros(N, dtype=bool)
    work[order[: min(N, max(2 * d, 64))]] = True
    kappa = 1.0
    for it in range(1, max_iter + 1):
        sol = _ldp(Z[work], kappa)
        if sol is None:
            break
        w, a_work, kappa = sol
        m = Z @ w
        viol = np.flatnonzero((m < 1.0 - tol) & ~work)
        if viol.size == 0:
            alpha = np.zeros(N)
            alpha[work] = a_work
            w, alpha = _polish(Z, w, alpha, tol)
            res = _kkt_unit(Z, w, alpha)
            if np.min(Z @ w) < 1.0 - 1e-6:
                raise NotSeparableError(
                    f"the {N} examples in {d} dimensions are not linearly separable to float64's precision: the "
                    f"best hyperplane found leaves a margin {1.0 - float(np.min(Z @ w)):.1e} short (its "
                    "margin would be below ~1e-14 of the largest |x_n|)")
            with np.errstate(over="ignore", under="ignore"):  # alpha / sc^2 may leave float64's range
                w0, alpha0 = w / sc, (alpha / sc) / sc
            support = np.flatnonzero(alpha > 0)
            return MaxMargin(w0, alpha0, support, sc / float(safe_norm(w)), res, it)
        # Add the worst violators; a bounded batch keeps each NNLS small.
        add = viol[np.argsort(m[viol])[: max(d, 64)]]
        work[add] = True
    else:
        raise RuntimeError(f"max_margin did not converge in {max_iter} working-set iterations")
    raise NotSeparableError(
        f"the {N} examples in {d} dimensions are not linearly separable through the origin "
        "(the origin lies in the convex hull of the y_n x_n, to float64's precision: a margin below "
        "~1e-14 of the largest |x_n| cannot be resolved); append a bias feature or check the labels")


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
