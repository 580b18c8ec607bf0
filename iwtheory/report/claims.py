"""`iwtheory claims`: the verdict on each of the seed paper's claims, as JSON and as a LaTeX table."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from iwtheory.compare import claims as C
from iwtheory.compare.study_claims import COMPARED, NETWORK, NOT_APPLICABLE, network_claims
from iwtheory.report.latex import escape
from iwtheory.catalogue import ANGLE, BY_NAME, CIFAR_CNN, CNN_ARMS, DUPLICATES, FASHION_CNN, INSIDE, STUDY, TOY
from iwtheory.nets.names import mlp_widths
from iwtheory.report.analysis import Analysis, study
from iwtheory.report.macros import pm
from iwtheory.report.tables import latex_table

def _missing(cid: str, what: str) -> dict:
    return {"id": cid, "statement": C.CLAIMS[cid].statement, "statistic": "", "value": None, "se": None,
            "n_seeds": 0, "rule": "", "verdict": "inconclusive",
            "premise": {"statement": C.CLAIMS[cid].premise, "met": False, "value": None}, "threshold": None,
            "details": {"missing": f"no records of {what}"}}


def steps_per_epoch(s) -> int:
    """Optimisation steps in one epoch of a study: floor(training images / batch size)."""
    sizes = s.sizes.get("none") or next(iter(s.sizes.values()), {}) or {}
    n = sizes.get("train")
    if not n:
        raise ValueError(f"the records of {s.name} do not say how many training images they used")
    return max(1, int(n) // int(s.config["batch_size"]))


def scale_of(s, regime: str | None = None) -> dict:
    """Dataset, model, training images and epochs of a CNN study (of one of its regimes: its own widths, images and
    schedule), from the runs' own configs."""
    variant = next((v for v in s.configs if v.split()[0] == regime), None) if regime else None
    cfg = s.configs[variant] if variant else s.configs.get("none", s.config)
    model = cfg["model"]
    if model == "mlp":
        model = "MLP " + "-".join(["in", *map(str, mlp_widths(cfg)), "1"])
    if cfg.get("batchnorm"):
        model += " with batch norm"
    if cfg.get("dropout"):
        model += f" with dropout {cfg['dropout']:g}"
    sizes = (s.sizes.get(variant) if variant else None) or s.sizes.get("none") or next(iter(s.sizes.values()), {})
    epochs = int(cfg["epochs"])
    if cfg.get("lr_decay"):
        epochs = f"{epochs} epochs, the learning rate falling linearly to 0 over the last {cfg['lr_decay']:.0%}"
    return {"dataset": f"{s.label} {cfg['pos']} vs {cfg['neg']}", "model": model,
            "training images": sizes.get("train"), "validation images": sizes.get("val"),
            "epochs": epochs, "source": s.source}


def evaluate(a: Analysis, experiment: str | None = None) -> list[dict]:
    """C1-C12 (and C2b) from the study, the toy and the theory records; a claim without records is
    inconclusive, saying what is missing, and one whose regime is absent is not applicable. ``experiment``: the
    network claims of that experiment's records only (any experiment, a researcher's own included). Computed
    once per analysis."""
    key = "claims" if experiment is None else f"claims:{experiment}"
    if key not in a.cache:
        a.cache[key] = _evaluate(a, experiment)
    return a.cache[key]


def _measure(out: dict, cid: str, fn, *args) -> None:
    """out[cid] = fn(*args); records that cannot give the statistic (every net of a weight diverged, a regime
    without its unweighted runs) make the claim inconclusive, saying why, instead of stopping the report."""
    try:
        out[cid] = fn(*args)
    except (ValueError, KeyError, IndexError, ZeroDivisionError) as e:
        out[cid] = _missing(cid, f"usable records ({type(e).__name__}: {e})")


def subsample_ratio(st) -> float | None:
    """The share of positives a study's subsample regime keeps (C8's r), from its configs."""
    cfg, base = st.configs.get("subsample", {}), st.configs.get("none", {})
    if not cfg:
        return None
    return float(cfg["n_pos"] / base["n_pos"] if cfg.get("n_pos") and base.get("n_pos") else cfg.get("keep_pos", 1))


def baselines(st) -> dict[str, str]:
    """Regime -> the regime its claims compare with, from the runs' configs (``baseline``; none where unset)."""
    return {c["regime"]: c["baseline"] for c in st.configs.values() if c.get("baseline")}


