"""`iwtheory train CONFIG.toml`: weighted CNN experiments, many models per stack, resumable.

Each model (weight x seed x lr x weight decay x dropout) is one run directory named by the
hash of its resolved config. Models are trained ``max_models`` at a time in one stack; a
stack checkpoints to ``<out>/_groups/<hash>.pt`` after each epoch, so a killed run resumes
there and ends with the same records as an uninterrupted one.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from iwtheory.runs.config import ConfigError, config_hash
from iwtheory.runs.records import Run

# Fields that change how fast a run goes, not what it computes; they stay out of the run hash.
ENGINEERING = ("name", "description", "source", "data_dir", "download", "device", "max_models", "compile",
               "channels_last", "checkpoint_every", "eval_chunk")


@dataclass
class TrainConfig:
    """A CNN experiment; ``weights`` are the positive class's weight (the negative class weighs 1)."""

    name: str
    description: str = ""
    source: str = ""               # where the hyperparameters come from
    regime: str = "none"           # label for tables: none | l2 | dropout | batchnorm | subsample | ...
    dataset: str = "cifar10"       # cifar10 | fashion_mnist | synthetic
    data_dir: str = ""
    download: bool = False
    pos: str = "dog"
    neg: str = "cat"
    keep_pos: float = 1.0          # share of the positive class's training images kept
    keep_neg: float = 1.0
    n_pos: int = 0                 # or an exact count (0: use keep_pos)
    n_neg: int = 0
    subsample_seed: int = 0        # subsampling, the "other" probe subset, noise images, feature subset
    max_other: int = 2000
    noise_count: int = 1000
    model: str = "bl_cnn"          # bl_cnn | mlp | resnet
    batchnorm: bool = False
    dropouts: list[float] = field(default_factory=lambda: [0.0])
    weights: list[float] = field(default_factory=lambda: [1.0])
    seeds: list[int] = field(default_factory=lambda: [0])
    lrs: list[float] = field(default_factory=lambda: [0.1])
    weight_decays: list[float] = field(default_factory=lambda: [0.0])
    momentum: float = 0.9
    batch_size: int = 16
    epochs: int = 10
    loss: str = "logistic"
    poly_alpha: float = 1.0
    eval_dense: int = 20           # evaluate every epoch up to here, then log-spaced
    eval_points: int = 30
    record_points: int = 8         # log-spaced epochs with last layer and features saved
    n_feature_images: int = 256
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    device: str = "auto"
    max_models: int = 108
    checkpoint_every: int = 1
    eval_chunk: int = 1000
    synthetic: dict = field(default_factory=dict)  # synthetic_images() arguments

    def validate(self) -> None:
        if self.dataset not in ("cifar10", "fashion_mnist", "synthetic"):
            raise ConfigError(f"{self.name}: unknown dataset {self.dataset!r}")
        if self.model not in ("bl_cnn", "mlp", "resnet"):
            raise ConfigError(f"{self.name}: unknown model {self.model!r}")
        if not self.weights or any(not (w > 0 and np.isfinite(w)) for w in self.weights):
            raise ConfigError(f"{self.name}: weights must be positive numbers; got {self.weights}")
        if any(not 0 <= p < 1 for p in self.dropouts):
            raise ConfigError(f"{self.name}: dropout rates must lie in [0, 1); got {self.dropouts}")
        if self.epochs < 1 or self.batch_size < 1 or self.max_models < 1:
            raise ConfigError(f"{self.name}: epochs, batch_size and max_models must be positive")
        if self.precision not in ("fp32", "tf32", "bf16", "fp64"):
            raise ConfigError(f"{self.name}: precision must be fp32, tf32, bf16 or fp64")
        if self.loss not in ("logistic", "exponential", "polynomial"):
            raise ConfigError(f"{self.name}: unknown loss {self.loss!r}")

    def cells(self) -> list[dict]:
        """One resolved config per model, without the engineering fields."""
        base = {k: v for k, v in asdict(self).items()
                if k not in ENGINEERING and k not in ("weights", "seeds", "lrs", "weight_decays", "dropouts")}
        base["experiment"] = self.name
        base["kind"] = "train"
        return [dict(base, weight=w, seed=s, lr=lr, weight_decay=wd, dropout=p)
                for w, s, lr, wd, p in itertools.product(self.weights, self.seeds, self.lrs,
                                                         self.weight_decays, self.dropouts)]


