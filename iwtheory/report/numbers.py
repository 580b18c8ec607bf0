"""The values the paper's text quotes, each computed from the records and the runs' own configs.

Names are macro names (letters only); ``write_macros`` turns them into ``\\newcommand``s with a JSON twin.
"""

from __future__ import annotations


import numpy as np
import pandas as pd

from iwtheory.compare import claims as C
from iwtheory.compare.effects import fit_power, residual_decay
from iwtheory.catalogue import ANGLE, BOUNDARIES, DEEP, INSIDE, POLY, STUDY, TOY
from iwtheory.nets.names import mlp_widths
from iwtheory.report.analysis import Analysis, study
from iwtheory.report.claims import ARCHITECTURES, arm_entries, evaluate
from iwtheory.report.latex import escape
from iwtheory.report.macros import macro_name
from iwtheory.report.style import weight_label
from iwtheory.runs.schedule import decay_epochs


def _tex_list(values, fmt=lambda v: f"{v:g}") -> str:
    return ", ".join(fmt(v) for v in values)


def _sci(v: float) -> str:
    """10^{-4}-style text for powers of ten, plain otherwise."""
    e = np.log10(v) if v > 0 else 0
    return f"10^{{{int(round(e))}}}" if v > 0 and abs(e - round(e)) < 1e-9 else f"{v:g}"


def theory_numbers(a: Analysis) -> dict:
    vals: dict[str, object] = {}
    if not a.angle_constants.empty:
        theory_df = a.angle_constants.sort_values(["loss", "weight"])
        for _, r in theory_df.iterrows():
            key = ("Exp" if r.loss == "exponential" else "Log", float(r.weight))
            vals[macro_name("Kpred", *key)] = float(r.predicted)
            vals[macro_name("Kend", *key)] = float(r.at_end)
        vals["KmaxRelError"] = float(theory_df.rel_error.max())
        vals["AngleTmaxLog"] = float(np.log10(a.theory(ANGLE).t.max()))
    s = a.summaries[a.summaries.source == "local"]
    if "kkt_residual" in s and s.kkt_residual.notna().any():
        vals["KKTmax"] = float(s.kkt_residual.max())
    deep = a.theory_summaries(DEEP)
    if not deep.empty:
        vals["DeepMaxFinalAngle"] = float(deep.final_angle.max())
        vals["DeepMaxDepth"] = int(deep.depth.max())
    poly = a.theory_summaries(POLY)
    if not poly.empty:
        vals["PolyMinFinalAngle"] = float(poly[poly.loss == "polynomial"].final_angle.min())
        vals["LogisticMaxFinalAngle"] = float(poly[poly.loss == "logistic"].final_angle.max())
    b = a.theory(BOUNDARIES)
    if not b.empty:
        betas = list(a.boundary_smoothness.values())
        vals["BetaMin"], vals["BetaMax"] = min(betas), max(betas)
        vals["OldStepBetaMin"], vals["OldStepBetaMax"] = 0.1 * min(betas), 0.1 * max(betas)
        vals["BoundaryTmaxLog"] = float(np.log10(b.t.max()))
    sa = a.theory_summaries(ANGLE)
    if not sa.empty and "theta2" in sa and sa.theta2.notna().any():
        r = sa[(sa.loss == "exponential") & sa.angle_constant.notna()]
        vals["ThetaTwo"] = float(r.theta2.iloc[0])
        vals["ResidualSlopePred"] = float(1.0 - r.theta2.iloc[0])
        recs = a.theory(ANGLE)
        slopes = []
        for _, row in r.iterrows():
            g = recs[recs.config_hash == row.config_hash].sort_values("t")
            t, res = residual_decay(g.t, np.array(g.w.tolist()), np.asarray(row.w_hat), np.asarray(row.offset))
            slopes.append(fit_power(t, res, t_min=1e3))
        slopes = [x for x in slopes if np.isfinite(x)]
        if slopes:
            vals["ResidualSlopeFitMin"], vals["ResidualSlopeFitMax"] = min(slopes), max(slopes)
        # time for the o(1) term to shrink tenfold: t grows by 10^(1 / (theta2 - 1))
        vals["ResidualDecadeLog"] = float(1.0 / (r.theta2.iloc[0] - 1.0))
    return vals


