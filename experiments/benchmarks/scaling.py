"""How the engines' time grows: the network engine per model-step against the number of models M in a stack,
the hidden width and the number of training images; the theory engine's max_margin, gradient_flow and
asymptotic_offset against the number of points n and the dimension d.

command:  python experiments/benchmarks/scaling.py [--rounds 2] [--json results/cpu/scaling.json]
          [--figure results/cpu/scaling.png]
runtime:  printed by the benchmark (about 3 minutes on 2 CPU cores)

Each time is the least of ``rounds`` after a warm-up. Growth is stated as the exponent k of time ~ size^k between
consecutive sizes (log-log slope): k = 1 means doubling the size doubles the time; for the network engine the
time is per model-step, so k = 0 in M means stacking more models costs nothing per model. The network shapes
are the study's (study_fashion.toml [none]: MLP 784-128-64-1, 320 training images, batch 16) with one factor
changed at a time; the theory data are two unit Gaussians 12 apart, separable at n = 10^4
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from iwtheory.nets.engine import Stack
from iwtheory.runs.config import load_study
from iwtheory.runs.fit import engine_setup
from iwtheory.runs.train import TrainConfig, build_task
from iwtheory.theory.asymptotics import asymptotic_offset
from iwtheory.theory.data import gaussian_mixture
from iwtheory.theory.dynamics import gradient_flow
from iwtheory.theory.maxmargin import max_margin
from roofline import least  # the benchmark beside this one (run as a script, its folder is on sys.path)

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "experiments" / "study_fashion.toml"
MODELS = [1, 4, 16, 64, 256]
WIDTHS = [32, 128, 512]
IMAGES = [80, 160, 320, 640]   # training images (n_pos = n_neg = images / 2 / (1 - val_fraction))
POINTS = [100, 1000, 10000]
DIMS = [10, 100, 1000]


def model_step_ms(overrides: list[str], rounds: int) -> tuple[int, float]:
    """(models, ms per model-step) of one epoch of the study's stack with ``overrides``."""
    (cfg,) = load_study(CONFIG, TrainConfig, regimes=["none"], overrides=overrides)
    task = build_task(cfg)
    settings, members = engine_setup(cfg, cfg.cells(), task)
    stack = Stack(members, task, settings, "cpu")
    steps = len(task.y_train) // settings.batch_size
    return stack.M, 1e3 * least(stack.train_epoch, rounds) / (steps * stack.M)


def seeds_for(M: int) -> list[str]:
    """A stack of M models: weights 1/16, 1, 16 crossed with seeds, cut to M."""
    if M < 3:
        return ["weights=[1.0]", f"seeds={list(range(M))}"]
    if M % 3:
        raise ValueError(f"M must be 1, 2 or a multiple of 3; got {M}")
    return [f"seeds={list(range(M // 3))}"]


def network(rounds: int) -> dict:
    out = {"models": [], "width": [], "images": []}
    for M in MODELS:
        m = M if M < 3 else 3 * round(M / 3)
        got, ms = model_step_ms(seeds_for(m), rounds)
        out["models"].append({"size": got, "ms_per_model_step": ms})
    for h in WIDTHS:
        _, ms = model_step_ms([f"hidden=[{h},64]", "seeds=[0,1,2,3,4,5,6,7,8,9]"], rounds)
        out["width"].append({"size": h, "ms_per_model_step": ms})
    for n in IMAGES:
        per_class = int(round(n / 2 / 0.8))
        _, ms = model_step_ms([f"n_pos={per_class}", f"n_neg={per_class}"], rounds)
        out["images"].append({"size": n, "ms_per_model_step": ms, "ms_per_model_epoch": ms * (n // 16)})
    return out


def theory(rounds: int) -> dict:
    out = {}
    for axis, grid in (("n", POINTS), ("d", DIMS)):
        for name in ("max_margin", "asymptotic_offset", "gradient_flow"):
            out[f"{name}_vs_{axis}"] = []
        for size in grid:
            n, d = (size, 10) if axis == "n" else (1000, size)
            ds = gaussian_mixture(n=n, d=d, separation=12.0, seed=0)
            w = np.where(ds.y > 0, 4.0, 1.0)
            mm = max_margin(ds.X, ds.y)
            calls = {"max_margin": lambda: max_margin(ds.X, ds.y),
                     "asymptotic_offset": lambda: asymptotic_offset(ds.X, ds.y, w, mm=mm),
                     "gradient_flow": lambda: gradient_flow(ds.X, ds.y, w, t_max=1e6, n_records=20)}
            for name, fn in calls.items():
                out[f"{name}_vs_{axis}"].append({"size": size, "n": n, "d": d, "seconds": least(fn, rounds)})
    return out


def exponents(rows: list[dict], key: str) -> list[float]:
    """Log-log slopes of ``key`` between consecutive sizes."""
    return [float(np.log(b[key] / a[key]) / np.log(b["size"] / a["size"])) for a, b in zip(rows, rows[1:])]


def plot(data: dict, path: Path) -> None:
    """One figure, two panels: ms per model-step against M, width and images; theory seconds against n and d."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    for axis, label in (("models", "models M"), ("width", "first hidden width"), ("images", "training images")):
        rows = data["network"][axis]
        a.loglog([r["size"] for r in rows], [r["ms_per_model_step"] for r in rows], "o-", label=label)
    a.set_xlabel("size")
    a.set_ylabel("ms per model-step")
    a.set_title("network engine (MLP, batch 16)")
    a.legend(fontsize=8)
    for key, rows in data["theory"].items():
        b.loglog([r["size"] for r in rows], [r["seconds"] for r in rows], "o-" if key.endswith("_n") else "s--",
                 label=key.replace("_vs_", " vs "))
    b.set_xlabel("n (d = 10) or d (n = 1000)")
    b.set_ylabel("seconds")
    b.set_title("theory engine")
    b.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", default=None, help="write the measurements here (the README reads "
                                                 "results/cpu/scaling.json)")
    ap.add_argument("--figure", default=None, help="draw the figure here from the measurements")
    args = ap.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    t0 = time.perf_counter()
    data = {"hardware": {"machine": platform.machine(), "cpus": os.cpu_count(), "threads": torch.get_num_threads(),
                         "torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version()},
            "rounds": args.rounds, "network": network(args.rounds), "theory": theory(args.rounds)}
    data["exponents"] = {**{f"network_{k}": exponents(v, "ms_per_model_step") for k, v in data["network"].items()},
                         **{k: exponents(v, "seconds") for k, v in data["theory"].items()}}
    data["seconds"] = time.perf_counter() - t0
    print(f"{data['hardware']['machine']}, {data['hardware']['cpus']} CPUs, torch {data['hardware']['torch']}")
    for k, rows in data["network"].items():
        print(k, [(r["size"], round(r["ms_per_model_step"], 4)) for r in rows], "exponents",
              [round(e, 2) for e in data["exponents"][f"network_{k}"]])
    for k, rows in data["theory"].items():
        print(k, [(r["size"], round(r["seconds"], 4)) for r in rows], "exponents",
              [round(e, 2) for e in data["exponents"][k]])
    print(f"benchmark took {data['seconds']:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=1) + "\n")
    if args.figure:
        plot(data, Path(args.figure))


if __name__ == "__main__":
    main()
