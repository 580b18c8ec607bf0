"""Gradient descent, SGD and gradient flow for linear and deep linear models, with importance weights.

The model is f(x) = W_L ... W_1 x (depth L = 1 is the linear model). The objective is the
weighted *sum* L_c(W) = sum_n c_n l(z_n . beta), beta = W_L ... W_1 the end-to-end vector,
which is the convention of the asymptotic results in ``asymptotics``.

Gradient flow is integrated in u = log(1 + t), where dW/du = (1 + t) (-grad L). For
exponential tails the right side stays O(1) for all t, so an implicit solver reaches
t = 1e100 (u ~ 230) in a few hundred steps without overflow: the products (1+t) c_n (-l'(m_n))
are formed as exp(u + log c_n + log(-l'(m_n))).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.integrate import solve_ivp

from iwtheory.theory import seeds
from iwtheory.theory.checks import NotSeparableError, check_weights, margins_matrix
from iwtheory.theory.geometry import angle
from iwtheory.theory.losses import Loss, get_loss
from iwtheory.theory.maxmargin import max_margin
from iwtheory.theory.windows import log_grid  # noqa: F401  (re-exported: where the grid once lived)


@dataclass
class Trajectory:
    """A run recorded on a log-spaced grid of t (steps for GD/SGD, time for gradient flow)."""

    t: np.ndarray
    w: np.ndarray                    # (T, d) end-to-end weights
    loss: np.ndarray                 # weighted loss L_c
    min_margin: np.ndarray           # min_n z_n . w (unnormalised)
    angle: np.ndarray | None         # radians to w_hat (None if w_hat was not given)
    rank_one: np.ndarray | None = None   # (T, L): sigma_1^2 / |W_i|_F^2 per layer
    alignment: np.ndarray | None = None  # (T, L-1): |<top left sv of W_i, top right sv of W_{i+1}>|
    layers: list = field(default_factory=list)  # final layer matrices
    meta: dict = field(default_factory=dict)

    def records(self) -> list[dict]:
        """One plain dict per recorded t, ready for a JSON-lines record."""
        out = []
        for k in range(len(self.t)):
            r = {"t": float(self.t[k]), "objective": float(self.loss[k]),
                 "min_margin": float(self.min_margin[k]), "w": self.w[k].tolist(),
                 "w_norm": float(np.linalg.norm(self.w[k]))}
            if self.angle is not None:
                r["angle"] = float(self.angle[k])
            if self.rank_one is not None:
                r["rank_one"] = self.rank_one[k].tolist()
            if self.alignment is not None:
                r["alignment"] = self.alignment[k].tolist()
            out.append(r)
        return out


# ---- the deep linear parameterisation -------------------------------------------------

@dataclass(frozen=True)
class LinearNet:
    """The model a trajectory trains and where it starts: depth 1 is a linear model w, deeper ones the product of
    ``depth`` layers (hidden ``widths``, d each by default); the start is ``init_layers``'s. ``seed`` draws the
    initialisation (and SGD's sample order)."""

    depth: int = 1
    widths: tuple | list | None = None
    init_scale: float = 0.0
    balanced: bool = False
    seed: int = 0

    def start(self, d: int) -> list[np.ndarray]:
        """The initial layers for inputs of dimension ``d``."""
        return init_layers(d, self.depth, self.widths, self.init_scale, self.balanced, self.seed)


def init_layers(d: int, depth: int = 1, widths=None, init_scale: float = 0.0,
                balanced: bool = False, seed: int = 0) -> list[np.ndarray]:
    """Layer matrices W_1 (h_1 x d), ..., W_L (1 x h_{L-1}).

    Depth 1 starts at ``init_scale`` times a random unit vector (zero by default). Deeper
    networks need init_scale > 0 (zero is a saddle they never leave): entries are
    N(0, init_scale^2 / fan_in), or, with ``balanced``, rank-one layers
    W_i = s q_i q_{i-1}^T with W_{i+1}^T W_{i+1} = W_i W_i^T exactly and |beta| = init_scale.
    """
    if depth < 1:
        raise ValueError(f"depth must be at least 1; got {depth}")
    if init_scale < 0 or not np.isfinite(init_scale):
        raise ValueError(f"init_scale must be finite and >= 0; got {init_scale}")
    rng = seeds.rng(seed, "init")
    if depth == 1:
        v = rng.standard_normal(d)
        return [(init_scale * v / np.linalg.norm(v))[None, :]]
    if init_scale == 0:
        raise ValueError("a deep linear network initialised at zero never moves (zero is a saddle); "
                         "set init_scale > 0")
    widths = [d] * (depth - 1) if widths is None else [int(h) for h in widths]
    if len(widths) != depth - 1 or min(widths) < 1:
        raise ValueError(f"depth {depth} needs {depth - 1} positive hidden widths; got {widths}")
    dims = [d] + widths + [1]
    if balanced:
        s = init_scale ** (1.0 / depth)
        qs = [rng.standard_normal(n) for n in dims]
        qs = [q / np.linalg.norm(q) for q in qs]
        qs[-1] = np.ones(1)
        return [s * np.outer(qs[i + 1], qs[i]) for i in range(depth)]
    return [rng.standard_normal((dims[i + 1], dims[i])) * init_scale / np.sqrt(dims[i]) for i in range(depth)]


def end_to_end(layers: list[np.ndarray]) -> np.ndarray:
    """beta = W_L ... W_1 as a (d,) vector."""
    P = layers[0]
    for W in layers[1:]:
        P = W @ P
    return P[0]


def _layer_grads(layers: list[np.ndarray], g: np.ndarray) -> list[np.ndarray]:
    """d L / d W_i given g = d L / d beta: (W_L..W_{i+1})^T g (W_{i-1}..W_1)^T."""
    L = len(layers)
    rights = [None] * L  # W_{i-1} ... W_1
    P = np.eye(layers[0].shape[1])
    for i in range(L):
        rights[i] = P
        P = layers[i] @ P
    grads = [None] * L
    left = np.ones((1, 1))  # W_L ... W_{i+1}
    for i in range(L - 1, -1, -1):
        grads[i] = left.T @ g[None, :] @ rights[i].T
        left = left @ layers[i]
    return grads


def layer_diagnostics(layers: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-layer rank-one closeness and adjacent-layer alignment of top singular vectors."""
    svds = [np.linalg.svd(W, full_matrices=False) for W in layers]
    rank_one = np.array([s[0] ** 2 / np.sum(s ** 2) if s[0] > 0 else np.nan for _, s, _ in svds])
    align = np.array([abs(float(svds[i][0][:, 0] @ svds[i + 1][2][0])) for i in range(len(layers) - 1)])
    return rank_one, align


# ---- recording ------------------------------------------------------------------------

class _Recorder:
    def __init__(self, Z, c, loss, w_hat, depth, offsets=0.0):
        self.Z, self.c, self.loss, self.w_hat, self.deep = Z, c, loss, w_hat, depth > 1
        self.b = offsets
        self.rows: dict[str, list] = {k: [] for k in ("t", "w", "loss", "mm", "r1", "al")}

    def __call__(self, t, layers):
        beta = end_to_end(layers).copy()  # for depth 1 it is a view of the weights GD updates in place
        m = self.Z @ beta
        self.rows["t"].append(t)
        self.rows["w"].append(beta)
        self.rows["loss"].append(float(np.sum(self.c * self.loss.value(m + self.b))))
        self.rows["mm"].append(float(m.min()))
        if self.deep:
            r1, al = layer_diagnostics(layers)
            self.rows["r1"].append(r1)
            self.rows["al"].append(al)

    def finish(self, layers, meta) -> Trajectory:
        W = np.array(self.rows["w"])
        ang = angle(W, self.w_hat) if self.w_hat is not None else None
        return Trajectory(np.array(self.rows["t"], dtype=float), W, np.array(self.rows["loss"]),
                          np.array(self.rows["mm"]), ang,
                          np.array(self.rows["r1"]) if self.deep else None,
                          np.array(self.rows["al"]) if self.deep else None,
                          [W_.copy() for W_ in layers], meta)


def _offsets(offsets, n: int):
    """Per-example margin offsets b (the loss is l(z_n . w + b_n)): 0, or a finite (n,) array."""
    if offsets is None:
        return 0.0
    b = np.asarray(offsets, dtype=np.float64)
    if b.shape not in ((), (n,)) or not np.all(np.isfinite(b)):
        raise ValueError(f"offsets must be finite, a number or one per example ({n}); got shape {b.shape}")
    return b


def _setup(X, y, weights, loss, w_hat):
    Z = margins_matrix(X, y)
    c = check_weights(weights, Z.shape[0])
    loss = get_loss(loss) if isinstance(loss, str) else loss
    if not isinstance(loss, Loss):
        raise TypeError(f"loss must be a name or a Loss; got {type(loss).__name__}")
    if w_hat is None:
        try:
            w_hat = max_margin(Z, np.ones(Z.shape[0])).w
        except ValueError:
            w_hat = None  # non-separable data still trains; angles are just not recorded
    return Z, c, loss, w_hat


# ---- gradient descent and SGD -----------------------------------------------------------

def gradient_descent(X, y, weights=None, loss="logistic", net: LinearNet = LinearNet(), lr: float = 0.1,
                     steps: int = 10_000, batch_size: int | None = None, n_records: int = 100,
                     w_hat=None, layers=None, offsets=None) -> Trajectory:
    """Full-batch gradient descent on L_c (or SGD with ``batch_size``) of the model ``net`` (starting from its
    initialisation, or from ``layers``), recorded at log-spaced steps.

    ``offsets`` b_n shift every margin: the loss is sum_n c_n l(z_n . w + b_n) (logit adjustment and the
    other affine-margin losses of ``iwtheory.theory.limits``).

    SGD draws a fresh permutation of the examples each epoch (``net.seed`` sets it and the
    initialisation) and scales the batch gradient by N / batch_size, an unbiased estimate of
    the full-sum gradient, so lr means the same thing in both modes.
    """
    Z, c, loss, w_hat = _setup(X, y, weights, loss, w_hat)
    N, d = Z.shape
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be positive; got {lr}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1; got {steps}")
    if batch_size is not None and not 1 <= batch_size <= N:
        raise ValueError(f"batch_size must lie in [1, {N}]; got {batch_size}")
    layers = [W.copy() for W in layers] if layers is not None else net.start(d)
    b = _offsets(offsets, N)
    rec = _Recorder(Z, c, loss, w_hat, len(layers), b)
    grid = set(log_grid(steps, n_records, integer=True).tolist())
    rng = seeds.rng(net.seed, "sgd_order")
    perm, pos = None, N
    linear = len(layers) == 1
    w = layers[0][0]  # a view: updating w in place updates layers[0]
    for k in range(steps + 1):
        if k in grid:
            rec(k, layers)
        if k == steps:
            break
        if batch_size is None:
            Zb, cb, bb, scale = Z, c, b, 1.0
        else:
            if pos + batch_size > N:
                perm, pos = rng.permutation(N), 0
            idx = perm[pos:pos + batch_size]
            pos += batch_size
            Zb, cb, bb, scale = Z[idx], c[idx], (b[idx] if np.ndim(b) else b), N / batch_size
        if linear:
            g = Zb.T @ (cb * loss.deriv(Zb @ w + bb))
            w -= (lr * scale) * g
        else:
            g = Zb.T @ (cb * loss.deriv(Zb @ end_to_end(layers) + bb))
            for W, G in zip(layers, _layer_grads(layers, g)):
                W -= (lr * scale) * G
    meta = dict(method="gd" if batch_size is None else "sgd", lr=lr, steps=steps, depth=len(layers),
                batch_size=batch_size, seed=net.seed, loss=loss.name)
    return rec.finish(layers, meta)


# ---- gradient flow ----------------------------------------------------------------------

def gradient_flow(X, y, weights=None, loss="logistic", net: LinearNet = LinearNet(), t_max: float = 1e100,
                  n_records: int = 100, t_min: float = 1e-2, rtol: float = 1e-10, atol: float = 1e-10,
                  w_hat=None, layers=None, offsets=None) -> Trajectory:
    """Gradient flow dW/dt = -grad L_c(W) of the model ``net``, solved in u = log(1 + t) up to ``t_max`` (1e100
    and beyond); ``layers`` and ``offsets`` as in ``gradient_descent``."""
    Z, c, loss, w_hat = _setup(X, y, weights, loss, w_hat)
    if w_hat is None:
        # the flow in log time u = log(1 + t) is built for data a linear model separates; on other data its minimiser
        # is finite and the solver crawls toward t_max (seen: 149 s at n = 300, d = 20 without a word)
        raise NotSeparableError("gradient_flow needs linearly separable data (the margins' max-margin problem has no "
                                "solution here); train non-separable data with gradient_descent")
    N, d = Z.shape
    b = _offsets(offsets, N)
    if not (t_max > 0 and np.isfinite(np.log1p(t_max))):
        raise ValueError(f"t_max must be positive and finite; got {t_max}")
    layers = [W.copy() for W in layers] if layers is not None else net.start(d)
    shapes = [W.shape for W in layers]
    sizes = [W.size for W in layers]
    logc = np.log(c)

    def unpack(theta):
        out, k = [], 0
        for shp, n in zip(shapes, sizes):
            out.append(theta[k:k + n].reshape(shp))
            k += n
        return out

    def neg_grad_beta(u, beta):
        # (1 + t) * (-dL/dbeta), every factor kept in log space
        return Z.T @ np.exp(u + logc + loss.log_neg_deriv(Z @ beta + b))

    if len(layers) == 1:
        def rhs(u, w):
            return neg_grad_beta(u, w)

        def jac(u, w):
            k = np.exp(u + logc + loss.log_second_deriv(Z @ w + b))
            return -(Z.T * k) @ Z
    else:
        jac = None

        def rhs(u, theta):
            Ls = unpack(theta)
            ng = neg_grad_beta(u, end_to_end(Ls))
            return np.concatenate([G.ravel() for G in _layer_grads(Ls, ng)])

    t_rec = log_grid(t_max, n_records, t_min=min(t_min, t_max / 10))
    u_rec = np.log1p(t_rec)
    theta0 = np.concatenate([W.ravel() for W in layers])
    sol = solve_ivp(rhs, (0.0, u_rec[-1]), theta0, method="BDF" if jac is not None else "LSODA",
                    t_eval=u_rec, jac=jac, rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"gradient flow integration failed: {sol.message}")
    rec = _Recorder(Z, c, loss, w_hat, len(layers), b)
    for k in range(sol.y.shape[1]):
        rec(float(np.expm1(sol.t[k])), unpack(sol.y[:, k]))
    meta = dict(method="flow", t_max=t_max, depth=len(layers), seed=net.seed, loss=loss.name,
                nfev=int(sol.nfev), rtol=rtol, atol=atol)
    return rec.finish(unpack(sol.y[:, -1]), meta)
