"""Layout faults of a built paper, read from its LaTeX log: a PDF whose text runs off the page or whose
floats print over each other builds without an error, so the build checks the log itself."""

from __future__ import annotations

import re

OVERFULL_PT = 3.0  # boxes wider or taller than this (in points) are faults; smaller ones are invisible

_BOX = re.compile(r"^Overfull \\([hv])box \((\d+(?:\.\d+)?)pt too (wide|high)\)(.*)$", re.M)
_FLOAT = re.compile(r"^(LaTeX Warning: Float too large for page by (\d+(?:\.\d+)?)pt.*)$", re.M)


class LayoutError(ValueError):
    """The paper built, but some of it runs off the page or overprints."""


def layout_faults(log: str, tolerance_pt: float = OVERFULL_PT) -> list[str]:
    """The overfull boxes wider (or higher) than ``tolerance_pt`` and the floats too large for their page."""
    faults = [f"overfull {kind}box, {float(pt):g} pt too {how}{where.rstrip()}"
              for kind, pt, how, where in _BOX.findall(log) if float(pt) > tolerance_pt]
    faults += [line.strip() for line, pt in _FLOAT.findall(log) if float(pt) > tolerance_pt]
    return faults
