"""Trust, round two: the failures an audit found, each reproduced. No record text reaches LaTeX raw, no snapshot
that is not one, no report from a partial sweep, no unbounded or blocking read, one error line, no hang."""

import json
import os
import subprocess
import sys
import threading

import numpy as np
import pandas as pd
import pytest

from iwtheory import cli
from iwtheory.runs.records import RecordError, read_json, read_jsonl

from .conftest import TINY, run_cli, toml

HOSTILE = r"x}\input{/etc/hostname}\iffalse"


def one_error_line(capsys, rc, *needles):
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert err.startswith("iwtheory: error:") and "\n" not in err and "unexpected" not in err, err
    for n in needles:
        assert n in err, err
    return err


# ---- 1. record text bound for LaTeX ---------------------------------------------------------------------------

def test_hostile_regime_names_reach_no_table_raw():
    from iwtheory.report import tables as T

    summary = pd.DataFrame({"variant": [HOSTILE, HOSTILE], "weight": [0.0625, 16.0], "peak_effect": [0.5, 0.4],
                            "tail_abs_effect": [0.01, 0.02], "tail_se": [0.001, 0.002], "ratio": [0.02, 0.05],
                            "settle_time": [10.0, np.inf]})
    tex = T.early_late_table(summary)
    assert "\\input{" not in tex and "\\iffalse" not in tex
    consts = pd.DataFrame({"loss": [HOSTILE], "weight": [1.0], "predicted": [1.0], "at_end": [1.0], "fit": [1.0],
                           "rel_error": [0.0]})
    assert "\\input{" not in T.theory_table(consts)


def test_an_import_with_hostile_names_is_refused():
    from iwtheory.runs.gpu_import import check_names

    check_names(pd.DataFrame({"experiment": ["study_cifar"], "regime": ["l2_sub"]}))
    with pytest.raises(RecordError, match="regime"):
        check_names(pd.DataFrame({"experiment": ["study_cifar"], "regime": [HOSTILE]}))


# ---- 2. snapshots that are what they say ------------------------------------------------------------------------

def test_readme_snapshot_refuses_what_is_no_finished_full_reproduce(tmp_path):
    from pathlib import Path

    from iwtheory.report import readme

    good = Path(__file__).resolve().parents[2] / "results" / "cpu"
    gen, res = tmp_path / "generated", tmp_path / "results"
    gen.mkdir()
    res.mkdir()
    for name in ("claims.json", "reproduce.json"):
        (res / name).write_bytes((good / name).read_bytes())
    claims = json.loads((good / "claims.json").read_text())
    timing = json.loads((good / "reproduce.json").read_text())
    cases = [({}, timing, "list of claims"), (claims[:-1], timing, "in that order"),
             ([{**c, "quick": True} for c in claims], timing, "quick variant"),
             (claims, {**timing, "quick": True}, "reproduce --quick"),
             ([{**c, "statistic": ""} if c["id"] == "C3" else c for c in claims], timing, "measured C3")]
    for c, t, why in cases:
        (gen / "claims.json").write_text(json.dumps(c))
        (gen / "reproduce.json").write_text(json.dumps(t))
        with pytest.raises(ValueError, match=why):
            readme.snapshot(gen, res)
        assert (res / "claims.json").read_bytes() == (good / "claims.json").read_bytes()  # left as it was
    (gen / "claims.json").write_text(json.dumps(claims))
    (gen / "reproduce.json").write_text(json.dumps(timing))
    assert len(readme.snapshot(gen, res)) == 2


# ---- 3. no report from a partial sweep --------------------------------------------------------------------------

