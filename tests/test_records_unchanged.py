"""Refactoring must not change what the package computes: a quick reproduce's records, byte for byte.

``tests/data/records_baseline.json`` was written by ``python -m tests.test_records_unchanged --write``
from the code *before* a refactor; it holds every config's run identities (the hashes of every resolved
cell, full and quick: cheap, no training) and a SHA-256 of every record file that the quick variants of
the theory configs, the long runs and the toy MLP write, and (checked where Fashion-MNIST is installed) the
quick CPU study and loss study. A change that moves a number, a key, a hash
or a byte of formatting fails here. Write the baseline again only for a change that is meant to alter
results, and say so in its commit.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
BASELINE = Path(__file__).resolve().parent / "data" / "records_baseline.json"
RECORD_FILES = ("config.json", "metrics.jsonl", "summary.json", "done")
TRAINED = ("toy_mlp",)  # synthetic data only: runs on any clone
FASHION = ("study_fashion", "study_losses")  # where Fashion-MNIST is installed (make data-deps)


def config_identities() -> dict[str, dict[str, list[str]]]:
    """Every experiment config's cell hashes, full and quick (sorted), as the runners would name the runs."""
    from iwtheory.catalogue import runner
    from iwtheory.runs.config import config_hash
    from iwtheory.runs.launch import load_experiment

    out = {}
    for path in sorted(EXPERIMENTS.glob("*.toml")):
        kind = runner(path.stem)
        got = {}
        for quick in (False, True):
            cfg = load_experiment(path, kind, quick=quick)
            cells = [c for one in (cfg if kind == "train" else [cfg]) for c in one.cells()]
            got["quick" if quick else "full"] = sorted(config_hash(c) for c in cells)
        out[path.stem] = got
    return out


def digests(out: Path) -> dict[str, str]:
    """SHA-256 of every record file under ``out``, by relative path."""
    digests = {}
    for d in sorted(p for p in out.iterdir() if p.is_dir()):
        for f in RECORD_FILES:
            if (d / f).is_file():
                digests[f"{d.name}/{f}"] = hashlib.sha256((d / f).read_bytes()).hexdigest()
    return digests


def quick_records(out: Path) -> dict[str, str]:
    """Run the quick variants that need no data files; their records' digests."""
    from iwtheory.runs.config import load_study, load_toml
    from iwtheory.runs.inside import InsideConfig, run_inside
    from iwtheory.runs.theory import TheoryConfig, run_theory
    from iwtheory.runs.train import TrainConfig, run_study

    for path in sorted(EXPERIMENTS.glob("theory_*.toml")):
        run_theory(load_toml(path, TheoryConfig, quick=True), out, progress=False)
    for path in sorted(EXPERIMENTS.glob("inside_*.toml")):
        run_inside(load_toml(path, InsideConfig, quick=True), out, progress=False)
    for name in TRAINED:
        run_study(load_study(EXPERIMENTS / f"{name}.toml", TrainConfig, quick=True), out, progress=False)
    return digests(out)


def fashion_records(out: Path) -> dict[str, str]:
    """The quick Fashion-MNIST studies (the CPU study and the loss study, a config that extends it)."""
    from iwtheory.runs.config import load_study
    from iwtheory.runs.train import TrainConfig, run_study

    for name in FASHION:
        run_study(load_study(EXPERIMENTS / f"{name}.toml", TrainConfig, quick=True), out, progress=False)
    return digests(out)


def machine() -> dict:
    """What decides the last bits of a float here: the library versions and the CPU kernels they dispatch to
    (numpy's SIMD targets, OpenBLAS's core, torch's CPU capability). The same code gives other bytes on an
    AVX-512 machine than on an AVX2 one, so the baseline is compared only on a machine like the one that wrote it."""
    import numpy as np
    import scipy
    import threadpoolctl
    import torch

    from numpy._core._multiarray_umath import __cpu_features__ as feats

    blas = sorted({d.get("architecture") or "" for d in threadpoolctl.threadpool_info()})
    return {"numpy": np.__version__, "scipy": scipy.__version__, "torch": torch.__version__,
            "numpy_simd": sorted(k for k, v in feats.items() if v), "blas": blas,
            "torch_cpu": torch.backends.cpu.get_cpu_capability()}


def same_machine(base: dict) -> None:
    """Skip, naming both, when the baseline was written on another kind of machine (see ``machine``)."""
    here = machine()
    if base.get("machine") != here:
        diff = sorted(k for k in here if (base.get("machine") or {}).get(k) != here[k])
        pytest.skip(f"the records baseline was written on another kind of machine (differs in {diff}); "
                    "write it again from the tree before the change: python -m tests.test_records_unchanged --write")


def have_fashion() -> bool:
    from iwtheory.nets.readers import FASHION_DEFAULT_DIR, FASHION_FILES

    return all((Path(FASHION_DEFAULT_DIR) / f).is_file() for f in FASHION_FILES.values())


def test_every_config_names_the_same_runs():
    base = json.loads(BASELINE.read_text())["identities"]
    now = config_identities()
    assert sorted(now) == sorted(base), "the set of experiment configs changed"
    for name in base:
        for variant in ("full", "quick"):
            assert now[name][variant] == base[name][variant], f"{name} ({variant}) resolves to other runs"


@pytest.mark.slow
def test_quick_records_are_byte_identical(tmp_path):
    full = json.loads(BASELINE.read_text())
    same_machine(full)
    base = full["records"]
    now = quick_records(tmp_path)
    assert sorted(now) == sorted(base), (f"other record files: missing {sorted(set(base) - set(now))[:5]}, "
                                         f"new {sorted(set(now) - set(base))[:5]}")
    changed = sorted(k for k in base if now[k] != base[k])
    assert not changed, f"{len(changed)} record file(s) differ from the baseline, e.g. {changed[:5]}"


@pytest.mark.slow
def test_quick_fashion_records_are_byte_identical(tmp_path):
    if not have_fashion():
        pytest.skip("Fashion-MNIST is not installed here (make data-deps)")
    full = json.loads(BASELINE.read_text())
    same_machine(full)
    base = full["records_fashion"]
    now = fashion_records(tmp_path)
    assert sorted(now) == sorted(base), "the quick Fashion studies write other record files"
    changed = sorted(k for k in base if now[k] != base[k])
    assert not changed, f"{len(changed)} record file(s) differ from the baseline, e.g. {changed[:5]}"


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        data = {"identities": config_identities(), "records": quick_records(Path(tmp) / "a"),
                "records_fashion": fashion_records(Path(tmp) / "b"), "machine": machine()}
    BASELINE.parent.mkdir(parents=True, exist_ok=True)
    BASELINE.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"wrote {BASELINE}: {len(data['records'])} record files, {len(data['identities'])} configs")
