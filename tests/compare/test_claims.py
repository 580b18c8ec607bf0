"""The claims' rules on records built to make each rule hold, fail, or be undecidable."""

import numpy as np
import pandas as pd
import pytest

from iwtheory.compare import claims as C

WEIGHTS = (1 / 16, 1 / 4, 1.0, 4.0, 16.0)
EPOCHS = tuple(range(0, 41))


def study(effect, seeds=(0, 1, 2), noise=0.0, regime="none", acc=1.0, wd=0.0, dropout=0.0, seed0=0, top=None):
    """Records where F(t; w) = 0.5 + effect(t, log2 w) + seed noise, the same on every probe set;
    ``top`` adds a fixed offset per seed to the heaviest weight's F."""
    rng = np.random.default_rng(seed0)
    rows = []
    for k, s in enumerate(seeds):
        jitter = {w: rng.normal(0, noise) for w in WEIGHTS}
        if top is not None:
            jitter[max(WEIGHTS)] += top[k]
        for w in WEIGHTS:
            for e in EPOCHS:
                f = float(np.clip(0.5 + effect(e, np.log2(w)) + (jitter[w] if w != 1.0 else 0.0), 0, 1))
                rows.append(dict(regime=regime, weight=w, seed=s, epoch=e, frac_pos_test=f, frac_pos_other=f,
                                 frac_pos_noise=f, train_acc=acc if e == EPOCHS[-1] else 0.8, weight_decay=wd,
                                 dropout=dropout, val_loss_weighted=(e - 5) ** 2 + 1.0))
    return pd.DataFrame(rows)


def fading(e, lw, peak=0.1, keep=0.0):
    """Delta = peak * lw at epoch 1, decaying to keep * lw."""
    return lw * (keep + (peak - keep) * np.exp(-(e - 1) / 3)) if e >= 1 else 0.0


def test_c1_value_is_the_early_spread_and_each_verdict_is_reachable():
    df = study(lambda e, lw: fading(e, lw, peak=0.1))
    c = C.c1(df)
    # F(1; 16) - F(1; 1/16) = 0.1 * (4 - (-4))
    assert c["value"] == pytest.approx(0.8) and c["verdict"] == "holds" and c["n_seeds"] == 3
    assert C.c1(study(lambda e, lw: fading(e, lw, peak=0.01)))["verdict"] == "fails"
    # the spread is 0.3 on average, but with a standard error of 0.1 / sqrt(3) the rule cannot decide
    noisy = study(lambda e, lw: fading(e, lw, peak=0.0375), top=(0.1, -0.1, 0.0))
    assert C.c1(noisy)["value"] == pytest.approx(0.3) and C.c1(noisy)["verdict"] == "inconclusive"
    assert C.c1(study(lambda e, lw: fading(e, lw), seeds=(0, 1)))["verdict"] == "inconclusive"
    # not monotone in w: the w = 4 model predicts fewer positives than w = 1 by far
    bumpy = study(lambda e, lw: fading(e, lw) - (0.5 if lw == 2 and e == 1 else 0))
    assert C.c1(bumpy)["verdict"] == "fails"


def test_c2_fades_keeps_or_has_not_separated():
    c = C.c2(study(lambda e, lw: fading(e, lw, peak=0.1)))
    assert c["verdict"] == "holds" and c["value"] < 1e-4
    assert c["details"]["largest_early"] == pytest.approx(0.4)
    kept = C.c2(study(lambda e, lw: fading(e, lw, peak=0.1, keep=0.05)))
    # late |Delta| = 0.05 |log2 w|: mean over 1/16, 1/4, 4, 16 is 0.05 * 3 = 0.15
    assert kept["verdict"] == "fails" and kept["value"] == pytest.approx(0.15, rel=1e-3)
    assert C.c2(study(lambda e, lw: fading(e, lw), acc=0.97))["verdict"] == "inconclusive"


def test_c3_combines_the_off_distribution_verdicts():
    assert C.c3(study(lambda e, lw: fading(e, lw)))["verdict"] == "holds"
    assert C.c3(study(lambda e, lw: fading(e, lw, keep=0.05)))["verdict"] == "fails"


