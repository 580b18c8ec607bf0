"""Linear and deep linear models on separable data, with importance weights (numpy/scipy/sympy only)."""

from iwtheory.theory.asymptotics import AsymptoticOffset, asymptotic_offset, predicted_gap
from iwtheory.theory.checks import DataError, DegenerateSupportError, NotSeparableError, WeightError, class_weights
from iwtheory.theory.data import Dataset, bl_toy, gaussian_mixture, make_dataset, soudry_toy
from iwtheory.theory.dynamics import Trajectory, gradient_descent, gradient_flow
from iwtheory.theory.losses import EXPONENTIAL, LOGISTIC, get_loss, polynomial, weighted_loss
from iwtheory.theory.maxmargin import MaxMargin, max_margin, max_margin_exact

__all__ = [
    "AsymptoticOffset", "asymptotic_offset", "predicted_gap", "DataError", "DegenerateSupportError",
    "NotSeparableError", "WeightError", "class_weights", "Dataset", "bl_toy", "gaussian_mixture",
    "make_dataset", "soudry_toy", "Trajectory", "gradient_descent", "gradient_flow", "EXPONENTIAL",
    "LOGISTIC", "get_loss", "polynomial", "weighted_loss", "MaxMargin", "max_margin", "max_margin_exact",
]
