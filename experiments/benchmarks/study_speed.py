"""The study end to end (`iwtheory train`, one regime) against a bare loop doing the same work.

command:  python experiments/benchmarks/study_speed.py [--config experiments/study_fashion.toml]
          [--regime none] [--epochs 10,60] [--rounds 2]
runtime:  printed by the benchmark (two rounds of 10- and 60-epoch runs of both paths)

The engine path is the real command, `python -m iwtheory train CONFIG --regime R --set epochs=E`, in a
subprocess with an empty --out: it reads the data, trains every model of the regime in one stack,
evaluates at the regime's schedule, records metrics, features and checkpoints. The bare loop trains the
same models (same task, widths, class weights, optimiser, batch size, steps per epoch) as plain tensors with
baddbmm layers and in-place SGD, and at the same scheduled epochs runs the same evaluation images through
every model and brings the per-model statistics to the host; it writes nothing. Each path is timed at a short
and a long run, and the throughput is taken from the difference, so start-up (imports, data, process)
cancels; rounds are interleaved, and the least time of each is used. The ratio reported is
bare time / engine time for the extra epochs: 1.0 means the study runs at the bare loop's speed.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from iwtheory.runs.config import load_study
from iwtheory.runs.schedule import train_epochs
from iwtheory.runs.train import TrainConfig, build_task, class_weight_pair

ROOT = Path(__file__).resolve().parents[2]


def engine_seconds(config: Path, regime: str, epochs: int, overrides: list[str] = ()) -> float:
    """Wall time of the real command for ``epochs`` epochs into a fresh records folder (``overrides``: more
    ``--set`` settings)."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "iwtheory", "train", str(config), "--regime", regime, "--set",
               f"epochs={epochs}", "--out", out, "--no-progress"]
        for o in overrides:
            cmd += ["--set", o]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        return time.perf_counter() - t0


class Bare:
    """The regime's models as plain tensors; ``run(epochs)`` trains and evaluates on the same schedule."""

    def __init__(self, cfg: TrainConfig):
        self.cfg, self.t = cfg, build_task(cfg)
        cells = cfg.cells()
        self.M = len(cells)
        widths = list(cfg.hidden_widths or (512, 128))
        self.x = self.t.normalise(self.t.x_train).reshape(len(self.t.y_train), -1)
        parts = [self.t.x_train, self.t.x_val, self.t.x_test, self.t.x_other, self.t.x_noise]
        self.sizes = [len(p) for p in parts]
        self.x_eval = self.t.normalise(torch.cat(parts)).reshape(sum(self.sizes), -1)
        self.dims = [self.x.shape[1], *widths, 1]
        pairs = [class_weight_pair(c["weight"], self.t, cfg.weight_norm) for c in cells]
        self.wpos = torch.tensor([p[0] for p in pairs])
        self.wneg = torch.tensor([p[1] for p in pairs])
        self.seeds = [c["seed"] for c in cells]

    def run(self, epochs: int) -> float:
        g = torch.Generator().manual_seed(0)
        W = [(torch.randn(self.M, a, b, generator=g) / a ** 0.5).requires_grad_() for a, b in
             zip(self.dims, self.dims[1:])]
        bs = [torch.zeros(self.M, 1, b, requires_grad=True) for b in self.dims[1:]]
        params = W + bs
        bufs = [torch.zeros_like(p) for p in params]
        gens = [torch.Generator().manual_seed(s + 10**6) for s in self.seeds]
        n, B = len(self.t.y_train), self.cfg.batch_size
        evals = set(train_epochs({**self.cfg.cells()[0], "epochs": epochs})[0])

        def forward(h):
            for i, (w, b) in enumerate(zip(W, bs)):
                h = torch.baddbmm(b, h, w)
                if i < len(W) - 1:
                    h = F.relu(h)
            return h[..., 0]

        t0 = time.perf_counter()
        for e in range(1, epochs + 1):
            perms = torch.stack([torch.randperm(n, generator=gg) for gg in gens])
            for k in range(n // B):
                idx = perms[:, k * B:(k + 1) * B]
                y = self.t.y_train[idx]
                c = torch.where(y > 0, self.wpos[:, None], self.wneg[:, None])
                loss = (c * F.softplus(-y * forward(self.x[idx]))).mean(1).sum()
                for p in params:
                    p.grad = None
                loss.backward()
                with torch.no_grad():
                    for p, buf in zip(params, bufs):
                        buf.mul_(self.cfg.momentum).add_(p.grad)
                        p.add_(buf, alpha=-self.cfg.lrs[0])
            if e in evals:
                with torch.no_grad():
                    logits = forward(self.x_eval.expand(self.M, -1, -1))
                    parts = torch.split(logits > 0, self.sizes, dim=1)
                    stats = torch.stack([p.float().mean(1) for p in parts if p.shape[1]])
                    stats.numpy().tolist()
        return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default=str(ROOT / "experiments" / "study_fashion.toml"))
    ap.add_argument("--regime", default="none")
    ap.add_argument("--epochs", default="10,60")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", default=None, help="also write the measurements here (results/cpu/study_speed.json "
                                                 "is what the README's performance section reads)")
    args = ap.parse_args()
    short, long = (int(e) for e in args.epochs.split(","))
    config = Path(args.config).resolve()
    one_draw = ['draws="fixed"']  # one stack of the regime's models, as the bare loop trains them
    (cfg,) = load_study(config, TrainConfig, regimes=[args.regime], overrides=one_draw)
    bare = Bare(cfg)
    print(f"# {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads); {config.name} [{args.regime}]: {bare.M} models "
          f"{'-'.join(map(str, bare.dims))}, {len(bare.t.y_train)} training images, batch {cfg.batch_size}, "
          f"evaluation images {sum(bare.sizes)}")
    times = {("engine", short): [], ("engine", long): [], ("bare", short): [], ("bare", long): []}
    t_start = time.perf_counter()
    for _ in range(args.rounds):  # interleaved, so drift on a shared machine hits both paths alike
        for e in (short, long):
            times[("bare", e)].append(bare.run(e))
            times[("engine", e)].append(engine_seconds(config, args.regime, e, one_draw))
    best = {k: min(v) for k, v in times.items()}
    d_engine, d_bare = best[("engine", long)] - best[("engine", short)], best[("bare", long)] - best[("bare", short)]
    steps = (long - short) * (len(bare.t.y_train) // cfg.batch_size) * bare.M
    print("| path | {0} epochs (s) | {1} epochs (s) | ms per model-step, from the difference |".format(short, long))
    print("|---|---|---|---|")
    for path, d in (("bare loop", d_bare), ("iwtheory train", d_engine)):
        key = "bare" if path == "bare loop" else "engine"
        print(f"| {path} | {best[(key, short)]:.1f} | {best[(key, long)]:.1f} | {1e3 * d / steps:.3f} |")
    wall = time.perf_counter() - t_start
    print(f"study / bare throughput: {d_bare / d_engine:.2f}  (benchmark wall time {wall:.0f} s)")
    if args.json:
        import json

        Path(args.json).write_text(json.dumps({
            "machine": platform.machine(), "cpus": os.cpu_count(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "config": config.name, "regime": args.regime, "models": bare.M,
            "widths": bare.dims, "epochs": [short, long], "rounds": args.rounds,
            "seconds": {f"{k[0]}_{k[1]}": v for k, v in best.items()},
            "ms_per_model_step": {"bare": 1e3 * d_bare / steps, "engine": 1e3 * d_engine / steps},
            "ratio": d_bare / d_engine}, indent=1))


if __name__ == "__main__":
    main()
