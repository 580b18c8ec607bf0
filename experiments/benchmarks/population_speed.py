"""The generic population (any nn.Module, torch.func) against the hand-written fast path and against the
torch.func ensemble a user would write directly, in training steps per second.

command:  python experiments/benchmarks/population_speed.py [--models 1,30,60] [--steps 40] [--device cpu]
          [--json results/cpu/population_speed.json]
runtime:  not typed here: the benchmark prints what it measured and the hardware it ran on

Three loops train the same M models with SGD and momentum on per-example weighted logistic risk, each on its
own batch of 16 (the study's batch), and are timed interleaved in one run after a warm-up, so the ratios are
what to compare (absolute times drift on a shared machine):
  fast     the engine with the package's own model (``Stack``, model "mlp" or "bl_cnn": the hand-written stacks)
  generic  the engine with the same architecture given as a factory of plain modules (``population``'s
           ``FuncStack``: stack_module_state, functional_call, vmap)
  vmap     a direct torch.func loop: vmap(grad(loss)) over the stacked parameters, then a momentum update per
           tensor (what a user writes from the torch.func ensembling tutorial)
Shapes: the study's MLP (784-128-64-1 on 28 x 28 images) and the B&L CNN (3 x 32 x 32 images; on a CPU at
M = 1 and a few models only, it is slow there).
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, stack_module_state, vmap

from iwtheory.nets.arrays import Task
from iwtheory.nets.engine import EngineSettings, Member, Stack
from iwtheory.nets.models import BLCNN, MLP


def task(shape, n=320, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.normal(size=(n, *shape)).astype(np.float32) + y[:, None, None, None] * 0.5
    return Task(x, y, weights=rng.uniform(0.5, 2.0, n))


def models(kind):
    if kind == "mlp":
        return lambda seed: MLP((1, 28, 28), hidden=(128, 64))
    return lambda seed: BLCNN((3, 32, 32))


class Generic(MLP):
    """The same MLP as a class the engine has no stacked twin for (so it takes the generic path)."""


class GenericCNN(BLCNN):
    """The same CNN, likewise."""


def stack(t, factory, M, device):
    s = EngineSettings(model="custom", batch_size=16, momentum=0.9, n_feature_images=8)
    members = [Member(1.0, k, 0.01, example_weights=t.weights) for k in range(M)]
    return Stack(members, t.tensors(), s, device, factory=factory)


class DirectVmap:
    """A user's own torch.func ensemble: vmap(grad(loss)) and a momentum update on the stacked tensors."""

    def __init__(self, t, factory, M, device):
        self.ms = [factory(k).to(device) for k in range(M)]
        self.params, self.buffers = stack_module_state(self.ms)
        self.params = {k: v.detach() for k, v in self.params.items()}
        self.base = self.ms[0].to("meta")
        self.bufs = {k: torch.zeros_like(v) for k, v in self.params.items()}
        tt = t.tensors().to(device)
        self.x, self.y = tt.normalise(tt.x_train), tt.y_train
        self.c = torch.as_tensor(t.weights, dtype=torch.float32, device=device)
        self.M = M

        def loss(p, b, x, y, c):
            out = functional_call(self.base, (p, b), (x,)).reshape(-1)
            return (c * F.softplus(-y * out)).mean()

        self.g = vmap(grad(loss), in_dims=(0, 0, 0, 0, 0))

    def step(self, idx):
        gs = self.g(self.params, self.buffers, self.x[idx], self.y[idx], self.c[idx])
        for k, p in self.params.items():
            self.bufs[k].mul_(0.9).add_(gs[k])
            p.sub_(0.01 * self.bufs[k])


def time_steps(fn, steps, sync):
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    sync()
    return (time.perf_counter() - t0) / steps


def bench(kind, M, steps, device, reps=5):
    shape = (1, 28, 28) if kind == "mlp" else (3, 32, 32)
    t = task(shape)
    n = len(t.y)
    fast = stack(t, models(kind), M, device)
    generic_cls = Generic if kind == "mlp" else GenericCNN
    gen = stack(t, (lambda s: generic_cls((1, 28, 28), hidden=(128, 64))) if kind == "mlp"
                else (lambda s: generic_cls((3, 32, 32))), M, device)
    assert fast.fast and not gen.fast
    direct = DirectVmap(t, (lambda s: generic_cls((1, 28, 28), hidden=(128, 64))) if kind == "mlp"
                        else (lambda s: generic_cls((3, 32, 32))), M, device)
    rng = torch.Generator().manual_seed(0)
    idx = [torch.randint(0, n, (M, 16), generator=rng).to(device) for _ in range(8)]
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)
    order = {k: itertools.cycle(idx) for k in ("fast", "generic", "vmap")}
    loops = {"fast": lambda: fast.train_step(next(order["fast"])),
             "generic": lambda: gen.train_step(next(order["generic"])),
             "vmap": lambda: direct.step(next(order["vmap"]))}
    for f in loops.values():  # warm-up
        for _ in range(3):
            f()
    best = {k: float("inf") for k in loops}
    for _ in range(reps):  # interleaved: drift hits every loop alike
        for k, f in loops.items():
            best[k] = min(best[k], time_steps(f, steps, sync))
    rate = {k: M / v for k, v in best.items()}  # model-steps per second
    return {"model": kind, "M": M, "steps": steps, "rounds": reps, "model_steps_per_s": rate,
            "generic_over_fast": rate["generic"] / rate["fast"], "generic_over_vmap": rate["generic"] / rate["vmap"]}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="1,30,60", help="stack sizes for the MLP")
    p.add_argument("--cnn-models", default="1,4", help="stack sizes for the B&L CNN")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", default=None, help="write the results here")
    a = p.parse_args(argv)
    hw = {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
          "cpu_threads": torch.get_num_threads(), "torch": torch.__version__, "device": a.device,
          "gpu": torch.cuda.get_device_name() if a.device.startswith("cuda") else None}
    print(f"hardware: {hw}")
    rows = []
    for kind, sizes, steps in (("mlp", a.models, a.steps), ("bl_cnn", a.cnn_models, max(2, a.steps // 10))):
        for M in (int(m) for m in sizes.split(",") if m):
            r = bench(kind, M, steps, a.device)
            rows.append(r)
            s = r["model_steps_per_s"]
            print(f"{kind:>6} M={M:<4} model-steps/s: fast {s['fast']:9.1f}  generic {s['generic']:9.1f}  "
                  f"vmap {s['vmap']:9.1f}  | generic/fast {r['generic_over_fast']:.2f}  "
                  f"generic/vmap {r['generic_over_vmap']:.2f}", flush=True)
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps({"hardware": hw, "results": rows}, indent=1) + "\n")
        print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
