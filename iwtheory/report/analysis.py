"""Everything figures, tables and claims read, computed once from the run records.

Records come from the run folder and from imported GPU results (``results/gpu/*/runs``), each
labelled with its ``source``. The checks that protect the paper live here: no two sweeps of one
experiment in a folder, no unfinished run, every finished run's metrics hold its schedule once
(``runs.records.load``), seeds paired across weights. Diverged runs never block: they are left
out of effects, fits and feature max margins, and listed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from iwtheory.compare.effects import IncompleteSweepError, early_late, weight_effect
from iwtheory.runs.records import RecordError, feature_angles, load, load_summaries, read_json, warn

STUDY = "study_fashion"     # the embedded default's study: the network claims come from it
TOY = "toy_mlp"             # claim C10
INSIDE = "inside_toy"  # the long runs of homogeneous nets (N1-N3)
# What names a run within its experiment; two runs with equal keys are two sweeps in one folder.
RUN_KEYS = ("experiment", "regime", "weight", "seed", "loss", "depth", "method", "lr", "weight_decay", "dropout",
            "duplicate", "source")


def check_unambiguous(df: pd.DataFrame) -> None:
    """Refuse records where one experiment holds two runs with the same sweep keys (say a quick and a
    full variant in one folder): mixing them would silently average different configurations."""
    keys = [k for k in RUN_KEYS if k in df.columns]
    runs = df[keys + ["config_hash"]].drop_duplicates()
    clash = runs[runs.duplicated(keys, keep=False)]
    if not clash.empty:
        exps = sorted(clash.experiment.unique())
        raise ValueError(f"experiment(s) {exps} have several runs with the same sweep keys "
                         f"({sorted(clash.config_hash)[:6]} ...): different variants share this folder; "
                         "keep one sweep per records folder (`--out`), e.g. runs/ and runs/quick/")


def check_seeds(df: pd.DataFrame, by: str = "variant") -> None:
    """Every (variant, weight) must have the same seeds as the unweighted baseline, or Delta has holes."""
    for reg, g in df.groupby(by):
        seeds = g.groupby("weight").seed.apply(lambda s: frozenset(s.unique()))
        if 1.0 not in seeds.index:
            raise IncompleteSweepError(f"{by} {reg!r} has no unweighted (w = 1) runs, "
                                       "so its weight effect is undefined")
        ref = seeds[1.0]
        bad = {float(w): sorted(int(x) for x in ref ^ s) for w, s in seeds.items() if s != ref}
        if bad:
            raise IncompleteSweepError(f"{by} {reg!r}: seeds differ from the w = 1 runs for weights {bad}")


def read_records(roots: list[tuple[Path, str]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(metrics, summaries) of every run under each (folder, source label), unfinished runs refused."""
    frames, sums = [], []
    for root, source in roots:
        try:
            df = load(root, finished_only=False)
            if source != "local" and not df.empty and not df["done"].all():
                raise RecordError("it holds unfinished runs")
        except (RecordError, OSError, ValueError) as e:
            if source == "local":
                raise
            warn(f"GPU records {root} are unreadable ({e}); left out")  # an import never blocks the CPU report
            continue
        if df.empty:
            continue
        unfinished = sorted(set(df.loc[~df["done"], "config_hash"]))
        if unfinished:
            exps = sorted(set(df.loc[~df["done"], "experiment"]))
            raise IncompleteSweepError(
                f"{len(unfinished)} run(s) of {exps} under {root} are unfinished ({unfinished[:5]}"
                f"{' ...' if len(unfinished) > 5 else ''}); rerun the same command to resume them")
        frames.append(df.assign(source=source, root=str(root)))
        s = load_summaries(root)
        sums.append(s.assign(source=source, root=str(root)))
    if not frames:
        raise FileNotFoundError(f"no run records under {', '.join(str(r) for r, _ in roots)}; "
                                "run `iwtheory reproduce` first")
    df = pd.concat(frames, ignore_index=True)
    check_unambiguous(df)
    return df, pd.concat(sums, ignore_index=True)


def variants(df: pd.DataFrame) -> pd.Series:
    """A label per row: the regime, with the weight decay or dropout rate where a regime sweeps several."""
    out = df.regime.astype(str).copy()
    for reg, g in df.groupby("regime"):
        for key in ("weight_decay", "dropout"):
            if key in g and g[key].nunique() > 1:
                out[g.index] = [f"{reg} {key.replace('weight_decay', 'wd')}={v:g}" for v in g[key]]
    return out


@dataclass
class CnnStudy:
    """One CNN experiment's records and what is computed from them."""

    name: str
    source: str
    df: pd.DataFrame                 # metrics of the runs that did not diverge, with a 'variant' column
    config: dict                     # one run's config.json (the experiment's shared settings)
    configs: dict                    # variant -> one run's config.json
    summary: pd.DataFrame            # early-vs-late weight effect per variant and weight
    features: pd.DataFrame           # feature-space max-margin angles (runs that saved features)
    sizes: dict                      # variant -> images in each split (train, val, test, other, noise)

    @property
    def label(self) -> str:
        return {"fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10", "bl_toy": "the 2-D toy"}.get(
            self.config.get("dataset"), str(self.config.get("dataset")))


