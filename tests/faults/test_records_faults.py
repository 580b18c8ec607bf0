"""Every class of record fault gives a repair that ends identical to a clean run, or a named error:
never a run marked done whose metrics miss or repeat a scheduled epoch."""

import gzip
import json
import shutil
import struct

import numpy as np
import pandas as pd
import pytest

from iwtheory.nets import readers
from iwtheory.report.build import make_figures, make_tables
from iwtheory.runs.config import ConfigError
from iwtheory.runs.records import RecordError, load
from iwtheory.runs.train import TrainConfig, run_train

from .conftest import TINY, tree


class Killed(Exception):
    pass


def stop_at(epoch):
    def hook(e):
        if e == epoch:
            raise Killed
    return hook


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    out = tmp_path_factory.mktemp("clean")
    run_train(TrainConfig(**TINY), out, progress=False)
    return tree(out)


def interrupted(tmp_path, epoch=2):
    out = tmp_path / "runs"
    with pytest.raises(Killed):
        run_train(TrainConfig(**TINY), out, progress=False, interrupt=stop_at(epoch))
    return out


def run_dirs(out):
    return sorted(p for p in out.iterdir() if not p.name.startswith("_"))


def finish_and_compare(out, clean, capsys, warned: str | None):
    run_train(TrainConfig(**TINY), out, progress=False)
    err = capsys.readouterr().err
    if warned:
        assert warned in err and err.count("iwtheory: warning:") >= 1, err
    assert tree(out) == clean
    return err


def test_deleting_the_run_folders_redoes_the_runs(tmp_path, clean, capsys):
    out = interrupted(tmp_path)
    for d in run_dirs(out):
        shutil.rmtree(d)
    finish_and_compare(out, clean, capsys, "whose folder is gone")
    assert list((out / "_groups").glob("*.set-aside-*"))  # set aside, not deleted


def test_deleting_one_run_folder_mid_sweep_restarts_its_group(tmp_path, clean, capsys):
    out = interrupted(tmp_path)
    shutil.rmtree(run_dirs(out)[1])
    finish_and_compare(out, clean, capsys, "set aside")


def test_deleting_the_metrics_but_keeping_the_checkpoint(tmp_path, clean, capsys):
    out = interrupted(tmp_path)
    (run_dirs(out)[0] / "metrics.jsonl").unlink()
    finish_and_compare(out, clean, capsys, "holds metrics for 0 of its")


def test_a_finished_groups_checkpoint_never_marks_runs_done_again(tmp_path, clean, capsys):
    out = tmp_path / "runs"
    with pytest.raises(Killed):  # stopped right after the last epoch's checkpoint
        run_train(TrainConfig(**TINY), out, progress=False, interrupt=stop_at(4))
    saved = {p.name: p.read_bytes() for p in (out / "_groups").glob("*.pt")}
    run_train(TrainConfig(**TINY), out, progress=False)
    assert not list((out / "_groups").glob("*.pt"))  # a finished group's checkpoint is deleted
    for d in run_dirs(out):
        shutil.rmtree(d)
    for name, data in saved.items():  # and even if one came back, it would be refused
        (out / "_groups" / name).write_bytes(data)
    finish_and_compare(out, clean, capsys, "whose folder is gone")


