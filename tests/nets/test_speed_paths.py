"""The speed options (channels_last, bf16 autocast, CUDA) against the fp32 reference path."""

import pytest
import torch

from iwtheory.nets.data import make_task, synthetic_images
from iwtheory.nets.models import make_plain, unstack_member
from iwtheory.nets.train import EngineSettings, Member, Stack

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


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_fp32_matches_the_cpu_reference(task):
    torch.backends.cudnn.deterministic = True
    ref, gpu = trained(task), trained(task, device="cuda")
    for m in range(2):
        for a, b in zip(params(ref, m), params(gpu, m)):
            torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-4)
    for prec in ("tf32", "bf16"):
        st = trained(task, device="cuda", precision=prec, channels_last=True)
        assert all(torch.isfinite(torch.tensor(r["train_loss"])) for r in st.evaluate())
