"""`iwtheory figures` and `iwtheory tables`: everything the paper shows, from run records only."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from iwtheory.compare.effects import IncompleteSweepError, early_late, weight_effect
from iwtheory.report import figures as F
from iwtheory.report import tables as T
from iwtheory.report.macros import macro_name, write_macros
from iwtheory.runs.records import load, load_summaries

THEORY = ("theory_boundaries", "theory_angle", "theory_deep", "theory_poly")


def _records(runs_root) -> pd.DataFrame:
    df = load(runs_root, finished_only=False)
    if df.empty:
        raise FileNotFoundError(f"no run records under {runs_root}; run `iwtheory reproduce` first")
    check_unambiguous(df)
    unfinished = sorted(set(df.loc[~df["done"], "config_hash"]))
    if unfinished:
        exps = sorted(set(df.loc[~df["done"], "experiment"]))
        raise IncompleteSweepError(f"{len(unfinished)} run(s) of {exps} are unfinished ({unfinished[:5]}"
                                   f"{' ...' if len(unfinished) > 5 else ''}); rerun the same command to resume them")
    return df


# What names a run within its experiment; two runs with equal keys are two sweeps in one folder.
RUN_KEYS = ("experiment", "regime", "weight", "seed", "loss", "depth", "method", "lr", "weight_decay", "dropout")


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


def cnn_records(df: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The CNN records the paper shows: the CIFAR study if present, else the CPU Fashion-MNIST run."""
    if "epoch" not in df.columns:
        return pd.DataFrame(), ""
    cnn = df[df.epoch.notna()]
    cifar = cnn[cnn.experiment.str.startswith("cnn_cifar")]
    chosen, label = (cifar, "CIFAR-10") if not cifar.empty else (cnn, "Fashion-MNIST")
    if chosen.empty:
        return chosen, ""
    check_seeds(chosen)
    return chosen, label


def check_seeds(df: pd.DataFrame) -> None:
    """Every (regime, weight) must have the same seeds as the unweighted baseline, or Delta has holes."""
    for reg, g in df.groupby("regime"):
        seeds = g.groupby("weight").seed.apply(lambda s: frozenset(s.unique()))
        if 1.0 not in seeds.index:
            raise IncompleteSweepError(f"regime {reg!r} has no unweighted (w = 1) runs, "
                                       "so its weight effect is undefined")
        ref = seeds[1.0]
        bad = {float(w): sorted(int(x) for x in ref ^ s) for w, s in seeds.items() if s != ref}
        if bad:
            raise IncompleteSweepError(f"regime {reg!r}: seeds differ from the w = 1 runs for weights {bad}")


@dataclass
class Analysis:
    """Everything figures and tables read, computed once from the records."""

    df: pd.DataFrame
    cnn: pd.DataFrame               # the CNN records shown (empty without CNN runs)
    cnn_label: str
    summary: pd.DataFrame | None    # early-vs-late weight effect per regime and weight
    features: pd.DataFrame | None   # feature-space max-margin angles per run and recorded epoch


def analyse(runs_root) -> Analysis:
    """Read and check the records, and compute the CNN measurements the paper uses."""
    df = _records(runs_root)
    cnn, label = cnn_records(df)
    if cnn.empty:
        return Analysis(df, cnn, label, None, None)
    return Analysis(df, cnn, label, early_late(weight_effect(cnn)), feature_angles_of(cnn, runs_root))


def make_figures(runs_root="runs", out_dir="paper/figures", analysis: Analysis | None = None) -> list[Path]:
    """Every figure whose experiment has records under ``runs_root``."""
    a = analysis or analyse(runs_root)
    df = a.df
    paths = []
    exps = set(df.experiment)
    th = lambda name: df[df.experiment == name].dropna(axis=1, how="all")  # noqa: E731
    if "theory_boundaries" in exps:
        paths += F.boundaries_figure(th("theory_boundaries"), runs_root, out_dir)
    if "theory_angle" in exps:
        paths += F.angle_figure(th("theory_angle"), out_dir)
    if "theory_deep" in exps:
        paths += F.curves_figure(th("theory_deep"), out_dir, by="depth", name="theory_deep")
    if "theory_poly" in exps:
        paths += F.curves_figure(th("theory_poly"), out_dir, by="loss", name="theory_poly")
    if not a.cnn.empty:
        paths += F.frac_pos_figure(a.cnn, out_dir, name="frac_pos")
        paths += F.effect_figure(a.summary, out_dir, name="effect_by_regime")
        if not a.features.empty and a.features.separable.any():
            paths += F.feature_angle_figure(a.features, out_dir)
    return paths


