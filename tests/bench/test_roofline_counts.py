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
