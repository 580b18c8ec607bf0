"""iwtheory: what importance weighting does to over-parameterised models on separable data.

The theory half (``iwtheory.theory``, ``iwtheory.compare``) needs only numpy, scipy and
sympy; the experiment half (``iwtheory.nets``) needs torch and is imported on demand.
"""

__version__ = "0.1.0"
