"""`iwtheory figures`, `iwtheory tables` and `iwtheory claims`: everything the paper shows, from run records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from iwtheory.compare import claims as C
from iwtheory.report import figures as F
from iwtheory.report import tables as T
from iwtheory.report.analysis import INSIDE, STUDY, TOY, Analysis, analyse, study
from iwtheory.report.claims import write_claims
from iwtheory.report.inside import inside_figure, inside_summary, study_direction_numbers
from iwtheory.report.losses import LOSS_STUDY, loss_numbers, losses_table, network_rows, theory_rows
from iwtheory.report.macros import write_macros
from iwtheory.report.numbers import numbers

__all__ = ["analyse", "make_figures", "make_tables", "make_claims", "l2_points", "early_stop_points"]


def l2_points(df: pd.DataFrame) -> pd.DataFrame:
    """Oriented late Delta (mean, SE over seeds) against the weight decay, lambda = 0 being the 'none' regime."""
    rows = []
    for lam, g in [(0.0, C.variant(df, "none"))] + [(float(v), g) for v, g in
                                                     C.variant(df, "l2").groupby("weight_decay")]:
        per = C.late_effect(g, "frac_pos_test")
        m, se, _ = C.mean_se(C.oriented(per).to_numpy())
        rows.append({"series": "all weights (oriented)", "lambda": lam, "mean": m, "se": se})
        for w in (per.columns.min(), per.columns.max()):
            m, se, _ = C.mean_se(per[w].to_numpy())
            rows.append({"series": f"w = {F.weight_label(w)}", "lambda": lam, "mean": m, "se": se})
    return pd.DataFrame(rows)


def early_stop_points(none: pd.DataFrame) -> pd.DataFrame:
    """Delta on S_in per weight: at each net's best validation epoch, and over the late window."""
    per_es = C.early_stopped_deltas(C.early_stopped(none))
    per_late = C.late_effect(none, "frac_pos_test")
    rows = []
    for label, per in (("early stopped", per_es), ("last tenth", per_late)):
        for w in per.columns:
            m, se, _ = C.mean_se(per[w].to_numpy())
            rows.append({"series": label, "log2w": float(np.log2(w)), "mean": m, "se": se})
    return pd.DataFrame(rows)


def make_figures(runs_root="runs", out_dir="paper/figures", analysis: Analysis | None = None,
                 results=()) -> list[Path]:
    """Every figure whose experiment has records."""
    a = analysis or analyse(runs_root, results)
    paths = []
    if not (d := a.theory("theory_boundaries")).empty:
        paths += F.boundaries_figure(d, Path(d.root.iloc[0]), out_dir)
    if not (d := a.theory("theory_angle")).empty:
        paths += F.angle_figure(d, out_dir)
        s = a.theory_summaries("theory_angle")
        s = s[s.angle_constant.notna() & (s.loss == "exponential") & s.determined.astype(bool)]
        if not s.empty and s.theta2.notna().all():
            paths += F.residual_figure(d, s, out_dir)
    if not (d := a.theory("theory_losses")).empty:
        paths += F.losses_figure(d, out_dir)
    if not (d := a.theory(INSIDE)).empty:
        paths += inside_figure(d, out_dir)
    if not (d := a.theory("theory_deep")).empty:
        paths += F.curves_figure(d, out_dir, by="depth", name="theory_deep")
    if not (d := a.theory("theory_poly")).empty:
        paths += F.curves_figure(d, out_dir, by="loss", name="theory_poly")
    st = study(a, STUDY)
    if st is not None:
        df = st.df
        if "none" in set(df.regime):
            paths += F.frac_pos_figure(df[df.regime == "none"], out_dir, name="frac_pos_none")
        paths += F.frac_pos_figure(df, out_dir, probes=("frac_pos_test",), name="frac_pos_regimes")
        paths += F.effect_figure(st.summary, out_dir, name="effect_by_regime")
        if {"none", "l2"} <= set(df.regime):
            paths += F.points_figure(l2_points(df), out_dir, "l2_strength", x="lambda", logx=True,
                                     xlabel=r"weight decay $\lambda$", ylabel=r"late $\Delta$ on $S_{\mathrm{in}}$",
                                     hline=0.0)
        none = C.variant(df, "none")
        if not none.empty and "val_loss_weighted" in none and none.val_loss_weighted.notna().any():
            paths += F.points_figure(early_stop_points(none), out_dir, "early_stopping", x="log2w",
                                     xlabel=r"$\log_2 w$", ylabel=r"$\Delta$ on $S_{\mathrm{in}}$", hline=0.0)
        fa = st.features
        if not fa.empty and "none" in set(fa.variant):
            fa_none = fa[fa.variant == "none"]
            if fa_none.separable.any():
                paths += F.feature_angle_figure(fa_none, out_dir)
    toy = study(a, TOY)
    if toy is not None:
        paths += F.frac_pos_figure(toy.df.assign(variant="2-D toy, MLP"), out_dir, probes=("frac_pos_test",),
                                   name="toy_mlp", ncols=1, width="column")
    if (ls := study(a, LOSS_STUDY)) is not None:
        paths += F.frac_pos_figure(ls.df, out_dir, probes=("frac_pos_test",), name="frac_pos_losses", ncols=6)
    for s_ in a.studies.values():  # other studies (the CIFAR study, GPU records): their main figure
        if s_.name not in (TOY, LOSS_STUDY) and s_ is not st:
            paths += F.frac_pos_figure(s_.df, out_dir, probes=("frac_pos_test",), name=other_figure_name(s_))
    return paths


