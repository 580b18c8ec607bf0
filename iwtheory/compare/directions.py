"""Angles and direction gaps between solutions and the max-margin direction."""

from __future__ import annotations

import numpy as np


def angle(a, b) -> np.ndarray:
    """Angle in radians between the last-axis vectors of ``a`` and ``b`` (broadcasting).

    Computed as atan2(|a_perp|, a . b_unit): accurate for the tiny angles of late training,
    where arccos of a cosine near 1 loses half the digits.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    nb = np.linalg.norm(b, axis=-1, keepdims=True)
    if np.any(nb == 0):
        raise ValueError("the reference direction is the zero vector")
    u = b / nb
    along = np.sum(a * u, axis=-1)
    perp = np.linalg.norm(a - along[..., None] * u, axis=-1)
    return np.arctan2(perp, along)


def orthogonal_component(v, direction) -> np.ndarray:
    """The part of ``v`` orthogonal to ``direction``."""
    v = np.asarray(v, dtype=np.float64)
    u = np.asarray(direction, dtype=np.float64)
    u = u / np.linalg.norm(u)
    return v - np.sum(v * u, axis=-1, keepdims=True) * u