def study_entries(st) -> dict[str, dict]:
    """The network claims of one CNN/MLP experiment's records (``compare.study_claims``), with its scale."""
    out = network_claims(st.df, steps_per_epoch(st), subsample_ratio=subsample_ratio(st), baselines=baselines(st))
    seeds, draws = st.df[st.df.variant == "none"].seed.nunique(), st.draws.get("none", 1)
    drawn = f"{seeds} seeds, each on its own draw of the data" if draws == seeds and seeds > 1 else \
        f"{seeds} seeds on {draws} draw{'s' if draws > 1 else ''} of the data"
    base = baselines(st)
    scale = scale_of(st) | {"draws": drawn}
    # a claim measured on a regime of its own scale (the decay arms, the noisy or subsampled sets) says so
    own = {cid: reg for cid, reg in COMPARED.items() if reg in base or reg in ("noise", "subsample")}
    for cid in ("C2", "C3"):
        if cid in out and st.distances.get("none"):
            out[cid]["details"]["probe_distances"] = st.distances["none"]
    have = set(st.df.regime)
    for cid, e in out.items():
        # the regimes a claim reads: the compared regime and its baseline, or the baseline (and the one-draw control)
        regimes = [COMPARED[cid], base.get(COMPARED[cid], "none")] if cid in COMPARED else ["none", "one_draw"]
        exps = [f"{st.name} [{r}]" for r in regimes if r in have]
        if e["verdict"] != NOT_APPLICABLE:
            e.update(scale=scale_of(st, own[cid]) | {"draws": drawn} if cid in own else scale, experiments=exps)
        if st.quick:
            e["quick"] = True  # from a config's [quick] variant: a smoke run, not evidence
    return out


def _evaluate(a: Analysis, experiment: str | None = None) -> list[dict]:
    if experiment is not None:
        spec = BY_NAME.get(experiment)
        if spec is None or spec.runner == "train":  # any network experiment: the network claims of its records
            st = study(a, experiment)
            if st is None:
                raise ValueError(f"no records of an experiment named {experiment!r} here")
            out = study_entries(st)
            return [out[cid] for cid in NETWORK]
        return [e for e in _evaluate(a) if experiment in C.CLAIMS[e["id"]].experiments]
    out = {}
    st = study(a, STUDY)
    if st is not None:
        out.update(study_entries(st))
    theory = a.theory(ANGLE)
    if not theory.empty:
        _measure(out, "C9", C.c9, theory, a.theory_summaries(ANGLE), a.angle_constants)
        out["C9"].update(scale={"dataset": "2-D toy (B&L), 50 points per class", "model": "linear, bias feature",
                                "epochs": f"gradient flow to t = {theory.t.max():.0e}"}, experiments=[ANGLE])
    dup = a.theory(DUPLICATES)
    if not dup.empty:
        _measure(out, "C11", C.c11, dup, a.theory_summaries(DUPLICATES))
        out["C11"].update(scale={"dataset": "2-D toy (B&L)", "model": "linear, bias feature",
                                 "epochs": f"{int(dup.t.max())} GD / SGD steps"}, experiments=[DUPLICATES])
    toy = study(a, TOY)
    if toy is not None:
        _measure(out, "C10", C.c10, toy.df, steps_per_epoch(toy))
        seeds, draws = toy.df.seed.nunique(), max(toy.draws.values(), default=1)
        out["C10"].update(scale=scale_of(toy) | {"dataset": "2-D toy (B&L)", "draws": f"{seeds} seeds on {draws} "
                                                 f"draw{'s' if draws > 1 else ''} of the toy"}, experiments=[TOY])
    inside = a.theory(INSIDE)
    if not inside.empty:
        for cid, fn in (("N1", C.n1), ("N2", C.n2), ("N3", C.n3)):
            _measure(out, cid, fn, inside)
            sums = a.theory_summaries(INSIDE)
            points = int(sums.points.max()) if "points" in sums and sums.points.notna().any() else None
            arch = "-".join(str(int(v)) for v in sums.widths.dropna().iloc[0]) \
                if "widths" in sums and sums.widths.notna().any() else ""
            out[cid].update(scale={"dataset": "2-D toy (B&L)" + (f", {points} points" if points else ""),
                                   "model": f"ReLU net {arch} without biases".replace("  ", " "),
                                   "epochs": f"loss-scaled GD to flow time t = {inside.t.max():.0e}",
                                   "draws": f"{inside.seed.nunique()} seeds (initialisations) on one draw of the toy"},
                            experiments=[INSIDE])
    entries = [out.get(cid) or _missing(cid, _measured_on(cid)) for cid in C.ORDER]
    add_architectures(a, entries)
    quick = set(a.df[a.df.quick.eq(True)].experiment) if "quick" in a.df else set()
    for e in entries:  # a verdict read from a [quick] variant's runs says so
        if quick & {x.split(" [")[0] for x in e.get("experiments", [])}:
            e["quick"] = True
    return entries


