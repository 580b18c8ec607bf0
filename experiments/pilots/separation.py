"""A pilot: when the nets of a study's regimes separate their training data, measured before a design is fixed.

command:  python experiments/pilots/separation.py CONFIG --regime R [--regime R2 ...] [--set key=value ...]
          [--json results/cpu/pilots/NAME.json]
runtime:  that of the regimes it trains (printed)

Trains the named regimes of CONFIG (with the ``--set`` overrides applied to each, as ``iwtheory train`` does)
into a scratch folder, then prints per regime (per setting where a regime sweeps several): every net's
separation epoch (the first evaluated epoch from which its training accuracy in eval mode stays 1; nan when it
ends below 1), how many nets dipped below 1 after first reaching it, whether every seed has the late window
the claims use, the median final test accuracy, the oriented late effect on S_in and the wall time. With
``--json`` the same numbers go to a file with the config's name, the machine, the versions and the command;
`iwtheory readme` writes them into that config's header as its ``# pilot:`` lines.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from iwtheory.compare import claims as C
from iwtheory.report.analysis import variants
from iwtheory.runs import load
from iwtheory.runs.launch import load_experiment
from iwtheory.runs.train import run_study


def dips(df) -> int:
    """Nets whose training accuracy falls below 1 after it first reached 1."""
    n = 0
    for _, g in df.groupby("config_hash"):
        acc = g.sort_values("epoch").train_acc.to_numpy()
        hit = np.flatnonzero(acc >= 1.0)
        n += bool(hit.size and (acc[hit[0]:] < 1.0).any())
    return n


def summarise(df) -> dict:
    """The pilot's numbers for one regime's records."""
    sep = C.separation(df)
    starts, premise = C.late_starts(df)
    late = C.oriented(C.late_effect(df, "frac_pos_test", starts))
    last = df[df.epoch == df.epoch.max()]
    return {"nets": int(len(sep)), "separated": int(sep.separation_epoch.notna().sum()),
            "separation_epochs": sorted(float(v) for v in sep.separation_epoch.dropna()),
            "separation_by_weight": {f"{w:g}": [None if np.isnan(v) else float(v) for v in g.separation_epoch]
                                     for w, g in sep.groupby("weight")},
            "dipped_after_separating": dips(df), "lowest_final_train_acc": float(sep.final_train_acc.min()),
            "premise_met": bool(premise["met"]), "late_window_from": {str(k): v for k, v in starts.items()},
            "oriented_late_effect": float(late.mean()) if len(late) else None,
            "final_test_acc": float(last.test_acc.median()) if "test_acc" in last else None,
            "epochs": int(df.epoch.max())}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("--regime", action="append", required=True)
    ap.add_argument("--set", action="append", default=[], dest="overrides")
    ap.add_argument("--json")
    ap.add_argument("--out", help="records folder (default: a scratch folder, removed after)")
    args = ap.parse_args(argv)
    import torch

    cfgs = load_experiment(args.config, "train", overrides=args.overrides, regimes=args.regime)
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(args.out or scratch)
        t0 = time.perf_counter()
        run_study(cfgs, out, progress=False)
        seconds = time.perf_counter() - t0
        df = load(out)
    res = {"config": Path(args.config).stem,
           "command": " ".join(["python", "experiments/pilots/separation.py", *(argv or sys.argv[1:])]),
           "seconds": seconds, "machine": platform.machine(), "cpus": os.cpu_count(), "torch": torch.__version__,
           "regimes": {v: summarise(g) for v, g in df.assign(variant=variants(df)).groupby("variant", sort=False)}}
    for r, s in res["regimes"].items():
        print(f"{r}: {s['separated']}/{s['nets']} separate, epochs {s['separation_epochs']}, "
              f"{s['dipped_after_separating']} dipped, premise {'met' if s['premise_met'] else 'not met'}, "
              f"late effect {s['oriented_late_effect']}, test acc {s['final_test_acc']}")
    print(f"{seconds:.0f} s on {platform.machine()} ({os.cpu_count()} CPUs), torch {torch.__version__}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
