"""Which records a run must hold: its schedule of epochs (CNN runs) or times (theory runs).

``done`` is written only when a run's metrics hold every scheduled point exactly once, and the
reports check the same; both read the schedule from here, computed from the run's config alone.
"""

from __future__ import annotations

import math

import numpy as np

from iwtheory.theory.windows import late_start, log_grid


def log_epochs(epochs: int, dense: int, points: int) -> list[int]:
    """Every epoch up to ``dense``, then ``points`` log-spaced epochs up to ``epochs`` (always included)."""
    out = set(range(0, min(dense, epochs) + 1))
    if epochs > dense:
        out |= set(np.unique(np.round(np.geomspace(max(dense, 1), epochs, points))).astype(int).tolist())
    out.add(epochs)
    return sorted(out)


def tail_epochs(epochs: int, points: int) -> list[int]:
    """``points`` evenly spaced epochs over the late window (``theory.windows``: the last tenth of training),
    ending at ``epochs``."""
    if points <= 0:
        return []
    return sorted(set(np.round(np.linspace(late_start(0, epochs), epochs, points)).astype(int).tolist()))


def train_epochs(cfg: dict) -> tuple[list[int], list[int]]:
    """(evaluated epochs, epochs that also save features) of a CNN run's resolved config."""
    record = log_epochs(cfg["epochs"], 0, cfg["record_points"])
    evals = (set(log_epochs(cfg["epochs"], cfg["eval_dense"], cfg["eval_points"])) | set(record)
             | set(tail_epochs(cfg["epochs"], cfg.get("eval_tail", 0))))
    return sorted(evals), record


def lr_factor(done: int, epochs: int, decay: float) -> float:
    """The multiple of the learning rate for the epoch after ``done`` epochs: 1, then over the last ``decay``
    share of the ``epochs`` (rounded to whole epochs, D of them) a linear fall, (epochs - done) / D, reaching
    1 / D in the last epoch. ``decay = 0``: constant."""
    span = decay_epochs(epochs, decay)
    if span <= 0:
        return 1.0
    return min(1.0, (epochs - done) / span)


def decay_epochs(epochs: int, decay: float) -> int:
    """How many of the last ``epochs`` the learning rate falls over (``decay`` of them, rounded); 0: constant."""
    return int(round(decay * epochs))


class NoSchedule(ValueError):
    """A run of a kind this package does not schedule (records of another tool)."""


class ScheduleError(ValueError):
    """A config whose schedule fields are missing, of the wrong type or out of range."""


_FIELDS = {"train": {"epochs": (int, 1, 10**7), "record_points": (int, 0, 10**4), "eval_dense": (int, 0, 10**7),
                     "eval_points": (int, 0, 10**5), "eval_tail": (int, 0, 10**5)},
           "flow": {"t_max": (float, 1e-12, 1e300), "n_records": (int, 1, 10**6)},
           "gd": {"steps": (int, 1, 10**12), "n_records": (int, 1, 10**6)},
           "inside": {"t_max": (float, 1.000001, 1e300), "n_records": (int, 1, 10**6)}}
_OPTIONAL = {"eval_tail": 0}


def _checked(cfg: dict, fields: dict) -> None:
    for k, (kind, lo, hi) in fields.items():
        v = cfg.get(k, _OPTIONAL.get(k))
        ok = not isinstance(v, bool) and isinstance(v, (int, float) if kind is float else int)
        if not ok or not (lo <= v <= hi):
            raise ScheduleError(f"{k} = {v!r} is not {'an integer' if kind is int else 'a number'} in "
                                f"[{lo:g}, {hi:g}]")


def scheduled(cfg: dict) -> tuple[str, np.ndarray]:
    """(key, values): the metrics key a run is recorded by and every value it must hold once.

    The config comes from a file: its schedule fields are checked for type and range first (ScheduleError),
    so a damaged config is named instead of allocating or failing somewhere inside numpy."""
    kind = cfg.get("kind")
    if kind == "train":
        _checked(cfg, _FIELDS["train"])
        return "epoch", np.asarray(train_epochs(cfg)[0], dtype=float)
    if kind == "theory":
        method = "flow" if cfg.get("method") == "flow" else "gd"
        _checked(cfg, _FIELDS[method])
        if method == "flow":
            return "t", log_grid(cfg["t_max"], cfg["n_records"], t_min=min(1e-2, cfg["t_max"] / 10))
        return "t", log_grid(cfg["steps"], cfg["n_records"], integer=True).astype(float)
    if kind == "inside":  # long runs of homogeneous nets, recorded at a grid of flow times
        _checked(cfg, _FIELDS["inside"])
        return "t", log_grid(cfg["t_max"], cfg["n_records"], t_min=1.0)
    raise NoSchedule(f"a run of kind {kind!r} has no known schedule")


def schedule_gaps(cfg: dict, values) -> str:
    """'' when ``values`` (a run's recorded key values, in file order) hold every scheduled point once;
    otherwise what is missing or repeated, in words."""
    key, want = scheduled(cfg)
    values = list(values)
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)]
    if bad:
        return f"{len(bad)} record(s) whose {key} is not a finite number (first {bad[0]!r})"
    have = np.asarray(sorted(float(v) for v in values), dtype=float)
    if cfg.get("kind") == "inside":  # a long run may stop at its step budget: it must hold a prefix of its grid
        want = want[:max(len(have), 1)]
    # flow times pass through log1p/expm1, so they are compared to a relative 1e-9
    same = len(have) == len(want) and np.allclose(have, want, rtol=1e-9, atol=0)
    if same:
        return ""
    uniq, counts = np.unique(have, return_counts=True)
    repeated = uniq[counts > 1]
    missing = [w for w in want if not np.any(np.isclose(have, w, rtol=1e-9, atol=0))]
    parts = []
    if len(missing):
        parts.append(f"{len(missing)} scheduled {key}(s) missing (first {missing[:3]})")
    if len(repeated):
        parts.append(f"{key}(s) {repeated[:3].tolist()} recorded more than once")
    extra = [h for h in uniq if not np.any(np.isclose(want, h, rtol=1e-9, atol=0))]
    if extra:
        parts.append(f"unscheduled {key}(s) {extra[:3]}")
    return "; ".join(parts) or f"{len(have)} records for {len(want)} scheduled {key}s"