@dataclass
class Analysis:
    """Everything figures, tables and claims read."""

    df: pd.DataFrame
    summaries: pd.DataFrame
    diverged: pd.DataFrame
    studies: dict[str, CnnStudy] = field(default_factory=dict)
    cache: dict = field(default_factory=dict)                  # results computed once (the claims)

    def theory(self, name: str) -> pd.DataFrame:
        return self.df[(self.df.experiment == name) & (self.df.source == "local")].dropna(axis=1, how="all")

    def theory_summaries(self, name: str) -> pd.DataFrame:
        s = self.summaries
        return s[(s.experiment == name) & (s.source == "local")] if not s.empty else s


def _diverged(summaries: pd.DataFrame) -> pd.DataFrame:
    if summaries.empty or "diverged_epoch" not in summaries:
        return pd.DataFrame(columns=["experiment", "regime", "weight", "seed", "epoch", "config_hash", "source"])
    d = summaries[summaries.diverged_epoch.notna()]
    return d.assign(epoch=d.diverged_epoch.astype(int))[["experiment", "regime", "weight", "seed", "epoch",
                                                         "config_hash", "source"]].reset_index(drop=True)


def _study(name: str, source: str, cnn: pd.DataFrame, diverged: pd.DataFrame, summaries: pd.DataFrame) -> CnnStudy:
    g = cnn[(cnn.experiment == name) & (cnn.source == source)].copy()
    g["variant"] = variants(g)
    check_seeds(g)
    bad = set(diverged[(diverged.experiment == name) & (diverged.source == source)].config_hash)
    ok = g[~g.config_hash.isin(bad)].dropna(axis=1, how="all")
    roots = dict(zip(ok.config_hash, ok.root))
    run_configs = {h: read_json(Path(roots[h]) / h / "config.json") for h in ok.config_hash.unique()}  # read once
    configs = {v: run_configs[h] for v, h in ok.groupby("variant").config_hash.first().items()}
    sources = {c.get("source_fingerprint") for c in run_configs.values()} - {None}
    if len(sources) > 1:
        raise RecordError(f"the records of {name} ({source}) were drawn from {len(sources)} different datasets "
                          f"(fingerprints {', '.join(sorted(sources))}): a report must not combine them; keep one "
                          "dataset per records folder")
    config = run_configs[ok.config_hash.iloc[0]]
    summary = early_late(weight_effect(ok, by=("variant",)), by=("variant",))
    fa = [feature_angles(Path(roots[h]) / h) for h in sorted(ok.config_hash.unique())]
    fa = [f for f in fa if not f.empty]
    features = pd.concat(fa, ignore_index=True) if fa else pd.DataFrame()
    if not features.empty:
        features = features.merge(ok[["config_hash", "variant"]].drop_duplicates(), on="config_hash")
    sizes = {}
    if "task_sizes" in summaries:
        by_hash = summaries.set_index("config_hash").task_sizes
        sizes = {v: by_hash.get(h) for v, h in ok.groupby("variant").config_hash.first().items()}
    return CnnStudy(name, source, ok, config, configs, summary, features, sizes)


def result_dirs(*parents: Path) -> list[tuple[Path, str]]:
    """GPU result folders (``<parent>/<date>-<gpu>/runs``) with their labels, in name order."""
    out = []
    for parent in parents:
        if parent.is_dir():
            for d in sorted(parent.iterdir()):
                if (d / "runs").is_dir():
                    out.append((d / "runs", f"gpu:{d.name}"))
    return out


def analyse(runs_root, results: list[tuple[Path, str]] = ()) -> Analysis:
    """Read and check the records of ``runs_root`` and of ``results``; compute what the paper uses."""
    if not Path(runs_root).is_dir():
        raise FileNotFoundError(f"no run records at {runs_root}; run `iwtheory reproduce` (or theory/train) first")
    roots = [(Path(runs_root), "local")] + [(Path(p), s) for p, s in results if Path(p).is_dir()]
    df, summaries = read_records(roots)
    diverged = _diverged(summaries)
    a = Analysis(df, summaries, diverged)
    if "epoch" in df.columns:
        cnn = df[df.epoch.notna()]
        for (name, source), _ in cnn.groupby(["experiment", "source"]):
            bad = set(diverged[(diverged.experiment == name) & (diverged.source == source)].config_hash)
            if set(cnn[(cnn.experiment == name) & (cnn.source == source)].config_hash) <= bad:
                warn(f"every run of {name} ({source}) diverged: no figure, table or claim reads it")
                continue
            try:
                a.studies[f"{name}@{source}"] = _study(name, source, cnn, diverged, summaries)
            except (KeyError, json.JSONDecodeError) as e:
                raise RecordError(f"the records of {name} ({source}) are incomplete: {e}") from None
    return a


def study(a: Analysis, name: str) -> CnnStudy | None:
    """The locally run study of that name, else one imported from a GPU result, else None."""
    hits = [s for s in a.studies.values() if s.name == name]
    hits.sort(key=lambda s: s.source != "local")
    return hits[0] if hits else None

