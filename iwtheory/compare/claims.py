"""The seed paper's claims C1-C12 as statistics of run records, each with a premise, a rule and a verdict.

Pure functions of DataFrames (the records of ``iwtheory.runs.load``). Every threshold below was fixed in
code before the study was run; each claim reports its rule, its premise (the state its nets must be in,
measured) and the range of its main threshold over which the verdict stays the same. Verdicts: ``holds``,
``fails``, or ``inconclusive`` when the uncertainty is too large for the rule to decide, the statistic
is saturated (it could not have come out otherwise), or the premise is not met.

Conventions. F(t; w) is the fraction of a probe set predicted positive at epoch t by the model whose
positive class weighs w; Delta(t; w) = F(t; w) - F(t; 1) within a seed (seeds pair initialisation and
batch order across weights and across regimes of one architecture).

*Early* is a number of optimisation steps: the first ``EARLY_STEPS`` (the 2-D toy: ``TOY_EARLY_STEPS``).
*Late* is a state: a net has separated its training data at the first evaluated epoch from which its
training accuracy (eval mode) stays 1; the late window of a seed starts ``LATE_SPAN_STEPS`` optimisation steps
after the latest separation epoch among the nets compared (counted from separation, not from epoch 0), and must
hold ``MIN_LATE_POINTS`` evaluated epochs. Where that premise fails, the value reported is over every seed's last
tenth of training, labelled so, and the verdict is inconclusive. A weight's late effect is the mean of Delta over
that window; its *oriented* version multiplies it by sign(log w) so that an effect in the weights' direction is
positive.

Statistics: means over seeds with their standard errors; differences between regimes are paired by seed. Each
seed draws its own data (``draws = "seed"``), so the SEs include the data draw. "k SE" is read with Student's t:
the quantile of t with n - 1 degrees of freedom whose tail equals the normal k-sigma tail. Every entry names the
one-sided tests its verdict rests on (``tests``) and the bound they put on the chance that a decisive verdict is
false (``error_bound``); ``multiplicity`` sums them over the verdicts actually given (Bonferroni) and lists the
verdicts that also rest on point rules, which bound nothing.

N1-N3 read the long runs of homogeneous nets (``iwtheory.runs.inside``), recorded along flow time t: the
*approach window* runs from the first recorded t at or after K_LATE x the latest separation time of the nets
compared (and at least e^2) to the last one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from iwtheory.catalogue import ANGLE, DUPLICATES, INSIDE, TOY
from iwtheory.compare.effects import PROBE_SETS, angle_constants, lasting_from
from iwtheory.theory.windows import in_late_window

# ---- the rules' constants ----------------------------------------------------------------------------
K_SE = 3.0             # "by >= 3 SE"
Z_SE = 2.0             # "within 2 SE"
MIN_SEEDS = 10         # behind every network claim
K_LATE = 2.0           # the long runs' approach window starts at K_LATE x the separation time (flow time)
LATE_SPAN_STEPS = 1000  # a network's late window starts this many optimisation steps after its separation
MIN_LATE_POINTS = 2    # evaluated epochs a late window must hold
EARLY_STEPS = 200      # "early": the first 200 optimisation steps
TOY_EARLY_STEPS = 10   # the 2-D toy trains full batch: its first 10 steps
C1_SPREAD = 0.3        # early F(w_max) - F(w_min)
C2_LEVEL = 0.03        # late |Delta| that counts as faded
C2_RATIO = 0.2         # late |Delta| at most this share of the largest early |Delta|
MARGIN = 0.03          # equivalence margin: C5, C7's small-lambda end, C8's correction
C9_REL = 0.05          # fitted vs predicted angle constant
C11_REL = 0.1          # SGD: weighted vs duplicated mean final angle, relative to the weighted one
N1_MARGIN = 0.02       # rad: an asymptotic angle to the unweighted net within this counts as reaching it
N2_REL = 0.05          # normalised margins: weighted vs unweighted, relative to the unweighted one
KKT_POINT = 0.05       # a KKT residual below this is called a KKT point (``nets.longrun.kkt_measures``)
N3_EXPONENT = -1.0     # the linear theory's law: angle ~ K (log t)^-1
N3_MARGIN = 0.5        # equivalence margin on that exponent
PROBE_NAMES = {p.column: p.symbol for p in PROBE_SETS}
SEPARATES = "every net separates its training data (training accuracy 1 in eval mode) and stays separated " \
            f"through a late window from {LATE_SPAN_STEPS} steps after its seed's latest separation epoch, with >= " \
            f"{MIN_LATE_POINTS} evaluated epochs in it"
PREMISE_FAILED_WINDOW = "the last tenth of training, over every seed (the premise is not met: no late window)"


@dataclass(frozen=True)
class Claim:
    """One claim of the seed paper: what it says, the state its nets must be in, and what it is measured on."""

    id: str
    statement: str
    premise: str
    experiments: tuple[str, ...]


CLAIMS: dict[str, Claim] = {c.id: c for c in (
    Claim("C1", "Weighting matters early.",
          f"no net has separated its training data within the first {EARLY_STEPS} steps", ("study:none",)),
    Claim("C2", "Without regularisation the effect fades once the net separates its training data.",
          SEPARATES, ("study:none",)),
    Claim("C2b", "Fading needs separability.",
          "no net of the control (the same MLP on noisy labels) separates its training data; the unregularised "
          "nets do", ("study:noise", "study:none")),
    Claim("C3", "The same holds off-distribution.", SEPARATES, ("study:none",)),
    Claim("C4", "L2 keeps part of the effect.", SEPARATES + ", with and without weight decay",
          ("study:l2", "study:none")),
    Claim("C5", "Dropout does not keep the effect.", SEPARATES + ", with and without dropout",
          ("study:dropout", "study:none")),
    Claim("C6", "Batch norm keeps some of the effect.", SEPARATES + ", with and without batch norm",
          ("study:batchnorm", "study:none")),
    Claim("C7", "The kept effect depends on the L2 strength jointly with the weight.",
          SEPARATES + ", at every weight decay", ("study:l2", "study:none")),
    Claim("C8", "Subsampling changes predictions; weighting cannot correct the imbalance.",
          SEPARATES + ", balanced and subsampled", ("study:subsample", "study:none")),
    Claim("C9", "Linear toy: every weighting converges to the max-margin boundary.",
          "the toy is linearly separable (checked by its generator)", (ANGLE,)),
    Claim("C10", "A small MLP on the 2-D toy shows the same.", SEPARATES, (TOY,)),
    Claim("C11", "Location, not density: duplicating points changes nothing in the limit.",
          "the SGD runs end with the angle to the max margin still shrinking (not yet at rounding)",
          (DUPLICATES,)),
    Claim("C12", "Early stopping keeps the effect.", SEPARATES + " (the late level compared with)",
          ("study:none",)),
    Claim("N1", "Inside the nets: the weighted nets' parameter directions approach the unweighted nets'.",
          "every homogeneous net separates its training data, stays separated to the last flow time and reaches "
          "it", (INSIDE,)),
    Claim("N2", "Inside the nets: their normalised margins approach the same value.",
          "as N1", (INSIDE,)),
    Claim("N3", "Inside the nets: the directions approach like 1 / log t, as in the linear theory.",
          "as N1", (INSIDE,)),
)}
ORDER = tuple(CLAIMS)


# ---- statistics ---------------------------------------------------------------------------------------

def mean_se(values) -> tuple[float, float, int]:
    """Mean, standard error (nan for fewer than two values) and count of the finite values."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan"), 0
    se = float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else float("nan")
    return float(v.mean()), se, int(v.size)


def paired(a: pd.Series, b: pd.Series) -> tuple[float, float, int]:
    """Mean and SE over seeds of a - b, both indexed by seed (seeds present in both only)."""
    d = (a - b).dropna()
    return mean_se(d.to_numpy())


