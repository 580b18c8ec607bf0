"""The MLP's fused step (``BLinear.fuse_momentum``): weight gradients go straight into the momentum buffers and
each weight is updated inside the backward pass. ``test_engine.py`` checks the trajectories against
``torch.optim.SGD`` in fp64; here, that the fused path is the one those trajectories took, that it stays out of
every backward pass but the engine's own, and that a diverged model is still frozen by it."""

import numpy as np
import pytest
import torch
from torch import nn

from iwtheory.nets.data import make_task, synthetic_images
from iwtheory.nets.engine import EngineSettings, Member, Stack
from iwtheory.nets.models import BLinear, make_plain, unstack_member

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def task():
    return make_task(synthetic_images(n_train=96, n_test=40, shape=(1, 8, 8), seed=3), noise_count=8)


def at(stack, p) -> int:
    """The index of parameter ``p`` in ``stack.params`` (by identity: == on tensors compares values)."""
    return next(i for i, q in enumerate(stack.params) if q is p)


def weights_and_biases(stack):
    layers = [m for m in stack.net.modules() if isinstance(m, BLinear)]
    return [m.weight for m in layers], [m.bias for m in layers]


def test_an_mlp_step_makes_no_weight_gradient_and_a_cnn_step_does(task):
    mlp = Stack([Member(4.0, 0, 0.05, 1e-3), Member(1.0, 1, 0.05, 1e-3)], task,
                EngineSettings(model="mlp", hidden=(12, 8), batch_size=16))
    before = [w.detach().clone() for w in weights_and_biases(mlp)[0]]
    mlp.train_step(torch.arange(16).expand(2, -1))
    weights, biases = weights_and_biases(mlp)
    assert len(weights) == 3 and all(mlp.fused[at(mlp, w)] for w in weights)
    assert all(w.grad is None for w in weights)          # never materialised: it went into the buffer
    assert all(b.grad is not None for b in biases)       # biases take autograd's own gradient
    for w, w0 in zip(weights, before):                   # ... and every weight moved by lr * buf
        buf = mlp.bufs[at(mlp, w)]
        assert buf.abs().max() > 0
        torch.testing.assert_close(w.detach(), w0 - 0.05 * buf, rtol=0, atol=1e-7)
    assert not any(layer.armed for layer in mlp.fused_layers)

    images = make_task(synthetic_images(n_train=120, n_test=20, shape=(3, 24, 24), seed=0), noise_count=0)
    cnn = Stack([Member(1.0, 0, 0.05)], images, EngineSettings(model="bl_cnn", width=0.25, batch_size=16))
    cnn.train_step(torch.arange(16)[None])
    assert not any(cnn.fused) and all(w.grad is not None for w in weights_and_biases(cnn)[0])


def test_bf16_and_compiled_stacks_keep_the_plain_update(task, monkeypatch):
    s = EngineSettings(model="mlp", hidden=(12,), batch_size=16, precision="bf16")
    assert not any(Stack([Member(1.0, 0, 0.05)], task, s).fused)
    monkeypatch.setattr(torch, "compile", lambda net: net)   # a stand-in compiler: the check passes, fast
    compiled = Stack([Member(1.0, 0, 0.05)], task, EngineSettings(model="mlp", hidden=(12,), batch_size=16,
                                                                   compile=True))
    assert not any(compiled.fused) and not compiled.fused_layers
    compiled.train_step(torch.arange(16)[None])
    assert all(w.grad is not None for w in weights_and_biases(compiled)[0])   # autograd's own gradients


