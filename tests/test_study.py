"""A researcher's own study: a Task of arrays (labels, weights, probes checked), Study through the TOML runner's
records, the same study from a config, kill -9 resume, the reports, and every bad input refused before
anything is written."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from iwtheory import Study, Task
from iwtheory.nets.arrays import TaskError, load_npz
from iwtheory.nets.population import PopulationError
from iwtheory.runs.config import ConfigError

FACTORY = '''
from torch import nn


def make_net(seed, width=12):
    return nn.Sequential(nn.Linear(4, width), nn.ReLU(), nn.Linear(width, 1))


def make_three(seed):
    return nn.Sequential(nn.Linear(4, 12), nn.ReLU(), nn.Linear(12, 3))
'''


def data(n=40, k=2, seed=0):
    r = np.random.default_rng(seed)
    y = np.arange(n) % k
    x = (r.normal(size=(n, 4)) + 2.0 * np.eye(k, 4)[y]).astype(np.float32)
    return x, y, np.exp(0.5 * x[:, 1])


@pytest.fixture
def factories(tmp_path, monkeypatch):
    (tmp_path / "userfactories.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    import userfactories

    importlib.reload(userfactories)
    return userfactories


def small(task, factory, **kw):
    args = dict(seeds=range(2), epochs=6, lr=0.05, batch_size=8, eval_dense=6, eval_tail=0, max_models=8)
    return Study(task, factory, **{**args, **kw})


# ---- labels -------------------------------------------------------------------------------------------

def test_zero_one_labels_train_on_every_row(tmp_path, factories):
    """The old array path kept rows labelled exactly +-1 and dropped the 0s: with 0/1 labels it trained on the
    positives only. Every row is a training example now, the 0s the negatives."""
    x, y, r = data()
    task = Task(x, y, weights=r, probes={"test": (x, y)})
    assert task.classes == ("0", "1") and (task.y == np.where(y == 1, 1.0, -1.0)).all()
    df = small(task, factories.make_net).run(tmp_path / "runs", progress=False)
    summary = json.loads(next((tmp_path / "runs").glob("*/summary.json")).read_text())
    assert summary["task_sizes"]["train"] == len(y)
    last = df[df.epoch == df.epoch.max()]
    assert last.test_balanced_acc.notna().all()  # both classes present: no NaN as with the positives only


@pytest.mark.parametrize("y,positive,want", [
    ([-1, 1, 1, -1], None, [-1, 1, 1, -1]),
    ([0, 1, 1, 0], None, [-1, 1, 1, -1]),
    (["cat", "dog", "dog", "cat"], "cat", [1, -1, -1, 1]),
    ([3, 7, 7, 3], 3, [1, -1, -1, 1]),
])
def test_binary_labels_name_their_positive_class(y, positive, want):
    x = np.zeros((4, 2))
    assert Task(x, y, positive=positive).y.tolist() == want


@pytest.mark.parametrize("y,positive,match", [
    ([3, 7, 7, 3], None, "do not say which is positive"),
    ([1, 1, 1, 1], None, "one label value"),
    ([0, 1, 1, 0], 2, "not one of the labels"),
    ([0, 1, 2, 0], 1, "K-class"),
    ([0.0, 1.0, np.nan, 0.0], None, "NaN"),
    ([[0], [1], [1], [0]], None, r"\(N,\)"),
])
def test_ambiguous_or_broken_labels_are_refused(y, positive, match):
    with pytest.raises(TaskError, match=match):
        Task(np.zeros((4, 2)), y, positive=positive)


def test_three_or_more_values_make_a_k_class_task():
    t = Task(np.zeros((6, 2)), ["b", "a", "c", "a", "b", "c"])
    assert t.n_classes == 3 and t.classes == ("a", "b", "c") and t.y.tolist() == [1, 0, 2, 0, 1, 2]


@pytest.mark.parametrize("kw,match", [
    (dict(x=np.full((4, 2), np.nan)), "NaN or infinite"),
    (dict(x=np.zeros(4)), "feature axis"),
    (dict(x=np.zeros((5, 2))), "5 examples but y has 4"),
    (dict(weights=[1, 1, np.inf, 1]), "NaN or infinite"),
    (dict(weights=[1, -1, 1, 1]), "negative"),
    (dict(weights=[0, 0, 0, 0]), "all zero"),
    (dict(weights=[1, 1, 1]), "one number per example"),
    (dict(probes={"Test Set": np.zeros((2, 2))}), "probe name"),
    (dict(probes={"val": np.zeros((2, 2))}), "probe name"),
    (dict(probes={"test": np.zeros((2, 3))}), "shape"),
    (dict(probes={"test": (np.zeros((2, 2)), [0, 5])}), "outside the task's classes"),
    (dict(probes={"test": (np.zeros((2, 2)), [0])}), "2 inputs but 1 labels"),
    (dict(normalise="zscore"), "normalise must be"),
])
def test_bad_inputs_get_one_clear_error(kw, match):
    args = dict(x=np.zeros((4, 2)), y=[0, 1, 1, 0])
    with pytest.raises(TaskError, match=match):
        Task(**{**args, **kw})


def test_bad_study_settings_are_refused_before_anything_is_written(tmp_path, factories):
    x, y, r = data()
    out = tmp_path / "runs"
    with pytest.raises(ConfigError, match="include 0"):
        Study(Task(x, y, weights=r), factories.make_net, powers=[0.5, 1])
    with pytest.raises(ConfigError, match="the task has none"):
        Study(Task(x, y), factories.make_net, powers=[0, 1])
    with pytest.raises(PopulationError, match=r"\(B, 3\)"):
        Study(Task(x, np.arange(len(y)) % 3), factories.make_net, class_weights=[[1, 1, 1]])
    with pytest.raises(PopulationError, match="cannot read"):
        Study(Task(np.zeros((8, 3)), [0, 1] * 4), factories.make_net, class_weights=[1.0])
    with pytest.raises(ConfigError, match="unknown setting"):
        Study(Task(x, y, weights=r), factories.make_net, regimes={"l2": {"weight_decays": [1e-3]}})
    assert not out.exists()


# ---- the study: records, resume, reports, config -------------------------------------------------------

def test_study_records_are_the_runners_and_the_reports_read_them(tmp_path, factories, capsys):
    x, y, r = data()
    task = Task(x, y, weights=r, probes={"test": (x, y), "shifted": x + 1.0}, name="mine")
    study = small(task, factories.make_net, powers=[0, 1], regimes={"none": {}, "l2": {"weight_decay": 1e-2}})
    df = study.run(tmp_path / "runs", progress=False)
    assert {"seed", "epoch", "regime", "train_acc", "frac_pos_test", "frac_pos_shifted", "test_acc",
            "power"} <= set(df.columns)
    assert len(list((tmp_path / "runs").glob("*/done"))) == 2 * 2 * 2  # powers x seeds x regimes
    config = json.loads(next((tmp_path / "runs").glob("*/config.json")).read_text())
    assert config["model"] == "userfactories:make_net" and config["model_signature"][0] == "0.weight:12x4"
    assert config["weights_fingerprint"] and config["data_fingerprint"]
    again = study.run(tmp_path / "runs", progress=False)  # finished runs are skipped: the same records
    assert again.equals(df)
    claims = {e["id"]: e for e in study.claims()}  # where run() wrote
    assert claims["C5"]["verdict"] == "not applicable" and "no dropout regime" in claims["C5"]["details"]["missing"]
    assert claims["C2"]["verdict"] != "not applicable" and "w = e^p" in claims["C2"]["details"]["weight_axis"]
    from iwtheory.cli import main

    assert main(["claims", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "paper"),
                 "--experiment", "mine"]) == 0
    printed = capsys.readouterr().out
    assert "not applicable: no dropout regime" in printed and "C4" in printed
    assert {p.name for p in study.figures(tmp_path / "fig", tmp_path / "runs")} == {"effect_test.pdf",
                                                                                  "effect_shifted.pdf"}


def test_the_same_study_from_a_config_names_the_same_runs_and_writes_the_same_records(tmp_path, factories):
    x, y, r = data()
    task = Task(x, y, weights=r, probes={"test": (x, y)}, name="mine")
    small(task, factories.make_net, powers=[0, 1]).run(tmp_path / "py", progress=False)
    np.savez(tmp_path / "mine.npz", x=x, y=y, weights=r, probe_test=x, probe_test_y=y)
    assert load_npz(tmp_path / "mine.npz").fingerprint() == task.fingerprint()
    cfg = tmp_path / "mine.toml"
    cfg.write_text(textwrap.dedent(f"""\
        name = "mine"
        dataset = "arrays"
        data = "{tmp_path / 'mine.npz'}"
        model = "userfactories:make_net"
        powers = [0.0, 1.0]
        seeds = [0, 1]
        epochs = 6
        lrs = [0.05]
        batch_size = 8
        eval_dense = 6
        eval_tail = 0
        weight_decays = [0.0]
        n_feature_images = 40
        noise_count = 0
        max_other = 0
        max_models = 8
        device = "cpu"
        """))
    from iwtheory.cli import main

    assert main(["train", str(cfg), "--out", str(tmp_path / "toml"), "--no-progress"]) == 0
    py = {p.parent.name: p.read_bytes() for p in (tmp_path / "py").glob("*/metrics.jsonl")}
    tm = {p.parent.name: p.read_bytes() for p in (tmp_path / "toml").glob("*/metrics.jsonl")}
    assert py.keys() == tm.keys() and len(py) == 4
    assert py == tm


def test_a_factory_that_cannot_travel_is_refused_with_one_line(tmp_path):
    x, y, r = data()
    study = small(Task(x, y, weights=r), lambda seed: __import__("torch").nn.Linear(4, 1))
    with pytest.raises(ConfigError, match="importable module"):
        study.run(tmp_path / "runs", scheduler="local:1")
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_study_on_dask_writes_the_serial_records(tmp_path, factories, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(factories.__file__).rsplit("/", 1)[0])
    x, y, r = data()
    task = Task(x, y, weights=r, probes={"test": (x, y)})
    serial = small(task, factories.make_net, max_models=2)
    serial.run(tmp_path / "serial", progress=False)
    small(task, factories.make_net, max_models=2).run(tmp_path / "dask", scheduler="local:1", progress=False)
    a = {p.parent.name: p.read_bytes() for p in (tmp_path / "serial").glob("*/metrics.jsonl")}
    b = {p.parent.name: p.read_bytes() for p in (tmp_path / "dask").glob("*/metrics.jsonl")}
    assert a.keys() == b.keys() and len(a) == 4
    for k in a:  # one thread in a Dask worker, two here: compare the numbers, not the last bits
        ra = [json.loads(line) for line in a[k].decode().splitlines()]
        rb = [json.loads(line) for line in b[k].decode().splitlines()]
        assert [x["epoch"] for x in ra] == [x["epoch"] for x in rb]
        assert np.allclose([x["train_loss"] for x in ra], [x["train_loss"] for x in rb], rtol=1e-4)


SCRIPT = '''
import sys
import numpy as np
sys.path.insert(0, {here!r})
from iwtheory import Study, Task
from userfactories import make_net
r = np.random.default_rng(0)
y = np.arange(40) % 2
x = (r.normal(size=(40, 4)) + 2.0 * np.eye(2, 4)[y]).astype(np.float32)
task = Task(x, y, weights=np.exp(0.5 * x[:, 1]), probes={{"test": (x, y)}}, name="killed")
Study(task, make_net, seeds=range(2), epochs=6, lr=0.05, batch_size=8, eval_dense=6, eval_tail=0,
      max_models=2).run({out!r}, progress=False)
'''


@pytest.mark.slow
def test_a_study_killed_mid_write_resumes_byte_identically(tmp_path, factories):
    import os

    from tests.faults.conftest import tree

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

    def run(out, **extra):
        script = tmp_path / "s.py"
        script.write_text(SCRIPT.format(here=str(tmp_path), out=str(out)))
        return subprocess.run([sys.executable, str(script)], env={**env, **extra}, capture_output=True, timeout=300)

    log = tmp_path / "points.log"
    assert run(tmp_path / "ref", IWTHEORY_FAULT_LOG=str(log)).returncode == 0
    want = tree(tmp_path / "ref")
    points = log.read_text().splitlines()
    for k in (2, len(points) // 2, len(points) - 1):
        out = tmp_path / f"kill{k}"
        assert run(out, IWTHEORY_FAULT=str(k)).returncode == -9, f"point {points[k - 1]}: not killed"
        assert run(out).returncode == 0
        assert tree(out) == want, f"after a kill at {points[k - 1]} the records differ"


def test_k_class_study_records_each_class_share_and_says_which_claims_apply(tmp_path, factories):
    x, y, _ = data(n=48, k=3)
    task = Task(x, y, probes={"test": (x, y)})
    study = small(task, factories.make_three, class_weights=[[1, 1, 1], [4, 1, 1]])
    df = study.run(tmp_path / "runs", progress=False)
    shares = df[["frac_class0_test", "frac_class1_test", "frac_class2_test"]].sum(axis=1)
    assert np.allclose(shares, 1.0)
    assert set(df.class_weight) == {"1:1:1", "4:1:1"}
    eff = study.effects(tmp_path / "runs")
    assert set(eff.share) == {"frac_class0_test", "frac_class1_test", "frac_class2_test"}
    assert {e["verdict"] for e in study.claims(tmp_path / "runs")} == {"not applicable"}


@pytest.mark.parametrize("arrays,match", [
    (dict(x=np.full((8, 4), np.nan), y=[0, 1] * 4), "NaN or infinite"),
    (dict(x=np.zeros((8, 4)), y=[0, 1] * 4, weights=-np.ones(8)), "negative"),
    (dict(x=np.zeros((8, 4)), y=[0, 1] * 3), "8 examples but y has 6"),
    (dict(x=np.zeros((8, 4)), y=[3, 7] * 4), "do not say which is positive"),
    (dict(x=np.zeros((8, 4)), y=[0, 1] * 4, extra=np.zeros(2)), "unknown array"),
])
def test_a_config_with_bad_arrays_is_one_error_line_and_writes_nothing(tmp_path, capsys, factories, arrays, match):
    np.savez(tmp_path / "bad.npz", **arrays)
    cfg = tmp_path / "bad.toml"
    cfg.write_text(f'name = "bad"\ndataset = "arrays"\ndata = "{tmp_path / "bad.npz"}"\n'
                   'model = "userfactories:make_net"\nepochs = 2\nbatch_size = 4\ndevice = "cpu"\n')
    from iwtheory.cli import main

    assert main(["train", str(cfg), "--out", str(tmp_path / "runs"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("iwtheory: error:") and re_search(match, err[0])
    assert not list((tmp_path / "runs").glob("*/config.json"))


def re_search(pattern: str, text: str) -> bool:
    import re

    return re.search(pattern, text) is not None


def test_explicit_weight_vectors_per_member(tmp_path, factories):
    x, y, r = data()
    vecs = {"uniform": np.ones(len(y)), "clipped": np.minimum(r, 1.5), "iw": r}
    task = Task(x, y, probes={"test": (x, y)}, vectors=vecs, name="vecs")
    study = small(task, factories.make_net)  # every vector of the task by default
    df = study.run(tmp_path / "runs", progress=False)
    assert set(df.vector) == {"uniform", "clipped", "iw"}
    eff = study.effects(tmp_path / "runs")
    assert set(eff.vector) == {"clipped", "iw"} and (eff[eff.epoch == 0].delta == 0).all()
    assert {e["verdict"] for e in study.claims(tmp_path / "runs")} == {"not applicable"}
    # the vector's values are what it trains on: the same run with the powers' r^1 gives the same records
    p = small(Task(x, y, weights=r, probes={"test": (x, y)}, name="pw"), factories.make_net, powers=[0, 1])
    pdf = p.run(tmp_path / "pw", progress=False)
    a = df[df.vector == "iw"].sort_values(["seed", "epoch"]).train_loss_weighted.to_numpy()
    b = pdf[pdf.power == 1].sort_values(["seed", "epoch"]).train_loss_weighted.to_numpy()
    assert np.allclose(a, b, rtol=1e-5)
    with pytest.raises(TaskError, match="'uniform'"):
        Task(x, y, vectors={"iw": r})
    with pytest.raises(TaskError, match="alike"):
        Task(x, y, vectors={"uniform": r})


LOADER = '''
import numpy as np
from iwtheory import Task


def load():
    r = np.random.default_rng(3)
    y = np.arange(32) % 2
    x = (r.normal(size=(32, 4)) + 2.0 * np.eye(2, 4)[y]).astype(np.float32)
    return Task(x, y, weights=np.exp(0.3 * x[:, 0]), probes={"test": (x, y)})
'''

HEADED = '''
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.ReLU())
        self.head = nn.Linear(8, 1)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.body(x))


def make(seed):
    return Net()
'''


def test_a_loader_a_quick_variant_features_and_the_reports_of_one_experiment(tmp_path, monkeypatch, capsys):
    (tmp_path / "userloader.py").write_text(LOADER)
    (tmp_path / "headed.py").write_text(HEADED)
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = tmp_path / "own.toml"
    cfg.write_text('name = "own"\ndataset = "arrays"\ndata = "userloader:load"\nmodel = "headed:make"\n'
                   'powers = [0.0, 1.0]\nseeds = [0, 1]\nepochs = 30\nbatch_size = 8\nrecord_points = 2\n'
                   'device = "cpu"\n[quick]\nepochs = 3\n')
    from iwtheory.cli import main

    out = tmp_path / "runs"
    assert main(["train", str(cfg), "--out", str(out), "--quick", "--no-progress"]) == 0
    run = next(out.glob("*/done")).parent
    assert (run / "quick").is_file() and list((run / "features").glob("*.npz"))  # features() with a linear head
    capsys.readouterr()
    assert main(["claims", "--runs", str(out), "--out", str(tmp_path / "paper"), "--experiment", "own"]) == 0
    assert "quick variant" in capsys.readouterr().out
    entries = json.loads((tmp_path / "paper" / "generated" / "claims_own.json").read_text())
    assert all(e.get("quick") for e in entries)
    assert main(["figures", "--runs", str(out), "--out", str(tmp_path / "fig"), "--experiment", "own"]) == 0
    assert list((tmp_path / "fig").glob("frac_pos_own*"))
    assert main(["tables", "--runs", str(out), "--out", str(tmp_path / "paper"), "--experiment", "own"]) == 0
    assert (tmp_path / "paper" / "tables" / "separation_own.tex").is_file()
    assert main(["claims", "--runs", str(out), "--out", str(tmp_path / "paper"), "--experiment", "nope"]) == 2


def test_torch_tensors_are_taken_as_arrays():
    import torch

    x, y, r = data()
    t = Task(torch.from_numpy(x), torch.from_numpy(y), weights=torch.from_numpy(r))
    assert t.fingerprint() == Task(x, y, weights=r).fingerprint()
