"""Seeded separable datasets for the theory experiments.

Every generator checks its output is linearly separable through the origin (after the
optional constant bias feature is appended) and raises NotSeparableError otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from iwtheory.theory import seeds
from iwtheory.theory.checks import check_xy


@dataclass
class Dataset:
    """Features X (N, d), labels y in {-1, +1}; ``bias`` says whether X's last column is a constant 1.

    ``svm`` is the hard-margin solution computed when the generator checked separability.
    """

    X: np.ndarray
    y: np.ndarray
    name: str
    bias: bool = False
    params: dict = field(default_factory=dict)
    svm: object = None  # MaxMargin

    @property
    def z(self) -> np.ndarray:
        """z_n = y_n x_n: the rows whose inner products with w are the margins."""
        return self.X * self.y[:, None]


def add_bias(X: np.ndarray) -> np.ndarray:
    """Append a constant-1 feature so a homogeneous classifier can learn an offset."""
    return np.hstack([X, np.ones((X.shape[0], 1))])


def _finish(X, y, name, bias, params) -> Dataset:
    X, y = check_xy(X, y)
    if bias:
        X = add_bias(X)
    from iwtheory.theory.maxmargin import check_separable  # imports data types only lazily

    svm = check_separable(X, y, what=f"the generated {name} dataset ({params})")
    return Dataset(X, y, name, bias, params, svm)


def _truncated_normal(rng: np.random.Generator, n: int, d: int, radius: float) -> np.ndarray:
    """Standard normal draws rejected beyond ``radius``, so cluster extents are bounded by design."""
    out = np.empty((0, d))
    while out.shape[0] < n:
        g = rng.standard_normal((2 * n, d))
        out = np.vstack([out, g[np.linalg.norm(g, axis=1) <= radius]])
    return out[:n]


MAX_POINTS = 100_000   # a generated dataset larger than this is a typo, not an experiment (memory is checked before)
MAX_DIM = 10_000
MAX_GAP = 5.0


def bl_toy(n_per_class: int = 50, seed: int = 0, angle_deg: float = 60.0,
           shift: tuple[float, float] = (0.5, 3.0), scales: tuple[float, float] = (1.0, 0.3),
           bias: bool = True) -> Dataset:
    """Byrd & Lipton's 2-D toy: one elongated Gaussian class and a rotated, translated copy.

    Negatives are N(0, diag(scales)^2) truncated at 2.5 standard deviations; positives are the
    same draw rotated by ``angle_deg`` and moved by ``shift``. With the default bias feature the
    classes are separable by an affine line.
    """
    if isinstance(n_per_class, bool) or not isinstance(n_per_class, (int, np.integer)) or \
            not 1 <= n_per_class <= MAX_POINTS:
        raise ValueError(f"n_per_class must be an integer in [1, {MAX_POINTS}]; got {n_per_class!r}")
    rng = seeds.rng(seed, "data")
    g = _truncated_normal(rng, 2 * n_per_class, 2, 2.5) * np.asarray(scales)
    th = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    neg = g[:n_per_class]
    pos = g[n_per_class:] @ rot.T + np.asarray(shift)
    X = np.vstack([pos, neg])
    y = np.concatenate([np.ones(n_per_class), -np.ones(n_per_class)])
    params = dict(n_per_class=n_per_class, seed=seed, angle_deg=angle_deg, shift=list(shift),
                  scales=list(scales))
    return _finish(X, y, "bl_toy", bias, params)


SOUDRY_SUPPORT = np.array([[0.5, 1.5], [1.5, 0.5]])


def soudry_toy(n_random: int = 20, seed: int = 0, gap: float = 0.5, bias: bool = False) -> Dataset:
    """Soudry et al. (2018)'s toy: fixed support vectors plus random points farther out.

    Positives are (0.5, 1.5), (1.5, 0.5) and random points with x1 + x2 >= 2 + gap; negatives
    mirror them through the origin with their own random draws. Without a bias feature the
    max-margin direction is exactly (0.5, 0.5) with margin sqrt(2), whatever the random points.
    """
    if not 0 < gap <= MAX_GAP:
        # the random points are drawn in [0, 4]^2 with x1 + x2 >= 2 + gap: past a gap of 6 there are none to draw
        raise ValueError(f"gap must lie in (0, {MAX_GAP:g}] (positive, so the random points are not support vectors, "
                         f"and small enough that [0, 4]^2 holds points beyond it); got {gap}")
    if isinstance(n_random, bool) or not isinstance(n_random, (int, np.integer)) or not 0 <= n_random <= MAX_POINTS:
        raise ValueError(f"n_random must be an integer in [0, {MAX_POINTS}]; got {n_random!r}")
    rng = seeds.rng(seed, "data")

    def far_points(k: int) -> np.ndarray:
        pts = np.empty((0, 2))
        for _ in range(10_000):  # bounded: at gap 5 a draw keeps about 1 point in 32
            if pts.shape[0] >= k:
                break
            p = rng.uniform(0.0, 4.0, size=(4 * k + 4, 2))
            pts = np.vstack([pts, p[p.sum(axis=1) >= 2.0 + gap]])
        return pts[:k]

    k_pos = n_random // 2
    pos = np.vstack([SOUDRY_SUPPORT, far_points(k_pos)])
    neg = -np.vstack([SOUDRY_SUPPORT, far_points(n_random - k_pos)])
    X = np.vstack([pos, neg])
    y = np.concatenate([np.ones(len(pos)), -np.ones(len(neg))])
    return _finish(X, y, "soudry_toy", bias, dict(n_random=n_random, seed=seed, gap=gap))


def gaussian_mixture(n: int = 200, d: int = 10, separation: float = 6.0, seed: int = 0,
                     balance: float = 0.5, bias: bool = False) -> Dataset:
    """Two isotropic unit Gaussians at +-(separation / 2) e_1 in d dimensions; ``balance`` = share of positives."""
    if not 0 < balance < 1:
        raise ValueError(f"balance must lie strictly between 0 and 1; got {balance}")
    for key, v, top in (("n", n, MAX_POINTS), ("d", d, MAX_DIM)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 1 <= v <= top:
            raise ValueError(f"{key} must be an integer in [1, {top}]; got {v!r}")
    rng = seeds.rng(seed, "data")
    n_pos = int(round(balance * n))
    if not 1 <= n_pos < n:
        raise ValueError(f"a mixture of {n} point(s) at balance {balance} has {n_pos} positive and {n - n_pos} "
                         "negative points: it needs both classes")
    y = np.concatenate([np.ones(n_pos), -np.ones(n - n_pos)])
    mu = np.zeros(d)
    mu[0] = separation / 2.0
    X = y[:, None] * mu + rng.standard_normal((n, d))
    params = dict(n=n, d=d, separation=separation, seed=seed, balance=balance)
    return _finish(X, y, "gaussian_mixture", bias, params)


GENERATORS = {"bl_toy": bl_toy, "soudry_toy": soudry_toy, "gaussian_mixture": gaussian_mixture}


def make_dataset(name: str, **params) -> Dataset:
    """Build a dataset by name with keyword parameters (what the TOML configs call)."""
    if name not in GENERATORS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(GENERATORS)}")
    return GENERATORS[name](**params)
