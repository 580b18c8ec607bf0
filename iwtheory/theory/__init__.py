"""Linear and deep linear models on separable data, with importance weights (numpy/scipy/sympy only).

The public names load on first use (PEP 562): the network runner imports a few small submodules (seeds,
checks, limits) and must not pay for scipy's solvers on every start."""

from importlib import import_module

_WHERE = {
    "asymptotics": ("AsymptoticOffset", "asymptotic_offset", "predicted_gap"),
    "checks": ("DataError", "DegenerateSupportError", "NotSeparableError", "WeightError", "class_weights"),
    "data": ("Dataset", "bl_toy", "gaussian_mixture", "make_dataset", "soudry_toy"),
    "dynamics": ("Trajectory", "gradient_descent", "gradient_flow"),
    "losses": ("EXPONENTIAL", "LOGISTIC", "get_loss", "polynomial", "weighted_loss"),
    "maxmargin": ("MaxMargin", "max_margin", "max_margin_exact"),
}
_MODULE = {name: mod for mod, names in _WHERE.items() for name in names}
__all__ = list(_MODULE)


def __getattr__(name: str):
    if name in _MODULE:
        value = getattr(import_module(f"{__name__}.{_MODULE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
