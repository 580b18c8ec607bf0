"""Sweeps in-process against a Dask LocalCluster, both timed in the same run.

command:  python experiments/benchmarks/dask_sweep.py [--cells 240] [--study quick|full|none]
runtime:  not typed here: the benchmark prints what it measured and the hardware it ran on
1. A theory sweep of at least 200 cells (GD on the Soudry toy, losses x weights x seeds): in-process vs
   `local:2` (two single-threaded workers); the cluster's start-up is timed apart from the sweep.
2. The CPU study (experiments/study_fashion.toml; its quick variant by default): in-process with two torch
   threads vs `local:2` with one thread per worker.
Prints each time, the speed-up (in-process time / cluster time) and the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch

from iwtheory.runs.config import load_study
from iwtheory.runs.launch import connect, distributed_theory, distributed_train
from iwtheory.runs.theory import TheoryConfig, run_theory
from iwtheory.runs.train import TrainConfig, run_study

ROOT = Path(__file__).resolve().parents[2]


def theory_config(cells: int) -> TheoryConfig:
    seeds = max(1, -(-cells // 24))
    return TheoryConfig(name="bench", dataset="soudry_toy", data={"n_random": 40},
                        weights=[1.0, 2.0, 4.0, 8.0, 16.0, 32.0], losses=["logistic", "exponential"],
                        methods=["gd", "sgd"], seeds=list(range(seeds)), steps=10000, n_records=20)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=240)
    ap.add_argument("--study", choices=("quick", "full", "none"), default="quick")
    args = ap.parse_args()
    print(f"# {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}")
    tmp = Path(tempfile.mkdtemp())
    try:
        cfg = theory_config(args.cells)
        t = time.perf_counter()
        run_theory(cfg, tmp / "a", progress=False)
        serial = time.perf_counter() - t
        t = time.perf_counter()
        with connect("local:2") as client:
            startup = time.perf_counter() - t
            t = time.perf_counter()
            distributed_theory(client, cfg, tmp / "b", progress=False)
            cluster = time.perf_counter() - t
        print(f"theory sweep, {len(cfg.cells())} cells: in-process {serial:.2f} s, local:2 {cluster:.2f} s "
              f"(+ {startup:.1f} s cluster start-up): speed-up x{serial / cluster:.2f} "
              f"(x{serial / (cluster + startup):.2f} counting the start-up)")
        if args.study != "none":
            cfgs = load_study(ROOT / "experiments" / "study_fashion.toml", TrainConfig, quick=args.study == "quick")
            torch.set_num_threads(2)
            t = time.perf_counter()
            run_study(cfgs, tmp / "c", progress=False)
            serial = time.perf_counter() - t
            t = time.perf_counter()
            with connect("local:2") as client:
                distributed_train(client, cfgs, tmp / "d", progress=False)
            cluster = time.perf_counter() - t
            n = sum(len(c.cells()) for c in cfgs)
            print(f"CPU study ({args.study}, {n} models): in-process, 2 threads {serial:.1f} s; local:2, 1 thread "
                  f"per worker {cluster:.1f} s (start-up included): speed-up x{serial / cluster:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
