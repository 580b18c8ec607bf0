import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from iwtheory.compare.effects import IncompleteSweepError
from iwtheory.report.analysis import analyse, study
from iwtheory.catalogue import CATALOGUE, SHARED_TABLES
from iwtheory.report.build import make_claims, make_figures, make_tables
from iwtheory.report.layout import layout_faults
from iwtheory.report.macros import fmt, read_macros
from iwtheory.runs import load, load_summaries
from iwtheory.runs.config import load_study
from iwtheory.runs.inside import InsideConfig, run_inside
from iwtheory.runs.theory import TheoryConfig, run_theory
from iwtheory.runs.train import TrainConfig, run_train

ROOT = Path(__file__).resolve().parents[2]
STUDY = """
name = "study_fashion"
dataset = "synthetic"
synthetic = { n_train = 400, n_test = 100, shape = [1, 6, 6] }
n_pos = 20
n_neg = 20
val_fraction = 0.2
model = "mlp"
hidden = [16]
weights = [0.25, 1.0, 4.0]
weight_norm = "mean"
seeds = [0, 1, 2]
lrs = [0.05]
batch_size = 8
epochs = 6
eval_dense = 6
eval_tail = 2
record_points = 2
n_feature_images = 32
max_other = 30
noise_count = 10
draws = "seed"
[regimes.none]
[regimes.one_draw]
draws = "fixed"
[regimes.l2]
weight_decays = [0.0001, 0.001, 0.01]
[regimes.none_decay]
hidden = [24]
lr_decay = 0.5
[regimes.dropout]
dropouts = [0.5]
hidden = [24]
lr_decay = 0.5
baseline = "none_decay"
[regimes.batchnorm]
batchnorm = true
hidden = [24]
lr_decay = 0.5
baseline = "none_decay"
[regimes.subsample]
n_pos = 5
[regimes.noise]
linear = true
hidden = []
label_noise = 0.2
"""


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    toy = {"n_per_class": 15, "seed": 0}
    run_theory(TheoryConfig(name="theory_angle", dataset="bl_toy", data=toy, weights=[1.0, 16.0],
                            losses=["exponential"], t_max=1e30, n_records=30), runs, progress=False)
    run_theory(TheoryConfig(name="theory_boundaries", dataset="bl_toy", data=toy, weights=[0.25, 1.0, 4.0],
                            t_max=1e3, n_records=10), runs, progress=False)
    run_theory(TheoryConfig(name="theory_duplicates", dataset="bl_toy", data=toy, weights=[1.0, 3.0],
                            methods=["gd", "sgd"], seeds=[0, 1, 2], duplicates=[False, True], lr=0.002, steps=300,
                            batch_size=4, n_records=10),
               runs, progress=False)
    run_theory(TheoryConfig(name="theory_deep", dataset="bl_toy", data=toy, weights=[1.0, 4.0], depths=[1, 2],
                            widths=[4], t_max=1e8, n_records=12), runs, progress=False)
    run_theory(TheoryConfig(name="theory_poly", dataset="bl_toy", data=toy, weights=[0.25, 4.0],
                            losses=["logistic", "polynomial"], t_max=1e8, n_records=12), runs, progress=False)
    run_theory(TheoryConfig(name="theory_losses", dataset="bl_toy", data=toy, weights=[1.0, 16.0],
                            losses=["logistic", "la", "vs", "polynomial"], t_max=1e20, n_records=15,
                            loss_params={"la": {"iota": [1.0, -1.0]}, "vs": {"delta": [2.0, 1.0]}}),
               runs, progress=False)
    run_inside(InsideConfig(name="inside_toy", data={"n_per_class": 8, "seed": 0}, weights=[0.0625, 1.0, 16.0],
                            seeds=[0, 1, 2], hidden=[16], t_max=1e10, n_records=8, check_t=3.0, check_lr=0.02,
                            n_test=20, noise_count=10), runs, progress=False)
    losses = runs.parent / "losses.toml"
    losses.write_text(STUDY.split("[regimes.none]")[0].replace('"study_fashion"', '"study_losses"') +
                      '[regimes.logistic]\n[regimes.vs]\nloss = "vs"\nloss_params = { delta = [0.5, 1.0] }\n'
                      '[regimes.la]\nloss = "la"\nloss_params = { counts = [5, 20] }\n'
                      '[regimes.vs_softmax]\nloss = "vs_softmax"\nloss_params = { counts = [5, 20] }\n'
                      '[regimes.label_margin]\nloss = "label_margin"\nloss_params = { counts = [5, 20], s = 1.0 }\n'
                      '[regimes.ldam]\nloss = "ldam"\nloss_params = { counts = [5, 20] }\n'
                      '[regimes.poly1]\nloss = "polynomial"\n[regimes.poly2]\nloss = "polynomial"\npoly_alpha = 2.0\n'
                      '[regimes.logistic_sub]\nn_pos = 5\n[regimes.ldam_sub]\nloss = "ldam"\nn_pos = 5\n'
                      '[regimes.poly1_sub]\nloss = "polynomial"\nn_pos = 5\n'
                      '[regimes.poly2_sub]\nloss = "polynomial"\npoly_alpha = 2.0\nn_pos = 5\n')
    for c in load_study(losses, TrainConfig):
        run_train(c, runs, progress=False)
    cnn = runs.parent / "cnn.toml"  # a stand-in for the CNN arm's committed records: its name is what the report reads
    cnn.write_text(STUDY.split("[regimes.none]")[0].replace('"study_fashion"', '"study_fashion_cnn"')
                   + "[regimes.none]\n[regimes.l2]\nweight_decays = [0.001]\n")
    for c in load_study(cnn, TrainConfig):
        run_train(c, runs, progress=False)
    cfg = runs.parent / "study.toml"
    cfg.write_text(STUDY)
    for c in load_study(cfg, TrainConfig):
        run_train(c, runs, progress=False)
    run_train(TrainConfig(name="toy_mlp", dataset="bl_toy", synthetic={"n_per_class": 10, "n_test": 40},
                          model="mlp", hidden=[8], weights=[0.1, 1.0, 10.0], seeds=[0, 1, 2], lrs=[0.05],
                          batch_size=20, epochs=8, eval_dense=8, record_points=2, noise_count=10), runs, progress=False)
    return runs


