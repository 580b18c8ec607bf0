"""Populations of any module: the generic torch.func path against a plain per-model training loop, against the
hand-written fast path, and with dropout and batch norm kept per member."""

import numpy as np
import pytest
import torch
from torch import nn

from iwtheory.nets.arrays import Task
from iwtheory.nets.engine import EngineSettings, Member, Stack, build_member
from iwtheory.nets.models import BLCNN, MLP, ResNet
from iwtheory.nets.population import FuncStack, PopulationError, population
from iwtheory.theory import seeds


def blobs(n=48, d=6, k=2, seed=0):
    r = np.random.default_rng(seed)
    y = np.arange(n) % k
    x = r.normal(size=(n, d)) + 2.0 * np.eye(k, d)[y]
    return x.astype(np.float32), y


def seq(seed, d=6, k=1, bn=False, p=0.0):
    layers = [nn.Linear(d, 16)] + ([nn.BatchNorm1d(16)] if bn else []) + [nn.ReLU()]
    layers += [nn.Dropout(p)] if p else []
    return nn.Sequential(*layers, nn.Linear(16, k))


def stack_of(task, factory, members, epochs=3, batch=8, momentum=0.9):
    s = EngineSettings(model="custom", momentum=momentum, batch_size=batch, precision="fp64", n_feature_images=4)
    st = Stack(members, task.tensors(), s, "cpu", factory=factory)
    for _ in range(epochs):
        st.train_epoch()
    return st


