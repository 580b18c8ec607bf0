"""A tiny CNN sweep (two groups of two models, four epochs) for the fault-injection tests."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TINY = {"name": "tiny", "dataset": "synthetic", "synthetic": {"n_train": 64, "n_test": 20, "shape": [1, 8, 8]},
        "model": "mlp", "hidden": [16], "weights": [1.0, 2.0], "seeds": [0, 1], "lrs": [0.05], "batch_size": 8,
        "epochs": 4, "eval_dense": 4, "record_points": 2, "n_feature_images": 8, "max_other": 10,
        "noise_count": 5, "max_models": 2, "device": "cpu"}


def toml(cfg: dict) -> str:
    def val(v):
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {val(x)}" for k, x in v.items()) + " }"
        return json.dumps(v)
    return "\n".join(f"{k} = {val(v)}" for k, v in cfg.items()) + "\n"


@pytest.fixture
def tiny_toml(tmp_path) -> Path:
    p = tmp_path / "tiny.toml"
    p.write_text(toml(TINY))
    return p


def run_cli(args, env=None, check=False, timeout=300):
    """`python -m iwtheory ARGS` in a fresh process (one thread, so every run computes the same bits)."""
    e = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **(env or {})}
    e.pop("IWTHEORY_FAULT", None) if env is None or "IWTHEORY_FAULT" not in env else None
    r = subprocess.run([sys.executable, "-m", "iwtheory", *map(str, args)], capture_output=True, text=True, env=e,
                       timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"iwtheory {args} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return r


def tree(root: Path) -> dict[str, bytes]:
    """Every file of every run folder under ``root`` (not locks, not checkpoints), by relative path."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_file() and rel.parts[0] not in ("_locks", "_groups") and not p.name.startswith(".write-test"):
            out[str(rel)] = p.read_bytes()
    return out
