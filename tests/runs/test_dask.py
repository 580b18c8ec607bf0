"""Sweeps on a Dask LocalCluster: records identical to the in-process run, a killed worker's unit resumes
elsewhere, two clients never duplicate a record, and a failing unit is reported while the others go on."""

import os
import signal
import time
from pathlib import Path

import pytest
import torch

from iwtheory.runs.config import ConfigError
from iwtheory.runs.records import load
from iwtheory.runs.theory import TheoryConfig, run_theory
from iwtheory.runs.train import TrainConfig, run_study

from ..faults.conftest import TINY, tree

distributed = pytest.importorskip("distributed")
from iwtheory.runs.launch import (UnitsFailed, connect, distributed_theory, distributed_train,  # noqa: E402
                                  parse_scheduler)

pytestmark = pytest.mark.slow
THEORY = TheoryConfig(name="dk", dataset="soudry_toy", data={"n_random": 12}, weights=[1.0, 2.0, 4.0],
                      losses=["logistic", "exponential"], methods=["gd"], seeds=[0, 1], steps=500, n_records=8)


@pytest.fixture(scope="module")
def client():
    with connect("local:2") as c:
        yield c


def in_process(cfgs, out):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what a local cluster's workers use: then every bit agrees
    try:
        run_study(cfgs, out, progress=False)
    finally:
        torch.set_num_threads(threads)


def test_scheduler_specs():
    assert parse_scheduler("local") == ("local", None) and parse_scheduler("local:3") == ("local", 3)
    assert parse_scheduler("tcp://10.0.0.1:8786") == ("tcp://10.0.0.1:8786", None)
    for bad in ("local:0", "local:x", "slurm", ""):
        with pytest.raises(ConfigError):
            parse_scheduler(bad)


def test_a_theory_sweep_on_two_workers_equals_the_in_process_one(client, tmp_path):
    run_theory(THEORY, tmp_path / "a", progress=False)
    done = distributed_theory(client, THEORY, tmp_path / "b", progress=False)
    assert len(done) == len(THEORY.cells())
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    assert distributed_theory(client, THEORY, tmp_path / "b", progress=False) == []  # nothing left to do


def test_a_cnn_sweep_on_two_workers_equals_the_in_process_one(client, tmp_path):
    cfgs = [TrainConfig(**TINY)]
    in_process(cfgs, tmp_path / "a")
    distributed_train(client, cfgs, tmp_path / "b", progress=False)
    assert tree(tmp_path / "a") == tree(tmp_path / "b")


def test_a_killed_worker_s_unit_resumes_on_another_and_ends_identical(client, tmp_path):
    cfgs = [TrainConfig(**{**TINY, "epochs": 60, "eval_dense": 2, "eval_points": 5, "max_models": 4})]
    in_process(cfgs, tmp_path / "ref")
    out = tmp_path / "run"
    import threading

    result = {}
    th = threading.Thread(target=lambda: result.setdefault("done", distributed_train(client, cfgs, out,
                                                                                      progress=False)))
    th.start()
    pid = None
    deadline = time.time() + 120
    while time.time() < deadline and pid is None:  # wait for a unit to be mid-way: its checkpoint exists
        ckpts = list((out / "_groups").glob("*.pt")) if (out / "_groups").exists() else []
        locks = [p.read_text().split() for p in (out / "_locks").glob("*.lock")] if ckpts else []
        pids = {int(x[0]) for x in locks if x}
        if ckpts and pids:
            pid = pids.pop()
        time.sleep(0.05)
    assert pid is not None and pid != os.getpid(), "no unit started on a worker"
    os.kill(pid, signal.SIGKILL)  # the worker process running the unit
    th.join(timeout=300)
    assert not th.is_alive() and result.get("done"), "the sweep did not finish after the kill"
    assert tree(out) == tree(tmp_path / "ref")
    df = load(out)
    assert not df.duplicated(["config_hash", "epoch"]).any()


def test_two_clients_submitting_one_sweep_write_each_record_once(tmp_path):
    import threading

    cfgs = [TrainConfig(**{**TINY, "epochs": 20, "eval_dense": 2, "eval_points": 4})]
    in_process(cfgs, tmp_path / "ref")
    out = tmp_path / "run"
    errors = []

    def one(c):
        try:
            distributed_train(c, cfgs, out, progress=False)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    # two clients, each with its own cluster, submitting at once (clusters start one at a time: distributed
    # does not start two in one process concurrently)
    with connect("local:1") as c1, connect("local:1") as c2:
        threads = [threading.Thread(target=one, args=(c,)) for c in (c1, c2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=600)
    assert not errors, errors
    assert tree(out) == tree(tmp_path / "ref")
    assert not load(out).duplicated(["config_hash", "epoch"]).any()


def test_a_failing_unit_is_reported_and_the_others_go_on(client, tmp_path):
    good = TrainConfig(**TINY)
    bad = TrainConfig(**{**TINY, "name": "bad", "dataset": "cifar10", "synthetic": {}})  # no data anywhere
    with pytest.raises(UnitsFailed, match=r"2 of 4 units failed.*runs [0-9a-f]{16}, [0-9a-f]{16}\): "
                                          r"DataFileError: no CIFAR-10 batches"):
        distributed_train(client, [good, bad], tmp_path / "runs", data_dir=str(tmp_path / "nowhere"),
                          progress=False)
    assert len(load(tmp_path / "runs").config_hash.unique()) == len(good.cells())  # the good units finished
    assert Path(tmp_path / "runs").is_dir()


def test_the_launcher_is_the_one_choice_and_both_kinds_write_the_same_runs(client, tmp_path):
    """``launcher`` picks serial or Dask once; the CLI and reproduce call ``run`` alike. The long runs stay in
    this process either way."""
    from iwtheory.runs.inside import InsideConfig
    from iwtheory.runs.launch import Distributed, Serial, launcher

    with launcher(None) as serial:
        assert type(serial) is Serial
        assert serial.run("theory", THEORY, tmp_path / "a", progress=False) == len(THEORY.cells())
    dist = Distributed(client)
    assert dist.run("theory", THEORY, tmp_path / "b", progress=False) == len(THEORY.cells())
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    inside = InsideConfig(name="lk", data={"n_per_class": 4, "seed": 0}, weights=[1.0, 4.0], seeds=[0], hidden=[4],
                          t_max=1e4, n_records=4, check_t=1.0, n_test=10, noise_count=5)
    assert dist.run("inside", inside, tmp_path / "c", progress=False) == 2
    assert len(load(tmp_path / "c").config_hash.unique()) == 2
