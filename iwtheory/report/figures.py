"""Figures from run records, saved as pgf (text set by LaTeX in the paper) and pdf."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

from iwtheory.compare.effects import PROBE, PROBES, residual_decay
from iwtheory.report.latex import plot_label
from iwtheory.report.style import have_latex, icml, weight_colors, weight_label

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def file_stem(name: str, max_len: int = 100) -> str:
    """A figure's file name from text that may come from the records (an experiment's name): letters, digits,
    ``_``, ``-`` and ``.`` only, no leading dot, so no name can leave the figures folder or hide in it."""
    stem = re.sub(r"\.{2,}", "_", re.sub(r"[^A-Za-z0-9_.-]", "_", str(name)))[:max_len].lstrip(".")
    return stem or "figure"


def tick_overlaps(fig) -> list[str]:
    """Tick labels of one axis that print over each other (their boxes, as drawn, overlap): a figure that reads
    wrongly without any error, so ``save`` refuses it."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    faults = []
    for k, ax in enumerate(fig.axes):
        if not ax.get_visible():
            continue
        for which, labels in (("x", ax.get_xticklabels()), ("y", ax.get_yticklabels())):
            boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in labels
                     if t.get_visible() and t.get_text().strip()]
            for i, (ta, a) in enumerate(boxes):
                for tb, b in boxes[i + 1:]:
                    if a.overlaps(b):
                        faults.append(f"panel {k + 1}: {which} tick labels {ta!r} and {tb!r} overprint")
    return faults


def save(fig, out_dir: str | Path, name: str) -> list[Path]:
    """Write ``name``.pgf and ``name``.pdf (both through LaTeX when it is installed, else pdf only); the name
    goes through ``file_stem``. A figure whose tick labels overprint (``tick_overlaps``) is a LayoutError."""
    from iwtheory.report.layout import LayoutError

    name = file_stem(name)
    faults = tick_overlaps(fig)
    if faults:
        plt.close(fig)
        raise LayoutError(f"figure {name}: " + "; ".join(faults[:4]))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    if have_latex():
        for ext in ("pgf", "pdf"):
            fig.savefig(out / f"{name}.{ext}", backend="pgf")
            paths.append(out / f"{name}.{ext}")
    else:
        fig.savefig(out / f"{name}.pdf")
        paths.append(out / f"{name}.pdf")
    plt.close(fig)
    return paths


def _figure_legend(fig, weights, colors, below: float = -0.1):
    """One row of weight swatches under the whole figure, clear of every panel and axis label."""
    ws = sorted(weights)
    fig.legend(handles=[plt.Line2D([], [], color=colors[w], label=weight_label(w)) for w in ws],
               title="weight on the positive class", ncol=len(ws), loc="upper center",
               bbox_to_anchor=(0.5, below))


def _label_grid(axes, used: int, xlabel: str, ylabel: str) -> None:
    """Hide the panels past ``used``; x labels on the bottom row, y labels on the left column."""
    for ax in axes.flat[used:]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel(xlabel)
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel)


def _legend_weights(ax, weights, colors, **kw):
    handles = [plt.Line2D([], [], color=colors[w], label=weight_label(w)) for w in sorted(weights)]
    ax.legend(handles=handles, title="weight", ncol=kw.pop("ncol", 1), **kw)


def angle_figure(df: pd.DataFrame, out_dir, loss: str = "exponential", name: str = "theory_angle") -> list[Path]:
    """Angle to w_hat vs log10 t, one curve per weight, with the asymptotic prediction dashed."""
    d = df[(df.loss == loss) & (df.t >= 1.0)]
    colors = weight_colors(d.weight.unique())
    with plt.rc_context(icml("column")):
        fig, ax = plt.subplots()
        for w, g in d.groupby("weight"):
            g = g.sort_values("t")
            ax.plot(np.log10(g.t), g.angle, color=colors[w])
            if "predicted_angle" in g and g.predicted_angle.notna().any():
                ax.plot(np.log10(g.t), g.predicted_angle, color=colors[w], ls="--", lw=0.8)
        ax.set_yscale("log")
        ax.set_xlabel(r"$\log_{10} t$")
        ax.set_ylabel(r"angle to $\hat w$ (rad)")
        ax.plot([], [], color="0.4", ls="--", lw=0.8, label="prediction")
        _legend_weights(ax, d.weight.unique(), colors, ncol=2, loc="upper right")
        return save(fig, out_dir, name)