def test_numbers_in_the_macros_equal_the_records(sweep, tmp_path):
    make_tables(sweep, tmp_path, results=[])
    macros = read_macros(tmp_path / "generated" / "numbers.tex")
    raw = json.loads((tmp_path / "generated" / "numbers.json").read_text())
    assert set(macros) == set(raw)
    for k, v in raw.items():
        assert macros[k] == fmt(v), k

    # recompute what the text quotes, straight from the records with pandas
    df = load(sweep)
    none = df[(df.experiment == "study_fashion") & (df.regime == "none")]
    piv = none.pivot_table(index=["seed", "epoch"], columns="weight", values="frac_pos_test")
    delta = (piv[4.0] - piv[1.0]).groupby("epoch").mean()
    assert raw["PeakNone"] == pytest.approx(delta.abs().max(), abs=1e-12)
    # C1 averages F over the first 200 steps: 32 images in batches of 8 are 4 steps an epoch, so all 6 epochs
    ep = piv.index.get_level_values("epoch")
    early = piv[(ep >= 1) & (ep <= 50)].groupby(level="seed").mean()
    assert raw["ClaimOneValue"] == pytest.approx((early[4.0] - early[0.25]).mean(), abs=1e-12)
    assert raw["ClaimOneSe"] == pytest.approx((early[4.0] - early[0.25]).std(ddof=1) / np.sqrt(3), abs=1e-12)
    assert raw["StudyEpochs"] == 6 and raw["StudySeeds"] == 3 and raw["StudyTrainImages"] == 32
    assert raw["StudyWeightMax"] == "4" and raw["StudyWeightMin"] == "1/4" and raw["DivergedCount"] == 0
    s = load_summaries(sweep)
    assert raw["KKTmax"] == pytest.approx(s.kkt_residual.max())
    th = df[df.experiment == "theory_angle"]
    for w, name in ((1.0, "KpredExpOne"), (16.0, "KpredExpOneSix")):
        assert raw[name] == pytest.approx(s[(s.experiment == "theory_angle") & (s.weight == w)].angle_constant.iloc[0])
        g = th[th.weight == w].sort_values("t")
        assert raw[name.replace("Kpred", "Kend")] == pytest.approx(g.angle.iloc[-1] * np.log(g.t.iloc[-1]))

    # the feature-space share, recomputed from the saved features with an SVM of scikit-learn's
    from sklearn.svm import SVC

    last = none.epoch.max()
    rows = none[(none.epoch == last) & none.features.notna()]
    sep = []
    for _, r in rows.iterrows():
        z = np.load(sweep / r.config_hash / r.features)
        sep.append(SVC(kernel="linear", C=1e8).fit(z["features"], z["labels"]).score(z["features"], z["labels"]) == 1)
    assert raw["FeatLastEpoch"] == last and raw["FeatSeparableShare"] == pytest.approx(np.mean(sep))

    # the long runs: the angle at the end of the approach window, from the records
    ins = df[df.experiment == "inside_toy"]
    t_end = ins.t.max()
    end = ins[(ins.weight == 16.0) & (ins.t == t_end)]
    assert raw["InsideAngleEndUp"] == pytest.approx(end.angle_unweighted.mean())
    assert raw["InsideSeeds"] == 3 and raw["InsideTmaxLog"] == pytest.approx(10.0)
    # and the CPU study's nets: the angle to the unweighted partner at the last epoch
    assert raw["StudyAngleEndUp"] == pytest.approx(none[none.weight == 4.0].groupby("epoch").angle_unweighted.mean()
                                                   .iloc[-1])
    assert (none[none.weight == 1.0].angle_unweighted == 0).all()


