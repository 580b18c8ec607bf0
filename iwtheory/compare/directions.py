"""Angles and direction gaps between solutions and the max-margin direction."""

from __future__ import annotations

import numpy as np
import pandas as pd

from iwtheory.theory.checks import NotSeparableError
from iwtheory.theory.checks import class_weights as per_class
from iwtheory.theory.data import add_bias
from iwtheory.theory.geometry import angle, orthogonal_component, unit
from iwtheory.theory.limits import COSINE, cosine_limit, limit
from iwtheory.theory.maxmargin import max_margin

__all__ = ["angle", "orthogonal_component", "direction_gap", "feature_max_margin", "feature_limit",
           "feature_angle_rows", "final_feature_limit"]


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
    X = add_bias(np.asarray(features, dtype=np.float64))
    v = np.concatenate([np.ravel(weight), np.ravel(bias)]).astype(np.float64)
    try:
        mm = max_margin(X, np.asarray(labels, dtype=np.float64))
    except NotSeparableError:
        return {"separable": False, "angle": float("nan"), "margin": float("nan")}
    return {"separable": True, "angle": float(angle(v, mm.w)), "margin": float(mm.margin)}


def feature_limit(features, labels, weight, bias, loss: str, class_weights=(1.0, 1.0), **loss_params) -> dict:
    """The limit ``loss`` predicts for penultimate features (with a bias feature), trained with per-class weights
    ``class_weights`` = (positive, negative), and the last layer's angle to it; non-separable features give nan.
    For ldam's cosine classifier ``weight`` is u_pos - u_neg and the limit a point of the ball of radius 2
    (any features, separable or not): its angle and its distance to that point."""
    y = np.asarray(labels, dtype=np.float64)
    c = per_class(y, *class_weights)
    if loss in COSINE:  # a cosine classifier: no bias, features normalised; its limit is a point of the ball
        d = np.ravel(weight).astype(np.float64)
        lim = cosine_limit(np.asarray(features, dtype=np.float64), y, c, **loss_params)
        return {"separable": True, "angle_limit": float(angle(d, lim.point)), "limit_kkt": lim.kkt_residual,
                "distance_limit": float(np.linalg.norm(d - lim.point))}
    X = add_bias(np.asarray(features, dtype=np.float64))
    v = np.concatenate([np.ravel(weight), np.ravel(bias)]).astype(np.float64)
    try:
        lim = limit(X, y, loss, c, **loss_params)
    except NotSeparableError:
        return {"separable": False, "angle_limit": float("nan"), "limit_kkt": float("nan")}
    return {"separable": True, "angle_limit": float(angle(v, lim.direction)), "limit_kkt": lim.kkt_residual}


def feature_angle_rows(cfg: dict, run: str, saved: list[dict]) -> pd.DataFrame:
    """For one CNN run (its config, hash and saved feature files, as ``runs.records.read_features`` gives them):
    per saved epoch, the last layer's angle to the feature-space max-margin direction."""
    # a sweep of powers of per-example weights is read on the weight axis as w = e^p (compare.study_claims)
    # (explicit vectors and K-class class weights have no place on it: nan)
    weight = cfg["weight"] if "weight" in cfg else float(np.exp(cfg["power"])) if "power" in cfg else float("nan")
    rows = [{"epoch": int(z["epoch"]), "weight": weight, "seed": cfg["seed"],
             "regime": cfg.get("regime", "none"), "config_hash": run,
             **feature_max_margin(z["features"], z["labels"], z["weight"], z["bias"])} for z in saved]
    return pd.DataFrame(rows)


def final_feature_limit(cfg: dict, summary: dict, run: str, z: dict) -> dict:
    """For one CNN run at its last saved epoch ``z``: the last layer's angle to the limit its loss predicts for its
    own penultimate features, trained with the run's own class weights."""
    # the parameters the run trained with: its summary's where the config drew them from its data (counts = "train")
    params = {"alpha": cfg.get("poly_alpha", 1.0)} if cfg["loss"] == "polynomial" else \
        dict(summary.get("loss_params") or cfg.get("loss_params", {}))
    r = feature_limit(z["features"], z["labels"], z["weight"], z["bias"], cfg["loss"],
                      summary.get("class_weights", [cfg["weight"], 1.0]), **params)
    return {"config_hash": run, "epoch": int(z["epoch"]), **r}
