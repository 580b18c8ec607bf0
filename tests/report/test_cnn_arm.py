"""The CNN arm: its committed records are read beside the MLP study, each network claim gains a verdict per
architecture, and the committed claims agree with the committed records."""

import json
from pathlib import Path

import pytest

from iwtheory.pipeline import CNN_RECORDS, run_cnn
from iwtheory.report.analysis import analyse, result_dirs, study
from iwtheory.report.claims import ARCHITECTURES, differing, study_entries

ROOT = Path(__file__).resolve().parents[2]


def test_committed_cpu_records_are_labelled_cpu_and_imported_gpu_records_gpu(tmp_path):
    for parent, name in ((tmp_path / "results" / "cpu", "cnn"), (tmp_path / "results" / "gpu", "2026-01-01-h100")):
        (parent / name / "runs").mkdir(parents=True)
    found = result_dirs(tmp_path / "results" / "gpu", tmp_path / "results" / "cpu")
    assert [label for _, label in found] == ["gpu:2026-01-01-h100", "cpu:cnn"]


def test_claims_that_split_the_architectures_are_named_from_their_verdicts():
    entries = [{"id": "C2", "verdict": "holds", "architecture": ARCHITECTURES["study_fashion"],
                "by_architecture": {"CNN, CIFAR-10": {"verdict": "fails"}, "CNN, Fashion-MNIST": {"verdict": "holds"}}},
               {"id": "C4", "verdict": "holds", "by_architecture": {"CNN, CIFAR-10": {"verdict": "inconclusive"}}}]
    assert differing(entries) == ["C2 (holds on the MLP, Fashion-MNIST; fails on the CNN, CIFAR-10; holds on the CNN, "
                                  "Fashion-MNIST)"]


def test_a_claim_split_at_different_weight_decays_names_each_strength():
    entries = [{"id": "C4", "verdict": "holds", "details": {"weight_decay": 7e-4},
                "by_architecture": {"CNN, CIFAR-10": {"verdict": "fails", "details": {"weight_decay": 1e-4}}}}]
    assert differing(entries) == ["C4 (holds on the MLP, Fashion-MNIST at weight decay 0.0007; fails on the CNN, "
                                  "CIFAR-10 at weight decay 0.0001)"]


@pytest.mark.slow
def test_make_cnn_skips_cifar_without_it_and_says_where_its_records_came_from(tmp_path, capsys):
    rec = run_cnn(data_dir=None, out=tmp_path, quick=True, progress=False)
    assert rec["arms"]["study_cifar_cnn"] == {"skipped": "no CIFAR-10"}
    assert "skipped, no CIFAR-10" in capsys.readouterr().out
    fashion = rec["arms"]["study_fashion_cnn"]
    assert fashion["runs"] > 0 and fashion["found_finished"] == 0 and rec["records_bytes"] > 0
    assert 0 < fashion["cpu_share"] <= 1.01  # the process's CPU time over wall time times cores
    assert json.loads((tmp_path / "run.json").read_text())["quick"] is True
    # finished runs are found, not retrained, and the record of the command that trained them is kept
    again = run_cnn(data_dir=None, out=tmp_path, quick=True, progress=False)
    assert again["arms"]["study_fashion_cnn"] == {**fashion, "kept_from_an_earlier_command": True}


def test_the_committed_claims_agree_with_the_committed_cnn_records():
    runs = CNN_RECORDS / "runs"
    snapshot = json.loads((ROOT / "results" / "cpu" / "claims.json").read_text())
    if not runs.is_dir() or not any(e.get("by_architecture") for e in snapshot):
        pytest.skip("no CNN records committed yet (make cnn)")
    a = analyse(runs)  # the records alone, as the clone that never reruns them reads them
    by_id = {e["id"]: e for e in snapshot}
    for name, label in ARCHITECTURES.items():
        st = study(a, name)
        if st is None or name == "study_fashion":
            continue
        for cid, e in study_entries(st).items():
            have = by_id[cid].get("by_architecture", {}).get(label)
            if e["verdict"] == "not applicable":
                assert have is None
                continue
            assert have is not None, (label, cid)
            assert have["verdict"] == e["verdict"] and have["n_seeds"] == e["n_seeds"], (label, cid)
            assert have["value"] == pytest.approx(e["value"], rel=1e-9, abs=1e-12), (label, cid)


def test_a_cnn_arms_runtime_says_which_command_trained_it_and_whether_the_cores_were_its_own():
    from iwtheory.report.readme import runtime_text

    timings, reproduce = {"quick": {"a": 30.0}, "cpus": 2}, {"runs_seconds": {}, "cpus": 2}
    arm = {"seconds": 1500.0, "runs": 60, "found_finished": 0, "cpu_share": 0.97}
    text = runtime_text("a", timings, reproduce, {"cpus": 2, "arms": {"a": arm}})
    assert "full 25.0 min (make cnn, 2 CPUs)" in text and "upper bound" not in text
    shared = {**arm, "cpu_share": 0.6, "command": "iwtheory train a.toml\n--out x"}
    text = runtime_text("a", timings, reproduce, {"cpus": 2, "arms": {"a": shared}})
    assert "(iwtheory train a.toml --out x, 2 CPUs, using 60% of them: an upper bound)" in text
    # a resumed arm's time covers only part of its runs: no full time is claimed from it
    text = runtime_text("a", timings, reproduce, {"cpus": 2, "arms": {"a": {**arm, "found_finished": 30}}})
    assert "full: not part of make reproduce" in text


