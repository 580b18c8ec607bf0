"""`iwtheory reproduce`: every experiment the paper uses, then figures, tables, claims and the PDF.

On a CPU (the embedded default) it runs the theory experiments, the 2-D toy MLP and the Fashion-MNIST
study in full; with CIFAR-10 (``--data-dir``) and a CUDA device it also runs the CIFAR study. GPU
records committed under ``results/gpu/`` (or in the folders ``--gpu-results`` names) are read beside
the fresh runs and labelled as recorded on a GPU. Finished runs are skipped, unfinished ones resume.
Which experiments run, and when, is the catalogue's (``iwtheory.catalogue``); where they run is the launcher's.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy
import scipy

import iwtheory
from iwtheory import catalogue
from iwtheory.report.latex import escape
from iwtheory.report.layout import LayoutError, layout_faults

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
PAPER = ROOT / "paper"
GPU_RESULTS = ROOT / "results" / "gpu"  # committed GPU records; `--gpu-results DIR` reads others instead
CPU_RESULTS = ROOT / "results" / "cpu"  # committed CPU records too long for make reproduce (cnn/runs: make cnn)
THEORY_CONFIGS, INSIDE_CONFIGS = catalogue.stage("theory"), catalogue.stage("inside")
CPU_CONFIGS, GPU_CONFIGS = catalogue.stage("cpu"), catalogue.stage("gpu")


def choose_cnn(data_dir: str | None, device: str | None) -> tuple[tuple[str, ...], str]:
    """The CPU study always; the CIFAR study too when CIFAR-10 is readable and a GPU is in use."""
    from iwtheory.nets.readers import DataFileError, read_cifar10
    from iwtheory.runs.train import resolve_device

    dev = resolve_device(device or "auto")
    if not data_dir:
        return CPU_CONFIGS, "running the CPU study (pass --data-dir with CIFAR-10 on a GPU for the CIFAR study too)"
    try:
        read_cifar10(data_dir)
    except DataFileError:
        return CPU_CONFIGS, f"no CIFAR-10 under {data_dir}: running the CPU study only"
    if dev.startswith("cuda"):
        return CPU_CONFIGS + GPU_CONFIGS, f"CIFAR-10 found and {dev} in use: running the CIFAR study too"
    return CPU_CONFIGS, "CIFAR-10 found but no GPU in use: running the CPU study only"


def build_pdf(paper: Path) -> Path | None:
    """latexmk paper/main.tex; None (with a note) where LaTeX is not installed."""
    if shutil.which("latexmk") is None:
        print("latexmk not found: skipping the PDF (install TeX, see the README)")
        return None
    # no shell escape: text from records reaches the paper (escaped), and must never run a command
    subprocess.run(["latexmk", "-pdf", "-pdflatex=pdflatex -no-shell-escape %O %S", "-interaction=nonstopmode",
                    "-halt-on-error", "main.tex"], cwd=paper, check=True, stdout=subprocess.DEVNULL)
    faults = layout_faults((paper / "main.log").read_text(errors="replace"))
    if faults:
        raise LayoutError(f"{paper / 'main.pdf'} was built with {len(faults)} layout fault(s): "
                          + "; ".join(faults[:5]))
    return paper / "main.pdf"


def environment() -> dict[str, str]:
    """Machine and versions, for the paper's reproducibility appendix."""
    import torch  # here, not at the top: `iwtheory readme` and `timings` import this module without training

    return {"EnvMachine": escape(f"{platform.machine()}, {os.cpu_count()} CPUs"),
            "EnvPython": platform.python_version(), "EnvNumpy": numpy.__version__, "EnvScipy": scipy.__version__,
            "EnvTorch": escape(torch.__version__), "EnvIwtheory": escape(iwtheory.__version__)}


