"""LaTeX tables through pandas (booktabs), mean +- standard error, the best cell of a column in bold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from iwtheory.compare import claims as C

from iwtheory.report.latex import escape
from iwtheory.report.macros import pm
from iwtheory.report.style import weight_label
from iwtheory.runs.config import config_hash
from iwtheory.theory.limits import COSINE, LIMIT_LOSSES

# the loss table's rows: the loss study's regimes are loss names, the polynomial tail as poly1 (alpha = 1, the
# theory's) and poly2
LOSS_ROWS = tuple(n for name in LIMIT_LOSSES for n in (("poly1", "poly2") if name == "polynomial" else (name,)))


def latex_table(cells: pd.DataFrame, values: pd.DataFrame, best: dict[str, str], caption: str = "",
                label: str = "") -> str:
    """``cells`` holds the formatted strings, ``values`` the numbers they show; ``best`` maps a column to
    'min', 'max' or 'absmin' and wraps that column's best cell whole in \\textbf{}. A table wider than the
    page is shrunk to its width (adjustbox's max width), never left running off it."""
    cells = cells.copy()
    for col, rule in best.items():
        v = values[col].astype(float)
        if v.notna().sum() == 0:
            continue
        key = {"min": v, "max": -v, "absmin": v.abs()}[rule]
        i = key.idxmin()
        # \boldmath too: \textbf alone leaves math (every number here) upright
        cells.loc[i, col] = f"\\textbf{{\\boldmath {cells.loc[i, col]}}}"
    styler = cells.style.hide(axis="index")
    tex = styler.to_latex(hrules=True, column_format="l" * cells.shape[1], caption=caption or None,
                          label=label or None, position="t", position_float="centering", environment="table*")
    return tex.replace("\\begin{tabular}", "\\begin{adjustbox}{max width=\\linewidth}\n\\begin{tabular}", 1) \
        .replace("\\end{tabular}", "\\end{tabular}\n\\end{adjustbox}", 1)


def theory_table(constants: pd.DataFrame) -> str:
    """Predicted vs measured angle constant K = lim angle(t) log t (``Analysis.angle_constants``)."""
    df = constants.sort_values(["loss", "weight"], kind="stable").reset_index(drop=True)
    cells = pd.DataFrame({
        "loss": [escape(v) for v in df.loss], "weight $c$": [weight_label(w) for w in df.weight],
        "$K$ predicted": [pm(v) for v in df.predicted],
        r"$\theta(t)\log t$ at $t_{\max}$": [pm(v) for v in df.at_end],
        r"$K$ fitted ($t \geq 10^{10}$)": [pm(v) for v in df.fit],
        "rel. error of fit": [pm(v, digits=4) for v in df.rel_error]})
    values = pd.DataFrame({"rel. error of fit": df.rel_error})
    tex = latex_table(cells, values, {"rel. error of fit": "max"},
                      caption=r"Angle constant $K$: predicted from $\tilde w_c$, and measured along gradient flow "
                              r"(at the last record, and by fitting $\theta(t) \approx K/(\log t + b)$). Bold: "
                              r"the largest relative error of the fit.",
                      label="tab:theory")
    return tex


def experiments_table(df: pd.DataFrame) -> str:
    """One row per experiment (and source): its runs and a hash of their config hashes, which names the sweep."""
    rows = []
    for (exp, src), g in df.groupby(["experiment", "source"]):
        hashes = sorted(g.config_hash.unique())
        rows.append({"experiment": escape(exp), "records": "this run" if src == "local" else
                     escape(src.replace("gpu:", "GPU ")),
                     "runs": str(len(hashes)), "sweep hash": f"\\texttt{{{config_hash(hashes)}}}"})
    cells = pd.DataFrame(rows)
    return latex_table(cells, pd.DataFrame(index=cells.index), {},
                       caption="Experiments behind this paper: the number of runs and a hash of their config "
                               "hashes (equal hashes, equal sweeps).", label="tab:experiments").replace(
        "table*", "table")


def early_late_table(summary: pd.DataFrame, extremes: bool = True) -> str:
    """Early-vs-late weight effect on the task's test images, per regime and weight (mean +- s.e. over seeds);
    ``extremes`` keeps the smallest and the largest weight only."""
    s = summary.sort_values(["variant", "weight"]).reset_index(drop=True)
    if extremes:
        s = s[s.weight.isin([s.weight.min(), s.weight.max()])].reset_index(drop=True)
    cells = pd.DataFrame({
        "regime": [escape(v) for v in s.variant], "weight $w$": [weight_label(w) for w in s.weight],
        r"largest $|\Delta|$": [pm(v) for v in s.peak_effect],
        r"last-tenth $|\Delta|$": [pm(m, e) for m, e in zip(s.tail_abs_effect, s.tail_se)],
        "last tenth / largest": [pm(v, digits=2) for v in s.ratio],
        "settles at epoch": ["never" if not np.isfinite(v) else f"{v:.0f}" for v in s.settle_time]})
    values = pd.DataFrame({r"last-tenth $|\Delta|$": s.tail_abs_effect, "last tenth / largest": s.ratio})
    return latex_table(cells, values, {},
                       caption=r"Weight effect $\Delta(t; w)$ on the fraction of task test images predicted "
                               r"positive: its largest value over training, the size of its mean over seeds in the "
                               r"last tenth of training ($\pm$ standard error; not the claims' late effect, which "
                               r"starts at each seed's separation), their ratio, and the epoch after which "
                               r"$|\Delta|$ stays below 0.05.",
                       label="tab:early-late")


def write(text: str, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def separation_table(sep: pd.DataFrame, label: str = "tab:separation", what: str = "") -> str:
    """Per regime: nets, how many separate their training data, the lowest final training accuracy, the median
    and latest separation epochs, whether every seed has a late window, the final test accuracy."""
    def ep(v):
        return "---" if not np.isfinite(v) else f"{v:.0f}"

    cells = pd.DataFrame({
        "regime": [escape(v) for v in sep.variant],
        "nets": [str(n) for n in sep.nets],
        "separated": [str(n) for n in sep.separated],
        "lowest train acc.": [f"${v:.3f}$" for v in sep.lowest_final_train_acc],
        "median sep. epoch": [ep(v) for v in sep.median_separation_epoch],
        "latest sep. epoch": [ep(v) for v in sep.latest_separation_epoch],
        "epochs": [ep(v) for v in sep.epochs],
        "all separate": ["yes" if m else "no" for m in sep.premise_met],
        "test acc.": [f"${v:.3f}$" for v in sep.final_test_acc]})
    return latex_table(cells, pd.DataFrame(index=cells.index), {},
                       caption=f"Training accuracy (eval mode) and separation per regime{what}. A net separates "
                               "at the first evaluated epoch from which its training accuracy stays 1. All separate "
                               "(the premise of the claims about separating nets): every net separates and every "
                               f"seed has a late window (from {C.LATE_SPAN_STEPS} optimisation steps after its latest "
                               f"separation epoch, with at least {C.MIN_LATE_POINTS} evaluations in it). Test "
                               "accuracy: mean at the last epoch. Regimes in the order they are compared.",
                       label=label)


def losses_table(th: pd.DataFrame, net: pd.DataFrame) -> str:
    """The theory's limits and the networks' late effects, one row per loss."""
    rows = []
    have = set(th.loss if not th.empty else []) | set(net.regime.str.replace("_sub", "") if not net.empty else [])
    # the theory's polynomial tail has alpha = 1: it is the poly1 row
    names = [n for n in LOSS_ROWS if n in have or (n == "poly1" and "polynomial" in have)]
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