def study_numbers(a: Analysis) -> dict:
    vals: dict[str, object] = {}
    st = study(a, STUDY)
    if st is None:
        return vals
    cfg, df = st.config, st.df
    none = st.configs.get("none", cfg)
    sizes = st.sizes.get("none") or {}
    vals.update(StudyDataset=escape(st.label), StudyPos=escape(cfg["pos"]), StudyNeg=escape(cfg["neg"]),
                StudyEpochs=int(cfg["epochs"]),
                StudyLr=float(cfg["lr"]), StudyMomentum=float(cfg["momentum"]), StudyBatch=int(cfg["batch_size"]),
                StudyWeightNorm=escape(cfg.get("weight_norm", "none")), StudySeeds=int(df.seed.nunique()),
                StudyWeightCount=int(df.weight.nunique()), StudyWeightMin=weight_label(df.weight.min()),
                StudyWeightMax=weight_label(df.weight.max()), StudyPerClass=int(none.get("n_pos") or 0),
                StudyValFraction=float(none.get("val_fraction", 0.0)),
                StudyHidden=_tex_list(mlp_widths(none), fmt=str),
                StudyRegimes=int(df.regime.nunique()), StudyRuns=int(df.config_hash.nunique()),
                StudyTail=int(df[df.regime == "none"].epoch.nunique() if "none" in set(df.regime)
                              else df[df.regime == df.regime.iloc[0]].epoch.nunique()),
                StudyEvalDense=int(none.get("eval_dense", 0)),
                LateK=C.K_LATE, LatePoints=C.MIN_LATE_POINTS, EarlySteps=C.EARLY_STEPS, ToyEarlySteps=C.TOY_EARLY_STEPS,
                MinSeeds=C.MIN_SEEDS, EquivMargin=C.MARGIN)
    for k in ("train", "val", "test", "other", "noise"):
        if k in sizes:
            vals[macro_name("Study", k, "Images")] = int(sizes[k])
    if "l2" in set(df.regime):
        lams = sorted(df[df.regime == "l2"].weight_decay.unique())
        vals["StudyLambdas"] = _tex_list(lams, fmt=_sci)
        vals["StudyLambdaMax"] = _sci(max(lams))
    if "dropout" in set(df.regime):
        vals["StudyDropout"] = float(df[df.regime == "dropout"].dropout.max())
    base = {c.get("baseline") for c in st.configs.values() if c.get("baseline")}
    if len(base) == 1 and next(iter(base)) in st.configs:  # the matched arm of dropout and batch norm
        b = st.configs[next(iter(base))]
        vals.update(StudyMatchedName=escape(next(iter(base))), StudyMatchedHidden=_tex_list(mlp_widths(b), fmt=str),
                    StudyMatchedEpochs=int(b["epochs"]), StudyMatchedDecay=float(b.get("lr_decay", 0.0)),
                    StudyMatchedDecayFrom=int(b["epochs"]) - decay_epochs(int(b["epochs"]),
                                                                          float(b.get("lr_decay", 0.0))))
    draws = st.draws.get("none", 1)
    vals["StudyDraws"] = int(draws)
    if "one_draw" in st.draws:
        vals["StudyOneDrawDraws"] = int(st.draws["one_draw"])
    if "subsample" in st.configs:
        sub = st.configs["subsample"]
        vals["StudySubsampleKept"] = int(sub.get("n_pos") or 0)
        if sub.get("n_pos") and none.get("n_pos"):
            vals["StudySubsampleRatio"] = weight_label(sub["n_pos"] / none["n_pos"])
    if "noise" in st.configs:
        nz = st.configs["noise"]
        vals["StudyNoiseShare"] = float(nz.get("label_noise", 0.0))
        vals["StudyNoiseTrain"] = int((st.sizes.get("noise") or {}).get("train", 0))
    last = df[df.epoch == df.groupby("variant").epoch.transform("max")]  # each regime's own last epoch
    sep = last.groupby("variant").train_acc.apply(lambda x: float((x >= 1.0).mean()))
    for v, share in sep.items():
        vals[macro_name("SeparatedShare", v.split()[0], *(v.split("=")[1:] if "=" in v else []))] = share
    fa = st.features
    if not fa.empty:
        fn = fa[fa.variant == "none"]
        if not fn.empty:
            le = int(fn.epoch.max())
            at = fn[fn.epoch == le]
            vals["FeatLastEpoch"] = le
            vals["FeatSeparableShare"] = float(at.separable.mean())
            vals["FeatImages"] = int(sizes.get("train", 0))
            mean = at[at.separable].groupby("weight").angle.mean()
            if 1.0 in mean.index:
                vals["FeatAngleUnweightedLast"] = float(mean[1.0])
            if len(mean):
                ext = float(max(mean.get(mean.index.min(), np.nan), mean.get(mean.index.max(), np.nan)))
                vals["FeatAngleExtremeLast"] = ext
                if 1.0 in mean.index:  # the sentence that compares them, from the two numbers it compares
                    vals["FeatAngleComparison"] = ("closer to" if ext < mean[1.0] else "further from"
                                                   if ext > mean[1.0] else "as far from")
    a_late = st.summary
    top = a_late[a_late.weight == a_late.weight.max()]
    for _, r in top.iterrows():
        vals[macro_name("Peak", r.variant.split()[0])] = float(r.peak_effect)
    return vals


