"""A three-class task: per-class weights, each class's predicted share on every probe set.

The binary claims (whose statistic is the positive class's share F) say they do not apply; the effect of the
weights is reported per class instead: Delta_k(t) = F_k(t; w) - F_k(t; uniform), from ``study.effects()``.

    python examples/three_classes.py --out runs/example_three               # about a minute on 2 CPU cores
    python examples/three_classes.py --tiny --out /tmp/three                # seconds (the tests run this)
"""

from __future__ import annotations

import argparse

import numpy as np
from torch import nn

from iwtheory import Study, Task


def make_net(seed: int) -> nn.Module:
    return nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 3))


def blobs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    centres = np.array([[0.0, 2.0], [-1.8, -1.0], [1.8, -1.0]])
    return centres[y] + rng.normal(0, 0.6, size=(n, 2)), y


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/example_three")
    p.add_argument("--tiny", action="store_true", help="a seconds-long run (tests)")
    a = p.parse_args(argv)
    n = 48 if a.tiny else 300
    x, y = blobs(n)
    xt, yt = blobs(n, seed=1)
    task = Task(x, y, probes={"test": (xt, yt)}, name="three")
    study = Study(task, make_net, class_weights=[[1, 1, 1], [8, 1, 1], [1, 1, 8]], seeds=range(2 if a.tiny else 10),
                  epochs=4 if a.tiny else 100, lr=0.05, batch_size=8 if a.tiny else 32)
    study.run(a.out, progress=not a.tiny)
    eff = study.effects(a.out)
    late = eff[eff.epoch == eff.epoch.max()].pivot_table(index="class_weight", columns="share", values="delta")
    print(late.round(3).to_string())
    print({e["verdict"] for e in study.claims(a.out)})


if __name__ == "__main__":
    main()
