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
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from iwtheory.catalogue import ANGLE, BOUNDARIES, FEATURE_LIMITS, INSIDE, LOSS_STUDY, STUDY, THEORY_LOSSES
from iwtheory.compare import claims as C
from iwtheory.compare import regimes
from iwtheory.compare.effects import IncompleteSweepError, angle_constants, early_late, weight_effect
from iwtheory.compare.inside import inside_summary, study_direction_numbers
from iwtheory.compare.loss_study import network_rows, theory_rows
from iwtheory.compare.directions import feature_angle_rows, final_feature_limit
from iwtheory.compare.study_claims import weight_axis
from iwtheory.runs.records import (OPTIONAL_IDENTITY, RUN_KEYS, RecordError, feature_files, load, load_summaries,
                                   planned_runs, read_features, read_json, warn)
from iwtheory.theory.checks import class_weights
from iwtheory.theory.data import Dataset, make_dataset
from iwtheory.theory.losses import logistic_smoothness

# What names a run within its experiment (every kind's identity), and where its records came from; two runs
# with equal keys are two sweeps in one folder.
SWEEP_KEYS = RUN_KEYS + OPTIONAL_IDENTITY + ("source",)


def check_unambiguous(df: pd.DataFrame) -> None:
    """Refuse records where one experiment holds two runs with the same sweep keys (say a quick and a
    full variant in one folder): mixing them would silently average different configurations."""
    keys = [k for k in SWEEP_KEYS if k in df.columns]
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
        # every sweep axis a regime holds several values of names its variants (one label per setting), so no
        # table or figure pivots two settings into one cell (two learning rates gave pandas' "non-unique multi-index")
        keys = [k for k in ("weight_decay", "dropout", "lr") if k in g and g[k].nunique() > 1]
        if keys:
            short = {"weight_decay": "wd", "dropout": "dropout", "lr": "lr"}
            out[g.index] = [" ".join([reg] + [f"{short[k]}={row[k]:g}" for k in keys]) for _, row in g[keys].iterrows()]
    return out


# The order regimes are shown in (panels, table rows, legends): the baseline, its controls, then each regularised
# arm after the baseline it is compared with; others after these, by name; a regime's settings by value
REGIME_ORDER = ("none", "one_draw", "l2", "none_decay", "dropout", "batchnorm", "subsample", "noise")


def variant_key(variant: str) -> tuple:
    """Sort key of a variant label ("l2 wd=0.001"): its regime's place in REGIME_ORDER, then its settings' values."""
    regime, *settings = str(variant).split()
    base = regime.rsplit("_", 1)[0] if regime not in REGIME_ORDER and "_" in regime else regime
    rank = REGIME_ORDER.index(base) if base in REGIME_ORDER else len(REGIME_ORDER)
    values = []
    for s_ in settings:
        try:
            values.append(float(s_.split("=", 1)[1]))
        except (IndexError, ValueError):
            values.append(float("inf"))
    return (rank, regime != base, regime, tuple(values))


def in_regime_order(df: pd.DataFrame, by: str = "variant") -> pd.DataFrame:
    """``df`` with its rows grouped by ``by`` in ``variant_key`` order (rows within a group keep their order)."""
    order = {v: k for k, v in enumerate(sorted(df[by].unique(), key=variant_key))}
    return df.iloc[np.argsort(df[by].map(order).to_numpy(), kind="stable")]


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
    limits: pd.DataFrame             # per run: the last layer's angle to its loss's limit for its own features
    quick: bool = False              # some runs are of a config's [quick] variant (smoke runs)
    draws: dict = field(default_factory=dict)      # variant -> how many draws of the data its seeds trained on
    distances: dict = field(default_factory=dict)  # variant -> median over runs of each probe set's distance to
                                                   # the training data (``runs.fit.probe_distances``)

    @property
    def label(self) -> str:
        return {"fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10", "bl_toy": "the 2-D toy"}.get(
            self.config.get("dataset"), str(self.config.get("dataset")))


