import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from iwtheory.cli import main
from iwtheory.runs import load
from iwtheory.runs.config import ConfigError, load_study
from iwtheory.runs.train import TrainConfig, run_train

from ..conftest import assert_documented_header

ROOT = Path(__file__).resolve().parents[2]
CFG = dict(name="tiny", dataset="synthetic", synthetic={"n_train": 96, "n_test": 40, "shape": [3, 24, 24]},
           weights=[0.25, 4.0], seeds=[0], lrs=[0.05], dropouts=[0.0, 0.3], batch_size=16, epochs=5,
           eval_dense=2, eval_points=3, record_points=3, n_feature_images=16, max_other=30, noise_count=10)


class Killed(Exception):
    pass


def frame(out):
    df = load(out)
    drop = [c for c in df.columns if c in ("done",)]
    return df.drop(columns=drop).sort_values(["config_hash", "epoch"]).reset_index(drop=True)


def test_a_killed_run_resumes_to_the_same_records(tmp_path):
    cfg = TrainConfig(**CFG)
    run_train(cfg, tmp_path / "a", progress=False)

    def kill_at_3(epoch):
        if epoch == 3:
            raise Killed  # epoch 3's metrics are written, its checkpoint (every 2) is not

    cfg_b = TrainConfig(**{**CFG, "checkpoint_every": 2})
    with pytest.raises(Killed):
        run_train(cfg_b, tmp_path / "b", progress=False, interrupt=kill_at_3)
    assert not any((d / "done").exists() for d in (tmp_path / "b").iterdir() if d.name != "_groups")
    run_train(cfg_b, tmp_path / "b", progress=False)
    a, b = frame(tmp_path / "a"), frame(tmp_path / "b")
    assert len(a) == len(b) and not b.duplicated(["config_hash", "epoch"]).any()
    pd.testing.assert_frame_equal(a, b)
    # features saved at the same epochs with the same values
    for d in (tmp_path / "a").iterdir():
        if d.name == "_groups":
            continue
        for f in sorted((d / "features").glob("*.npz")):
            fa, fb = np.load(f), np.load(tmp_path / "b" / d.name / "features" / f.name)
            np.testing.assert_array_equal(fa["features"], fb["features"])


def test_records_hold_the_metrics_of_every_model_and_finished_runs_are_skipped(tmp_path):
    cfg = TrainConfig(**CFG)
    runs = run_train(cfg, tmp_path, progress=False)
    assert len(runs) == 4 and all(r.done for r in runs)
    df = load(tmp_path)
    need = {"epoch", "train_loss", "train_loss_weighted", "train_acc", "test_acc", "frac_pos_test",
            "frac_pos_other", "frac_pos_noise", "weight", "seed", "dropout", "config_hash", "diverged"}
    assert need <= set(df.columns)
    assert sorted(df.epoch.unique()) == [0, 1, 2, 3, 5]  # dense to 2, log-spaced after, always the last
    ep0 = df[df.epoch == 0]
    # before training, the weighted loss is the unweighted one rescaled by the class weights
    for _, r in ep0.iterrows():
        assert r.train_loss_weighted != pytest.approx(r.train_loss) or r.weight == 1.0
    with_feats = df.dropna(subset=["features"])
    assert set(with_feats.epoch) >= {0, 5}
    f = np.load(tmp_path / with_feats.config_hash.iloc[0] / with_feats.features.iloc[0])
    assert f["features"].shape == (16, 128) and f["weight"].shape == (128,) and set(f["labels"]) <= {-1.0, 1.0}
    stamps = {r.hash: (r.dir / "metrics.jsonl").stat().st_mtime_ns for r in runs}
    run_train(cfg, tmp_path, progress=False)
    assert {r.hash: (r.dir / "metrics.jsonl").stat().st_mtime_ns for r in runs} == stamps


def test_train_cli_with_overrides(tmp_path, capsys):
    p = tmp_path / "c.toml"
    p.write_text("\n".join(f"{k} = {json.dumps(v)}" if not isinstance(v, dict) else
                           f"{k} = {{ n_train = 96, n_test = 40, shape = [3, 24, 24] }}" for k, v in CFG.items()))
    assert main(["train", str(p), "--out", str(tmp_path / "r"), "--set", "epochs=1", "--set", "weights=[2.0]",
                 "--device", "cpu", "--no-progress"]) == 0
    df = load(tmp_path / "r")
    assert set(df.weight) == {2.0} and df.epoch.max() == 1
    assert main(["train", str(p), "--device", "cuda:7", "--out", str(tmp_path / "r2")]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_missing_data_fails_with_instructions(tmp_path, capsys):
    p = tmp_path / "c.toml"
    p.write_text('name = "x"\ndataset = "cifar10"\n')
    assert main(["train", str(p), "--data-dir", str(tmp_path / "none"), "--out", str(tmp_path / "r")]) == 2
    assert "no CIFAR-10 batches under" in capsys.readouterr().err


def test_config_errors():
    with pytest.raises(ConfigError, match="dropout rates"):
        TrainConfig(name="x", dropouts=[1.0]).validate()
    with pytest.raises(ConfigError, match="unknown model"):
        TrainConfig(name="x", model="vit").validate()


TRAIN_CONFIGS = sorted([*(ROOT / "experiments").glob("study_*.toml"), ROOT / "experiments" / "toy_mlp.toml",
                        *(ROOT / "experiments" / "gpu").glob("*.toml")])


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=lambda p: p.name)
def test_shipped_train_configs_load_and_document_themselves(path):
    assert_documented_header(path)
    full = load_study(path, TrainConfig)
    quick = load_study(path, TrainConfig, quick=True)
    assert [c.regime for c in full] == [c.regime for c in quick]
    for cfg, q in zip(full, quick):
        assert cfg.source, f"{path.name} does not say where its hyperparameters come from"
        assert q.epochs <= cfg.epochs
        assert len(cfg.seeds) >= 3 or path.parent.name == "gpu", f"{path.name} [{cfg.regime}]: fewer than 3 seeds"