ARCHITECTURES = {STUDY: "MLP, Fashion-MNIST", FASHION_CNN: "CNN, Fashion-MNIST", CIFAR_CNN: "CNN, CIFAR-10"}


def add_architectures(a: Analysis, entries: list[dict]) -> None:
    """Beside each network claim of the MLP study, the same claim on each CNN arm whose records are here (the
    committed CPU records of `make cnn`): ``by_architecture[label]`` with its verdict, value, SE, seeds, premise
    and scale, and ``architecture``, the entry's own label. A claim an arm does not measure is not listed."""
    arms = {ARCHITECTURES[name]: st for name in CNN_ARMS if (st := study(a, name)) is not None}
    if not arms:
        return
    measured = {label: study_entries(st) for label, st in arms.items()}
    for e in entries:
        if e["id"] not in NETWORK:
            continue
        e["architecture"] = ARCHITECTURES[STUDY]
        e["by_architecture"] = {
            label: {"verdict": x["verdict"], "value": x["value"], "se": x["se"], "n_seeds": x["n_seeds"],
                    "premise_met": bool(x["premise"]["met"]), "premise": x["premise"], "scale": x.get("scale"),
                    "experiments": x.get("experiments", []),
                    "details": {k: v for k, v in (x.get("details") or {}).items()
                                if k in ("saturated", "early_F", "weight_decay")}}
            for label, got in measured.items() if (x := got.get(e["id"])) and x["verdict"] != NOT_APPLICABLE}


def differing(entries: list[dict]) -> list[str]:
    """The network claims whose decisive verdicts differ between architectures, in words: "C2 (holds on the MLP,
    Fashion-MNIST; fails on the CNN, CIFAR-10)"; a claim measured at a weight decay says at which on each, since
    a verdict that differs at different strengths is not a difference of architecture alone."""
    def at(entry: dict) -> str:
        wd = (entry.get("details") or {}).get("weight_decay")
        return f" at weight decay {wd:g}" if isinstance(wd, (int, float)) else ""

    out = []
    for e in entries:
        arms = {e.get("architecture", ARCHITECTURES[STUDY]): (e["verdict"], at(e)),
                **{k: (v["verdict"], at(v)) for k, v in (e.get("by_architecture") or {}).items()}}
        decisive = {k: v for k, v in arms.items() if v[0] in ("holds", "fails")}
        if len({v for v, _ in decisive.values()}) > 1:
            out.append(f"{e['id']} (" + "; ".join(f"{v} on the {k}{w}" for k, (v, w) in decisive.items()) + ")")
    return out


def architectures(entries: list[dict]) -> list[str]:
    """The labels of the other architectures the entries were measured on (``by_architecture``), in order."""
    return list(dict.fromkeys(k for e in entries for k in (e.get("by_architecture") or {})))


def arm_entries(entries: list[dict], label: str) -> dict[str, dict]:
    """One architecture's entries by claim id (what ``add_architectures`` keeps of each)."""
    return {e["id"]: e["by_architecture"][label] for e in entries if label in (e.get("by_architecture") or {})}


def decided_by_arm(entries: list[dict]) -> str:
    """The claims each CNN arm decided (holds or fails), in words: "on the CNN, CIFAR-10, C2, C4; on ...: none",
    so that no differing verdict is not read as agreement where an arm decided nothing."""
    parts = []
    for arm in architectures(entries):
        ids = [cid for cid, x in arm_entries(entries, arm).items() if x.get("verdict") in ("holds", "fails")]
        parts.append(f"on the {arm}, " + (", ".join(ids) or "none"))
    return "; ".join(parts)


