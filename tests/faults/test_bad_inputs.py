"""Bad inputs end in one line, `iwtheory: error: ...` and exit code 2, never a traceback; two writers
of one folder never duplicate a record."""

import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iwtheory.cli import main
from iwtheory.runs.config import ConfigError, config_hash, from_dict
from iwtheory.runs.records import load
from iwtheory.runs.theory import TheoryConfig
from iwtheory.runs.train import TrainConfig
from iwtheory.theory import max_margin
from iwtheory.theory.checks import DataError, WeightError
from iwtheory.theory.dynamics import gradient_descent

from .conftest import TINY, run_cli, toml, tree

THEORY = 'name = "t"\ndataset = "soudry_toy"\ndata = { n_random = 4 }\nmethods = ["gd"]\nsteps = 50\nn_records = 4\n'


def one_line_error(capsys, argv, pattern):
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("iwtheory: error:") and "\n" not in err and "Traceback" not in err \
        and "error: unexpected" not in err, err
    assert pattern in err, err


@pytest.mark.parametrize("text, pattern", [
    ('dataset = "soudry_toy"\n', "missing required key(s) ['name']"),
    ('name = "t"\ndata = { bogus = 1 }\n', "t: data: unknown key(s) ['bogus']"),
    ('name = "t"\ndata = { n_per_class = "many" }\n', "data.n_per_class: expected an integer"),
    ('name = "t"\nn_records = 0\n', "steps, n_records and batch_size must be at least 1"),
    ('name = "t"\nweights = [1.0, 1.0]\n', "lists a cell twice"),
    ('name = "t"\nt_max = 0.5\n', "t_max must exceed 1"),
    ('name = "t"\ndata = { n_per_class = 0 }\n', "data {'n_per_class': 0} for bl_toy"),
])
def test_bad_theory_configs(tmp_path, capsys, text, pattern):
    p = tmp_path / "c.toml"
    p.write_text(text)
    one_line_error(capsys, ["theory", p, "--out", tmp_path / "r"], pattern)


@pytest.mark.parametrize("change, pattern", [
    ({"checkpoint_every": 0}, "checkpoint_every must be at least 1"),
    ({"synthetic": {"n_train": 10, "colour": 1}}, "synthetic: unknown key(s) ['colour']"),
    ({"weights": [1.0, -2.0]}, "weights must be positive numbers"),
    ({"momentum": 1.5}, "momentum must lie in [0, 1)"),
    ({"hidden": [16], "model": "bl_cnn"}, "hidden and linear are MLP settings"),
    ({"weight_norm": "sum"}, "weight_norm must be one of"),
])
def test_bad_train_configs(tmp_path, capsys, change, pattern):
    p = tmp_path / "c.toml"
    p.write_text(toml({**TINY, **change}))
    one_line_error(capsys, ["train", p, "--out", tmp_path / "r"], pattern)


def test_bad_command_lines(tmp_path, capsys, tiny_toml):
    one_line_error(capsys, ["train", tiny_toml, "--device", "nonsense"], "'nonsense' is not a device torch knows")
    one_line_error(capsys, ["train", tiny_toml, "--device", "cuda:3", "--out", tmp_path / "r"], "cuda:3")
    afile = tmp_path / "afile"
    afile.write_text("")
    one_line_error(capsys, ["train", tiny_toml, "--out", afile], "is a file, not a folder of run records")
    one_line_error(capsys, ["train", tiny_toml, "--out", afile / "below"], "is not writable")
    one_line_error(capsys, ["train", tiny_toml, "--set", "wieghts=[1.0]"], "--set wieghts: unknown key")
    one_line_error(capsys, ["train", tmp_path / "none.toml"], "does not exist")
    one_line_error(capsys, ["train", tiny_toml, "--regime", "l2"], "has no [regimes] tables")
    one_line_error(capsys, ["tables", "--runs", tmp_path / "empty"], "no run records at")


def test_the_device_is_checked_before_any_data_is_read(tmp_path, capsys):
    p = tmp_path / "c.toml"
    p.write_text('name = "x"\ndataset = "cifar10"\n')  # no data anywhere: the device error must come first
    one_line_error(capsys, ["train", p, "--device", "tpu", "--data-dir", tmp_path / "nowhere"], "tpu")


