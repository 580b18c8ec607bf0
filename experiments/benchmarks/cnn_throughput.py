"""CNN training throughput: model-epochs per second, plain DataLoader loop vs the stacked engine.

command:  python experiments/benchmarks/cnn_throughput.py [--device cuda] [--models 1,27,108]
          [--precisions fp32,tf32,bf16] [--steps 30] [--json OUT.json] [--train-images N] [--width 0.25]
          (the CPU arm's width: --width 0.25 --models 1,10 --precisions fp32 --train-images 320 --steps 40)
runtime:  not typed here: the benchmark prints what it measured and the hardware it ran on
Random 32x32 RGB images (10,000 = the cat-vs-dog training set), the B&L CNN, batch 16 per model
(625 steps per epoch). Steps are timed after a warm-up (CUDA events on a GPU) and projected to
an epoch; evaluation (every model on ~11,000 probe images; the plain loop's model on the same images) is
timed once and charged to both paths at the rate of the paper schedule (every epoch to 20, then 30 log-spaced
evaluations to 500 epochs). ``--width`` sets the B&L CNN's width factor (the CPU arm trains 0.25). On a CPU the
machine's convolution rate is measured in the same run (a large convolution, forward, timed alone), and the
engine's achieved rate is given as a share of it; on a GPU, as a share of the card's datasheet peak.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from iwtheory.nets.data import make_task, synthetic_images
from iwtheory.nets.models import BLCNN
from iwtheory.nets.engine import EngineSettings, Member, Stack
from iwtheory.runs.schedule import log_epochs

N_TRAIN, BATCH, EPOCHS = 10_000, 16, 500
# Dense peak TFLOP/s by precision for the cards this project meets (vendor datasheets, SXM parts).
PEAKS = {"H100": {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4}, "H200": {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4}}


def train_flops_per_image(in_shape=(3, 32, 32), width: float = 1.0) -> float:
    """3x the forward multiply-adds x 2 (forward, input grads, weight grads), counted from layer shapes."""
    model, macs = BLCNN(in_shape, width=width), []

    def hook(mod, inp, out):
        if isinstance(mod, nn.Conv2d):
            macs.append(out[0].numel() * mod.in_channels * mod.kernel_size[0] * mod.kernel_size[1] // mod.groups)
        elif isinstance(mod, nn.Linear):
            macs.append(mod.in_features * mod.out_features)

    for m in model.modules():
        m.register_forward_hook(hook)
    model(torch.zeros(1, *in_shape))
    return 3 * 2 * float(sum(macs))


class Timer:
    def __init__(self, device):
        self.cuda = device.type == "cuda"

    def __enter__(self):
        if self.cuda:
            self.a, self.b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            self.a.record()
        else:
            self.t = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            self.b.record()
            torch.cuda.synchronize()
            self.s = self.a.elapsed_time(self.b) / 1e3
        else:
            self.s = time.perf_counter() - self.t


def conv_peak_tflops(device, rounds: int = 5) -> float:
    """This machine's rate on one large convolution (64 images, 64 to 64 channels, 32x32, 3x3), forward, timed
    alone: the roof a CNN step's convolutions can reach here."""
    x = torch.randn(64, 64, 32, 32, device=device)
    w = torch.randn(64, 64, 3, 3, device=device)
    flops = 2 * 64 * 64 * 64 * 30 * 30 * 9
    F.conv2d(x, w)
    best = float("inf")
    for _ in range(rounds):
        with Timer(device) as t:
            F.conv2d(x, w)
        best = min(best, t.s)
    return flops / best / 1e12


def dataloader_baseline(task, device, steps, width: float = 1.0) -> float:
    """Seconds per step of one nn.Module fed by a DataLoader: how public reproductions train."""
    x = task.normalise(task.x_train)
    ds = torch.utils.data.TensorDataset(x, task.y_train)
    workers = 4 if device.type == "cuda" else 0
    dl = torch.utils.data.DataLoader(ds, batch_size=BATCH, shuffle=True, num_workers=workers, drop_last=True,
                                     pin_memory=device.type == "cuda", persistent_workers=workers > 0)
    model = BLCNN(task.shape, width=width).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    it = iter(dl)

    def step():
        nonlocal it
        try:
            xb, yb = next(it)
        except StopIteration:
            it = iter(dl)
            xb, yb = next(it)
        xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        loss = (torch.where(yb > 0, 4.0, 1.0) * F.softplus(-yb * model(xb))).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(5):
        step()
    with Timer(device) as t:
        for _ in range(steps):
            step()
    return t.s / steps, model


