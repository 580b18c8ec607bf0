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

from iwtheory.theory.limits import ADJUSTED, LIMIT_LOSSES, class_coefficients

_LOG1P_EXP_M1 = math.log1p(math.exp(-1.0))


def _softplus(x: torch.Tensor) -> torch.Tensor:
    """log(1 + e^x). torch's softplus returns x itself above 20, an error of e^-20 = 2e-9 that float32 cannot
    see and float64 can: in float64 the switch moves to 40, where e^-40 is below its rounding."""
    return F.softplus(x, threshold=40.0 if x.dtype == torch.float64 else 20.0)


def margin_loss(m: torch.Tensor, name: str = "logistic", alpha: float = 1.0, y: torch.Tensor | None = None,
                params: dict | None = None) -> torch.Tensor:
    """l(m) elementwise: logistic, exponential, the polynomial tail of Wang et al. (2022), or the
    class-dependent la, vs, vs_softmax, label_margin and ldam (which need the labels ``y`` and their
    ``params``; see ``iwtheory.theory.limits``): base(a_y m + b_y). For ldam, m must come from a cosine
    classifier: the formula is that of label_margin, the classifier is what makes it LDAM."""
    if name in ADJUSTED:
        if y is None:
            raise ValueError(f"the {name} loss depends on the label: pass y")
        params = dict(params or {})
        base = params.pop("base", "logistic")
        a_pos, a_neg, b_pos, b_neg = class_coefficients(name, **params)
        pos = y > 0
        # coefficients made in m's own dtype: built in torch's default float32 they lose 3e-8 in float64
        m = torch.where(pos, m.new_tensor(a_pos), m.new_tensor(a_neg)) * m + torch.where(pos, m.new_tensor(b_pos),
                                                                                          m.new_tensor(b_neg))
        name = base
    if name == "logistic":
        return _softplus(-m)
    if name == "exponential":
        return torch.exp(-m)
    if name == "polynomial":
        return torch.where(m <= 1.0, _softplus(-m) / _LOG1P_EXP_M1, m.clamp_min(1.0).pow(-alpha))
    raise ValueError(f"unknown loss {name!r}; choose one of {LIMIT_LOSSES}")


def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example cross-entropy, logsumexp(z) - z_y, of K-class logits (..., N, K) against labels (N,) or
    (..., N) in 0..K-1 (the logistic loss's K-class form)."""
    y = y.expand(logits.shape[:-1]).long()
    return torch.logsumexp(logits, dim=-1) - logits.gather(-1, y[..., None])[..., 0]


def weighted_risk(logits: torch.Tensor, y: torch.Tensor, c: torch.Tensor, name: str = "logistic",
                  alpha: float = 1.0, params: dict | None = None) -> torch.Tensor:
    """mean over the example axis of c * l: the margin loss l(y * logits) of two-class logits (..., B) and
    labels +-1 (floats), or the cross-entropy of K-class logits (..., B, K) and integer labels 0..K-1; leading
    axes (models) are kept."""
    if not y.is_floating_point():
        return (c * cross_entropy(logits, y)).mean(dim=-1)
    return (c * margin_loss(y * logits, name, alpha, y, params)).mean(dim=-1)