def build_task(cfg: TrainConfig, data_dir: str | None = None, download: bool | None = None):
    """Read the dataset and build the binary task with its probe sets."""
    from iwtheory.nets.data import make_task, synthetic_images
    from iwtheory.nets.readers import load_images

    if cfg.dataset == "synthetic":
        images = synthetic_images(**cfg.synthetic)
    else:
        images = load_images(cfg.dataset, data_dir or cfg.data_dir or None,
                             fetch=cfg.download if download is None else download)
    return make_task(images, cfg.pos, cfg.neg, keep_pos=cfg.n_pos or (cfg.keep_pos if cfg.keep_pos < 1 else None),
                     keep_neg=cfg.n_neg or (cfg.keep_neg if cfg.keep_neg < 1 else None),
                     subsample_seed=cfg.subsample_seed, noise_count=cfg.noise_count, noise_seed=cfg.subsample_seed,
                     max_other=cfg.max_other)


def resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but no CUDA device is available")
    return name


def _identity(cell: dict) -> dict:
    return {k: cell[k] for k in ("experiment", "regime", "weight", "seed", "lr", "weight_decay", "dropout")}


def run_train(cfg: TrainConfig, out: str | Path = "runs", data_dir: str | None = None, device: str | None = None,
              download: bool | None = None, progress: bool = True, interrupt=None) -> list[Run]:
    """Train every unfinished model of ``cfg``; ``interrupt(epoch)`` (tests) may raise to simulate a kill."""
    import torch

    from iwtheory.nets.train import EngineSettings, Member, Stack, log_epochs

    out = Path(out)
    cells = cfg.cells()
    runs = [Run(out, c, _identity(c)) for c in cells]
    todo = [(r, c) for r, c in zip(runs, cells) if not r.done]
    if not todo:
        return runs
    dev = resolve_device(device or cfg.device)
    task = build_task(cfg, data_dir, download)
    record_epochs = set(log_epochs(cfg.epochs, 0, cfg.record_points))
    eval_set = set(log_epochs(cfg.epochs, cfg.eval_dense, cfg.eval_points)) | record_epochs
    settings = EngineSettings(model=cfg.model, batchnorm=cfg.batchnorm, loss=cfg.loss, poly_alpha=cfg.poly_alpha,
                              momentum=cfg.momentum, batch_size=cfg.batch_size,
                              n_feature_images=cfg.n_feature_images, feature_seed=cfg.subsample_seed,
                              precision=cfg.precision, channels_last=cfg.channels_last, compile=cfg.compile,
                              eval_chunk=cfg.eval_chunk)
    (out / "_groups").mkdir(parents=True, exist_ok=True)
    for g0 in range(0, len(todo), cfg.max_models):
        group = todo[g0:g0 + cfg.max_models]
        members = [Member(c["weight"], c["seed"], c["lr"], c["weight_decay"], c["dropout"]) for _, c in group]
        stack = Stack(members, task, settings, dev)
        ckpt = out / "_groups" / f"{config_hash([r.hash for r, _ in group])}.pt"
        if ckpt.exists():
            stack.load(ckpt)
            for r, c in group:
                r.start(fresh=False)
                r.truncate_after("epoch", stack.epoch)
        else:
            for r, c in group:
                r.start(fresh=True)
            _record(stack, group, 0, record_epochs)
        bar = tqdm(total=cfg.epochs, initial=stack.epoch, disable=not progress, unit="epoch",
                   desc=f"{cfg.name} [{len(group)} models on {dev}]")
        while stack.epoch < cfg.epochs:
            stack.train_epoch()
            e = stack.epoch
            if e in eval_set:
                _record(stack, group, e, record_epochs)
            if e % cfg.checkpoint_every == 0 or e == cfg.epochs:
                stack.save(ckpt)
            bar.update(1)
            if interrupt is not None:
                interrupt(e)
        bar.close()
        for m, (r, c) in enumerate(group):
            r.write_summary({**_identity(c), "config_hash": r.hash, "epochs": cfg.epochs,
                             "diverged_epoch": stack.diverged_epoch[m] if stack.diverged_epoch[m] >= 0 else None,
                             "device": str(dev), "torch": torch.__version__})
            r.finish()
        del stack
    return runs


def _record(stack, group, epoch: int, record_epochs: set[int]) -> None:
    metrics = stack.evaluate()
    feats = stack.features() if epoch in record_epochs else None
    for m, (r, c) in enumerate(group):
        row = {"epoch": epoch, **metrics[m], "diverged": stack.diverged_epoch[m] >= 0}
        if feats is not None:
            name = f"features/epoch_{epoch:05d}.npz"
            (r.dir / "features").mkdir(exist_ok=True)
            f, w, b = (t[m].cpu().numpy() for t in feats)
            np.savez_compressed(r.dir / name, features=f, labels=stack.task.y_train[stack.feature_idx.to(
                stack.device)].cpu().numpy(), weight=w, bias=b, epoch=epoch)
            row["features"] = name
        r.log([row])
