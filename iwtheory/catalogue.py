"""The experiment catalogue: every experiment config, the runner that runs it, when `iwtheory reproduce` runs it,
and the figures, tables and claims it feeds. Every other module names an experiment through this one.

Pure data (imports nothing from the package), so every layer may read it; ``tests/test_catalogue.py`` checks it
against ``experiments/*.toml`` and the claims registry, and ``tests/report/test_end_to_end.py`` against the
figures and tables the report writes.
"""

from __future__ import annotations

from dataclasses import dataclass

BOUNDARIES = "theory_boundaries"
ANGLE = "theory_angle"
DEEP = "theory_deep"
POLY = "theory_poly"
DUPLICATES = "theory_duplicates"
THEORY_LOSSES = "theory_losses"
INSIDE = "inside_toy"
TOY = "toy_mlp"
STUDY = "study_fashion"      # the embedded default's network study: the network claims come from it
CIFAR = "study_cifar"
LOSS_STUDY = "study_losses"
FASHION_CNN = "study_fashion_cnn"  # the CNN arm on CPUs (make cnn): its records are committed under results/cpu/cnn
CIFAR_CNN = "study_cifar_cnn"
CNN_ARMS = (FASHION_CNN, CIFAR_CNN)

RUNNERS = ("theory", "inside", "train")
STAGES = ("theory", "inside", "cpu", "gpu", "losses", "cnn")  # reproduce's order; "gpu" needs CIFAR-10 and a GPU,
# "losses" runs by `make losses` only, "cnn" by `make cnn` (its records committed, so the paper reads them anyway)


@dataclass(frozen=True)
class Experiment:
    """One experiment config (``experiments/<name>.toml``) and what the report makes of its records."""

    name: str
    runner: str                  # the CLI command and run kind: theory, inside or train
    stage: str                   # when reproduce runs it (STAGES)
    figures: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()


CATALOGUE: tuple[Experiment, ...] = (
    Experiment(BOUNDARIES, "theory", "theory", figures=("theory_boundaries",)),
    Experiment(ANGLE, "theory", "theory", figures=("theory_angle", "theory_residual"), tables=("theory",)),
    Experiment(DEEP, "theory", "theory", figures=("theory_deep",)),
    Experiment(POLY, "theory", "theory", figures=("theory_poly",)),
    Experiment(DUPLICATES, "theory", "theory"),
    Experiment(THEORY_LOSSES, "theory", "theory", figures=("theory_losses",), tables=("losses",)),
    Experiment(INSIDE, "inside", "inside", figures=("inside",)),
    Experiment(TOY, "train", "cpu", figures=("toy_mlp",)),
    Experiment(STUDY, "train", "cpu",
               figures=("frac_pos_none", "frac_pos_regimes", "effect_by_regime", "l2_strength", "early_stopping",
                        "feature_angle"),
               tables=("early_late", "separation")),
    Experiment(CIFAR, "train", "gpu", figures=("frac_pos_study_cifar", "frac_pos_study_cifar_gpu"),
               tables=("separation_cifar",)),  # _gpu: from imported GPU records
    Experiment(LOSS_STUDY, "train", "losses", figures=("frac_pos_losses",), tables=("losses",)),
    Experiment(FASHION_CNN, "train", "cnn", figures=("frac_pos_study_fashion_cnn",), tables=("separation_cnn",)),
    Experiment(CIFAR_CNN, "train", "cnn", figures=("frac_pos_study_cifar_cnn",)),
)
BY_NAME = {e.name: e for e in CATALOGUE}
# tables that read every experiment (the runs behind the paper) or the claims, not one experiment
SHARED_TABLES = ("experiments", "claims", "claims_detail", "claims_discussion")
FEATURE_LIMITS = (LOSS_STUDY,)   # studies whose nets' last layers are compared with their loss's limit


def stage(name: str) -> tuple[str, ...]:
    """The experiments reproduce runs at ``name`` (a STAGES entry), in catalogue order."""
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}; choose from {STAGES}")
    return tuple(e.name for e in CATALOGUE if e.stage == name)


def runner(name: str) -> str:
    """The runner of experiment ``name``; a name the catalogue lacks is a ValueError naming the known ones."""
    if name not in BY_NAME:
        raise ValueError(f"no experiment {name!r} in the catalogue; known: {sorted(BY_NAME)}")
    return BY_NAME[name].runner
