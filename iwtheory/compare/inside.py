"""Inside the networks (N1-N3): what the paper quotes of the long runs, and the same question asked of the CPU
study's nets."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from iwtheory.compare import claims as C
from iwtheory.compare.effects import PROBE, PROBE_SETS


def inside_summary(df: pd.DataFrame, summaries: pd.DataFrame) -> dict:
    """What the paper says of the long runs: the approach window, the angles at its ends and their fitted
    exponent per weight, the normalised margins, the step rule's check, and the probe sets' Delta beside the
    angle (their Spearman correlation over the window, from the seed means)."""
    window, premise, tables = C.angles_by_weight(df)
    out: dict[str, object] = {"InsideSeeds": int(df.seed.nunique()), "InsideTmaxLog": float(np.log10(df.t.max())),
                              "InsideSeparatedBy": premise["value"] if premise["value"] is not None else float("nan")}
    if not summaries.empty and "widths" in summaries and summaries.widths.notna().any():
        out["InsideArchitecture"] = "--".join(str(int(v)) for v in summaries.widths.dropna().iloc[0])
    kkt = C.kkt_summary(df)
    if kkt:
        res = [v["kkt_residual"] for v in kkt["by_weight"].values()]
        al = [v["alignment"] for v in kkt["by_weight"].values()]
        out.update(InsideKktMin=min(res), InsideKktMax=max(res), InsideAlignMin=min(al), InsideAlignMax=max(al),
                   InsideKktThreshold=kkt["threshold"], InsideKktTLog=float(np.log10(kkt["t"])),
                   InsideEndStates="KKT points of the margin problem (every residual below "
                   f"{kkt['threshold']:g})" if kkt["kkt_points"] else "not yet KKT points of the margin problem")
    if not summaries.empty and "flow_check_angle" in summaries:
        out["InsideFlowCheck"] = float(summaries.flow_check_angle.max())
        out["InsideFlowCheckT"] = float(summaries.flow_check_t.max())
    if not tables:
        return out
    out["InsideWindowStartLog"] = float(np.log10(window[0]))
    nm = C.by_seed_and_t(df, "normalised_margin").xs(window[-1], level="t")
    out["InsideMarginUnweighted"] = float(nm[1.0].mean())
    probes = {PROBE[col].key: C.by_seed_and_t(df, col) for col in ("frac_pos_test", "frac_pos_noise")}
    for w, a in tables.items():
        key = "Up" if w > 1 else "Down"
        out[f"InsideAngleStart{key}"] = float(a[window[0]].mean())
        out[f"InsideAngleEnd{key}"] = float(a[window[-1]].mean())
        out[f"InsideExponent{key}"] = float(np.nanmean(C.seed_exponents(window, a)))
        out[f"InsideMargin{key}"] = float(nm[w].mean())
        mean_angle = a[window].mean()
        for name, f in probes.items():
            d = (f[w] - f[1.0]).abs().unstack("t")[window].mean()
            out[f"InsideDelta{name}End{key}"] = float(d.iloc[-1])
            rho = spearmanr(mean_angle.to_numpy(), d.to_numpy()).statistic if d.nunique() > 1 else float("nan")
            out[f"InsideRho{name}{key}"] = float(rho)
    return out


def study_direction_numbers(df: pd.DataFrame) -> dict:
    """The same question asked of the CPU study's unregularised nets (which have biases, so no normalised
    margin): the angle between a weighted net's parameters and the unweighted net's of the same seed at the last
    epoch, and its Spearman correlation over epochs with |Delta| on each probe set (seed means)."""
    none = df[df.regime == "none"] if "regime" in df else df
    if "angle_unweighted" not in none or none.angle_unweighted.isna().all():
        return {}
    out: dict[str, object] = {}
    ws = sorted(w for w in none.weight.unique() if w != 1.0)
    shares = {p.key: none.pivot_table(index=["seed", "epoch"], columns="weight", values=p.column)
              for p in PROBE_SETS} if ws else {}
    for w, key in ((max(ws), "Up"), (min(ws), "Down")) if ws else ():
        g = none[none.weight == w]
        by_epoch = g.groupby("epoch").angle_unweighted.mean()
        out[f"StudyAngleEnd{key}"] = float(by_epoch.iloc[-1])
        for name, f in shares.items():
            d = (f[w] - f[1.0]).abs().groupby("epoch").mean().reindex(by_epoch.index)
            ok = d.notna() & by_epoch.notna()
            rho = spearmanr(by_epoch[ok], d[ok]).statistic if ok.sum() > 2 and d[ok].nunique() > 1 else float("nan")
            out[f"StudyRho{name}{key}"] = float(rho)
            if name == "In" and np.isfinite(rho):  # what the sign says, from the sign
                out[f"StudyRho{name}{key}Words"] = (
                    "negative: the parameters drift apart while the predictions draw together" if rho < 0 else
                    "positive: the parameters and the predictions draw together" if rho > 0 else "zero")
    return out
