"""LaTeX tables through pandas (booktabs), mean +- standard error, the best cell of a column in bold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from iwtheory.report.latex import escape
from iwtheory.report.macros import fmt_pm
from iwtheory.report.style import weight_label


def pm(mean: float, se: float | None = None, digits: int = 3) -> str:
    """'$0.123 \\pm 0.004$' at the SE's precision (``macros.fmt_pm``), or '$0.123$' with ``digits`` decimals;
    nan becomes an em dash."""
    if mean is None or not np.isfinite(mean):
        return "---"
    if se is None or not np.isfinite(se):
        return f"${mean:.{digits}f}$"
    return f"${fmt_pm(mean, se)}$"


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


def theory_table(summaries: pd.DataFrame, records: pd.DataFrame) -> tuple[str, pd.DataFrame]:
    """Predicted vs measured angle constant K = lim angle(t) log t (theory_angle experiment)."""
    from iwtheory.compare.effects import fit_angle_constant

    rows = []
    for _, s in summaries.sort_values(["loss", "weight"]).iterrows():
        g = records[records.config_hash == s.config_hash].sort_values("t")
        measured_end = float(g.angle.iloc[-1] * np.log(g.t.iloc[-1]))
        fit = fit_angle_constant(g.t, g.angle, t_min=1e10)
        rows.append(dict(loss=s.loss, weight=s.weight, predicted=s.angle_constant, at_end=measured_end, fit=fit,
                         rel_error=abs(fit - s.angle_constant) / s.angle_constant))
    df = pd.DataFrame(rows)
    cells = pd.DataFrame({
        "loss": df.loss, "weight $c$": [weight_label(w) for w in df.weight],
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
    return tex, df


def experiments_table(df: pd.DataFrame) -> str:
    """One row per experiment (and source): its runs and a hash of their config hashes, which names the sweep."""
    from iwtheory.runs.config import config_hash

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
        "regime": s.variant, "weight $w$": [weight_label(w) for w in s.weight],
        r"largest $|\Delta|$": [pm(v) for v in s.peak_effect],
        r"late $|\Delta|$": [pm(m, e) for m, e in zip(s.late_effect, s.late_se)],
        "late / largest": [pm(v, digits=2) for v in s.ratio],
        "settles at epoch": ["never" if not np.isfinite(v) else f"{v:.0f}" for v in s.settle_time]})
    values = pd.DataFrame({r"late $|\Delta|$": s.late_effect, "late / largest": s.ratio})
    return latex_table(cells, values, {},
                       caption=r"Weight effect $\Delta(t; w)$ on the fraction of task test images predicted "
                               r"positive: its largest value over training, its mean over the last tenth "
                               r"(mean $\pm$ standard error over seeds), their ratio, and the epoch after which "
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
                               "seed has a late window (from twice its latest separation epoch, with at least two "
                               "evaluations in it). Test accuracy: mean at the last epoch.",
                       label=label)