@dataclass
class Analysis:
    """Everything figures, tables and claims read: the records, and each statistic computed once (on first use,
    by the pure functions of ``compare``). Nothing after ``analyse`` reads a run file."""

    df: pd.DataFrame
    summaries: pd.DataFrame
    diverged: pd.DataFrame
    studies: dict[str, CnnStudy] = field(default_factory=dict)
    datasets: dict[str, Dataset] = field(default_factory=dict)  # theory experiment -> the data its runs drew
    cache: dict = field(default_factory=dict)                  # results computed once (the claims)

    def theory(self, name: str) -> pd.DataFrame:
        return self.df[(self.df.experiment == name) & (self.df.source == "local")].dropna(axis=1, how="all")

    def theory_summaries(self, name: str) -> pd.DataFrame:
        s = self.summaries
        return s[(s.experiment == name) & (s.source == "local")] if not s.empty else s

    @cached_property
    def angle_constants(self) -> pd.DataFrame:
        """Predicted and fitted angle constants of the angle experiment (claim C9 and the theory table)."""
        s = self.theory_summaries(ANGLE)
        if s.empty or "angle_constant" not in s:
            return pd.DataFrame()
        return angle_constants(self.theory(ANGLE), s[s.angle_constant.notna()])

    @cached_property
    def boundary_smoothness(self) -> dict[float, float]:
        """Per weight of the boundaries experiment: the smoothness beta of its weighted logistic loss."""
        b = self.theory(BOUNDARIES)
        ds = self.datasets.get(BOUNDARIES)
        return {} if b.empty or ds is None else {
            float(w): logistic_smoothness(ds.z, class_weights(ds.y, w)) for w in sorted(b.weight.unique())}

    @cached_property
    def loss_theory(self) -> pd.DataFrame:
        """Per loss: its limit and how the theory sweep approaches it."""
        s = self.theory_summaries(THEORY_LOSSES)
        return pd.DataFrame() if s.empty else theory_rows(s, self.theory(THEORY_LOSSES))

    @cached_property
    def loss_networks(self) -> pd.DataFrame:
        """Per regime of the loss study: late effect, balanced accuracy, feature angle to the loss's limit."""
        st = study(self, LOSS_STUDY)
        return pd.DataFrame() if st is None else network_rows(st.df, st.limits)

    @cached_property
    def inside_window(self) -> np.ndarray:
        """The long runs' approach window (flow times), empty without long runs."""
        d = self.theory(INSIDE)
        return np.asarray(C.inside_window(d)[0]) if not d.empty else np.array([])

    @cached_property
    def inside_numbers(self) -> dict:
        """What the paper quotes of the long runs, and of the study's parameter directions."""
        out = inside_summary(d, self.theory_summaries(INSIDE)) if not (d := self.theory(INSIDE)).empty else {}
        st = study(self, STUDY)
        if st is not None:
            out.update(study_direction_numbers(st.df))
        return out

    @cached_property
    def l2_points(self) -> pd.DataFrame:
        """Late effect against the weight decay (the study's none and l2 regimes)."""
        st = study(self, STUDY)
        ok = st is not None and {"none", "l2"} <= set(st.df.regime)
        return regimes.l2_points(st.df) if ok else pd.DataFrame()

    @cached_property
    def early_stop_points(self) -> pd.DataFrame:
        """Delta at early stopping beside the late window's (the study's unregularised nets)."""
        st = study(self, STUDY)
        none = C.variant(st.df, "none") if st is not None else pd.DataFrame()
        ok = not none.empty and "val_loss_weighted" in none and none.val_loss_weighted.notna().any()
        return regimes.early_stop_points(none) if ok else pd.DataFrame()


def _diverged(summaries: pd.DataFrame) -> pd.DataFrame:
    if summaries.empty or "diverged_epoch" not in summaries:
        return pd.DataFrame(columns=["experiment", "regime", "weight", "seed", "epoch", "config_hash", "source"])
    d = summaries[summaries.diverged_epoch.notna()]
    return d.assign(epoch=d.diverged_epoch.astype(int))[["experiment", "regime", "weight", "seed", "epoch",
                                                         "config_hash", "source"]].reset_index(drop=True)


def _study(name: str, source: str, cnn: pd.DataFrame, diverged: pd.DataFrame, summaries: pd.DataFrame) -> CnnStudy:
    g = cnn[(cnn.experiment == name) & (cnn.source == source)].copy()
    g["variant"] = variants(g)
    g = in_regime_order(g)
    g, _ = weight_axis(g)  # powers p of per-example weights on the weight axis as w = e^p
    # class-weight vectors and explicit weight vectors have a uniform vector for partner, not w = 1
    # (compare.study_claims.weighting_column): no w = 1 seeds to check, no early/late weight effect
    by_vector = any(k in g and g[k].notna().any() for k in ("class_weight", "vector"))
    if not by_vector:
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
    summary = pd.DataFrame() if by_vector else early_late(weight_effect(ok, by=("variant",)), by=("variant",))
    fa, limits = [], []
    for h in sorted(ok.config_hash.unique()):  # every features file read once, here
        saved = [read_features(f) for f in feature_files(Path(roots[h]) / h)]
        fa.append(feature_angle_rows(run_configs[h], h, saved))
        if saved and name in FEATURE_LIMITS:
            run_summary = read_json(Path(roots[h]) / h / "summary.json")
            limits.append(final_feature_limit(run_configs[h], run_summary, h, saved[-1]))
    fa = [f for f in fa if not f.empty]
    features = pd.concat(fa, ignore_index=True) if fa else pd.DataFrame()
    if not features.empty:
        features = features.merge(ok[["config_hash", "variant"]].drop_duplicates(), on="config_hash")
    sizes = {}
    if "task_sizes" in summaries:
        by_hash = summaries.set_index("config_hash").task_sizes
        sizes = {v: by_hash.get(h) for v, h in ok.groupby("variant").config_hash.first().items()}
    quick = bool("quick" in ok and ok.quick.eq(True).any())
    variant_of = ok.groupby("config_hash").variant.first()
    draws = {v: len({run_configs[h].get("subsample_seed", 0) for h in hs.index})
             for v, hs in variant_of.groupby(variant_of)}
    distances = {}
    if "probe_distances" in summaries:
        d = summaries[summaries.config_hash.isin(variant_of.index)].set_index("config_hash").probe_distances.dropna()
        for v, hs in variant_of.groupby(variant_of):
            rows = [x for x in d.reindex(hs.index).dropna() if isinstance(x, dict)]
            keys = sorted({k for r in rows for k in r})
            distances[v] = {k: float(np.median([r[k] for r in rows if isinstance(r.get(k), (int, float))]))
                            for k in keys if any(isinstance(r.get(k), (int, float)) for r in rows)}
    return CnnStudy(name, source, ok, config, configs, summary, features, sizes, pd.DataFrame(limits), quick, draws,
                    distances)