CLAIM_WORDS = {"C1": "One", "C2": "Two", "C2b": "Twob", "C3": "Three", "C4": "Four", "C5": "Five", "C6": "Six",
               "C7": "Seven", "C8": "Eight", "C9": "Nine", "C10": "Ten", "C11": "Eleven", "C12": "Twelve",
               "N1": "InsideOne", "N2": "InsideTwo", "N3": "InsideThree"}


def claim_numbers(a: Analysis, entries: list[dict] | None = None) -> dict:
    """ClaimOneVerdict, ClaimOneValue, ClaimOneSe and the numeric details of every claim; the multiplicity
    statement computed from the rules the verdicts rest on (``claims.multiplicity``)."""
    vals: dict[str, object] = {}
    entries = entries if entries is not None else evaluate(a)
    m = C.multiplicity(entries)
    vals.update(MultDecisive=m["decisive"], MultBounded=m["bounded"], MultBoundPercent=100 * m["bound"],
                MultPointClaims=", ".join(m["point_rule_claims"]) or "none",
                MultBoundedClaims=", ".join(m["bounded_claims"]) or "none", LateSpanSteps=C.LATE_SPAN_STEPS,
                KSe=C.K_SE, ZSe=C.Z_SE, TailK=100 * C.tail(C.K_SE), TailZ=100 * C.tail(C.Z_SE))
    if any(e.get("by_architecture") for e in entries):  # the sentence naming the claims the architectures split
        from iwtheory.report.claims import decided_by_arm, differing

        vals["ArchDiffer"] = escape("; ".join(differing(entries)) or "none")
        vals["ArchDecided"] = escape(decided_by_arm(entries))
    shares = [(e["id"], e["details"]["data_draw"]["between_draw_variance_share"]) for e in entries
              if (e.get("details") or {}).get("data_draw", {}).get("between_draw_variance_share") is not None]
    if shares:  # the sentence lists the claims the one-draw control could split, from their own numbers
        vals["DrawShareText"] = ", ".join(f"{cid} ${100 * v:.0f}$\\,\\%" for cid, v in shares)
    for e in entries:
        key = "Claim" + CLAIM_WORDS[e["id"]]
        vals[macro_name(key, "Verdict")] = e["verdict"]
        vals[macro_name(key, "Premise")] = "met" if e["premise"]["met"] else "not met"
        if isinstance(e["premise"].get("value"), (int, float)) and not isinstance(e["premise"]["value"], bool):
            vals[macro_name(key, "PremiseValue")] = float(e["premise"]["value"])
        if e["value"] is not None:
            vals[macro_name(key, "Value")] = float(e["value"])
        if e["se"] is not None:
            vals[macro_name(key, "Se")] = float(e["se"])
        for k, v in e["details"].items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                vals[macro_name(key, k.replace("_", " ").title().replace(" ", ""))] = float(v)
        if "correction_toward_balanced" in e["details"]:
            vals[macro_name(key, "CorrectionDirection")] = "toward" if e["details"]["correction_toward_balanced"] \
                else "away from"
        draw = e["details"].get("data_draw")
        if draw:
            for k in ("se_one_draw", "between_draw_variance_share", "value_one_draw"):
                if draw.get(k) is not None:
                    vals[macro_name(key, k.replace("_", " ").title().replace(" ", ""))] = float(draw[k])
        for rule, r in (e["details"].get("by_stopping_rule") or {}).items():
            short = "Loss" if "loss" in rule else "Acc"
            for k in ("difference", "se", "median_stop_epoch", "test_acc_at_stop", "early_stopped_effect"):
                vals[macro_name(key, short, k.replace("_", " ").title().replace(" ", ""))] = float(r[k])
            vals[macro_name(key, short, "Verdict")] = r["verdict"]
        for w, r in (e["details"].get("by_weight") or {}).items():
            if e["id"] == "N1":
                side = "Up" if float(w) > 1 else "Down"
                vals[macro_name(key, "Asymptote", side)] = float(r["asymptote"])
                vals[macro_name(key, "AsymptoteSe", side)] = float(r["se"])
    return vals


