"""The weight effect over time: Delta(t; w) = F(t; w) - F(t; 1), its decay, and early-vs-late summaries.

Records in (the DataFrames of ``iwtheory.runs.load``), DataFrames out. Seeds are paired: Delta
is taken within a seed, then averaged, with the standard error over seeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from iwtheory.theory.windows import in_late_window


@dataclass(frozen=True)
class Probe:
    """A probe set: the metrics column holding the share F of it predicted positive, and its names."""

    column: str
    symbol: str      # in the claims' text (S_in)
    title: str       # over a figure's panel
    key: str         # in macro names (In)


PROBE_SETS = (Probe("frac_pos_test", "S_in", "task test images", "In"),
              Probe("frac_pos_other", "S_out", "other classes", "Out"),
              Probe("frac_pos_noise", "S_noise", "noise", "Noise"))
PROBES = tuple(p.column for p in PROBE_SETS)
PROBE = {p.column: p for p in PROBE_SETS}


class IncompleteSweepError(ValueError):
    """A table or figure was asked of a sweep whose runs are not all finished."""


def weight_effect(df: pd.DataFrame, metric: str = "frac_pos_test", by: tuple = ("regime",),
                  baseline: float = 1.0, time: str = "epoch") -> pd.DataFrame:
    """Delta(t; w) = metric(t; w) - metric(t; baseline) per seed; mean and standard error over seeds."""
    need = set(by) | {"weight", "seed", time, metric}
    missing = need - set(df.columns)
    if missing:
        raise KeyError(f"records lack column(s) {sorted(missing)}")
    keys = list(by) + ["seed", time]
    base = df[df.weight == baseline].set_index(keys)[metric]
    if base.empty:
        raise ValueError(f"no runs with the baseline weight {baseline}: Delta needs the unweighted model")
    d = df.set_index(keys)
    delta = (d[metric] - base.reindex(d.index).to_numpy()).rename("delta")
    out = d.assign(delta=delta).reset_index()
    g = out.groupby(list(by) + ["weight", time])["delta"]
    res = g.agg(delta_mean="mean", delta_sd="std", n_seeds="count").reset_index()
    # one seed has no standard error: nan, not a reassuring zero
    res["delta_se"] = res["delta_sd"] / np.sqrt(res["n_seeds"])
    return res.drop(columns="delta_sd").assign(metric=metric)


def lasting_from(t: np.ndarray, failing: np.ndarray) -> float:
    """The first ``t`` after which a condition holds for good: just after its last ``failing`` record (``t[0]``
    when it never fails, nan when it fails at the end)."""
    bad = np.flatnonzero(failing)
    if bad.size == 0:
        return float(t[0])
    return float("nan") if bad[-1] == len(failing) - 1 else float(t[bad[-1] + 1])


def settle_time(t: np.ndarray, value: np.ndarray, eps: float) -> float:
    """First t after which |value| stays below eps for good (nan if it never does)."""
    return lasting_from(np.asarray(t), np.abs(np.asarray(value)) >= eps)


def early_late(effect: pd.DataFrame, threshold: float = 0.05, by: tuple = ("regime",), time: str = "epoch",
               baseline: float = 1.0) -> pd.DataFrame:
    """Per group and weight, from the seed-mean Delta of ``weight_effect``: the largest |Delta|, the mean |Delta|
    over the late window of training (``theory.windows``: the last tenth; ``tail_abs_effect``, with ``tail_se``),
    their ratio, and the first epoch after which |Delta| stays below ``threshold``. The baseline weight, whose
    Delta is zero by definition, is left out.

    Not the claims' late effect (``claims.late_effect``: each seed's signed mean Delta over its own window after
    separation): this one is the magnitude of the mean over seeds, over a fixed share of training."""
    rows = []
    for key, g in effect[effect.weight != baseline].groupby(list(by) + ["weight"]):
        g = g.sort_values(time)
        t, dm = g[time].to_numpy(), g["delta_mean"].to_numpy()
        late_mask = in_late_window(t)
        peak = float(np.max(np.abs(dm)))
        late = float(np.mean(np.abs(dm[late_mask])))
        late_se = float(np.sqrt(np.mean(g["delta_se"].to_numpy()[late_mask] ** 2)))
        rows.append(dict(zip(list(by) + ["weight"], key if isinstance(key, tuple) else (key,)),
                         peak_effect=peak, peak_time=float(t[np.argmax(np.abs(dm))]), tail_abs_effect=late,
                         tail_se=late_se, ratio=late / peak if peak > 0 else float("nan"),
                         settle_time=settle_time(t, dm, threshold)))
    return pd.DataFrame(rows)


def fit_angle_decay(t, angle, t_min: float = 1e3) -> tuple[float, float]:
    """Fit angle(t) ~ K / (log t + b) over t >= t_min; returns (K, b).

    Linear in 1 / angle = log t / K + b / K. The shift b carries the O(1) part of |w(t)|, which a
    one-parameter K / log t fit would fold into a biased K.
    """
    t, a = np.asarray(t, dtype=float), np.asarray(angle, dtype=float)
    m = (t >= t_min) & (a > 0)
    if m.sum() < 3:
        raise ValueError(f"fewer than three records with t >= {t_min}")
    slope, intercept = np.polyfit(np.log(t[m]), 1.0 / a[m], 1)
    return float(1.0 / slope), float(intercept / slope)


def fit_angle_constant(t, angle, t_min: float = 1e3) -> float:
    """K of ``fit_angle_decay``: the fitted limit of angle(t) log t."""
    return fit_angle_decay(t, angle, t_min)[0]


def residual_decay(t, w, w_hat, offset) -> tuple[np.ndarray, np.ndarray]:
    """(t, |w(t) - w_hat log t - offset|) for t > 0: the o(1) term of w(t) = w_hat log t + w_tilde + o(1)."""
    t = np.asarray(t, dtype=float)
    m = t > 0
    w = np.asarray(w, dtype=float)[m]
    r = w - np.log(t[m])[:, None] * np.asarray(w_hat)[None, :] - np.asarray(offset)[None, :]
    return t[m], np.linalg.norm(r, axis=1)


def fit_power(t, r, t_min: float, floor: float = 1e-9) -> float:
    """Slope of log r against log t over t >= t_min while r > floor (the exponent of a power-law decay)."""
    t, r = np.asarray(t, dtype=float), np.asarray(r, dtype=float)
    m = (t >= t_min) & (r > floor)
    if m.sum() < 3:
        return float("nan")
    return float(np.polyfit(np.log(t[m]), np.log(r[m]), 1)[0])


def angle_constants(records: pd.DataFrame, summaries: pd.DataFrame, t_min: float = 1e10) -> pd.DataFrame:
    """Per run with a predicted angle constant K_c (``summaries.angle_constant``), in the summaries' order: K_c,
    the measured angle x log t at the last record, the fitted K (angle ~ K / (log t + b) over t >= ``t_min``), its
    relative error, the final angle and whether the angle never rises past ``t_min``. Claim C9 and the theory table
    both read this one computation."""
    rows = []
    s = summaries[summaries.angle_constant.notna()] if "angle_constant" in summaries else summaries.iloc[:0]
    for _, r in s.iterrows():
        g = records[records.config_hash == r.config_hash].sort_values("t")
        fit = fit_angle_constant(g.t, g.angle, t_min=t_min)
        late = g[g.t >= t_min]
        rows.append(dict(loss=r.loss, weight=r.weight, config_hash=r.config_hash, predicted=float(r.angle_constant),
                         at_end=float(g.angle.iloc[-1] * np.log(g.t.iloc[-1])), fit=fit,
                         rel_error=abs(fit - r.angle_constant) / r.angle_constant,
                         final_angle=float(g.angle.iloc[-1]), decreasing=bool(np.all(np.diff(late.angle) <= 1e-15))))
    return pd.DataFrame(rows)
