"""Angles and direction gaps between solutions and the max-margin direction."""

from __future__ import annotations

import numpy as np

from iwtheory.theory.geometry import angle, orthogonal_component, unit

__all__ = ["angle", "orthogonal_component", "direction_gap", "feature_max_margin"]


def direction_gap(w_a, w_b, w_hat=None) -> dict:
    """Angle between two solutions and, given w_hat, the part of their unit-direction gap orthogonal to it."""
    w_a, w_b = np.asarray(w_a, dtype=np.float64), np.asarray(w_b, dtype=np.float64)
    out = {"angle": float(angle(w_a, w_b))}
    if w_hat is not None:
        ua, ub = unit(w_a), unit(w_b)
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