def test_a_checkpoint_with_flipped_bits_is_set_aside(tmp_path, clean, capsys):
    out = interrupted(tmp_path)
    for p in (out / "_groups").glob("*.pt"):
        raw = bytearray(p.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        p.write_bytes(bytes(raw))
    finish_and_compare(out, clean, capsys, "checksum mismatch")


def test_a_partial_last_line_is_dropped_on_resume(tmp_path, clean, capsys):
    out = interrupted(tmp_path)
    m = run_dirs(out)[0] / "metrics.jsonl"
    m.write_text(m.read_text() + '{"epoch": 3, "train_lo')  # what a full disk leaves
    err = finish_and_compare(out, clean, capsys, "dropped a partial last line")
    assert f"{m}, line 4" in err


def test_a_malformed_middle_line_is_an_error_naming_file_and_line(tmp_path):
    out = interrupted(tmp_path)
    m = run_dirs(out)[0] / "metrics.jsonl"
    lines = m.read_text().splitlines()
    lines[1] = "#" + lines[1][1:]  # no longer a JSON object
    m.write_text("\n".join(lines) + "\n")
    with pytest.raises(RecordError, match=f"{m}, line 2: malformed record"):
        run_train(TrainConfig(**TINY), out, progress=False)
    assert not any((d / "done").exists() for d in run_dirs(out))


def test_a_listed_twice_weight_is_refused_when_the_config_is_read():
    with pytest.raises(ConfigError, match="lists a cell twice"):
        TrainConfig(**{**TINY, "weights": [0.5, 2.0, 0.5]}).validate()


def fake_fashion(root, seed):
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    for name, arr in (("train-images-idx3-ubyte.gz", rng.integers(0, 256, (40, 8, 8))),
                      ("train-labels-idx1-ubyte.gz", np.arange(40) % 10),
                      ("t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (20, 8, 8))),
                      ("t10k-labels-idx1-ubyte.gz", np.arange(20) % 10)):
        header = bytes([0, 0, 8, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
        (root / name).write_bytes(gzip.compress(header + arr.astype(np.uint8).tobytes()))


def test_resuming_with_other_data_is_refused_naming_both_fingerprints(tmp_path, monkeypatch):
    monkeypatch.setitem(readers.EXPECTED_COUNTS, "fashion_mnist", (40, 20))
    fake_fashion(tmp_path / "a", 0)
    fake_fashion(tmp_path / "b", 1)
    cfg = TrainConfig(**{**TINY, "dataset": "fashion_mnist", "synthetic": {}, "pos": "pullover", "neg": "coat"})
    with pytest.raises(Killed):
        run_train(cfg, tmp_path / "runs", data_dir=tmp_path / "a", progress=False, interrupt=stop_at(2))
    with pytest.raises(RecordError, match=r"fingerprint [0-9a-f]{16}, but the data read now has fingerprint "
                                          r"[0-9a-f]{16}"):
        run_train(cfg, tmp_path / "runs", data_dir=tmp_path / "b", progress=False)
    run_train(cfg, tmp_path / "runs", data_dir=tmp_path / "a", progress=False)  # the same data resumes
    # a finished sweep extended with other data is refused too: it would mix two datasets
    more = TrainConfig(**{**cfg.__dict__, "weights": [0.5, 2.0, 8.0]})
    with pytest.raises(RecordError, match="must not mix datasets"):
        run_train(more, tmp_path / "runs", data_dir=tmp_path / "b", progress=False)


def test_a_done_run_missing_an_epoch_is_named_by_the_reports(tmp_path):
    out = tmp_path / "runs"
    run_train(TrainConfig(**TINY), out, progress=False)
    d = run_dirs(out)[2]
    m = d / "metrics.jsonl"
    m.write_text("".join(ln + "\n" for ln in m.read_text().splitlines() if json.loads(ln)["epoch"] != 3))
    with pytest.raises(RecordError, match=f"run {d} is marked done but its metrics fall short: 1 scheduled"):
        load(out)
    with pytest.raises(RecordError, match=str(d)):
        make_tables(out, tmp_path / "paper")
    m.write_text(m.read_text() + m.read_text().splitlines()[0] + "\n")  # and a repeated one
    with pytest.raises(RecordError, match=r"epoch\(s\) \[0.0\] recorded more than once"):
        load(out)


@pytest.mark.parametrize("victim, message", [("summary.json", "summary.json: not readable JSON"),
                                             ("config.json", "config.json: not readable JSON"),
                                             ("features", "not a readable features file")])
def test_corrupt_summary_config_or_features_are_named(tmp_path, victim, message):
    out = tmp_path / "runs"
    run_train(TrainConfig(**TINY), out, progress=False)
    d = run_dirs(out)[0]
    target = sorted((d / "features").glob("*.npz"))[0] if victim == "features" else d / victim
    target.write_bytes(target.read_bytes()[: len(target.read_bytes()) // 2])
    with pytest.raises(RecordError, match=message):
        make_tables(out, tmp_path / "paper")


def test_a_diverged_model_is_listed_and_left_out_not_blocking(tmp_path):
    out = tmp_path / "runs"
    cfg = TrainConfig(**{**TINY, "weights": [1.0, 2.0, 1e30], "max_models": 6, "lrs": [0.5]})
    run_train(cfg, out, progress=False)
    s = [json.loads((d / "summary.json").read_text()) for d in run_dirs(out)]
    bad = [x for x in s if x["diverged_epoch"] is not None]
    assert {x["weight"] for x in bad} == {1e30}
    make_figures(out, tmp_path / "paper" / "figures")
    make_tables(out, tmp_path / "paper")
    raw = json.loads((tmp_path / "paper" / "generated" / "numbers.json").read_text())
    assert raw["DivergedCount"] == len(bad)
    assert "$w = 1e+30$, seed 0" in raw["DivergedList"] and "$w = 1e+30$, seed 1" in raw["DivergedList"]


def test_a_sweep_extended_with_other_data_is_refused_and_never_reported(tmp_path):
    # the case: one regime trained on one copy of the data, another regime added from another copy
    from iwtheory.report.analysis import analyse
    from iwtheory.runs.records import RecordError
    from iwtheory.runs.train import TrainConfig, run_study

    out = tmp_path / "runs"
    base = {**TINY, "epochs": 2, "eval_dense": 2}
    run_study([TrainConfig(**base, regime="none")], out, progress=False)
    other = {**base["synthetic"], "seed": 7}  # the "other copy": different images, same everything else
    with pytest.raises(RecordError, match="fingerprint .* but the data read now has fingerprint"):
        run_study([TrainConfig(**{**base, "synthetic": other}, regime="l2", weight_decays=[1e-3])], out,
                  progress=False)
    # the same regime added from the same data is accepted
    run_study([TrainConfig(**base, regime="l2", weight_decays=[1e-3])], out, progress=False)
    analyse(out)
    # a records folder that already mixes two (copied together by hand) is refused by the reports
    mixed = tmp_path / "mixed"
    run_study([TrainConfig(**{**base, "synthetic": other}, regime="l2", weight_decays=[1e-3])], mixed,
              progress=False)
    import shutil

    for d in out.glob("*/config.json"):
        if '"regime": "none"' in d.read_text():
            shutil.copytree(d.parent, mixed / d.parent.name)
    with pytest.raises(RecordError, match="drawn from 2 different datasets"):
        analyse(mixed)


def test_foreign_lines_non_finite_shares_and_stray_folders(tmp_path, capsys):
    from iwtheory.runs.train import TrainConfig, run_study

    out = tmp_path / "runs"
    run_study([TrainConfig(**{**TINY, "epochs": 2, "eval_dense": 2})], out, progress=False)
    before = load(out)
    runs = sorted(p.parent for p in out.glob("*/config.json"))
    # a backup copy beside the runs is left out with a warning, not an error, and changes no number
    shutil.copytree(runs[0], out / f"{runs[0].name}.bak")
    after = load(out)
    assert len(after) == len(before) and "is not named by a run hash" in capsys.readouterr().err
    shutil.rmtree(out / f"{runs[0].name}.bak")
    # a line of another run appended to this run's metrics
    m0, m1 = runs[0] / "metrics.jsonl", runs[1] / "metrics.jsonl"
    good = m0.read_text()
    m0.write_text(good + m1.read_text().splitlines()[-1] + "\n")
    with pytest.raises(RecordError, match=f"belongs to run '{runs[1].name}', not {runs[0].name}"):
        load(out)
    # a line that names no run at all
    m0.write_text(good + json.dumps({"epoch": 1}) + "\n")
    with pytest.raises(RecordError, match="names no run"):
        load(out)
    # Infinity where a share belongs
    lines = good.splitlines()
    row = json.loads(lines[-1])
    row["frac_pos_test"] = float("inf")
    m0.write_text("\n".join(lines[:-1] + [json.dumps(row)]) + "\n")
    with pytest.raises(RecordError, match="frac_pos_test = inf is not a share"):
        load(out)


def test_reports_build_what_they_can_when_every_model_diverged(tmp_path, capsys):
    from iwtheory.report.analysis import analyse
    from iwtheory.report.build import make_claims
    from iwtheory.runs.train import TrainConfig, run_study

    out = tmp_path / "runs"
    run_study([TrainConfig(**{**TINY, "name": "study_fashion", "epochs": 3, "eval_dense": 3, "lrs": [1e30]})], out,
              progress=False)
    s = pd.concat([pd.read_json(p, typ="series").to_frame().T for p in out.glob("*/summary.json")])
    assert s.diverged_epoch.notna().all()  # the premise of this test: every model diverged
    a = analyse(out)
    assert "every run of study_fashion (local) diverged" in capsys.readouterr().err
    make_figures(out, tmp_path / "paper" / "figures", a)
    make_tables(out, tmp_path / "paper", a)
    make_claims(out, tmp_path / "paper", a)
    claims = json.loads((tmp_path / "paper" / "generated" / "claims.json").read_text())
    assert all(e["verdict"] == "inconclusive" for e in claims)


def test_a_done_run_with_a_cut_last_line_is_run_again_not_stuck(tmp_path, capsys):
    from iwtheory.runs.train import TrainConfig, run_study

    out = tmp_path / "runs"
    cfgs = [TrainConfig(**{**TINY, "epochs": 2, "eval_dense": 2})]
    run_study(cfgs, out, progress=False)
    ref = load(out).sort_values(["config_hash", "epoch"]).reset_index(drop=True)
    victim = sorted(out.glob("*/metrics.jsonl"))[0]
    text = victim.read_text()
    victim.write_text(text[: len(text) - 25])  # the last line cut (a full disk), `done` left in place
    with pytest.raises(RecordError, match="partial last line"):
        load(out)
    run_study(cfgs, out, progress=False)  # the rerun repairs it rather than skipping a done run
    assert "will be run again" in capsys.readouterr().err
    again = load(out).sort_values(["config_hash", "epoch"]).reset_index(drop=True)
    # retrained alone rather than beside another model: the same numbers up to float summation order
    pd.testing.assert_frame_equal(again, ref, rtol=1e-4)


def test_a_damaged_theory_config_cannot_make_the_report_draw_a_huge_dataset(tmp_path):
    """The boundaries figure draws its dataset again from a run's config.json: sizes are checked first."""
    import json

    from iwtheory.report.analysis import MAX_POINTS, rebuild_dataset
    from iwtheory.runs.theory import TheoryConfig, run_theory

    runs = run_theory(TheoryConfig(name="theory_boundaries", dataset="bl_toy", data={"n_per_class": 5},
                                   weights=[1.0], t_max=10.0, n_records=3), tmp_path, progress=False)
    path = runs[0].dir / "config.json"
    assert rebuild_dataset(path).X.shape == (10, 3)
    cfg = json.loads(path.read_text())
    for data in ({"n_per_class": MAX_POINTS * 1000}, {"n_per_class": -3}, {"n_per_class": "many"},
                 {"n_per_class": 5, "colour": 1}, {"n_per_class": True}):
        path.write_text(json.dumps({**cfg, "data": data}))
        with pytest.raises(RecordError, match="cannot be drawn again"):
            rebuild_dataset(path)