@pytest.mark.parametrize("call, error", [
    (lambda: max_margin("abc", [1]), DataError),
    (lambda: max_margin([[1.0, 2.0], [3.0]], [1, 1]), DataError),
    (lambda: max_margin([[1.0, 2.0]], [1, 1]), DataError),
    (lambda: max_margin([[1.0, 2.0]], [[1]]), DataError),
    (lambda: gradient_descent([[1.0, 0.0]], [1.0], weights="heavy"), WeightError),
    (lambda: gradient_descent([[1.0, 0.0]], [1.0], weights=[1.0, 2.0]), WeightError),
])
def test_the_api_raises_its_named_errors_for_wrong_types_and_shapes(call, error):
    with pytest.raises(error):
        call()


VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True, allow_infinity=True),
                   st.text(max_size=5), st.lists(st.integers(-3, 3), max_size=3),
                   st.lists(st.floats(-2, 2), max_size=3),
                   st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))


@settings(max_examples=150, deadline=None)
@given(data=st.dictionaries(st.sampled_from(sorted(f.name for f in TrainConfig.__dataclass_fields__.values())
                                            + ["bogus"]), VALUES, max_size=6))
def test_random_train_configs_give_a_config_or_a_config_error(data):
    try:
        cfg = from_dict(TrainConfig, {"name": "x", **data})
    except ConfigError:
        return
    assert len(cfg.cells()) >= 1


@settings(max_examples=150, deadline=None)
@given(data=st.dictionaries(st.sampled_from(sorted(TheoryConfig.__dataclass_fields__) + ["bogus"]), VALUES,
                            max_size=6))
def test_random_theory_configs_give_a_config_or_a_config_error(data):
    try:
        cfg = from_dict(TheoryConfig, {"name": "x", **data})
    except ConfigError:
        return
    assert len(cfg.cells()) >= 1


def tiny_sweep(tmp_path):
    """The TINY config written to a file, and its runs' hashes."""
    p = tmp_path / "c.toml"
    p.write_text(toml(TINY))
    return p, [config_hash(c) for c in TrainConfig(**TINY).cells()]


def test_a_second_writer_refuses_naming_the_holder(tmp_path, capsys):
    import socket

    from iwtheory.runs.locks import hold_runs

    p, hashes = tiny_sweep(tmp_path)
    with hold_runs(tmp_path / "runs", hashes[:1]):
        one_line_error(capsys, ["train", p, "--out", tmp_path / "runs"],
                       f"is being written by PID {os.getpid()} on {socket.gethostname()}")
    assert not any((tmp_path / "runs" / h / "done").exists() for h in hashes)


def test_deleting_the_lock_folder_does_not_let_a_second_writer_in(tmp_path, capsys):
    import shutil

    from iwtheory.runs.locks import hold_runs

    p, hashes = tiny_sweep(tmp_path)
    with hold_runs(tmp_path / "runs", hashes[:1]):
        shutil.rmtree(tmp_path / "runs" / "_locks")  # the holder information is gone, the lock is not
        one_line_error(capsys, ["train", p, "--out", tmp_path / "runs"], f"run {hashes[0]} is being written by")
    assert not any((tmp_path / "runs" / h / "done").exists() for h in hashes)


@pytest.mark.slow
def test_two_writers_of_one_folder_write_each_record_once(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml({**TINY, "epochs": 20, "eval_dense": 2, "eval_points": 4}))
    ref = tmp_path / "ref"
    run_cli(["train", cfg, "--out", ref, "--no-progress"], check=True)
    out = tmp_path / "runs"
    args = [sys.executable, "-m", "iwtheory", "train", str(cfg), "--out", str(out), "--no-progress", "--wait", "300"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    results = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    df = load(out)  # checks that every finished run holds each scheduled epoch exactly once
    assert not df.duplicated(["config_hash", "epoch"]).any() and len(df) == len(load(ref))
    assert tree(out) == tree(ref)
