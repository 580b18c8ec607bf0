"""The engine against this machine's limit: matmul and convolution rates, the engine's achieved GFLOP/s, the
loops a user would write, the study end to end, and start-up, all measured in one run.

command:  python experiments/benchmarks/roofline.py [--shapes mlp_study,mlp_wide,cnn] [--rounds 3]
          [--json results/cpu/roofline.json]
runtime:  printed by the benchmark (about 4 minutes on 2 CPU cores)

For each shape (a stack of the study's models on its own task, ``SHAPES``):

- FLOPs are counted from the layers' shapes (forward hooks on one plain model, one image): a training step
  costs B (3 F - F_1) per model (forward, weight gradients, input gradients except the first layer's), an
  evaluation pass N F per model.
- **own-shape rate**: the batched matmuls (MLP) or grouped convolutions (CNN) of one training step on tensors of
  the step's own shapes, each call timed alone (operands in cache: the best case) and, beside it, all of one
  step's calls in the step's order timed together (**in sequence**: each weight fetched from where the rest of
  the step left it); **large**: one large batched matmul and one large convolution.
- **engine**: ``Stack.train_epoch`` in this process (GFLOP/s of its training steps, and their share of both
  own-shape rates), and for an MLP the same stack with the plain update (``Stack.plain_update``: autograd's
  weight gradients, the update after the backward pass) timed between its epochs; ``Stack.evaluate`` beside
  one forward pass of the same images.
- **lean loops**, the same SGD steps on the same task: for an MLP, batched matmuls with a hand-written backward
  and in-place momentum (no autograd); for a CNN, one plain module per model with ``torch.optim.SGD``; for both,
  ``torch.func.vmap`` of ``grad`` over stacked parameters. Ratios are engine time / loop time per step inverted
  (> 1: the engine is faster).
- **end to end**: the real ``iwtheory train`` command at two lengths (start-up cancels in the difference)
  against the fastest lean loop doing the same steps and the same evaluation forward passes at the same
  scheduled epochs, run the same way: a whole process of its own at both lengths, timed from outside, the four
  processes interleaved in each round. The ratio is that of the least times; each round's own ratio is kept
  too, so the spread the machine's noise puts on it is printed beside it.
- **start-up**: time from interpreter start to the first training step of ``iwtheory train`` against
  ``import torch`` alone, both in fresh processes, least of the rounds.

Rounds are interleaved and the least time of each path is used (the machine is shared: absolute times drift,
ratios measured side by side do not).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from iwtheory.nets.engine import Stack
from iwtheory.nets.models import BConv2d, BLinear, make_plain
from iwtheory.runs.config import load_study
from iwtheory.runs.fit import engine_setup
from iwtheory.runs.schedule import train_epochs
from iwtheory.runs.train import TrainConfig, build_task
from study_speed import engine_seconds  # the benchmark beside this one: the real command, timed

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "experiments" / "study_fashion.toml"
# overrides of study_fashion.toml [none], on one draw of the data so that each shape is one stack (the study gives
# each seed its own draw, and so a stack per seed: the scaling benchmark shows what smaller stacks cost)
SHAPES = {
    "mlp_study": ['draws="fixed"'],  # the study's model: 30 MLPs 784-128-64-1, 320 training images
    "mlp_wide": ['draws="fixed"', "hidden=[256,64]", "n_pos=250", "n_neg=250", "weights=[0.0625,0.25,1.0,4.0,16.0]",
                 "seeds=[0,1,2]"],  # 15 MLPs 784-256-64-1, 400 training images
    "cnn": ['draws="fixed"', "model=bl_cnn", "hidden=[]", "width=0.25", "seeds=[0,1,2]"],  # 9 B&L CNNs at width 0.25
}
END_TO_END_EPOCHS = {"mlp_study": (10, 60), "mlp_wide": (10, 60), "cnn": (4, 12)}


def least(fn, rounds: int) -> float:
    """The least wall time of ``rounds`` calls of ``fn`` (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


# ---- FLOPs from shapes ------------------------------------------------------------------

def layer_flops(model: torch.nn.Module, x: torch.Tensor) -> list[float]:
    """Forward FLOPs per image of each conv and linear layer of a plain ``model`` on one image ``x``, in order."""
    out = []

    def hook(m, inp, y):
        if isinstance(m, torch.nn.Conv2d):
            out.append(2.0 * y[0].numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1])
        else:
            out.append(2.0 * m.in_features * m.out_features)
    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (torch.nn.Conv2d,
                                                                                      torch.nn.Linear))]
    with torch.no_grad():
        model.eval()
        model(x)
    for h in hooks:
        h.remove()
    return out