def other_figure_name(s_) -> str:
    """frac_pos_<experiment> for a local study, frac_pos_<experiment>_gpu for imported GPU records."""
    return F.file_stem(f"frac_pos_{s_.name}" + ("" if s_.source == "local" else "_gpu"))


def make_tables(runs_root="runs", out_dir="paper", analysis: Analysis | None = None, results=(),
                extra_numbers: dict | None = None) -> list[Path]:
    """paper/tables/*.tex and paper/generated/numbers.tex (+ .json) from the records."""
    a = analysis or analyse(runs_root, results)
    out = Path(out_dir)
    paths = []
    theory_df = None
    if not a.theory("theory_angle").empty:
        sa = a.theory_summaries("theory_angle")
        tex, theory_df = T.theory_table(sa[sa.angle_constant.notna()], a.theory("theory_angle"))
        paths.append(T.write(tex, out / "tables" / "theory.tex"))
    st = study(a, STUDY)
    if st is not None:
        paths.append(T.write(T.early_late_table(st.summary), out / "tables" / "early_late.tex"))
        paths.append(T.write(T.separation_table(C.separation_summary(st.df)), out / "tables" / "separation.tex"))
    paths.append(T.write(T.experiments_table(a.df), out / "tables" / "experiments.tex"))
    for s_ in a.studies.values():  # the CIFAR study (GPU records): which claims its nets can decide
        if s_.name == "study_cifar":
            sep = C.separation_summary(s_.df)
            paths.append(T.write(T.separation_table(sep, "tab:separation-cifar", " of the CIFAR-10 study"),
                                 out / "tables" / "separation_cifar.tex"))
            extra_numbers = {**(extra_numbers or {}),
                             "CifarDecidable": ", ".join(C.decidable(sep)) or "none"}
    th, net = theory_rows(a), network_rows(a)
    if not th.empty or not net.empty:
        paths.append(T.write(losses_table(th, net), out / "tables" / "losses.tex"))
    inside = inside_summary(d, a.theory_summaries(INSIDE)) if not (d := a.theory(INSIDE)).empty else {}
    if st is not None:
        inside.update(study_direction_numbers(st.df))
    paths.append(write_macros({**numbers(a, theory_df), **loss_numbers(th, net), **inside, **(extra_numbers or {})},
                              out / "generated" / "numbers.tex"))
    return paths


def make_claims(runs_root="runs", out_dir="paper", analysis: Analysis | None = None, results=()) -> list[Path]:
    """paper/generated/claims.json and paper/tables/claims.tex."""
    return write_claims(analysis or analyse(runs_root, results), out_dir)
