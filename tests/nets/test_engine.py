import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from iwtheory.nets.data import make_task, synthetic_images
from iwtheory.nets.models import last_layer, make_plain, unstack_member
from iwtheory.nets.engine import EngineSettings, Member, Stack
from iwtheory.theory.seeds import DROPOUT_OFFSET, ORDER_OFFSET

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def task():
    return make_task(synthetic_images(n_train=120, n_test=60, shape=(3, 24, 24), seed=0), noise_count=20)


def reference_loop(task, member, s: EngineSettings, epochs: int, lr_at=None):
    """A plain single-model loop: torch.optim.SGD, the module's own dropout, a hand-written weighted risk;
    ``lr_at(epoch)``: the learning rate of each epoch (torch's own param-group setting)."""
    model = make_plain(s.model, task.shape, dropout=member.dropout, batchnorm=s.batchnorm, seed=member.seed,
                       hidden=s.hidden, width=s.width).double()
    opt = torch.optim.SGD(model.parameters(), lr=member.lr, momentum=s.momentum, weight_decay=member.weight_decay)
    order = torch.Generator().manual_seed(member.seed + ORDER_OFFSET)
    drop = torch.Generator().manual_seed(member.seed + DROPOUT_OFFSET)
    n, B = len(task.y_train), s.batch_size
    model.train()
    for e in range(epochs):
        if lr_at is not None:
            opt.param_groups[0]["lr"] = lr_at(e)
        perm = torch.randperm(n, generator=order)
        for k in range(n // B):
            idx = perm[k * B:(k + 1) * B]
            y = task.y_train[idx]
            c = torch.where(y > 0, torch.tensor(member.weight), torch.tensor(member.wneg)).double()
            logits = model(task.normalise(task.x_train[idx]).double(), drop)
            loss = (c * F.softplus(-y.double() * logits)).sum() / B
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model


@pytest.mark.parametrize("model, batchnorm, dropouts, hidden, width", [
    ("bl_cnn", True, (0.0, 0.3, 0.5), None, 1.0),
    ("bl_cnn", False, (0.2, 0.0, 0.0), None, 1.0),
    ("bl_cnn", True, (0.0, 0.3, 0.0), None, 0.25),   # the CPU width: every layer narrower, stacked alike
    ("mlp", False, (0.0, 0.5, 0.1), None, 1.0),
    ("mlp", True, (0.0, 0.5, 0.1), (12, 8), 1.0),
    ("mlp", False, (0.0, 0.0, 0.0), (), 1.0),
    ("resnet", True, (0.0, 0.0, 0.0), None, 1.0),
])
def test_stacked_models_follow_their_single_model_trajectories(task, model, batchnorm, dropouts, hidden, width):
    # fp64 on both sides: fp32 grouped convolutions accumulate in another order than single ones
    s = EngineSettings(model=model, batchnorm=batchnorm, batch_size=16, momentum=0.9, precision="fp64", hidden=hidden,
                       width=width)
    members = [Member(4.0, 0, 0.05, 0.0, dropouts[0], wneg=0.5), Member(0.25, 1, 0.02, 5e-3, dropouts[1]),
               Member(1.0, 2, 0.1, 1e-3, dropouts[2], wneg=2.0)]
    stack = Stack(members, task, s)
    for _ in range(2):
        stack.train_epoch()
    for m, mem in enumerate(members):
        ref = reference_loop(task, mem, s, epochs=2)
        got = unstack_member(stack.net, m, make_plain(model, task.shape, dropout=mem.dropout,
                                                      batchnorm=batchnorm, hidden=hidden, width=width).double())
        for (name, a), b in zip(ref.state_dict().items(), got.state_dict().values()):
            err = (b - a).abs().max().item()
            assert err <= 1e-9 + 1e-8 * a.abs().max().item(), f"model {m}, tensor {name}: max error {err:.2e}"
        # and the models really moved
        init = make_plain(model, task.shape, dropout=mem.dropout, batchnorm=batchnorm, seed=mem.seed,
                          hidden=hidden, width=width).double()
        if width != 1.0:  # the narrow net is the one that was trained
            assert got.convs[0].out_channels == round(64 * width) and got.fc2.out_features == round(128 * width)
        assert not torch.allclose(next(init.parameters()), next(got.parameters()))


def test_a_decaying_learning_rate_follows_torchs_own_schedule(task):
    from iwtheory.runs.schedule import lr_factor

    assert [lr_factor(e, 10, 0.4) for e in range(10)] == [1, 1, 1, 1, 1, 1, 1.0, 0.75, 0.5, 0.25]
    assert lr_factor(3, 10, 0.0) == 1.0
    s = EngineSettings(model="mlp", hidden=(12,), batch_size=16, momentum=0.9, precision="fp64")
    members = [Member(4.0, 0, 0.05, 1e-3), Member(1.0, 1, 0.02)]
    stack = Stack(members, task, s)
    for e in range(4):
        stack.lr_factor = lr_factor(e, 4, 0.5)
        stack.train_epoch()
    for m, mem in enumerate(members):
        ref = reference_loop(task, mem, s, 4, lr_at=lambda e, lr=mem.lr: lr * lr_factor(e, 4, 0.5))
        const = reference_loop(task, mem, s, 4)
        got = unstack_member(stack.net, m, make_plain("mlp", task.shape, hidden=(12,)).double())
        for a, b, c in zip(ref.state_dict().values(), got.state_dict().values(), const.state_dict().values()):
            assert (b - a).abs().max().item() <= 1e-9 + 1e-8 * a.abs().max().item()
        assert any((b - c).abs().max().item() > 1e-6 for b, c in zip(got.state_dict().values(),
                                                                       const.state_dict().values()))


def test_a_model_does_not_depend_on_its_stack_mates(task):
    s = EngineSettings(model="bl_cnn", batch_size=16)
    alone = Stack([Member(4.0, 7, 0.05, 0.0, 0.3)], task, s)
    together = Stack([Member(1.0, 3, 0.1, 0.0, 0.5), Member(4.0, 7, 0.05, 0.0, 0.3)], task, s)
    alone.train_epoch()
    together.train_epoch()
    a = unstack_member(alone.net, 0, make_plain("bl_cnn", task.shape, dropout=0.3))
    b = unstack_member(together.net, 1, make_plain("bl_cnn", task.shape, dropout=0.3))
    for x, y in zip(a.state_dict().values(), b.state_dict().values()):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5)


