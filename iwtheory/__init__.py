"""iwtheory: what importance weighting does to over-parameterised models on separable data.

The theory half (``iwtheory.theory``, ``iwtheory.compare``) needs only numpy, scipy and
sympy; the experiment half (``iwtheory.nets``) needs torch and is imported on demand.
"""

__version__ = "0.1.0"
__all__ = ["Study", "Task"]


def __getattr__(name: str):
    # Study and Task import torch's side of the package: only when asked for, so `import iwtheory` stays light
    if name == "Task":
        from iwtheory.nets.arrays import Task

        return Task
    if name == "Study":
        from iwtheory.study import Study

        return Study
    raise AttributeError(f"module 'iwtheory' has no attribute {name!r}")
