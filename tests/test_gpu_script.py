"""experiments/gpu/run.sh --dry-run: every step of the GPU session on a CPU at a tiny size, then its output
imported into results/gpu/ and read by the report beside fresh CPU runs, labelled as recorded on a GPU."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from iwtheory import cli
from iwtheory.report.analysis import analyse, result_dirs
from iwtheory.report.build import make_figures, make_tables
from iwtheory.runs.gpu_import import import_results
from iwtheory.runs.records import RecordError, load
from iwtheory.runs.theory import TheoryConfig, run_theory

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu") / "OUT"
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "2"}
    r = subprocess.run(["bash", str(ROOT / "experiments" / "gpu" / "run.sh"), "--dry-run", str(out)], env=env,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return out


def test_the_dry_run_writes_what_a_gpu_session_brings_back(dry_run):
    files = sorted(p.name for p in dry_run.iterdir())
    assert files == ["README.md", "bench.json", "gpu-tests.txt", "nvidia-smi.txt", "records.tar.gz", "run.log",
                     "versions.json"]  # seven files: under the device's eight
    bench = json.loads((dry_run / "bench.json").read_text())
    assert bench["plain_loop"]["ms_per_step"] > 0 and {r["models"] for r in bench["engine"]} == {1, 2}
    assert all(r["ratio_vs_plain"] > 0 for r in bench["engine"])
    readme = (dry_run / "README.md").read_text()
    assert "dry run" in readme and "/tmp" not in readme and str(ROOT) not in readme
    assert "pytest exit code 0" in (dry_run / "gpu-tests.txt").read_text()


def test_imported_gpu_records_are_read_beside_cpu_runs(dry_run, tmp_path):
    target = import_results(dry_run, tmp_path / "results")
    assert target.name.endswith("-cpu-dry-run") and (target / "README.md").exists()
    df = load(target / "runs")
    assert set(df.regime) == {"none", "l2"} and set(df.weight_decay) == {0.0, 0.001}
    assert df.experiment.unique().tolist() == ["study_cifar"]
    local = tmp_path / "runs"
    run_theory(TheoryConfig(name="theory_angle", dataset="bl_toy", data={"n_per_class": 10}, weights=[1.0, 4.0],
                            losses=["exponential"], t_max=1e20, n_records=20), local, progress=False)
    found = result_dirs(tmp_path / "results")
    assert found == [(target / "runs", f"gpu:{target.name}")]
    a = analyse(local, found)
    assert "study_cifar@gpu:" + target.name in a.studies
    figs = {p.stem for p in make_figures(local, tmp_path / "figures", a)}
    assert "frac_pos_study_cifar_gpu" in figs
    make_tables(local, tmp_path / "paper", a)
    assert json.loads((tmp_path / "paper" / "generated" / "numbers.json").read_text())["GpuStudies"] == 1
    # from the command line: --gpu-results names where imports live; without it, only this checkout's results/gpu
    for flags, studies in ((["--gpu-results", str(tmp_path / "results")], 1), (["--no-gpu-results"], 0)):
        paper = tmp_path / f"paper{len(flags)}{studies}"
        assert cli.main(["tables", "--runs", str(local), "--out", str(paper), *flags]) == 0
        assert json.loads((paper / "generated" / "numbers.json").read_text())["GpuStudies"] == studies
    # a folder that is not there is a typo, not "no GPU records": one error line (it used to read nothing silently)
    assert cli.main(["tables", "--runs", str(local), "--out", str(tmp_path / "p"), "--gpu-results",
                     str(tmp_path / "nowhere")]) == 2
    with pytest.raises(RecordError, match="exists already"):
        import_results(dry_run, tmp_path / "results")
