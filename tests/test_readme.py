"""The README's results and timings are generated from the committed snapshot of the last `make reproduce`."""

import json
import shutil
from pathlib import Path

import pytest

from iwtheory.report import readme

ROOT = Path(__file__).resolve().parents[1]
CPU = ROOT / "results" / "cpu"


def test_the_readme_agrees_with_results_cpu():
    want = readme.render(CPU)
    have = readme.blocks_of((ROOT / "README.md").read_text())
    assert set(have) == set(readme.BLOCKS)
    for name in readme.BLOCKS:
        assert have[name] == want[name], f"README block {name!r} is stale: run `iwtheory readme`"


def test_the_snapshot_is_a_full_run_with_every_claim():
    claims = json.loads((CPU / "claims.json").read_text())
    from iwtheory.compare.claims import ORDER

    assert [e["id"] for e in claims] == list(ORDER)
    t = json.loads((CPU / "reproduce.json").read_text())
    assert not t["quick"] and t["total_seconds"] > 0 and t["make_seconds"] >= t["total_seconds"]


def test_a_changed_verdict_changes_the_readme(tmp_path):
    shutil.copytree(CPU, tmp_path / "cpu")
    doc = tmp_path / "README.md"
    exp = ROOT / "experiments"
    stale = [f"<!-- {b}:begin -->\nSTALE-TEXT\n<!-- {b}:end -->\n" for b in readme.BLOCKS]
    doc.write_text("intro\n" + "mid\n".join(stale) + "end\n")
    assert readme.update(doc, tmp_path / "cpu", exp)
    first = doc.read_text()
    assert first.startswith("intro\n") and first.endswith("end\n") and "STALE-TEXT" not in first
    assert readme.blocks_of(first) == readme.render(tmp_path / "cpu", exp)
    assert not readme.update(doc, tmp_path / "cpu", exp)  # idempotent
    claims = json.loads((tmp_path / "cpu" / "claims.json").read_text())
    claims[0]["verdict"] = "fails" if claims[0]["verdict"] != "fails" else "holds"
    (tmp_path / "cpu" / "claims.json").write_text(json.dumps(claims))
    assert readme.update(doc, tmp_path / "cpu", exp) and doc.read_text() != first
    doc.write_text("no blocks here\n")
    with pytest.raises(ValueError, match="no block"):
        readme.update(doc, tmp_path / "cpu", exp)


def test_every_config_states_its_measured_runtime_and_pilots():
    for path, line in readme.config_runtime_lines(ROOT / "experiments", CPU).items():
        header = [ln for ln in path.read_text().splitlines() if ln.startswith("# runtime:")]
        assert header == [line], f"{path}: run `make timings` (or `iwtheory readme`)"
        pilots = [ln for ln in path.read_text().splitlines() if ln.startswith("# pilot:")]
        assert pilots == readme.pilot_lines(path.stem, CPU), f"{path}: run `iwtheory readme`"


def test_pilot_lines_come_from_the_pilots_json(tmp_path):
    (tmp_path / "pilots").mkdir()
    pilot = {"config": "study_x", "seconds": 61.0, "regimes": {"dropout": {
        "separated": 14, "nets": 15, "separation_epochs": [40.0, 308.0], "epochs": 360, "premise_met": False}}}
    (tmp_path / "pilots" / "p1.json").write_text(json.dumps(pilot))
    (tmp_path / "pilots" / "other.json").write_text(json.dumps({**pilot, "config": "study_y"}))
    lines = readme.pilot_lines("study_x", tmp_path)
    assert lines == ["# pilot:    p1: dropout 14/15 separate by epoch 308 of 360, premise not met (61 s)"]


def test_the_snapshot_has_no_decisive_verdict_without_its_premise():
    claims = json.loads((CPU / "claims.json").read_text())
    for e in claims:
        if e["verdict"] != "inconclusive":
            assert e["premise"]["met"], e["id"]
        if e["id"] not in ("C9",):  # C9 is deterministic (gradient flow, no seeds)
            assert e["n_seeds"] >= 10 or e["verdict"] == "inconclusive", e["id"]
        assert not e["details"].get("saturated", False), e["id"]