def test_claims_refuse_a_sweep_killed_before_its_second_group(tmp_path, capsys):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(toml(TINY))
    out = tmp_path / "runs"
    log = tmp_path / "points.log"
    run_cli(["train", cfg, "--out", tmp_path / "ref", "--no-progress"], env={"IWTHEORY_FAULT_LOG": str(log)},
            check=True)
    points = log.read_text().splitlines()
    first_of_group_2 = [k for k, p in enumerate(points, 1) if p.split()[1] == "group-finished"][0] + 1
    assert run_cli(["train", cfg, "--out", out, "--no-progress"],
                   env={"IWTHEORY_FAULT": str(first_of_group_2)}).returncode == -9
    rc = cli.main(["claims", "--runs", str(out), "--out", str(tmp_path / "paper"), "--no-gpu-results"])
    one_error_line(capsys, rc, "unfinished")
    # the second group not even started: its runs are missing, not unfinished, and the sweep says so
    for d in out.iterdir():
        if d.is_dir() and not (d / "done").exists() and d.name not in ("_locks", "_groups"):
            import shutil

            shutil.rmtree(d)
    rc = cli.main(["claims", "--runs", str(out), "--out", str(tmp_path / "paper"), "--no-gpu-results"])
    one_error_line(capsys, rc, "partial sweep", "misses 2 of its 4 planned runs")
    rc = cli.main(["claims", "--runs", str(out), "--out", str(tmp_path / "paper"), "--no-gpu-results", "--partial"])
    assert rc == 0


# ---- 4. bounded, typed reads -------------------------------------------------------------------------------------

def test_a_fifo_a_device_a_link_and_a_huge_file_are_refused_without_hanging(tmp_path):
    fifo = tmp_path / "metrics.jsonl"
    os.mkfifo(fifo)
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("e", pytest.raises(RecordError, read_jsonl, fifo)))
    t.start()
    t.join(10)
    assert not t.is_alive(), "reading a FIFO blocked"
    assert "FIFO" in str(result["e"].value)
    with pytest.raises(RecordError, match="character device"):
        read_json("/dev/zero")
    link = tmp_path / "config.json"
    link.symlink_to("/etc/hostname")
    with pytest.raises(RecordError, match="a link"):
        read_json(link)
    big = tmp_path / "summary.json"
    with open(big, "wb") as f:
        f.truncate(3 * 2**30)  # sparse: 3 GB by its size, nothing on disk
    with pytest.raises(RecordError, match="more than"):
        read_json(big)


def test_a_config_that_is_a_fifo_or_a_folder_is_named_for_what_it_is(tmp_path, capsys):
    fifo = tmp_path / "c.toml"
    os.mkfifo(fifo)
    one_error_line(capsys, cli.main(["theory", str(fifo), "--out", str(tmp_path / "r")]), "FIFO")
    one_error_line(capsys, cli.main(["theory", str(tmp_path), "--out", str(tmp_path / "r")]), "a folder")


def test_a_run_folder_that_is_a_link_is_neither_read_nor_written(tmp_path, capsys):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(toml({**TINY, "weights": [1.0], "seeds": [0]}))
    out = tmp_path / "runs"
    assert cli.main(["train", str(cfg), "--out", str(out), "--no-progress"]) == 0
    run = next(d for d in out.iterdir() if (d / "done").exists())
    elsewhere = tmp_path / "elsewhere"
    run.rename(elsewhere)
    run.symlink_to(elsewhere)
    (elsewhere / "done").unlink()
    rc = cli.main(["train", str(cfg), "--out", str(out), "--no-progress"])
    one_error_line(capsys, rc, "is a link")
    assert not (elsewhere / "done").exists()


# ---- 5-8. one line for every failure a user can cause; no hang; no silent surprise --------------------------------