# ---- rates at the step's own shapes, and at a large size -------------------------------------

def step_calls(stack: Stack) -> list[tuple[str, int, object]]:
    """The matmuls or convolutions of one training step of ``stack`` as ATen calls on tensors of the step's own
    shapes, in the order a step makes them: ``(kind, layer, call)`` with kind "forward", "weight grad", "input
    grad" (none for the first layer, as in training) or, for a convolution, "input and weight grad" (one call);
    the forward passes in layer order, then the backward passes from the last layer. No autograd, no bias, no
    activation; outputs preallocated."""
    shapes: list[tuple[torch.nn.Module, torch.Size]] = []
    hooks = [m.register_forward_hook(lambda m, inp, _y: shapes.append((m, inp[0].shape)))
             for m in stack.net.modules() if isinstance(m, (BLinear, BConv2d))]
    idx = torch.arange(stack.s.batch_size).expand(stack.M, -1)
    stack.train_step(idx)  # one step records each layer's input shape
    for h in hooks:
        h.remove()
    for p in stack.params:
        p.grad = None
    forward, backward = [], []
    for i, (m, shape) in enumerate(shapes):
        x = torch.randn(shape, dtype=stack.dtype)
        w = m.weight.detach()
        if isinstance(m, BLinear):
            wt = w.transpose(1, 2)  # (M, in, out), as the forward reads it
            y = torch.bmm(x, wt)
            # outputs preallocated: a fresh 12 MB gradient per call measured the allocator (3x spread between runs)
            gw, gx = torch.empty_like(wt), torch.empty_like(x)
            forward.append(("forward", i, lambda x=x, wt=wt, y=y: torch.bmm(x, wt, out=y)))
            back = [("weight grad", i, lambda x=x, y=y, gw=gw: torch.bmm(x.transpose(1, 2), y, out=gw))]
            if i:
                back.append(("input grad", i, lambda y=y, w=w, gx=gx: torch.bmm(y, w, out=gx)))
        else:
            groups = 1 if x.shape[1] == m.cin else m.M
            y = F.conv2d(x, w, None, m.stride, m.padding, groups=groups)
            # every operand bound now: the calls run after the loop (a free ``m`` would be the last layer)
            forward.append(("forward", i, lambda x=x, w=w, g=groups, m=m: F.conv2d(x, w, None, m.stride,
                                                                                    m.padding, groups=g)))
            # one ATen call gives both gradients, as autograd asks for them (no input gradient for the first)
            mask = [i > 0, True, False]
            back = [("input and weight grad" if i else "weight grad", i,
                     lambda x=x, y=y, w=w, g=groups, m=m, mask=mask: torch.ops.aten.convolution_backward(
                         y, x, w, None, list(m.stride), list(m.padding), [1, 1], False, [0, 0], g, mask))]
        backward.append(back)
    return forward + [c for back in reversed(backward) for c in back]


