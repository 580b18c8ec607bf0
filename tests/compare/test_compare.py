import numpy as np
import pandas as pd
import pytest

from iwtheory.compare.directions import angle, direction_gap, feature_max_margin, orthogonal_component
from iwtheory.compare.effects import (early_late, fit_angle_decay, settle_time,
                                      weight_effect)


def test_angle_is_accurate_for_tiny_angles():
    for theta in (1e-12, 1e-8, 1e-3, 0.5, 3.0):
        a = np.array([np.cos(theta), np.sin(theta), 0.0]) * 7.0
        assert angle(a, [2.0, 0.0, 0.0]) == pytest.approx(theta, rel=1e-9)
    with pytest.raises(ValueError, match="zero vector"):
        angle([1.0, 0.0], [0.0, 0.0])


def test_direction_gap_and_orthogonal_part():
    g = direction_gap([1.0, 1.0], [1.0, -1.0], w_hat=[1.0, 0.0])
    assert g["angle"] == pytest.approx(np.pi / 2)
    assert g["orthogonal_gap"] == pytest.approx(np.sqrt(2))
    np.testing.assert_allclose(orthogonal_component([3.0, 4.0], [2.0, 0.0]), [0.0, 4.0])


def test_feature_max_margin_of_recorded_features():
    rng = np.random.default_rng(0)
    f = rng.standard_normal((40, 5))
    y = np.sign(f[:, 0] + 0.3)
    f[:, 0] += 0.5 * y  # a margin around x0 = -0.3 - ...
    from iwtheory.theory.data import add_bias
    from iwtheory.theory.maxmargin import max_margin

    w = max_margin(add_bias(f), y).w
    r = feature_max_margin(f, y, w[:-1], w[-1])
    assert r["separable"] and r["angle"] == pytest.approx(0.0, abs=1e-9)
    r2 = feature_max_margin(f, y, w[:-1] + 0.1, w[-1])
    assert r2["angle"] > 0.01
    bad = feature_max_margin(np.zeros((4, 2)), np.array([1.0, -1.0, 1.0, -1.0]), [1.0, 0.0], 0.0)
    assert not bad["separable"] and np.isnan(bad["angle"])


def records(seeds=(0, 1, 2)):
    """frac_pos = 0.5 + d(w) * exp(-epoch / 3) + seed noise; Delta is d(w) exp(-epoch/3) exactly."""
    rows = []
    for reg in ("none", "l2"):
        for w, d in ((0.25, -0.4), (1.0, 0.0), (4.0, 0.3)):
            for s in seeds:
                for e in range(0, 31):
                    keep = 0.1 if reg == "l2" else 0.0
                    rows.append(dict(regime=reg, weight=w, seed=s, epoch=e,
                                     frac_pos_test=0.5 + 0.01 * s + d * (np.exp(-e / 3) + keep)))
    return pd.DataFrame(rows)


def test_weight_effect_pairs_seeds_and_reports_mean_and_se():
    df = records()
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 0.01, len(df))
    df["frac_pos_test"] += noise
    eff = weight_effect(df)
    sel = eff[(eff.regime == "none") & (eff.weight == 4.0) & (eff.epoch == 2)].iloc[0]
    # independent computation with plain numpy
    d = df.set_index(["regime", "weight", "seed", "epoch"]).frac_pos_test
    deltas = np.array([d[("none", 4.0, s, 2)] - d[("none", 1.0, s, 2)] for s in (0, 1, 2)])
    assert sel.delta_mean == pytest.approx(deltas.mean())
    assert sel.delta_se == pytest.approx(deltas.std(ddof=1) / np.sqrt(3))
    assert sel.n_seeds == 3
    assert (eff[eff.weight == 1.0].delta_mean == 0).all()


def test_one_seed_has_no_standard_error():
    eff = weight_effect(records(seeds=(0,)))
    assert eff.delta_se.isna().all()


def test_missing_baseline_is_an_error():
    df = records()
    with pytest.raises(ValueError, match="baseline weight 1.0"):
        weight_effect(df[df.weight != 1.0])


def test_early_late_summary():
    eff = weight_effect(records())
    s = early_late(eff, threshold=0.05).set_index(["regime", "weight"])
    assert s.loc[("none", 4.0), "peak_effect"] == pytest.approx(0.3)
    assert s.loc[("none", 4.0), "peak_time"] == 0
    late = np.mean([0.3 * np.exp(-e / 3) for e in range(27, 31)])
    assert s.loc[("none", 4.0), "tail_abs_effect"] == pytest.approx(late)
    # |Delta| = 0.3 exp(-e/3) < 0.05 from e > 3 ln 6 = 5.4
    assert s.loc[("none", 4.0), "settle_time"] == 6
    assert s.loc[("l2", 4.0), "settle_time"] > 6  # the kept 0.03 delays settling below 0.05
    assert s.loc[("l2", 4.0), "tail_abs_effect"] > s.loc[("none", 4.0), "tail_abs_effect"]
    assert 1.0 not in s.index.get_level_values("weight")  # the baseline's Delta is 0 by definition


def test_settle_time():
    t = np.array([1, 2, 3, 4, 5])
    assert settle_time(t, [0.5, 0.01, 0.5, 0.01, 0.0], 0.1) == 4
    assert np.isnan(settle_time(t, [0.0, 0.0, 0.0, 0.0, 0.2], 0.1))
    assert settle_time(t, [0.0] * 5, 0.1) == 1


def test_angle_decay_fit_recovers_its_parameters():
    t = np.geomspace(1e3, 1e80, 50)
    K, b = fit_angle_decay(t, 0.37 / (np.log(t) - 4.0))
    assert K == pytest.approx(0.37, rel=1e-10) and b == pytest.approx(-4.0, rel=1e-9)
    with pytest.raises(ValueError, match="fewer than three"):
        fit_angle_decay([1.0, 2.0], [0.1, 0.1])


@pytest.mark.parametrize("s", [1e-300, 1e-160, 1.0, 1e160, 1e300])
def test_angles_at_every_magnitude(s):
    assert angle([s, s], [1.0, 0.0]) == pytest.approx(np.pi / 4, rel=1e-14)
    assert angle([1.0, 0.0], [s, s]) == pytest.approx(np.pi / 4, rel=1e-14)
    assert angle([s, 0.0], [0.0, s]) == pytest.approx(np.pi / 2, rel=1e-14)
    np.testing.assert_allclose(orthogonal_component([s, s], [1.0, 0.0]), [0.0, s], rtol=1e-14)