def test_errors_a_user_can_cause_are_one_line(tmp_path, capsys):
    cfg = tmp_path / "t.toml"
    cfg.write_text('name = "t"\ndataset = "soudry_toy"\nweights = [1.0]\nlosses = ["exponential"]\n'
                   'methods = ["gd"]\nsteps = 10\nn_records = 4\n')
    out = str(tmp_path / "runs")
    one_error_line(capsys, cli.main(["theory", str(cfg), "--out", out, "--set", f"lr={10 ** 400}"]),
                   "beyond the range of a float")
    one_error_line(capsys, cli.main(["theory", str(cfg), "--out", out, "--quick"]), "no [quick] table")
    one_error_line(capsys, cli.main(["theory", str(cfg), "--out", ""]), "--out is empty")
    one_error_line(capsys, cli.main(["claims", "--runs", out, "--gpu-results", str(tmp_path / "nope")]),
                   "no such folder")
    one_error_line(capsys, cli.main(["theory", str(cfg), "--out", out, "--set", "data={n_random = -3}"]),
                   "n_random")
    assert not os.path.exists(out) or not any(os.scandir(out))


def test_a_huge_gap_ends_at_once_instead_of_looping(tmp_path):
    from iwtheory.theory.data import gaussian_mixture, soudry_toy

    with pytest.raises(ValueError, match="gap must lie"):
        soudry_toy(gap=1e300)
    with pytest.raises(ValueError, match="both classes"):
        gaussian_mixture(n=1)


def test_gradient_flow_refuses_data_it_cannot_separate():
    from iwtheory.theory import gradient_flow
    from iwtheory.theory.checks import NotSeparableError

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 20))
    y = np.where(rng.random(300) < 0.5, 1.0, -1.0)
    with pytest.raises(NotSeparableError, match="separable"):
        gradient_flow(X, y, t_max=1e10)