def boundaries_figure(df: pd.DataFrame, ds, w_hat, out_dir, times=(10, 1000, 100000),
                      name: str = "theory_boundaries") -> list[Path]:
    """Decision boundaries on the 2-D toy ``ds`` at a few times, one line per weight, the max-margin line
    ``w_hat`` dashed."""
    colors = weight_colors(df.weight.unique())
    lo, hi = ds.X[:, 0].min() - 0.5, ds.X[:, 0].max() + 0.5
    xs = np.linspace(lo, hi, 50)
    with plt.rc_context(icml("full", aspect=0.3)):
        fig, axes = plt.subplots(1, len(times), sharey=True)
        for ax, t in zip(axes, times):
            ax.scatter(*ds.X[ds.y > 0, :2].T, s=3, marker="o", color="0.2", lw=0)
            ax.scatter(*ds.X[ds.y < 0, :2].T, s=4, marker="x", color="0.55", lw=0.5)
            for w, g in df.groupby("weight"):
                row = g.iloc[np.argmin(np.abs(np.log(g.t.clip(lower=1)) - np.log(t)))]
                v = np.asarray(row.w)
                ax.plot(xs, -(v[0] * xs + v[2]) / v[1], color=colors[w])
            ax.plot(xs, -(w_hat[0] * xs + w_hat[2]) / w_hat[1], color="k", ls="--", lw=0.8)
            ax.set_title(f"$t = 10^{{{np.log10(t):.0f}}}$")
            ax.set_xlim(lo, hi)
            ax.set_ylim(ds.X[:, 1].min() - 0.5, ds.X[:, 1].max() + 0.5)
        axes[0].set_ylabel("$x_2$")
        for ax in axes:
            ax.set_xlabel("$x_1$")
        _figure_legend(fig, df.weight.unique(), colors, below=-0.2)
        return save(fig, out_dir, name)


def curves_figure(df: pd.DataFrame, out_dir, by: str, name: str, ylabel=r"angle to $\hat w$ (rad)",
                  styles=None) -> list[Path]:
    """Angle vs log10 t, colour by weight, line style by ``by`` (depth or loss)."""
    d = df[df.t >= 1.0]
    colors = weight_colors(d.weight.unique())
    keys = sorted(d[by].unique())
    styles = styles or dict(zip(keys, ["-", "--", ":", "-."]))
    with plt.rc_context(icml("column")):
        fig, ax = plt.subplots()
        for (w, k), g in d.groupby(["weight", by]):
            g = g.sort_values("t")
            ax.plot(np.log10(g.t), g.angle, color=colors[w], ls=styles[k])
        ax.set_yscale("log")
        ax.set_xlabel(r"$\log_{10} t$")
        ax.set_ylabel(ylabel)
        for k in keys:
            ax.plot([], [], color="0.3", ls=styles[k],
                    label=f"{by} {k:g}" if isinstance(k, float) else plot_label(f"{by} {k}"))
        ax.legend(loc="lower left", ncol=2)
        return save(fig, out_dir, name)


def frac_pos_figure(df: pd.DataFrame, out_dir, probes=PROBES, name: str = "frac_pos", by: str = "variant",
                    ncols: int | None = None, width: str = "full") -> list[Path]:
    """Fraction predicted positive vs epoch, a curve per weight with seed bands (standard error).

    With several probes: one row per ``by`` group, one column per probe set. With one probe: one
    panel per group, ``ncols`` to a row. ``width``: "full" (a figure* across the page) or "column"."""
    groups = list(dict.fromkeys(df[by]))
    colors = weight_colors(df.weight.unique())
    one = len(probes) == 1
    nc = (ncols or min(4, len(groups))) if one else len(probes)
    nr = int(np.ceil(len(groups) / nc)) if one else len(groups)
    panels = [(g, probes[0]) for g in groups] if one else [(g, p) for g in groups for p in probes]
    aspect = 0.26 * nr * 3 / max(nc, 3) if width == "full" else 0.62 * nr / nc
    with plt.rc_context(icml(width, aspect=aspect)):
        fig, axes = plt.subplots(nr, nc, sharex=True, sharey=True, squeeze=False)
        for k, (grp, probe) in enumerate(panels):
            ax = axes.flat[k]
            g = df[df[by] == grp].groupby(["weight", "epoch"])[probe].agg(["mean", "std", "count"])
            for w in sorted(g.index.get_level_values(0).unique()):
                s_ = g.loc[w]
                x = s_.index.to_numpy() + 1
                se = (s_["std"].fillna(0) / np.sqrt(s_["count"])).to_numpy()
                ax.plot(x, s_["mean"], color=colors[w])
                ax.fill_between(x, s_["mean"] - se, s_["mean"] + se, color=colors[w], alpha=0.25, lw=0)
            ax.set_xscale("log")
            ax.set_ylim(-0.03, 1.03)
            title = PROBE[probe].title if probe in PROBE else probe
            ax.set_title(plot_label(grp) if one else (title if k < nc else ""))
            if not one and k % nc == 0:
                ax.set_ylabel(f"{plot_label(grp)}\nfrac. positive")
        fig.subplots_adjust(hspace=0.5)  # room for each row's titles under the row above
        if one:
            _label_grid(axes, len(panels), "epoch + 1", "frac. positive")
        else:
            for ax in axes[-1]:
                ax.set_xlabel("epoch + 1")
        _figure_legend(fig, df.weight.unique(), colors, below=-0.1 / nr)
        return save(fig, out_dir, name)