def feature_angles_of(cnn: pd.DataFrame, runs_root) -> pd.DataFrame:
    """Feature-space max-margin angles of every CNN run that saved features."""
    from iwtheory.runs.records import feature_angles

    frames = [feature_angles(Path(runs_root) / h) for h in sorted(cnn.config_hash.unique())]
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def numbers(df: pd.DataFrame, summaries: pd.DataFrame, theory_df: pd.DataFrame | None,
            summary: pd.DataFrame | None, cnn_label: str, fa: pd.DataFrame | None = None) -> dict[str, object]:
    """The values the paper's text quotes, each computed here from the records."""
    vals: dict[str, object] = {}
    if theory_df is not None and not theory_df.empty:
        for _, r in theory_df.iterrows():
            key = ("Exp" if r.loss == "exponential" else "Log", float(r.weight))
            vals[macro_name("Kpred", *key)] = float(r.predicted)
            vals[macro_name("Kend", *key)] = float(r.at_end)
        vals["KmaxRelError"] = float(theory_df.rel_error.max())
        vals["AngleTmaxLog"] = float(np.log10(df[df.experiment == "theory_angle"].t.max()))
    s = summaries
    if not s.empty and "kkt_residual" in s:
        vals["KKTmax"] = float(s.kkt_residual.max())
    deep = s[(s.experiment == "theory_deep")] if not s.empty else s
    if not deep.empty:
        vals["DeepMaxFinalAngle"] = float(deep.final_angle.max())
        vals["DeepMaxDepth"] = int(deep.depth.max())
    poly = s[(s.experiment == "theory_poly")] if not s.empty else s
    if not poly.empty:
        vals["PolyMinFinalAngle"] = float(poly[poly.loss == "polynomial"].final_angle.min())
        vals["LogisticMaxFinalAngle"] = float(poly[poly.loss == "logistic"].final_angle.max())
    if fa is not None and not fa.empty:
        last_epoch = fa.epoch.max()
        first_epoch = fa.epoch[fa.epoch > 0].min()
        mean = fa.groupby(["weight", "epoch"]).angle.mean()  # over seeds (and regimes)
        vals["FeatSeparableShare"] = float(fa[fa.epoch == last_epoch].separable.mean())
        vals["FeatLastEpoch"] = int(last_epoch)
        vals["FeatFirstEpoch"] = int(first_epoch)
        if 1.0 in mean.index.get_level_values(0):
            vals["FeatAngleUnweightedFirst"] = float(mean[(1.0, first_epoch)])
            vals["FeatAngleUnweightedLast"] = float(mean[(1.0, last_epoch)])
        wmin, wmax = fa.weight.min(), fa.weight.max()
        vals["FeatAngleExtremeLast"] = float(max(mean[(wmin, last_epoch)], mean[(wmax, last_epoch)]))
    if summary is not None and not summary.empty:
        vals["CnnDataset"] = cnn_label
        top = summary[summary.weight == summary.weight.max()]
        for _, r in top.iterrows():
            vals[macro_name("Peak", r.regime)] = float(r.peak_effect)
            vals[macro_name("Late", r.regime)] = float(r.late_effect)
        vals["CnnMaxWeight"] = float(summary.weight.max())
        vals["CnnEpochs"] = int(df[df.epoch.notna()].epoch.max())
    return vals


def make_tables(runs_root="runs", out_dir="paper", analysis: Analysis | None = None) -> list[Path]:
    """paper/tables/*.tex and paper/generated/numbers.tex (+ .json) from the records."""
    a = analysis or analyse(runs_root)
    df = a.df
    out = Path(out_dir)
    paths = []
    summaries = load_summaries(runs_root)
    theory_df = None
    if "theory_angle" in set(df.experiment):
        sa = summaries[(summaries.experiment == "theory_angle") & summaries.angle_constant.notna()]
        tex, theory_df = T.theory_table(sa, df[df.experiment == "theory_angle"])
        paths.append(T.write(tex, out / "tables" / "theory.tex"))
    if a.summary is not None:
        paths.append(T.write(T.early_late_table(a.summary), out / "tables" / "early_late.tex"))
    paths.append(write_macros(numbers(df, summaries, theory_df, a.summary, a.cnn_label, a.features),
                              out / "generated" / "numbers.tex"))
    return paths