def plain_evaluation(model, task, device) -> float:
    """Seconds for one nn.Module to go through every image the engine's evaluate() reads (train, validation,
    test, other classes, noise), in chunks of 500 with no gradient: the same work charged to both paths."""
    parts = [task.x_train, task.x_val, task.x_test, task.x_other, task.x_noise]
    x = torch.cat(parts)
    model.eval()
    with Timer(device) as t, torch.no_grad():
        for i in range(0, len(x), 500):
            (model(task.normalise(x[i:i + 500]).to(device)) > 0).float().mean().item()
    model.train()
    return t.s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--models", default=None, help="comma-separated M values")
    ap.add_argument("--precisions", default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--json", default=None, help="also write the measurements to this JSON file")
    ap.add_argument("--train-images", type=int, default=N_TRAIN, help="training images (default: CIFAR's 10,000)")
    ap.add_argument("--width", type=float, default=1.0, help="the B&L CNN's width factor (the CPU arm's: 0.25)")
    args = ap.parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    models = [int(m) for m in (args.models or ("1,27,108" if gpu else "1,9")).split(",")]
    precisions = (args.precisions or ("fp32,tf32,bf16" if gpu else "fp32,bf16")).split(",")
    steps = args.steps or (50 if gpu else 10)
    name = torch.cuda.get_device_name(device) if gpu else f"{platform.processor() or platform.machine()} CPU"
    peak = next((v for k, v in PEAKS.items() if k in name), None)
    conv_peak = None if gpu else conv_peak_tflops(device)  # measured here, in this run
    print(f"device: {name}; torch {torch.__version__}; {torch.get_num_threads()} CPU threads; "
          f"timed steps per configuration: {steps}")

    # CIFAR-10's split sizes: 5,000 cat + 5,000 dog training images; 2,000 task test, 8,000 other, 1,000 noise
    n_train = args.train_images
    images = synthetic_images(n_train=5 * n_train, n_test=min(10_000, 5 * n_train), shape=(3, 32, 32), seed=0)
    task = make_task(images, noise_count=min(1000, n_train // 10), max_other=min(8000, 4 * n_train))
    assert len(task.y_train) == n_train
    probe = len(task.y_train) + len(task.y_test) + len(task.x_other) + len(task.x_noise)
    steps_per_epoch = n_train // BATCH
    evals_per_epoch = len(log_epochs(EPOCHS, 20, 30)) / EPOCHS
    fpi = train_flops_per_image(width=args.width)
    print(f"B&L CNN: {fpi / 1e6:.0f} MFLOP per training image; {steps_per_epoch} steps per epoch; "
          f"evaluation on {probe} images, {evals_per_epoch:.3f} evaluations per epoch on the paper schedule")

    base, plain_model = dataloader_baseline(task, device, steps, args.width)
    base_eval = plain_evaluation(plain_model, task, device)
    base_rate = 1.0 / (base * steps_per_epoch + base_eval * evals_per_epoch)
    print(f"{'plain loop + DataLoader, M=1, fp32':45s} {base * 1e3:8.1f} ms/step  {base_rate:8.3f} model-epochs/s  "
          f"eval {base_eval:.2f} s")
    rows = []
    for prec in precisions:
        for M in models:
            s = EngineSettings(batch_size=BATCH, precision=prec, channels_last=args.channels_last,
                               compile=args.compile, width=args.width)  # evaluation chunks sized by the engine
            members = [Member(2.0 ** (k % 9 - 4), k, 1e-3) for k in range(M)]
            stack = Stack(members, task, s, device)
            n = len(task.y_train)
            need = BATCH * (steps + 3)  # more steps than an epoch holds: epochs of fresh permutations, end to end
            idx = torch.stack([torch.cat([torch.randperm(n, generator=g) for _ in range(-(-need // n))])[:need]
                               for g in stack.order_gens]).to(device)
            for k in range(3):
                stack.train_step(idx[:, k * BATCH:(k + 1) * BATCH])
            with Timer(device) as t:
                for k in range(3, steps + 3):
                    stack.train_step(idx[:, k * BATCH:(k + 1) * BATCH])
            step_s = t.s / steps
            with Timer(device) as te:
                stack.evaluate()
            epoch_s = step_s * steps_per_epoch + te.s * evals_per_epoch
            rate = M / epoch_s
            tflops = fpi * BATCH * M / step_s / 1e12
            share = f"{100 * tflops / peak[prec]:.1f}% of peak" if peak else \
                f"{100 * tflops / conv_peak:.0f}% of this machine's convolution rate" if conv_peak else "peak n/a"
            study_h = 108 * EPOCHS / rate / 3600
            rows.append({"precision": prec, "models": M, "ms_per_step": 1e3 * step_s, "model_epochs_per_s": rate,
                         "ratio_vs_plain": rate / base_rate, "tflops": tflops,
                         "share_of_peak": tflops / peak[prec] if peak else None,
                         "share_of_conv_rate": tflops / conv_peak if conv_peak else None, "eval_s": te.s,
                         "study_hours_108x500": study_h})
            print(f"{f'engine M={M}, {prec}':45s} {step_s * 1e3:8.1f} ms/step  {rate:8.3f} model-epochs/s  "
                  f"x{rate / base_rate:6.1f} vs plain  {tflops:7.2f} TFLOP/s ({share})  eval {te.s:.2f} s  "
                  f"108x{EPOCHS}-epoch study: {study_h:.1f} h")
            del stack
            if gpu:
                torch.cuda.empty_cache()
    # the parameter count of each width factor on both tasks' inputs (the README states them from here)
    params = {f"{w:g}": {name: sum(p.numel() for p in BLCNN(shape, width=w).parameters())
                         for name, shape in (("fashion 1x28x28", (1, 28, 28)), ("cifar 3x32x32", (3, 32, 32)))}
              for w in (0.125, 0.25, 0.5, 1.0)}
    print("parameters by width:", params)
    if args.json:
        import json

        Path(args.json).write_text(json.dumps({
            "device": name, "torch": torch.__version__, "cpu_threads": torch.get_num_threads(), "steps": steps,
            "channels_last": args.channels_last, "compile": args.compile, "width": args.width,
            "conv_rate_tflops": conv_peak, "params_by_width": params,
            "train_images": n_train, "steps_per_epoch": steps_per_epoch, "evaluations_per_epoch": evals_per_epoch,
            "plain_loop": {"ms_per_step": 1e3 * base, "model_epochs_per_s": base_rate, "eval_s": base_eval},
            "engine": rows}, indent=1))


if __name__ == "__main__":
    main()
