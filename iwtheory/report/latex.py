"""Text from records, configs and the command line, made safe for LaTeX: every special character escaped,
so a name such as ``\\input{FILE}`` or ``runs_quick`` prints as itself and runs nothing."""

from __future__ import annotations

_SPECIAL = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "$": r"\$", "&": r"\&", "#": r"\#", "^": r"\^{}",
            "_": r"\_", "%": r"\%", "~": r"\textasciitilde{}", "-": "-{}", "<": r"\textless{}",
            ">": r"\textgreater{}", "|": r"\textbar{}"}


def escape(text: str) -> str:
    """``text`` as LaTeX text-mode material that typesets the same characters (``--`` stays two hyphens)."""
    return "".join(_SPECIAL.get(ch, ch) for ch in str(text))