def test_the_cnn_premise_sentence_names_the_late_seeds_the_unseparated_nets_and_a_saturated_spread():
    from iwtheory.report.numbers import cnn_premise_text

    late = {"met": False, "nets": 30, "separated": 30, "median_separation_epoch": 128.0,
            "latest_separation_epoch": 260.0, "last_epoch": 260.0, "seeds_without_late_window": [4, 7],
            "unseparated": []}
    reg = {**late, "separated": 29, "seeds_without_late_window": [],
           "unseparated": [{"seed": 1, "weight": 0.0625, "final_train_acc": 0.5, "best_train_acc": 1.0,
                            "best_epoch": 128.0}]}
    entries = {"C2": {"premise": late}, "C4": {"premise": {"regularised": reg}},
               "C1": {"details": {"saturated": True, "early_F": {"16": 1.0, "0.0625": 0.0, "1": 0.5}}}}
    text = cnn_premise_text(entries, tex=False)
    assert "30 of its 30 nets separate, the median at epoch 128 and the latest at epoch 260 of 260" in text
    assert "seeds 4 and 7 have no late window of 1,000 steps" in text
    assert "29 of its 30 nets separate" in text
    assert "the one that does not is at w = 1/16 (best training accuracy 1.000 at epoch 128, final 0.500)" in text
    assert "0.00 at w = 1/16 and 1.00 at w = 16: a saturated spread" in text
    # met everywhere and not saturated: none of those clauses
    met = {**late, "seeds_without_late_window": [], "latest_separation_epoch": 150.0}
    text = cnn_premise_text({"C2": {"premise": met},
                             "C1": {"details": {"saturated": False, "early_F": {"16": 0.9, "0.0625": 0.1}}}},
                            tex=False)
    assert "no late window" not in text and "saturated" not in text and "do not" not in text
    assert "$" in cnn_premise_text(entries) and "$" not in cnn_premise_text(entries, tex=False)


def test_the_claims_each_arm_decided_are_named_and_an_arm_that_decided_none_says_so():
    from iwtheory.report.claims import decided_by_arm

    entries = [{"id": "C1", "by_architecture": {"A": {"verdict": "holds"}, "B": {"verdict": "inconclusive"}}},
               {"id": "C2", "by_architecture": {"A": {"verdict": "fails"}, "B": {"verdict": "inconclusive"}}},
               {"id": "C9"}]
    assert decided_by_arm(entries) == "on the A, C1, C2; on the B, none"
    entries[0]["by_architecture"]["B"]["verdict"] = "fails"
    assert decided_by_arm(entries) == "on the A, C1, C2; on the B, C1"


def test_make_cnn_keeps_no_earlier_record_it_cannot_trust(tmp_path):
    """A damaged run.json, or one that is a link, gives no kept record: the arm's runs are counted as found."""
    run_cnn(data_dir=None, out=tmp_path, quick=True, progress=False)
    good = (tmp_path / "run.json").read_text()
    elsewhere = tmp_path.parent / f"{tmp_path.name}_elsewhere.json"
    elsewhere.write_text(good)
    for damage in ("{not json", None):
        (tmp_path / "run.json").unlink()
        if damage is None:
            (tmp_path / "run.json").symlink_to(elsewhere)
        else:
            (tmp_path / "run.json").write_text(damage)
        arm = run_cnn(data_dir=None, out=tmp_path, quick=True, progress=False)["arms"]["study_fashion_cnn"]
        assert "kept_from_an_earlier_command" not in arm and arm["found_finished"] == arm["runs"] > 0


@pytest.mark.parametrize("epochs,decay", [(400, 0.5), (260, 0.0), (7, 0.3)])
def test_the_schedule_in_words_names_the_epoch_the_rate_starts_to_fall(epochs, decay):
    import re

    from iwtheory.report.numbers import schedule_text
    from iwtheory.runs.schedule import lr_factor

    text = schedule_text({"lr": 0.01, "epochs": epochs, "lr_decay": decay}, tex=False)
    assert text.startswith("learning rate 0.01")
    m = re.search(r"from epoch (\d+)$", text)
    if decay == 0:
        assert m is None and "falling" not in text
    else:  # the rate is whole up to the named epoch and lower in the next one
        e = int(m.group(1))
        assert lr_factor(e, epochs, decay) == 1.0 > lr_factor(e + 1, epochs, decay)


def test_the_readme_names_the_claims_whose_verdicts_split_the_architectures():
    import copy

    from iwtheory.report.readme import results_block

    snap = json.loads((ROOT / "results" / "cpu" / "claims.json").read_text())
    claims = snap["claims"] if isinstance(snap, dict) else snap
    if not any(e.get("by_architecture") for e in claims):
        pytest.skip("no CNN records in the committed claims")
    agree, split = copy.deepcopy(claims), copy.deepcopy(claims)
    for e in agree:  # every arm's decisive verdict as the MLP's: nothing differs
        for v in (e.get("by_architecture") or {}).values():
            v["verdict"] = e["verdict"] if v["verdict"] in ("holds", "fails") else v["verdict"]
    c2 = next(e for e in split if e["id"] == "C2")
    arm = next(iter(c2["by_architecture"]))
    c2["verdict"], c2["by_architecture"][arm]["verdict"] = "holds", "fails"
    assert "Verdicts that differ between the architectures: none." in results_block(agree)
    assert f"fails on the {arm}" in results_block(split).split("Verdicts that differ between the architectures:")[1]
