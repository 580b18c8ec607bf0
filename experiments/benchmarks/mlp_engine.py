"""The many-models engine against a bare batched-matmul loop, for the MLP on a CPU.

command:  python experiments/benchmarks/mlp_engine.py [--models 1,7,105] [--hidden 512,128] [--steps 100]
runtime:  not typed here: the benchmark prints what it measured and the hardware it ran on
Both loops train M MLPs (784 inputs, Fashion-MNIST-sized uint8 images, batch 16 per model) with SGD
and momentum: the same gather of each model's batch, normalisation, forward, weighted logistic loss,
backward and update. The bare loop is the least a stacked MLP can do in PyTorch (baddbmm layers,
one shared learning rate, in-place updates); the engine adds its per-model bookkeeping (learning
rates, weight decays, class weights, divergence tracking). Both are timed in the same run,
interleaved, after a warm-up; the ratio (engine throughput / bare throughput) is what to compare.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch
import torch.nn.functional as F

from iwtheory.nets.data import make_task
from iwtheory.nets.readers import ImageData
from iwtheory.nets.engine import EngineSettings, Member, Stack


def task(n: int = 800):
    rng = np.random.default_rng(0)
    y = np.arange(n) % 10
    x = rng.integers(0, 256, size=(n, 1, 28, 28), dtype=np.uint8)
    data = ImageData(x, y, x[:100], y[:100], tuple(f"c{i}" for i in range(10)), "bench")
    return make_task(data, "c2", "c4", noise_count=10)


class Bare:
    """M MLPs as plain tensors: baddbmm layers, autograd, in-place SGD with momentum."""

    def __init__(self, t, M, hidden, lr=0.01, momentum=0.9, batch=16, seed=0):
        g = torch.Generator().manual_seed(seed)
        dims = [784, *hidden, 1]
        self.W = [(torch.randn(M, dims[i], dims[i + 1], generator=g) / dims[i] ** 0.5).requires_grad_()
                  for i in range(len(dims) - 1)]
        self.b = [torch.zeros(M, 1, dims[i + 1], requires_grad=True) for i in range(len(dims) - 1)]
        self.params = self.W + self.b
        self.bufs = [torch.zeros_like(p) for p in self.params]
        self.t, self.M, self.lr, self.mom, self.B = t, M, lr, momentum, batch
        self.wpos = torch.linspace(0.25, 4.0, M)
        self.gen = torch.Generator().manual_seed(seed + 1)

    def step(self, idx):
        x = self.t.normalise(self.t.x_train[idx]).reshape(self.M, self.B, -1)
        y = self.t.y_train[idx]
        h = x
        for i, (W, b) in enumerate(zip(self.W, self.b)):
            h = torch.baddbmm(b, h, W)
            if i < len(self.W) - 1:
                h = F.relu(h)
        c = torch.where(y > 0, self.wpos[:, None], 1.0)
        loss = (c * F.softplus(-y * h[..., 0])).mean(1).sum()
        for p in self.params:
            p.grad = None
        loss.backward()
        with torch.no_grad():
            for p, buf in zip(self.params, self.bufs):
                buf.mul_(self.mom).add_(p.grad)
                p.add_(buf, alpha=-self.lr)


def timed(fn, steps):
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t0) / steps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="1,7,105")
    ap.add_argument("--hidden", default="512,128")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    hidden = tuple(int(h) for h in args.hidden.split(","))
    t = task()
    n = len(t.y_train)
    print(f"# {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} "
          f"threads), MLP 784-{'-'.join(map(str, hidden))}-1, batch 16 per model, {n} training images")
    print("| M | bare ms/step | engine ms/step | engine / bare throughput |")
    print("|---|---|---|---|")
    for M in (int(m) for m in args.models.split(",")):
        members = [Member(float(w), s, 0.01) for s, w in enumerate(np.linspace(0.25, 4.0, M))]
        stack = Stack(members, t, EngineSettings(model="mlp", hidden=hidden, batch_size=16), "cpu")
        bare = Bare(t, M, hidden)
        gen = torch.Generator().manual_seed(0)

        def idx():
            return torch.stack([torch.randperm(n, generator=gen)[:16] for _ in range(M)])

        batches = [idx() for _ in range(8)]
        k = {"i": 0}

        def nxt():
            k["i"] += 1
            return batches[k["i"] % len(batches)]

        for _ in range(5):  # warm-up
            stack.train_step(nxt())
            bare.step(nxt())
        eng, bar = [], []
        for _ in range(args.rounds):  # interleaved, so drift on a shared machine hits both alike
            bar.append(timed(lambda: bare.step(nxt()), args.steps))
            eng.append(timed(lambda: stack.train_step(nxt()), args.steps))
        e, b = min(eng), min(bar)
        print(f"| {M} | {1e3 * b:.2f} | {1e3 * e:.2f} | {b / e:.2f} |")


if __name__ == "__main__":
    main()