def other_numbers(a: Analysis) -> dict:
    vals: dict[str, object] = {}
    d = a.diverged
    vals["DivergedCount"] = int(len(d))
    vals["DivergedList"] = "none" if d.empty else "; ".join(
        f"{escape(r.experiment)} {escape(r.regime)}, $w = {weight_label(r.weight)}$, seed {int(r.seed)}, "
        f"epoch {int(r.epoch)}"
        for r in d.itertuples())
    inside = a.theory(INSIDE)
    if not inside.empty:
        vals["InsideWeights"] = _tex_list(sorted(inside.weight.unique()), fmt=weight_label)
    toy = study(a, TOY)
    if toy is not None:
        vals["ToyEpochs"] = int(toy.config["epochs"])
        vals["ToyHidden"] = _tex_list(toy.config.get("hidden") or [], fmt=str)
        vals["ToyWeights"] = _tex_list(sorted(toy.df.weight.unique()), fmt=weight_label)
    gpu = [s for s in a.studies.values() if s.source.startswith("gpu:")]
    vals["GpuStudies"] = len(gpu)
    return vals


def cnn_numbers(a: Analysis) -> dict:
    """The CNN arm's scale, from its runs' configs and sizes: width factor, channels, parameters per net (counted
    on a plain model of the task's input shape), epochs, learning-rate schedule, training images, seeds; and its
    premise in words, from the claims already evaluated (the entries the README reads too)."""
    from iwtheory.catalogue import CNN_ARMS
    from iwtheory.nets.models import blcnn_widths, make_plain

    vals: dict[str, object] = {}
    entries = evaluate(a)
    for name in CNN_ARMS:
        st = study(a, name)
        if st is None:
            continue
        cfg = st.configs.get("none", st.config)
        key = "CnnCifar" if cfg.get("dataset") == "cifar10" else "CnnFashion"
        shape = (3, 32, 32) if cfg.get("dataset") == "cifar10" else (1, 28, 28)
        width = float(cfg.get("width", 1.0))
        convs, fcs = blcnn_widths(width)
        net = make_plain("bl_cnn", shape, width=width)
        sizes = st.sizes.get("none") or {}
        vals.update({f"{key}Width": width, f"{key}Channels": "--".join(map(str, convs)),
                     f"{key}Fc": "--".join(map(str, fcs)),
                     f"{key}Params": int(sum(p.numel() for p in net.parameters())),
                     f"{key}Epochs": int(cfg["epochs"]), f"{key}Schedule": schedule_text(cfg),
                     f"{key}Train": int(sizes.get("train", 0)), f"{key}Seeds": int(st.df.seed.nunique()),
                     f"{key}Dataset": escape(st.label)})
        if "l2" in set(st.df.regime):
            vals[f"{key}Lambda"] = _sci(float(st.df[st.df.regime == "l2"].weight_decay.max()))
        vals[f"{key}Premise"] = cnn_premise_text(arm_entries(entries, ARCHITECTURES[name]))
    return vals


