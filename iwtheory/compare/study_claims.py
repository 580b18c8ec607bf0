"""The network claims (C1-C8, C12, C2b) of any experiment's records: the CPU study's, a researcher's own.

``network_claims`` reads the regimes by name (``none`` the unregularised baseline; ``l2``, ``dropout``,
``batchnorm``, ``noise``, ``subsample`` the regimes the claims compare with it) and the probe sets from the
record columns (``frac_pos_test`` is S_in; every other ``frac_pos_<probe>`` is off-distribution, for C3). A
claim whose regime, probe or statistic is absent is ``not applicable`` and says why; one whose records cannot
give its statistic is ``inconclusive`` and says why.

The weighting axis: class weights are read as they are (w, the unweighted partner w = 1). A sweep of powers p
of per-example weights is read on the same axis as w = e^p, which keeps the order of the weightings and the
partner (p = 0, w = 1), so "monotone in w" means monotone in p and sign(log w) = sign(p); every entry then
says so. K-class records hold each class's share (``frac_class<k>_<probe>``) and no binary F: the claims
whose statistic is F say they do not apply.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from iwtheory.compare import claims as C

NOT_APPLICABLE = "not applicable"
BASELINE = "none"
# the unregularised nets of every seed on one draw of the data: beside ``none`` (each seed its own draw) it splits
# the seeds' spread of C1, C2, C3 and C12 into the part the data draw adds and the rest
ONE_DRAW = "one_draw"
DRAW_CLAIMS = ("C1", "C2", "C3", "C12")
COMPARED = {"C2b": "noise", "C4": "l2", "C5": "dropout", "C6": "batchnorm", "C7": "l2", "C8": "subsample"}
NETWORK = ("C1", "C2", "C2b", "C3", "C4", "C5", "C6", "C7", "C8", "C12")


def not_applicable(cid: str, why: str) -> dict:
    """A claim that this experiment cannot speak to, with the reason."""
    return {"id": cid, "statement": C.CLAIMS[cid].statement, "statistic": "", "value": None, "se": None,
            "n_seeds": 0, "rule": "", "verdict": NOT_APPLICABLE,
            "premise": {"statement": C.CLAIMS[cid].premise, "met": False, "value": None}, "threshold": None,
            "details": {"missing": f"not applicable: {why}"}}


def unusable(cid: str, e: Exception) -> dict:
    """Records that cannot give the statistic (every net of a weight diverged, no unweighted runs)."""
    entry = not_applicable(cid, "")
    entry.update(verdict="inconclusive", details={"missing": f"no usable records ({type(e).__name__}: {e})"})
    return entry


def weight_axis(df: pd.DataFrame) -> tuple[pd.DataFrame, str | None]:
    """(records with a positive ``weight`` column, a note on how it was read, or None for class weights)."""
    if "power" in df and df.power.notna().any():
        return df.assign(weight=np.exp(df.power.astype(float))), \
            "weighting: powers p of per-example weights, read on the weight axis as w = e^p (p = 0 is w = 1)"
    return df, None


def measure(cid: str, fn, *args) -> dict:
    try:
        return fn(*args)
    except (ValueError, KeyError, IndexError, ZeroDivisionError) as e:
        return unusable(cid, e)


def classes_in(df: pd.DataFrame) -> int:
    """How many classes records are of: K for the ``frac_class<k>_<probe>`` shares of a K-class task, else 2."""
    ks = {m.group(1) for c in df.columns if (m := re.match(r"frac_class(\d+)_", c)) and df[c].notna().any()}
    return len(ks) if ks else 2


def draw_part(entry: dict, one_draw: dict) -> dict:
    """The data draw's part of a claim's SE: the claim measured on every seed's own draw (``entry``) and on one
    draw for every seed (``one_draw``). Their variances over seeds are the total and the within-draw one; the
    between-draw share of the variance is 1 - within / total (0 when the one draw's spread is the larger)."""
    se, se1 = entry.get("se"), one_draw.get("se")
    share = None
    if se and se1 is not None and np.isfinite(se) and np.isfinite(se1) and se > 0:
        share = float(max(0.0, 1.0 - (se1 / se) ** 2))
    return {"value_own_draws": entry.get("value"), "se_own_draws": se, "value_one_draw": one_draw.get("value"),
            "se_one_draw": se1, "verdict_one_draw": one_draw.get("verdict"), "between_draw_variance_share": share}


def network_claims(df: pd.DataFrame, steps_per_epoch: int, n_classes: int | None = None,
                   subsample_ratio: float | None = None, baselines: dict | None = None) -> dict[str, dict]:
    """Every network claim's entry for one experiment's records ``df`` (one row per run and evaluated epoch);
    ``n_classes`` defaults to what the records are of (``classes_in``). ``baselines``: regime -> the regime its
    claims compare with (a matched unregularised arm, the config's ``baseline``); ``none`` where not given."""
    n_classes = classes_in(df) if n_classes is None else n_classes
    if "vector" in df and df.vector.notna().any():
        why = ("explicit weight vectors have no order for the claims' weight axis; each vector's effect Delta against "
               "'uniform' is in the study's effects")
        return {cid: not_applicable(cid, why) for cid in NETWORK}
    if n_classes != 2:
        why = (f"a {n_classes}-class task: its statistic is the positive class's share F of a binary task; the "
               "records hold each class's share (frac_class<k>_<probe>), whose effects Delta_k the study reports")
        return {cid: not_applicable(cid, why) for cid in NETWORK}
    if df.empty:
        return {cid: not_applicable(cid, "no records") for cid in NETWORK}
    df, note = weight_axis(df)
    regimes = set(df.regime)
    out: dict[str, dict] = {}
    if BASELINE not in regimes:
        why = f"no {BASELINE} regime (the unregularised baseline every network claim compares with)"
        return {cid: not_applicable(cid, why) for cid in NETWORK}
    if "frac_pos_test" not in df:
        why = "no probe set named test (S_in, the task's own test inputs)"
        return {cid: not_applicable(cid, why) for cid in NETWORK}
    none = C.variant(df, BASELINE)
    mixed = [k for k in ("lr", "dropout") if k in none and none[k].nunique() > 1]
    if mixed:  # the claims pair runs by seed and weight: two settings per pair would be averaged silently
        why = (f"the {BASELINE} regime holds several values of {', '.join(mixed)}; the claims compare one setting "
               "per regime: give each its own regime")
        return {cid: not_applicable(cid, why) for cid in NETWORK}
    others = tuple(c for c in df.columns if c.startswith("frac_pos_") and c != "frac_pos_test"
                   and df[c].notna().any())
    has_val = "val_loss_weighted" in none and none.val_loss_weighted.notna().any()

    def baseline_claims(base: pd.DataFrame) -> dict[str, dict]:
        got = {"C1": measure("C1", C.c1, base, steps_per_epoch), "C2": measure("C2", C.c2, base, steps_per_epoch)}
        got["C3"] = measure("C3", C.c3, base, steps_per_epoch, others) if others else \
            not_applicable("C3", "no probe set besides test (off-distribution inputs)")
        got["C12"] = measure("C12", C.c12, base) if has_val else \
            not_applicable("C12", "no validation split (val_fraction = 0)")
        return got

    out.update(baseline_claims(none))
    if ONE_DRAW in regimes:
        for cid, e in baseline_claims(C.variant(df, ONE_DRAW)).items():
            if out[cid]["verdict"] != NOT_APPLICABLE:
                out[cid]["details"]["data_draw"] = draw_part(out[cid], e)
    baselines = baselines or {}
    for cid, reg in COMPARED.items():
        if reg not in regimes:
            out[cid] = not_applicable(cid, f"no {reg} regime")
            continue
        base_name = baselines.get(reg) or BASELINE
        if base_name not in regimes:
            out[cid] = not_applicable(cid, f"no {base_name} regime (the matched baseline of {reg})")
            continue
        other, base = C.variant(df, reg), C.variant(df, base_name)
        if cid == "C6":
            out[cid] = measure(cid, C.c6, other, base, steps_per_epoch)
        elif cid == "C8":
            out[cid] = measure(cid, C.c8, other, base, float(subsample_ratio)) if subsample_ratio else \
                not_applicable(cid, "the subsample regime's ratio of kept positives is not known")
        else:
            out[cid] = measure(cid, {"C2b": C.c2b, "C4": C.c4, "C5": C.c5, "C7": C.c7}[cid], other, base)
        if out[cid]["verdict"] != NOT_APPLICABLE:
            out[cid]["details"]["baseline"] = base_name
    if note:
        for e in out.values():
            e["details"]["weight_axis"] = note
    return {cid: out[cid] for cid in NETWORK}


def weighting_column(df: pd.DataFrame) -> tuple[str, object]:
    """(the column that names each run's weighting, the value of its unweighted partner)."""
    if "power" in df and df.power.notna().any():
        return "power", 0.0
    if "vector" in df and df.vector.notna().any():
        return "vector", "uniform"
    if "class_weight" in df and df.class_weight.notna().any():
        uniform = [v for v in df.class_weight.dropna().unique() if len(set(str(v).split(":"))) == 1]
        if not uniform:
            raise ValueError("no run with a uniform class-weight vector (the unweighted partner)")
        return "class_weight", uniform[0]
    return "weight", 1.0


def share_effects(df: pd.DataFrame) -> pd.DataFrame:
    """Delta of every predicted-share column (``frac_pos_<probe>``, ``frac_class<k>_<probe>``) against the
    unweighted partner of the same seed, per regime, weighting and epoch: mean over seeds, SE and seeds."""
    col, base = weighting_column(df)
    shares = [c for c in df.columns if c.startswith(("frac_pos_", "frac_class")) and df[c].notna().any()]
    rows = []
    for regime, g in df.groupby("regime"):
        for share in shares:
            t = g.pivot_table(index=["seed", "epoch"], columns=col, values=share, aggfunc="first")
            if base not in t.columns:
                continue
            d = t.drop(columns=base).sub(t[base], axis=0)
            for w in d.columns:
                by = d[w].dropna().groupby(level="epoch")
                for epoch, v in by:
                    n = len(v)
                    rows.append({"regime": regime, col: w, "share": share, "epoch": epoch, "delta": float(v.mean()),
                                 "se": float(v.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan"), "seeds": n})
    return pd.DataFrame(rows)
