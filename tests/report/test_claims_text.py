"""The paper's generated sentences about the claims: every number typeset from the entry it describes, every
reason a verdict has spelled out from what was measured."""

from iwtheory.compare import claims as C
from iwtheory.report.claims import claims_discussion, claims_table, measured_reasons

from ..compare.test_claims import SPE, fading, study


def test_a_premise_not_met_names_the_nets_that_kept_it_from_being_met():
    none = study(lambda e, lw: fading(e, lw), seed0=1)
    late = study(lambda e, lw: fading(e, lw), regime="dropout", seed0=3, dropout=0.1, sep=90)
    stuck = study(lambda e, lw: fading(e, lw), regime="dropout", seed0=3, dropout=0.1, unseparated={(16.0, 4)})
    late_text = measured_reasons(C.c5(late, none))
    assert "separate only by epoch $90$ of $120$" in late_text and "late window of $50$ more epochs" in late_text
    stuck_text = measured_reasons(C.c5(stuck, none))
    assert "never separates: w = 16, seed 4" in stuck_text and "final $0.99$" in stuck_text
    # numbers are typeset, not escaped as text
    assert "\\$" not in late_text + stuck_text


def test_a_failed_claim_is_discussed_from_its_trend_and_its_probe_distances():
    kept = study(lambda e, lw: fading(e, lw, peak=0.15, keep=0.02))
    e = C.c3(kept, SPE)
    e["details"]["probe_distances"] = {"train": 12.0, "noise": 30.4}
    text = claims_discussion([e])
    assert "C3: fails" in text and "it is flat (a plateau at this resolution)" in text
    assert "$30.4$ for noise" in text and "against $12$ between training images" in text


def test_the_claims_table_names_each_claims_scale_once():
    none = study(lambda e, lw: fading(e, lw))
    a, b = C.c1(none, SPE), C.c2(none, SPE)
    for e, model in ((a, "MLP in-128-64-1"), (b, "MLP in-128-64-1")):
        e["scale"] = {"model": model, "dataset": "Fashion-MNIST", "training images": 320, "epochs": 240,
                      "draws": "10 seeds, each on its own draw of the data"}
    c9 = {**C.c1(none, SPE), "id": "C9", "scale": {"model": "linear", "dataset": "2-D toy"}}
    tex = claims_table([a, b, c9])
    plain = tex.replace("-{}", "-")  # the escape keeps hyphens apart
    assert plain.count("(a) MLP in-128-64-1; Fashion-MNIST; 320 training images; 240 epochs; 10 seeds") == 1
    assert "(b) linear; 2-D toy" in plain
    rows = [ln.split(" & ") for ln in tex.splitlines() if ln.startswith(("C1 ", "C2 ", "C9 "))]
    assert [r[2] for r in rows] == ["a", "a", "b"]
