"""N1-N3 on made-up long runs whose answer is known: each rule says holds, fails or inconclusive when it should."""

import numpy as np
import pandas as pd
import pytest

from iwtheory.compare import claims as C

T = np.concatenate([[0.0], np.geomspace(1.0, 1e60, 40)])


def runs(angle, margin=lambda w, s: 0.2, seeds=10, sep_acc=True, weights=(0.0625, 1.0, 16.0)) -> pd.DataFrame:
    """Records with angle(w, seed, t) to the unweighted net and normalised margin(w, seed)."""
    rows = []
    for w in weights:
        for s in range(seeds):
            h = f"{w}-{s}"
            for t in T:
                rows.append({"config_hash": h, "weight": w, "seed": s, "t": t,
                             "train_acc": 1.0 if (sep_acc and t >= 1.0) else (0.9 if t < 1e59 else 0.95),
                             "normalised_margin": margin(w, s),
                             "angle_unweighted": 0.0 if w == 1.0 else angle(w, s, t)})
    return pd.DataFrame(rows)


def noise(s):
    return 1.0 + 0.05 * np.sin(3.0 * s + 1.0)


def inverse_log(w, s, t):
    return 0.5 * noise(s) / max(np.log(max(t, np.e)), 1.0)


def plateau(w, s, t):
    return 0.1 * noise(s) * (1.0 + 1e-4 * np.log1p(t))  # settles elsewhere, even creeping away


def test_an_approach_like_one_over_log_t_holds_for_n1_and_n3():
    df = runs(inverse_log)
    e1, e3 = C.n1(df), C.n3(df)
    assert e1["verdict"] == "holds" and abs(e1["value"]) < 1e-9 and e1["premise"]["met"]  # a_inf = 0
    assert e3["verdict"] == "holds" and abs(e3["value"]) < 0.05  # k = -1: its distance to -1 is ~0


def test_directions_that_settle_elsewhere_fail_n1_and_n3():
    df = runs(plateau)
    assert C.n1(df)["verdict"] == "fails"
    e3 = C.n3(df)
    assert e3["verdict"] == "fails" and e3["value"] > 0.9  # k ~ 0, one away from -1


def test_n2_reads_the_gap_between_normalised_margins():
    same = runs(inverse_log, margin=lambda w, s: 0.2 * noise(s))
    apart = runs(inverse_log, margin=lambda w, s: (0.2 if w == 1.0 else 0.15) * noise(s))
    assert C.n2(same)["verdict"] == "holds" and C.n2(apart)["verdict"] == "fails"
    assert C.n2(apart)["value"] > 0.2


def test_without_separation_or_with_few_seeds_no_verdict():
    unseparated = runs(inverse_log, sep_acc=False)
    e = C.n1(unseparated)
    assert not e["premise"]["met"] and e["verdict"] == "inconclusive"
    assert C.n1(runs(inverse_log, seeds=3))["verdict"] == "inconclusive"


def slow_plateau(w, s, t):
    """The audit's nets: a plateau at 0.15 rad that still falls a little over the window (3 % of it)."""
    return 0.15 * noise(s) + 0.3 / max(np.log(max(t, np.e)), 1.0)


def test_a_slowly_falling_plateau_fails_n1_however_many_seeds():
    # the old rule ("the angle fell by 3 SE") held here with enough seeds; the asymptote a_inf = 0.15 rad is what
    # it missed, and more seeds only make the plateau plainer
    for seeds in (10, 40):
        e1 = C.n1(runs(slow_plateau, seeds=seeds))
        assert e1["verdict"] == "fails" and abs(e1["value"] - 0.15) < 0.01
        assert all(v["angle_end"] < v["angle_start"] for v in e1["details"]["by_weight"].values())
    e3 = C.n3(runs(slow_plateau))
    assert e3["verdict"] == "fails" and e3["details"]["plateau"] and e3["threshold"] is None
    # the same fall toward 0 instead: the directions meet, and the rate is measured
    e1 = C.n1(runs(inverse_log))
    assert abs(e1["value"]) < 1e-6 and e1["details"]["by_weight"]["16"]["K"] > 0.4


def test_n3_gives_no_rate_where_n1_cannot_tell():
    wild = lambda w, s, t: inverse_log(w, s, t) + 0.05 * np.sin(7.0 * s)  # noqa: E731 (asymptotes scattered by seed)
    e1 = C.n1(runs(wild))
    assert e1["verdict"] == "inconclusive"
    assert C.n3(runs(wild))["verdict"] == "inconclusive"


def test_n2_states_the_flow_time_from_which_the_margins_agree():
    closing = runs(inverse_log, margin=lambda w, s: (0.2 if w == 1.0 else 0.2 * (1 + 0.5 * s / 10)) * noise(s))
    assert C.n2(closing)["details"]["holds_from_t"] is None  # apart to the end
    converging = lambda w, s: 0.2 * noise(s)  # noqa: E731
    e = C.n2(runs(inverse_log, margin=converging))
    assert e["verdict"] == "holds" and e["details"]["holds_from_t"] == 0.0  # together from the first record


def test_kkt_summary_calls_end_states_kkt_points_only_below_the_threshold():
    df = runs(inverse_log).assign(kkt_residual=0.3, alignment=0.92)
    s = C.kkt_summary(df)
    assert not s["kkt_points"] and s["by_weight"]["16"]["kkt_residual"] == pytest.approx(0.3)
    assert C.kkt_summary(df.assign(kkt_residual=0.01))["kkt_points"]
    assert C.kkt_summary(runs(inverse_log)) == {}
