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