def effect_figure(summary: pd.DataFrame, out_dir, name: str = "effect_by_regime", by: str = "variant") -> list[Path]:
    """Largest early |Delta| and mean late |Delta| (with its SE) against log2 weight, one panel per group."""
    groups = list(dict.fromkeys(summary[by]))
    nc = min(4, len(groups))
    nr = int(np.ceil(len(groups) / nc))
    with plt.rc_context(icml("full", aspect=0.3 * nr)):
        fig, axes = plt.subplots(nr, nc, sharey=True, squeeze=False)
        fig.subplots_adjust(hspace=0.6)
        for ax, grp in zip(axes.flat, groups):
            s_ = summary[summary[by] == grp].sort_values("weight")
            lw = np.log2(s_.weight)
            ax.plot(lw, s_.peak_effect, "o-", ms=3, color="#0072B2", label="largest early")
            ax.errorbar(lw, s_.tail_abs_effect, yerr=s_.tail_se, fmt="s-", ms=3, color="#D55E00", label="last tenth")
            ax.set_title(plot_label(grp))
        _label_grid(axes, len(groups), r"$\log_2 w$", r"$|\Delta|$ (frac. positive)")
        axes[0, 0].legend(loc="upper center")
        return save(fig, out_dir, name)


def feature_angle_figure(fa: pd.DataFrame, out_dir, name: str = "feature_angle") -> list[Path]:
    """Angle of each network's last layer to the max-margin direction of its own penultimate features
    (every training image, bias appended), vs epoch, from the epoch the net classifies all of them;
    mean over seeds, one curve per weight."""
    d = fa[fa.separable]
    colors = weight_colors(fa.weight.unique())
    with plt.rc_context(icml("column", aspect=0.7)):
        fig, ax = plt.subplots()
        for w, g in d.groupby("weight"):
            m = g.groupby("epoch").angle.mean()
            ax.plot(m.index + 1, m.to_numpy(), color=colors[w], marker="o", ms=2)
        ax.set_xscale("log")
        ax.set_xlabel("epoch + 1")
        ax.set_ylabel("angle to feature max margin (rad)")
        _figure_legend(fig, fa.weight.unique(), colors, below=-0.05)
        return save(fig, out_dir, name)


def points_figure(points: pd.DataFrame, out_dir, name: str, x: str, xlabel: str, ylabel: str,
                  logx: bool = False, hline: float | None = None) -> list[Path]:
    """Mean +- SE against ``x``, one line per ``series`` (columns: series, x, mean, se)."""
    with plt.rc_context(icml("column", aspect=0.62)):
        fig, ax = plt.subplots()
        palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00"]
        for (label, g), col in zip(points.groupby("series", sort=False), palette * 4):
            g = g.sort_values(x)
            ax.errorbar(g[x], g["mean"], yerr=g["se"], fmt="o-", ms=3, capsize=2, color=col, label=label)
        if hline is not None:
            ax.axhline(hline, color="0.5", lw=0.6, ls=":")
        if logx:
            ax.set_xscale("symlog", linthresh=min(v for v in points[x] if v > 0))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(loc="best")
        return save(fig, out_dir, name)


