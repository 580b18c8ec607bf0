"""The speed options (channels_last, bf16 autocast, CUDA) against the fp32 reference path."""

import pytest
import torch

from iwtheory.nets.data import make_task, synthetic_images
from iwtheory.nets.models import make_plain, unstack_member
from iwtheory.nets.engine import EngineSettings, Member, Stack

MEMBERS = [Member(4.0, 0, 0.02, 1e-3, 0.0), Member(0.25, 1, 0.02, 0.0, 0.3)]


@pytest.fixture(scope="module")
def task():
    return make_task(synthetic_images(n_train=80, n_test=40, shape=(3, 24, 24), seed=1), noise_count=10)


def trained(task, device="cpu", **kw):
    s = EngineSettings(batch_size=16, **kw)
    st = Stack(MEMBERS, task, s, device)
    st.train_epoch()
    return st


def params(st, m):
    plain = make_plain("bl_cnn", st.task.shape, dropout=MEMBERS[m].dropout).to(st.device, st.dtype)
    return [p.detach().cpu().float() for p in unstack_member(st.net, m, plain).parameters()]


def test_channels_last_matches_the_reference(task):
    # fp64 isolates the memory layout from fp32 kernels' accumulation order
    ref, cl = trained(task, precision="fp64"), trained(task, precision="fp64", channels_last=True)
    for m in range(2):
        for a, b in zip(params(ref, m), params(cl, m)):
            torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7)


def test_bf16_autocast_stays_close_to_the_reference(task):
    ref, bf = trained(task), trained(task, precision="bf16")
    mr, mb = ref.evaluate(), bf.evaluate()
    for m in range(2):
        assert abs(mr[m]["train_loss"] - mb[m]["train_loss"]) < 0.05 * mr[m]["train_loss"]
        # parameters move the same way: their change from the shared initialisation agrees in direction
        init = make_plain("bl_cnn", task.shape, dropout=MEMBERS[m].dropout, seed=MEMBERS[m].seed)
        da = torch.cat([(a - i).flatten() for a, i in zip(params(ref, m), init.parameters())])
        db = torch.cat([(b - i).flatten() for b, i in zip(params(bf, m), init.parameters())])
        assert torch.nn.functional.cosine_similarity(da, db, dim=0) > 0.95


@pytest.mark.slow
def test_torch_compile_is_checked_against_eager(task):
    # Either the compiled model trains exactly as eager mode (fp64: rounding-level differences only)
    # or the engine refuses it; on torch 2.13.0's CPU inductor the B&L CNN's conv gradients come out 0.
    try:
        comp = trained(task, precision="fp64", compile=True)
    except RuntimeError as e:
        assert "torch.compile changed the gradient of convs.0.weight" in str(e)
        return
    eager = trained(task, precision="fp64")
    for m in range(2):
        for a, b in zip(params(eager, m), params(comp, m)):
            torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7)


def test_the_compile_check_catches_a_wrong_gradient(task, monkeypatch):
    # a stand-in compiler whose model cuts the gradient to the first convolution
    class Detached(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x, gens=None):
            w = self.net.convs[0].weight
            with torch.no_grad():
                saved = w.detach().clone()
            self.net.convs[0].weight = torch.nn.Parameter(saved, requires_grad=False)
            try:
                return self.net(x, gens)
            finally:
                self.net.convs[0].weight = w

    monkeypatch.setattr(torch, "compile", lambda net: Detached(net))
    with pytest.raises(RuntimeError, match="changed the gradient of convs.0.weight"):
        trained(task, compile=True)


def cuda_reference(task, member, epochs=1):
    """One plain model trained alone on the GPU in fp32 (TF32 off): torch.optim.SGD, the engine's seeds."""
    import torch.nn.functional as F

    from iwtheory.theory.seeds import DROPOUT_OFFSET, ORDER_OFFSET

    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    t = task.to("cuda")
    model = make_plain("bl_cnn", t.shape, dropout=member.dropout, seed=member.seed).cuda()
    opt = torch.optim.SGD(model.parameters(), lr=member.lr, momentum=0.9, weight_decay=member.weight_decay)
    order = torch.Generator().manual_seed(member.seed + ORDER_OFFSET)
    drop = torch.Generator(device="cuda").manual_seed(member.seed + DROPOUT_OFFSET)
    n, B = len(t.y_train), 16
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=order).cuda()
        for k in range(n // B):
            idx = perm[k * B:(k + 1) * B]
            y = t.y_train[idx]
            c = torch.where(y > 0, member.weight, member.wneg)
            loss = (c * F.softplus(-y * model(t.normalise(t.x_train[idx]), drop))).sum() / B
            opt.zero_grad()
            loss.backward()
            opt.step()
    return [p.detach().cpu().float() for p in model.parameters()]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision, channels_last, tol", [("fp32", False, 1e-3), ("tf32", True, 2e-2),
                                                           ("bf16", True, 1e-1)])
def test_the_cuda_stack_follows_a_per_model_loop(task, precision, channels_last, tol):
    """Relative distance of every model's parameters to its own plain fp32 loop on the GPU after one epoch:
    fp32 and tf32 to tolerance, bf16 (autocast) to a looser one."""
    stack = trained(task, device="cuda", precision=precision, channels_last=channels_last)
    for m, mem in enumerate(MEMBERS):
        ref = torch.cat([p.ravel() for p in cuda_reference(task, mem)])
        got = torch.cat([p.ravel() for p in params(stack, m)])
        init = torch.cat([p.detach().ravel().float() for p in make_plain("bl_cnn", task.shape, seed=mem.seed)
                          .parameters()])
        moved = float((ref - init).norm())
        err = float((got - ref).norm())
        assert moved > 0 and err <= tol * moved, f"model {m}, {precision}: |got - ref| = {err:.3e}, moved {moved:.3e}"
