"""Configs as deltas: ``extends`` (a base config's settings as defaults) and ``[variants]`` (regimes multiplied)."""

import os
import tomllib
from pathlib import Path

import pytest

from iwtheory.runs.config import MAX_EXTENDS, ConfigError, load_study, load_toml, read_config
from iwtheory.runs.theory import TheoryConfig
from iwtheory.runs.train import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
BASE = """
name = "base"
description = "the base"
dataset = "bl_toy"
data = { n_per_class = 5, seed = 0 }
weights = [1.0, 4.0]
losses = ["exponential"]
t_max = 1e10
n_records = 7

[quick]
n_records = 3
"""
STUDY = """
name = "study"
dataset = "bl_toy"
synthetic = { n_per_class = 5, seed = 0, n_test = 20 }
model = "mlp"
hidden = [4]
weights = [1.0, 2.0]
seeds = [0]
lrs = [0.1]
batch_size = 10
epochs = 2
"""


def write(folder: Path, name: str, text: str) -> Path:
    p = folder / name
    p.write_text(text)
    return p


def test_a_config_that_extends_another_takes_its_settings_and_overrides_some(tmp_path):
    write(tmp_path, "base.toml", BASE)
    child = write(tmp_path, "child.toml", 'extends = "base.toml"\nname = "child"\nweights = [1.0, 16.0]\n'
                                          '[quick]\nweights = [16.0]\n')
    cfg = load_toml(child, TheoryConfig)
    assert (cfg.name, cfg.weights, cfg.t_max, cfg.n_records, cfg.data) == ("child", [1.0, 16.0], 1e10, 7,
                                                                            {"n_per_class": 5, "seed": 0})
    quick = load_toml(child, TheoryConfig, quick=True)
    # the child's [quick] applies; the base's does not (n_records stays the base's top-level 7)
    assert (quick.weights, quick.n_records) == ([16.0], 7)
    # the same cells as a config that writes everything out
    flat = write(tmp_path, "flat.toml", BASE.replace('name = "base"', 'name = "child"')
                 .replace("weights = [1.0, 4.0]", "weights = [1.0, 16.0]").split("[quick]")[0])
    assert load_toml(flat, TheoryConfig).cells() == cfg.cells()


@pytest.mark.parametrize("target, match", [
    ("../base.toml", "a bare file name"), ("/etc/passwd", "a bare file name"), ("sub/base.toml", "a bare file name"),
    ("base.json", "a bare file name"), ("missing.toml", "does not exist"), (3, "a bare file name")])
def test_extends_names_a_file_beside_it_and_nothing_else(tmp_path, target, match):
    write(tmp_path, "base.toml", BASE)
    value = f'"{target}"' if isinstance(target, str) else str(target)
    child = write(tmp_path, "child.toml", f'extends = {value}\nname = "child"\n')
    with pytest.raises(ConfigError, match=match):
        load_toml(child, TheoryConfig)


def test_extends_refuses_links_circles_long_chains_and_a_missing_name(tmp_path):
    write(tmp_path, "base.toml", BASE)
    os.symlink(tmp_path / "base.toml", tmp_path / "link.toml")
    with pytest.raises(ConfigError, match="a link"):
        read_config(write(tmp_path, "c.toml", 'extends = "link.toml"\nname = "c"\n'))
    write(tmp_path, "a.toml", 'extends = "b.toml"\nname = "a"\n')
    write(tmp_path, "b.toml", 'extends = "a.toml"\nname = "b"\n')
    with pytest.raises(ConfigError, match="circle"):
        read_config(tmp_path / "a.toml")
    prev = "base.toml"
    for k in range(MAX_EXTENDS + 1):
        write(tmp_path, f"l{k}.toml", f'extends = "{prev}"\nname = "l{k}"\n')
        prev = f"l{k}.toml"
    assert read_config(tmp_path / f"l{MAX_EXTENDS - 1}.toml")["name"] == f"l{MAX_EXTENDS - 1}"
    with pytest.raises(ConfigError, match="chain"):
        read_config(tmp_path / prev)
    with pytest.raises(ConfigError, match="no name of its own"):
        read_config(write(tmp_path, "d.toml", 'extends = "base.toml"\nweights = [2.0]\n'))


def test_variants_multiply_the_regimes_in_order(tmp_path):
    study = write(tmp_path, "s.toml", STUDY + '[regimes.a]\nlrs = [0.2]\n[regimes.b]\nweight_decays = [0.01]\n'
                                              '[variants.small]\nepochs = 1\n[variants.big]\nepochs = 3\n')
    cfgs = load_study(study, TrainConfig)
    assert [c.regime for c in cfgs] == ["a", "b", "a_small", "b_small", "a_big", "b_big"]
    by = {c.regime: c for c in cfgs}
    assert (by["b_small"].epochs, by["b_small"].weight_decays, by["a_big"].epochs, by["a"].epochs) == (1, [0.01], 3, 2)
    assert [c.regime for c in load_study(study, TrainConfig, regimes=["b_big"])] == ["b_big"]
    with pytest.raises(ConfigError, match="no regime"):
        load_study(study, TrainConfig, regimes=["c_small"])


def test_variants_need_regimes_and_names_must_not_clash(tmp_path):
    with pytest.raises(ConfigError, match="multiply"):
        load_study(write(tmp_path, "s.toml", STUDY + "[variants.sub]\nepochs = 1\n"), TrainConfig)
    clash = STUDY + "[regimes.a]\n[regimes.a_sub]\n[variants.sub]\nepochs = 1\n"
    with pytest.raises(ConfigError, match="names already"):
        load_study(write(tmp_path, "t.toml", clash), TrainConfig)
    with pytest.raises(ConfigError, match="one table of overrides per variant"):
        load_study(write(tmp_path, "u.toml", STUDY + "[regimes.a]\n[variants]\nsub = 3\n"), TrainConfig)


@pytest.mark.parametrize("path", sorted(p for p in (ROOT / "experiments").glob("*.toml")
                                        if "extends" in tomllib.loads(p.read_text())), ids=lambda p: p.name)
def test_a_config_that_extends_another_states_only_its_differences(path):
    own = tomllib.loads(path.read_text())
    base = read_config(path.parent / own["extends"])
    same = sorted(k for k, v in own.items() if k not in ("quick", "regimes", "variants") and base.get(k) == v)
    assert not same, f"{path.name} repeats {same} of {own['extends']}"


def test_the_loss_study_is_a_delta_of_the_fashion_study():
    own = tomllib.loads((ROOT / "experiments" / "study_losses.toml").read_text())
    assert own["extends"] == "study_fashion.toml"
    assert len([k for k in own if k not in ("extends", "regimes", "variants", "quick")]) <= 12