def test_a_users_own_backward_through_the_stack_is_plain_autograd(task):
    stack = Stack([Member(2.0, 0, 0.05), Member(1.0, 1, 0.05)], task,
                  EngineSettings(model="mlp", hidden=(12,), batch_size=16))
    stack.train_epoch()
    snapshot = [t.detach().clone() for t in stack.params + stack.bufs]
    x = stack._layout(stack._rows(torch.arange(8).expand(2, -1))).clone()
    stack.net(x).sum().backward()
    for t, t0 in zip(stack.params + stack.bufs, snapshot):   # nothing updated, no buffer touched
        assert torch.equal(t.detach(), t0)
    w = weights_and_biases(stack)[0][0]
    assert w.grad is not None and w.grad.abs().max() > 0
    # and it is the gradient of the same function computed without the stack's layers
    ref = w.detach().clone().requires_grad_(True)
    h = torch.relu(torch.baddbmm(stack.net.hidden[0].bias.detach()[:, None, :], x, ref.transpose(1, 2)))
    stack.net.out(h)[..., 0].sum().backward()
    torch.testing.assert_close(w.grad, ref.grad)


def test_a_diverged_mlp_is_frozen_by_the_fused_update_and_its_mates_go_on(task):
    s = EngineSettings(model="mlp", hidden=(12,), batch_size=16, precision="fp64")
    good = Member(2.0, 1, 0.05, 1e-3)
    stack = Stack([Member(1.0, 0, 1e6), good], task, s)
    with torch.no_grad():
        stack.net.out.weight[0].fill_(float("inf"))
    stack.train_epoch()
    frozen = [p.detach()[0].clone() for p in stack.params]
    stack.train_epoch()
    assert stack.diverged_epoch == [1, -1]
    for p, p0 in zip(stack.params, frozen):
        assert torch.equal(p.detach()[0].nan_to_num(posinf=1.0), p0.nan_to_num(posinf=1.0))
    solo = Stack([good], task, s)
    solo.train_epoch()
    solo.train_epoch()
    a = unstack_member(stack.net, 1, make_plain("mlp", task.shape, hidden=(12,)).double())
    b = unstack_member(solo.net, 0, make_plain("mlp", task.shape, hidden=(12,)).double())
    for x, y in zip(a.state_dict().values(), b.state_dict().values()):
        torch.testing.assert_close(x, y, rtol=1e-9, atol=1e-12)
    assert np.isfinite(stack.evaluate()[1]["train_loss"])


def test_a_momentum_buffer_of_another_layout_is_refused():
    layer = BLinear(2, nn.Linear(5, 3))
    with pytest.raises(ValueError, match="layout"):
        layer.fuse_momentum(torch.zeros(2, 3, 5), 0.9)   # contiguous (M, out, in): not the weight's strides
    with pytest.raises(ValueError, match="dtype"):
        layer.fuse_momentum(torch.zeros_like(layer.weight, dtype=torch.float64), 0.9)
    layer.fuse_momentum(torch.zeros_like(layer.weight), 0.9)


def test_plain_update_turns_the_fusion_off_and_agrees_to_rounding(task):
    s = EngineSettings(model="mlp", hidden=(12, 8), batch_size=16)
    members = [Member(4.0, 0, 0.05, 1e-3), Member(1.0, 1, 0.02, 0.0)]
    fused, plain = Stack(members, task, s), Stack(members, task, s)
    plain.plain_update()
    for _ in range(2):
        a, b = fused.train_epoch(), plain.train_epoch()
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for p, q in zip(fused.params, plain.params):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-5, atol=1e-6)
    weights = weights_and_biases(plain)[0]
    assert not any(plain.fused) and all(w.grad is not None for w in weights)   # autograd's own gradients
    assert all(w.grad is None for w in weights_and_biases(fused)[0])


def test_a_finished_stack_is_freed_without_waiting_for_the_garbage_collector(task):
    import gc
    import weakref

    gc.disable()   # the fused layers call back into their stack: that reference must not make a cycle
    try:
        stack = Stack([Member(1.0, 0, 0.05)], task, EngineSettings(model="mlp", hidden=(12,), batch_size=16))
        assert any(stack.fused)
        stack.train_epoch()
        gone = weakref.ref(stack)
        del stack
        assert gone() is None
    finally:
        gc.enable()