def _measured_on(cid: str) -> str:
    """The experiment a claim reads (the registry's), in words: the study's claims name their regimes."""
    exps = C.CLAIMS[cid].experiments
    return f"{STUDY} (its regimes)" if any(e.startswith("study:") for e in exps) else " or ".join(exps)


def _fmt(v, se=None) -> str:
    return pm(v, se, digits=None)


def scale_text(e: dict) -> str:
    """A claim's own scale in a few words: model, data and training, from its entry's ``scale``."""
    sc = e.get("scale") or {}
    parts = [str(sc[k]) for k in ("model", "dataset") if sc.get(k)]
    if sc.get("training images"):
        parts.append(f"{sc['training images']} training images")
    if sc.get("epochs"):
        parts.append(f"{sc['epochs']} epochs" if isinstance(sc["epochs"], int) else str(sc["epochs"]))
    if sc.get("draws"):
        parts.append(str(sc["draws"]))
    return "; ".join(parts) or "---"


def claims_table(entries: list[dict]) -> str:
    """Booktabs table: claim, statement, its own scale (a letter, spelled out in the caption), value +- SE (seeds),
    premise, verdict."""
    scales = [scale_text(e) for e in entries]
    keys = {t: chr(ord("a") + k) for k, t in enumerate(dict.fromkeys(t for t in scales if t != "---"))}
    key_text = "; ".join(f"({k}) {_tex(t)}" for t, k in keys.items())
    cells = pd.DataFrame({
        "claim": [e["id"] for e in entries],
        "statement": [_tex(e["statement"]) for e in entries],
        "scale": [keys.get(t, "---") for t in scales],
        "value": [_fmt(e["value"], e["se"]) for e in entries],
        "seeds": [str(e["n_seeds"]) if e["n_seeds"] else "---" for e in entries],
        "premise": ["met" if e["premise"]["met"] else "not met" for e in entries],
        "verdict": [e["verdict"] for e in entries]})
    arms = architectures(entries)
    if arms:  # the same claim on the CNN arm: one verdict column per architecture where it was measured
        cells = cells.rename(columns={"verdict": ARCHITECTURES[STUDY]})
        for label in arms:
            cells[label] = [(e.get("by_architecture") or {}).get(label, {}).get("verdict", "---") for e in entries]
    tex = latex_table(cells, pd.DataFrame(index=cells.index), {},
                      caption="The seed paper's claims, each at the scale it was measured at "
                              "(Section~\\ref{sec:claims} "
                              "gives each statistic and its rule, fixed before the results were seen). Value: the "
                              "claim's statistic, mean $\\pm$ standard error over seeds (each seed on its own draw of "
                              "the data where the scale says so); premise: whether every net behind the verdict was in "
                              "the state the claim speaks of (measured), without which no verdict is decisive. "
                              f"Scales: {key_text}."
                              + (" The last columns give the verdict of each architecture where the claim was "
                                 "measured on it (the CNN arm, Section~\\ref{sec:cnn})." if arms else ""),
                      label="tab:claims")
    return tex.replace("{" + "l" * cells.shape[1] + "}", "{lp{2.6in}" + "l" * (cells.shape[1] - 2) + "}")


_MATH = {"S_in": r"$S_{\mathrm{in}}$", "S_out": r"$S_{\mathrm{out}}$", "S_noise": r"$S_{\mathrm{noise}}$",
         "w_max": r"$w_{\max}$", "w_min": r"$w_{\min}$", "K_c": r"$K_c$", "|Delta|": r"$|\Delta|$",
         "Delta": r"$\Delta$", "lambda": r"$\lambda$", "theta": r"$\theta$", ">=": r"$\geq$", "<=": r"$\leq$",
         "!=": r"$\neq$", "~": r"$\sim$"}
_MATH_RE = re.compile("|".join(re.escape(k) for k in sorted(_MATH, key=len, reverse=True)))


def _tex(text: str) -> str:
    """Plain words of a rule or statistic as LaTeX: the symbols the rules name (S_in, Delta, >=, ...) typeset
    as math, everything else through the one escaping function, so record text runs no command."""
    out, at = [], 0
    for m in _MATH_RE.finditer(str(text)):
        out += [escape(text[at:m.start()]), _MATH[m.group(0)]]
        at = m.end()
    return "".join(out) + escape(str(text)[at:])