def own_shape_seconds(stack: Stack, rounds: int) -> dict:
    """Seconds of the calls of one training step (``step_calls``): the machine's rate at these shapes.

    ``alone``: each call timed by itself, ten at a time (its operands stay in cache: the best case);
    ``sequence``: all of one step's calls in the step's order timed together, so each layer's weights and
    gradient are fetched from wherever the rest of the step left them, as in training."""
    calls = [c for _, _, c in step_calls(stack)]
    # a call takes 0.1 ms: timed ten at a time, least of many, so the timer and noise fade
    alone = sum(least(lambda c=c: [c() for _ in range(10)], rounds * 10) / 10 for c in calls)
    sequence = least(lambda: [c() for c in calls], rounds * 10)
    return {"alone": alone, "sequence": sequence}


def large_rates(rounds: int) -> dict:
    """GFLOP/s of one large batched matmul and one large convolution (forward)."""
    a, b = torch.randn(8, 1024, 1024), torch.randn(8, 1024, 1024)
    mm = 2.0 * 8 * 1024 ** 3 / least(lambda: torch.bmm(a, b), rounds) / 1e9
    x, w = torch.randn(32, 64, 56, 56), torch.randn(64, 64, 3, 3)
    conv_flops = 2.0 * 32 * 64 * 54 * 54 * 64 * 9
    conv = conv_flops / least(lambda: F.conv2d(x, w), rounds) / 1e9
    return {"bmm_8x1024": mm, "conv_64x56x56": conv}


# ---- lean loops ----------------------------------------------------------------------------

