"""The claims' rules on records built like the study's: each rule holds, and one realistic change flips it.

Records: F(t; w) = 0.5 + effect(t, log2 w) + per-seed noise, the same on every probe set; every net separates
at epoch ``sep`` (training accuracy 1 from there on) unless told otherwise; the best validation loss is at epoch 5
and the best validation accuracy at epoch ``best_acc`` (8).
"""

import numpy as np
import pandas as pd
import pytest

from iwtheory.compare import claims as C

WEIGHTS = (1 / 16, 1.0, 16.0)
EPOCHS = tuple(range(0, 121))
SEEDS = tuple(range(10))
SPE = 20  # steps per epoch: early = the first 200 steps = epochs 1-10; late = from 1000 steps (50 epochs) after
SPAN = 50  # separation


def study(effect, seeds=SEEDS, noise=0.002, regime="none", sep=15, wd=0.0, dropout=0.0, seed0=0, unseparated=(),
          flicker=None, best_acc=8):
    """``unseparated``: (weight, seed) pairs whose nets end at training accuracy 0.99; ``flicker``: an epoch at
    which every net's training accuracy dips below 1 once."""
    rng = np.random.default_rng(seed0)
    rows = []
    for s in seeds:
        jitter = {w: rng.normal(0, noise) for w in WEIGHTS}
        for w in WEIGHTS:
            for e in EPOCHS:
                f = float(np.clip(0.5 + effect(e, np.log2(w)) + (jitter[w] if w != 1.0 else 0.0), 0, 1))
                acc = 1.0 if e >= sep else 0.8
                if (w, s) in unseparated or e == flicker:
                    acc = 0.99
                rows.append(dict(config_hash=f"{regime}-{wd}-{dropout}-{w}-{s}", regime=regime, weight=w, seed=s,
                                 epoch=e, step=e * SPE, val_acc=0.9 - 0.001 * abs(e - best_acc), frac_pos_test=f,
                                 frac_pos_other=f, frac_pos_noise=f, train_acc=acc,
                                 weight_decay=wd, dropout=dropout, val_loss_weighted=(e - 5) ** 2 + 1.0,
                                 test_acc=0.8 + 0.001 * min(e, 20)))
    return pd.DataFrame(rows)


def fading(e, lw, peak=0.1, keep=0.0, tau=3.0):
    """Delta = peak * lw at epoch 1, decaying to keep * lw."""
    return lw * (keep + (peak - keep) * np.exp(-(e - 1) / tau)) if e >= 1 else 0.0


def test_t_quantiles_widen_the_se_rule_for_few_seeds():
    assert C.q(3.0, 10) == pytest.approx(4.09, abs=0.01)  # t with 9 dof at the normal 3-sigma tail
    assert C.q(3.0, 1000) == pytest.approx(3.0, abs=0.02)
    assert C.q(2.0, 3) > 4.0


def test_separation_epoch_and_late_window_are_states():
    df = study(lambda e, lw: fading(e, lw), sep=12)
    sep = C.separation(df)
    assert (sep.separation_epoch == 12).all()
    starts, premise = C.late_starts(df)
    # counted from separation: LATE_SPAN_STEPS steps (50 epochs of 20 steps) after it
    assert C.LATE_SPAN_STEPS == SPAN * SPE
    assert set(starts.values()) == {12.0 + SPAN} and premise["met"] and premise["late_span_epochs"] == SPAN
    # the same nets with five times the images per epoch: the span is a number of steps, so a tenth of the epochs
    five = df.assign(step=df.epoch * SPE * 5)
    assert set(C.late_starts(five)[0].values()) == {12.0 + SPAN / 5}
    # one net that dips once late re-separates later: the window moves, the premise still holds
    _, p2 = C.late_starts(study(lambda e, lw: fading(e, lw), flicker=20))
    assert p2["met"] and p2["latest_separation_epoch"] == 21
    # nets that separate too late for a window of two evaluated epochs: no seed is reported from its own window;
    # every seed's value comes from the last tenth, labelled, and the premise is not met
    late = study(lambda e, lw: fading(e, lw), sep=75)
    starts, premise = C.late_starts(late)
    assert not premise["met"] and premise["window"] == C.PREMISE_FAILED_WINDOW
    assert set(starts.values()) == {float(C.late_window(late.epoch).min())} and len(starts) == len(SEEDS)
    # records without a step count cannot say where late begins
    with pytest.raises(ValueError, match="step"):
        C.late_starts(df.drop(columns="step"))


