"""Which losses keep the weights' effect: the statistics of the theory sweep and of the network study."""

from __future__ import annotations

import numpy as np
import pandas as pd

from iwtheory.compare import claims as C
from iwtheory.compare.effects import fit_power
from iwtheory.theory.limits import LIMIT_LOSSES


def theory_rows(s: pd.DataFrame, r: pd.DataFrame) -> pd.DataFrame:
    """Per loss of the theory sweep (its summaries ``s`` and records ``r``): the limit's kind, the largest final
    angle to it (every weight and depth), the final angle to the plain max margin (largest weight, linear), and how
    fast the angle to the limit falls."""
    if s.empty:
        return pd.DataFrame()
    rows = []
    for loss in [x for x in LIMIT_LOSSES if x in set(s.loss)]:
        g = s[s.loss == loss]
        fin = g.final_angle_limit.fillna(g.final_angle) if "final_angle_limit" in g else g.final_angle
        top = g[(g.depth == 1) & (g.weight == g.weight.max())].iloc[0]
        rec = r[r.config_hash == top.config_hash].sort_values("t")
        ang = rec.angle_limit.fillna(rec.angle) if "angle_limit" in rec else rec.angle
        # exponential tails: theta ~ K / log t, a slope of -1 in log theta against log log t; polynomial: a power
        tt, aa = rec.t.to_numpy(), ang.to_numpy()
        rate = fit_power(np.log(tt[tt > 1]), aa[tt > 1], t_min=np.log(1e10), floor=1e-14) if loss != "polynomial" \
            else fit_power(tt, aa, t_min=10.0, floor=1e-14)
        rows.append({"loss": loss, "limit": g.limit_kind.dropna().iloc[0] if "limit_kind" in g and
                     g.limit_kind.notna().any() else "max margin", "final_to_limit": float(fin.max()),
                     "final_to_hat": float(top.final_angle), "rate": rate, "t_max": float(rec.t.max()),
                     "K_pred": float(top.angle_constant) if "angle_constant" in top and pd.notna(top.angle_constant)
                     else float("nan")})
    return pd.DataFrame(rows)


def network_rows(df: pd.DataFrame, limits: pd.DataFrame) -> pd.DataFrame:
    """Per regime of the loss study (its records ``df`` and the last layers' angles to their limits, ``limits``,
    one row per run): the oriented late Delta on S_in, late balanced accuracy, the feature-space angle to the
    loss's limit (mean over runs that separate their features)."""
    rows = []
    by_run = {r["config_hash"]: r for r in limits.to_dict("records")} if not limits.empty else {}
    for reg in dict.fromkeys(df.regime):
        g = df[df.regime == reg]
        starts, premise = C.late_starts(g)
        # a seed whose nets separate too late for a window of their own is read over the last tenth, and the
        # row says the premise is not met (its late effect is then not the fading the theory speaks of)
        last_tenth = C.late_window(g.epoch)
        starts = {s_: (v if np.sum(g.epoch.unique() >= v) >= C.MIN_LATE_POINTS else float(last_tenth.min()))
                  for s_, v in starts.items()}
        try:
            e, se, n = C.mean_se(C.oriented(C.late_effect(g, "frac_pos_test", starts)).to_numpy())
        except ValueError:  # no unweighted runs of this regime
            e, se, n = float("nan"), float("nan"), 0
        late = g[g.epoch.isin(last_tenth)]
        ba, bse, _ = C.mean_se(late.groupby("seed").test_balanced_acc.mean().to_numpy())
        fl = [by_run.get(h, {}) for h in sorted(g.config_hash.unique())]
        angles = [x["angle_limit"] for x in fl if x and x.get("separable")]
        rows.append({"regime": reg, "loss": g.loss.iloc[0] if "loss" in g else reg,
                     "subsampled": reg.endswith("_sub"), "late_effect": e, "late_se": se, "n_seeds": n,
                     "balanced_acc": ba, "balanced_se": bse,
                     "feature_angle": float(np.mean(angles)) if angles else float("nan"),
                     "premise_met": bool(premise["met"]), "separated": premise["separated"], "nets": premise["nets"],
                     "feature_separable": len(angles) / max(len(fl), 1)})
    return pd.DataFrame(rows)
