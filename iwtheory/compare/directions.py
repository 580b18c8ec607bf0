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


def direction_gap(w_a, w_b, w_hat=None) -> dict:
    """Angle between two solutions and, given w_hat, the part of their unit-direction gap orthogonal to it."""
    w_a, w_b = np.asarray(w_a, dtype=np.float64), np.asarray(w_b, dtype=np.float64)
    out = {"angle": float(angle(w_a, w_b))}
    if w_hat is not None:
        ua, ub = w_a / np.linalg.norm(w_a), w_b / np.linalg.norm(w_b)
        out["orthogonal_gap"] = float(np.linalg.norm(orthogonal_component(ua - ub, w_hat)))
    return out


def feature_max_margin(features, labels, weight, bias) -> dict:
    """Max-margin direction of penultimate features (with a bias feature) and the last layer's angle to it.

    ``weight``/``bias`` are the last layer's; non-separable features give separable=False and nan angle.
    """
    from iwtheory.theory.checks import NotSeparableError
    from iwtheory.theory.data import add_bias
    from iwtheory.theory.maxmargin import max_margin

    X = add_bias(np.asarray(features, dtype=np.float64))
    v = np.concatenate([np.ravel(weight), np.ravel(bias)]).astype(np.float64)
    try:
        mm = max_margin(X, np.asarray(labels, dtype=np.float64))
    except NotSeparableError:
        return {"separable": False, "angle": float("nan"), "margin": float("nan")}
    return {"separable": True, "angle": float(angle(v, mm.w)), "margin": float(mm.margin)}


def feature_angles(run_dir) -> "pd.DataFrame":  # noqa: F821
    """For one CNN run: per recorded epoch, the last layer's angle to the feature-space max-margin direction."""
    import json
    from pathlib import Path

    import pandas as pd

    run_dir = Path(run_dir)
    cfg = json.loads((run_dir / "config.json").read_text())
    rows = []
    for f in sorted((run_dir / "features").glob("epoch_*.npz")):
        z = np.load(f)
        r = feature_max_margin(z["features"], z["labels"], z["weight"], z["bias"])
        rows.append({"epoch": int(z["epoch"]), "weight": cfg["weight"], "seed": cfg["seed"],
                     "regime": cfg.get("regime", "none"), "config_hash": run_dir.name, **r})
    return pd.DataFrame(rows)