def schedule_text(cfg: dict, tex: bool = True) -> str:
    """A run's learning-rate schedule in words, from its recorded config: the rate, and where ``lr_decay`` makes it
    fall linearly to zero, the epoch the fall begins (``runs.schedule.decay_epochs``, as training counts it)."""
    m = "$" if tex else ""
    lr, epochs = float(cfg["lr"]), int(cfg["epochs"])
    span = decay_epochs(epochs, float(cfg.get("lr_decay") or 0.0))
    if span <= 0:
        return f"learning rate {m}{lr:g}{m}"
    return f"learning rate {m}{lr:g}{m}, falling linearly to zero from epoch {epochs - span}"


def _and_list(items: list[str]) -> str:
    """a; a and b; a, b and c."""
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else "".join(items)


def _seeds_text(seeds) -> str:
    s = [str(int(v)) for v in seeds]
    return ("seed " if len(s) == 1 else "seeds ") + _and_list(s)


def _span(values, fmt: str = ".3f") -> str:
    lo, hi = min(values), max(values)
    return f"{lo:{fmt}}" if f"{lo:{fmt}}" == f"{hi:{fmt}}" else f"{lo:{fmt}} to {hi:{fmt}}"


def _reached(nets: list[dict]) -> str:
    """What the nets that never separate reached, and where they ended: a net that fit its data and then fell
    to a constant output reads differently from one that never fit it."""
    best = [u.get("best_train_acc") for u in nets]
    final = _span([u["final_train_acc"] for u in nets])
    if any(not isinstance(b, (int, float)) for b in best):
        return f"final training accuracy {final}"
    epochs = [u.get("best_epoch") for u in nets]
    at = f" at epoch {_span(epochs, 'g')}" if all(isinstance(e, (int, float)) for e in epochs) else ""
    return f"best training accuracy {_span(best)}{at}, final {final}"


def separation_text(p: dict, tex: bool = True) -> str:
    """One measured premise (``C.premise``'s dict) in words: how many nets separate, when, and which seeds lack
    a late window (``tex``: LaTeX math, else plain text)."""
    m = "$" if tex else ""
    if not p or "nets" not in p:
        return "not measured"
    text = f"{p['separated']} of its {p['nets']} nets separate"
    if p.get("separated"):
        text += (f", the median at epoch {p['median_separation_epoch']:g} and the latest at epoch "
                 f"{p['latest_separation_epoch']:g} of {p['last_epoch']:g}")
    missing = [u for u in p.get("unseparated") or [] if isinstance(u, dict)]
    if missing:
        ws = sorted({float(u["weight"]) for u in missing})
        who = "the one that does not is" if len(missing) == 1 else f"the {len(missing)} that do not are"
        text += f"; {who} at {m}w = " + ", ".join(weight_label(w) for w in ws) + f"{m} ({_reached(missing)})"
    seeds = p.get("seeds_without_late_window") or []
    if seeds:
        text += (f"; {_seeds_text(seeds)} {'has' if len(seeds) == 1 else 'have'} no late window of "
                 f"{C.LATE_SPAN_STEPS:,} steps after separation")
    return text


