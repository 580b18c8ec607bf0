"""Which records a run must hold: its schedule of epochs (CNN runs) or times (theory runs).

``done`` is written only when a run's metrics hold every scheduled point exactly once, and the
reports check the same; both read the schedule from here, computed from the run's config alone.
"""

from __future__ import annotations

import numpy as np


def log_epochs(epochs: int, dense: int, points: int) -> list[int]:
    """Every epoch up to ``dense``, then ``points`` log-spaced epochs up to ``epochs`` (always included)."""
    out = set(range(0, min(dense, epochs) + 1))
    if epochs > dense:
        out |= set(np.unique(np.round(np.geomspace(max(dense, 1), epochs, points))).astype(int).tolist())
    out.add(epochs)
    return sorted(out)


def tail_epochs(epochs: int, points: int) -> list[int]:
    """``points`` evenly spaced epochs over the last tenth of training (the 'late' window), ending at ``epochs``."""
    if points <= 0:
        return []
    return sorted(set(np.round(np.linspace(epochs - epochs / 10, epochs, points)).astype(int).tolist()))


def train_epochs(cfg: dict) -> tuple[list[int], list[int]]:
    """(evaluated epochs, epochs that also save features) of a CNN run's resolved config."""
    record = log_epochs(cfg["epochs"], 0, cfg["record_points"])
    evals = (set(log_epochs(cfg["epochs"], cfg["eval_dense"], cfg["eval_points"])) | set(record)
             | set(tail_epochs(cfg["epochs"], cfg.get("eval_tail", 0))))
    return sorted(evals), record


def scheduled(cfg: dict) -> tuple[str, np.ndarray]:
    """(key, values): the metrics key a run is recorded by and every value it must hold once."""
    from iwtheory.theory.dynamics import log_grid

    kind = cfg.get("kind")
    if kind == "train":
        return "epoch", np.asarray(train_epochs(cfg)[0], dtype=float)
    if kind == "theory":
        if cfg["method"] == "flow":
            return "t", log_grid(cfg["t_max"], cfg["n_records"], t_min=min(1e-2, cfg["t_max"] / 10))
        return "t", log_grid(cfg["steps"], cfg["n_records"], integer=True).astype(float)
    raise ValueError(f"a run of kind {kind!r} has no known schedule")


def schedule_gaps(cfg: dict, values) -> str:
    """'' when ``values`` (a run's recorded key values, in file order) hold every scheduled point once;
    otherwise what is missing or repeated, in words."""
    key, want = scheduled(cfg)
    have = np.asarray(sorted(float(v) for v in values), dtype=float)
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
