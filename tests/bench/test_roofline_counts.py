"""The roofline benchmark's FLOP counts, against counts written out by hand from the layers' shapes: its GFLOP/s
are only as honest as these."""

import importlib.util
import sys
from pathlib import Path

import torch

from iwtheory.nets.models import make_plain

ROOT = Path(__file__).resolve().parents[2]


def roofline():
    bench = ROOT / "experiments" / "benchmarks"
    if str(bench) not in sys.path:  # as when run as a script: it imports the benchmark beside it
        sys.path.insert(0, str(bench))
    spec = importlib.util.spec_from_file_location("roofline", bench / "roofline.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_an_mlps_flops_are_two_per_weight_per_image():
    mlp = make_plain("mlp", (1, 28, 28), hidden=(128, 64))
    assert roofline().layer_flops(mlp, torch.zeros(1, 1, 28, 28)) == [2 * 784 * 128, 2 * 128 * 64, 2 * 64]


def test_a_cnns_flops_follow_its_output_maps():
    net = make_plain("bl_cnn", (1, 28, 28), width=0.25)  # convs 16-16-32-32-32 (3x3 valid), FC 128-32-1
    got = roofline().layer_flops(net, torch.zeros(1, 1, 28, 28))
    # 28 -> 26 -> 24, pool 12 -> 10 -> 8 -> 6, pool 3: 32 * 3 * 3 = 288 features
    want = [2 * 16 * 26 * 26 * 1 * 9, 2 * 16 * 24 * 24 * 16 * 9, 2 * 32 * 10 * 10 * 16 * 9,
            2 * 32 * 8 * 8 * 32 * 9, 2 * 32 * 6 * 6 * 32 * 9, 2 * 288 * 128, 2 * 128 * 32, 2 * 32]
    assert got == want


def test_the_lean_program_evaluates_at_the_epochs_the_command_evaluates(monkeypatch):
    from iwtheory.runs.schedule import train_epochs

    mod = roofline()
    (cfg,) = mod.load_study(mod.CONFIG, mod.TrainConfig, regimes=["none"], overrides=mod.SHAPES["mlp_study"])

    class Counting:
        epochs, evaluated = 0, []

        def epoch(self):
            self.epochs += 1

        def evaluate(self):
            self.evaluated.append(self.epochs)
    loop = Counting()
    monkeypatch.setattr(mod, "lean_loop", lambda name, kind: (cfg, loop))
    mod.run_lean("mlp_study", "batched matmuls", 60)
    assert loop.epochs == 60
    assert loop.evaluated == train_epochs({**cfg.cells()[0], "epochs": 60})[0]


def test_the_step_calls_run_in_the_steps_order_on_each_layers_own_shapes():
    from iwtheory.nets.data import make_task, synthetic_images
    from iwtheory.nets.engine import EngineSettings, Member, Stack

    mod = roofline()
    task = make_task(synthetic_images(n_train=120, n_test=20, shape=(1, 28, 28), seed=0), noise_count=0)
    for settings, shapes in (
            (EngineSettings(model="mlp", hidden=(12, 8), batch_size=16), [(784, 12), (12, 8), (8, 1)]),
            (EngineSettings(model="bl_cnn", width=0.25, batch_size=16), None)):
        stack = Stack([Member(1.0, 0, 0.05), Member(4.0, 1, 0.05)], task, settings)
        outs = {}
        hooks = [m.register_forward_hook(lambda m, inp, y, k=k: outs.setdefault(k, (inp[0].shape, y.shape)) and None)
                 for k, m in enumerate(m for m in stack.net.modules() if isinstance(m, mod.BLinear | mod.BConv2d))]
        stack.train_step(torch.arange(16).expand(2, -1))
        for h in hooks:
            h.remove()
        calls = mod.step_calls(stack)
        L = len(outs)
        kinds = [(kind, layer) for kind, layer, _ in calls]
        assert kinds[:L] == [("forward", i) for i in range(L)]                # forward passes in layer order
        assert [layer for _, layer in kinds[L:]] == sorted((layer for _, layer in kinds[L:]), reverse=True)
        # a linear layer's backward is two matmuls (one for the first layer), a convolution's one call
        layers = [m for m in stack.net.modules() if isinstance(m, mod.BLinear | mod.BConv2d)]
        want = sum(1 if isinstance(m, mod.BConv2d) or i == 0 else 2 for i, m in enumerate(layers))
        assert sum(kind != "forward" for kind, _ in kinds) == want
        for kind, layer, call in calls:   # each call runs on its own layer's tensors, as the step made them
            got = call()
            x_shape, y_shape = outs[layer]
            w = layers[layer].weight
            if kind == "forward":
                assert got.shape == y_shape
            elif kind == "input grad":
                assert got.shape == x_shape
            elif isinstance(layers[layer], mod.BLinear):
                assert kind == "weight grad" and got.shape == w.transpose(1, 2).shape   # (M, in, out), as stored
                if shapes:
                    assert got.shape == (2, *shapes[layer])
            else:                                                           # convolution_backward's tuple
                gx, gw, _ = got
                assert gw.shape == w.shape and (gx is None) == (layer == 0)
                if gx is not None:
                    assert gx.shape == x_shape