def test_dropout_stays_on_after_evaluation(task):
    # a known bug of public reproductions: model.train() never called again after evaluation
    stack = Stack([Member(1.0, 0, 0.05, 0.0, 0.5)], task, EngineSettings(batch_size=16))
    stack.evaluate()
    assert stack.net.training
    x = stack._layout(task.x_train[:16][None])
    g = [torch.Generator().manual_seed(1)]
    out1, out2 = stack.net(x, g), stack.net(x, g)
    assert not torch.allclose(out1, out2)  # masks differ, so dropout is active
    stack.net.eval()
    torch.testing.assert_close(stack.net(x, g), stack.net(x, g))


def test_diverged_model_is_flagged_and_the_others_go_on(task):
    s = EngineSettings(batch_size=16)
    good = Member(2.0, 1, 0.05)
    stack = Stack([Member(1.0, 0, 1e6), good], task, s)
    with torch.no_grad():  # force a blow-up in model 0 only
        stack.net.out.weight[0].fill_(float("inf"))
    stack.train_epoch()
    stack.train_epoch()
    assert stack.diverged_epoch == [1, -1]
    metrics = stack.evaluate()
    assert np.isfinite(metrics[1]["train_loss"])
    solo = Stack([good], task, s)
    solo.train_epoch()
    solo.train_epoch()
    a = unstack_member(stack.net, 1, make_plain("bl_cnn", task.shape))
    b = unstack_member(solo.net, 0, make_plain("bl_cnn", task.shape))
    for x, y in zip(a.state_dict().values(), b.state_dict().values()):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5)