def reproduce(out: str | Path = "runs", quick: bool = False, data_dir: str | None = None,
              device: str | None = None, paper: Path = PAPER, experiments: Path = EXPERIMENTS,
              progress: bool = True, cnn: bool = True, pdf: bool = True, results=None,
              scheduler: str | None = None, started_at: float | None = None) -> dict:
    """Run the experiments, then write figures, tables, claims and numbers under ``paper`` and build the PDF
    (``results``: folders of imported GPU records, by default ``GPU_RESULTS``);
    write the wall times to ``paper/generated/reproduce.json``. ``started_at`` (a Unix time): when the command
    that called this began (`make reproduce` passes the start of its set-up), so the total includes it."""
    from iwtheory.report.analysis import analyse, result_dirs
    from iwtheory.report.build import make_claims, make_figures, make_tables
    from iwtheory.runs.launch import launcher, load_experiment

    if not experiments.is_dir():
        raise FileNotFoundError(f"experiment configs not found at {experiments}; run from a source checkout")
    t0 = time.perf_counter()
    counts, timings, found = {}, {}, {}
    names = THEORY_CONFIGS + INSIDE_CONFIGS  # the long runs are one stack of small nets: always in this process
    if cnn:
        chosen, why = choose_cnn(data_dir, device)
        print(why)
        names += chosen
    with launcher(scheduler) as launch:
        for name in names:
            t = time.perf_counter()
            kind = catalogue.runner(name)
            cfg = load_experiment(experiments / f"{name}.toml", kind, quick=quick)
            found[name] = finished_runs(kind, cfg, out)
            counts[name] = launch.run(kind, cfg, out, data_dir=data_dir, device=device, progress=progress)
            timings[name] = time.perf_counter() - t
    t_runs = time.perf_counter() - t0
    gpu = result_dirs(*((GPU_RESULTS,) if results is None else results), CPU_RESULTS)
    for _, label in gpu:
        print(f"reading GPU records {label}")
    analysis = analyse(out, gpu)  # computed once for figures, tables and claims
    make_figures(out, paper / "figures", analysis)
    make_claims(out, paper, analysis)
    n_found, n_all = sum(found.values()), sum(counts.values())
    extra = {**environment(), "RunsMinutes": t_runs / 60, "Quick": "yes" if quick else "no",
             "ReportMinutes": (time.perf_counter() - t0 - t_runs) / 60,
             "RunsTrained": n_all - n_found, "RunsFound": n_found,
             "RunsFresh": "fresh" if n_found == 0 else "resumed",
             "CommandLine": escape(command_line())}
    make_tables(out, paper, analysis, extra_numbers=extra)
    t_report = time.perf_counter() - t0 - t_runs
    t_pdf = time.perf_counter()
    pdf_path = build_pdf(paper) if pdf else None
    t_pdf = time.perf_counter() - t_pdf if pdf_path else None
    write_timings(paper / "generated" / "reproduce.json", timings, t_report, t_pdf, time.perf_counter() - t0,
                  started_at, quick, {"trained": n_all - n_found, "found_finished": n_found})
    return {"runs": counts, "seconds": timings, "pdf": pdf_path, "found_finished": found}


INTERNAL_FLAGS = {"--started-at": 1}  # flags `make` passes that a reader of the paper never types (and their values)


def command_line(argv: list[str] | None = None) -> str:
    """The command as a reader would type it: `iwtheory` and its arguments, internal flags left out."""
    argv = sys.argv if argv is None else argv
    if not argv or "iwtheory" not in argv[0]:
        return "iwtheory reproduce"
    out, skip = [], 0
    for a in argv[1:]:
        if skip:
            skip -= 1
            continue
        flag = a.split("=", 1)[0]
        if flag in INTERNAL_FLAGS:
            skip = INTERNAL_FLAGS[flag] if "=" not in a else 0
            continue
        out.append(a)
    return " ".join(["iwtheory", *out])


def finished_runs(kind: str, cfg, out) -> int:
    """How many runs of a loaded experiment are finished under ``out`` already (before this command trains)."""
    from iwtheory.runs.records import Run

    cfgs = cfg if isinstance(cfg, list) else [cfg]
    try:
        return sum(Run(out, c).done for one in cfgs for c in one.cells())
    except OSError:
        return 0


