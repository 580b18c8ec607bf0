"""A plain nn.Sequential CNN with batch norm and dropout, on image arrays, with class weights.

Each member of a stack keeps its own batch-norm statistics and its own dropout masks, so a net's numbers do
not depend on which nets share its stack. The images here are synthetic (a class-dependent pattern plus noise,
1 x 12 x 12); bring your own (N, C, H, W) arrays the same way.

    python examples/cnn_batchnorm_dropout.py --out runs/example_cnn        # a few minutes on 2 CPU cores
    python examples/cnn_batchnorm_dropout.py --tiny --out /tmp/cnn          # seconds (the tests run this)
"""

from __future__ import annotations

import argparse

import numpy as np
from torch import nn

from iwtheory import Study, Task


def make_cnn(seed: int, p: float = 0.2) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3), nn.BatchNorm2d(16), nn.ReLU(), nn.Flatten(),
        nn.Linear(16 * 3 * 3, 32), nn.ReLU(), nn.Dropout(p), nn.Linear(32, 1))


def images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    pattern = np.zeros((2, 1, 12, 12))
    pattern[0, 0, :, :6] = 1.0
    pattern[1, 0, :6, :] = 1.0
    x = pattern[y] + rng.normal(0, 1.0, size=(n, 1, 12, 12))
    return x.astype(np.float32), np.where(y == 1, "dog", "cat")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/example_cnn")
    p.add_argument("--tiny", action="store_true", help="a seconds-long run (tests)")
    a = p.parse_args(argv)
    n = 32 if a.tiny else 320
    x, y = images(n)
    x_test, y_test = images(n, seed=1)
    task = Task(x, y, positive="dog", probes={"test": (x_test, y_test), "noise": np.random.default_rng(2).normal(
        size=(n, 1, 12, 12))}, normalise="standardise", name="cnn")
    study = Study(task, make_cnn, class_weights=[1 / 4, 1, 4], seeds=range(2 if a.tiny else 10),
                  epochs=3 if a.tiny else 40, lr=0.02, batch_size=8 if a.tiny else 16,
                  regimes={"none": {}, "l2": {"weight_decay": 1e-3}})
    df = study.run(a.out, progress=not a.tiny)
    last = df[df.epoch == df.epoch.max()].groupby(["regime", "weight"])[["train_acc", "frac_pos_test"]].mean()
    print(last.round(3).to_string())
    for e in study.claims(a.out):
        print(e["id"], e["verdict"], e["details"].get("missing", ""))


if __name__ == "__main__":
    main()
