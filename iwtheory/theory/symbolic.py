"""Closed forms with sympy, each returned as an expression and as a fast numpy function.

All three live on the 1-D two-cluster problem: a positive cluster at x = +1 with total weight
A and a negative cluster at x = -1 with total weight B, a slope w and a bias b (features
(x, 1)). The margins are p = w + b and q = w - b, which decouple the flow; the decision
threshold is x* = -b / w = -(p - q) / (p + q).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

A, B, tau, lam, alpha = sp.symbols("A B tau lambda alpha", positive=True)
p0, q0 = sp.symbols("p0 q0", real=True)


@dataclass
class ClosedForm:
    """A sympy expression, its free symbols in call order, and a numpy function of them."""

    expr: sp.Expr
    symbols: tuple
    func: object

    def __call__(self, *args):
        return self.func(*args)


def _closed(expr: sp.Expr, symbols: tuple) -> ClosedForm:
    f = sp.lambdify(symbols, expr, modules=["numpy", "scipy"])
    if expr.has(sp.LambertW):
        # scipy's lambertw returns complex; the principal branch is real for positive arguments
        g = f
        f = lambda *a: np.real(g(*a))  # noqa: E731
    return ClosedForm(expr, symbols, f)


def two_cluster_data(A_w: float = 1.0, B_w: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X, y, weights) of the two-cluster problem, with the bias feature appended."""
    X = np.array([[1.0, 1.0], [-1.0, 1.0]])
    return X, np.array([1.0, -1.0]), np.array([A_w, B_w])


def two_cluster_flow() -> dict[str, ClosedForm]:
    """Exponential-loss gradient flow: e^p = e^p0 + 2 A tau and e^q = e^q0 + 2 B tau.

    From dp/dtau = 2 A e^{-p}. Returns p, q, the slope w, the bias b, the threshold x*, and
    the bias's limit log(A/B)/2: the weights move the O(1) term only, so x* -> 0 like 1/log tau.
    """
    p = sp.log(sp.exp(p0) + 2 * A * tau)
    q = sp.log(sp.exp(q0) + 2 * B * tau)
    w, b = (p + q) / 2, (p - q) / 2
    args = (tau, A, B, p0, q0)
    return {"p": _closed(p, args), "q": _closed(q, args), "w": _closed(w, args),
            "b": _closed(b, args), "threshold": _closed(-b / w, args),
            "bias_limit": _closed(sp.limit(b, tau, sp.oo), (A, B))}


def l2_limit() -> dict[str, ClosedForm]:
    """Minimiser of A e^{-p} + B e^{-q} + (lambda/2)(w^2 + b^2): p* = W(2A/lambda), q* = W(2B/lambda).

    With L2 the weights keep their effect forever: the threshold stays at -(p* - q*)/(p* + q*).
    """
    p = sp.LambertW(2 * A / lam)
    q = sp.LambertW(2 * B / lam)
    args = (A, B, lam)
    return {"p": _closed(p, args), "q": _closed(q, args), "w": _closed((p + q) / 2, args),
            "b": _closed((p - q) / 2, args), "threshold": _closed(-(p - q) / (p + q), args)}


def polynomial_threshold() -> ClosedForm:
    """Limit threshold under the polynomial tail m^-alpha: -(A^g - B^g)/(A^g + B^g), g = 1/(alpha + 2).

    On the sphere |(w, b)| = R the tail A p^-alpha + B q^-alpha is minimised where
    p : q = A^g : B^g; unlike exponential tails, the weights keep their effect as t -> oo.
    """
    g = 1 / (alpha + 2)
    return _closed(-(A ** g - B ** g) / (A ** g + B ** g), (A, B, alpha))