def test_c1_is_not_saturated_and_flips_with_the_weights_strength():
    df = study(lambda e, lw: fading(e, lw, peak=0.15))
    c = C.c1(df, SPE)
    assert c["verdict"] == "holds" and c["n_seeds"] == 10 and c["premise"]["met"]
    assert 0.3 < c["value"] < 0.8  # averaged over the early window, not a single saturated epoch
    lo, hi = c["threshold"]["stable_range"]
    assert lo == 0.0 and C.C1_SPREAD < hi < c["value"]
    # weaker weights (1/2 and 2 instead of 1/16 and 16 would give a quarter of the spread)
    assert C.c1(study(lambda e, lw: fading(e, lw, peak=0.02)), SPE)["verdict"] == "fails"
    # the all-or-nothing statistic of the old rule: every seed at F = 0 and 1 tests nothing
    sat = study(lambda e, lw: 0.5 * np.sign(lw) if e >= 1 else 0.0, noise=0.0)
    assert C.c1(sat, SPE)["verdict"] == "inconclusive" and C.c1(sat, SPE)["details"]["saturated"]
    assert C.c1(study(lambda e, lw: fading(e, lw), seeds=SEEDS[:3]), SPE)["verdict"] == "inconclusive"
    bumpy = study(lambda e, lw: fading(e, lw) - (0.5 if lw == 0 and 1 <= e <= 10 else 0))
    assert C.c1(bumpy, SPE)["verdict"] == "fails"


def test_c2_fades_keeps_or_has_not_separated():
    c = C.c2(study(lambda e, lw: fading(e, lw, peak=0.1)), SPE)
    assert c["verdict"] == "holds" and c["value"] < 1e-3 and c["premise"]["met"]
    kept = C.c2(study(lambda e, lw: fading(e, lw, peak=0.1, keep=0.02)), SPE)
    assert kept["verdict"] == "fails" and kept["value"] == pytest.approx(0.08, abs=2e-3)
    # the same fading records, with one net that never separates: the premise is not met
    one = C.c2(study(lambda e, lw: fading(e, lw), unseparated={(16.0, 3)}), SPE)
    assert one["verdict"] == "inconclusive" and not one["premise"]["met"]
    assert one["details"]["verdict_before_premise"] == "holds"


def test_late_is_counted_from_separation_not_from_the_end():
    # the effect decays with tau = 30 epochs; nets that separate at 10 have a window from 60, where it is still
    # there: C2 fails; nets that separate at 60 are compared from 110 on, where it has faded: C2 holds
    slow = lambda e, lw: fading(e, lw, peak=0.3, tau=30.0)  # noqa: E731
    assert C.c2(study(slow, sep=10), SPE)["verdict"] == "fails"
    assert C.c2(study(slow, sep=60), SPE)["verdict"] == "holds"


def test_c3_combines_the_off_distribution_verdicts():
    assert C.c3(study(lambda e, lw: fading(e, lw, peak=0.15)), SPE)["verdict"] == "holds"
    assert C.c3(study(lambda e, lw: fading(e, lw, peak=0.15, keep=0.02)), SPE)["verdict"] == "fails"