def test_claims_json_holds_every_claim_with_its_fields(sweep, tmp_path):
    make_claims(sweep, tmp_path, results=[])
    entries = json.loads((tmp_path / "generated" / "claims.json").read_text())
    assert [e["id"] for e in entries] == ["C1", "C2", "C2b", "C3", "C4", "C5", "C6", "C7", "C8", "C9", "C10",
                                          "C11", "C12", "N1", "N2", "N3"]
    for e in entries:
        assert e["verdict"] in ("holds", "fails", "inconclusive"), e
        assert {"statement", "statistic", "value", "se", "n_seeds", "rule", "scale", "experiments", "premise",
                "threshold"} <= set(e), e
        assert e["rule"] and e["statistic"]
        assert {"statement", "met", "value"} <= set(e["premise"])
        if e["threshold"] is not None:
            lo, hi = e["threshold"]["stable_range"]
            assert lo <= e["threshold"]["value"] <= hi
        # fewer than 10 seeds (or a premise not met) never gives a decisive network verdict
        if e["id"] not in ("C9", "C11"):
            assert e["verdict"] == "inconclusive", e
    net = {e["id"]: e for e in entries if e["id"] not in ("C9", "C10", "C11", "N1", "N2", "N3")}
    assert all(e["n_seeds"] == 3 for e in net.values())
    assert net["C1"]["scale"]["epochs"] == 6 and net["C1"]["scale"]["training images"] == 32
    c11 = next(e for e in entries if e["id"] == "C11")
    assert c11["details"]["gd_identity_relative_difference"] < 1e-12  # weighted GD == GD on copies
    assert set(c11["details"]["by_weight"]) == {"3"} and c11["details"]["by_weight"]["3"]["seeds"] == 3
    tex = (tmp_path / "tables" / "claims.tex").read_text()
    assert "\\toprule" in tex and tex.count("\\\\") >= 16
    inside = {e["id"]: e for e in entries if e["id"].startswith("N")}
    assert all(e["n_seeds"] == 3 and e["experiments"] == ["inside_toy"] for e in inside.values())


