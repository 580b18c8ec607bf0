import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from iwtheory.compare.effects import IncompleteSweepError
from iwtheory.report.build import make_figures, make_tables
from iwtheory.report.macros import fmt, read_macros
from iwtheory.runs import load, load_summaries
from iwtheory.runs.theory import TheoryConfig, run_theory
from iwtheory.runs.train import TrainConfig, run_train

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    run_theory(TheoryConfig(name="theory_angle", dataset="bl_toy", data={"n_per_class": 15, "seed": 0},
                            weights=[1.0, 16.0], losses=["exponential"], t_max=1e30, n_records=30),
               runs, progress=False)
    run_theory(TheoryConfig(name="theory_boundaries", dataset="bl_toy", data={"n_per_class": 15, "seed": 0},
                            weights=[0.25, 1.0, 4.0], methods=["gd"], steps=300, n_records=10),
               runs, progress=False)
    run_train(TrainConfig(name="cnn_tiny", dataset="synthetic", regime="none",
                          synthetic={"n_train": 100, "n_test": 50, "shape": [3, 24, 24]},
                          weights=[0.25, 1.0, 4.0], seeds=[0, 1], lrs=[0.05], batch_size=10, epochs=4,
                          eval_dense=4, record_points=2, n_feature_images=8, max_other=20, noise_count=10),
              runs, progress=False)
    return runs


def test_numbers_in_the_macros_equal_the_dataframe(sweep, tmp_path):
    paths = make_tables(sweep, tmp_path)
    macros = read_macros(tmp_path / "generated" / "numbers.tex")
    raw = json.loads((tmp_path / "generated" / "numbers.json").read_text())
    assert set(macros) == set(raw)
    for k, v in raw.items():
        assert macros[k] == fmt(v), k

    # recompute what the text quotes, straight from the records with pandas
    df = load(sweep)
    cnn = df[df.experiment == "cnn_tiny"]
    piv = cnn.pivot_table(index=["seed", "epoch"], columns="weight", values="frac_pos_test")
    delta = (piv[4.0] - piv[1.0]).groupby("epoch").mean()
    assert raw["PeakNone"] == pytest.approx(delta.abs().max(), abs=1e-12)
    last = delta.index >= delta.index.max() - 0.1 * (delta.index.max() - delta.index.min())
    assert raw["LateNone"] == pytest.approx(delta[last].abs().mean(), abs=1e-12)
    assert raw["CnnEpochs"] == 4 and raw["CnnMaxWeight"] == 4.0
    s = load_summaries(sweep)
    assert raw["KKTmax"] == pytest.approx(s.kkt_residual.max())
    th = df[df.experiment == "theory_angle"]
    for w, name in ((1.0, "KpredExpOne"), (16.0, "KpredExpOneSix")):
        assert raw[name] == pytest.approx(s[(s.experiment == "theory_angle") & (s.weight == w)].angle_constant.iloc[0])
        g = th[th.weight == w].sort_values("t")
        end = name.replace("Kpred", "Kend")
        assert raw[end] == pytest.approx(g.angle.iloc[-1] * np.log(g.t.iloc[-1]))

    # the feature-space numbers, recomputed from the saved features with an SVM of scikit-learn's
    from sklearn.svm import SVC

    last = cnn.epoch.max()
    rows = cnn[(cnn.epoch == last) & cnn.features.notna()]
    sep = []
    for _, r in rows.iterrows():
        z = np.load(sweep / r.config_hash / r.features)
        svc = SVC(kernel="linear", C=1e8).fit(z["features"], z["labels"])
        sep.append(svc.score(z["features"], z["labels"]) == 1.0)
    assert raw["FeatLastEpoch"] == last
    assert raw["FeatSeparableShare"] == pytest.approx(np.mean(sep))

    tex = (tmp_path / "tables" / "early_late.tex").read_text()
    assert "\\toprule" in tex and "\\bottomrule" in tex and "\\pm" in tex
    # the best cell is bolded whole, never split across LaTeX
    assert "\\textbf{\\boldmath $" in tex and all(
        line.count("$") % 2 == 0 for line in tex.splitlines() if "\\boldmath" in line)
    assert len(paths) == 3


@pytest.mark.latex
@pytest.mark.skipif(shutil.which("latexmk") is None, reason="needs latexmk (CI installs TeX)")
def test_figures_tables_and_a_compiled_pdf(sweep, tmp_path):
    paper = tmp_path / "paper"
    paper.mkdir()
    shutil.copy(ROOT / "paper" / "main.tex", paper / "main.tex")
    figs = make_figures(sweep, paper / "figures")
    names = {p.stem for p in figs}
    assert {"theory_angle", "theory_boundaries", "frac_pos", "effect_by_regime"} <= names
    assert all(p.stat().st_size > 0 for p in figs)
    make_tables(sweep, paper)
    subprocess.run(["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "main.tex"], cwd=paper,
                   check=True, capture_output=True)
    assert (paper / "main.pdf").stat().st_size > 10_000
    log = (paper / "main.log").read_text(errors="replace")
    assert "Undefined control sequence" not in log and "n/a" not in (paper / "main.tex").read_text().split(
        "\\begin{document}")[1]


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
    h = df[(df.experiment == "cnn_tiny") & (df.weight == 4.0) & (df.seed == 1)].config_hash.iloc[0]
    (runs / h / "done").unlink()
    with pytest.raises(IncompleteSweepError, match=f"unfinished.*{h}"):
        make_tables(runs, tmp_path / "out")
    shutil.rmtree(runs / h)
    with pytest.raises(IncompleteSweepError, match=r"seeds differ from the w = 1 runs for weights \{4.0: \[1\]\}"):
        make_tables(runs, tmp_path / "out")
