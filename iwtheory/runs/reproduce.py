"""`iwtheory reproduce`: every experiment the paper uses, then figures, tables and the PDF.

On a CPU (the embedded default) it runs the theory experiments in full and the Fashion-MNIST
CNN experiment; with CIFAR-10 (``--data-dir``) and a CUDA device it runs the four-regime CIFAR
study instead. Finished runs are skipped, unfinished ones resume from their checkpoints.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from iwtheory.runs.config import load_toml
from iwtheory.runs.theory import TheoryConfig, run_theory

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = ROOT / "experiments"
PAPER = ROOT / "paper"
THEORY_CONFIGS = ("theory_boundaries", "theory_angle", "theory_deep", "theory_poly")
CIFAR_CONFIGS = ("cnn_cifar_none", "cnn_cifar_l2", "cnn_cifar_dropout", "cnn_cifar_batchnorm")
CPU_CONFIGS = ("cnn_fashion_cpu",)


def choose_cnn(data_dir: str | None, device: str | None) -> tuple[tuple[str, ...], str]:
    """The CIFAR study when CIFAR-10 is readable and a GPU is in use; the Fashion-MNIST run otherwise."""
    from iwtheory.nets.readers import DataFileError, read_cifar10
    from iwtheory.runs.train import resolve_device

    dev = resolve_device(device or "auto")
    if data_dir:
        try:
            read_cifar10(data_dir)
        except DataFileError:
            return CPU_CONFIGS, f"no CIFAR-10 under {data_dir}: running the Fashion-MNIST experiment"
        if dev.startswith("cuda"):
            return CIFAR_CONFIGS, f"CIFAR-10 found and {dev} in use: running the CIFAR study"
        return CPU_CONFIGS, "CIFAR-10 found but no GPU in use: running the CPU-sized Fashion-MNIST experiment"
    return CPU_CONFIGS, ("running the CPU-sized Fashion-MNIST experiment "
                         "(pass --data-dir with CIFAR-10 on a GPU for the study)")


def build_pdf(paper: Path) -> Path | None:
    """latexmk paper/main.tex; None (with a note) where LaTeX is not installed."""
    if shutil.which("latexmk") is None:
        print("latexmk not found: skipping the PDF (install TeX, see the README)")
        return None
    subprocess.run(["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "main.tex"], cwd=paper,
                   check=True, stdout=subprocess.DEVNULL)
    return paper / "main.pdf"


def reproduce(out: str | Path = "runs", quick: bool = False, data_dir: str | None = None,
              device: str | None = None, paper: Path = PAPER, experiments: Path = EXPERIMENTS,
              progress: bool = True, cnn: bool = True, pdf: bool = True) -> dict:
    """Run the experiments, then write figures, tables and numbers under ``paper`` and build the PDF."""
    from iwtheory.report.build import analyse, make_figures, make_tables
    from iwtheory.runs.train import TrainConfig, run_train

    if not experiments.is_dir():
        raise FileNotFoundError(f"experiment configs not found at {experiments}; run from a source checkout")
    counts = {}
    for name in THEORY_CONFIGS:
        cfg = load_toml(experiments / f"{name}.toml", TheoryConfig, quick=quick)
        counts[name] = len(run_theory(cfg, out, progress=progress))
    if cnn:
        names, why = choose_cnn(data_dir, device)
        print(why)
        for name in names:
            cfg = load_toml(experiments / f"{name}.toml", TrainConfig, quick=quick)
            counts[name] = len(run_train(cfg, out, data_dir=data_dir, device=device, progress=progress))
    analysis = analyse(out)  # the feature-space SVMs and weight effects, computed once for both
    make_figures(out, paper / "figures", analysis)
    make_tables(out, paper, analysis)
    result = {"runs": counts, "pdf": build_pdf(paper) if pdf else None}
    return result
