"""`iwtheory inside`: long runs of homogeneous nets on the 2-D toy, recorded along gradient-flow time.

One run per (weight, seed): at every point of a log-spaced grid of flow times t, its risk, training accuracy,
parameter norm, normalised margin min_n y_n f(x_n) / |theta|^L, share of positives on the probe sets (test
points, noise points) and the angle between its parameter direction and that of the unweighted net of the same
seed (same initialisation) at the same t. All nets of a config train together (``iwtheory.nets.longrun``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from iwtheory.runs.config import ConfigError, check_distinct, check_kwargs
from iwtheory.runs.locks import hold_runs
from iwtheory.runs.records import Run, check_out, mark_quick
from iwtheory.theory import seeds
from iwtheory.theory.data import MAX_POINTS, bl_toy
from iwtheory.theory.windows import log_grid

RULES = ("constant", "loss_scaled")


@dataclass
class InsideConfig:
    """A sweep of long runs: weights x seeds of one small homogeneous ReLU net on the 2-D toy."""

    name: str
    description: str = ""
    data: dict = field(default_factory=lambda: {"n_per_class": 20, "seed": 0})
    weights: list[float] = field(default_factory=lambda: [0.0625, 1.0, 16.0])
    seeds: list[int] = field(default_factory=lambda: list(range(10)))
    hidden: list[int] = field(default_factory=lambda: [16])
    init_scale: float = 1.0
    rule: str = "loss_scaled"
    eta: float = 1e-3
    t_max: float = 1e60
    n_records: int = 40
    max_steps: int = 200_000
    n_test: int = 400
    noise_count: int = 200
    check_t: float = 20.0     # flow time at which the step rule is checked against small fixed steps
    check_lr: float = 0.01

    def validate(self) -> None:
        def need(ok: bool, what: str):
            if not ok:
                raise ConfigError(f"{self.name}: {what}")

        need(bool(self.name), "name must not be empty")
        need(1.0 in self.weights, "weights must include 1 (the unweighted nets the others are compared with)")
        need(all(isinstance(w, (int, float)) and 1e-6 <= w <= 1e6 for w in self.weights),
             f"weights must be numbers in [1e-6, 1e6]; got {self.weights}")
        need(len(self.seeds) > 0 and all(isinstance(s, int) and 0 <= s < 2**31 for s in self.seeds),
             "seeds must be integers in [0, 2^31)")
        need(0 < len(self.hidden) <= 4 and all(isinstance(h, int) and 1 <= h <= 1024 for h in self.hidden),
             f"hidden must be 1 to 4 widths in [1, 1024]; got {self.hidden}")
        need(self.rule in RULES, f"rule must be one of {RULES}; got {self.rule!r}")
        need(1e-9 <= self.eta <= 1 and 1e-9 <= self.check_lr <= 1, "eta and check_lr must be in [1e-9, 1]")
        need(self.check_t / self.check_lr <= self.max_steps, f"the flow check takes check_t / check_lr = "
             f"{self.check_t / self.check_lr:.3g} fixed steps, more than max_steps = {self.max_steps}")
        need(isinstance(self.data, dict) and "bias" not in self.data,
             "data must be a table of the 2-D toy's settings (bl_toy's, its bias feature fixed)")
        check_kwargs(bl_toy, self.data, f"{self.name}: data")
        n = self.data.get("n_per_class", 50)
        need(1 <= n <= MAX_POINTS, f"data.n_per_class must lie in [1, {MAX_POINTS}]; got {n}")
        need(1 < self.t_max <= 1e120 and 1 < self.check_t < self.t_max, "need 1 < check_t < t_max <= 1e120")
        need(1 <= self.n_records <= 1000 and 1 <= self.max_steps <= 10**8, "n_records in [1, 1000], max_steps in "
             "[1, 1e8]")
        need(0 < self.init_scale <= 100, "init_scale must be in (0, 100]")
        need(1 <= self.n_test <= 10**5 and 0 <= self.noise_count <= 10**5, "n_test, noise_count out of range")
        check_distinct(self.name, self.cells(), "weight or seed")

    def cells(self) -> list[dict]:
        """One resolved config per net."""
        base = dict(experiment=self.name, kind="inside", dataset="bl_toy", data=self.data, hidden=self.hidden,
                    init_scale=self.init_scale, rule=self.rule, eta=self.eta, t_max=self.t_max,
                    n_records=self.n_records, max_steps=self.max_steps, n_test=self.n_test,
                    noise_count=self.noise_count)
        return [dict(base, weight=float(w), seed=int(s)) for w, s in itertools.product(self.weights, self.seeds)]


def grid(cell: dict) -> np.ndarray:
    """The flow times a run is recorded at: 0 and ``n_records`` log-spaced points in [1, t_max]."""
    return log_grid(float(cell["t_max"]), int(cell["n_records"]), t_min=1.0)


def _data(cfg: InsideConfig):
    # the toy's constant feature stands in for a bias: the net stays homogeneous in its parameters
    train = bl_toy(bias=True, **cfg.data)
    test = bl_toy(bias=True, **{**cfg.data, "seed": seeds.int_seed(cfg.data.get("seed", 0), "toy_test"),
                                "n_per_class": max(1, cfg.n_test // 2)})
    rng = seeds.rng(cfg.data.get("seed", 0), "toy_noise")
    lo, hi = train.X[:, :2].min(0), train.X[:, :2].max(0)
    span = hi - lo
    noise = np.c_[rng.uniform(lo - span, hi + span, size=(cfg.noise_count, 2)), np.ones(cfg.noise_count)]
    return train, test, noise


def run_inside(cfg: InsideConfig, out: str | Path = "runs", progress: bool = True, wait: float = 0.0) -> list[Run]:
    """Train every net of ``cfg`` together (unless all are done) and write one run per net."""
    from iwtheory.nets.longrun import angle_rows, flow_agreement, train_long

    out = check_out(out)
    cells = cfg.cells()
    runs = [Run(out, c) for c in cells]
    if all(r.finished() for r in runs):
        return runs
    train, test, noise = _data(cfg)
    ts = grid(cells[0])
    with hold_runs(out, [r.hash for r in runs], wait=wait):
        res = train_long(train.X, train.y, [c["weight"] for c in cells], [c["seed"] for c in cells],
                         hidden=cfg.hidden, t_grid=ts, eta=cfg.eta, rule=cfg.rule, init_scale=cfg.init_scale,
                         max_steps=cfg.max_steps, probes={"test": test.X, "noise": noise})
        index = {(c["weight"], c["seed"]): k for k, c in enumerate(cells)}
        partner = np.array([index[(1.0, c["seed"])] for c in cells])
        ang = angle_rows(res.direction, partner)
        checks = {w: flow_agreement(train.X, train.y, w, cfg.seeds[0], cfg.hidden, cfg.check_t, cfg.eta,
                                    cfg.check_lr, cfg.init_scale, max_steps=cfg.max_steps) for w in cfg.weights}
        for k, (run, c) in enumerate(zip(runs, cells)):
            if run.done:
                continue
            run.start()
            mark_quick(cfg, run)
            reached = int(res.reached[k])
            rows = []
            for g in range(reached):
                rows.append({"t": float(ts[g]), "t_reached": float(res.t[k, g]), "step": int(res.steps[k, g]),
                             "risk": float(res.risk[k, g]), "train_acc": float(res.train_acc[k, g]),
                             "param_norm": float(res.norm[k, g]),
                             "normalised_margin": float(res.normalised_margin[k, g]),
                             "alignment": float(res.alignment[k, g]), "kkt_residual": float(res.kkt_residual[k, g]),
                             "angle_unweighted": float(ang[k, g]),
                             "frac_pos_test": float(res.frac_pos["test"][k, g]),
                             "frac_pos_noise": float(res.frac_pos["noise"][k, g])})
            run.log(rows)
            run.write_summary({**run.identity, "reached": reached, "grid_points": len(ts),
                               "diverged": bool(res.diverged[k]),
                               "final_direction": res.direction[k, max(reached - 1, 0)],
                               "flow_check_angle": checks[c["weight"]], "flow_check_t": cfg.check_t,
                               "widths": [int(train.X.shape[1]), *cfg.hidden, 1], "points": int(len(train.y)),
                               "steps": int(np.nanmax(res.steps[k])),
                               "stopped": "end of grid" if reached == len(ts) else
                               ("diverged" if res.diverged[k] else "step budget")})
            run.finish()  # a net stopped short keeps the grid points it reached; N1-N3's premise then fails
    return runs
