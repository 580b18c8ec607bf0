"""The late window of a trajectory, defined once: the last tenth of its span of epochs or times.

The run schedule adds evaluations inside it (``runs.schedule.tail_epochs``), the early-vs-late summary averages
over it (``compare.effects.early_late``), and the claims fall back to it for nets that never separate their
training data (``compare.claims.late_starts``). A seed's *separation* window, which starts at a multiple of its
nets' separation epoch, is the claims' own and is named apart (``compare.claims.late_starts``).
"""

from __future__ import annotations

import numpy as np

LATE_FRACTION = 0.1  # the last tenth


def late_start(first: float, last: float) -> float:
    """Where the late window of a trajectory from ``first`` to ``last`` begins."""
    return last - LATE_FRACTION * (last - first)


def in_late_window(t) -> np.ndarray:
    """A mask over ``t`` (recorded epochs or times, any order): those in the last tenth of their span."""
    t = np.asarray(t, dtype=float)
    return t >= late_start(t.min(), t.max())


def log_grid(t_max: float, n: int, t_min: float = 1.0, integer: bool = False) -> np.ndarray:
    """0 followed by ``n`` log-spaced points in [t_min, t_max] (unique integers if ``integer``)."""
    if not t_max > t_min:
        raise ValueError(f"t_max ({t_max}) must exceed t_min ({t_min})")
    g = np.geomspace(t_min, t_max, n)
    if integer:
        g = np.unique(np.round(g).astype(np.int64))
    return np.concatenate([[0], g])