def test_c4_l2_against_the_unregularised_spread_paired():
    none = study(lambda e, lw: fading(e, lw), seed0=1)
    kept = study(lambda e, lw: fading(e, lw, keep=0.01), regime="l2", seed0=2, wd=1e-3)
    c4 = C.c4(kept, none)
    assert c4["verdict"] == "holds" and c4["value"] == pytest.approx(0.01 * 8, abs=0.01)
    same = study(lambda e, lw: fading(e, lw), regime="l2", seed0=3, wd=1e-3)
    assert C.c4(same, none)["verdict"] in ("fails", "inconclusive")
    # the premise: weight decay that stops two nets from separating keeps the effect trivially
    blocked = study(lambda e, lw: fading(e, lw, keep=0.01), regime="l2", seed0=2, wd=1e-3,
                    unseparated={(1 / 16, 0), (16.0, 4)})
    c = C.c4(blocked, none)
    assert c["verdict"] == "inconclusive" and c["details"]["verdict_before_premise"] == "holds"


def test_c5_equivalence_with_a_margin():
    none = study(lambda e, lw: fading(e, lw), seed0=1)
    same = study(lambda e, lw: fading(e, lw), regime="dropout", seed0=3, dropout=0.1)
    assert C.c5(same, none)["verdict"] == "holds"
    kept = study(lambda e, lw: fading(e, lw, keep=0.02), regime="dropout", seed0=2, dropout=0.1)
    c = C.c5(kept, none)  # oriented late effect 0.08 > the 0.03 margin
    assert c["verdict"] == "fails" and c["threshold"]["stable_range"][1] < 0.08
    # too noisy to tell: neither inside nor outside the margin
    wild = study(lambda e, lw: fading(e, lw, keep=0.005), regime="dropout", seed0=4, noise=0.08, dropout=0.1)
    assert C.c5(wild, none)["verdict"] == "inconclusive"


def test_c6_batch_norm_kept_and_below_its_early_effect():
    none = study(lambda e, lw: fading(e, lw), seed0=1)
    kept = study(lambda e, lw: fading(e, lw, keep=0.01), regime="batchnorm", seed0=2)
    assert C.c6(kept, none, SPE)["verdict"] == "holds"
    # keeping all of it (late at least the early effect) fails the second clause, which the old peak rule could not
    all_kept = study(lambda e, lw: 0.1 * lw * (1 + 0.001 * e) if e >= 1 else 0.0, regime="batchnorm", seed0=2)
    assert C.c6(all_kept, none, SPE)["verdict"] == "fails"
    faded = study(lambda e, lw: fading(e, lw), regime="batchnorm", seed0=3)
    assert C.c6(faded, none, SPE)["verdict"] in ("fails", "inconclusive")


def test_c7_needs_growth_with_lambda():
    none = study(lambda e, lw: fading(e, lw), seed0=1)
    lams = (1e-4, 3e-4, 1e-3)
    grows = pd.concat([study(lambda e, lw, k=k: fading(e, lw, keep=k), regime="l2", wd=lam, seed0=i + 2)
                       for i, (lam, k) in enumerate(zip(lams, (0.0, 0.005, 0.015)))])
    assert C.c7(grows, none)["verdict"] == "holds"
    shrinks = pd.concat([study(lambda e, lw, k=k: fading(e, lw, keep=k), regime="l2", wd=lam, seed0=i + 2)
                         for i, (lam, k) in enumerate(zip(lams, (0.015, 0.005, 0.0)))])
    assert C.c7(shrinks, none)["verdict"] == "fails"
    assert C.c7(grows[grows.weight_decay != 3e-4], none)["verdict"] == "inconclusive"  # two values of lambda


def test_c8_subsampling_and_its_correction():
    none = study(lambda e, lw: fading(e, lw), seed0=1)
    lower = study(lambda e, lw: fading(e, lw) - 0.1, regime="subsample", seed0=2)
    lower = lower.assign(weight=lower.weight.replace({16.0: 8.0}))
    c = C.c8(lower, none, ratio=0.125)
    assert c["verdict"] == "holds" and c["value"] == pytest.approx(-0.1, abs=1e-9)
    # a correction that moves late F by 0.1 (its weight's effect kept) fails the rule
    moved = study(lambda e, lw: fading(e, lw, keep=0.025) - 0.1, regime="subsample", seed0=2)
    moved = moved.assign(weight=moved.weight.replace({16.0: 8.0}))
    assert C.c8(moved, none, ratio=0.125)["verdict"] == "fails"
    assert C.c8(lower[lower.weight != 8.0], none, ratio=0.125)["verdict"] == "inconclusive"