class LeanMLP:
    """Batched matmuls with a hand-written backward and in-place momentum, the study's logistic loss."""

    def __init__(self, stack: Stack, dims: list[int], seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.M, self.stack = stack.M, stack
        self.W = [torch.randn(self.M, a, b, generator=g) / a ** 0.5 for a, b in zip(dims, dims[1:])]
        self.b = [torch.zeros(self.M, 1, b) for b in dims[1:]]
        self.v = [torch.zeros_like(p) for p in self.W + self.b]
        self.x = stack.x_train.reshape(len(stack.task.y_train), -1)
        self.x_eval = stack.x_eval.reshape(len(stack.x_eval), -1)
        self.gens = [torch.Generator().manual_seed(s) for s in range(self.M)]

    def forward(self, h):
        zs, hs = [], [h]
        for i, (w, b) in enumerate(zip(self.W, self.b)):
            z = torch.baddbmm(b, hs[-1], w)
            zs.append(z)
            if i < len(self.W) - 1:
                hs.append(F.relu(z))
        return zs, hs

    def epoch(self) -> None:
        st = self.stack
        n, B, lr, mom = len(st.task.y_train), st.s.batch_size, st.members[0].lr, st.s.momentum
        perms = torch.stack([torch.randperm(n, generator=g) for g in self.gens])
        for k in range(n // B):
            idx = perms[:, k * B:(k + 1) * B]
            zs, hs = self.forward(self.x[idx])
            y, c = st.task.y_train[idx], st.c_train.gather(1, idx)
            d = (-y * c * torch.sigmoid(-y * zs[-1][..., 0]) / B)[..., None]
            grads = [None] * (2 * len(self.W))
            for i in range(len(self.W) - 1, -1, -1):
                grads[i] = torch.bmm(hs[i].transpose(1, 2), d)
                grads[len(self.W) + i] = d.sum(1, keepdim=True)
                if i:
                    d = torch.bmm(d, self.W[i].transpose(1, 2)).mul_(zs[i - 1] > 0)
            for p, v, g in zip(self.W + self.b, self.v, grads):
                v.mul_(mom).add_(g)
                p.add_(v, alpha=-lr)

    def evaluate(self) -> None:
        with torch.no_grad():
            zs, _ = self.forward(self.x_eval.expand(self.M, -1, -1))
            parts = torch.split(zs[-1][..., 0] > 0, self.stack.eval_sizes, dim=1)
            torch.stack([p.float().mean(1) for p in parts if p.shape[1]]).numpy().tolist()


class PlainLoop:
    """One plain module per model, torch.optim.SGD with momentum, the weighted logistic risk."""

    def __init__(self, stack: Stack, settings):
        self.stack = stack
        self.models = [make_plain(settings.model, stack.task.shape, seed=m.seed, hidden=settings.hidden,
                                  width=settings.width) for m in stack.members]
        self.opts = [torch.optim.SGD(m.parameters(), lr=mem.lr, momentum=settings.momentum)
                     for m, mem in zip(self.models, stack.members)]
        self.gens = [torch.Generator().manual_seed(s) for s in range(stack.M)]

    def epoch(self) -> None:
        st = self.stack
        n, B = len(st.task.y_train), st.s.batch_size
        for m, (model, opt, g) in enumerate(zip(self.models, self.opts, self.gens)):
            model.train()
            perm = torch.randperm(n, generator=g)
            for k in range(n // B):
                idx = perm[k * B:(k + 1) * B]
                y = st.task.y_train[idx]
                loss = (st.c_train[m, idx] * F.softplus(-y * model(st.x_train[idx]))).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

    def evaluate(self) -> None:
        with torch.no_grad():
            for model in self.models:
                model.eval()
                out = torch.cat([model(self.stack.x_eval[i:i + 100]) for i in range(0, len(self.stack.x_eval), 100)])
                torch.split(out > 0, self.stack.eval_sizes)


class VmapLoop:
    """torch.func: stacked parameters, vmap of grad of a functional call, momentum with foreach ops."""

    def __init__(self, stack: Stack, settings):
        from torch.func import functional_call, grad, stack_module_state, vmap

        self.stack = stack
        models = [make_plain(settings.model, stack.task.shape, seed=m.seed, hidden=settings.hidden,
                             width=settings.width) for m in stack.members]
        params, _ = stack_module_state(models)
        self.params = {k: v.detach() for k, v in params.items()}  # plain tensors: the update is in place
        self.names = list(self.params)
        self.v = [torch.zeros_like(p) for p in self.params.values()]
        base = models[0].to("meta")
        self.lr, self.mom = stack.members[0].lr, settings.momentum

        def risk(params, x, y, c):
            return (c * F.softplus(-y * functional_call(base, params, (x,)))).mean()
        self.step_grad = vmap(grad(risk))
        self.fwd = vmap(lambda p, x: functional_call(base, p, (x,)), in_dims=(0, None))
        self.gens = [torch.Generator().manual_seed(s) for s in range(stack.M)]

    def epoch(self) -> None:
        st = self.stack
        n, B = len(st.task.y_train), st.s.batch_size
        perms = torch.stack([torch.randperm(n, generator=g) for g in self.gens])
        for k in range(n // B):
            idx = perms[:, k * B:(k + 1) * B]
            g = self.step_grad(self.params, st.x_train[idx], st.task.y_train[idx], st.c_train.gather(1, idx))
            grads = [g[k] for k in self.names]
            ps = list(self.params.values())
            torch._foreach_mul_(self.v, self.mom)
            torch._foreach_add_(self.v, grads)
            torch._foreach_add_(ps, self.v, alpha=-self.lr)

    def evaluate(self) -> None:
        with torch.no_grad():
            for i in range(0, len(self.stack.x_eval), 100):
                self.fwd(self.params, self.stack.x_eval[i:i + 100])


# ---- end to end and start-up ------------------------------------------------------------------

FIRST_STEP = """
import os, sys, time
t0 = time.perf_counter()
import iwtheory.nets.engine as engine
def first(self):
    print(f"{time.perf_counter() - t0:.6f}", flush=True)
    os._exit(0)
engine.Stack.train_epoch = first
from iwtheory import cli
sys.argv = ["iwtheory", "train", sys.argv[1], "--regime", "none", "--out", sys.argv[2], "--no-progress"]
cli.main()
"""
IMPORT_TORCH = "import time; t0 = time.perf_counter(); import torch; print(f'{time.perf_counter() - t0:.6f}')"


def startup(rounds: int) -> dict:
    """Seconds from interpreter start to the first training step of `train`, and to the end of `import torch`."""
    first, torch_only = [], []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as out:
            r = subprocess.run([sys.executable, "-c", FIRST_STEP, str(CONFIG), out], capture_output=True, text=True,
                               cwd=ROOT, check=True)
            first.append(float(r.stdout.strip().splitlines()[-1]))
        r = subprocess.run([sys.executable, "-c", IMPORT_TORCH], capture_output=True, text=True, check=True)
        torch_only.append(float(r.stdout.strip()))
    return {"first_step_s": min(first), "import_torch_s": min(torch_only), "over_torch_s": min(first) - min(torch_only)}


def describe(settings, task) -> str:
    """The architecture in words: MLP widths, or the CNN's width factor and channels."""
    if settings.model == "mlp":
        return "MLP " + "-".join(map(str, [task.x_train[0].numel(), *settings.hidden, 1]))
    from iwtheory.nets.models import blcnn_widths

    convs, fcs = blcnn_widths(settings.width)
    return f"B&L CNN x{settings.width:g} ({'-'.join(map(str, convs))}, FC {'-'.join(map(str, fcs))})"


# ---- one shape ------------------------------------------------------------------------------

def build(name: str):
    """The config, engine settings and stack of shape ``name``: what every path of the benchmark trains."""
    (cfg,) = load_study(CONFIG, TrainConfig, regimes=["none"], overrides=SHAPES[name])
    task = build_task(cfg)
    settings, members = engine_setup(cfg, cfg.cells(), task)
    return cfg, settings, Stack(members, task, settings, "cpu")


def lean_loop_of(kind: str, cfg, settings, stack: Stack):
    """The lean loop ``kind`` ("batched matmuls", "plain modules" or "torch.func vmap") over ``stack``'s task."""
    if kind == "batched matmuls":
        return LeanMLP(stack, [stack.task.x_train[0].numel(), *cfg.hidden_widths, 1])
    return (PlainLoop if kind == "plain modules" else VmapLoop)(stack, settings)


def measure(name: str, rounds: int, end_to_end: bool) -> dict:
    overrides = SHAPES[name]
    cfg, settings, stack = build(name)
    task = stack.task
    M, B, n = stack.M, settings.batch_size, len(task.y_train)
    steps = n // B
    plain = make_plain(settings.model, task.shape, hidden=settings.hidden, width=settings.width)
    per_layer = layer_flops(plain, stack.x_train[:1])
    F_img = sum(per_layer)
    step_flops = M * B * (3 * F_img - per_layer[0])
    eval_flops = M * len(stack.x_eval) * F_img

    own_both = own_shape_seconds(stack, rounds)
    own = own_both["alone"]
    engine_epoch = least(stack.train_epoch, rounds)
    # the same stack with autograd's own weight gradients and the update after the backward pass (an MLP's
    # step fuses them: Stack.plain_update undoes it); its epochs timed between the engine's own
    plain_epoch = None
    if any(stack.fused):
        _, _, unfused = build(name)
        unfused.plain_update()
        both = [(least(stack.train_epoch, 1), least(unfused.train_epoch, 1)) for _ in range(rounds)]
        engine_epoch = min(engine_epoch, *(f for f, _ in both))
        plain_epoch = min(p for _, p in both)
    engine_eval = least(stack.evaluate, rounds)
    kinds = ("batched matmuls" if settings.model == "mlp" else "plain modules", "torch.func vmap")
    loops = {k: lean_loop_of(k, cfg, settings, stack) for k in kinds}
    loop_epoch = {k: least(v.epoch, rounds) for k, v in loops.items()}
    loop_eval = {k: least(v.evaluate, rounds) for k, v in loops.items()}
    lean = min(loop_epoch, key=loop_epoch.get)
    res = {
        "models": M, "batch": B, "train_images": n, "eval_images": len(stack.x_eval),
        "params_per_model": sum(p.numel() for p in plain.parameters()),
        "layers": describe(settings, task),
        "gflop_per_step": step_flops / 1e9, "gflop_per_eval": eval_flops / 1e9,
        "own_shape_gflops": step_flops / own / 1e9,
        "own_shape_sequence_gflops": step_flops / own_both["sequence"] / 1e9,
        "engine_train_gflops": step_flops * steps / engine_epoch / 1e9,
        "engine_ms_per_step": 1e3 * engine_epoch / steps,
        "plain_update_ms_per_step": None if plain_epoch is None else 1e3 * plain_epoch / steps,
        "fused_over_plain": None if plain_epoch is None else plain_epoch / engine_epoch,
        "engine_eval_s": engine_eval,
        "loops_ms_per_step": {k: 1e3 * v / steps for k, v in loop_epoch.items()},
        "loops_eval_s": loop_eval,
        "engine_over_loops": {k: v / engine_epoch for k, v in loop_epoch.items()},
        "lean_loop": lean,
    }
    # the SGD update touches every parameter (gradient read, momentum read and written, weights read and
    # written): memory-bound, it is the step's other roof; timed alone at the stack's own parameter shapes
    ps = [p.detach().clone() for p in stack.params]
    gs, bs = [torch.randn_like(p) for p in ps], [torch.zeros_like(p) for p in ps]

    def update():
        for p, g, b in zip(ps, gs, bs):
            torch.add(g, b, alpha=settings.momentum, out=b)
            p.add_(b, alpha=-1e-9)
    res["update_ms_alone"] = 1e3 * least(update, rounds * 5)
    res["roof_ms_per_step"] = 1e3 * own + res["update_ms_alone"]
    res["engine_share_of_roof"] = res["roof_ms_per_step"] / res["engine_ms_per_step"]
    res["engine_share_of_own_shape"] = res["engine_train_gflops"] / res["own_shape_gflops"]
    res["engine_share_of_sequence"] = res["engine_train_gflops"] / res["own_shape_sequence_gflops"]
    res["lean_share_of_own_shape"] = step_flops * steps / loop_epoch[lean] / 1e9 / res["own_shape_gflops"]
    if end_to_end:
        short, long = END_TO_END_EPOCHS[name]
        evals = {e: len(train_epochs({**cfg.cells()[0], "epochs": e})[0]) for e in (short, long)}
        eng: dict[int, list[float]] = {short: [], long: []}
        lean_s: dict[int, list[float]] = {short: [], long: []}
        for _ in range(max(1, rounds - 1)):  # interleaved, so that a noisy minute falls on both paths
            for e in (short, long):
                eng[e].append(engine_seconds(CONFIG, "none", e, overrides))
                lean_s[e].append(lean_seconds(name, lean, e))
        per_round = [(ls_l - ls_s) / (en_l - en_s)
                     for ls_s, ls_l, en_s, en_l in zip(lean_s[short], lean_s[long], eng[short], eng[long])]
        res["end_to_end"] = {"epochs": [short, long], "evaluations": [evals[short], evals[long]],
                             "engine_s": [min(eng[short]), min(eng[long])],
                             "lean_s": [min(lean_s[short]), min(lean_s[long])],
                             "ratio": (min(lean_s[long]) - min(lean_s[short])) / (min(eng[long]) - min(eng[short])),
                             "ratio_per_round": per_round}
    return res


def lean_loop(name: str, kind: str):
    """The config of shape ``name`` and its lean loop ``kind``, built as ``measure`` builds them."""
    cfg, settings, stack = build(name)
    return cfg, lean_loop_of(kind, cfg, settings, stack)


def run_lean(name: str, kind: str, epochs: int) -> None:
    """The lean loop as a program of its own: ``epochs`` epochs, evaluating at the epochs the study's schedule
    evaluates (``train_epochs``), as the real command does."""
    cfg, loop = lean_loop(name, kind)
    evals = set(train_epochs({**cfg.cells()[0], "epochs": epochs})[0])
    if 0 in evals:
        loop.evaluate()
    for e in range(1, epochs + 1):
        loop.epoch()
        if e in evals:
            loop.evaluate()


def lean_seconds(name: str, kind: str, epochs: int) -> float:
    """Wall time of the lean loop's own process for ``epochs`` epochs, timed from outside as the command is."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--lean-run", name, kind, str(epochs)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def hardware() -> dict:
    return {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "threads": torch.get_num_threads(), "python": platform.python_version(),
            "torch": torch.__version__, "numpy": np.__version__}


def fused(r: dict) -> str:
    """The fused step's speed against the plain update's, or "-" where the stack has no fused layer."""
    return "-" if r.get("fused_over_plain") is None else f"{r['fused_over_plain']:.2f}"


def table(results: dict) -> str:
    lines = ["| shape | models | own-shape GFLOP/s (alone, in sequence) | engine GFLOP/s | engine / own (alone, "
             "in sequence) | lean / own (alone) | roof ms/step "
             "(matmuls + update, each alone) | engine ms/step | engine / roof | fused vs plain update (x faster) | "
             "engine vs loops (x faster) | end to end (lean / engine time) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        loops = ", ".join(f"{k} {v:.2f}" for k, v in r["engine_over_loops"].items())
        e2e = "-"
        if "end_to_end" in r:
            spread = r["end_to_end"].get("ratio_per_round") or []
            e2e = f"{r['end_to_end']['ratio']:.2f}" + (f" (rounds {min(spread):.2f}-{max(spread):.2f})"
                                                       if len(spread) > 1 else "")
        lines.append(f"| {name} ({r['layers']}) | {r['models']} | {r['own_shape_gflops']:.1f}, "
                     f"{r['own_shape_sequence_gflops']:.1f} | {r['engine_train_gflops']:.1f} | "
                     f"{r['engine_share_of_own_shape']:.2f}, {r['engine_share_of_sequence']:.2f} | "
                     f"{r['lean_share_of_own_shape']:.2f} | {r['roof_ms_per_step']:.2f} | "
                     f"{r['engine_ms_per_step']:.2f} | {r['engine_share_of_roof']:.2f} | {fused(r)} | {loops} | "
                     f"{e2e} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-end-to-end", action="store_true", help="skip the `iwtheory train` commands")
    ap.add_argument("--json", default=None, help="also write the measurements here (the README reads "
                                                 "results/cpu/roofline.json)")
    ap.add_argument("--lean-run", nargs=3, metavar=("SHAPE", "LOOP", "EPOCHS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    if args.lean_run:  # one lean process of the end-to-end comparison
        run_lean(args.lean_run[0], args.lean_run[1], int(args.lean_run[2]))
        return
    t0 = time.perf_counter()
    shapes = [s for s in args.shapes.split(",") if s]
    unknown = sorted(set(shapes) - set(SHAPES))
    if unknown:
        ap.error(f"unknown shapes {unknown}; choose from {sorted(SHAPES)}")
    large = large_rates(args.rounds)
    out = {"hardware": hardware(), "rounds": args.rounds, "large_gflops": large,
           "shapes": {s: measure(s, args.rounds, not args.no_end_to_end) for s in shapes},
           "startup": startup(args.rounds)}
    out["seconds"] = time.perf_counter() - t0
    hw = out["hardware"]
    print(f"{hw['processor']}, {hw['cpus']} CPUs, {hw['threads']} threads, torch {hw['torch']}")
    print("large batched matmul {bmm_8x1024:.1f} GFLOP/s, large convolution {conv_64x56x56:.1f} GFLOP/s".format(
        **out["large_gflops"]))
    print(table(out["shapes"]))
    s = out["startup"]
    print(f"start-up: first training step at {s['first_step_s']:.2f} s, import torch {s['import_torch_s']:.2f} s "
          f"(+{s['over_torch_s']:.2f} s)")
    print(f"benchmark took {out['seconds']:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
