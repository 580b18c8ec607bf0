"""Weighted margin losses in torch, matching ``iwtheory.theory.losses``.

The importance-weighted risk of a batch is mean_b c_b l(y_b f(x_b)): per-example loss times
weight, averaged over the batch *size*. Dividing by the batch's sum of weights instead (what
``CrossEntropyLoss(weight=...)`` with mean reduction does) cancels the weight of a batch that
holds one class; this form keeps it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

_LOG1P_EXP_M1 = math.log1p(math.exp(-1.0))


def margin_loss(m: torch.Tensor, name: str = "logistic", alpha: float = 1.0) -> torch.Tensor:
    """l(m) elementwise: logistic, exponential, or the polynomial tail of Wang et al. (2022)."""
    if name == "logistic":
        return F.softplus(-m)
    if name == "exponential":
        return torch.exp(-m)
    if name == "polynomial":
        return torch.where(m <= 1.0, F.softplus(-m) / _LOG1P_EXP_M1, m.clamp_min(1.0).pow(-alpha))
    raise ValueError(f"unknown loss {name!r}; choose logistic, exponential or polynomial")


def weighted_risk(logits: torch.Tensor, y: torch.Tensor, c: torch.Tensor, name: str = "logistic",
                  alpha: float = 1.0) -> torch.Tensor:
    """mean over the last axis of c * l(y * logits); leading axes (models) are kept."""
    return (c * margin_loss(y * logits, name, alpha)).mean(dim=-1)