@pytest.mark.latex
@pytest.mark.skipif(shutil.which("latexmk") is None, reason="needs latexmk (CI installs TeX)")
def test_figures_tables_claims_and_a_compiled_pdf(sweep, tmp_path):
    paper = tmp_path / "paper"
    paper.mkdir()
    shutil.copy(ROOT / "paper" / "main.tex", paper / "main.tex")
    a = analyse(sweep)
    for st in a.studies.values():  # every study's early/late summary, and the loss study's feature limits
        assert {"variant", "weight", "peak_effect", "tail_abs_effect"} <= set(st.summary.columns), st.name
    assert len(study(a, "study_losses").limits) == study(a, "study_losses").df.config_hash.nunique()
    figs = make_figures(sweep, paper / "figures", a)
    names = {p.stem for p in figs}
    assert {"theory_angle", "theory_boundaries", "theory_residual", "frac_pos_none", "frac_pos_regimes",
            "effect_by_regime", "l2_strength", "early_stopping", "toy_mlp", "theory_losses", "frac_pos_losses",
            "inside"} <= names
    assert names <= {f for e in CATALOGUE for f in e.figures}, "a figure the catalogue does not list"
    assert all(p.stat().st_size > 0 for p in figs)
    make_claims(sweep, paper, a)
    make_tables(sweep, paper, a, extra_numbers={"RunsMinutes": 1.0, "ReportMinutes": 0.1, "Quick": "no",
                                                "CommandLine": "iwtheory reproduce", "EnvMachine": "test",
                                                "EnvPython": "3", "EnvNumpy": "2", "EnvScipy": "1", "EnvTorch": "2",
                                                "EnvIwtheory": "0", "RunsFound": 0, "RunsTrained": 9,
                                                "RunsFresh": "fresh"})
    subprocess.run(["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "main.tex"], cwd=paper,
                   check=True, capture_output=True)
    assert (paper / "main.pdf").stat().st_size > 10_000
    log = (paper / "main.log").read_text(errors="replace")
    assert "Undefined control sequence" not in log
    assert layout_faults(log) == []  # nothing runs off the page, no float too large for it
    missing = sorted(set(ln for ln in log.splitlines() if "missing number" in ln))
    assert missing == [], missing
    # the CNN arm: its own section, its separation table, a verdict column per architecture
    assert (paper / "tables" / "separation_cnn.tex").is_file() and "sec:cnn" in (paper / "main.aux").read_text()
    assert "CNN, Fashion-MNIST" in (paper / "tables" / "claims.tex").read_text()
    tex = (paper / "tables" / "losses.tex").read_text()
    assert "cost-{}sensitive max margin" in tex and "poly1" in tex
    tables = {p.stem for p in (paper / "tables").glob("*.tex")}
    assert {"theory", "early_late", "separation", "losses", "experiments", "claims"} <= tables
    assert tables <= {t for e in CATALOGUE for t in e.tables} | set(SHARED_TABLES), "a table the catalogue lacks"


def test_two_variants_in_one_folder_are_refused(sweep, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(sweep, runs)
    run_theory(TheoryConfig(name="theory_angle", dataset="bl_toy", data={"n_per_class": 15, "seed": 0},
                            weights=[1.0], losses=["exponential"], t_max=1e25, n_records=30), runs, progress=False)
    with pytest.raises(ValueError, match=r"\['theory_angle'\] have several runs with the same sweep keys"):
        make_tables(runs, tmp_path / "out")


def test_unfinished_or_holey_sweeps_say_which(sweep, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(sweep, runs)
    df = load(runs)
    h = df[(df.regime == "dropout") & (df.weight == 4.0) & (df.seed == 1)].config_hash.iloc[0]
    (runs / h / "done").unlink()
    with pytest.raises(IncompleteSweepError, match=f"unfinished.*{h}"):
        make_tables(runs, tmp_path / "out")
    shutil.rmtree(runs / h)
    # the sweep's own plan (each run's sweep.json) names the missing run first ...
    with pytest.raises(IncompleteSweepError, match=f"dropout\\] misses 1 of its .* planned runs .*{h}"):
        make_tables(runs, tmp_path / "out")
    # ... and reported anyway (--partial), the hole still stops the weight effect it would bias
    with pytest.raises(IncompleteSweepError, match=r"seeds differ from the w = 1 runs for weights \{4.0: \[1\]\}"):
        make_tables(runs, tmp_path / "out", partial=True)


HOSTILE = r"x}\input{/etc/hostname}\iffalse"


@pytest.mark.skipif(shutil.which("latexmk") is None, reason="needs latexmk (CI installs TeX)")
def test_hostile_names_in_every_record_reach_no_output_raw_and_pdflatex_opens_nothing_outside(sweep, tmp_path):
    """Every regime name of the network records made hostile (metrics, configs, summaries): no table, figure,
    macro or claims file holds it raw, and pdflatex's log shows it opened no file outside the paper folder."""
    import json as _json

    runs = tmp_path / "runs"
    shutil.copytree(sweep, runs)
    renamed = {}
    for d in sorted(p for p in runs.iterdir() if (p / "config.json").is_file()):
        cfg = _json.loads((d / "config.json").read_text())
        reg = cfg.get("regime")
        if reg is None or reg == "none":
            continue
        new = renamed.setdefault(reg, f"{HOSTILE}{len(renamed)}")
        for name in ("config.json", "summary.json"):
            p = d / name
            if p.is_file():
                obj = _json.loads(p.read_text())
                obj["regime"] = new
                p.write_text(_json.dumps(obj))
        lines = [_json.loads(ln) for ln in (d / "metrics.jsonl").read_text().splitlines() if ln.strip()]
        (d / "metrics.jsonl").write_text("".join(_json.dumps({**r, "regime": new}) + "\n" for r in lines))
        if (d / "sweep.json").is_file():
            s = _json.loads((d / "sweep.json").read_text())
            (d / "sweep.json").write_text(_json.dumps({**s, "regime": new}))
    assert renamed, "the sweep has regimes besides none"
    paper = tmp_path / "paper"
    paper.mkdir()
    shutil.copy(ROOT / "paper" / "main.tex", paper / "main.tex")
    a = analyse(runs)
    make_figures(runs, paper / "figures", a)
    make_claims(runs, paper, a)
    make_tables(runs, paper, a, extra_numbers={"RunsMinutes": 1.0, "ReportMinutes": 0.1, "Quick": "no",
                                               "CommandLine": "iwtheory reproduce", "EnvMachine": "test",
                                               "EnvPython": "3", "EnvNumpy": "2", "EnvScipy": "1", "EnvTorch": "2",
                                               "EnvIwtheory": "0"})
    written = [p for p in paper.rglob("*") if p.suffix in (".tex", ".pgf") and p.name != "main.tex"]  # LaTeX only
    assert written
    for p in written:
        text = p.read_text(errors="replace")
        assert "\\input{/etc/hostname}" not in text, f"{p.name} holds a hostile name raw"
    subprocess.run(["latexmk", "-pdf", "-interaction=nonstopmode", "main.tex"], cwd=paper, capture_output=True,
                   timeout=300)
    log = (paper / "main.log").read_text(errors="replace")
    assert "/etc/hostname" not in log, "pdflatex opened a file outside the paper folder"
