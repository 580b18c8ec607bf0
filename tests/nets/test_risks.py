import numpy as np
import pytest
import torch
from torch import nn

from iwtheory.nets.risks import margin_loss, weighted_risk
from iwtheory.theory.losses import get_loss


@pytest.mark.parametrize("name", ["logistic", "exponential", "polynomial"])
def test_torch_losses_match_the_theory_module(name):
    m = np.linspace(-5, 30, 71)
    ours = margin_loss(torch.tensor(m, dtype=torch.float64), name, 2.0).numpy()
    np.testing.assert_allclose(ours, get_loss(name, 2.0).value(m), rtol=1e-12)


def test_a_one_class_batch_keeps_its_weight():
    logits = torch.tensor([[0.3, -0.2, 1.0, 0.1]])
    y = torch.ones(1, 4)
    c = torch.full((1, 4), 16.0)
    risk = weighted_risk(logits, y, c)
    unweighted = weighted_risk(logits, y, torch.ones(1, 4))
    torch.testing.assert_close(risk, 16.0 * unweighted)
    # CrossEntropyLoss(weight=...) with mean reduction divides by the batch's weight sum: the weight cancels
    ce = nn.CrossEntropyLoss(weight=torch.tensor([1.0, 16.0]))
    two = torch.stack([torch.zeros(4), logits[0]], dim=1)
    torch.testing.assert_close(ce(two, torch.ones(4, dtype=torch.long)), unweighted[0])


def test_mixed_batch_is_averaged_over_the_batch_size():
    logits = torch.tensor([[2.0, -1.0]])
    y = torch.tensor([[1.0, -1.0]])
    c = torch.tensor([[4.0, 1.0]])
    expect = (4.0 * np.log1p(np.exp(-2.0)) + np.log1p(np.exp(-1.0))) / 2
    assert weighted_risk(logits, y, c).item() == pytest.approx(expect, rel=1e-6)


def test_class_dependent_losses_keep_float64_coefficients():
    from iwtheory.theory.limits import affine_form

    m = torch.linspace(-30, 1e6, 7, dtype=torch.float64)
    y = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0], dtype=torch.float64)
    params = {"delta": (0.3, 1.7), "iota": (-2.0794415416798357, 2.0794415416798357)}
    ours = margin_loss(m, "vs", y=y, params=params).numpy()
    base, a, b = affine_form("vs", y.numpy(), **params)
    np.testing.assert_allclose(ours, base.value(a * m.numpy() + b), rtol=1e-15, atol=0)


def test_numpy_parameters_are_accepted():
    from iwtheory.theory.limits import affine_form

    _, a, b = affine_form("vs", np.array([1.0, -1.0]), delta=np.array([2.0, 1.0]), iota=np.array([0.5, -0.5]))
    np.testing.assert_array_equal(a, [2.0, 1.0])
    np.testing.assert_array_equal(b, [0.5, -0.5])
    with pytest.raises(ValueError, match="takes"):
        affine_form("la", np.array([1.0, -1.0]), delta=np.array([2.0, 1.0]))
