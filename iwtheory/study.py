"""A researcher's own study, from Python: any model, any arrays, any importance weights.

    from iwtheory import Study, Task
    task = Task(x, y, weights=r, probes={"test": (x_test, y_test), "shifted": x_target})
    study = Study(task, model=make_net, powers=[0, 0.5, 1], seeds=range(10), epochs=100, lr=0.05,
                  momentum=0.9, batch_size=32, regimes={"none": {}, "l2": {"weight_decay": 1e-3}})
    df = study.run("runs/mine")      # resumable records, one row per evaluated epoch
    study.claims()                   # the claims that apply, with premise and verdict
    study.figures("figures/mine")

A study is a list of ``TrainConfig`` (one per regime) trained by the same runner as ``iwtheory train``: the
same hash-named run folders, checkpoints, locks and kill -9 resume, so ``iwtheory claims|figures|tables
--runs DIR --experiment NAME`` read its records. The weighting is one of: ``powers`` of the task's
per-example weights (r^p; p = 0 is the unweighted partner of the same seed, p = 1 the importance-weighted
risk), ``class_weights`` (binary: the positive class's weight, 1 the partner; K classes: one vector per
model), or ``vectors`` (names of the task's explicit weight vectors, "uniform" the partner); the default is
every vector of a task that has them, else ``powers=[0, 1]`` for a task with weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from iwtheory.nets.arrays import NAME, Task, TaskError
from iwtheory.runs.config import ConfigError
from iwtheory.runs.train_config import SPEC, TrainConfig, resolve

# keyword -> the config field it sets; singular settings of a sweep axis become one-value lists
_REGIME_KEYS = {"weight_decay": "weight_decays", "lr": "lrs", "model_args": "model_args", "momentum": "momentum",
                "batch_size": "batch_size", "epochs": "epochs", "loss": "loss", "weight_norm": "weight_norm"}


def factory_spec(model) -> tuple[str, object]:
    """(the name a run's identity carries, the factory): "module:qualname" of a function, or a spec string."""
    if isinstance(model, str):
        return model, None
    if not callable(model):
        raise ConfigError(f"model must be a factory (seed -> nn.Module) or 'package.module:function'; got "
                          f"{type(model).__name__}")
    return f"{getattr(model, '__module__', '?')}:{getattr(model, '__qualname__', type(model).__name__)}", model


def travels(spec: str, fn) -> bool:
    """Whether a worker process can import the factory by its name (a lambda or a local function cannot)."""
    if fn is None:
        return True
    if not SPEC.match(spec) or spec.startswith("__main__:"):
        return False
    try:
        return resolve(spec, "model") is fn
    except ConfigError:
        return False


class Study:
    """Weighted training of a user's model on a user's task, every weighting x seed x regime (see the module)."""

    def __init__(self, task: Task, model, *, powers=None, class_weights=None, vectors=None, seeds=range(10),
                 epochs: int = 100,
                 lr: float = 0.05, momentum: float = 0.9, batch_size: int = 32, weight_decay: float = 0.0,
                 regimes: dict | None = None, name: str | None = None, val_fraction: float = 0.0,
                 data_seed: int = 0, model_args: dict | None = None, max_models: int = 30,
                 eval_dense: int = 20, eval_points: int = 30, eval_tail: int = 5, device: str = "cpu",
                 loss: str = "logistic", weight_norm: str = "none"):
        if not isinstance(task, Task):
            raise TaskError(f"task must be an iwtheory.Task (arrays checked on construction); got "
                            f"{type(task).__name__}")
        name = name or task.name
        if not isinstance(name, str) or not NAME.match(name):
            raise ConfigError(f"name must be a lower-case identifier (a-z, 0-9, _); got {name!r}")
        self.task, self.name = task, name
        self.out: Path | None = None  # where ``run`` last wrote: the default of claims, figures, effects, records
        self.spec, self.fn = factory_spec(model)
        if sum(w is not None for w in (powers, class_weights, vectors)) > 1:
            raise ConfigError("powers, class_weights and vectors are three weightings: give one")
        if powers is None and class_weights is None and vectors is None:
            if task.vectors:
                vectors = list(task.vectors)
            elif task.weights is None:
                raise ConfigError("the task has no per-example weights: give class_weights=[...] (or weights to "
                                  "the Task, then powers=[...])")
            else:
                powers = [0.0, 1.0]
        axis: dict = {}
        if vectors is not None:
            missing = sorted(set(vectors) - set(task.vectors))
            if missing:
                raise ConfigError(f"no weight vector(s) {missing} in the task (it has {sorted(task.vectors)})")
            if "uniform" not in vectors:
                raise ConfigError("vectors must include 'uniform' (the unweighted partner)")
            axis["vectors"] = list(vectors)
        elif powers is not None:
            if task.weights is None:
                raise ConfigError("powers sweep the task's per-example weights, and the task has none")
            axis["powers"] = [float(p) for p in powers]
            if 0.0 not in axis["powers"]:
                raise ConfigError("powers must include 0: every effect is measured against the unweighted "
                                  "partner of the same seed")
        elif task.n_classes == 2:
            axis["weights"] = [float(w) for w in class_weights]
            if 1.0 not in axis["weights"]:
                raise ConfigError("class_weights must include 1 (the unweighted partner of each seed)")
        else:
            vecs = [[float(v) for v in np.atleast_1d(cw)] for cw in class_weights]
            if any(len(v) != task.n_classes for v in vecs):
                raise ConfigError(f"class_weights: a {task.n_classes}-class task needs one weight per class per "
                                  "entry")
            if not any(len(set(v)) == 1 for v in vecs):
                raise ConfigError("class_weights must include a uniform vector (the unweighted partner)")
            axis["class_weights"] = vecs
        base = dict(name=name, dataset="arrays", model=self.spec, seeds=[int(s) for s in seeds], epochs=int(epochs),
                    lrs=[float(lr)], momentum=float(momentum), batch_size=int(batch_size),
                    weight_decays=[float(weight_decay)], val_fraction=float(val_fraction),
                    subsample_seed=int(data_seed), model_args=dict(model_args or {}), max_models=int(max_models),
                    eval_dense=int(eval_dense), eval_points=int(eval_points), eval_tail=int(eval_tail),
                    device=device, loss=loss, weight_norm=weight_norm, n_feature_images=min(256, len(task.y)),
                    noise_count=0, max_other=0, **axis)
        self.configs: list[TrainConfig] = []
        for regime, over in (regimes or {"none": {}}).items():
            if not isinstance(regime, str) or not NAME.match(regime):
                raise ConfigError(f"regime name {regime!r}: use a lower-case identifier")
            unknown = sorted(set(over) - set(_REGIME_KEYS))
            if unknown:
                raise ConfigError(f"regime {regime!r}: unknown setting(s) {unknown}; a regime sets "
                                  f"{sorted(_REGIME_KEYS)}")
            cfg = dict(base, regime=regime)
            for k, v in over.items():
                cfg[_REGIME_KEYS[k]] = [float(v)] if _REGIME_KEYS[k] in ("weight_decays", "lrs") else v
            if "model_args" in over:
                cfg["model_args"] = {**base["model_args"], **over["model_args"]}
            tc = TrainConfig(**cfg)
            if self.fn is not None:
                tc._factory = self._bound(tc.model_args)
            tc.validate()
            self.configs.append(tc)
        self.check_model()

    def check_model(self) -> None:
        """Build the model of seed 0 and run two training inputs through it: a factory that fails, or logits of
        the wrong shape for the task, are refused here, before anything is trained or written."""
        import torch

        from iwtheory.nets.engine import build_member
        from iwtheory.nets.population import PopulationError, check_logits, check_members

        cfg = self.configs[0]
        fn = cfg.factory()
        try:
            module = build_member(fn, 0)
        except Exception as e:
            raise ConfigError(f"model {self.spec} failed to build a model for seed 0 ({type(e).__name__}: {e})") \
                from None
        check_members([module])
        t = self.task
        x = (torch.from_numpy(t.x[:2]) - torch.from_numpy(np.asarray(t.mean))) / torch.from_numpy(np.asarray(t.std))
        module.eval()
        try:
            with torch.no_grad():
                out = module(x.float())
        except Exception as e:
            raise PopulationError(f"model {self.spec} cannot read the task's inputs of shape {t.x.shape[1:]} "
                                  f"({type(e).__name__}: {e})") from None
        check_logits(out.shape, t.n_classes, 2, f"model {self.spec}")

    def _bound(self, args: dict):
        fn = self.fn
        return (lambda seed: fn(seed, **args)) if args else fn

    def run(self, out: str | Path = "runs", scheduler: str | None = None, progress: bool = True,
            wait: float = 0.0):
        """Train every unfinished model (resuming any that were stopped) and return the study's records as a
        DataFrame, one row per model and evaluated epoch. ``scheduler``: "local", "local:N" or "tcp://HOST:PORT"
        runs the stacks on Dask, as ``iwtheory train --scheduler`` does."""
        from iwtheory.runs.launch import connect, distributed_train
        from iwtheory.runs.train import run_study

        self.out = Path(out)
        if scheduler is None:
            run_study(self.configs, out, progress=progress, wait=wait, arrays=self.task)
        else:
            if not travels(self.spec, self.fn):
                raise ConfigError(f"the model factory {self.spec} cannot travel to a worker process (a lambda, a "
                                  "local function or one defined in __main__): define it in an importable module "
                                  "and pass it (or 'package.module:function') as model")
            for c in self.configs:
                c.__dict__.pop("_factory", None)  # the worker imports it by name
            with connect(scheduler) as client:
                distributed_train(client, self.configs, out, progress=progress, arrays=self.task)
        return self.records(out)

    def _where(self, out) -> Path:
        return Path(out) if out is not None else (self.out or Path("runs"))

    def records(self, out: str | Path | None = None):
        """The study's records under ``out`` (default: where ``run`` wrote) as a DataFrame (the columns of
        ``iwtheory.runs.load``)."""
        from iwtheory.runs.records import load

        df = load(self._where(out))
        return df[df.experiment == self.name].reset_index(drop=True) if not df.empty else df

    def claims(self, out: str | Path | None = None) -> list[dict]:
        """The seed paper's network claims that apply to this study, each with its premise and verdict (a claim
        whose regime or statistic does not apply says so: "not applicable: ...")."""
        from iwtheory.compare.study_claims import network_claims

        df = self.records(out)
        cfg = self.configs[0]
        spe = max(1, len(self.task.split(cfg.val_fraction, cfg.subsample_seed)[0]) // cfg.batch_size)
        return list(network_claims(df, spe, n_classes=self.task.n_classes).values())

    def figures(self, out_dir: str | Path, runs: str | Path | None = None) -> list[Path]:
        """One figure per probe set: the weighting's effect Delta(t) on the predicted share, per regime."""
        from iwtheory.report.study_figures import effect_figures

        return effect_figures(self.records(runs), self.task.probes, out_dir, self.task.n_classes)

    def effects(self, out: str | Path | None = None):
        """Delta of every predicted share (F for two classes, F_k for K) against the unweighted partner of the
        same seed, per regime, weighting and epoch (mean over seeds, SE, seeds)."""
        from iwtheory.compare.study_claims import share_effects

        return share_effects(self.records(out))
