"""kill -9 at seeded write points, then a rerun: the records equal an uninterrupted run's, byte for byte."""

import numpy as np
import pytest

from .conftest import run_cli, tree

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def reference(tmp_path_factory, request):
    from .conftest import TINY, toml

    d = tmp_path_factory.mktemp("ref")
    cfg = d / "tiny.toml"
    cfg.write_text(toml(TINY))
    log = d / "points.log"
    run_cli(["train", cfg, "--out", d / "runs", "--no-progress"], env={"IWTHEORY_FAULT_LOG": str(log)}, check=True)
    points = log.read_text().splitlines()
    return cfg, tree(d / "runs"), points


def test_every_write_point_is_logged(reference):
    _, files, points = reference
    tags = {p.split()[1] for p in points}
    assert {"metrics", "checkpoint", "summary", "done", "features", "group-finished"} <= tags
    assert sum(name.endswith("done") for name in files) == 4  # 2 weights x 2 seeds


def test_kill_9_at_20_seeded_points_resumes_byte_identically(reference, tmp_path):
    cfg, files, points = reference
    rng = np.random.default_rng(2026)
    chosen = sorted(rng.choice(np.arange(1, len(points) + 1), size=min(20, len(points)), replace=False).tolist())
    for k in chosen:
        out = tmp_path / f"kill{k}"
        r = run_cli(["train", cfg, "--out", out, "--no-progress"], env={"IWTHEORY_FAULT": str(k)})
        assert r.returncode == -9, f"point {k} ({points[k - 1]}): the process was not killed"
        r = run_cli(["train", cfg, "--out", out, "--no-progress"], check=True)
        got = tree(out)
        assert got.keys() == files.keys(), f"after a kill at {points[k - 1]}: files differ"
        for name, data in files.items():
            assert got[name] == data, f"after a kill at {points[k - 1]}: {name} differs"
        assert not list((out / "_groups").glob("*.pt")), f"after a kill at {points[k - 1]}: a checkpoint was left"
        assert not list((out / "_groups").glob("*.set-aside-*")), f"{points[k - 1]}: a consistent checkpoint " \
                                                                   "was set aside"


def test_a_theory_sweep_killed_mid_write_resumes(tmp_path):
    cfg = tmp_path / "t.toml"
    cfg.write_text('name = "t"\ndataset = "soudry_toy"\ndata = { n_random = 6 }\nweights = [1.0, 4.0]\n'
                   'losses = ["exponential"]\nmethods = ["gd"]\nsteps = 200\nn_records = 8\n')
    run_cli(["theory", cfg, "--out", tmp_path / "ref", "--no-progress"], check=True)
    want = tree(tmp_path / "ref")
    for k in (1, 2, 3, 5):  # metrics, summary, done of the first run; the second run's metrics
        out = tmp_path / f"k{k}"
        assert run_cli(["theory", cfg, "--out", out, "--no-progress"], env={"IWTHEORY_FAULT": str(k)}).returncode == -9
        run_cli(["theory", cfg, "--out", out, "--no-progress"], check=True)
        assert tree(out) == want


def test_a_kill_between_two_runs_of_one_stack_keeps_the_partner_angle(reference, tmp_path):
    """Killed after one run of a stack wrote ``done`` and before its mate did: the mate used to be trained again
    alone, without its unweighted partner, and recorded no angle to it. The group now trains whole again."""
    cfg, files, points = reference
    dones = [k for k, p in enumerate(points, 1) if p.split()[1] == "done"]
    for k in dones[1::2]:  # each stack's second ``done``: its first run is finished by then
        out = tmp_path / f"kill{k}"
        assert run_cli(["train", cfg, "--out", out, "--no-progress"], env={"IWTHEORY_FAULT": str(k)}).returncode == -9
        run_cli(["train", cfg, "--out", out, "--no-progress"], check=True)
        assert tree(out) == files, f"after a kill at {points[k - 1]} the records differ"
