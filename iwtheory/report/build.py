"""`iwtheory figures`, `iwtheory tables` and `iwtheory claims`: everything the paper shows, from run records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from iwtheory.catalogue import (ANGLE, BOUNDARIES, BY_NAME, CIFAR, CNN_ARMS, DEEP, INSIDE, LOSS_STUDY, POLY, STUDY,
                                THEORY_LOSSES, TOY)
from iwtheory.compare import claims as C
from iwtheory.report import figures as F
from iwtheory.report import tables as T
from iwtheory.report.analysis import Analysis, analyse, study
from iwtheory.compare.study_claims import weight_axis
from iwtheory.report.claims import baselines, other_experiments, safe_name, write_claims
from iwtheory.report.latex import escape
from iwtheory.report.macros import write_macros
from iwtheory.report.numbers import numbers

__all__ = ["analyse", "make_figures", "make_tables", "make_claims"]


def own_figures(s_, out_dir) -> list[Path]:
    """A network experiment the catalogue does not name (a researcher's own): F on every probe set against the
    epoch, per regime (two classes), or each class's share's Delta (K classes)."""
    if any(k in s_.df and s_.df[k].notna().any() for k in ("class_weight", "vector")):
        from iwtheory.report.study_figures import effect_figures

        shares = [c for c in s_.df.columns if c.startswith(("frac_class", "frac_pos_")) and s_.df[c].notna().any()]
        probes = sorted({c.split("_", 2)[2] for c in shares})
        return effect_figures(s_.df, probes, out_dir)
    probes = tuple(c for c in s_.df.columns if c.startswith("frac_pos_") and s_.df[c].notna().any())
    return F.frac_pos_figure(s_.df, out_dir, probes=probes, name=other_figure_name(s_)) if probes else []


def make_figures(runs_root="runs", out_dir="paper/figures", analysis: Analysis | None = None,
                 results=(), experiment: str | None = None, partial: bool = False) -> list[Path]:
    """Every figure whose experiment has records; with ``experiment``, that experiment's figures only (a
    researcher's own experiment: ``own_figures``)."""
    a = analysis or analyse(runs_root, results, partial)
    if experiment is not None and experiment not in BY_NAME:
        s_ = study(a, experiment)
        if s_ is None:
            raise ValueError(f"no records of an experiment named {experiment!r} here")
        return own_figures(s_, out_dir)
    paths = []
    if not (d := a.theory(BOUNDARIES)).empty:
        w_hat = np.asarray(a.theory_summaries(BOUNDARIES).w_hat.iloc[0])
        paths += F.boundaries_figure(d, a.datasets[BOUNDARIES], w_hat, out_dir)
    if not (d := a.theory(ANGLE)).empty:
        paths += F.angle_figure(d, out_dir)
        s = a.theory_summaries(ANGLE)
        s = s[s.angle_constant.notna() & (s.loss == "exponential") & s.determined.astype(bool)]
        if not s.empty and s.theta2.notna().all():
            paths += F.residual_figure(d, s, out_dir)
    if not (d := a.theory(THEORY_LOSSES)).empty:
        paths += F.losses_figure(d, out_dir)
    if not (d := a.theory(INSIDE)).empty:
        paths += F.inside_figure(d, a.inside_window, out_dir)
    if not (d := a.theory(DEEP)).empty:
        paths += F.curves_figure(d, out_dir, by="depth", name=DEEP)
    if not (d := a.theory(POLY)).empty:
        paths += F.curves_figure(d, out_dir, by="loss", name=POLY)
    st = study(a, STUDY)
    if st is not None:
        df = st.df
        if "none" in set(df.regime):
            paths += F.frac_pos_figure(df[df.regime == "none"], out_dir, name="frac_pos_none")
        paths += F.frac_pos_figure(df, out_dir, probes=("frac_pos_test",), name="frac_pos_regimes")
        paths += F.effect_figure(st.summary, out_dir, name="effect_by_regime")
        if not a.l2_points.empty:
            pts = a.l2_points
            pts = pts.assign(series=["all weights (oriented)" if np.isnan(w) else f"w = {F.weight_label(w)}"
                                     for w in pts.weight])
            paths += F.points_figure(pts, out_dir, "l2_strength", x="lambda", logx=True,
                                     xlabel=r"weight decay $\lambda$", ylabel=r"late $\Delta$ on $S_{\mathrm{in}}$",
                                     hline=0.0)
        if not a.early_stop_points.empty:
            paths += F.points_figure(a.early_stop_points, out_dir, "early_stopping", x="log2w",
                                     xlabel=r"$\log_2 w$", ylabel=r"$\Delta$ on $S_{\mathrm{in}}$", hline=0.0)
        fa = st.features
        if not fa.empty and "none" in set(fa.variant):
            fa_none = fa[fa.variant == "none"]
            if fa_none.separable.any():
                paths += F.feature_angle_figure(fa_none, out_dir)
    toy = study(a, TOY)
    if toy is not None:
        paths += F.frac_pos_figure(toy.df.assign(variant="2-D toy, MLP"), out_dir, probes=("frac_pos_test",),
                                   name=TOY, ncols=1, width="column")
    if (ls := study(a, LOSS_STUDY)) is not None:
        paths += F.frac_pos_figure(ls.df, out_dir, probes=("frac_pos_test",), name="frac_pos_losses", ncols=6)
    for s_ in a.studies.values():  # other studies (the CIFAR study, GPU records, a user's own): their main figure
        if s_.name in BY_NAME and s_.name not in (TOY, LOSS_STUDY) and s_ is not st:
            paths += F.frac_pos_figure(s_.df, out_dir, probes=("frac_pos_test",), name=other_figure_name(s_))
        elif s_.name not in BY_NAME:
            paths += own_figures(s_, out_dir)
    if experiment is not None:
        stems = set(BY_NAME[experiment].figures)
        paths = [p for p in paths if p.stem in stems]
    return paths


def other_figure_name(s_) -> str:
    """frac_pos_<experiment> for a local study (or committed CPU records), frac_pos_<experiment>_gpu for imported
    GPU records."""
    return F.file_stem(f"frac_pos_{s_.name}" + ("_gpu" if s_.source.startswith("gpu:") else ""))


def make_tables(runs_root="runs", out_dir="paper", analysis: Analysis | None = None, results=(),
                extra_numbers: dict | None = None, experiment: str | None = None, partial: bool = False) -> list[Path]:
    """paper/tables/*.tex and paper/generated/numbers.tex (+ .json) from the records; with ``experiment`` not in
    the catalogue, that experiment's separation table (tables/separation_<name>.tex) only."""
    a = analysis or analyse(runs_root, results, partial)
    out = Path(out_dir)
    if experiment is not None and experiment not in BY_NAME:
        s_ = study(a, experiment)
        if s_ is None:
            raise ValueError(f"no records of an experiment named {experiment!r} here")
        name = safe_name(experiment)
        df, _ = weight_axis(s_.df)
        return [T.write(T.separation_table(C.separation_summary(df), f"tab:separation-{name}",
                                           f" of {escape(experiment)}"), out / "tables" / f"separation_{name}.tex")]
    paths = []
    if not a.angle_constants.empty:
        paths.append(T.write(T.theory_table(a.angle_constants), out / "tables" / "theory.tex"))
    st = study(a, STUDY)
    if st is not None:
        paths.append(T.write(T.early_late_table(st.summary), out / "tables" / "early_late.tex"))
        paths.append(T.write(T.separation_table(C.separation_summary(st.df)), out / "tables" / "separation.tex"))
    paths.append(T.write(T.experiments_table(a.df), out / "tables" / "experiments.tex"))
    arms = [s_ for name in CNN_ARMS if (s_ := study(a, name)) is not None]
    if arms:  # the CNN arm's separation, both datasets in one table
        sep = pd.concat([C.separation_summary(s_.df).assign(variant=lambda d, n=s_.name: n + " " + d.variant)
                         for s_ in arms], ignore_index=True)
        paths.append(T.write(T.separation_table(sep, "tab:separation-cnn", " of the CNN arm"),
                             out / "tables" / "separation_cnn.tex"))
    for s_ in a.studies.values():  # the CIFAR study (GPU records): which claims its nets can decide
        if s_.name == CIFAR:
            sep = C.separation_summary(s_.df)
            paths.append(T.write(T.separation_table(sep, "tab:separation-cifar", " of the CIFAR-10 study"),
                                 out / "tables" / "separation_cifar.tex"))
            extra_numbers = {**(extra_numbers or {}),
                             "CifarDecidable": ", ".join(C.decidable(sep, baselines=baselines(s_))) or "none"}
    if not a.loss_theory.empty or not a.loss_networks.empty:
        paths.append(T.write(T.losses_table(a.loss_theory, a.loss_networks), out / "tables" / "losses.tex"))
    paths.append(write_macros({**numbers(a), **(extra_numbers or {})}, out / "generated" / "numbers.tex"))
    return paths


def make_claims(runs_root="runs", out_dir="paper", analysis: Analysis | None = None, results=(),
                experiment: str | None = None, partial: bool = False) -> list[Path]:
    """paper/generated/claims.json and paper/tables/claims.tex (the paper's claims), then the same files for each
    experiment of the folder the catalogue does not name; with ``experiment``, that experiment's only."""
    a = analysis or analyse(runs_root, results, partial)
    if experiment is not None:
        return write_claims(a, out_dir, experiment=experiment)
    paths = write_claims(a, out_dir)
    for name in other_experiments(a):
        paths += write_claims(a, out_dir, experiment=name)
    return paths