def write_timings(path: Path, runs: dict, report: float, pdf: float | None, total: float, started_at: float | None,
                  quick: bool, counts: dict | None = None) -> Path:
    """The measured wall times of one reproduce (seconds) with the machine and versions they were measured on."""
    import torch

    make = time.time() - started_at if started_at else None
    data = {"runs_seconds": runs, "report_seconds": report, "pdf_seconds": pdf, "total_seconds": total,
            "runs": counts or {},
            "make_seconds": make, "setup_seconds": make - total if make is not None else None, "quick": quick,
            "machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))
    return path


def measure_quick(experiments: Path = EXPERIMENTS, results_dir: Path = ROOT / "results" / "cpu",
                  data_dir: str | None = None) -> Path:
    """`make timings`: run every config's quick variant into a scratch folder, timed, and write
    ``results_dir/timings.json`` (seconds, or why a config could not run here)."""
    import torch

    from iwtheory.report.readme import config_paths
    from iwtheory.runs.launch import Serial, load_experiment

    quick: dict[str, object] = {}
    for name, path in config_paths(experiments).items():
        with tempfile.TemporaryDirectory() as out:
            # the GPU folder's validation configs are network configs the paper's catalogue does not list
            kind = catalogue.runner(name) if name in catalogue.BY_NAME else "train"
            t = time.perf_counter()
            try:
                Serial().run(kind, load_experiment(path, kind, quick=True), out, data_dir=data_dir, progress=False)
            except (ValueError, OSError) as e:  # its data is not here (CIFAR-10 without --data-dir)
                # the reason by its class only: the message names this machine's folders
                quick[name] = f"not measured ({type(e).__name__}: its data was not found; pass --data-dir)"
                continue
            quick[name] = time.perf_counter() - t
        print(f"{name}: {quick[name] if isinstance(quick[name], str) else f'{quick[name]:.1f} s'}")
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / "timings.json"
    path.write_text(json.dumps({"quick": quick, "machine": platform.machine(), "cpus": os.cpu_count(),
                                "torch": torch.__version__}, indent=1))
    return path


CNN_RECORDS = CPU_RESULTS / "cnn"  # the CNN arm's committed records (runs/) and how they were made (run.json)


def records_size(runs: Path) -> dict:
    """The files and bytes of a records folder that are committed: not the locks that only guard a run in
    progress (``.gitignore`` leaves them out), no links followed."""
    runs = Path(runs)
    files = [f for f in runs.rglob("*") if f.is_file() and not f.is_symlink() and f.name != "lock"
             and not {"_locks", "_groups"} & set(f.relative_to(runs).parts)] if runs.is_dir() else []
    return {"records_bytes": sum(f.stat().st_size for f in files), "records_files": len(files)}


def run_cnn(data_dir: str | None = None, out: Path = CNN_RECORDS, quick: bool = False, progress: bool = True,
            download: bool = False) -> dict:
    """`make cnn`: the CNN arm (``catalogue.CNN_ARMS``) into ``out/runs``, finished runs skipped; the CIFAR-10 arm
    only where ``data_dir`` holds CIFAR-10 or ``download`` may fetch it (one line says how to get it otherwise).
    Writes ``out/run.json``: the command, machine, versions, the wall time of each arm, whether it trained or found
    its runs, and the records' size, so a clone that never reruns them knows where they came from."""
    import torch

    from iwtheory.nets.readers import DataFileError, read_cifar10
    from iwtheory.runs.files import read_regular
    from iwtheory.runs.launch import Serial, load_experiment

    out = Path(out)
    runs = out / "runs"
    try:  # an arm whose runs were all trained before keeps the record of the command that trained them
        before = json.loads(read_regular(out / "run.json", "snapshot", ValueError, missing=b"{}")).get("arms", {})
    except (ValueError, AttributeError, RecursionError):  # damaged, a link, too large: no record is kept
        before = {}
    record: dict = {"command": command_line() if sys.argv and "iwtheory" in sys.argv[0] else "iwtheory cnn",
                    "machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "torch": torch.__version__, "quick": quick, "arms": {}}
    for name in catalogue.CNN_ARMS:
        cfg = load_experiment(EXPERIMENTS / f"{name}.toml", catalogue.runner(name), quick=quick)
        if cfg[0].dataset == "cifar10" and not download:
            try:
                read_cifar10(data_dir or cfg[0].data_dir or "")
            except (DataFileError, OSError, ValueError):
                print(f"{name}: skipped, no CIFAR-10 under {data_dir or '(no --data-dir)'}; pass --data-dir with "
                      "an official layout (make cnn builds one from ../shared/data/make_cifar10.py where it exists)")
                record["arms"][name] = {"skipped": "no CIFAR-10"}
                continue
        found = finished_runs("train", cfg, runs)
        prior = before.get(name) if isinstance(before, dict) else None
        if found == sum(len(c.cells()) for c in cfg) and isinstance(prior, dict) and "seconds" in prior:
            record["arms"][name] = {**prior, "kept_from_an_earlier_command": True}
            print(f"{name}: its {found} runs are finished (trained by an earlier command, whose record is kept)")
            continue
        t, cpu = time.perf_counter(), time.process_time()
        # the folder names CIFAR-10's copy; Fashion-MNIST is read where it is installed
        n = Serial().run("train", cfg, runs, data_dir=data_dir if cfg[0].dataset == "cifar10" else None,
                         download=download or None, progress=progress)
        wall = time.perf_counter() - t
        # the share of the machine's cores this command's process used: well below 1 means other work shared them
        # (or torch ran fewer threads), so its wall time is an upper bound
        share = (time.process_time() - cpu) / (wall * (os.cpu_count() or 1)) if wall > 0 else None
        record["arms"][name] = {"seconds": wall, "runs": n, "found_finished": found, "cpu_share": share}
        print(f"{name}: {n} runs under {runs}")
    record.update(records_size(runs))
    out.mkdir(parents=True, exist_ok=True)
    (out / "run.json").write_text(json.dumps(record, indent=1) + "\n")
    return record

