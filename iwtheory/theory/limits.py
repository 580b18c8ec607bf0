"""Implicit-bias limits of losses that were designed to keep the weights' effect (numpy/scipy only).

Binary labels, one logit f, margin m = y f(x), z_n = y_n x_n, weights c_n (the positive class's weight, or one
per example, optionally raised to a power p: c^p). Class pairs are written (positive class, negative class).
The losses, each as its paper defines it, reduced to one logit (``from_paper`` maps the papers' own
parameters to the ones below):

- ``logistic``, ``exponential``: l(m);
- ``la``, logit adjustment (Menon et al. 2021): softmax cross-entropy on logits z_k + tau log pi_k. With two
  classes and f = z_pos - z_neg it is l(m + iota_y), iota_y = tau log(pi_y / pi_other);
- ``vs``, one-logit vector scaling (Kini et al. 2021, their binary form ``BinaryVSLoss``): l(delta_y m + iota_y),
  a scale delta_y > 0 *per label*;
- ``vs_softmax``, two-class vector scaling (Kini et al.'s ``VSLoss``): cross-entropy on logits delta_k z_k +
  iota_k, a scale *per class column*. With logits (z_pos, z_neg) = (f, 0) both labels see the same scale:
  l(delta_pos m + y (iota_pos - iota_neg)), which is ``la`` on the rescaled logit delta_pos f (delta_neg
  multiplies the zero logit and drops out);
- ``label_margin``: the affine label-margin loss l(s (m - margin_y)) on an unnormalised logit, the loss
  formula of LDAM without its classifier;
- ``ldam`` (Cao et al. 2019): the same loss on a cosine classifier, logits z_k = cos(w_k, x) (features and class
  vectors normalised), so f = (w_pos/|w_pos| - w_neg/|w_neg|) . x/|x| is bounded by 2 in absolute value;
- ``polynomial`` (Wang et al. 2022): the polynomial tail m^-alpha (logistic, rescaled, below m = 1).

with l logistic (``base="exponential"`` for an exponential tail). ``la``, ``vs``, ``vs_softmax`` and
``label_margin`` are *affine-margin* losses: l(a_n z_n . w + b_n) with a_n > 0, so gradient descent on them is
gradient descent on the base loss for the rescaled points a_n z_n with margin offsets b_n (``affine_form``).

What gradient descent converges to on separable data (``limit``):

- For an exponential tail, l(a m + b) ~ e^-b e^(-a m): the loss is an exponential loss on the points
  a_n z_n with weights c_n e^(-b_n). Soudry et al. (2018) with weights: w(t) = w_hat log t + O(1), where
  w_hat is the hard-margin solution of the points a_n z_n, whatever the weights. So logistic,
  exponential, ``la`` (a_n = 1), ``vs_softmax`` (a_n = delta_pos for every n, a uniform rescaling) and
  ``label_margin`` (a_n = s, uniform) converge to the plain max-margin direction: weights, additive offsets
  and label margins only move the O(1) term. ``vs`` converges to the cost-sensitive max margin: the
  max-margin direction of the points delta_{y_n} z_n. All approach their limit like 1 / log t.
- ``ldam`` never reaches an infinite margin: its logit depends only on the directions of the class vectors,
  and d = u_pos - u_neg ranges over the ball |d| <= 2. The risk sum_n c_n l(s (z_n . d / |x_n| - margin_y))
  is convex in d, so training converges to the minimiser of a finite, convex problem over that ball, and
  that minimiser depends on the weights: the weights keep their effect (``cosine_limit``).
- For the polynomial tail only the m^-alpha part matters once every margin exceeds 1: the direction
  converges to the minimiser over unit u with z_n . u > 0 of sum_n c_n (z_n . u)^-alpha, which depends
  on the weights (Wang et al. 2022). By homogeneity it is the direction of the minimiser of the strictly
  convex phi(v) = sum_n c_n (z_n . v)^-alpha + |v|^2 / 2 on {Z v > 0}, solved here by Newton's method.

Non-separable data raises NotSeparableError; every limit reports a KKT residual.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from iwtheory.theory import seeds
from iwtheory.theory.checks import check_weights, class_weights, margins_matrix
from iwtheory.theory.geometry import safe_norm, unit
from iwtheory.theory.losses import EXPONENTIAL, LOGISTIC, LOSSES, Loss, get_loss, polynomial
from iwtheory.theory.windows import log_grid

if TYPE_CHECKING:
    from iwtheory.theory.maxmargin import MaxMargin

ADJUSTED = ("la", "vs", "vs_softmax", "label_margin", "ldam")  # the class-dependent losses
LIMIT_LOSSES = LOSSES + ADJUSTED                      # every loss name the package knows
AFFINE = tuple(n for n in LIMIT_LOSSES if n != "polynomial")  # ldam: affine in its (cosine) logit
COSINE = ("ldam",)                                    # losses whose classifier is a cosine classifier
LOSS_PARAMS = {"la": {"iota"}, "vs": {"delta", "iota"}, "vs_softmax": {"delta", "iota"},
               "label_margin": {"margin", "s"}, "ldam": {"margin", "s"}}


@dataclass
class Limit:
    """The direction gradient descent converges to, with what it is and how exactly it was solved."""

    direction: np.ndarray        # unit vector
    kind: str                    # "max margin", "cost-sensitive max margin" or "polynomial"
    kkt_residual: float
    svm: MaxMargin | None = None  # the hard-margin problem solved (affine losses)
    point: np.ndarray | None = None  # ldam: the minimiser d itself (|d| <= 2), not only its direction


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
        c = class_weights(y, 1.0 if weights is None else float(weights))
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
    if loss in ("vs", "vs_softmax"):
        d = _pair(delta, "delta")
        if min(d) <= 0:
            raise ValueError(f"{loss} needs delta > 0; got {delta!r}")
        io = _pair(iota, "iota")
        if loss == "vs":
            return lbase, pick(d), pick(io)
        # logits (f, 0): the scale of the positive column multiplies f for both labels
        return lbase, np.full(n, d[0]), pick((io[0] - io[1], io[1] - io[0]))
    if not (np.isfinite(s) and s > 0):
        raise ValueError(f"{loss} needs a scale s > 0; got {s!r}")
    return lbase, np.full(n, float(s)), -float(s) * pick(_pair(margin, "margin"))


def class_coefficients(loss: str, **params) -> tuple[float, float, float, float]:
    """(a_pos, a_neg, b_pos, b_neg) of an affine-margin loss: the loss of a positive is base(a_pos m + b_pos)."""
    _, a, b = affine_form(loss, np.array([1.0, -1.0]), **params)
    return float(a[0]), float(a[1]), float(b[0]), float(b[1])


def _counts(counts) -> tuple[float, float]:
    pos, neg = _pair(counts, "counts")
    if min(pos, neg) <= 0:
        raise ValueError(f"class counts must be positive; got {counts!r}")
    return pos, neg


def from_paper(loss: str, counts=None, priors=None, tau: float = 1.0, gamma: float = 0.3, max_m: float = 0.5,
               s: float = 30.0) -> dict:
    """The package's binary parameters of ``loss`` from its paper's own: class ``counts`` (n_pos, n_neg) of the
    training set, or ``priors`` (pi_pos, pi_neg) for ``la``; tau, gamma, max_m and s as the papers name them.

    - ``la`` (Menon et al. 2021, logits z_k + tau log pi_k): iota_y = tau log(pi_y / pi_other).
    - ``vs_softmax`` (Kini et al. 2021, ``VSLoss``: logits z_k / T_k + tau log pi_k with
      T_k = (n_k)^-gamma / min_j (n_j)^-gamma): delta_k = 1 / T_k = (n_k / n_max)^gamma, iota_k = tau log pi_k.
    - ``vs`` (the one-logit form with the same rules applied per label, at the logit scale s of Kini et al.'s
      ``BinaryVSLoss``, 30 in their code): delta_y = s (n_y / n_max)^gamma, iota_y = s tau log(pi_y / pi_other),
      the additive part of ``vs_softmax`` reduced to one logit; s = 1 is the unscaled form.
    - ``ldam`` and ``label_margin`` (Cao et al. 2019, ``LDAMLoss``): margin_y = max_m n_y^(-1/4) /
      max_k n_k^(-1/4), and s (30 in their code, with the cosine classifier).
    """
    if loss == "la":
        if (counts is None) == (priors is None):
            raise ValueError("la takes class counts or priors (one of them)")
        p_pos, p_neg = _counts(counts if priors is None else priors)
        r = float(tau) * float(np.log(p_pos / p_neg))
        return {"iota": (r, -r)}
    if counts is None or priors is not None:
        raise ValueError(f"{loss} takes the training set's class counts (n_pos, n_neg)")
    n = np.asarray(_counts(counts))
    pi = n / n.sum()
    if loss in ("vs", "vs_softmax"):
        delta = (n / n.max()) ** float(gamma)
        if loss == "vs_softmax":
            return {"delta": tuple(float(x) for x in delta), "iota": tuple(float(x) for x in tau * np.log(pi))}
        r = float(s) * float(tau) * float(np.log(pi[0] / pi[1]))
        return {"delta": tuple(float(s) * float(x) for x in delta), "iota": (r, -r)}
    if loss in ("ldam", "label_margin"):
        m = n ** -0.25
        return {"margin": tuple(float(x) for x in float(max_m) * m / m.max()), "s": float(s)}
    raise ValueError(f"{loss!r} has no paper parameters; choose one of {ADJUSTED}")


PAPER_KEYS = {"counts", "priors", "tau", "gamma", "max_m", "s"}


def resolve_params(loss: str, params: dict | None) -> dict:
    """A config's loss parameters as the package's binary ones: paper parameters (``counts`` or ``priors``,
    with tau, gamma, max_m, s) go through ``from_paper``; binary ones are returned as they are."""
    params = dict(params or {})
    if "counts" in params or "priors" in params:
        extra = set(params) - PAPER_KEYS - {"base"}
        if extra:
            raise ValueError(f"paper parameters of {loss} cannot be mixed with {sorted(extra)}")
        base = params.pop("base", None)
        out = from_paper(loss, **params)
        return out if base is None else {**out, "base": base}
    return params


def _unit_rows(X: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(X, axis=1, keepdims=True)
    if np.any(n == 0):
        raise ValueError("a cosine classifier needs every input to be non-zero")
    return X / n


def _cosine_problem(X, y, weights, margin, s, base, power=1.0):
    """(normalised points y_n x_n / |x_n|, weights, base loss, a, b) of LDAM on a linear cosine classifier."""
    Z = _unit_rows(np.asarray(X, dtype=np.float64)) * np.asarray(y, dtype=np.float64)[:, None]
    lbase, a, b = affine_form("ldam", y, margin=margin, s=s, base=base)
    return Z, example_weights(y, weights, power), lbase, a, b


def cosine_limit(X, y, weights=None, margin=(0.0, 0.0), s: float = 30.0, base: str = "logistic",
                 power: float = 1.0) -> Limit:
    """Where training a cosine classifier with the LDAM loss goes: the minimiser d of the convex risk
    sum_n c_n l(s (y_n d . x_n / |x_n| - margin_{y_n})) over the ball |d| <= 2 (d = u_pos - u_neg).

    Solved by SLSQP with the ball as a constraint; ``kkt_residual`` is the norm of the projected gradient
    (the gradient's part along d as well when the ball does not bind), relative to the gradient's norm."""
    Z, c, lbase, a, b = _cosine_problem(X, y, weights, margin, s, base, power)
    n = len(c)

    def risk(d):
        m = a * (Z @ d) + b
        return float(np.sum(c * lbase.value(m)) / n), Z.T @ (c * a * lbase.deriv(m)) / n

    d0 = Z.mean(axis=0)  # the risk is finite on any data: separable or not, the ball holds a minimiser
    d0 = d0 / max(float(safe_norm(d0)), 1e-12)
    from scipy.optimize import minimize  # here, not at import: the network runner reads this module's tables

    r = minimize(risk, d0, jac=True, method="SLSQP",
                 constraints=[{"type": "ineq", "fun": lambda d: 4.0 - d @ d, "jac": lambda d: -2 * d}],
                 options={"ftol": 1e-16, "maxiter": 1000})
    d = r.x
    _, g = risk(d)
    on_ball = abs(float(d @ d) - 4.0) < 1e-8
    resid = g - (g @ d) / (d @ d) * d if on_ball else g
    if on_ball and g @ d > 0:  # the constraint pushes the wrong way: not a KKT point
        resid = g
    return Limit(unit(d), "cosine (finite)", float(safe_norm(resid)) / max(float(safe_norm(g)), 1e-300),
                 point=d)


def cosine_descent(X, y, weights=None, margin=(0.0, 0.0), s: float = 30.0, lr: float = 0.5, steps: int = 10000,
                   n_records: int = 20, seed: int = 0, base: str = "logistic") -> tuple[np.ndarray, np.ndarray]:
    """Gradient descent on a linear cosine classifier (class vectors w_pos, w_neg, inputs normalised) with the
    LDAM loss, from a random start: (recorded steps, d = u_pos - u_neg at each)."""
    Z, c, lbase, a, b = _cosine_problem(X, y, weights, margin, s, base)
    W = seeds.rng(seed, "init").normal(size=(2, Z.shape[1]))
    at = set(log_grid(steps, n_records, integer=True).astype(int).tolist())
    ts, ds = [], []
    for t in range(steps + 1):
        nrm = np.linalg.norm(W, axis=1, keepdims=True)
        U = W / nrm
        d = U[0] - U[1]
        if t in at:
            ts.append(t)
            ds.append(d)
        if t == steps:
            break
        g = Z.T @ (c * a * lbase.deriv(a * (Z @ d) + b)) / len(c)   # d risk / d d
        for k, sign in ((0, 1.0), (1, -1.0)):
            gk = sign * g
            W[k] -= lr * (gk - (gk @ U[k]) * U[k]) / nrm[k, 0]
    return np.asarray(ts), np.asarray(ds)


def binary_vs(iota_pos: float, iota_neg: float, delta_pos: float, delta_neg: float, scale: float = 30.0) -> dict:
    """``vs`` parameters of Kini et al.'s ``BinaryVSLoss(iota_pos, iota_neg, Delta_pos, Delta_neg)``, which
    computes BCE-with-logits(scale (Delta_t x - iota_t), t) for targets t in {0, 1}: a positive has loss
    l(scale Delta_pos m - scale iota_pos), a negative (m = -x) l(scale Delta_neg m + scale iota_neg)."""
    return {"delta": (scale * float(delta_pos), scale * float(delta_neg)),
            "iota": (-scale * float(iota_pos), scale * float(iota_neg))}


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
    from iwtheory.theory.maxmargin import max_margin  # scipy's solvers load on first use, not at import

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
    if loss in COSINE:
        return cosine_limit(X, y, c, **loss_params)
    _, a, _ = affine_form(loss, y, **loss_params)
    mm = max_margin(Z * a[:, None], np.ones(len(c)))
    kind = "cost-sensitive max margin" if loss == "vs" and not np.allclose(a, a[0]) else "max margin"
    return Limit(mm.direction, kind, mm.kkt_residual, mm)


def limit_direction(X, y, loss: str = "logistic", weights=None, **loss_params) -> np.ndarray:
    """The unit vector gradient descent's direction converges to (``limit(...).direction``).

    ``loss``: logistic, exponential, la (``iota=(pos, neg)``), vs and vs_softmax (``delta=(pos, neg)``,
    ``iota``), label_margin and ldam (``margin=(pos, neg)``, ``s``) or polynomial (``alpha``); parameters from
    the papers' own through ``from_paper``; ``weights``: the positive class's weight
    (negatives weigh 1) or one per example; ``power=p`` uses the exponentiated weights c^p.
    """
    return limit(X, y, loss, weights, **loss_params).direction


def simulate(X, y, loss: str = "logistic", weights=None, method: str = "flow", power: float = 1.0,
             loss_params: dict | None = None, **kw):
    """Gradient flow (``method="flow"``) or descent ("gd") on ``loss``, through the affine form; keyword
    arguments go to ``gradient_flow`` / ``gradient_descent`` (net, t_max, steps, lr, ...)."""
    params = dict(loss_params or {})
    if loss in COSINE:
        raise ValueError(f"{loss} trains a cosine classifier, not a linear model: use cosine_descent")
    X = np.asarray(X, dtype=np.float64)
    c = example_weights(y, weights, power)
    if loss == "polynomial":
        base, a, b = polynomial(params.get("alpha", 1.0)), np.ones(len(c)), None
    else:
        base, a, b = affine_form(loss, y, **params)
    from iwtheory.theory import dynamics

    fn = dynamics.gradient_flow if method == "flow" else dynamics.gradient_descent
    return fn(X * a[:, None], y, weights=c, loss=base, offsets=b, **kw)
