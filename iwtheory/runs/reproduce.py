"""`iwtheory reproduce`: every experiment the paper uses, skipping finished runs."""

from __future__ import annotations

from pathlib import Path

from iwtheory.runs.config import load_toml
from iwtheory.runs.theory import TheoryConfig, run_theory

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
THEORY_CONFIGS = ("theory_boundaries", "theory_angle", "theory_deep", "theory_poly")


def reproduce(out: str | Path = "runs", quick: bool = False, experiments: Path = EXPERIMENTS,
              progress: bool = True) -> dict[str, int]:
    """Run the theory experiments (full, or their quick variants); return run counts per experiment."""
    if not experiments.is_dir():
        raise FileNotFoundError(f"experiment configs not found at {experiments}; run from a source checkout")
    counts = {}
    for name in THEORY_CONFIGS:
        cfg = load_toml(experiments / f"{name}.toml", TheoryConfig, quick=quick)
        counts[name] = len(run_theory(cfg, out, progress=progress))
    return counts
