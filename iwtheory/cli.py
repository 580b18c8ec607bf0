"""The `iwtheory` command."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

PAPER = Path(__file__).resolve().parents[1] / "paper"


def _experiment(args, runner: str) -> int:
    """`iwtheory theory|inside|train CONFIG`: one experiment, in this process or on Dask (``--scheduler``)."""
    from iwtheory.runs.launch import launcher, load_experiment

    if runner == "train" and args.device:
        from iwtheory.runs.train import resolve_device

        resolve_device(args.device)  # before any data is read
    cfg = load_experiment(args.config, runner, quick=args.quick, overrides=args.set,
                          regimes=getattr(args, "regime", None) or None)
    with launcher(args.scheduler, wait=args.wait) as launch:
        n = launch.run(runner, cfg, args.out, data_dir=getattr(args, "data_dir", None),
                       device=getattr(args, "device", None), download=getattr(args, "download", False) or None,
                       progress=not args.no_progress)
    name = cfg[0].name + f" [{', '.join(c.regime for c in cfg)}]" if runner == "train" else cfg.name
    print(f"{name}: {n} runs under {args.out}")
    return 0


def _reproduce(args) -> int:
    from iwtheory.pipeline import reproduce

    out = args.out or ("runs/quick" if args.quick else "runs")
    res = reproduce(out, quick=args.quick, data_dir=args.data_dir, device=args.device,
                    progress=not args.no_progress, paper=Path(args.paper), scheduler=args.scheduler,
                    started_at=args.started_at, results=_gpu_folders(args))
    for name, n in res["runs"].items():
        print(f"{name}: {n} runs under {out}")
    if res["pdf"]:
        print(f"paper: {res['pdf']}")
    return 0


def _cnn(args) -> int:
    from iwtheory.pipeline import CNN_RECORDS, run_cnn

    rec = run_cnn(data_dir=args.data_dir, out=Path(args.out) if args.out else CNN_RECORDS, quick=args.quick,
                  progress=not args.no_progress, download=args.download)
    print(f"records: {rec['records_files']} files, {rec['records_bytes'] / 2**20:.1f} MiB")
    return 0


def _timings(args) -> int:
    from iwtheory.pipeline import EXPERIMENTS, measure_quick
    from iwtheory.report import readme

    readme.render(PAPER.parent / "results" / "cpu")  # every file the README is written from, read before minutes of
    # timing: a damaged one is named now, not after (it used to leave the README stale at the end)
    path = measure_quick(data_dir=args.data_dir)
    for p in readme.update_configs(EXPERIMENTS, path.parent):
        print(f"runtime line rewritten: {p}")
    readme.update(PAPER.parent / "README.md", path.parent)
    return 0


def _readme(args) -> int:
    from iwtheory.report import readme

    root = PAPER.parent
    cpu = root / "results" / "cpu"
    if args.snapshot:
        readme.snapshot(PAPER / "generated", cpu)
    if args.check:
        want = readme.render(cpu)
        have = readme.blocks_of((root / "README.md").read_text())
        stale = [k for k in want if have.get(k) != want[k]]
        if stale:
            raise ValueError(f"README.md blocks {stale} disagree with results/cpu/: run `iwtheory readme`")
        print("README.md agrees with results/cpu/")
        return 0
    readme.update_configs(root / "experiments", cpu)
    changed = readme.update(root / "README.md", cpu)
    print("README.md " + ("rewritten from results/cpu/" if changed else "already agrees with results/cpu/"))
    return 0


def _gpu_folders(args) -> list[Path]:
    """Where GPU records are read from: ``--gpu-results`` (repeatable), by default the repository's results/gpu;
    none with ``--no-gpu-results``."""
    from iwtheory.pipeline import GPU_RESULTS

    for d in args.gpu_results if not args.no_gpu_results else []:
        if not Path(d).is_dir():
            raise FileNotFoundError(f"--gpu-results {d}: no such folder (GPU records are imported with "
                                    "`iwtheory import-gpu`)")
    return [] if args.no_gpu_results else [Path(d) for d in args.gpu_results] or [GPU_RESULTS]


def _results(args):
    from iwtheory.pipeline import CPU_RESULTS
    from iwtheory.report.analysis import result_dirs

    return result_dirs(*_gpu_folders(args), CPU_RESULTS)  # and the committed CPU records of the CNN arm


def _figures(args) -> int:
    from iwtheory.report.build import make_figures

    for p in make_figures(args.runs, args.out, results=_results(args), experiment=args.experiment,
                          partial=args.partial):
        print(p)
    return 0


def _tables(args) -> int:
    from iwtheory.report.build import make_tables

    for p in make_tables(args.runs, args.out, results=_results(args), experiment=args.experiment,
                         partial=args.partial):
        print(p)
    return 0


def _claims(args) -> int:
    from iwtheory.report.build import make_claims

    paths = make_claims(args.runs, args.out, results=_results(args), experiment=args.experiment,
                        partial=args.partial)
    for j in (p for p in paths if p.suffix == ".json"):
        entries = json.loads(j.read_text())
        print(f"{j.stem}:" + (" (quick variant: a smoke run, not evidence)" if any(e.get("quick") for e in entries)
                              else ""))
        for e in entries:
            v = "---" if e["value"] is None else f"{e['value']:.3g}" + ("" if e["se"] is None else f" +- {e['se']:.2g}")
            why = f"  ({e['details']['missing']})" if e["verdict"] == "not applicable" else ""
            print(f"{e['id']:>4}  {e['verdict']:<14}  {v:<18}  {e['statement']}{why}")
    for p in paths:
        print(p)
    return 0


def _import_gpu(args) -> int:
    from iwtheory.runs.gpu_import import import_results

    print(import_results(args.src, args.dest))
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with its errors in the command's one-line form (the usage is one ``--help`` away)."""

    def error(self, message: str):
        print(f"iwtheory: error: {_one_line(message)} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def build_parser() -> argparse.ArgumentParser:
    """The `iwtheory` command line: one sub-command per job."""
    p = _Parser(prog="iwtheory", description=__doc__)
    p.add_argument("--debug", action="store_true",
                   help="show the traceback of an unexpected error (also: environment IWTHEORY_DEBUG=1)")
    sub = p.add_subparsers(dest="command", required=True)

    experiment = argparse.ArgumentParser(add_help=False)  # what `theory` and `train` share
    experiment.add_argument("config", help="experiment TOML file")
    experiment.add_argument("--quick", action="store_true", help="apply the config's [quick] overrides")
    experiment.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                            help="override a config field")
    experiment.add_argument("--out", default="runs", help="run records folder (default: runs)")
    experiment.add_argument("--no-progress", action="store_true", help="no progress bar")
    experiment.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                            help="wait this long for runs another process is writing (default: refuse at once)")
    experiment.add_argument("--scheduler", default=None, metavar="local[:N]|tcp://HOST:PORT",
                            help="run on Dask distributed: a local cluster of N processes, or an existing scheduler")

    t = sub.add_parser("theory", parents=[experiment], help="run a theory experiment (linear / deep linear models)")
    t.set_defaults(func=lambda a: _experiment(a, "theory"))

    ins = sub.add_parser("inside", parents=[experiment],
                         help="long runs of small homogeneous nets along gradient-flow time (the 2-D toy)")
    ins.set_defaults(func=lambda a: _experiment(a, "inside"))
    tr = sub.add_parser("train", parents=[experiment], help="train weighted CNNs (many models per device)")
    tr.add_argument("--data-dir", default=None, help="folder holding the dataset files")
    tr.add_argument("--download", action="store_true", help="fetch the official files (needs a network)")
    tr.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: the config's, else auto)")
    tr.add_argument("--regime", action="append", default=[], metavar="NAME",
                    help="run only this regime of a study (repeatable; default: all)")
    tr.set_defaults(func=lambda a: _experiment(a, "train"))

    r = sub.add_parser("reproduce", help="run every experiment the paper uses, skipping finished runs")
    r.add_argument("--quick", action="store_true", help="the seconds-long variants of every experiment")
    r.add_argument("--out", default=None, help="run records folder (default: runs, or runs/quick with --quick)")
    r.add_argument("--data-dir", default=None, help="CIFAR-10 folder (with a GPU: the full study)")
    r.add_argument("--device", default=None, help="cpu, cuda ... (default: auto)")
    r.add_argument("--paper", default=str(PAPER), help="paper folder to write figures, tables and the PDF into")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.add_argument("--scheduler", default=None, metavar="local[:N]|tcp://HOST:PORT",
                   help="run the experiments on Dask distributed (see `iwtheory train --help`)")
    r.add_argument("--started-at", type=float, default=None, metavar="UNIX_TIME",
                   help="when the calling command began (make passes the start of its set-up), for the timings")
    r.set_defaults(func=_reproduce)

    cn = sub.add_parser("cnn", help="the CNN arm (make cnn): the B&L CNN at CPU width on Fashion-MNIST and CIFAR-10, "
                                   "into results/cpu/cnn/runs (committed)")
    cn.add_argument("--data-dir", default=None, help="CIFAR-10 in an official layout (without it the CIFAR arm is "
                                                     "skipped)")
    cn.add_argument("--out", default=None, help="records folder (default: results/cpu/cnn)")
    cn.add_argument("--download", action="store_true", help="fetch CIFAR-10 where a network exists (MD5 checked)")
    cn.add_argument("--quick", action="store_true", help="the seconds-long variants")
    cn.add_argument("--no-progress", action="store_true", help="no progress bar")
    cn.set_defaults(func=_cnn)

    tm = sub.add_parser("timings", help="time every config's quick variant into results/cpu/timings.json, then "
                                      "rewrite the configs' runtime lines and the README")
    tm.add_argument("--data-dir", default=None, help="CIFAR-10 folder, for the CIFAR configs")
    tm.set_defaults(func=_timings)

    rd = sub.add_parser("readme", help="rewrite the README's results and timings from results/cpu/")
    rd.add_argument("--snapshot", action="store_true",
                    help="first copy paper/generated/{claims,reproduce}.json (of a finished make reproduce) "
                         "into results/cpu/")
    rd.add_argument("--check", action="store_true", help="change nothing; exit 2 if the README disagrees")
    rd.set_defaults(func=_readme)

    f = sub.add_parser("figures", help="write the paper's figures (pgf + pdf) from run records")
    f.add_argument("--runs", default="runs", help="run records folder")
    f.add_argument("--out", default=str(PAPER / "figures"), help="output folder")
    f.set_defaults(func=_figures)

    tb = sub.add_parser("tables", help="write the paper's LaTeX tables and number macros from run records")
    tb.add_argument("--runs", default="runs", help="run records folder")
    tb.add_argument("--out", default=str(PAPER), help="paper folder (tables/ and generated/ inside)")
    tb.set_defaults(func=_tables)

    c = sub.add_parser("claims", help="the verdict on each claim C1-C12: claims.json and a LaTeX table")
    c.add_argument("--runs", default="runs", help="run records folder")
    c.add_argument("--out", default=str(PAPER), help="paper folder (generated/claims.json, tables/claims.tex)")
    c.set_defaults(func=_claims)
    ig = sub.add_parser("import-gpu", help="unpack the output of experiments/gpu/run.sh into results/gpu/")
    ig.add_argument("src", help="the OUT folder run.sh wrote")
    ig.add_argument("--dest", default=str(PAPER.parent / "results" / "gpu"), help="default: results/gpu")
    ig.set_defaults(func=_import_gpu)
    for parser in (f, tb, c):
        parser.add_argument("--experiment", default=None, metavar="NAME",
                            help="one experiment's figures, tables or claims (any experiment in --runs, a study of "
                                 "your own included; default: every experiment in the folder)")
        parser.add_argument("--partial", action="store_true",
                            help="report a sweep that misses runs its config plans (with a warning) instead of "
                                 "refusing it")
    for parser in (f, tb, c, r):
        parser.add_argument("--no-gpu-results", action="store_true",
                            help="do not read GPU records beside --runs")
        parser.add_argument("--gpu-results", action="append", default=[], metavar="DIR",
                            help="read the GPU records imported under DIR (DIR/<date>-<gpu>/runs; repeatable; "
                                 "default: results/gpu in this checkout)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `iwtheory` console script; errors print one clear line, exit code 2."""
    from iwtheory.runs.launch import UnitsFailed
    from iwtheory.runs.locks import RunLockedError

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2), already printed
        return int(e.code or 0)
    try:
        return args.func(args)
    except (ValueError, KeyError, OSError, RunLockedError, UnitsFailed) as e:
        # named errors (ConfigError, DataError, DataFileError, RecordError, ...) are ValueErrors
        msg = str(e) if not isinstance(e, KeyError) else f"missing key {e}"
        if isinstance(e, OSError) and e.filename and str(e.filename) not in msg:
            msg = f"{e.filename}: {msg}"
        print(f"iwtheory: error: {_one_line(msg)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("iwtheory: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except Exception as e:  # the last resort: an error nobody named is still one line, the traceback on request
        if getattr(args, "debug", False) or os.environ.get("IWTHEORY_DEBUG"):
            raise
        print(f"iwtheory: error: unexpected {type(e).__name__}: {_one_line(str(e)) or '(no message)'} (rerun with "
              "--debug or IWTHEORY_DEBUG=1 for the traceback, and please report it)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