def test_regularisation_claims_against_the_unregularised_level():
    none = study(lambda e, lw: fading(e, lw), seed0=1, noise=0.002)
    kept = study(lambda e, lw: fading(e, lw, keep=0.03), regime="l2", seed0=2, noise=0.002)
    assert C.c6(kept.assign(regime="batchnorm"), none)["verdict"] == "holds"
    assert C.c5(kept.assign(regime="dropout"), none)["verdict"] == "fails"
    same = study(lambda e, lw: fading(e, lw), regime="dropout", seed0=3, noise=0.002)
    assert C.c5(same, none)["verdict"] == "holds"
    assert C.c6(same.assign(regime="batchnorm"), none)["verdict"] in ("fails", "inconclusive")
    wild = study(lambda e, lw: fading(e, lw), regime="dropout", seed0=4, noise=0.2)
    assert C.c5(wild, none)["verdict"] == "inconclusive"
    # L2: the late spread exceeds the unregularised one by far
    c4 = C.c4(kept.assign(weight_decay=1e-3), none)
    assert c4["verdict"] == "holds" and c4["value"] == pytest.approx(0.03 * 8, abs=0.01)
    assert C.c4(same.assign(regime="l2", weight_decay=1e-3), none)["verdict"] in ("fails", "inconclusive")


def test_c7_needs_growth_with_lambda():
    none = study(lambda e, lw: fading(e, lw), seed0=1, noise=0.002)
    grows = pd.concat([study(lambda e, lw, k=k: fading(e, lw, keep=k), regime="l2", wd=lam, seed0=i, noise=0.002)
                       for i, (lam, k) in enumerate(((1e-4, 0.0), (1e-3, 0.02), (1e-2, 0.05)))])
    assert C.c7(grows, none)["verdict"] == "holds"
    shrinks = pd.concat([study(lambda e, lw, k=k: fading(e, lw, keep=k), regime="l2", wd=lam, seed0=i, noise=0.002)
                         for i, (lam, k) in enumerate(((1e-4, 0.05), (1e-3, 0.02), (1e-2, 0.0)))])
    assert C.c7(shrinks, none)["verdict"] == "fails"
    two = grows[grows.weight_decay != 1e-3]
    assert C.c7(two, none)["verdict"] == "inconclusive"  # fewer than three values of lambda


def test_c8_subsampling_and_its_correction():
    none = study(lambda e, lw: fading(e, lw), seed0=1, noise=0.002)
    lower = study(lambda e, lw: fading(e, lw) - 0.1, regime="subsample", seed0=2, noise=0.002)
    c = C.c8(lower, none, ratio=0.25)
    assert c["verdict"] == "holds" and c["value"] == pytest.approx(-0.1, abs=1e-9)
    same = study(lambda e, lw: fading(e, lw), regime="subsample", seed0=2, noise=0.002)
    assert C.c8(same, none, ratio=0.25)["verdict"] == "fails"
    assert C.c8(lower[lower.weight != 4.0], none, ratio=0.25)["verdict"] == "inconclusive"


def test_c12_early_stopping():
    # the best validation loss is at epoch 5, where Delta = 0.1 lw exp(-4/3); late it is 0
    none = study(lambda e, lw: fading(e, lw), noise=0.001)
    c = C.c12(none)
    signs = np.sign(np.log2(WEIGHTS))
    want = np.mean([s * 0.1 * lw * np.exp(-4 / 3) for s, lw in zip(signs, np.log2(WEIGHTS)) if lw != 0])
    assert c["verdict"] == "holds" and c["details"]["early_stopped_effect"] == pytest.approx(want, abs=2e-3)
    assert c["details"]["median_stop_epoch"] == 5


def test_c2b_needs_a_control_that_cannot_separate():
    none = study(lambda e, lw: fading(e, lw), seed0=1, noise=0.002)
    kept = study(lambda e, lw: fading(e, lw, keep=0.05), regime="noise", acc=0.8, seed0=2, noise=0.002)
    assert C.c2b(kept, none)["verdict"] == "holds"
    assert C.c2b(kept.assign(train_acc=1.0), none)["verdict"] == "inconclusive"
    faded = study(lambda e, lw: fading(e, lw), regime="noise", acc=0.8, seed0=2, noise=0.002)
    assert C.c2b(faded, none)["verdict"] == "fails"


def test_c9_and_c11_on_theory_records():
    t = np.geomspace(1e10, 1e40, 30)
    K, b = 0.5, 2.0
    rec = pd.DataFrame({"config_hash": "a", "t": t, "angle": K / (np.log(t) + b)})
    good = pd.DataFrame([{"config_hash": "a", "angle_constant": K, "loss": "exponential", "weight": 4.0}])
    assert C.c9(rec, good)["verdict"] == "holds" and C.c9(rec, good)["value"] < 1e-9
    assert C.c9(rec, good.assign(angle_constant=0.6))["verdict"] == "fails"
    w = [[1.0, 2.0, 3.0 * k] for k in range(1, 5)]
    rows = [dict(method="gd", weight=2.0, duplicate=d, t=float(i), w=v) for d in (False, True)
            for i, v in enumerate(w)]
    assert C.c11(pd.DataFrame(rows))["verdict"] == "holds"
    rows[-1]["w"] = [1.0, 2.0, 12.001]
    assert C.c11(pd.DataFrame(rows))["verdict"] == "fails"
