"""Which losses keep the weights' effect: the theory experiment and the network study side by side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from iwtheory.compare import claims as C
from iwtheory.compare.effects import fit_power
from iwtheory.report.analysis import Analysis, study
from iwtheory.report.latex import escape
from iwtheory.report.tables import latex_table, pm
from iwtheory.runs.records import feature_limit_angle
from iwtheory.theory.limits import COSINE, LIMIT_LOSSES

LOSS_STUDY = "study_losses"
# the loss study's rows: its regimes are loss names, the polynomial tail as poly1 (alpha = 1, the theory's) and poly2
ROWS = tuple(n for name in LIMIT_LOSSES for n in (("poly1", "poly2") if name == "polynomial" else (name,)))


def theory_rows(a: Analysis) -> pd.DataFrame:
    """Per loss: the limit's kind, the largest final angle to it (every weight and depth), the final angle to
    the plain max margin (largest weight, linear), and how fast the angle to the limit falls."""
    s = a.theory_summaries("theory_losses")
    r = a.theory("theory_losses")
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
                     "final_to_hat": float(top.final_angle), "rate": rate,
                     "K_pred": float(top.angle_constant) if "angle_constant" in top and pd.notna(top.angle_constant)
                     else float("nan")})
    return pd.DataFrame(rows)


def network_rows(a: Analysis) -> pd.DataFrame:
    """Per regime of the loss study: the oriented late Delta on S_in, late balanced accuracy, the feature-space
    angle to the loss's limit (mean over runs that separate their features)."""
    st = study(a, LOSS_STUDY)
    if st is None:
        return pd.DataFrame()
    rows = []
    for reg in dict.fromkeys(st.df.regime):
        g = st.df[st.df.regime == reg]
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
        roots = dict(zip(g.config_hash, g.root))
        fl = [feature_limit_angle(Path(roots[h]) / h) for h in sorted(g.config_hash.unique())]
        angles = [x["angle_limit"] for x in fl if x and x.get("separable")]
        rows.append({"regime": reg, "loss": g.loss.iloc[0] if "loss" in g else reg,
                     "subsampled": reg.endswith("_sub"), "late_effect": e, "late_se": se, "n_seeds": n,
                     "balanced_acc": ba, "balanced_se": bse,
                     "feature_angle": float(np.mean(angles)) if angles else float("nan"),
                     "premise_met": bool(premise["met"]), "separated": premise["separated"], "nets": premise["nets"],
                     "feature_separable": len(angles) / max(len(fl), 1)})
    return pd.DataFrame(rows)


def losses_table(th: pd.DataFrame, net: pd.DataFrame) -> str:
    """The theory's limits and the networks' late effects, one row per loss."""
    rows = []
    have = set(th.loss if not th.empty else []) | set(net.regime.str.replace("_sub", "") if not net.empty else [])
    # the theory's polynomial tail has alpha = 1: it is the poly1 row
    names = [n for n in ROWS if n in have or (n == "poly1" and "polynomial" in have)]
    for name in names:
        base = {"poly1": "polynomial", "poly2": "-"}.get(name, name)
        t = th[th.loss == base] if not th.empty else th
        # ldam is not in the theory sweep (its cosine classifier is no linear model); its limit is still known
        kind = "finite minimiser (cosine)" if name in COSINE else "---"
        row = {"loss": escape(name), "limit (theory)": escape(t.limit.iloc[0]) if len(t) else kind,
               r"final $\theta$ to limit": pm(t.final_to_limit.iloc[0], digits=4) if len(t) else "---",
               r"final $\theta$ to $\hat w$": pm(t.final_to_hat.iloc[0], digits=4) if len(t) else "---"}
        for sub, label in ((False, "balanced"), (True, "subsampled")) if not net.empty else ():
            n = net[(net.regime == (name + "_sub" if sub else name))]
            mark = "" if not len(n) or n.premise_met.iloc[0] else "$^\\dagger$"
            row[f"late $\\Delta$, {label}"] = pm(n.late_effect.iloc[0], n.late_se.iloc[0]) + mark if len(n) else "---"
            if sub:
                row["bal. acc., subsampled"] = pm(n.balanced_acc.iloc[0], n.balanced_se.iloc[0]) if len(n) else "---"
                row["feature $\\theta$ to limit"] = pm(n.feature_angle.iloc[0]) if len(n) else "---"
        rows.append(row)
    cells = pd.DataFrame(rows)
    theory = (r"Which losses keep the weights' effect. Theory (2-D toy, gradient flow to the last time, linear and "
              r"deep linear): the limit each loss predicts and the final angle to it (largest over weights and "
              r"depths) and to the plain max margin $\hat w$ (weight 16). ")
    nets = (r"Networks: the oriented late $\Delta$ on $S_{\mathrm{in}}$ (mean $\pm$ standard error over seeds), "
            r"the late balanced accuracy, and the last layer's angle to the limit its loss predicts for its own "
            r"penultimate features (mean over nets that separate them). $^\dagger$: not every net separates its "
            r"training data with a late window to spare; the value is over the last tenth of training." if not net.empty
            else
            r"The networks' columns need the loss study's records (\texttt{make losses}).")
    return latex_table(cells, pd.DataFrame(index=cells.index), {}, caption=theory + nets, label="tab:losses")


def loss_numbers(th: pd.DataFrame, net: pd.DataFrame) -> dict:
    from iwtheory.report.macros import macro_name

    vals: dict[str, object] = {}
    if not th.empty:
        exp_tails = th[~th.loss.isin(["vs", "polynomial"])]
        vals["LossesMaxFinalToLimit"] = float(th.final_to_limit.max())
        vals["LossesExpMaxFinalToHat"] = float(exp_tails.final_to_hat.max())
        for _, r in th.iterrows():
            vals[macro_name("LossRate", r.loss)] = float(r.rate)
            vals[macro_name("LossToHat", r.loss)] = float(r.final_to_hat)
    if not net.empty:
        for _, r in net.iterrows():
            vals[macro_name("LossLate", r.regime.replace("_", " "))] = float(r.late_effect)
            vals[macro_name("LossBalAcc", r.regime.replace("_", " "))] = float(r.balanced_acc)
            vals[macro_name("LossSeparated", r.regime.replace("_", " "))] = f"{int(r.separated)}/{int(r.nets)}"
        vals["LossFeatureAngleMax"] = float(np.nanmax(net.feature_angle)) if net.feature_angle.notna().any() \
            else float("nan")
        vals["LossStudy"] = 1
    return vals
