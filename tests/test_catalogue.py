"""The experiment catalogue against the configs on disk and the claims registry."""

import tomllib
from pathlib import Path

import pytest

from iwtheory import catalogue
from iwtheory.compare.claims import CLAIMS
from iwtheory.runs.launch import load_experiment

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def test_every_config_is_catalogued_and_every_entry_has_its_config():
    on_disk = {p.stem for p in EXPERIMENTS.glob("*.toml")}
    assert on_disk == set(catalogue.BY_NAME)


@pytest.mark.parametrize("entry", catalogue.CATALOGUE, ids=lambda e: e.name)
def test_each_entry_loads_with_its_runner_and_names_itself(entry):
    assert entry.runner in catalogue.RUNNERS and entry.stage in catalogue.STAGES
    cfg = load_experiment(EXPERIMENTS / f"{entry.name}.toml", entry.runner)
    names = {c.name for c in cfg} if entry.runner == "train" else {cfg.name}
    assert names == {entry.name}
    assert tomllib.loads((EXPERIMENTS / f"{entry.name}.toml").read_text())["name"] == entry.name


def test_reproduce_runs_every_stage_but_the_loss_study_in_catalogue_order():
    staged = [n for s in ("theory", "inside", "cpu", "gpu") for n in catalogue.stage(s)]
    assert set(staged) | set(catalogue.stage("losses")) | set(catalogue.stage("cnn")) == set(catalogue.BY_NAME)
    assert catalogue.stage("losses") == (catalogue.LOSS_STUDY,)
    assert catalogue.stage("cnn") == catalogue.CNN_ARMS
    with pytest.raises(ValueError, match="unknown stage"):
        catalogue.stage("nightly")
    with pytest.raises(ValueError, match="no experiment"):
        catalogue.runner("theory_nothing")


def test_the_claims_read_catalogued_experiments():
    for claim in CLAIMS.values():
        for exp in claim.experiments:
            # the study's claims name its regimes (study:none); the others name an experiment of the catalogue
            assert exp.startswith("study:") or exp in catalogue.BY_NAME, (claim.id, exp)


def test_figure_and_table_names_are_owned_once():
    figures = [f for e in catalogue.CATALOGUE for f in e.figures]
    assert len(figures) == len(set(figures))
    assert not set(catalogue.SHARED_TABLES) & {t for e in catalogue.CATALOGUE for t in e.tables}
