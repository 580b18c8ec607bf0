"""N1-N3 on made-up long runs whose answer is known: each rule says holds, fails or inconclusive when it should."""

import numpy as np
import pandas as pd

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
    assert e1["verdict"] == "holds" and e1["value"] > 0 and e1["premise"]["met"]
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