def q(k: float, n: int) -> float:
    """The multiple of an SE over n seeds that "k SE" means: Student's t quantile (n - 1 degrees of
    freedom) with the normal k-sigma tail; inf below two seeds."""
    if n < 2:
        return float("inf")
    return float(stats.t.ppf(stats.norm.cdf(k), n - 1))


def threshold_verdict(value: float, se: float, theta: float, n: int, k: float = Z_SE,
                      min_seeds: int = MIN_SEEDS) -> str:
    """'value >= theta': holds when it is above by k SE (t), fails when below by k SE, else inconclusive."""
    if n < min_seeds or not np.isfinite(value) or not np.isfinite(se):
        return "inconclusive"
    if value - q(k, n) * se >= theta:
        return "holds"
    if value + q(k, n) * se < theta:
        return "fails"
    return "inconclusive"


def exceeds_verdict(diff: float, se: float, n: int, k: float = K_SE, min_seeds: int = MIN_SEEDS,
                    margin: float = MARGIN) -> str:
    """'diff > 0': holds when above 0 by k SE (t); fails when shown smaller than the smallest effect that counts,
    ``margin`` (diff + 2 SE < margin, t); inconclusive between. (An estimate merely at or below 0 is not a
    decision: with a true effect just above 0 it happens half the time.)"""
    if n < min_seeds or not np.isfinite(diff) or not np.isfinite(se):
        return "inconclusive"
    if diff - q(k, n) * se > 0:
        return "holds"
    if diff + q(Z_SE, n) * se < margin:
        return "fails"
    return "inconclusive"


def equivalence_verdict(diff: float, se: float, n: int, margin: float = MARGIN, k: float = Z_SE,
                        min_seeds: int = MIN_SEEDS) -> str:
    """'|diff| <= margin': holds if |diff| + k SE <= margin, fails if |diff| - k SE > margin (t quantiles)."""
    if n < min_seeds or not np.isfinite(diff) or not np.isfinite(se):
        return "inconclusive"
    if abs(diff) + q(k, n) * se <= margin:
        return "holds"
    if abs(diff) - q(k, n) * se > margin:
        return "fails"
    return "inconclusive"


def combine(verdicts: list[str]) -> str:
    if any(v == "fails" for v in verdicts):
        return "fails"
    return "holds" if verdicts and all(v == "holds" for v in verdicts) else "inconclusive"


def equivalent_per_weight(values: list[tuple[float, float, int]]):
    """(the estimate farthest from 0 as (value, se, n), and ``decide(margin)``: equivalence for every weight)
    for per-weight estimates ``values``."""
    worst = max(values, key=lambda v: abs(v[0])) if values else (float("nan"), float("nan"), 0)

    def decide(margin: float) -> str:
        return combine([equivalence_verdict(d, se, n, margin) for d, se, n in values]) if values else "inconclusive"

    return worst, decide


def stable_range(decide, value: float, lo: float, hi: float, points: int = 401) -> list[float]:
    """[a, b]: the interval of the threshold around ``value`` (scanned on a grid over [lo, hi]) over which
    ``decide(threshold)`` gives the same verdict as at ``value``."""
    grid = np.union1d(np.linspace(lo, hi, points), [value])
    verdicts = [decide(float(g)) for g in grid]
    i = int(np.searchsorted(grid, value))
    same = verdicts[i]
    a = i
    while a > 0 and verdicts[a - 1] == same:
        a -= 1
    b = i
    while b < len(grid) - 1 and verdicts[b + 1] == same:
        b += 1
    return [float(grid[a]), float(grid[b])]


def saturated(values, bound: float = 1.0) -> bool:
    """Every value at the statistic's bound: a statistic that could not have come out otherwise."""
    v = np.abs(np.asarray(values, dtype=float))
    return v.size > 0 and bool(np.all(v >= bound - 1e-12))


# ---- separation and the late window -------------------------------------------------------------------

def separated_from(when: np.ndarray, acc: np.ndarray) -> float:
    """The first recorded time (epoch, flow time) from which the training accuracy ``acc`` stays 1; nan when it
    ends below 1."""
    return lasting_from(when, np.asarray(acc) < 1.0)


def separation(df: pd.DataFrame) -> pd.DataFrame:
    """Per run: seed, weight, its separation epoch (nan if it ends unseparated), last epoch, final accuracy."""
    rows = []
    for h, g in df.groupby("config_hash"):
        g = g.sort_values("epoch")
        acc = g.train_acc.to_numpy()
        ep = g.epoch.to_numpy()
        sep = separated_from(ep, acc)
        best = int(np.argmax(acc))
        rows.append({"config_hash": h, "seed": int(g.seed.iloc[0]), "weight": float(g.weight.iloc[0]),
                     "separation_epoch": sep, "last_epoch": float(ep[-1]), "final_train_acc": float(acc[-1]),
                     "best_train_acc": float(acc[best]), "best_epoch": float(ep[best])})
    return pd.DataFrame(rows)


def steps_per_epoch(df: pd.DataFrame) -> int:
    """The optimisation steps of one epoch of the runs ``df`` (from their records' ``step`` column); a ValueError
    when the records hold no step count or their runs disagree (two regimes' records mixed)."""
    if "step" not in df or df.step.isna().all():
        raise ValueError("the records hold no optimisation step count ('step'): they were written by an older "
                         "version; rerun them")
    d = df[(df.epoch > 0) & df.step.notna()]
    spe = set((d.step.astype(float) / d.epoch.astype(float)).round(9))
    if len(spe) != 1 or not float(next(iter(spe))).is_integer():
        raise ValueError(f"runs with different steps per epoch ({sorted(spe)[:4]}) read as one regime")
    return max(1, int(next(iter(spe))))


def late_starts(df: pd.DataFrame) -> tuple[dict, dict]:
    """(seed -> first epoch of its late window, premise). The window starts LATE_SPAN_STEPS optimisation steps
    after the latest separation epoch among the seed's nets and must hold MIN_LATE_POINTS evaluations. When the
    premise is not met (a net never separates, or a seed has no window), every seed's window is the last tenth
    of training, and the premise says so (``window``): a value is still reported, labelled, never decisive."""
    sep = separation(df)
    epochs = np.asarray(sorted(df.epoch.unique()), dtype=float)
    last = epochs.max() if epochs.size else float("nan")
    tenth = float(late_window(epochs).min()) if epochs.size else float("nan")
    span = int(np.ceil(LATE_SPAN_STEPS / steps_per_epoch(df))) if len(df) else 0
    starts, short = {}, []
    for s, g in sep.groupby("seed"):
        latest = g.separation_epoch.max()
        if g.separation_epoch.isna().any() or not np.isfinite(latest):
            short.append(int(s))
            continue
        starts[int(s)] = float(latest + span)
        if np.sum(epochs >= starts[int(s)]) < MIN_LATE_POINTS:
            short.append(int(s))
    n_sep = int(sep.separation_epoch.notna().sum())
    met = bool(len(sep) and n_sep == len(sep) and not short)
    if not met:
        starts = {int(s): tenth for s in sep.seed.unique()}
    premise = {"statement": SEPARATES, "met": met,
               "value": float(sep.final_train_acc.min()) if len(sep) else None,
               "measure": "lowest final training accuracy (eval mode)",
               "nets": int(len(sep)), "separated": n_sep,
               "latest_separation_epoch": float(sep.separation_epoch.max()) if n_sep else None,
               "median_separation_epoch": float(sep.separation_epoch.median()) if n_sep else None,
               "late_span_epochs": span, "last_epoch": float(last), "seeds_without_late_window": sorted(short),
               # what kept the premise from being met, net by net (at most 6 of each)
               "unseparated": [{"seed": int(r.seed), "weight": float(r.weight), "final_train_acc": r.final_train_acc,
                                "best_train_acc": r.best_train_acc, "best_epoch": r.best_epoch}
                               for r in sep[sep.separation_epoch.isna()].head(6).itertuples()],
               "late_separations": {str(s): float(g.separation_epoch.max()) for s, g in sep.groupby("seed")
                                    if int(s) in short and g.separation_epoch.notna().all()},
               "window": f"from {LATE_SPAN_STEPS} steps ({span} epochs) after each seed's latest separation epoch"
               if met else PREMISE_FAILED_WINDOW}
    return starts, premise


