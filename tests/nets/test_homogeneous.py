"""An MLP without biases is positively homogeneous in its parameters, and its stacked form is the plain one."""

import pytest
import torch

from iwtheory.nets.models import make_plain, stack_members


@pytest.mark.parametrize("hidden", [(), (7,), (9, 5)])
def test_scaling_every_parameter_by_c_scales_the_logit_by_c_to_the_depth(hidden):
    net = make_plain("mlp", (1, 4, 4), hidden=hidden, bias=False, seed=3).double()
    x = torch.randn(11, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    f = net(x)
    L = len(hidden) + 1
    for c in (0.5, 3.0, 10.0):
        scaled = make_plain("mlp", (1, 4, 4), hidden=hidden, bias=False).double()
        scaled.load_state_dict({k: c * v for k, v in net.state_dict().items()})
        torch.testing.assert_close(scaled(x), c ** L * f, rtol=1e-12, atol=1e-12)
    if not hidden:
        return  # a linear model is homogeneous of degree 1 with or without its bias
    # with biases the same scaling is not a power law (the check can fail)
    biased = make_plain("mlp", (1, 4, 4), hidden=hidden, seed=3).double()
    scaled = make_plain("mlp", (1, 4, 4), hidden=hidden).double()
    scaled.load_state_dict({k: 3.0 * v for k, v in biased.state_dict().items()})
    assert not torch.allclose(scaled(x), 3.0 ** L * biased(x))


def test_stacked_and_plain_homogeneous_nets_agree():
    members = [make_plain("mlp", (1, 4, 4), hidden=(6, 5), bias=False, seed=s).double() for s in range(3)]
    assert all(p.bias is None for m in members for p in [*m.hidden, m.out])
    stacked = stack_members(members).double()
    x = torch.randn(8, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    got = stacked(x)
    for m, net in enumerate(members):
        torch.testing.assert_close(got[m], net(x), rtol=1e-12, atol=1e-12)
    assert not any(n.endswith("bias") for n, _ in stacked.named_parameters())


def test_no_bias_is_refused_where_it_would_not_be_homogeneous():
    from iwtheory.runs.config import ConfigError
    from iwtheory.runs.train import TrainConfig

    with pytest.raises(ValueError, match="batch norm"):
        make_plain("mlp", (1, 4, 4), hidden=(3,), batchnorm=True, bias=False)
    with pytest.raises(ValueError, match="MLP setting"):
        make_plain("bl_cnn", (3, 32, 32), bias=False)
    with pytest.raises(ConfigError, match="homogeneous"):
        TrainConfig(name="t", dataset="synthetic", model="mlp", batchnorm=True, bias=False).validate()
    # the default leaves the run hashes as they were: no bias key in the cells
    cell = TrainConfig(name="t", dataset="synthetic", model="mlp").cells()[0]
    assert "bias" not in cell and TrainConfig(name="t", dataset="synthetic", bias=False).cells()[0]["bias"] is False


def test_the_engine_records_the_implicit_bias_quantities():
    """Angle to the unweighted partner, normalised margin and parameter norm, recomputed from the plain models."""
    import numpy as np

    from iwtheory.nets.data import make_task, synthetic_images
    from iwtheory.nets.models import unstack_member
    from iwtheory.nets.engine import EngineSettings, Member, Stack

    task = make_task(synthetic_images(n_train=400, n_test=60, shape=(1, 6, 6), seed=0), noise_count=5)
    s = EngineSettings(model="mlp", hidden=(8, 4), bias=False, batch_size=16, precision="fp64")
    members = [Member(1.0, 0, 0.1), Member(8.0, 0, 0.1), Member(8.0, 1, 0.1)]
    stack = Stack(members, task, s)
    for _ in range(3):
        stack.train_epoch()
    rows = stack.evaluate()
    plain = [unstack_member(stack.net, m, make_plain("mlp", task.shape, hidden=(8, 4), bias=False).double())
             for m in range(3)]
    theta = [torch.cat([p.detach().reshape(-1) for p in net.parameters()]).numpy() for net in plain]
    x = task.normalise(task.x_train).double()
    for m, net in enumerate(plain):
        norm = np.linalg.norm(theta[m])
        assert rows[m]["param_norm"] == pytest.approx(norm, rel=1e-12)
        margin = (task.y_train.double() * net(x)).min().item()
        assert rows[m]["normalised_margin"] == pytest.approx(margin / norm ** 3, rel=1e-9)
    cos = theta[1] @ theta[0] / np.linalg.norm(theta[1]) / np.linalg.norm(theta[0])
    assert rows[0]["angle_unweighted"] == 0.0 and rows[1]["angle_unweighted"] == pytest.approx(np.arccos(cos))
    assert rows[1]["angle_unweighted"] > 1e-6  # the weight moved it
    assert rows[2]["angle_unweighted"] is None  # seed 1 has no unweighted partner in this stack
    # with biases the normalised margin is left out: it would not be scale-free
    biased = Stack(members, task, EngineSettings(model="mlp", hidden=(8, 4), batch_size=16, precision="fp64"))
    assert all(r["normalised_margin"] is None for r in biased.evaluate())


def test_stacks_keep_each_net_with_its_unweighted_partner(tmp_path):
    from iwtheory.runs.train import TrainConfig, plan_groups

    cfg = TrainConfig(name="t", dataset="synthetic", model="mlp", weights=[0.5, 1.0, 2.0], seeds=[0, 1, 2, 3],
                      weight_decays=[0.0, 1e-3], max_models=7)
    cells = cfg.cells()
    groups = plan_groups([cfg], tmp_path)
    assert sorted(k for g in groups for _, k in g) == list(range(len(cells)))
    assert all(len(g) <= 7 for g in groups)
    for g in groups:  # every (seed, weight decay) in a stack brings all three weights, the unweighted one too
        keys = [(cells[k]["seed"], cells[k]["weight_decay"]) for _, k in g]
        assert all(keys.count(x) == 3 for x in keys)