def test_c12_early_stopping_with_its_accuracy_cost():
    none = study(lambda e, lw: fading(e, lw), noise=0.001)
    c = C.c12(none)
    want = 0.1 * 4 * np.exp(-4 / 3)  # oriented Delta at the best validation epoch, 5
    assert c["verdict"] == "holds" and c["details"]["early_stopped_effect"] == pytest.approx(want, abs=2e-3)
    assert c["details"]["median_stop_epoch"] == 5
    assert c["details"]["accuracy_cost"] == pytest.approx(0.015, abs=1e-9)  # 0.820 late vs 0.805 at epoch 5
    flat = study(lambda e, lw: 0.0, noise=0.001)  # no effect at any time: nothing to keep
    assert C.c12(flat)["verdict"] in ("fails", "inconclusive")


def test_c2b_needs_a_control_that_cannot_separate():
    none = study(lambda e, lw: fading(e, lw), seed0=1)
    cannot = {(w, s) for w in WEIGHTS for s in SEEDS}
    kept = study(lambda e, lw: fading(e, lw, keep=0.02), regime="noise", seed0=2, unseparated=cannot)
    assert C.c2b(kept, none)["verdict"] == "holds"
    # the control memorises its noisy labels: no longer evidence either way
    assert C.c2b(study(lambda e, lw: fading(e, lw, keep=0.02), regime="noise", seed0=2), none)["verdict"] \
        == "inconclusive"
    faded = study(lambda e, lw: fading(e, lw), regime="noise", seed0=2, unseparated=cannot)
    assert C.c2b(faded, none)["verdict"] == "fails"


def test_c10_early_in_steps():
    toy = study(lambda e, lw: fading(e, lw, peak=0.1, tau=4.0))
    assert C.c10(toy, 1)["verdict"] == "holds" and C.c10(toy, 1)["details"]["early_epochs"] == 10
    weak = study(lambda e, lw: fading(e, lw, peak=0.02, tau=4.0))
    assert C.c10(weak, 1)["verdict"] == "fails"


def test_c9_on_theory_records():
    t = np.geomspace(1e10, 1e40, 30)
    K, b = 0.5, 2.0
    rec = pd.DataFrame({"config_hash": "a", "t": t, "angle": K / (np.log(t) + b)})
    good = pd.DataFrame([{"config_hash": "a", "angle_constant": K, "loss": "exponential", "weight": 4.0}])
    assert C.c9(rec, good)["verdict"] == "holds" and C.c9(rec, good)["value"] < 1e-9
    assert C.c9(rec, good.assign(angle_constant=0.6))["verdict"] == "fails"


def test_c11_is_the_sgd_statement():
    rng = np.random.default_rng(0)

    def runs(shift):
        rows = []
        for s in range(10):
            for dup in (False, True):
                a = 0.2 * (1 + shift * dup) * (1 + 0.02 * rng.normal())
                rows.append(dict(method="sgd", weight=4.0, duplicate=dup, seed=s, final_angle=a))
        return pd.DataFrame(rows)

    empty = pd.DataFrame(columns=["method", "weight", "duplicate", "t", "w"])
    assert C.c11(empty, runs(0.0))["verdict"] == "holds"
    assert C.c11(empty, runs(0.3))["verdict"] == "fails"  # duplicated points end 30% further from the max margin


