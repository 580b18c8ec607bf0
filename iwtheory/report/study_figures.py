"""Figures of a researcher's own study: the weighting's effect on each probe set's predicted shares over time."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from iwtheory.compare.study_claims import classes_in, share_effects, weighting_column
from iwtheory.report.figures import file_stem
from iwtheory.report.latex import plot_label


def effect_figures(df, probes, out_dir, n_classes: int | None = None) -> list[Path]:
    """One PDF per probe set (``effect_<probe>.pdf``): Delta of each class's predicted share against the unweighted
    partner, mean +- SE over seeds, one panel per regime, one line per weighting (and class, for K classes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if df.empty:
        raise ValueError("no records to draw: run the study first")
    eff = share_effects(df)
    n_classes = classes_in(df) if n_classes is None else n_classes
    col, _ = weighting_column(df)
    paths = []
    for probe in probes:
        sub = eff[eff.share.str.endswith(f"_{probe}")] if not eff.empty else eff
        if sub.empty:
            continue
        regimes = sorted(sub.regime.unique())
        fig, axes = plt.subplots(1, len(regimes), figsize=(3.25 * len(regimes), 2.4), squeeze=False, sharey=True)
        for ax, regime in zip(axes[0], regimes):
            r = sub[sub.regime == regime]
            for (w, share), g in r.groupby([col, "share"]):
                g = g.sort_values("epoch")
                label = f"{col} {w:g}" if isinstance(w, (int, float, np.floating)) else plot_label(f"{col} {w}")
                if n_classes != 2:
                    label += f", {plot_label(share.split('_')[1])}"
                ax.plot(g.epoch, g.delta, label=label)
                ax.fill_between(g.epoch, g.delta - g.se.fillna(0), g.delta + g.se.fillna(0), alpha=0.2)
            ax.axhline(0.0, color="k", lw=0.5)
            ax.set_xscale("symlog", linthresh=1.0)
            ax.set_title(plot_label(f"{probe}: {regime}"), fontsize=8)
            ax.set_xlabel("epoch")
        axes[0][0].set_ylabel("Delta of predicted share")
        axes[0][-1].legend(fontsize=6)
        fig.tight_layout()
        p = out / f"effect_{file_stem(str(probe))}.pdf"
        fig.savefig(p)
        plt.close(fig)
        paths.append(p)
    return paths