def claims_detail(entries: list[dict]) -> str:
    """One paragraph per claim: its statistic, its rule, the value measured, the verdict."""
    lines = ["\\begin{itemize}\\setlength\\itemsep{1pt}\\small"]
    for e in entries:
        if not e["statistic"]:
            lines.append(f"\\item[{e['id']}] {_tex(e['statement'])} \\emph{{Not measured}}: "
                         f"{_tex(e['details'].get('missing', ''))}. Verdict: \\textbf{{{e['verdict']}}}.")
            continue
        seeds = f" ({e['n_seeds']} seeds)" if e["n_seeds"] > 1 else ""
        lines.append(f"\\item[{e['id']}] {_tex(e['statement'])} \\emph{{Statistic}}: {_tex(e['statistic'])}. "
                     f"\\emph{{Rule}}: {_tex(e['rule'])}. \\emph{{Measured}}: {_fmt(e['value'], e['se'])}{seeds}. "
                     f"\\emph{{Verdict}}: \\textbf{{{e['verdict']}}}.")
    lines.append("\\end{itemize}")
    return "\n".join(lines) + "\n"


def _range(t: dict | None) -> str:
    if not t:
        return ""
    lo, hi = t["stable_range"]
    return (f" The verdict stays the same for the {_tex(t['parameter'])} from {_fmt(lo)} to {_fmt(hi)} "
            f"(the rule uses {_fmt(t['value'])}).")


class _N:
    """A number in a generated sentence: typeset by ``_fmt``, never escaped as text."""

    def __init__(self, v, se=None):
        self.v, self.se = v, se


def _say(*parts) -> str:
    """One sentence of text (escaped, symbols as math) and numbers (``_N``, typeset)."""
    return "".join(_fmt(p.v, p.se) if isinstance(p, _N) else _tex(str(p)) for p in parts)


def _premise_parts(p: dict) -> list[dict]:
    """A premise and the premises it combines (with and without a regulariser)."""
    return [p] + [p[k] for k in ("regularised", "unregularised") if isinstance(p.get(k), dict)]


def measured_reasons(e: dict) -> str:
    """What was measured that explains a verdict, in sentences generated from the entry's own numbers: which nets
    kept the premise from being met, how the late effect moves over the window (a plateau or a slow fall), how
    far each probe set lies from the training data, the data draw's share of the spread, what each stopping rule
    gave, the correction measured."""
    d, out = e.get("details") or {}, []
    for p in _premise_parts(e.get("premise") or {}):
        for n in p.get("unseparated") or []:
            out.append(_say(f"A net that never separates: w = {n['weight']:g}, seed {n['seed']} (best training "
                            "accuracy ", _N(n["best_train_acc"]), " at epoch ", _N(n["best_epoch"]), ", final ",
                            _N(n["final_train_acc"]), ")."))
        for seed, ep in (p.get("late_separations") or {}).items():
            out.append(_say(f"Seed {seed}'s nets separate only by epoch ", _N(ep), " of ", _N(p.get("last_epoch")),
                            ", too late for a late window of ", _N(p.get("late_span_epochs")), " more epochs."))
    trends = dict(d.get("late_trends") or {})
    if d.get("late_trend"):
        trends["S_in"] = d["late_trend"]
    for name, t in trends.items():
        if t and t.get("first_half") is not None and t.get("second_half") is not None:
            how = {"flat": "is flat (a plateau at this resolution)", "still falling": "is still falling",
                   "rising": "is rising"}[t["trend"]]
            out.append(_say(f"Over the late window the mean |Delta| on {name.removeprefix('C2_')} goes from ",
                            _N(t["first_half"]), " (first half) to ", _N(t["second_half"]),
                            f" (second half): it {how}."))
    dist = d.get("probe_distances") or {}
    if dist.get("train") and len(dist) > 1:
        parts = ["Median distance to the nearest training image (normalised inputs): "]
        for k, v in ((k, v) for k, v in dist.items() if k != "train"):
            parts += [_N(v), f" for {k}, "]
        out.append(_say(*parts, "against ", _N(dist["train"]), " between training images."))
    draw = d.get("data_draw")
    if draw and draw.get("between_draw_variance_share") is not None:
        out.append(_say(f"The data draw carries {100 * draw['between_draw_variance_share']:.0f}% of the seeds' "
                        "variance (SE ", _N(draw["se_own_draws"]), " with each seed on its own draw, ",
                        _N(draw["se_one_draw"]), f" on one draw, where the rule says {draw.get('verdict_one_draw')})."))
    for rule, r in (d.get("by_stopping_rule") or {}).items():
        out.append(_say(f"Stopping at the best {rule} (median epoch ", _N(r["median_stop_epoch"]), ", test accuracy ",
                        _N(r["test_acc_at_stop"]), "): ", _N(r["difference"], r["se"]), f", {r['verdict']}."))
    if d.get("correction_shift") is not None and e["id"] == "C8":
        toward = "toward" if d.get("correction_toward_balanced") else "away from"
        out.append(_say("The correcting weight moves late F by ", _N(d["correction_shift"], d.get("correction_se")),
                        " (", _N(d.get("correction_in_se")), f" SE), {toward} the balanced nets."))
    if d.get("plateau"):
        out.append(_say("The directions settle apart: the fitted asymptote is ",
                        _N(d.get("asymptote"), d.get("asymptote_se")), " rad, so there is no approach to give a rate."))
    return " ".join(out)