MAX_POINTS = 10**5  # a theory dataset the report draws again: more points or dimensions is a damaged record


def rebuild_dataset(path: Path) -> Dataset:
    """The dataset a theory run drew, from its config.json (a file: its sizes are checked before anything is
    drawn); RecordError naming the file when it cannot be drawn again."""
    cfg = read_json(path)
    try:
        params = dict(cfg["data"])
        for k, v in params.items():
            if (k.startswith("n") or k == "d") and not (isinstance(v, int) and not isinstance(v, bool)
                                                        and 0 <= v <= MAX_POINTS):
                raise ValueError(f"{k} = {v!r} is not an integer in [0, {MAX_POINTS}]")
        return make_dataset(cfg["dataset"], **params)
    except (KeyError, TypeError, ValueError) as e:  # NotSeparableError is a ValueError
        raise RecordError(f"{path}: its dataset cannot be drawn again ({e})") from None


def result_dirs(*parents: Path) -> list[tuple[Path, str]]:
    """Committed result folders (``<parent>/<name>/runs``) with their labels, in name order: ``gpu:<name>`` for
    imported GPU records (any parent but results/cpu), ``cpu:<name>`` for the CPU records committed under
    results/cpu (the CNN arm)."""
    out = []
    for parent in parents:
        if parent.is_dir():
            kind = "cpu" if parent.name == "cpu" and parent.parent.name == "results" else "gpu"
            for d in sorted(parent.iterdir()):
                if (d / "runs").is_dir():
                    out.append((d / "runs", f"{kind}:{d.name}"))
    return out


def planned_gaps(roots: list[tuple[Path, str]], df: pd.DataFrame) -> list[str]:
    """The runs the sweeps behind the records planned (each run folder's ``sweep.json``: every run of its config's
    regime) that are missing from the records, in words per experiment and regime."""
    out = []
    for root, source in roots:
        planned = planned_runs(root)
        have = set(df[df.source == source].config_hash) if "source" in df else set(df.config_hash)
        for (exp, regime), hashes in sorted(planned.items()):
            missing = sorted(hashes - have)
            if missing:
                out.append(f"{exp} [{regime}] misses {len(missing)} of its {len(hashes)} planned runs (first "
                           f"{missing[:3]})")
    return out


def analyse(runs_root, results: list[tuple[Path, str]] = (), partial: bool = False) -> Analysis:
    """Read and check the records of ``runs_root`` and of ``results``; compute what the paper uses. A sweep
    missing runs its config plans is refused, naming them (``partial``: reported with a warning instead)."""
    if not Path(runs_root).is_dir():
        raise FileNotFoundError(f"no run records at {runs_root}; run `iwtheory reproduce` (or theory/train) first")
    roots = [(Path(runs_root), "local")] + [(Path(p), s) for p, s in results if Path(p).is_dir()]
    df, summaries = read_records(roots)
    gaps = planned_gaps(roots[:1], df)
    if gaps:
        msg = f"the records under {runs_root} are a partial sweep: {'; '.join(gaps)}"
        if not partial:
            raise IncompleteSweepError(msg + "; rerun the same command to finish it, or pass --partial to report "
                                             "what is there")
        warn(msg + "; reported as it is (--partial)")
    diverged = _diverged(summaries)
    a = Analysis(df, summaries, diverged)
    for name in (BOUNDARIES,):  # the experiments whose figures and numbers draw their data points
        runs = df[(df.experiment == name) & (df.source == "local")]
        if not runs.empty:
            a.datasets[name] = rebuild_dataset(Path(runs.root.iloc[0]) / runs.config_hash.iloc[0] / "config.json")
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