def test_the_last_resort_is_one_line_and_the_traceback_is_on_request(monkeypatch, capsys, tmp_path):
    from iwtheory.report import build

    def boom(*a, **k):
        raise TypeError("a bug nobody named")

    monkeypatch.setattr(build, "make_claims", boom)
    rc = cli.main(["claims", "--runs", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("iwtheory: error: unexpected TypeError: a bug nobody named") and "\n" not in err
    with pytest.raises(TypeError):
        cli.main(["--debug", "claims", "--runs", str(tmp_path)])


def test_no_traceback_reaches_a_user_from_a_subprocess(tmp_path):
    """The console entry point end to end: a damaged config is one line on stderr, no Python traceback."""
    cfg = tmp_path / "bad.toml"
    cfg.write_text('name = "t"\ndataset = "soudry_toy"\nweights = "heavy"\n')
    r = subprocess.run([sys.executable, "-m", "iwtheory", "theory", str(cfg)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.count("\n") == 1


def test_a_diverged_theory_run_says_so_and_c11_measures_no_agreement_from_nans():
    from iwtheory.compare.claims import gd_identity
    from iwtheory.theory.data import bl_toy
    from iwtheory.theory.experiment import run_cell

    cell = dict(weight=1.0, loss="exponential", depth=1, method="gd", seed=0, n_records=5, init_scale=0.0,
                widths=[], balanced=False, lr=1e6, steps=50, batch_size=None)
    _, summary = run_cell(cell, bl_toy(n_per_class=10))
    assert summary["diverged"] is True
    _, calm = run_cell({**cell, "lr": 0.1}, bl_toy(n_per_class=10))
    assert "diverged" not in calm
    nan, one = [float("nan")] * 2, [1.0, 2.0]
    recs = pd.DataFrame({"method": ["gd"] * 4, "weight": [2.0] * 4, "duplicate": [False, False, True, True],
                         "t": [1, 2, 1, 2], "w": [one, nan, one, nan]})
    assert np.isnan(gd_identity(recs))
    assert gd_identity(recs.assign(w=[one, one, one, one])) == 0.0


@pytest.mark.parametrize("name", ["claims.json", "reproduce.json", "study_speed.json", "cnn_throughput.json",
                                  "population_speed.json", "timings.json"])
@pytest.mark.parametrize("damage", ["{}", "[1, 2]", '{"hardware": 3}', "not json"])
def test_readme_on_a_damaged_snapshot_file_is_one_line_naming_it(tmp_path, name, damage):
    import shutil
    from pathlib import Path

    from iwtheory.report import readme

    good = Path(__file__).resolve().parents[2] / "results" / "cpu"
    res = tmp_path / "results" / "cpu"
    shutil.copytree(good, res)
    (res / name).write_text(damage)
    with pytest.raises(ValueError, match=name.replace(".", r"\.")):
        readme.render(res, Path(__file__).resolve().parents[2] / "experiments")


def test_a_quick_theory_runs_verdicts_are_marked_quick(tmp_path, capsys):
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "runs"
    assert cli.main(["theory", str(root / "experiments" / "theory_angle.toml"), "--quick", "--out", str(out),
                     "--no-progress"]) == 0
    assert all((d / "quick").is_file() for d in out.iterdir() if (d / "done").exists())
    assert cli.main(["claims", "--runs", str(out), "--out", str(tmp_path / "paper"), "--no-gpu-results"]) == 0
    c9 = {e["id"]: e for e in json.loads((tmp_path / "paper" / "generated" / "claims.json").read_text())}["C9"]
    assert c9["statistic"] and c9.get("quick") is True
    assert "quick variant" in capsys.readouterr().out


def test_a_config_reached_through_a_link_extends_the_file_beside_it_not_beside_the_link(tmp_path, capsys):
    real, elsewhere = tmp_path / "real", tmp_path / "elsewhere"
    real.mkdir()
    elsewhere.mkdir()
    (real / "base.toml").write_text('name = "b"\ndataset = "soudry_toy"\nweights = [1.0]\nlosses = ["exponential"]\n'
                                    'methods = ["gd"]\nsteps = 10\nn_records = 3\n')
    (elsewhere / "base.toml").write_text('name = "b"\nweights = "a decoy beside the link"\n')
    (real / "top.toml").write_text('extends = "base.toml"\nname = "top"\n')
    (elsewhere / "top.toml").symlink_to(real / "top.toml")
    assert cli.main(["theory", str(elsewhere / "top.toml"), "--out", str(tmp_path / "runs"), "--no-progress"]) == 0


def test_a_full_disk_names_the_file_and_leaves_no_tmp_behind(tmp_path, monkeypatch):
    import errno

    from iwtheory.runs import records

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(records.os, "fsync", full)
    target = tmp_path / "summary.json"
    with pytest.raises(OSError, match="summary.json"):
        records._atomic_write(target, "{}")
    assert not list(tmp_path.iterdir())


def test_a_regime_sweeping_two_learning_rates_is_reported_not_a_pandas_error(tmp_path, capsys):
    cfg = tmp_path / "two.toml"
    cfg.write_text(toml({**TINY, "lrs": [0.05, 0.1], "weights": [1.0, 2.0], "seeds": [0]}))
    out = str(tmp_path / "runs")
    assert cli.main(["train", str(cfg), "--out", out, "--no-progress"]) == 0
    for cmd in ("tables", "figures", "claims"):
        assert cli.main([cmd, "--runs", out, "--out", str(tmp_path / cmd), "--no-gpu-results"]) == 0, cmd
    assert "several values of lr" in capsys.readouterr().out


def test_a_features_file_that_is_a_fifo_or_a_link_is_named_not_waited_on(tmp_path):
    from iwtheory.runs.records import read_features

    good = tmp_path / "good.npz"
    np.savez(good, features=np.zeros((3, 2)), labels=np.ones(3), weight=np.zeros(2), bias=np.zeros(1), epoch=4)
    assert read_features(good)["features"].shape == (3, 2)
    fifo = tmp_path / "epoch_00004.npz"
    os.mkfifo(fifo)
    link = tmp_path / "epoch_00008.npz"
    link.symlink_to(good)
    for bad in (fifo, link):
        with pytest.raises(RecordError, match="not a regular file; refusing to read it"):
            read_features(bad)