def claims_discussion(entries: list[dict]) -> str:
    """One paragraph for every claim that does not hold: what was measured, and why the verdict is what it is
    (a premise not met, a value on the wrong side of its rule, or too wide an uncertainty), with the measurements
    that explain it (``measured_reasons``)."""
    out = []
    for e in entries:
        if e["verdict"] == "holds":
            continue
        p = e["premise"]
        head = f"\\paragraph{{{e['id']}: {e['verdict']}.}} {_tex(e['statement'])} "
        if not e["statistic"]:
            out.append(head + f"Not measured: {_tex(e['details'].get('missing', ''))}.")
            continue
        text = f"Measured: {_fmt(e['value'], e['se'])}"
        text += f" over {e['n_seeds']} seeds. " if e["n_seeds"] > 1 else ". "
        if not p["met"]:
            val = f" (measured: {_tex(p.get('measure', 'value'))} {_fmt(p['value'])})" if p.get("value") is not None \
                else ""
            before = e["details"].get("verdict_before_premise")
            text += (f"Its premise is not met: {_tex(p['statement'])}{val}. "
                     + (f"The rule alone would say {before}; without the premise that says nothing about the "
                        "claim. " if before else ""))
        elif e["verdict"] == "fails":
            text += f"The rule ({_tex(e['rule'])}) decides against the claim at this scale. "
        elif e["verdict"] == "inconclusive":
            text += f"The rule ({_tex(e['rule'])}) cannot decide: the uncertainty spans both sides. "
        else:
            text += f"{_tex(e['details'].get('missing', ''))} "
        out.append(head + text + measured_reasons(e) + _range(e.get("threshold")))
    if not out:
        out.append("Every claim holds at this scale.")
    return "\n\n".join(out) + "\n"


def write_claims(a: Analysis, out_dir: str | Path, entries: list[dict] | None = None,
                 experiment: str | None = None) -> list[Path]:
    """paper/generated/claims.json, paper/tables/claims.tex and the per-claim rules (claims_detail.tex); for one
    ``experiment``, the same files with ``_<experiment>`` in their names."""
    entries = entries if entries is not None else evaluate(a, experiment)
    out = Path(out_dir)
    tag = "" if experiment is None else f"_{safe_name(experiment)}"
    (out / "generated").mkdir(parents=True, exist_ok=True)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    j = out / "generated" / f"claims{tag}.json"
    j.write_text(json.dumps(entries, indent=1, default=_json_default))
    t = out / "tables" / f"claims{tag}.tex"
    t.write_text(claims_table(entries))
    d = out / "tables" / f"claims_detail{tag}.tex"
    d.write_text(claims_detail(entries))
    x = out / "tables" / f"claims_discussion{tag}.tex"
    x.write_text(claims_discussion(entries))
    return [j, t, d, x]


def safe_name(name: str) -> str:
    """An experiment's name as a file-name part: letters, digits and _ only."""
    return re.sub(r"[^A-Za-z0-9_]", "_", str(name))[:64]


def other_experiments(a: Analysis) -> list[str]:
    """The network experiments in the records that the paper's catalogue does not name (a researcher's own)."""
    return sorted({s.name for s in a.studies.values() if s.name not in BY_NAME})


def _json_default(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, np.bool_):
        return bool(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")
