"""`iwtheory theory CONFIG.toml`: sweeps datasets x weights x losses x depths x methods x seeds."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from iwtheory.runs.config import ConfigError, check_distinct, check_kwargs
from iwtheory.runs.locks import hold_runs
from iwtheory.runs.progress import progress as progress_bar
from iwtheory.runs.records import Run, check_out, identity, mark_quick
from iwtheory.runs.train_config import WEIGHT_RANGE  # one range for every runner's class weights
from iwtheory.theory import data
from iwtheory.theory.experiment import run_cell
from iwtheory.theory.limits import ADJUSTED, COSINE, LIMIT_LOSSES, affine_form, resolve_params

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
    duplicates: list[bool] = field(default_factory=lambda: [False])  # True: integer weights as copies of points
    loss_params: dict = field(default_factory=dict)  # per loss name: binary or paper parameters (limits)
    weight_power: float = 1.0      # weights c^p (Wang et al. 2022's exponentiated weights)

    def validate(self) -> None:
        def need(ok: bool, what: str):
            if not ok:
                raise ConfigError(f"{self.name}: {what}")

        need(bool(self.name), "name must not be empty")
        need(self.dataset in data.GENERATORS,
             f"unknown dataset {self.dataset!r}; choose from {sorted(data.GENERATORS)}")
        check_kwargs(data.GENERATORS[self.dataset], self.data, f"{self.name}: data")
        for m in self.methods:
            need(m in METHODS, f"unknown method {m!r}; choose from {METHODS}")
        for ls in self.losses:
            need(ls in LIMIT_LOSSES, f"unknown loss {ls!r}; choose one of {LIMIT_LOSSES}")
        need(isinstance(self.loss_params, dict) and set(self.loss_params) <= set(ADJUSTED)
             and all(isinstance(v, dict) for v in self.loss_params.values()),
             f"loss_params must be a table of tables, one per adjusted loss {ADJUSTED}; got {self.loss_params}")
        need(not set(self.losses) & set(COSINE), f"{sorted(set(self.losses) & set(COSINE))} train a cosine "
             "classifier, not the linear and deep linear models of a theory sweep (see limits.cosine_descent)")
        for ls, params in list(self.loss_params.items()):
            try:
                self.loss_params[ls] = resolve_params(ls, params)  # the papers' parameters, if given
                affine_form(ls, np.array([1.0, -1.0]), **self.loss_params[ls])
            except (TypeError, ValueError) as e:
                raise ConfigError(f"{self.name}: loss_params.{ls}: {e}") from None
        need(self.weight_power > 0, f"weight_power must be positive; got {self.weight_power}")
        for key in ("weights", "losses", "depths", "methods", "seeds", "duplicates"):
            need(len(getattr(self, key)) > 0, f"{key} must not be empty")
        need(all(w > 0 for w in self.weights), f"weights must be a list of positive numbers; got {self.weights}")
        lo, hi = WEIGHT_RANGE
        need(all(abs(math.log10(w) * self.weight_power) <= math.log10(hi) for w in self.weights),
             f"weights (c^weight_power) must lie in [{lo:g}, {hi:g}]; got {self.weights}")
        need(1e-12 <= self.lr <= 1e6, f"lr must lie in [1e-12, 1e6]; got {self.lr}")
        need(self.n_records <= 10**6 and self.steps <= 10**12 and self.batch_size <= 10**7,
             "n_records must be at most 1e6, steps at most 1e12, batch_size at most 1e7")
        need(len(self.widths) <= 16 and all(h <= 10**4 for h in self.widths) and max(self.depths) <= 64,
             f"widths must be at most 16 values of at most 1e4 and depths at most 64; got {self.widths}, "
             f"{self.depths}")
        need(0 < self.poly_alpha <= 1e3 and self.weight_power <= 64, "poly_alpha must lie in (0, 1e3] and "
             "weight_power at most 64")
        need(self.init_scale <= 1e6 and self.deep_init_scale <= 1e6, "init scales must be at most 1e6")
        need(all(dep >= 1 for dep in self.depths), f"depths must be >= 1; got {self.depths}")
        need(all(s >= 0 for s in self.seeds), f"seeds must be >= 0; got {self.seeds}")
        need(self.poly_alpha > 0, f"poly_alpha must be positive; got {self.poly_alpha}")
        need(self.t_max > 1 and np.isfinite(np.log1p(self.t_max)), f"t_max must exceed 1; got {self.t_max}")
        need(self.steps >= 1 and self.n_records >= 1 and self.batch_size >= 1,
             "steps, n_records and batch_size must be at least 1")
        need(self.lr > 0, f"lr must be positive; got {self.lr}")
        need(self.init_scale >= 0 and self.deep_init_scale > 0,
             "init_scale must be >= 0 and deep_init_scale > 0 (a deep linear net at zero never moves)")
        need(all(h >= 1 for h in self.widths), f"widths must be positive; got {self.widths}")
        need(not any(self.duplicates) or all(float(w).is_integer() for w in self.weights),
             "duplicated points realise integer weights only")
        check_distinct(self.name, self.cells(), "weight, loss, depth, method, seed or duplicate setting")

    def cells(self) -> list[dict]:
        """The sweep's cells: one resolved config per run."""
        out = []
        for w, ls, dep, meth, seed, dup in itertools.product(self.weights, self.losses, self.depths,
                                                             self.methods, self.seeds, self.duplicates):
            if seed != self.seeds[0] and meth != "sgd" and dep == 1 and self.init_scale == 0.0:
                continue  # flow and GD from w = 0 draw nothing: every seed would repeat the first one's run
            cell = dict(experiment=self.name, kind="theory", dataset=self.dataset, data=self.data,
                        weight=w, loss=ls, depth=dep, method=meth, seed=seed, n_records=self.n_records,
                        init_scale=self.init_scale if dep == 1 else self.deep_init_scale,
                        balanced=self.balanced, widths=self.widths[: dep - 1] if dep > 1 else [])
            if dup:
                cell["duplicate"] = True  # absent otherwise, so earlier runs keep their hashes
            if ls in ADJUSTED:
                cell["loss_params"] = self.loss_params.get(ls, {})
            if self.weight_power != 1.0:
                cell["weight_power"] = self.weight_power
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


