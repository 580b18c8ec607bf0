"""`iwtheory theory CONFIG.toml`: sweeps datasets x weights x losses x depths x methods x seeds."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from iwtheory.runs.config import ConfigError
from iwtheory.runs.records import Run
from iwtheory.theory import asymptotics, data, dynamics, losses
from iwtheory.theory.checks import DegenerateSupportError, class_weights
from iwtheory.theory.maxmargin import max_margin

METHODS = ("flow", "gd", "sgd")


@dataclass
class TheoryConfig:
    """One theory experiment; ``weights`` are the positive class's weight (negatives weigh 1)."""

    name: str
    description: str = ""
    dataset: str = "bl_toy"
    data: dict = field(default_factory=dict)
    weights: list[float] = field(default_factory=lambda: [1.0])
    losses: list[str] = field(default_factory=lambda: ["logistic"])
    poly_alpha: float = 1.0
    depths: list[int] = field(default_factory=lambda: [1])
    methods: list[str] = field(default_factory=lambda: ["flow"])
    seeds: list[int] = field(default_factory=lambda: [0])   # initialisation and SGD order
    t_max: float = 1e100      # gradient flow horizon
    steps: int = 10_000       # GD / SGD steps
    lr: float = 0.1
    batch_size: int = 1       # SGD only
    init_scale: float = 0.0   # depth 1
    deep_init_scale: float = 0.1
    widths: list[int] = field(default_factory=list)  # hidden widths; empty means d each
    balanced: bool = False
    n_records: int = 100

    def validate(self) -> None:
        if self.dataset not in data.GENERATORS:
            raise ConfigError(f"{self.name}: unknown dataset {self.dataset!r}; choose from {sorted(data.GENERATORS)}")
        for m in self.methods:
            if m not in METHODS:
                raise ConfigError(f"{self.name}: unknown method {m!r}; choose from {METHODS}")
        for ls in self.losses:
            losses.get_loss(ls, self.poly_alpha)
        if not self.weights or any(not (w > 0 and np.isfinite(w)) for w in self.weights):
            raise ConfigError(f"{self.name}: weights must be a non-empty list of positive numbers; got {self.weights}")
        if any(dep < 1 for dep in self.depths):
            raise ConfigError(f"{self.name}: depths must be >= 1; got {self.depths}")

    def cells(self) -> list[dict]:
        """The sweep's cells: one resolved config per run."""
        out = []
        for w, ls, dep, meth, seed in itertools.product(self.weights, self.losses, self.depths,
                                                        self.methods, self.seeds):
            cell = dict(experiment=self.name, kind="theory", dataset=self.dataset, data=self.data,
                        weight=w, loss=ls, depth=dep, method=meth, seed=seed, n_records=self.n_records,
                        init_scale=self.init_scale if dep == 1 else self.deep_init_scale,
                        balanced=self.balanced, widths=self.widths[: dep - 1] if dep > 1 else [])
            if ls == "polynomial":
                cell["poly_alpha"] = self.poly_alpha
            if meth == "flow":
                cell["t_max"] = self.t_max
            else:
                cell.update(steps=self.steps, lr=self.lr)
                if meth == "sgd":
                    cell["batch_size"] = self.batch_size
            out.append(cell)
        return out


def run_cell(cell: dict, ds: data.Dataset) -> tuple[list[dict], dict]:
    """Train one cell; return its metrics rows and its summary (with the asymptotic prediction)."""
    c = class_weights(ds.y, cell["weight"])
    loss = losses.get_loss(cell["loss"], cell.get("poly_alpha", 1.0))
    mm = ds.svm if ds.svm is not None else max_margin(ds.X, ds.y)
    common = dict(weights=c, loss=loss, depth=cell["depth"], widths=cell["widths"] or None,
                  init_scale=cell["init_scale"], balanced=cell["balanced"], seed=cell["seed"],
                  n_records=cell["n_records"], w_hat=mm.w)
    if cell["method"] == "flow":
        traj = dynamics.gradient_flow(ds.X, ds.y, t_max=cell["t_max"], **common)
        lr = 1.0
    else:
        traj = dynamics.gradient_descent(ds.X, ds.y, lr=cell["lr"], steps=cell["steps"],
                                         batch_size=cell.get("batch_size"), **common)
        lr = cell["lr"]
    rows = traj.records()
    summary = dict(experiment=cell["experiment"], weight=cell["weight"], loss=cell["loss"],
                   depth=cell["depth"], method=cell["method"], seed=cell["seed"],
                   w_hat=mm.w, margin=mm.margin, support=mm.support, kkt_residual=mm.kkt_residual,
                   final_t=float(traj.t[-1]), final_angle=float(traj.angle[-1]), final_w=traj.w[-1])
    # The prediction holds for exponential tails and the linear model trained by GD or flow.
    if loss.tail == "exponential" and cell["depth"] == 1 and cell["method"] != "sgd":
        try:
            off = asymptotics.asymptotic_offset(ds.X, ds.y, c, lr=lr, mm=mm)
        except DegenerateSupportError as e:
            summary["prediction_error"] = str(e)
        else:
            summary.update(offset=off.offset, angle_constant=off.angle_constant, determined=off.determined)
            pred = off.predicted_angle(np.maximum(traj.t, 1.0))
            for r, p, t in zip(rows, pred, traj.t):
                if t >= 1.0:
                    r["predicted_angle"] = float(p)
    return rows, summary


def run_theory(cfg: TheoryConfig, out: str | Path = "runs", progress: bool = True) -> list[Run]:
    """Run every unfinished cell of ``cfg`` under ``out``; finished cells are skipped."""
    ds = data.make_dataset(cfg.dataset, **cfg.data)
    runs = []
    for cell in tqdm(cfg.cells(), desc=cfg.name, disable=not progress, unit="run"):
        run = Run(out, cell, identity=dict(experiment=cfg.name, weight=cell["weight"], loss=cell["loss"],
                                           depth=cell["depth"], method=cell["method"], seed=cell["seed"]))
        runs.append(run)
        if run.done:
            continue
        run.start()
        rows, summary = run_cell(cell, ds)
        run.log(rows)
        run.write_summary({**summary, "config_hash": run.hash, "dataset": ds.name})
        run.finish()
    return runs