def residual_figure(records: pd.DataFrame, summaries: pd.DataFrame, out_dir, name: str = "theory_residual",
                    floor: float = 1e-9) -> list[Path]:
    """|w(t) - w_hat log t - w_tilde| against t (log-log), one curve per weight, with the predicted decay
    t^-(theta_2 - 1) dashed (theta_2: the smallest margin of a point off the support)."""
    colors = weight_colors(summaries.weight.unique())
    with plt.rc_context(icml("column")):
        fig, ax = plt.subplots()
        for _, s_ in summaries.sort_values("weight").iterrows():
            g = records[records.config_hash == s_.config_hash].sort_values("t")
            t, r = residual_decay(g.t, np.array(g.w.tolist()), np.asarray(s_.w_hat), np.asarray(s_.offset))
            keep = (t >= 10.0) & (r > floor)
            ax.plot(np.log10(t[keep]), np.log10(r[keep]), color=colors[s_.weight])
            if keep.any():
                t0, r0 = t[keep][-1], r[keep][-1]
                tt = np.geomspace(t[keep][0], t0, 20)
                ax.plot(np.log10(tt), np.log10(r0 * (tt / t0) ** (1.0 - s_.theta2)), color=colors[s_.weight],
                        ls="--", lw=0.7)
        ax.set_xlabel(r"$\log_{10} t$")
        ax.set_ylabel(r"$\log_{10} |w(t) - \hat w \log t - \tilde w_c|$")
        ax.plot([], [], color="0.4", ls="--", lw=0.7, label=r"$\propto t^{-(\theta_2 - 1)}$")
        _legend_weights(ax, summaries.weight.unique(), colors, ncol=2, loc="lower left")
        return save(fig, out_dir, name)


def losses_figure(df: pd.DataFrame, out_dir, name: str = "theory_losses") -> list[Path]:
    """Per loss: the angle to the limit it predicts (solid) and to the plain max margin (dashed) vs log10 t,
    one colour per weight (linear model)."""
    d = df[(df.t >= 1.0) & (df.depth == 1)].copy()
    d["angle_limit"] = d["angle_limit"].fillna(d["angle"]) if "angle_limit" in d else d["angle"]
    losses = list(dict.fromkeys(d.loss))
    colors = weight_colors(d.weight.unique())
    nc = 3
    nr = int(np.ceil(len(losses) / nc))
    with plt.rc_context(icml("full", aspect=0.3 * nr)):
        fig, axes = plt.subplots(nr, nc, sharex=True, sharey=True, squeeze=False)
        for ax, loss in zip(axes.flat, losses):
            for w, g in d[d.loss == loss].groupby("weight"):
                g = g.sort_values("t")
                ax.plot(np.log10(g.t), np.maximum(g.angle_limit, 1e-17), color=colors[w])
                ax.plot(np.log10(g.t), np.maximum(g.angle, 1e-17), color=colors[w], ls="--", lw=0.8)
            ax.set_yscale("log")
            ax.set_title(plot_label(loss))
        _label_grid(axes, len(losses), r"$\log_{10} t$", "angle (rad)")
        axes[0, 0].plot([], [], color="0.3", label="to its predicted limit")
        axes[0, 0].plot([], [], color="0.3", ls="--", lw=0.8, label=r"to $\hat w$")
        axes[0, 0].legend(loc="lower left")
        _figure_legend(fig, d.weight.unique(), colors, below=-0.08 / nr)
        return save(fig, out_dir, name)


def inside_figure(df: pd.DataFrame, window, out_dir: str | Path, name: str = "inside") -> list[Path]:
    """Left: the angle to the unweighted net of the same seed against log t (both axes log), mean over seeds
    with its standard error, and the linear theory's K / log t through the window's first point (dashed).
    Right: the normalised margins."""
    d = df[df.t > np.e]
    colors = weight_colors(d.weight.unique())
    with plt.rc_context(icml("full", aspect=0.3)):
        fig, (ax1, ax2) = plt.subplots(1, 2)
        for w, g in d.groupby("weight"):
            by = g.groupby("t")
            lt = np.log(np.asarray(sorted(g.t.unique())))
            if w != 1.0:
                m, se = by.angle_unweighted.mean().to_numpy(), by.angle_unweighted.sem().to_numpy()
                ax1.plot(lt, m, color=colors[w])
                ax1.fill_between(lt, m - se, m + se, color=colors[w], alpha=0.25, lw=0)
                if len(window):
                    k = float(g[g.t == window[0]].angle_unweighted.mean()) * np.log(window[0])
                    ax1.plot(lt, k / lt, color=colors[w], ls="--", lw=0.8)
            m = by.normalised_margin.mean().to_numpy()
            ax2.plot(lt, m, color=colors[w])
        ax1.set_xscale("log")
        ax1.set_yscale("log")
        ax1.set_xlabel(r"$\log t$")
        ax1.set_ylabel("angle to the unweighted net (rad)")
        ax2.set_xscale("log")
        ax2.set_xlabel(r"$\log t$")
        ax2.set_ylabel(r"normalised margin $\gamma$")
        if len(window):
            for ax in (ax1, ax2):
                ax.axvline(np.log(window[0]), color="0.6", lw=0.6, ls=":")
        _figure_legend(fig, d.weight.unique(), colors, below=-0.12)
        return save(fig, out_dir, name)