def cnn_premise_text(entries: dict, tex: bool = True) -> str:
    """The premise of a CNN arm's claims as measured: its unregularised nets (C2's premise), its weight-decay nets
    (C4's), and C1's early spread where it is saturated; every number from the entries."""
    m, parts = ("$" if tex else ""), []
    c2 = (entries.get("C2") or {}).get("premise") or {}
    if c2:
        parts.append("Without regularisation, " + separation_text(c2, tex))
    reg = ((entries.get("C4") or {}).get("premise") or {}).get("regularised") or {}
    if reg:
        parts.append("With weight decay, " + separation_text(reg, tex))
    c1 = entries.get("C1") or {}
    early = (c1.get("details") or {}).get("early_F") or {}
    if (c1.get("details") or {}).get("saturated") and early:
        ws = sorted(early, key=float)
        parts.append(f"Over the first {C.EARLY_STEPS} steps every seed's {m}F{m} is {early[ws[0]]:.2f} at "
                     f"{m}w = {weight_label(float(ws[0]))}{m} and {early[ws[-1]]:.2f} at "
                     f"{m}w = {weight_label(float(ws[-1]))}{m}: a saturated spread, which C1's rule counts as "
                     "inconclusive (it could not have come out otherwise)")
    return ". ".join(parts) + "." if parts else "Not measured."


def numbers(a: Analysis) -> dict[str, object]:
    """Every value the paper quotes."""
    return {**theory_numbers(a), **study_numbers(a), **claim_numbers(a), **other_numbers(a),
            **loss_numbers(a.loss_theory, a.loss_networks), **a.inside_numbers, **cnn_numbers(a)}


AWAY_LEVEL = 0.05  # rad: a final angle to the plain max margin beyond this counts as staying away from it


def loss_numbers(th: pd.DataFrame, net: pd.DataFrame) -> dict:
    vals: dict[str, object] = {}
    if not th.empty:
        exp_tails = th[~th.loss.isin(["vs", "polynomial"])]
        if "t_max" in th:
            vals["LossesTmaxLog"] = float(np.log10(th.t_max.max()))
        vals["LossesMaxFinalToLimit"] = float(th.final_to_limit.max())
        vals["LossesExpMaxFinalToHat"] = float(exp_tails.final_to_hat.max())
        for _, r in th.iterrows():
            vals[macro_name("LossRate", r.loss)] = float(r.rate)
            vals[macro_name("LossToHat", r.loss)] = float(r.final_to_hat)
        # the sentence naming the losses that stay away from the plain max margin, from the angles it names
        away = [escape(str(r.loss)) for r in th.itertuples() if r.final_to_hat > AWAY_LEVEL]
        vals["LossesAwayLevel"] = AWAY_LEVEL
        vals["LossesAwayFromHat"] = _and_list(away) if away else "none of the losses"
    if not net.empty:
        for _, r in net.iterrows():
            vals[macro_name("LossLate", r.regime.replace("_", " "))] = float(r.late_effect)
            vals[macro_name("LossBalAcc", r.regime.replace("_", " "))] = float(r.balanced_acc)
            vals[macro_name("LossSeparated", r.regime.replace("_", " "))] = f"{int(r.separated)}/{int(r.nets)}"
        vals["LossFeatureAngleMax"] = float(np.nanmax(net.feature_angle)) if net.feature_angle.notna().any() \
            else float("nan")
        vals["LossStudy"] = 1
    return vals