def late_window(epochs) -> np.ndarray:
    """The recorded epochs in the last tenth of training (the window of nets that never separate)."""
    e = np.asarray(sorted(set(epochs)))
    return e[in_late_window(e)]


def _in_window(df: pd.DataFrame, starts: dict) -> pd.DataFrame:
    start = df.seed.map(starts).astype(float)
    return df[df.epoch >= start]


def table(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """metric indexed by (seed, epoch), one column per weight."""
    return df.pivot_table(index=["seed", "epoch"], columns="weight", values=metric, aggfunc="first")


def deltas(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Delta(t; w) per (seed, epoch), one column per weight w != 1 (paired within seeds)."""
    t = table(df, metric)
    if 1.0 not in t.columns:
        raise ValueError("the weight effect needs the unweighted (w = 1) runs")
    return t.drop(columns=1.0).sub(t[1.0], axis=0)


def late_effect(df: pd.DataFrame, metric: str, starts: dict | None = None) -> pd.DataFrame:
    """Per seed and weight w != 1: the mean of Delta over the seed's late window (``late_starts``)."""
    starts = late_starts(df)[0] if starts is None else starts
    d = deltas(_in_window(df, starts), metric)
    return d.groupby(level="seed").mean()


def late_F(df: pd.DataFrame, weight: float, starts: dict | None = None, metric: str = "frac_pos_test") -> pd.Series:
    """Per seed: the mean of F over the late window of the net with this weight."""
    starts = late_starts(df)[0] if starts is None else starts
    d = _in_window(df[np.isclose(df.weight, weight)], starts)
    return d.groupby("seed")[metric].mean()


def oriented(per_seed: pd.DataFrame) -> pd.Series:
    """Per seed: the mean over weights of sign(log w) x effect."""
    signs = np.sign(np.log(np.asarray(per_seed.columns, dtype=float)))
    return (per_seed * signs).mean(axis=1)


def early_epochs(steps_per_epoch: int, steps: int = EARLY_STEPS) -> int:
    """The number of epochs that make up the first ``steps`` optimisation steps (at least one)."""
    return max(1, int(round(steps / max(int(steps_per_epoch), 1))))


def early_F(df: pd.DataFrame, last_epoch: int, metric: str = "frac_pos_test") -> pd.DataFrame:
    """Per seed (rows) and weight (columns): the mean of F over epochs 1..last_epoch."""
    d = df[(df.epoch >= 1) & (df.epoch <= last_epoch)]
    return d.pivot_table(index="seed", columns="weight", values=metric, aggfunc="mean")


def early_effect(df: pd.DataFrame, last_epoch: int, metric: str = "frac_pos_test") -> pd.Series:
    """Per seed: the oriented Delta averaged over epochs 1..last_epoch."""
    t = early_F(df, last_epoch, metric)
    return oriented(t.drop(columns=1.0).sub(t[1.0], axis=0))


def monotone_in_weight(per_seed: pd.DataFrame) -> tuple[bool, str]:
    """Whether mean F is non-decreasing in w; a dip between neighbouring weights counts when it exceeds 2 SE
    of its paired (per-seed) difference. With the worst dip."""
    cols = sorted(per_seed.columns)
    bad = []
    for a, b in zip(cols, cols[1:]):
        d, se, n = paired(per_seed[a], per_seed[b])  # F(a) - F(b) for a < b: a dip when positive
        if d > 0 and d > q(Z_SE, n) * (se if np.isfinite(se) else 0.0):
            bad.append((d, se, b))
    if bad:
        d, se, w = max(bad)
        return False, f"F drops by {d:.3f} (SE {se:.3f}) at w = {w:g}"
    return True, "non-decreasing within 2 SE (t, paired)"


def tail(k: float) -> float:
    """The one-sided normal tail beyond k sigma: the chance that a "k SE" test (t quantiles with this tail)
    decides wrongly at the boundary of its hypothesis."""
    return float(stats.norm.sf(k))


def error_bound(verdict: str, tests: dict | None) -> float | None:
    """The chance that this decisive verdict is false, bounded from the one-sided "k SE" tests it rests on
    (``tests``: the k of each test behind "holds", and behind "fails"; None for a point rule, which bounds
    nothing): a "holds" that needs every test to pass is false with probability at most the largest tail among
    them; a "fails" that any one test can give, at most the sum of their tails. 0 for a deterministic
    computation (no sampling: ``{"deterministic": True}``); None when a point rule is involved."""
    if verdict not in ("holds", "fails") or tests is None:
        return None
    if tests.get("deterministic"):
        return 0.0
    ks = tests.get(verdict, [None])
    if not ks or any(k is None for k in ks):
        return None
    return max(tail(k) for k in ks) if verdict == "holds" else sum(tail(k) for k in ks)


def _entry(cid: str, statistic: str, value, se, n, rule: str, verdict: str, premise: dict | None = None,
           threshold: dict | None = None, tests: dict | None = None, **details) -> dict:
    clean = lambda x: None if x is None or (isinstance(x, float) and not np.isfinite(x)) else x  # noqa: E731
    if premise is not None and not premise["met"] and verdict != "inconclusive":
        details["verdict_before_premise"] = verdict
        verdict = "inconclusive"
    return {"id": cid, "statement": CLAIMS[cid].statement, "statistic": statistic, "value": clean(value),
            "se": clean(se), "n_seeds": int(n), "rule": rule, "verdict": verdict,
            "premise": premise or {"statement": CLAIMS[cid].premise, "met": True, "value": None},
            "threshold": threshold, "tests": tests, "error_bound": error_bound(verdict, tests), "details": details}


def multiplicity(entries: list[dict]) -> dict:
    """What the decisive verdicts of ``entries`` risk together, computed from the rules they rest on: how many
    are decisive, how many rest only on k-SE tests (or deterministic computations), and the Bonferroni bound
    on the chance that any of those is false (the sum of their ``error_bound``); the claims whose decisive
    verdicts also rest on a point rule (no error bound) are listed apart."""
    decisive = [e for e in entries if e.get("verdict") in ("holds", "fails")]
    bounded = [e for e in decisive if e.get("error_bound") is not None]
    return {"decisive": len(decisive), "bounded": len(bounded),
            "bound": float(sum(e["error_bound"] for e in bounded)),
            "bounded_claims": [e["id"] for e in bounded],
            "point_rule_claims": [e["id"] for e in decisive if e.get("error_bound") is None],
            "levels": {e["id"]: e["error_bound"] for e in bounded}}


def _threshold(name: str, value: float, decide, lo: float, hi: float) -> dict:
    return {"parameter": name, "value": value, "stable_range": stable_range(decide, value, lo, hi)}


# ---- the network claims, from the CPU study -----------------------------------------------------------

def variant(df: pd.DataFrame, regime: str, **match) -> pd.DataFrame:
    """The runs of one regime (and one value of each ``match`` key, e.g. weight_decay)."""
    d = df[df.regime == regime]
    for k, v in match.items():
        d = d[np.isclose(d[k], v)]
    return d


def c1(df: pd.DataFrame, steps_per_epoch: int, metric: str = "frac_pos_test", cid: str = "C1",
       early_steps: int = EARLY_STEPS) -> dict:
    last = early_epochs(steps_per_epoch, early_steps)
    t = early_F(df, last, metric)
    wmax, wmin = t.columns.max(), t.columns.min()
    spread = (t[wmax] - t[wmin]).to_numpy()
    value, se, n = mean_se(spread)
    mono, how = monotone_in_weight(t)
    sep = separation(df)
    first_sep = float(sep.separation_epoch.min()) if sep.separation_epoch.notna().any() else None
    premise = {"statement": CLAIMS["C1"].premise,
               "met": first_sep is None or first_sep > last, "value": first_sep,
               "measure": "earliest separation epoch of any net", "early_epochs": last}
    rho = stats.spearmanr(np.log(np.repeat(np.asarray(t.columns, float)[None, :], len(t), 0)).ravel(),
                          t.to_numpy().ravel()).statistic if t.size > 2 else float("nan")

    def decide(theta: float) -> str:
        if n >= MIN_SEEDS and saturated(spread):
            return "inconclusive"
        return "fails" if (not mono and n >= MIN_SEEDS) else threshold_verdict(value, se, theta, n)

    verdict = decide(C1_SPREAD)
    return _entry(cid, f"F(w_max) - F(w_min) on {probe_name(metric)}, averaged over the first {early_steps} steps "
                  f"(epochs 1-{last}), and F monotone in w", value, se, n,
                  f"holds if F is monotone in w (dips within 2 SE) and the spread exceeds {C1_SPREAD} by 2 SE (t); "
                  "fails if F is not monotone or the spread is below it by 2 SE; inconclusive if every seed's spread "
                  "is saturated at 1", verdict, premise,
                  _threshold("spread threshold", C1_SPREAD, decide, 0.0, 1.0),
                  # holds: the spread test, and no dip found (absence of a dip: a point rule); fails: the spread
                  # test or any neighbouring pair's dip test
                  {"holds": [Z_SE, None], "fails": [Z_SE] * len(t.columns)},
                  monotone=how, saturated=saturated(spread), rank_correlation_F_log_w=float(rho),
                  early_F={f"{w:g}": float(v) for w, v in t.mean().items()})


def late_trend(df: pd.DataFrame, metric: str, starts: dict) -> dict:
    """How the mean |Delta| (over weights w != 1) moves across each seed's late window: its first half against
    its second half, paired by seed, and in words: "still falling" or "rising" when the change is beyond 2 SE
    (t) and a tenth of MARGIN, else "flat" (a plateau at this resolution). Descriptive: it explains a verdict,
    it decides none."""
    d = deltas(_in_window(df, starts), metric).abs().mean(axis=1)
    first, second = {}, {}
    for s, g in d.groupby(level="seed"):
        ep = g.index.get_level_values("epoch")
        mid = np.median(ep)
        first[s], second[s] = float(g[ep <= mid].mean()), float(g[ep > mid].mean()) if (ep > mid).any() else np.nan
    change, se, n = paired(pd.Series(first), pd.Series(second))
    # below a tenth of the equivalence margin a change is no movement worth a word, however precise
    words = "flat" if not np.isfinite(se) or abs(change) <= max(q(Z_SE, n) * se, MARGIN / 10) else \
        "still falling" if change > 0 else "rising"
    def mean(d: dict) -> float | None:
        v = np.asarray(list(d.values()), dtype=float)
        return float(v[np.isfinite(v)].mean()) if np.isfinite(v).any() else None

    return {"first_half": mean(first), "second_half": mean(second), "change": change, "se": se, "trend": words}


def c2(df: pd.DataFrame, steps_per_epoch: int, metric: str = "frac_pos_test", cid: str = "C2") -> dict:
    starts, premise = late_starts(df)
    per = late_effect(df, metric, starts)
    st = {w: mean_se(per[w].to_numpy()) for w in per.columns}
    mean_late = float(np.mean([abs(m) for m, _, _ in st.values()]))
    _, se, n = mean_se(per.abs().mean(axis=1).to_numpy())
    last = early_epochs(steps_per_epoch)
    early = deltas(df[(df.epoch >= 1) & (df.epoch <= last)], metric).groupby(level="epoch").mean()
    peak = float(early.abs().max().max())

    def decide(level: float) -> str:
        if n < MIN_SEEDS:
            return "inconclusive"
        faded = [abs(m) <= level or abs(m) <= q(Z_SE, k) * s for m, s, k in st.values()]
        return "holds" if np.mean(faded) > 0.5 and mean_late <= C2_RATIO * peak else "fails"

    return _entry(cid, f"mean late |Delta| on {probe_name(metric)} over weights w != 1, each net's late window "
                  f"from {K_LATE:g} x its seed's separation epoch", mean_late, se, n,
                  f"holds if late |Delta| <= {C2_LEVEL} (or within 2 SE of 0) for most weights and the mean late "
                  f"|Delta| <= {C2_RATIO} x the largest early |Delta| (first {EARLY_STEPS} steps); fails otherwise",
                  decide(C2_LEVEL), premise, _threshold("faded level", C2_LEVEL, decide, 0.0, 0.2),
                  {"holds": [None], "fails": [None]},  # a level and a ratio of point estimates
                  largest_early=peak, late_starts={str(k): v for k, v in starts.items()},
                  late_trend=late_trend(df, metric, starts),
                  late_by_weight={f"{w:g}": {"mean": m, "se": s} for w, (m, s, _) in st.items()})


def c2b(control: pd.DataFrame, none: pd.DataFrame) -> dict:
    tenth = {int(s): float(late_window(control.epoch).min()) for s in control.seed.unique()}
    ctl = oriented(late_effect(control, "frac_pos_test", tenth))
    ref = oriented(late_effect(none, "frac_pos_test"))
    value, se, n = mean_se(ctl.to_numpy())
    max_acc = float(control[control.epoch == control.epoch.max()].train_acc.max())
    _, none_premise = late_starts(none)
    premise = {"statement": CLAIMS["C2b"].premise, "met": max_acc < 1.0 and none_premise["met"],
               "value": max_acc, "measure": "highest final training accuracy of a control net",
               "unregularised_nets_separate": none_premise["met"]}
    level = max(C2_LEVEL, float(ref.mean()))

    def decide(k: float) -> str:
        return threshold_verdict(value, se, level, n, k=k)

    return _entry("C2b", "oriented late Delta on S_in (last tenth of training) of the unregularised MLP trained on "
                  "noisy labels it cannot separate", value, se, n,
                  f"holds if it exceeds max({C2_LEVEL}, the unregularised late effect) by 3 SE (t); fails if it is "
                  "below by 3 SE", decide(K_SE), premise, _threshold("SE multiple", K_SE, decide, 0.0, 10.0),
                  {"holds": [K_SE], "fails": [K_SE]}, none_late=float(ref.mean()))


def probe_name(metric: str) -> str:
    """The symbol of a probe column (S_in, S_out, S_noise for the image tasks), else the probe's own name."""
    return PROBE_NAMES.get(metric, metric.removeprefix("frac_pos_"))


def c3(df: pd.DataFrame, steps_per_epoch: int, metrics: tuple[str, ...] = ("frac_pos_other", "frac_pos_noise")) -> dict:
    subs = {}
    for m in metrics:
        subs[f"C1_{probe_name(m)}"] = c1(df, steps_per_epoch, m, "C3")
        subs[f"C2_{probe_name(m)}"] = c2(df, steps_per_epoch, m, "C3")
    late = subs[f"C2_{probe_name(metrics[-1])}"]
    verdicts = {k: v["verdict"] for k, v in subs.items()}
    names = ", ".join(probe_name(m) for m in metrics)
    default = metrics == ("frac_pos_other", "frac_pos_noise")
    return _entry("C3", ("C1 and C2 on S_out (other classes) and S_noise (uniform noise); value: late |Delta| on "
                         "S_noise") if default else f"C1 and C2 on the probe sets {names}; value: late |Delta| on "
                  f"{probe_name(metrics[-1])}",
                  late["value"], late["se"], late["n_seeds"],
                  ("holds if C1 and C2 both hold on S_out and on S_noise; fails if either fails on either") if default
                  else f"holds if C1 and C2 both hold on each of {names}; fails if either fails on one",
                  combine(list(verdicts.values())), late["premise"],
                  late["threshold"], {"holds": [None], "fails": [None]}, sub_verdicts=verdicts,
                  late_trends={k: v["details"].get("late_trend") for k, v in subs.items() if k.startswith("C2_")},
                  values={k: v["value"] for k, v in subs.items()})


def _late_spread(df: pd.DataFrame) -> tuple[pd.Series, dict]:
    starts, premise = late_starts(df)
    per = late_effect(df, "frac_pos_test", starts)
    return per[per.columns.max()] - per[per.columns.min()], premise


def _both(a: dict, b: dict, what: str) -> dict:
    return {"statement": SEPARATES + what, "met": a["met"] and b["met"],
            "value": min(x for x in (a["value"], b["value"]) if x is not None) if a["value"] is not None
            and b["value"] is not None else None, "measure": "lowest final training accuracy (eval mode)",
            "regularised": a, "unregularised": b}


def c4(l2: pd.DataFrame, none: pd.DataFrame) -> dict:
    lam = float(l2.weight_decay.max())
    strong = l2[np.isclose(l2.weight_decay, lam)]
    s_l2, p_l2 = _late_spread(strong)
    s_0, p_0 = _late_spread(none)
    diff, se, n = paired(s_l2, s_0)
    starts = late_starts(strong)[0]
    per_seed = _in_window(strong, starts).pivot_table(index="seed", columns="weight", values="frac_pos_test")
    mono, how = monotone_in_weight(per_seed)

    def decide(k: float) -> str:
        return "fails" if (not mono and n >= MIN_SEEDS) else exceeds_verdict(diff, se, n, k=k)

    return _entry("C4", f"late spread Delta(w_max) - Delta(w_min) with weight decay {lam:g}, minus the unregularised "
                  "one (paired by seed)", diff, se, n,
                  "holds if late F is monotone in w and the spread exceeds the unregularised spread by 3 SE (t); "
                  f"fails if F is not monotone or the excess is shown below {MARGIN} (2 SE)", decide(K_SE),
                  _both(p_l2, p_0, ", with and without weight decay"),
                  _threshold("SE multiple", K_SE, decide, 0.0, 10.0),
                  {"holds": [K_SE, None], "fails": [Z_SE] * len(per_seed.columns)},
                  weight_decay=lam, spread_l2=float(s_l2.mean()), spread_none=float(s_0.mean()), monotone=how)


def _oriented_late(df: pd.DataFrame) -> tuple[pd.Series, dict]:
    starts, premise = late_starts(df)
    return oriented(late_effect(df, "frac_pos_test", starts)), premise


def c5(dropout: pd.DataFrame, none: pd.DataFrame) -> dict:
    (a, pa), (b, pb) = _oriented_late(dropout), _oriented_late(none)
    diff, se, n = paired(a, b)

    def decide(margin: float) -> str:
        return equivalence_verdict(diff, se, n, margin)

    return _entry("C5", "oriented late Delta on S_in with dropout minus without regularisation (paired by seed)",
                  diff, se, n, f"equivalence: holds if |difference| + 2 SE (t) <= {MARGIN}; fails if |difference| - "
                  f"2 SE > {MARGIN}", decide(MARGIN), _both(pa, pb, ", with and without dropout"),
                  _threshold("equivalence margin", MARGIN, decide, 0.0, 0.3), {"holds": [Z_SE], "fails": [Z_SE]},
                  dropout_late=float(a.mean()), none_late=float(b.mean()), dropout=float(dropout.dropout.max()))


def c6(bn: pd.DataFrame, none: pd.DataFrame, steps_per_epoch: int) -> dict:
    (a, pa), (b, pb) = _oriented_late(bn), _oriented_late(none)
    diff, se, n = paired(a, b)
    early = early_effect(bn, early_epochs(steps_per_epoch))
    drop, se_drop, _ = paired(early, a)  # the early effect minus the late one: positive if part is lost

    def decide(k: float) -> str:
        v = exceeds_verdict(diff, se, n, k=k)
        below = exceeds_verdict(drop, se_drop, n, k=k)
        return combine([v, below])

    return _entry("C6", "oriented late Delta on S_in with batch norm minus without regularisation (paired by seed)",
                  diff, se, n, "holds if it exceeds 0 by 3 SE (t) and the batch-norm nets' late effect is below their "
                  f"early effect (first {EARLY_STEPS} steps) by 3 SE; fails if either is shown below {MARGIN} (2 SE)",
                  decide(K_SE), _both(pa, pb, ", with and without batch norm"),
                  _threshold("SE multiple", K_SE, decide, 0.0, 10.0), {"holds": [K_SE, K_SE], "fails": [Z_SE, Z_SE]},
                  batchnorm_late=float(a.mean()), none_late=float(b.mean()), batchnorm_early=float(early.mean()),
                  early_minus_late=drop, early_minus_late_se=se_drop)


def c7(l2: pd.DataFrame, none: pd.DataFrame) -> dict:
    lams = sorted(float(x) for x in l2.weight_decay.unique())
    series, premises = [], []
    for lam in [0.0] + lams:
        s, p = _oriented_late(none if lam == 0.0 else l2[np.isclose(l2.weight_decay, lam)])
        series.append(s)
        premises.append(p)
    steps = [paired(series[i + 1], series[i]) for i in range(1, len(series) - 1)]
    grow, se_grow, n = paired(series[-1], series[1])
    near, se_near, _ = paired(series[1], series[0])
    dips = [d < 0 and -d > q(Z_SE, k) * s for d, s, k in steps]
    premise = {"statement": CLAIMS["C7"].premise, "met": all(p["met"] for p in premises),
               "value": min(p["value"] for p in premises if p["value"] is not None),
               "measure": "lowest final training accuracy (eval mode)",
               "by_lambda": {f"{lam:g}": p["met"] for lam, p in zip([0.0] + lams, premises)}}

    def decide(k: float) -> str:
        if len(lams) < 3 or n < MIN_SEEDS:
            return "inconclusive"
        if any(dips) or grow <= 0:
            return "fails"
        near0 = equivalence_verdict(near, se_near, n)
        if near0 == "fails":
            return "fails"
        return "holds" if grow >= q(k, n) * se_grow and near0 == "holds" else "inconclusive"

    return _entry("C7", "oriented late Delta on S_in at the largest minus the smallest weight decay (paired)",
                  grow, se_grow, n, "holds if the late effect is non-decreasing in lambda (dips within 2 SE), grows by "
                  f"3 SE (t) from the smallest to the largest lambda, and at the smallest lambda is within {MARGIN} "
                  "of lambda = 0 (equivalence, 2 SE); fails if it decreases or the smallest lambda is clearly away "
                  "from lambda = 0 (>= 3 values of lambda)", decide(K_SE), premise,
                  _threshold("SE multiple", K_SE, decide, 0.0, 10.0), {"holds": [K_SE, Z_SE, None], "fails": [None]},
                  late_by_lambda={f"{lam:g}": {"mean": float(s.mean()), "se": mean_se(s.to_numpy())[1]}
                                  for lam, s in zip([0.0] + lams, series)},
                  smallest_minus_none=near, smallest_minus_none_se=se_near)


def c8(sub: pd.DataFrame, none: pd.DataFrame, ratio: float) -> dict:
    w_fix = 1.0 / ratio
    if not np.isclose(sub.weight, w_fix).any():
        return _entry("C8", "", None, None, 0, "", "inconclusive",
                      missing=f"the subsample regime has no runs with the correcting weight 1/r = {w_fix:g}")
    s_sub, p_sub = late_starts(sub)
    s_bal, p_bal = late_starts(none)
    f_sub, f_bal, f_fix = late_F(sub, 1.0, s_sub), late_F(none, 1.0, s_bal), late_F(sub, w_fix, s_sub)
    d1, se1, n1 = paired(f_sub, f_bal)
    d2, se2, n2 = paired(f_fix, f_sub)
    n = min(n1, n2)

    def decide(margin: float) -> str:
        shift = exceeds_verdict(abs(d1), se1, n1)
        same = equivalence_verdict(d2, se2, n2, margin)
        return combine([shift, same])

    # the correction measured for what it is, beside the equivalence verdict: its size in SEs and whether it moves
    # late F back toward the balanced nets' (the correcting direction is the sign of balanced - subsampled)
    toward = bool(np.sign(d2) == -np.sign(d1)) if d1 and d2 else False
    z2 = abs(d2) / se2 if se2 and np.isfinite(se2) and se2 > 0 else float("nan")
    return _entry("C8", f"late F on S_in: subsampled (r = {ratio:g}) minus balanced, both unweighted (paired); "
                  f"beside it, the correction: late F with the weight 1/r = {w_fix:g} minus without (paired)",
                  d1, se1, n, f"holds if subsampling moves late F by 3 SE (t) and the correcting weight 1/r = "
                  f"{w_fix:g} moves it by at most {MARGIN} (equivalence, 2 SE); fails if the correction moves it "
                  f"by more, or subsampling is shown to move it by less than {MARGIN}", decide(MARGIN),
                  _both(p_sub, p_bal, ", balanced and subsampled"),
                  _threshold("equivalence margin", MARGIN, decide, 0.0, 0.3),
                  {"holds": [K_SE, Z_SE], "fails": [Z_SE, Z_SE]},
                  correction_shift=d2, correction_se=se2, correction_in_se=z2,
                  correction_toward_balanced=toward, ratio=ratio,
                  late_F={"balanced": float(f_bal.mean()), "subsampled": float(f_sub.mean()),
                          "subsampled_weighted": float(f_fix.mean())})


# Where early stopping stops, fixed before the study: each net at the epoch of its best weighted validation loss
# (the risk it is trained on) and at the epoch of its best validation accuracy (the earliest of ties)
STOP_RULES = {"weighted validation loss": ("val_loss_weighted", "min"), "validation accuracy": ("val_acc", "max")}


def early_stopped(df: pd.DataFrame, rule: str = "weighted validation loss") -> pd.DataFrame:
    """Per run (seed, weight): F on S_in and test accuracy at the epoch a stopping rule of ``STOP_RULES`` picks."""
    if rule not in STOP_RULES:
        raise ValueError(f"unknown stopping rule {rule!r}; known: {sorted(STOP_RULES)}")
    col, best = STOP_RULES[rule]
    rows = []
    for (s, w), g in df.groupby(["seed", "weight"]):
        g = g.dropna(subset=[col]).sort_values("epoch")
        r = g.loc[g[col].idxmin() if best == "min" else g[col].idxmax()]
        rows.append({"seed": s, "weight": w, "epoch": int(r.epoch), "F": float(r.frac_pos_test),
                     "test_acc": float(r.test_acc) if "test_acc" in r else float("nan")})
    return pd.DataFrame(rows)


def early_stopped_deltas(es: pd.DataFrame) -> pd.DataFrame:
    """Per seed and weight w != 1: Delta between the early-stopped nets of ``early_stopped``."""
    t = es.pivot(index="seed", columns="weight", values="F")
    return t.drop(columns=1.0).sub(t[1.0], axis=0)


def c12(none: pd.DataFrame) -> dict:
    """Under each stopping rule of STOP_RULES: the oriented Delta of the early-stopped nets minus the late one;
    the claim holds only if it holds under both (its verdict says what it rests on)."""
    b, premise = _oriented_late(none)
    starts = late_starts(none)[0]
    late_acc = _in_window(none, starts).groupby("seed").test_acc.mean()
    rules = {}
    for name, (col, _) in STOP_RULES.items():
        if col not in none or none[col].isna().all():
            continue
        es = early_stopped(none, name)
        a = oriented(early_stopped_deltas(es))
        diff, se, n = paired(a, b)
        stop_acc = es.groupby("seed").test_acc.mean()
        cost, cost_se, _ = paired(late_acc, stop_acc)
        rules[name] = {"difference": diff, "se": se, "seeds": n, "verdict": exceeds_verdict(diff, se, n),
                       "early_stopped_effect": float(a.mean()), "median_stop_epoch": float(es.epoch.median()),
                       "test_acc_at_stop": float(stop_acc.mean()), "accuracy_cost": cost,
                       "accuracy_cost_se": cost_se}
    if not rules:
        raise ValueError("no validation metrics to stop early on")
    worst = min(rules, key=lambda r: rules[r]["difference"])

    def decide(k: float) -> str:
        return combine([exceeds_verdict(r["difference"], r["se"], r["seeds"], k=k) for r in rules.values()])

    verdict = decide(K_SE)
    rests = "; ".join(f"{r['verdict']} stopping at the best {name}" for name, r in rules.items())
    first = rules[next(iter(rules))]
    return _entry("C12", "oriented Delta on S_in of each net stopped early minus its late Delta (paired by seed), "
                  f"under each stopping rule ({', '.join('best ' + r for r in rules)}); value: the smaller",
                  rules[worst]["difference"], rules[worst]["se"], rules[worst]["seeds"],
                  "holds if under every stopping rule it exceeds the unregularised late effect by 3 SE (t); fails if "
                  f"under one it is shown below {MARGIN} (2 SE); the test accuracy given up by stopping early is "
                  "reported beside it", verdict, premise, _threshold("SE multiple", K_SE, decide, 0.0, 10.0),
                  {"holds": [K_SE] * len(rules), "fails": [Z_SE] * len(rules)},
                  rests_on=rests, by_stopping_rule=rules, smallest_under=worst,
                  early_stopped_effect=first["early_stopped_effect"], late_effect=float(b.mean()),
                  median_stop_epoch=first["median_stop_epoch"], test_acc_at_stop=first["test_acc_at_stop"],
                  test_acc_late=float(late_acc.mean()), accuracy_cost=first["accuracy_cost"],
                  accuracy_cost_se=first["accuracy_cost_se"])


# ---- the 2-D toy MLP and the theory claims ------------------------------------------------------------------

def c10(toy: pd.DataFrame, steps_per_epoch: int) -> dict:
    last = early_epochs(steps_per_epoch, TOY_EARLY_STEPS)
    t = early_F(toy, last)
    wmax, wmin = t.columns.max(), t.columns.min()
    spread = (t[wmax] - t[wmin]).to_numpy()
    e, se_e, n = mean_se(spread)
    starts, premise = late_starts(toy)
    per = late_effect(toy, "frac_pos_test", starts)
    lmean, lse, _ = mean_se((per[wmax] - per[wmin]).to_numpy())

    def decide(theta: float) -> str:
        early = "inconclusive" if saturated(spread) else threshold_verdict(e, se_e, theta, n)
        late_ok = "inconclusive" if n < MIN_SEEDS else (
            "holds" if abs(lmean) <= C2_LEVEL or abs(lmean) <= q(Z_SE, n) * lse else "fails")
        return combine([early, late_ok])

    return _entry("C10", f"F(w = {wmax:g}) - F(w = {wmin:g}) on the toy's test points averaged over the first "
                  f"{TOY_EARLY_STEPS} steps; value: the late difference", lmean, lse, n,
                  f"holds if the early difference exceeds {C1_SPREAD} by 2 SE (t) and the late one is within "
                  f"{C2_LEVEL} (or 2 SE) of 0; fails if either fails", decide(C1_SPREAD), premise,
                  _threshold("early spread threshold", C1_SPREAD, decide, 0.0, 1.0),
                  {"holds": [Z_SE, None], "fails": [Z_SE, None]},  # the late part is a level or 2 SE: a point rule
                  early_difference=e, early_se=se_e, early_epochs=last, saturated=saturated(spread))


def c9(records: pd.DataFrame, summaries: pd.DataFrame, constants: pd.DataFrame | None = None) -> dict:
    """Fitted against predicted angle constants (``effects.angle_constants``, computed here unless given)."""
    k = angle_constants(records, summaries) if constants is None else constants
    rows = {f"{r.loss}, c = {r.weight:g}": {"predicted_K": r.predicted, "fitted_K": r.fit, "rel_error": r.rel_error,
                                            "final_angle": r.final_angle, "decreasing": bool(r.decreasing)}
            for r in k.itertuples()}
    worst = max(r["rel_error"] for r in rows.values())
    decreasing = all(r["decreasing"] for r in rows.values())

    def decide(rel: float) -> str:
        return "holds" if worst <= rel and decreasing else "fails"

    return _entry("C9", "largest relative error of the fitted angle constant K (theta ~ K / (log t + b), t >= 1e10) "
                  "against the predicted K_c", worst, None, 1,
                  f"holds if every weighting's angle decreases toward 0 and its fitted K is within {C9_REL:.0%} of "
                  "K_c; fails otherwise (deterministic: no seeds)", decide(C9_REL), None,
                  _threshold("relative tolerance", C9_REL, decide, 0.0, 0.5), {"deterministic": True},
                  by_weighting=rows)


def gd_identity(records: pd.DataFrame) -> float:
    """Full-batch GD with integer weights against GD on the duplicated points: the largest relative difference of
    their trajectories over weights and records; nan when a trajectory is not finite (no agreement was measured:
    ``max`` alone would have reported 0)."""
    gd = records[records.method == "gd"] if "method" in records else records.iloc[:0]
    out = 0.0
    for _, g in gd.groupby("weight"):
        wa = np.array(g[~g.duplicate.astype(bool)].sort_values("t").w.tolist(), dtype=float)
        wb = np.array(g[g.duplicate.astype(bool)].sort_values("t").w.tolist(), dtype=float)
        if wa.shape == wb.shape and wa.size:
            rel = np.linalg.norm(wa - wb, axis=1) / np.maximum(np.linalg.norm(wa, axis=1), 1e-300)
            if not np.all(np.isfinite(rel)):
                return float("nan")
            out = max(out, float(np.max(rel)))
    return out


def c11(records: pd.DataFrame, summaries: pd.DataFrame) -> dict:
    """SGD with integer weights against SGD on duplicated points: the same distribution of end directions."""
    sgd = summaries[summaries.method == "sgd"]
    by_weight, values = {}, []
    for w, g in sgd[sgd.weight != 1.0].groupby("weight"):
        a = g[~g.duplicate.astype(bool)].final_angle.to_numpy(float)
        b = g[g.duplicate.astype(bool)].final_angle.to_numpy(float)
        ma, sa, na = mean_se(a)
        mb, sb, nb = mean_se(b)
        rel = (mb - ma) / ma
        se = float(np.hypot(sa, sb)) / ma
        n = min(na, nb)
        by_weight[f"{w:g}"] = {"weighted_final_angle": ma, "duplicated_final_angle": mb, "relative_difference": rel,
                               "relative_se": se, "seeds": n}
        values.append((rel, se, n))
    gd_rel = gd_identity(records)
    shrinking = bool(len(sgd)) and bool((sgd.final_angle > 1e-12).all())
    premise = {"statement": CLAIMS["C11"].premise, "met": shrinking,
               "value": float(sgd.final_angle.min()) if len(sgd) else None,
               "measure": "smallest final angle to the max margin (rad)"}
    worst, decide = equivalent_per_weight(values)
    return _entry("C11", "relative difference of the mean final angle to the max margin: SGD on duplicated points "
                  "minus SGD with the integer weights (largest over weights)", worst[0], worst[1], worst[2],
                  f"equivalence: holds if |relative difference| + 2 SE (t) <= {C11_REL} for every weight; fails if "
                  f"|relative difference| - 2 SE > {C11_REL} for one", decide(C11_REL), premise,
                  _threshold("relative margin", C11_REL, decide, 0.0, 1.0),
                  {"holds": [Z_SE], "fails": [Z_SE] * len(values)}, by_weight=by_weight,
                  gd_identity_relative_difference=gd_rel)


# ---- inside the networks: long runs of homogeneous nets -----------------------------------------------

def inside_window(df: pd.DataFrame) -> tuple[np.ndarray, dict]:
    """(the recorded flow times of the approach window, the premise) of the long runs ``df``."""
    times = np.sort(df.t.unique())
    seps, ends_ok = [], True
    for _, g in df.groupby("config_hash"):
        g = g.sort_values("t")
        sep = separated_from(g.t.to_numpy(), g.train_acc.to_numpy())
        seps.append(np.inf if np.isnan(sep) else sep)
        ends_ok &= bool(np.isclose(g.t.max(), times.max())) and float(g.normalised_margin.iloc[-1]) > 0
    latest = max(seps) if seps else np.inf
    window = times[times >= max(K_LATE * latest, np.e ** 2)] if np.isfinite(latest) else times[:0]
    met = bool(seps) and np.isfinite(latest) and ends_ok and len(window) >= MIN_LATE_POINTS
    return window, {"statement": CLAIMS["N1"].premise, "met": met,
                    "value": float(latest) if np.isfinite(latest) else None,
                    "measure": "latest flow time from which a net stays separated"}


def by_seed_and_t(df: pd.DataFrame, col: str) -> pd.DataFrame:
    """``col`` of the long runs indexed by (seed, t), one column per weight."""
    return df.pivot_table(index=["seed", "t"], columns="weight", values=col)


def angles_by_weight(df: pd.DataFrame) -> tuple[np.ndarray, dict, dict]:
    """(the approach window, the premise, {weight != 1: its angles to the unweighted nets, seeds x t}); no
    tables when the window holds fewer than two times."""
    window, premise = inside_window(df)
    ang = by_seed_and_t(df, "angle_unweighted")
    tables = {w: ang[w].unstack("t") for w in ang.columns if w != 1.0} if len(window) >= 2 else {}
    return window, premise, tables


def asymptote_fit(t: np.ndarray, angle: np.ndarray) -> tuple[float, float]:
    """(a_inf, K) of angle = a_inf + K / log t, least squares over the points given (t > 1): where the angle is
    going, and how fast. a_inf = 0 is the linear theory's 1 / log t; a_inf > 0 a plateau."""
    ok = (t > 1.0) & np.isfinite(angle)
    if ok.sum() < 2:
        return float("nan"), float("nan")
    K, a = np.polyfit(1.0 / np.log(t[ok]), angle[ok], 1)
    return float(a), float(K)


def n1(df: pd.DataFrame) -> dict:
    """Per weight: where the angle to the unweighted net of the same seed is going, a_inf of angle = a_inf +
    K / log t fitted per seed over the approach window, tested against 0 with an equivalence margin."""
    window, premise, tables = angles_by_weight(df)
    by_weight, values = {}, []
    for w, a in tables.items():
        fits = [asymptote_fit(window, a.loc[s, window].to_numpy(float)) for s in a.index]
        m, se, n = mean_se([f[0] for f in fits])
        k_m, k_se, _ = mean_se([f[1] for f in fits])
        start, end = float(a[window[0]].mean()), float(a[window[-1]].mean())
        by_weight[f"{w:g}"] = {"asymptote": m, "se": se, "seeds": n, "K": k_m, "K_se": k_se,
                               "angle_start": start, "angle_end": end, "end_over_start": end / start if start else None,
                               "inverse_log_ratio": float(np.log(window[0]) / np.log(window[-1]))}
        values.append((m, se, n))
    worst, decide = equivalent_per_weight(values)
    return _entry("N1", "asymptotic angle (rad) a_inf between a weighted net's parameter direction and the unweighted "
                  "net's of the same seed: angle = a_inf + K / log t fitted per seed over the approach window "
                  "(farthest from 0 over weights)", worst[0], worst[1], worst[2],
                  f"equivalence: holds if a_inf + 2 SE (t) <= {N1_MARGIN} rad for every weight (the directions meet); "
                  f"fails if a_inf - 2 SE > {N1_MARGIN} for one (a plateau: they settle apart)", decide(N1_MARGIN),
                  premise, _threshold("margin (rad)", N1_MARGIN, decide, 0.0, 0.5),
                  {"holds": [Z_SE], "fails": [Z_SE] * len(values)}, by_weight=by_weight,
                  window=[float(window[0]), float(window[-1])] if len(window) else None)


def n2(df: pd.DataFrame) -> dict:
    """Per weight: |gamma_w - gamma_1| / gamma_1 at the last flow time, gamma the normalised margin; with the
    horizon: the first recorded t from which the equivalence holds at every later one."""
    window, premise = inside_window(df)
    nm = by_seed_and_t(df, "normalised_margin")
    by_weight, values = {}, []

    def gaps_at(t: float) -> list[tuple[float, float, int]]:
        at = nm.xs(t, level="t")
        return [mean_se(((at[w] - at[1.0]).abs() / at[1.0]).to_numpy()) for w in nm.columns if w != 1.0]

    horizon = None
    if len(window):
        last = nm.xs(window[-1], level="t")
        for w in [c for c in nm.columns if c != 1.0]:
            rel = ((last[w] - last[1.0]).abs() / last[1.0]).to_numpy()
            m, se, n = mean_se(rel)
            by_weight[f"{w:g}"] = {"relative_gap": m, "se": se, "seeds": n, "margin_weighted": float(last[w].mean()),
                                   "margin_unweighted": float(last[1.0].mean())}
            values.append((m, se, n))
        times = np.sort(nm.index.get_level_values("t").unique())
        holding = [equivalent_per_weight(gaps_at(t))[1](N2_REL) == "holds" for t in times]
        k = len(holding)
        while k > 0 and holding[k - 1]:
            k -= 1
        horizon = float(times[k]) if k < len(holding) else None
    worst, decide = equivalent_per_weight(values)  # the gaps are >= 0: the farthest is the largest
    return _entry("N2", "relative gap |gamma_w - gamma_1| / gamma_1 of the normalised margins at the last flow time "
                  "(largest over weights)", worst[0], worst[1], worst[2],
                  f"equivalence: holds if the gap + 2 SE (t) <= {N2_REL} for every weight; fails if the gap - 2 SE > "
                  f"{N2_REL} for one; the horizon is the first recorded t from which it holds at every later one",
                  decide(N2_REL), premise, _threshold("relative margin", N2_REL, decide, 0.0, 1.0),
                  {"holds": [Z_SE], "fails": [Z_SE] * len(values)}, by_weight=by_weight, holds_from_t=horizon)


def approach_exponent(t: np.ndarray, angle: np.ndarray) -> float:
    """k in angle ~ K (log t)^k: the least-squares slope of log angle against log log t."""
    ok = (t > 1.0) & (angle > 0) & np.isfinite(angle)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(np.log(t[ok])), np.log(angle[ok]), 1)[0])