def test_c12_rests_on_both_stopping_rules():
    none = study(lambda e, lw: fading(e, lw), noise=0.001)
    c = C.c12(none)
    rules = c["details"]["by_stopping_rule"]
    assert set(rules) == {"weighted validation loss", "validation accuracy"}
    assert rules["validation accuracy"]["median_stop_epoch"] == 8
    assert rules["weighted validation loss"]["median_stop_epoch"] == 5
    assert c["verdict"] == "holds" and "holds stopping at the best validation accuracy" in c["details"]["rests_on"]
    # stopping at the best validation accuracy late, where the effect has faded: the claim no longer holds, and
    # says which rule it failed under; the value is the smaller of the two
    late_acc = study(lambda e, lw: fading(e, lw), noise=0.001, best_acc=100)
    c = C.c12(late_acc)
    assert c["verdict"] == "fails" and c["details"]["smallest_under"] == "validation accuracy"
    assert "fails stopping at the best validation accuracy" in c["details"]["rests_on"]
    assert c["value"] == pytest.approx(c["details"]["by_stopping_rule"]["validation accuracy"]["difference"])


def test_c8_reports_the_correction_it_measures():
    none = study(lambda e, lw: fading(e, lw), seed0=1)
    # the correcting weight moves late F by 0.01 toward the balanced nets: inside the margin, but measured
    nudged = study(lambda e, lw: fading(e, lw, keep=0.0025) - 0.1, regime="subsample", seed0=2, noise=0.001)
    nudged = nudged.assign(weight=nudged.weight.replace({16.0: 8.0}))
    c = C.c8(nudged, none, ratio=0.125)
    d = c["details"]
    assert c["verdict"] == "holds" and d["correction_shift"] == pytest.approx(0.01, abs=2e-3)
    assert d["correction_toward_balanced"] and d["correction_in_se"] > 3


def test_an_estimate_at_zero_is_not_a_failure_unless_shown_below_the_smallest_effect_that_counts():
    assert C.exceeds_verdict(-0.001, 0.05, 10) == "inconclusive"  # could be 0.1: no decision
    assert C.exceeds_verdict(-0.001, 0.002, 10) == "fails"        # shown below 0.03
    assert C.exceeds_verdict(0.02, 0.002, 10) == "holds"
    assert C.exceeds_verdict(0.02, 0.006, 10) == "inconclusive"   # above 0, but not by 3 SE, nor below 0.03 by 2


def test_the_multiplicity_statement_is_computed_from_the_rules_used():
    assert C.error_bound("holds", {"holds": [3.0, 2.0], "fails": [2.0]}) == pytest.approx(C.tail(2.0))
    assert C.error_bound("fails", {"holds": [3.0], "fails": [2.0, 2.0]}) == pytest.approx(2 * C.tail(2.0))
    assert C.error_bound("holds", {"holds": [3.0, None], "fails": [2.0]}) is None  # a point rule bounds nothing
    assert C.error_bound("inconclusive", {"holds": [3.0], "fails": [3.0]}) is None
    assert C.error_bound("holds", {"deterministic": True}) == 0.0
    none = study(lambda e, lw: fading(e, lw, peak=0.15))
    entries = [C.c1(none, SPE), C.c2(none, SPE), C.c12(none), C.c5(study(lambda e, lw: fading(e, lw), regime="dropout",
                                                                       seed0=3, dropout=0.1), none)]
    m = C.multiplicity(entries)
    assert m["decisive"] == 4 and m["point_rule_claims"] == ["C1", "C2"]
    # C12 holds under both rules (3 SE each), C5 holds by equivalence at 2 SE
    assert m["bound"] == pytest.approx(C.tail(3.0) + C.tail(2.0)) and set(m["bounded_claims"]) == {"C12", "C5"}


def test_the_late_trend_tells_a_plateau_from_a_slow_fall():
    slow = C.c2(study(lambda e, lw: fading(e, lw, peak=0.3, tau=30.0), sep=10), SPE)["details"]["late_trend"]
    assert slow["trend"] == "still falling" and slow["first_half"] > slow["second_half"]
    kept = C.c2(study(lambda e, lw: fading(e, lw, keep=0.02)), SPE)["details"]["late_trend"]
    assert kept["trend"] == "flat" and kept["first_half"] == pytest.approx(0.08, abs=0.005)
