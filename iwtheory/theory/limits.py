"""Implicit-bias limits of losses that were designed to keep the weights' effect (numpy/scipy only).

Binary labels, margin m = y f(x), z_n = y_n x_n, weights c_n (the positive class's weight, or one per
example, optionally raised to a power p: c^p). The losses:

- ``logistic``, ``exponential``: l(m);
- ``la`` (additive logit adjustment, Menon et al. 2021): l(m + iota_y);
- ``vs`` (vector scaling, Kini et al. 2021): l(delta_y m + iota_y), delta_y > 0;
- ``ldam`` (label-dependent margins, Cao et al. 2019): l(s (m - margin_y));
- ``polynomial`` (Wang et al. 2022): the polynomial tail m^-alpha (logistic, rescaled, below m = 1).

with l logistic (``base="exponential"`` for an exponential tail). The first four are *affine-margin*
losses: l(a_n z_n . w + b_n) with a_n > 0, so gradient descent on them is gradient descent on the base
loss for the rescaled points a_n z_n with margin offsets b_n (``affine_form``).

What gradient descent's direction converges to on separable data (``limit``):

- For an exponential tail, l(a m + b) ~ e^-b e^(-a m): the loss is an exponential loss on the points
  a_n z_n with weights c_n e^(-b_n). Soudry et al. (2018) with weights: w(t) = w_hat log t + O(1), where
  w_hat is the hard-margin solution of the points a_n z_n, whatever the weights. So logistic,
  exponential, ``la`` (a_n = 1) and ``ldam`` (a_n = s, a uniform rescaling) converge to the plain max-margin
  direction: weights, additive offsets and label margins only move the O(1) term (for an exponential
  base, LDAM *is* a reweighting by e^(s margin_y) of the exponential loss on s z_n). ``vs`` converges to
  the cost-sensitive max margin: the max-margin direction of the points delta_{y_n} z_n. All approach
  their limit like 1 / log t.
- For the polynomial tail only the m^-alpha part matters once every margin exceeds 1: the direction
  converges to the minimiser over unit u with z_n . u > 0 of sum_n c_n (z_n . u)^-alpha, which depends
  on the weights (Wang et al. 2022). By homogeneity it is the direction of the minimiser of the strictly
  convex phi(v) = sum_n c_n (z_n . v)^-alpha + |v|^2 / 2 on {Z v > 0}, solved here by Newton's method.

Non-separable data raises NotSeparableError; every limit reports a KKT residual.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iwtheory.theory.checks import check_weights, margins_matrix
from iwtheory.theory.geometry import safe_norm, unit
from iwtheory.theory.losses import EXPONENTIAL, LOGISTIC, LOSSES, Loss, get_loss
from iwtheory.theory.maxmargin import MaxMargin, max_margin

ADJUSTED = ("la", "vs", "ldam")                       # the class-dependent affine-margin losses
LIMIT_LOSSES = LOSSES + ADJUSTED                      # every loss name the package knows
AFFINE = tuple(n for n in LIMIT_LOSSES if n != "polynomial")
LOSS_PARAMS = {"la": {"iota"}, "vs": {"delta", "iota"}, "ldam": {"margin", "s"}}


@dataclass
class Limit:
    """The direction gradient descent converges to, with what it is and how exactly it was solved."""

    direction: np.ndarray        # unit vector
    kind: str                    # "max margin", "cost-sensitive max margin" or "polynomial"
    kkt_residual: float
    svm: MaxMargin | None = None  # the hard-margin problem solved (affine losses)


def _pair(v, name: str) -> tuple[float, float]:
    try:
        pos, neg = (float(x) for x in v)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (positive class, negative class); got {v!r}") from None
    if not (np.isfinite(pos) and np.isfinite(neg)):
        raise ValueError(f"{name} must be finite; got {v!r}")
    return pos, neg


def example_weights(y, weights=None, power: float = 1.0) -> np.ndarray:
    """Per-example weights: ``weights`` on positives (1 on negatives) or one per example, raised to ``power``."""
    y = np.asarray(y, dtype=np.float64)
    if weights is None or np.ndim(weights) == 0:
        w = 1.0 if weights is None else float(weights)
        c = np.where(y > 0, w, 1.0)
    else:
        c = np.asarray(weights, dtype=np.float64)
    c = check_weights(c, len(y))
    if not np.isfinite(power):
        raise ValueError(f"the weight power must be finite; got {power}")
    return c ** power


def affine_form(loss: str, y, delta=(1.0, 1.0), iota=(0.0, 0.0), margin=(0.0, 0.0), s: float = 1.0,
                base: str = "logistic") -> tuple[Loss, np.ndarray, np.ndarray]:
    """(base loss, a, b) with the loss of example n equal to base(a_n m_n + b_n)."""
    if loss not in AFFINE:
        raise ValueError(f"{loss!r} is not an affine-margin loss; choose one of {AFFINE}")
    defaults = {"delta": (1.0, 1.0), "iota": (0.0, 0.0), "margin": (0.0, 0.0), "s": 1.0}
    # compared as arrays: a numpy pair (a natural argument) makes `!=` elementwise, and `if` on it ambiguous
    given = {k for k, v in (("delta", delta), ("iota", iota), ("margin", margin), ("s", s))
             if np.shape(v) != np.shape(defaults[k]) or not np.array_equal(np.asarray(v, dtype=float),
                                                                             np.asarray(defaults[k], dtype=float))}
    extra = given - LOSS_PARAMS.get(loss, set())
    if extra:
        raise ValueError(f"{loss} takes {sorted(LOSS_PARAMS.get(loss, set())) or 'no parameters'}; got {sorted(extra)}")
    if base not in ("logistic", "exponential"):
        raise ValueError(f"the base loss must be logistic or exponential; got {base!r}")
    y = np.asarray(y, dtype=np.float64)
    pos = y > 0
    pick = lambda p: np.where(pos, p[0], p[1])  # noqa: E731
    n = len(y)
    if loss in ("logistic", "exponential"):
        return get_loss(loss), np.ones(n), np.zeros(n)
    lbase = LOGISTIC if base == "logistic" else EXPONENTIAL
    if loss == "la":
        return lbase, np.ones(n), pick(_pair(iota, "iota"))
    if loss == "vs":
        d = _pair(delta, "delta")
        if min(d) <= 0:
            raise ValueError(f"vs needs delta > 0; got {delta!r}")
        return lbase, pick(d), pick(_pair(iota, "iota"))
    if not (np.isfinite(s) and s > 0):
        raise ValueError(f"ldam needs a scale s > 0; got {s!r}")
    return lbase, np.full(n, float(s)), -float(s) * pick(_pair(margin, "margin"))


def class_coefficients(loss: str, **params) -> tuple[float, float, float, float]:
    """(a_pos, a_neg, b_pos, b_neg) of an affine-margin loss: the loss of a positive is base(a_pos m + b_pos)."""
    _, a, b = affine_form(loss, np.array([1.0, -1.0]), **params)
    return float(a[0]), float(a[1]), float(b[0]), float(b[1])


def polynomial_limit(Z: np.ndarray, c: np.ndarray, alpha: float, v0: np.ndarray,
                     tol: float = 1e-13, max_iter: int = 200) -> tuple[np.ndarray, float]:
    """(unit direction, KKT residual) of min sum c (z . u)^-alpha over unit u, from a start with Z v0 > 0."""
    v = v0 / safe_norm(v0)

    def phi(v):
        m = Z @ v
        return np.inf if np.any(m <= 0) else float(np.sum(c * m ** -alpha) + 0.5 * v @ v)

    for _ in range(max_iter):
        m = Z @ v
        g = -alpha * Z.T @ (c * m ** (-alpha - 1)) + v
        res = float(safe_norm(g)) / max(float(safe_norm(v)), 1e-300)
        if res <= tol:
            break
        H = alpha * (alpha + 1) * (Z.T * (c * m ** (-alpha - 2))) @ Z + np.eye(len(v))
        step = np.linalg.solve(H, -g)
        f0, lam = phi(v), 1.0
        while phi(v + lam * step) > f0 + 1e-4 * lam * (g @ step) and lam > 1e-14:
            lam /= 2
        v = v + lam * step
    m = Z @ v
    g = -alpha * Z.T @ (c * m ** (-alpha - 1)) + v
    return unit(v), float(safe_norm(g)) / float(safe_norm(v))


def limit(X, y, loss: str = "logistic", weights=None, power: float = 1.0, **loss_params) -> Limit:
    """The limit direction of gradient descent (and flow) for ``loss`` on separable data; see the module."""
    if loss not in LIMIT_LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose one of {LIMIT_LOSSES}")
    Z = margins_matrix(X, y)
    c = example_weights(y, weights, power)
    if loss == "polynomial":
        unknown = set(loss_params) - {"alpha"}
        if unknown:
            raise ValueError(f"polynomial takes alpha only; got {sorted(unknown)}")
        alpha = float(loss_params.get("alpha", 1.0))
        if not alpha > 0:
            raise ValueError(f"the polynomial tail needs alpha > 0; got {alpha}")
        mm = max_margin(Z, np.ones(len(c)))  # separable (or NotSeparableError); its w_hat starts the solve
        u, res = polynomial_limit(Z, c, alpha, mm.w)
        return Limit(u, "polynomial", res, mm)
    _, a, _ = affine_form(loss, y, **loss_params)
    mm = max_margin(Z * a[:, None], np.ones(len(c)))
    kind = "cost-sensitive max margin" if loss == "vs" and not np.allclose(a, a[0]) else "max margin"
    return Limit(mm.direction, kind, mm.kkt_residual, mm)


def limit_direction(X, y, loss: str = "logistic", weights=None, **loss_params) -> np.ndarray:
    """The unit vector gradient descent's direction converges to (``limit(...).direction``).

    ``loss``: logistic, exponential, la (``iota=(pos, neg)``), vs (``delta=(pos, neg)``, ``iota``), ldam
    (``margin=(pos, neg)``, ``s``) or polynomial (``alpha``); ``weights``: the positive class's weight
    (negatives weigh 1) or one per example; ``power=p`` uses the exponentiated weights c^p.
    """
    return limit(X, y, loss, weights, **loss_params).direction


def simulate(X, y, loss: str = "logistic", weights=None, method: str = "flow", power: float = 1.0,
             loss_params: dict | None = None, **kw):
    """Gradient flow (``method="flow"``) or descent ("gd") on ``loss``, through the affine form; keyword
    arguments go to ``gradient_flow`` / ``gradient_descent`` (depth, t_max, steps, lr, ...)."""
    from iwtheory.theory import dynamics
    from iwtheory.theory.losses import polynomial

    params = dict(loss_params or {})
    X = np.asarray(X, dtype=np.float64)
    c = example_weights(y, weights, power)
    if loss == "polynomial":
        base, a, b = polynomial(params.get("alpha", 1.0)), np.ones(len(c)), None
    else:
        base, a, b = affine_form(loss, y, **params)
    fn = dynamics.gradient_flow if method == "flow" else dynamics.gradient_descent
    return fn(X * a[:, None], y, weights=c, loss=base, offsets=b, **kw)