def test_checkpoint_round_trip_with_weights_only(task, tmp_path):
    s = EngineSettings(batch_size=16)
    mem = [Member(1.0, 0, 0.05, 0.0, 0.3), Member(4.0, 1, 0.05, 0.0, 0.0)]
    a = Stack(mem, task, s)
    a.train_epoch()
    payload = a.state_bytes()
    torch.load(io.BytesIO(payload), weights_only=True)  # loads without arbitrary code
    b = Stack(mem, task, s)
    b.load_bytes(payload)
    a.train_epoch()
    b.train_epoch()
    for x, y in zip(a.net.state_dict().values(), b.net.state_dict().values()):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_bad_hyperparameters_are_named(task):
    with pytest.raises(ValueError, match="positive and finite"):
        Stack([Member(0.0, 0, 0.1)], task, EngineSettings())
    with pytest.raises(ValueError, match="precision"):
        Stack([Member(1.0, 0, 0.1)], task, EngineSettings(precision="fp8"))
    with pytest.raises(ValueError, match="batch_size"):
        Stack([Member(1.0, 0, 0.1)], task, EngineSettings(batch_size=10_000))


def test_ldam_trains_a_cosine_classifier_like_a_plain_two_class_loop(task):
    """Cao et al.'s recipe in a plain loop (a normalised two-class last layer, F.cross_entropy on
    s (cos - margin on the true class)) against the stacked engine with loss "ldam": same parameters after
    two epochs, logits bounded by 2 and unchanged when a class vector is rescaled."""
    from iwtheory.theory.limits import from_paper

    params = from_paper("ldam", counts=(30, 90), max_m=0.5, s=10.0)
    s = EngineSettings(model="mlp", hidden=(12, 8), batch_size=16, momentum=0.9, precision="fp64", loss="ldam",
                       loss_params=params)
    members = [Member(4.0, 0, 0.05, 1e-3, 0.0), Member(0.25, 1, 0.1, 0.0, 0.0, wneg=2.0)]
    stack = Stack(members, task, s)
    for _ in range(2):
        stack.train_epoch()
    margins = torch.tensor([params["margin"][0], params["margin"][1]], dtype=torch.float64)
    for m, mem in enumerate(members):
        model = make_plain("mlp", task.shape, seed=mem.seed, hidden=(12, 8), head="cosine").double()
        opt = torch.optim.SGD(model.parameters(), lr=mem.lr, momentum=0.9, weight_decay=mem.weight_decay)
        order = torch.Generator().manual_seed(mem.seed + ORDER_OFFSET)
        n, B = len(task.y_train), s.batch_size
        for _ in range(2):
            perm = torch.randperm(n, generator=order)
            for k in range(n // B):
                idx = perm[k * B:(k + 1) * B]
                y = task.y_train[idx]
                h = model.features(task.normalise(task.x_train[idx]).double())
                cos = F.normalize(h, dim=1) @ F.normalize(model.out.weight, dim=1).T  # column 0: positive
                target = (y < 0).long()
                z = cos - F.one_hot(target, 2).double() * margins[target][:, None]
                c = torch.where(y > 0, torch.tensor(mem.weight), torch.tensor(mem.wneg)).double()
                loss = (c * F.cross_entropy(params["s"] * z, target, reduction="none")).sum() / B
                opt.zero_grad()
                loss.backward()
                opt.step()
        got = unstack_member(stack.net, m, make_plain("mlp", task.shape, hidden=(12, 8), head="cosine").double())
        for (name, a), b in zip(model.state_dict().items(), got.state_dict().values()):
            assert (b - a).abs().max().item() <= 1e-9, name
    logits = stack.logits(task.x_test)
    assert logits.abs().max() <= 2.0 + 1e-12
    with torch.no_grad():
        stack.net.out.weight[:, 0] *= 7.0
    torch.testing.assert_close(stack.logits(task.x_test), logits)
    w, b = last_layer(stack.net)
    assert w.shape == (2, 8) and torch.all(b == 0)


@pytest.mark.parametrize("precision", ["fp32", "tf32"])
def test_a_stack_leaves_the_process_wide_tf32_settings_as_it_found_them(task, precision):
    """TF32 is a global torch setting: a stack switches it for its own computations only."""
    seen = []
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        for before in (True, False):
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = before
            stack = Stack([Member(1.0, 0, 0.05, 0.0, 0.0)], task,
                          EngineSettings(model="mlp", hidden=(4,), batch_size=8, precision=precision))
            original = stack.net.forward
            stack.net.forward = lambda *a, **k: (seen.append(torch.backends.cuda.matmul.allow_tf32),
                                                 original(*a, **k))[1]
            stack.train_epoch()
            stack.evaluate()
            assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (before, before)
        assert seen and all(s == (precision == "tf32") for s in seen)  # inside: the stack's own setting
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_the_cnn_width_factor_scales_every_layer_and_stays_out_of_paper_width_hashes():
    from iwtheory.nets.models import BLCNN, blcnn_widths
    from iwtheory.runs.config import ConfigError
    from iwtheory.runs.train_config import TrainConfig

    convs, fcs = blcnn_widths(0.25)
    net = BLCNN((3, 32, 32), width=0.25)
    assert [c.out_channels for c in net.convs] == [16, 16, 32, 32, 32] == list(convs)
    assert (net.fc1.out_features, net.fc2.out_features) == (128, 32) == fcs
    full = sum(p.numel() for p in BLCNN((3, 32, 32)).parameters())
    assert sum(p.numel() for p in net.parameters()) < full / 10
    paper = TrainConfig(name="a", model="bl_cnn", dataset="synthetic").cells()[0]
    narrow = TrainConfig(name="a", model="bl_cnn", dataset="synthetic", width=0.25).cells()[0]
    assert "width" not in paper and narrow["width"] == 0.25
    for bad in (dict(model="mlp", width=0.5), dict(model="bl_cnn", width=0.0), dict(model="bl_cnn", width=8.0)):
        with pytest.raises(ConfigError, match="width"):
            TrainConfig(name="a", dataset="synthetic", **bad).validate()
    with pytest.raises(ValueError, match="width factor"):
        make_plain("mlp", (3, 32, 32), width=0.5)


def test_a_cnn_evaluates_in_cache_sized_chunks_with_the_same_metrics(task):
    members = [Member(4.0, 0, 0.05, 0.0, 0.0), Member(1.0, 1, 0.05, 0.0, 0.0)]
    auto = Stack(members, task, EngineSettings(model="bl_cnn", width=0.5, precision="fp64"))
    whole = Stack(members, task, EngineSettings(model="bl_cnn", width=0.5, precision="fp64", eval_chunk=1000))
    assert 16 <= auto.eval_chunk() < len(auto.x_eval) <= whole.eval_chunk()  # several passes against one
    a, b = auto.evaluate(), whole.evaluate()
    for ra, rb in zip(a, b):
        for k, v in rb.items():
            assert (v is None and ra[k] is None) or abs(ra[k] - v) <= 1e-9 * max(1.0, abs(v)), k
    mlp = Stack(members, task, EngineSettings(model="mlp"))
    assert mlp.eval_chunk() == 1000  # an MLP's activations are small: one pass, as before


def test_training_flushes_subnormals_on_every_thread_and_restores_the_process_setting(task):
    """Subnormal momentum made the study's late epochs 4x slower; the flush must reach every thread of torch's
    pool (a setting of the calling thread alone leaves the pool's other threads unflushed)."""
    from iwtheory.nets import engine

    each = engine._each_thread()
    if each is None:
        pytest.skip("this torch build has no libgomp to reach its pool's threads")

    def threads_flushing() -> list[bool]:
        flags = []
        each(lambda: flags.append(engine._flushing()))
        return flags

    assert not any(threads_flushing())
    seen = []
    stack = Stack([Member(4.0, 0, 0.05, 0.0, 0.0)], task, EngineSettings(model="mlp", hidden=(8,)))
    hook = stack.net.register_forward_hook(lambda *_: seen.append(threads_flushing()))
    stack.train_epoch()
    stack.evaluate()
    hook.remove()
    assert seen and all(all(f) and len(f) == torch.get_num_threads() for f in seen), seen[:2]
    assert not any(threads_flushing()), "the process's setting was not restored"
    off = Stack([Member(4.0, 0, 0.05, 0.0, 0.0)], task, EngineSettings(model="mlp", hidden=(8,), flush_denormal=False))
    seen.clear()
    off.net.register_forward_hook(lambda *_: seen.append(threads_flushing()))
    off.train_epoch()
    assert seen and not any(any(f) for f in seen)