def seed_exponents(window: np.ndarray, angles: pd.DataFrame) -> list[float]:
    """``approach_exponent`` over ``window`` for each seed (row) of an angle table (seeds x t)."""
    return [approach_exponent(window, angles.loc[s, window].to_numpy(float)) for s in angles.index]


def n3(df: pd.DataFrame, n1_entry: dict | None = None) -> dict:
    """The rate of the approach: measured only where the directions meet (N1 holds), as the exponent k of
    angle ~ (log t)^k over the approach window, per seed, against -1. Where N1 finds a plateau the claim fails
    as a plateau (there is no approach to give a rate); where N1 cannot tell, neither can this."""
    n1_entry = n1(df) if n1_entry is None else n1_entry
    window, premise, tables = angles_by_weight(df)
    by_weight, values = {}, []
    for w, a in tables.items():
        m, se, n = mean_se(seed_exponents(window, a))
        by_weight[f"{w:g}"] = {"exponent": m, "se": se, "seeds": n}
        values.append((m - N3_EXPONENT, se, n))
    worst, decide = equivalent_per_weight(values)
    plateau = n1_entry["verdict"] == "fails"
    verdict = decide(N3_MARGIN) if n1_entry["verdict"] == "holds" else "fails" if plateau else "inconclusive"
    rule = (f"only where N1 finds the directions meeting: equivalence, holds if |k + 1| + 2 SE (t) <= {N3_MARGIN} for "
            f"every weight, fails if |k + 1| - 2 SE > {N3_MARGIN} for one; where N1 finds a plateau it fails as a "
            "plateau (no approach, no rate); where N1 is inconclusive, inconclusive")
    return _entry("N3", "exponent k of angle ~ (log t)^k over the approach window, minus the linear theory's -1 "
                  "(farthest over weights)", worst[0], worst[1], worst[2], rule, verdict, premise,
                  _threshold("margin on k", N3_MARGIN, decide, 0.0, 3.0) if not plateau else None,
                  {"holds": [Z_SE], "fails": [Z_SE] * len(values)} if not plateau else n1_entry.get("tests"),
                  by_weight=by_weight, plateau=plateau, asymptote=n1_entry["value"], asymptote_se=n1_entry["se"])


