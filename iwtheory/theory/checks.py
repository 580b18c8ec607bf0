"""Input validation shared by the theory modules: every bad input gets an error naming it."""

from __future__ import annotations

import numpy as np


class DataError(ValueError):
    """Malformed data: wrong shape, non-finite values, labels outside {-1, +1}."""


class WeightError(ValueError):
    """Importance weights that are not finite and strictly positive, or of the wrong length."""


class NotSeparableError(ValueError):
    """The data cannot be separated by a hyperplane through the origin."""


class DegenerateSupportError(ValueError):
    """A support vector has a (near) zero dual coefficient, so the asymptotic offset diverges."""


def _as_float(value, name: str, error: type) -> np.ndarray:
    """``value`` as a float64 array; strings, objects and ragged lists raise ``error`` naming ``name``."""
    if isinstance(value, (str, bytes)):
        raise error(f"{name} must be numbers, got the {type(value).__name__} {value!r:.40}")
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise error(f"{name} must be an array of numbers ({type(value).__name__} given: {e})") from None


def check_xy(X, y) -> tuple[np.ndarray, np.ndarray]:
    """Return X as a float64 (N, d) array and y as a float64 (N,) array of +-1, or raise DataError."""
    X = _as_float(X, "X", DataError)
    y = _as_float(y, "y", DataError)
    if X.ndim != 2:
        raise DataError(f"X must be a 2-D array (N, d); got shape {X.shape}")
    if y.ndim != 1:
        raise DataError(f"y must be a 1-D array (N,); got shape {y.shape}")
    if X.shape[0] != y.shape[0]:
        raise DataError(f"X has {X.shape[0]} rows but y has {y.shape[0]} labels")
    if X.shape[0] == 0:
        raise DataError("the dataset is empty")
    if not np.all(np.isfinite(X)):
        bad = np.argwhere(~np.isfinite(X))[0]
        raise DataError(f"X contains NaN or infinite values (first at row {bad[0]}, column {bad[1]})")
    if not np.all(np.isin(y, (-1.0, 1.0))):
        bad = y[~np.isin(y, (-1.0, 1.0))]
        raise DataError(f"labels must be -1 or +1; found {bad[:5].tolist()}")
    return X, y


def check_weights(weights, n: int) -> np.ndarray:
    """Return per-example weights as float64 (n,), broadcasting None to ones; raise WeightError."""
    if weights is None:
        return np.ones(n)
    c = _as_float(weights, "weights", WeightError)
    if c.ndim == 0:
        c = np.full(n, float(c))
    if c.shape != (n,):
        raise WeightError(f"weights must have shape ({n},) to match the data; got {c.shape}")
    if not np.all(np.isfinite(c)):
        raise WeightError("weights contain NaN or infinite values")
    if np.any(c <= 0):
        raise WeightError(f"weights must be strictly positive; found {c[c <= 0][:5].tolist()}")
    return c


def margins_matrix(X, y) -> np.ndarray:
    """z_n = y_n x_n, after checking the data."""
    X, y = check_xy(X, y)
    return X * y[:, None]


def class_weights(y: np.ndarray, weight: float, negative: float = 1.0) -> np.ndarray:
    """Per-example weights from per-class ones: ``weight`` on the positive class, ``negative`` (1) on the negative
    class. The one place labels become weights in NumPy (the engine's torch twin: ``Stack.class_weights``)."""
    return check_weights(np.where(np.asarray(y) > 0, float(weight), float(negative)), len(y))
