"""One theory experiment's cell as a pure function: data and a resolved cell in, metrics rows and a summary out.

The runner (``runs.theory``) names, locks and records the cells; what each computes lives here, beside the
dynamics, limits and asymptotics it combines.
"""

from __future__ import annotations

import numpy as np

from iwtheory.theory import asymptotics, dynamics, losses
from iwtheory.theory.checks import DegenerateSupportError, class_weights
from iwtheory.theory.data import Dataset
from iwtheory.theory.geometry import angle
from iwtheory.theory.limits import ADJUSTED, affine_form, limit
from iwtheory.theory.maxmargin import max_margin


def second_margin(Z: np.ndarray, w_hat: np.ndarray, tol: float = 1e-8) -> float | None:
    """theta_2: the smallest margin z_n . w_hat of a point off the margin (the o(1) term decays like
    t^-(theta_2 - 1)); None when every point is on it."""
    m = Z @ w_hat
    off = m[m > 1.0 + tol]
    return float(off.min()) if off.size else None


def duplicated(ds: Dataset, weight: float) -> tuple[np.ndarray, np.ndarray]:
    """(X, y) with every positive example repeated ``weight`` times (an integer), negatives once."""
    k = int(round(weight))
    reps = np.where(ds.y > 0, k, 1)
    return np.repeat(ds.X, reps, axis=0), np.repeat(ds.y, reps)


def run_cell(cell: dict, ds: Dataset) -> tuple[list[dict], dict]:
    """Train one resolved cell of a theory sweep on ``ds`` (its keys: weight, loss, depth, method, seed, duplicate,
    init and schedule settings, loss parameters); return its metrics rows and its summary (the max margin, the
    final direction, the loss's limit and the asymptotic prediction where they apply)."""
    X, y = ds.X, ds.y
    c = class_weights(y, cell["weight"]) ** cell.get("weight_power", 1.0)
    if cell.get("duplicate"):
        X, y = duplicated(ds, cell["weight"])
        c = np.ones(len(y))
    if cell["loss"] in ADJUSTED:  # base(a z . w + b): the base loss on the points a z, margins offset by b
        loss, a, b = affine_form(cell["loss"], y, **cell.get("loss_params", {}))
        X = X * a[:, None]
    else:
        loss, b = losses.get_loss(cell["loss"], cell.get("poly_alpha", 1.0)), None
    mm = ds.svm if ds.svm is not None else max_margin(ds.X, ds.y)
    net = dynamics.LinearNet(depth=cell["depth"], widths=cell["widths"] or None, init_scale=cell["init_scale"],
                             balanced=cell["balanced"], seed=cell["seed"])
    common = dict(weights=c, loss=loss, net=net, n_records=cell["n_records"], w_hat=mm.w, offsets=b)
    if cell["method"] == "flow":
        traj = dynamics.gradient_flow(X, y, t_max=cell["t_max"], **common)
        lr = 1.0
    else:
        traj = dynamics.gradient_descent(X, y, lr=cell["lr"], steps=cell["steps"],
                                         batch_size=cell.get("batch_size"), **common)
        lr = cell["lr"]
    rows = traj.records()
    lim = None
    if cell["loss"] in ADJUSTED or cell["loss"] == "polynomial" or cell.get("weight_power", 1.0) != 1.0:
        lim = limit(ds.X, ds.y, cell["loss"], class_weights(ds.y, cell["weight"]),
                    cell.get("weight_power", 1.0), **({"alpha": cell["poly_alpha"]} if cell["loss"] == "polynomial"
                                                      else cell.get("loss_params", {})))
        for r, a_ in zip(rows, angle(traj.w, lim.direction)):
            r["angle_limit"] = float(a_)
    summary = dict(w_hat=mm.w, margin=mm.margin, support=mm.support, kkt_residual=mm.kkt_residual,
                   theta2=second_margin(ds.z, mm.w),
                   final_t=float(traj.t[-1]), final_angle=float(traj.angle[-1]), final_w=traj.w[-1])
    if not np.all(np.isfinite(traj.w[-1])):  # a step size that blew the weights up: said, so no report reads
        summary["diverged"] = True           # its nan direction as a result (the key only where it happened)
    if lim is not None:
        summary.update(limit=lim.direction, limit_kind=lim.kind, limit_kkt=lim.kkt_residual,
                       final_angle_limit=float(angle(traj.w[-1], lim.direction)))
    # The prediction holds for exponential tails and the linear model trained by GD or flow; an offset b
    # is a weight e^-b on the points a z (for an exponential tail).
    if loss.tail == "exponential" and cell["depth"] == 1 and cell["method"] != "sgd" and not cell.get("duplicate"):
        try:
            c_eff = c if b is None else c * np.exp(-b)
            off = asymptotics.asymptotic_offset(X, ds.y, c_eff, lr=lr,
                                                mm=mm if cell["loss"] not in ADJUSTED else None)
        except (DegenerateSupportError, asymptotics.NewtonError) as e:
            summary["prediction_error"] = str(e)
        else:
            summary.update(offset=off.offset, angle_constant=off.angle_constant, determined=off.determined)
            pred = off.predicted_angle(np.maximum(traj.t, 1.0))
            key = "predicted_angle" if lim is None else "predicted_angle_limit"  # the angle to the loss's limit
            for r, p, t in zip(rows, pred, traj.t):
                if t >= 1.0:
                    r[key] = float(p)
    return rows, summary