def plain_loop(task, factory, m: Member, epochs=3, batch=8, momentum=0.9):
    """One model, trained the way a user would write it: torch.optim.SGD over the engine's batch order."""
    t = task.tensors()
    net = build_member(factory, m.seed).double()
    opt = torch.optim.SGD(net.parameters(), lr=m.lr, momentum=momentum, weight_decay=m.weight_decay)
    gen = torch.Generator().manual_seed(seeds.int_seed(m.seed, "batch_order"))
    x = t.normalise(t.x_train).double()
    n = len(t.y_train)
    c = torch.as_tensor(np.asarray(m.example_weights, dtype=np.float32)) if m.example_weights is not None \
        else torch.where(t.y_train > 0, torch.tensor(m.weight), torch.tensor(m.wneg))
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        net.train()
        for k in range(n // batch):
            idx = perm[k * batch:(k + 1) * batch]
            out = net(x[idx])
            if t.binary:
                loss = nn.functional.softplus(-t.y_train[idx] * out.reshape(-1))
            else:
                loss = nn.functional.cross_entropy(out, t.y_train[idx], reduction="none")
            opt.zero_grad()
            (c[idx] * loss).mean().backward()
            opt.step()
    return net


def member_params(st, m):
    """Member m's parameters in order: stacked (M, ...) or, on the fast path's convolutions, concatenated (M*C, ...)
    tensors, model-major either way."""
    return torch.cat([p.detach().reshape(st.M, -1)[m] for p in st.params])


def test_generic_stack_equals_a_plain_loop_with_per_example_weights():
    x, y = blobs()
    r = np.random.default_rng(1).uniform(0.2, 3.0, len(y))
    task = Task(x, y, weights=r)
    members = [Member(1.0, 0, 0.1, example_weights=r), Member(1.0, 1, 0.05, weight_decay=1e-2),
               Member(1.0, 2, 0.1, example_weights=r ** 2)]
    st = stack_of(task, seq, members)
    assert isinstance(st.net, FuncStack)
    for k, m in enumerate(members):
        ref = plain_loop(task, seq, m)
        want = torch.cat([p.detach().reshape(-1) for p in ref.parameters()])
        assert torch.allclose(member_params(st, k), want, atol=1e-10), f"member {k} differs from its plain loop"


def test_batch_norm_statistics_stay_per_member_and_eval_mode_reads_them():
    x, y = blobs()
    task = Task(x, y)
    factory = lambda s: seq(s, bn=True)  # noqa: E731
    members = [Member(1.0, 0, 0.1), Member(4.0, 1, 0.1)]
    st = stack_of(task, factory, members)
    xt = task.tensors()
    for k, m in enumerate(members):
        ref = plain_loop(task, factory, m).eval()
        got = st.logits(xt.x_train)[k]
        want = ref(xt.normalise(xt.x_train).double()).reshape(-1)
        assert torch.allclose(got, want, atol=1e-9), f"member {k}: eval logits differ (running statistics)"


def test_dropout_masks_do_not_depend_on_stack_mates():
    x, y = blobs()
    task = Task(x, y)
    factory = lambda s: seq(s, p=0.3)  # noqa: E731
    trio = stack_of(task, factory, [Member(1.0, 5, 0.1), Member(1.0, 6, 0.1), Member(1.0, 7, 0.1)])
    alone = stack_of(task, factory, [Member(1.0, 6, 0.1)])
    assert torch.allclose(member_params(trio, 1), member_params(alone, 0), atol=1e-12, rtol=0)
    # and the masks are really drawn: without dropout the same member ends elsewhere
    none = stack_of(task, seq, [Member(1.0, 6, 0.1)])
    assert not torch.allclose(member_params(none, 0), member_params(alone, 0))


def test_k_class_generic_stack_equals_a_plain_loop():
    x, y = blobs(k=3)
    task = Task(x, y)
    assert task.n_classes == 3
    factory = lambda s: seq(s, k=3)  # noqa: E731
    members = [Member(1.0, 0, 0.1), Member(1.0, 1, 0.1, example_weights=np.where(task.y == 2, 3.0, 1.0))]
    st = stack_of(task, factory, members)
    for k, m in enumerate(members):
        ref = plain_loop(task, factory, m)
        want = torch.cat([p.detach().reshape(-1) for p in ref.parameters()])
        assert torch.allclose(member_params(st, k), want, atol=1e-10)
    row = st.evaluate()[0]
    assert {"frac_class0_train", "frac_class2_train"}.isdisjoint(row)  # train is no probe
    assert 0 <= row["train_acc"] <= 1


def test_generic_path_equals_the_fast_path_on_the_mlp():
    torch.manual_seed(0)
    mlps = [MLP((1, 4, 4), hidden=(8, 5), dropout=0.0) for _ in range(3)]
    fast, generic = population(mlps).double(), population(mlps, generic=True).double()
    assert fast.fast and not generic.fast
    x = torch.randn(3, 7, 1, 4, 4, dtype=torch.float64)
    lf = fast(x.reshape(3, 7, 16))
    lg = generic(x)
    assert torch.allclose(lf, lg, atol=1e-12)
    lf.sum().backward()
    lg.sum().backward()
    gf = [p.grad.reshape(3, -1) for p in fast.parameters()]
    gg = [p.grad.reshape(3, -1) for p in generic.parameters()]
    assert len(gf) == len(gg)
    for a, b in zip(gf, gg):  # BLinear keeps (M, out, in) like nn.Linear: the same order of parameters
        assert torch.allclose(a, b, atol=1e-12)


def test_random_operations_outside_dropout_modules_are_refused():
    class Noisy(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(6, 1)

        def forward(self, x):
            return self.lin(nn.functional.dropout(x, 0.5, self.training))

    x, y = blobs()
    with pytest.raises(PopulationError, match="nn.Dropout"):
        stack_of(Task(x, y), lambda s: Noisy(), [Member(1.0, 0, 0.1)], epochs=1)


def test_wrong_output_shapes_and_mixed_architectures_are_refused():
    x, y = blobs()
    with pytest.raises(PopulationError, match=r"\(B, 3\)"):
        stack_of(Task(x, np.arange(len(y)) % 3), seq, [Member(1.0, 0, 0.1)], epochs=0)
    with pytest.raises(PopulationError, match="one architecture"):
        population([seq(0), seq(1, bn=True)])
    with pytest.raises(PopulationError, match="not an nn.Module"):
        population([lambda v: v])


class GenericBLCNN(BLCNN):
    """The B&L CNN as a class without a hand-written twin: it takes the generic path."""


class GenericResNet(ResNet):
    """Likewise the ResNet (batch norm in every block)."""


@pytest.mark.parametrize("fast_cls,generic_cls,shape", [(BLCNN, GenericBLCNN, (1, 22, 22)),
                                                       (ResNet, GenericResNet, (3, 8, 8))])
def test_the_fast_path_is_chosen_for_the_packages_models_and_equals_the_generic_path(fast_cls, generic_cls, shape):
    r = np.random.default_rng(0)
    y = np.arange(24) % 2
    x = (r.normal(size=(24, *shape)) + y[:, None, None, None]).astype(np.float32)
    task = Task(x, y)
    members = [Member(1.0, 0, 0.05), Member(3.0, 1, 0.05, weight_decay=1e-3)]
    fast = stack_of(task, lambda s: fast_cls(shape), members, epochs=2)
    generic = stack_of(task, lambda s: generic_cls(shape), members, epochs=2)
    assert fast.fast and not generic.fast
    for k in range(2):
        assert torch.allclose(member_params(fast, k), member_params(generic, k), atol=1e-9)
    xt = task.tensors().x_train
    assert torch.allclose(fast.logits(xt), generic.logits(xt), atol=1e-9)  # eval mode: running statistics
