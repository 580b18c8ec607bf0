"""Each loss name means what its citation means: the package's one-logit losses, with parameters from the papers'
own (``from_paper``, ``binary_vs``), against the papers' formulas written out here as two-class softmax (or
binary cross-entropy) losses on logits (f, 0), in float64, values and gradients, over margins -30 to 1e6.
Then the limits: two-class VS and the label-margin loss go to the plain max margin, LDAM's cosine classifier to a
finite minimiser that the weights move."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import minimize

from iwtheory.nets.risks import margin_loss
from iwtheory.theory.data import bl_toy
from iwtheory.theory.geometry import angle
from iwtheory.theory.limits import binary_vs, cosine_descent, cosine_limit, from_paper, limit, simulate
from iwtheory.theory.maxmargin import max_margin

MARGINS = np.concatenate([-np.geomspace(30, 1e-3, 25), [0.0], np.geomspace(1e-3, 1e6, 40)])
COUNTS = (20, 160)  # the loss study's subsampled training set (positives, negatives)


def two_logits(f):
    """Logits (z_neg, z_pos) = (0, f) as column 0 = negative class, 1 = positive class."""
    return torch.stack([torch.zeros_like(f), f], dim=1)


def softmax_ce(logits, y):
    """Two-class cross-entropy, -log softmax(z)_y = log(1 + exp(z_other - z_y)), written so that it keeps its
    digits where F.cross_entropy subtracts two nearly equal numbers (margins of 1e6 give 0 there, not e^-1e6)."""
    k = (y > 0).long()
    z_y = logits.gather(1, k[:, None])[:, 0]
    z_o = logits.gather(1, (1 - k)[:, None])[:, 0]
    return torch.logaddexp(torch.zeros_like(z_y), z_o - z_y)


def menon_la(f, y, priors, tau):
    """Menon et al. (2021), logit-adjusted loss: cross-entropy on z_k + tau log pi_k."""
    adj = tau * torch.log(torch.tensor([priors[1], priors[0]], dtype=torch.float64))
    return softmax_ce(two_logits(f) + adj, y)


def kini_vs(f, y, counts, gamma, tau):
    """Kini et al. (2021), ``VSLoss``: cross-entropy on z_k / T_k + tau log pi_k, T_k = n_k^-gamma / min n^-gamma."""
    n = np.array([counts[1], counts[0]], dtype=np.float64)
    temp = (1.0 / n) ** gamma
    temp = temp / temp.min()
    iota = tau * np.log(n / n.sum())
    return softmax_ce(two_logits(f) / torch.tensor(temp) + torch.tensor(iota), y)


def kini_binary_vs(f, y, iota_pos, iota_neg, delta_pos, delta_neg, scale=30.0):
    """Kini et al., ``BinaryVSLoss``: BCE-with-logits(scale (Delta_t x - iota_t), t)."""
    t = (y > 0).double()
    def per_label(pos, neg):
        return torch.where(y > 0, torch.tensor(pos, dtype=torch.float64), torch.tensor(neg, dtype=torch.float64))

    delta, iota = per_label(delta_pos, delta_neg), per_label(iota_pos, iota_neg)
    return F.binary_cross_entropy_with_logits(scale * (f * delta - iota), t, reduction="none")


def cao_ldam(f, y, counts, max_m, s):
    """Cao et al. (2019), ``LDAMLoss``: cross-entropy on s (z - margin_y on the true class), margin ~ n^-1/4."""
    n = np.array([counts[1], counts[0]], dtype=np.float64)
    m = 1.0 / np.sqrt(np.sqrt(n))
    m = m * (max_m / m.max())
    z = two_logits(f)
    onehot = F.one_hot((y > 0).long(), 2).double()
    return softmax_ce(s * (z - onehot * torch.tensor(m)), y)


def value_and_grad(fn, m, y):
    """Loss and d loss / d f at logits f = y m, in float64."""
    f = (torch.tensor(y) * torch.tensor(m)).requires_grad_(True)
    v = fn(f, torch.tensor(y))
    (g,) = torch.autograd.grad(v.sum(), f)
    return v.detach().numpy(), g.numpy()


PAIRS = [
    ("la", lambda: from_paper("la", priors=(COUNTS[0] / 180, COUNTS[1] / 180), tau=1.0),
     lambda f, y: menon_la(f, y, (COUNTS[0] / 180, COUNTS[1] / 180), 1.0)),
    ("la", lambda: from_paper("la", counts=COUNTS, tau=1.5),
     lambda f, y: menon_la(f, y, (COUNTS[0] / 180, COUNTS[1] / 180), 1.5)),
    ("vs_softmax", lambda: from_paper("vs_softmax", counts=COUNTS, gamma=0.2, tau=1.0),
     lambda f, y: kini_vs(f, y, COUNTS, 0.2, 1.0)),
    ("vs", lambda: binary_vs(0.3, -0.1, 0.5, 1.0), lambda f, y: kini_binary_vs(f, y, 0.3, -0.1, 0.5, 1.0)),
    ("label_margin", lambda: from_paper("label_margin", counts=COUNTS, max_m=0.5, s=30.0),
     lambda f, y: cao_ldam(f, y, COUNTS, 0.5, 30.0)),
    ("ldam", lambda: from_paper("ldam", counts=COUNTS, max_m=0.5, s=1.0),
     lambda f, y: cao_ldam(f, y, COUNTS, 0.5, 1.0)),
]


@pytest.mark.parametrize("loss, params, paper", PAIRS, ids=[p[0] for p in PAIRS])
@pytest.mark.parametrize("label", [1.0, -1.0])
def test_one_logit_losses_equal_the_papers_formulas(loss, params, paper, label):
    y = np.full(len(MARGINS), label)
    want, want_g = value_and_grad(paper, MARGINS, y)
    got, got_g = value_and_grad(lambda f, yy: margin_loss(yy * f, loss, y=yy, params=params()), MARGINS, y)
    # the references round to ~1e-16 absolute (BCE-with-logits adds log(1 + e^-x) to 0 at x > 37); the package
    # keeps relative digits there, so agreement is to 1e-12 relative or 1e-15 absolute
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(got_g, want_g, rtol=1e-12, atol=1e-15)
    assert np.all(got >= 0) and np.all(got_g * y <= 0)  # a loss never negative, its slope never the wrong way


def test_the_config_form_of_la_was_not_logit_adjustment():
    """The loss study used iota = log pi; logit adjustment is tau log(pi_y / pi_other): they differ by up to 2.08."""
    y = np.full(len(MARGINS), -1.0)
    want, _ = value_and_grad(lambda f, yy: menon_la(f, yy, (1 / 9, 8 / 9), 1.0), MARGINS, y)
    old = {"iota": (np.log(1 / 9), np.log(8 / 9))}
    got, _ = value_and_grad(lambda f, yy: margin_loss(yy * f, "la", y=yy, params=old), MARGINS, y)
    assert np.max(np.abs(got - want)) > 2.0


def test_paper_parameters_state_their_mapping():
    la = from_paper("la", priors=(0.1, 0.9), tau=2.0)
    assert la["iota"] == pytest.approx((2 * np.log(1 / 9), 2 * np.log(9)))
    vs = from_paper("vs", counts=(10, 40), gamma=0.5, tau=1.0, s=1.0)
    assert vs["delta"] == pytest.approx((0.5, 1.0)) and vs["iota"] == pytest.approx((np.log(0.25), np.log(4)))
    # by default at BinaryVSLoss's own logit scale (30 in Kini et al.'s code): its arguments for these counts
    r = np.log(0.25)
    at_scale = binary_vs(iota_pos=-r, iota_neg=-r, delta_pos=0.5, delta_neg=1.0)
    for k in ("delta", "iota"):
        assert from_paper("vs", counts=(10, 40), gamma=0.5, tau=1.0)[k] == pytest.approx(at_scale[k])
    ld = from_paper("ldam", counts=(16, 256), max_m=0.5, s=30)
    assert ld["margin"] == pytest.approx((0.5, 0.25)) and ld["s"] == 30.0
    with pytest.raises(ValueError, match="counts or priors"):
        from_paper("la")
    with pytest.raises(ValueError, match="positive"):
        from_paper("vs", counts=(0, 10))


@pytest.mark.parametrize("loss", ["vs_softmax", "label_margin"])
def test_two_class_vs_and_the_label_margin_go_to_the_plain_max_margin(loss):
    ds = bl_toy(n_per_class=20, seed=0)
    params = from_paper(loss, counts=COUNTS, gamma=0.3) if loss == "vs_softmax" else \
        from_paper(loss, counts=COUNTS, s=2.0)
    lim = limit(ds.X, ds.y, loss, weights=16.0, **params)
    w_hat = max_margin(ds.X, ds.y).direction
    assert lim.kind == "max margin" and angle(lim.direction, w_hat) < 1e-12
    tr = simulate(ds.X, ds.y, loss, 16.0, "flow", loss_params=params, t_max=1e50, n_records=25)
    assert angle(tr.w[-1], w_hat) < 0.02
    # while the one-logit vs with the same counts keeps an angle (the cost-sensitive max margin)
    one = limit(ds.X, ds.y, "vs", weights=16.0, **from_paper("vs", counts=COUNTS, gamma=0.3))
    assert one.kind == "cost-sensitive max margin" and angle(one.direction, w_hat) > 1e-2


def test_the_cosine_limit_against_an_unconstrained_solution():
    """The ball |d| <= 2 written as d = 2 tanh(|v|) v / |v|, minimised by BFGS: an independent solution."""
    ds = bl_toy(n_per_class=20, seed=0)
    p = from_paper("ldam", counts=(100, 900), s=30.0)
    lim = cosine_limit(ds.X, ds.y, 4.0, **p)
    Z = ds.X / np.linalg.norm(ds.X, axis=1, keepdims=True) * ds.y[:, None]
    c = np.where(ds.y > 0, 4.0, 1.0)
    m_y = np.where(ds.y > 0, *p["margin"])

    def risk(v):
        r = np.linalg.norm(v)
        d = 2 * np.tanh(r) * v / r
        return np.mean(c * np.logaddexp(0.0, -p["s"] * (Z @ d - m_y)))

    v = minimize(risk, np.ones(ds.X.shape[1]), method="BFGS", options={"gtol": 1e-12}).x
    d = 2 * np.tanh(np.linalg.norm(v)) * v / np.linalg.norm(v)
    assert np.linalg.norm(lim.point - d) < 1e-4 and lim.kkt_residual < 1e-6
    assert np.linalg.norm(lim.point) <= 2.0 + 1e-9


def test_a_cosine_classifier_converges_to_its_finite_limit_and_keeps_the_weights():
    ds = bl_toy(n_per_class=20, seed=0)
    p = from_paper("ldam", counts=(100, 900), s=30.0)
    one, sixteen = cosine_limit(ds.X, ds.y, 1.0, **p).point, cosine_limit(ds.X, ds.y, 16.0, **p).point
    ts, d = cosine_descent(ds.X, ds.y, 1.0, lr=0.2, steps=40000, n_records=8, **p)
    dist = np.linalg.norm(d - one, axis=1)
    assert dist[-1] < 0.02 and np.all(np.diff(dist[-5:]) < 0)
    # the weights move the limit by more than descent's remaining distance to it
    assert np.linalg.norm(one - sixteen) > 3 * dist[-1]
    with pytest.raises(ValueError, match="cosine classifier"):
        simulate(ds.X, ds.y, "ldam", 1.0, loss_params=p)


def test_configs_take_the_papers_parameters_and_refuse_a_cosine_loss_they_cannot_train():
    from iwtheory.runs.config import ConfigError
    from iwtheory.runs.theory import TheoryConfig
    from iwtheory.runs.train import TrainConfig

    c = TrainConfig(name="t", dataset="synthetic", loss="vs", loss_params={"counts": [20, 160], "gamma": 0.3})
    c.validate()
    assert c.loss_params == from_paper("vs", counts=(20, 160), gamma=0.3)
    with pytest.raises(ConfigError, match="cosine classifier.*label_margin"):
        TrainConfig(name="t", dataset="synthetic", loss="ldam", model="bl_cnn").validate()
    TrainConfig(name="t", dataset="synthetic", loss="ldam", model="mlp", loss_params={"counts": [1, 8]}).validate()
    with pytest.raises(ConfigError, match="cannot be mixed"):
        TrainConfig(name="t", dataset="synthetic", loss="la", loss_params={"counts": [1, 2], "iota": [0, 0]}).validate()
    with pytest.raises(ConfigError, match="cosine"):
        TheoryConfig(name="t", losses=["ldam"]).validate()
    t = TheoryConfig(name="t", losses=["la"], loss_params={"la": {"priors": [0.25, 0.75], "tau": 2.0}})
    t.validate()
    assert t.loss_params["la"]["iota"] == pytest.approx((2 * np.log(1 / 3), 2 * np.log(3)))
