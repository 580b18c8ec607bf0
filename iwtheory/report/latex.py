"""Text from records, configs and the command line, made safe for LaTeX: every special character escaped,
so a name such as ``\\input{FILE}`` or ``runs_quick`` prints as itself and runs nothing."""

from __future__ import annotations

import re

_SPECIAL = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "$": r"\$", "&": r"\&", "#": r"\#", "^": r"\^{}",
            "_": r"\_", "%": r"\%", "~": r"\textasciitilde{}", "-": "-{}", "<": r"\textless{}",
            ">": r"\textgreater{}", "|": r"\textbar{}"}


def escape(text: str) -> str:
    """``text`` as LaTeX text-mode material that typesets the same characters (``--`` stays two hyphens)."""
    return "".join(_SPECIAL.get(ch, ch) for ch in str(text))


_LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9 .,:;=+/()-]")


def plot_label(text: str, max_len: int = 60) -> str:
    """A name from the records (a regime, a variant, a loss) as a figure label: only characters that mean
    nothing to LaTeX (matplotlib's pgf output hands label text to LaTeX as it is), at most ``max_len``."""
    return _LABEL_UNSAFE.sub("", str(text).replace("_", " "))[:max_len].strip() or "?"