def test_the_study_holds_every_regime_the_claims_need():
    cfgs = {c.regime: c for c in load_study(ROOT / "experiments" / "study_fashion.toml", TrainConfig)}
    assert {"none", "l2", "dropout", "batchnorm", "subsample", "noise"} <= set(cfgs)
    assert len(cfgs["l2"].weight_decays) >= 3 and cfgs["dropout"].dropouts[0] > 0 and cfgs["batchnorm"].batchnorm
    assert cfgs["noise"].label_noise > 0 and cfgs["none"].val_fraction > 0
    from iwtheory.compare.claims import MIN_SEEDS

    for name, c in cfgs.items():
        assert len(c.seeds) >= MIN_SEEDS and 1.0 in c.weights
        if name != "subsample":  # which trains the unweighted and the correcting weight only
            assert min(c.weights) <= 1 / 16 and max(c.weights) >= 16
    # C2b's control is the same MLP, made unable to separate by noisy labels, not a different model
    assert cfgs["noise"].hidden == cfgs["none"].hidden and not cfgs["noise"].linear
    r = cfgs["subsample"].n_pos / cfgs["none"].n_pos
    assert 1 / r in cfgs["subsample"].weights  # the correcting weight is trained


def test_regimes_are_override_tables(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text('name = "s"\nepochs = 5\nweights = [1.0, 2.0]\n[regimes.a]\n[regimes.b]\nepochs = 7\n'
                 '[quick]\nepochs = 1\n')
    a, b = load_study(p, TrainConfig)
    assert (a.regime, a.epochs, b.regime, b.epochs, b.weights) == ("a", 5, "b", 7, [1.0, 2.0])
    assert [c.epochs for c in load_study(p, TrainConfig, quick=True)] == [1, 1]
    assert [c.regime for c in load_study(p, TrainConfig, regimes=["b"])] == ["b"]
    with pytest.raises(ConfigError, match=r"no regime\(s\) \['c'\]"):
        load_study(p, TrainConfig, regimes=["c"])
    p.write_text('name = "s"\n[regimes.a]\nwieghts = [1.0]\n')
    with pytest.raises(ConfigError, match=r"\[regimes.a\]: unknown key\(s\) \['wieghts'\]"):
        load_study(p, TrainConfig)


def test_each_seed_draws_its_own_data_and_keeps_the_numbers_of_its_draw(tmp_path):
    base = dict(CFG, model="mlp", hidden=[16], seeds=[0, 1], dropouts=[0.0], n_pos=8, n_neg=8, val_fraction=0.25,
                batch_size=4, epochs=3)
    fixed, per_seed = TrainConfig(**base), TrainConfig(**base, draws="seed")
    for cfg in (fixed, per_seed):
        cfg.validate()
    assert [c["subsample_seed"] for c in per_seed.cells()] == [c["seed"] for c in per_seed.cells()]
    assert {c["subsample_seed"] for c in fixed.cells()} == {0}
    # seed 0's own draw is the fixed design's draw: the same runs, by name
    same = {c["seed"]: c for c in fixed.cells()}
    from iwtheory.runs.config import config_hash
    assert {config_hash(c) for c in per_seed.cells() if c["seed"] == 0} == \
        {config_hash(c) for c in fixed.cells() if c["seed"] == 0}
    assert same  # (both sweeps name two weights per seed)
    run_train(per_seed, tmp_path / "per", progress=False)
    run_train(fixed, tmp_path / "fixed", progress=False)
    a, b = frame(tmp_path / "per"), frame(tmp_path / "fixed")
    # a model's numbers never depend on its stack mates: seed 0 trains on the same draw either way
    pd.testing.assert_frame_equal(a[a.seed == 0].reset_index(drop=True), b[b.seed == 0].reset_index(drop=True))
    # seed 1 trains on other images: other data, other numbers
    fps = {}
    for d in (tmp_path / "per").iterdir():
        if (d / "config.json").is_file():
            c = json.loads((d / "config.json").read_text())
            fps.setdefault(c["seed"], set()).add(c["data_fingerprint"])
    assert len(fps[0]) == len(fps[1]) == 1 and fps[0] != fps[1]
    s1a = a[(a.seed == 1) & (a.epoch == 3)].sort_values("weight").train_loss.to_numpy()
    s1b = b[(b.seed == 1) & (b.epoch == 3)].sort_values("weight").train_loss.to_numpy()
    assert not np.allclose(s1a, s1b)


def test_draws_and_the_learning_rate_decay_are_checked_and_named_in_a_run_only_when_used():
    with pytest.raises(ConfigError, match="draws must be one of"):
        TrainConfig(**dict(CFG, draws="per_seed")).validate()
    for bad in (-0.1, 1.5, True, "0.4"):
        with pytest.raises(ConfigError, match="lr_decay must lie in"):
            TrainConfig(**dict(CFG, lr_decay=bad)).validate()
    assert "lr_decay" not in TrainConfig(**CFG).cells()[0]
    assert TrainConfig(**dict(CFG, lr_decay=0.4)).cells()[0]["lr_decay"] == 0.4
