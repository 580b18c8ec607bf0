"""A study's network claims read its regimes: the matched baseline a regime names, and the one-draw control that
splits the seeds' spread into the data draw's part and the rest."""

import pandas as pd
import pytest

from iwtheory.compare import claims as C
from iwtheory.compare.study_claims import draw_part, network_claims

from .test_claims import SPE, fading, study


def test_a_regime_is_compared_with_the_baseline_it_names():
    none = study(lambda e, lw: fading(e, lw, keep=0.02), seed0=1)  # the 240-epoch arm keeps an effect
    decay = study(lambda e, lw: fading(e, lw), regime="none_decay", seed0=5)  # the matched arm lets it fade
    dropout = study(lambda e, lw: fading(e, lw), regime="dropout", seed0=3, dropout=0.1)
    df = pd.concat([none, decay, dropout])
    matched = network_claims(df, SPE, baselines={"dropout": "none_decay"})["C5"]
    assert matched["verdict"] == "holds" and matched["details"]["baseline"] == "none_decay"
    # against the unmatched none it would have read the arms' schedules, not dropout
    assert network_claims(df, SPE)["C5"]["verdict"] == "fails"
    missing = network_claims(pd.concat([none, dropout]), SPE, baselines={"dropout": "none_decay"})["C5"]
    assert missing["verdict"] == "not applicable" and "none_decay" in missing["details"]["missing"]


def test_the_one_draw_control_gives_the_data_draws_share_of_the_variance():
    own = study(lambda e, lw: fading(e, lw, peak=0.15), noise=0.03, seed0=1)   # each seed its own draw: wide
    one = study(lambda e, lw: fading(e, lw, peak=0.15), noise=0.01, regime="one_draw", seed0=2)  # one draw: narrow
    out = network_claims(pd.concat([own, one]), SPE)
    d = out["C1"]["details"]["data_draw"]
    assert d["se_own_draws"] == pytest.approx(out["C1"]["se"])
    assert d["se_one_draw"] < d["se_own_draws"] and 0.5 < d["between_draw_variance_share"] < 1
    assert {"C1", "C2", "C3", "C12"} <= {cid for cid, e in out.items() if "data_draw" in e["details"]}
    # without the control nothing is claimed about the draws
    assert "data_draw" not in network_claims(own, SPE)["C1"]["details"]
    # a control as wide as the study: the draws add nothing measurable
    assert draw_part({"se": 0.01, "value": 1.0}, {"se": 0.012, "value": 1.0})["between_draw_variance_share"] == 0.0


def test_claims_stop_at_records_whose_steps_per_epoch_disagree():
    none = study(lambda e, lw: fading(e, lw))
    mixed = none.assign(step=none.step.where(none.seed != 3, none.epoch * 7))
    with pytest.raises(ValueError, match="steps per epoch"):
        C.late_starts(mixed)
