import json
from pathlib import Path

import pytest

from iwtheory.cli import main
from iwtheory.runs import load, load_summaries, missing_runs
from iwtheory.runs.config import ConfigError, load_toml, parse_override
from iwtheory.runs.theory import TheoryConfig

from ..conftest import assert_documented_header

ROOT = Path(__file__).resolve().parents[2]
TINY = """
# command: iwtheory theory tiny.toml
name = "tiny"
dataset = "soudry_toy"
data = { n_random = 6, seed = 0 }
weights = [1.0, 4.0]
losses = ["exponential"]
methods = ["flow", "gd"]
t_max = 1e20
steps = 200
n_records = 8

[quick]
weights = [4.0]
"""


def write(tmp_path, text, name="cfg.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_unknown_key_and_wrong_type_are_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['wieghts'\]"):
        load_toml(write(tmp_path, 'name = "x"\nwieghts = [1.0]\n'), TheoryConfig)
    with pytest.raises(ConfigError, match="steps: expected an integer"):
        load_toml(write(tmp_path, 'name = "x"\nsteps = "many"\n'), TheoryConfig)
    with pytest.raises(ConfigError, match="weights must be"):
        load_toml(write(tmp_path, 'name = "x"\nweights = [0.0]\n'), TheoryConfig)
    with pytest.raises(ConfigError, match="unknown method"):
        load_toml(write(tmp_path, 'name = "x"\nmethods = ["adam"]\n'), TheoryConfig)
    with pytest.raises(ConfigError, match="does not exist"):
        load_toml(tmp_path / "nope.toml", TheoryConfig)
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_toml(write(tmp_path, "name = \n"), TheoryConfig)


def test_quick_and_set_overrides(tmp_path):
    p = write(tmp_path, TINY)
    assert load_toml(p, TheoryConfig).weights == [1.0, 4.0]
    assert load_toml(p, TheoryConfig, quick=True).weights == [4.0]
    cfg = load_toml(p, TheoryConfig, overrides=["steps=50", "losses=['logistic']"])
    assert cfg.steps == 50 and cfg.losses == ["logistic"]
    assert parse_override("name=abc") == ("name", "abc")
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("steps")


def test_cli_writes_self_describing_records_and_skips_finished_runs(tmp_path, capsys):
    cfg = write(tmp_path, TINY)
    out = tmp_path / "runs"
    assert main(["theory", str(cfg), "--out", str(out), "--no-progress"]) == 0
    dirs = sorted(p for p in out.iterdir() if not p.name.startswith("_"))
    assert len(dirs) == 4  # 2 weights x 2 methods
    for d in dirs:
        assert (d / "done").exists() and (d / "config.json").exists()
        line = json.loads((d / "metrics.jsonl").read_text().splitlines()[0])
        assert {"config_hash", "experiment", "seed", "t", "weight", "loss", "method"} <= set(line)
        assert line["config_hash"] == d.name
        assert line["loss"] == "exponential" and line["objective"] > 0  # the name is not overwritten
    stamps = {d: (d / "metrics.jsonl").stat().st_mtime_ns for d in dirs}
    assert main(["theory", str(cfg), "--out", str(out), "--no-progress"]) == 0
    assert all((d / "metrics.jsonl").stat().st_mtime_ns == stamps[d] for d in dirs)

    df = load(out, experiment="tiny")
    assert set(df["weight"]) == {1.0, 4.0} and set(df["method"]) == {"flow", "gd"}
    flow = df[(df.method == "flow") & (df.t >= 1.0)]
    assert flow["predicted_angle"].notna().all()
    s = load_summaries(out)
    assert len(s) == 4 and (s["kkt_residual"] < 1e-9).all()

    # an unfinished run is reported, and left out of load() by default
    (dirs[0] / "done").unlink()
    assert missing_runs(out, [d.name for d in dirs] + ["feedbeef"]) == {
        "absent": ["feedbeef"], "unfinished": [dirs[0].name]}
    assert len(load(out)) < len(df)
    assert len(load(out, finished_only=False)) == len(df)


def test_cli_reports_bad_config_in_one_line(tmp_path, capsys):
    p = write(tmp_path, 'name = "x"\nlosses = ["hinge"]\n')
    assert main(["theory", str(p), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("iwtheory: error:") and "unknown loss 'hinge'" in err


@pytest.mark.parametrize("path", sorted((ROOT / "experiments").glob("theory_*.toml")), ids=lambda p: p.name)
def test_shipped_theory_configs_load_and_document_themselves(path):
    assert_documented_header(path)
    full = load_toml(path, TheoryConfig)
    quick = load_toml(path, TheoryConfig, quick=True)
    assert len(quick.cells()) <= len(full.cells())
