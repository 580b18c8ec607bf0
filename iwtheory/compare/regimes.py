"""The series the study's point figures plot: the late effect against the weight decay, and early stopping's
Delta beside the late window's."""

from __future__ import annotations

import numpy as np
import pandas as pd

from iwtheory.compare import claims as C


def l2_points(df: pd.DataFrame) -> pd.DataFrame:
    """Oriented late Delta (mean, SE over seeds) against the weight decay, lambda = 0 being the 'none' regime; the
    smallest and largest weights' own late Delta beside it (``weight`` names them; nan for the oriented mean)."""
    rows = []
    for lam, g in [(0.0, C.variant(df, "none"))] + [(float(v), g) for v, g in
                                                     C.variant(df, "l2").groupby("weight_decay")]:
        per = C.late_effect(g, "frac_pos_test")
        m, se, _ = C.mean_se(C.oriented(per).to_numpy())
        rows.append({"weight": np.nan, "lambda": lam, "mean": m, "se": se})
        for w in (per.columns.min(), per.columns.max()):
            m, se, _ = C.mean_se(per[w].to_numpy())
            rows.append({"weight": float(w), "lambda": lam, "mean": m, "se": se})
    return pd.DataFrame(rows)


def early_stop_points(none: pd.DataFrame) -> pd.DataFrame:
    """Delta on S_in per weight: at each net's best validation epoch, and over the claims' late window (from
    ``K_LATE`` x each seed's separation epoch)."""
    per_es = C.early_stopped_deltas(C.early_stopped(none))
    per_late = C.late_effect(none, "frac_pos_test")
    rows = []
    for label, per in (("early stopped", per_es), ("late window", per_late)):
        for w in per.columns:
            m, se, _ = C.mean_se(per[w].to_numpy())
            rows.append({"series": label, "log2w": float(np.log2(w)), "mean": m, "se": se})
    return pd.DataFrame(rows)
