"""Long runs of homogeneous nets: the step rules follow the same flow, the records sit on their grid, and the
runner writes complete, re-readable runs."""

import numpy as np
import pytest
import torch

from iwtheory.nets.longrun import angle_rows, flow_agreement, forward, init_params, train_long
from iwtheory.theory.data import bl_toy
from iwtheory.theory.dynamics import log_grid

DS = bl_toy(n_per_class=10, seed=0, bias=True)


def test_the_nets_are_homogeneous_in_their_parameters():
    Ws = init_params(3, [3, 8, 5, 1], seeds=[0, 1, 2], scale=1.0)
    X = torch.as_tensor(DS.X)
    f = forward(Ws, X)
    torch.testing.assert_close(forward([2.0 * W for W in Ws], X), 8.0 * f, rtol=1e-12, atol=1e-12)


def test_the_loss_scaled_rule_follows_the_flow_that_small_fixed_steps_follow():
    fine = flow_agreement(DS.X, DS.y, 16.0, 0, (8,), t_check=5.0, eta=1e-3, lr_small=0.005)
    coarse = flow_agreement(DS.X, DS.y, 16.0, 0, (8,), t_check=5.0, eta=0.3, lr_small=0.005)
    assert fine < 2e-3 and coarse > 3 * fine  # the check can tell a step too large


def test_records_sit_on_the_grid_and_the_margin_rises_once_separated():
    grid = log_grid(1e20, 12, t_min=1.0)
    r = train_long(DS.X, DS.y, [1.0, 16.0, 1.0], [0, 0, 1], hidden=(8,), t_grid=grid, eta=2e-3)
    assert np.all(r.reached == len(grid)) and not r.diverged.any()
    assert np.all(r.t >= grid[None, :]) and np.all(np.diff(r.t, axis=1) > 0)
    sep = r.train_acc == 1.0
    assert sep[:, -1].all()
    late = r.normalised_margin[:, -4:]
    assert np.all(np.diff(late, axis=1) > -1e-9) and np.all(late > 0)
    ang = angle_rows(r.direction, np.array([0, 0, 2]))
    assert np.all(ang[[0, 2]] == 0.0) and np.all(ang[1, 1:] > 0)
    np.testing.assert_allclose(np.linalg.norm(r.direction, axis=-1), 1.0, rtol=1e-12)


def test_bad_step_settings_are_refused():
    with pytest.raises(ValueError, match="rule"):
        train_long(DS.X, DS.y, [1.0], [0], t_grid=[1.0], rule="adam")
    with pytest.raises(ValueError, match="eta"):
        train_long(DS.X, DS.y, [1.0], [0], t_grid=[1.0], eta=float("inf"))


def test_the_runner_writes_complete_runs_and_skips_them_after(tmp_path, capsys):
    from iwtheory.compare import claims as C
    from iwtheory.runs.config import ConfigError
    from iwtheory.runs.inside import InsideConfig, run_inside
    from iwtheory.runs.records import load, load_summaries

    cfg = InsideConfig(name="inside_t", data={"n_per_class": 8, "seed": 0}, weights=[1.0, 16.0], seeds=[0, 1],
                       hidden=[6], t_max=1e10, n_records=8, check_t=3.0, check_lr=0.02, n_test=20,
                       noise_count=10)
    cfg.validate()
    runs = run_inside(cfg, tmp_path, progress=False)
    assert all(r.done for r in runs)
    df = load(tmp_path)
    assert len(df) == 4 * 9 and set(df.weight) == {1.0, 16.0}
    assert (df[df.weight == 1.0].angle_unweighted == 0).all()
    s = load_summaries(tmp_path)
    assert s.flow_check_angle.notna().all() and (s.flow_check_angle < 0.05).all()
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("metrics.jsonl")}
    run_inside(cfg, tmp_path, progress=False)
    assert before == {p: p.stat().st_mtime_ns for p in tmp_path.rglob("metrics.jsonl")}
    assert C.n1(df)["n_seeds"] == 2  # the claims read these records (too few seeds to decide)
    with pytest.raises(ConfigError, match="include 1"):
        InsideConfig(name="x", weights=[2.0, 4.0]).validate()


def test_nets_stopped_by_the_step_budget_are_kept_and_leave_the_claims_undecided(tmp_path):
    from iwtheory.compare import claims as C
    from iwtheory.runs.inside import InsideConfig, run_inside
    from iwtheory.runs.records import load, load_summaries

    cfg = InsideConfig(name="inside_s", data={"n_per_class": 8, "seed": 0}, weights=[1.0, 16.0], seeds=[0],
                       hidden=[6], t_max=1e10, n_records=8, max_steps=300, check_t=2.0, check_lr=0.05, n_test=20,
                       noise_count=10)
    runs = run_inside(cfg, tmp_path, progress=False)
    assert all(r.done for r in runs)  # a prefix of the grid is a whole run, read by the reports
    s = load_summaries(tmp_path)
    assert set(s.stopped) == {"step budget"}
    assert all(np.isfinite(d).all() for d in s.final_direction)  # the last direction it reached, not a gap
    e = C.n1(load(tmp_path))
    assert not e["premise"]["met"] and e["verdict"] == "inconclusive"


def test_the_kkt_residual_is_zero_at_the_max_margin_and_not_elsewhere():
    from iwtheory.nets.longrun import kkt_measures
    from iwtheory.theory import max_margin

    ds = bl_toy(n_per_class=15, seed=3, bias=True)
    X, y = torch.as_tensor(ds.X), torch.as_tensor(ds.y, dtype=torch.float64)
    w_hat = max_margin(ds.X, ds.y).w
    c = torch.ones(1, len(y), dtype=torch.float64)
    # a one-layer net is linear: its KKT points are the max-margin direction, at any scale
    for scale in (1.0, 40.0):
        _, kkt = kkt_measures([torch.as_tensor(scale * w_hat)[None, None, :]], X, y, c)
        assert kkt[0] < 1e-6
    # another separating direction: near it, but not a KKT point
    other = w_hat + 0.3 * np.linalg.norm(w_hat) * np.array([0.0, 1.0, 0.0])
    assert (ds.y * (ds.X @ other)).min() > 0
    _, kkt = kkt_measures([torch.as_tensor(other)[None, None, :]], X, y, c)
    assert kkt[0] > 0.05
    # along gradient flow (logistic, the nets' loss) theta and -grad R line up and the residual falls with 1/log t
    from iwtheory.theory import gradient_flow

    traj = gradient_flow(ds.X, ds.y, np.ones(len(ds.y)), loss="logistic", t_max=1e30, n_records=7)
    align, kkt = zip(*(kkt_measures([torch.as_tensor(w)[None, None, :]], X, y, c) for w in traj.w[-3:]))
    assert align[-1][0] > 0.999 and align[0][0] < align[-1][0]
    assert kkt[-1][0] < kkt[0][0] < 0.2
    # a net that does not separate its data has no KKT residual
    _, kkt = kkt_measures([torch.as_tensor(-w_hat)[None, None, :]], X, y, c)
    assert np.isnan(kkt[0])
