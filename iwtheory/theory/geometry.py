"""Angles and projections between directions, exact at any scale float64 holds.

Vectors are rescaled by their largest entry before any square is formed, so norms of 1e300 do not
overflow and norms of 1e-300 do not underflow; an angle depends on directions only.
"""

from __future__ import annotations

import numpy as np


def unit(v) -> np.ndarray:
    """``v`` / |v| along the last axis, computed without overflow or underflow; zero rows raise."""
    v = np.asarray(v, dtype=np.float64)
    m = np.max(np.abs(v), axis=-1, keepdims=True)
    if np.any(m == 0) or not np.all(np.isfinite(m)):
        raise ValueError("a direction must be a finite, non-zero vector")
    s = v / m
    return s / np.linalg.norm(s, axis=-1, keepdims=True)


def safe_norm(v, axis: int = -1) -> np.ndarray:
    """Euclidean norm without overflow or underflow of the squares."""
    v = np.asarray(v, dtype=np.float64)
    m = np.max(np.abs(v), axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        n = np.linalg.norm(np.where(m > 0, v / np.where(m > 0, m, 1.0), 0.0), axis=axis)
    return n * np.squeeze(m, axis=axis)


def angle(a, b) -> np.ndarray:
    """Angle in radians between the last-axis vectors of ``a`` and ``b`` (broadcasting).

    Computed as atan2(|a_perp|, a . b_unit) on rescaled vectors: accurate for the tiny angles of late
    training, where arccos of a cosine near 1 loses half the digits, and at any magnitude.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    mb = np.max(np.abs(b), axis=-1, keepdims=True)
    if np.any(mb == 0):
        raise ValueError("the reference direction is the zero vector")
    u = unit(b)
    ma = np.max(np.abs(a), axis=-1, keepdims=True)
    a = a / np.where(ma > 0, ma, 1.0)  # the angle of a does not depend on its scale
    along = np.sum(a * u, axis=-1)
    perp = np.linalg.norm(a - along[..., None] * u, axis=-1)
    return np.arctan2(perp, along)


def orthogonal_component(v, direction) -> np.ndarray:
    """The part of ``v`` orthogonal to ``direction``."""
    v = np.asarray(v, dtype=np.float64)
    u = unit(direction)
    return v - np.sum(v * u, axis=-1, keepdims=True) * u
