"""Plot style as data: rcParams for ICML column widths, and colour-blind-safe colours for weights."""

from __future__ import annotations

import shutil

import matplotlib
import numpy as np

ICML_COLUMN = 3.25   # inches
ICML_FULL = 6.75


def have_latex() -> bool:
    """Whether pdflatex is on PATH (pgf output and LaTeX-set text need it)."""
    return shutil.which("pdflatex") is not None


def icml(width: str = "column", aspect: float = 0.62, nrows: int = 1, ncols: int = 1,
         latex: bool | None = None) -> dict:
    """rcParams for a figure one column (3.25 in) or the full width (6.75 in) of an ICML page.

    Text is 8 pt serif. With LaTeX the pgf backend sets it in the paper's own font (Computer
    Modern, T1, as paper/main.tex); without, matplotlib's serif font stands in.
    """
    w = ICML_COLUMN if width == "column" else ICML_FULL
    h = w * aspect * nrows / ncols
    latex = have_latex() if latex is None else latex
    rc = {
        "figure.figsize": (w, h), "figure.dpi": 150, "savefig.bbox": "tight", "savefig.pad_inches": 0.02,
        "font.family": "serif", "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8,
        "legend.fontsize": 6.5, "xtick.labelsize": 7, "ytick.labelsize": 7, "lines.linewidth": 1.0,
        "axes.linewidth": 0.5, "xtick.major.width": 0.5, "ytick.major.width": 0.5, "legend.frameon": False,
        "axes.spines.top": False, "axes.spines.right": False,
    }
    if latex:
        rc.update({"pgf.texsystem": "pdflatex", "pgf.rcfonts": False, "text.usetex": False,
                   "pgf.preamble": r"\usepackage[T1]{fontenc}"})
    return rc


def weight_colors(weights) -> dict:
    """One colour per weight from cividis (perceptually uniform, colour-blind safe), ordered by log w."""
    cmap = matplotlib.colormaps["cividis"]
    lw = np.log2(np.asarray(sorted(set(float(w) for w in weights))))
    span = (lw.max() - lw.min()) or 1.0
    return {float(w): cmap(0.05 + 0.85 * (np.log2(w) - lw.min()) / span) for w in sorted(set(map(float, weights)))}


def weight_label(w: float) -> str:
    """1/16, 1, 16 ... as LaTeX-safe text."""
    if w >= 1:
        return f"{w:g}"
    inv = 1.0 / w
    return f"1/{inv:g}" if abs(inv - round(inv)) < 1e-9 else f"{w:g}"