def build_dataset(cfg: TheoryConfig) -> data.Dataset:
    """The config's dataset; a setting its generator refuses is a ConfigError naming the config."""
    try:
        return data.make_dataset(cfg.dataset, **cfg.data)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{cfg.name}: data {cfg.data} for {cfg.dataset}: {e}") from None


def run_cells(cfg: TheoryConfig, out: str | Path, indices: list[int], ds: data.Dataset | None = None,
              wait: float = 0.0) -> list[str]:
    """Run cells ``indices`` of ``cfg`` (each under its run's lock); return the hashes this call finished."""
    cells = cfg.cells()
    finished = []
    for i in indices:
        run = Run(out, cells[i])
        with hold_runs(out, [run.hash], wait=wait):
            if run.done:  # another writer finished it while this one waited
                continue
            ds = ds if ds is not None else build_dataset(cfg)
            run.start()
            mark_quick(cfg, run)
            try:
                rows, summary = run_cell(cells[i], ds)
            except (ValueError, ArithmeticError, np.linalg.LinAlgError) as e:  # a solver failing on this input
                c = cells[i]
                raise ConfigError(f"{cfg.name}: run {run.hash} (weight {c['weight']:g}, loss {c['loss']}, depth "
                                  f"{c['depth']}, method {c['method']}, seed {c['seed']}) failed: {e}") from None
            run.log(rows)
            run.write_summary({**identity(cells[i]), **summary, "config_hash": run.hash, "dataset": ds.name})
            run.finish()
            finished.append(run.hash)
    return finished


def run_theory(cfg: TheoryConfig, out: str | Path = "runs", progress: bool = True, wait: float = 0.0) -> list[Run]:
    """Run every unfinished cell of ``cfg`` under ``out``; finished cells are skipped."""
    out = check_out(out)
    cells = cfg.cells()
    runs = [Run(out, c) for c in cells]
    todo = [i for i, r in enumerate(runs) if not r.finished()]
    if todo:
        ds = build_dataset(cfg)
        with progress_bar(len(todo), cfg.name, "runs", enabled=progress) as bar:
            for i in todo:
                run_cells(cfg, out, [i], ds, wait=wait)
                bar.update(1)
    return runs