def kkt_summary(df: pd.DataFrame) -> dict:
    """The long runs' last records: per weight the mean KKT residual and alignment cos(theta, -grad R), and
    whether every net sits at a KKT point (residual below KKT_POINT): what the paper may call its end states."""
    if "kkt_residual" not in df or df.kkt_residual.isna().all():
        return {}
    last = df.sort_values("t").groupby("config_hash").tail(1)
    out = {f"{w:g}": {"kkt_residual": float(g.kkt_residual.mean()), "kkt_residual_max": float(g.kkt_residual.max()),
                      "alignment": float(g.alignment.mean()), "alignment_min": float(g.alignment.min())}
           for w, g in last.groupby("weight")}
    return {"by_weight": out, "t": float(last.t.max()), "kkt_points": bool((last.kkt_residual < KKT_POINT).all()),
            "threshold": KKT_POINT}


def separation_summary(df: pd.DataFrame, by: str = "variant") -> pd.DataFrame:
    """Per variant of a study: its nets, how many separate, the lowest final training accuracy (eval mode), the
    median and latest separation epochs, whether every seed has a late window (the premise), and the mean
    final test accuracy."""
    rows = []
    for v, g in df.groupby(by, sort=False):
        sep = separation(g)
        _, premise = late_starts(g)
        last = g[g.epoch == g.epoch.max()]
        rows.append({by: v, "nets": len(sep), "separated": int(sep.separation_epoch.notna().sum()),
                     "lowest_final_train_acc": float(sep.final_train_acc.min()),
                     "median_separation_epoch": float(sep.separation_epoch.median()),
                     "latest_separation_epoch": float(sep.separation_epoch.max()),
                     "epochs": float(g.epoch.max()), "premise_met": premise["met"],
                     "final_test_acc": float(last.test_acc.mean()) if "test_acc" in last else float("nan")})
    return pd.DataFrame(rows)


def decidable(sep: pd.DataFrame, by: str = "variant", baselines: dict | None = None) -> list[str]:
    """The network claims a study's records can decide: every regime a claim reads is there and meets the
    separation premise (``separation_summary``); ``baselines``: regime -> the matched regime it is compared with
    instead of none."""
    met = {str(v).split()[0]: bool(m) for v, m in zip(sep[by], sep.premise_met)}
    out = []
    for c in CLAIMS.values():
        regimes = [e.split(":", 1)[1] for e in c.experiments if e.startswith("study:")]
        if baselines and len(regimes) == 2 and regimes[1] == "none" and regimes[0] in baselines:
            regimes[1] = baselines[regimes[0]]
        if regimes and all(met.get(r, False) for r in regimes if r != "noise") and \
                ("noise" not in regimes or "noise" in met):
            out.append(c.id)
    return out
