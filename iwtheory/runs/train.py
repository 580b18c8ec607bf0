"""`iwtheory train CONFIG.toml`: weighted CNN experiments, many models per stack, resumable.

Each model (weight x seed x lr x weight decay x dropout) is one run directory named by the hash
of its resolved config. Models are trained ``max_models`` at a time in one stack (a *group*).
A group holds the write locks of its runs for its whole life, and checkpoints to
``<out>/_groups/<hash>.pt`` (with a checksum, its epoch and its runs' hashes); a killed group
resumes there, after its checkpoint has been checked against the run folders, and ends with the
same records as an uninterrupted one. The data's fingerprint is part of every run's config.json:
resuming or extending a sweep with other data is refused.
"""

from __future__ import annotations

from pathlib import Path


from iwtheory.nets.names import PARTNER_FIELDS
from iwtheory.runs.checkpoints import checkpoint_header
from iwtheory.runs.config import ConfigError, config_hash
from iwtheory.runs.locks import hold_runs
from iwtheory.runs.fit import (  # noqa: F401 (re-exported: the runner's public names before fit.py existed)
    check_fingerprint,
    check_source,
    class_weight_pair,
    data_fingerprint,
    engine_setup,
    train_group,
)
from iwtheory.runs.records import Run, check_out
from iwtheory.runs.train_config import TrainConfig
from iwtheory.theory.data import bl_toy


def array_task(cfg: TrainConfig, arrays=None):
    """The engine's task from a user's task of arrays: ``arrays`` (a ``Task`` given in memory), else the config's
    ``data`` (a .npz file, or a loader "package.module:function" returning a ``Task``); the validation split
    drawn by ``subsample_seed``."""
    from iwtheory.nets.arrays import Task, TaskError, load_npz
    from iwtheory.runs.train_config import resolve

    if arrays is None:
        if not cfg.data:
            raise ConfigError(f"{cfg.name}: dataset 'arrays' needs data = 'file.npz' or 'package.module:loader'")
        try:
            if cfg.data.endswith(".npz"):
                arrays = load_npz(cfg.data)
            else:
                arrays = resolve(cfg.data, f"{cfg.name}: data")()
        except TaskError as e:
            raise ConfigError(f"{cfg.name}: data {cfg.data}: {e}") from None
        if not isinstance(arrays, Task):
            raise ConfigError(f"{cfg.name}: data loader {cfg.data} returned {type(arrays).__name__}, not an "
                              "iwtheory.Task")
    if cfg.powers and arrays.weights is None:
        raise ConfigError(f"{cfg.name}: powers sweep the task's per-example weights, and its data has none")
    missing = sorted(set(cfg.vectors) - set(arrays.vectors))
    if missing:
        raise ConfigError(f"{cfg.name}: no weight vector(s) {missing} in the data (it has {sorted(arrays.vectors)})")
    if cfg.class_weights and len(cfg.class_weights[0]) != arrays.n_classes:
        raise ConfigError(f"{cfg.name}: class_weights give {len(cfg.class_weights[0])} weights per model for a "
                          f"{arrays.n_classes}-class task")
    if arrays.n_classes > 2 and not (cfg.class_weights or cfg.powers) and cfg.weights != [1.0]:
        raise ConfigError(f"{cfg.name}: weights is the positive class's weight of a binary task; a "
                          f"{arrays.n_classes}-class task takes class_weights (one per class) or powers")
    try:
        return arrays.tensors(cfg.val_fraction, cfg.subsample_seed)
    except TaskError as e:
        raise ConfigError(f"{cfg.name}: {e}") from None


def build_task(cfg: TrainConfig, data_dir: str | None = None, download: bool | None = None, arrays=None):
    """Read the dataset and build the task with its probe sets."""
    from iwtheory.nets.data import make_task, points_task, synthetic_images
    from iwtheory.nets.readers import load_images, source_fingerprint

    if cfg.dataset == "arrays":
        return array_task(cfg, arrays)
    if cfg.dataset == "bl_toy":
        p = dict(cfg.synthetic)
        n_test = p.pop("n_test", 1000)
        # a draw of the toy: its training points from seed + 2 subsample_seed, its test points from the next seed
        # (draw 0 is the toy's own seed and seed + 1, as before draws existed)
        p["seed"] = p.get("seed", 0) + 2 * cfg.subsample_seed
        # the generator checks separability with its bias feature; the MLP has biases of its own
        train = bl_toy(bias=True, **p)
        test = bl_toy(bias=True, **{**p, "seed": p["seed"] + 1, "n_per_class": max(1, n_test // 2)})
        return points_task(train.X[:, :2], train.y, test.X[:, :2], test.y, noise_count=cfg.noise_count,
                           noise_seed=cfg.subsample_seed, val_fraction=cfg.val_fraction, split_seed=cfg.subsample_seed)
    if cfg.dataset == "synthetic":
        images = synthetic_images(**cfg.synthetic)
    else:
        images = load_images(cfg.dataset, data_dir or cfg.data_dir or None,
                             fetch=cfg.download if download is None else download)
    task = make_task(images, cfg.pos, cfg.neg, keep_pos=cfg.n_pos or (cfg.keep_pos if cfg.keep_pos < 1 else None),
                     keep_neg=cfg.n_neg or (cfg.keep_neg if cfg.keep_neg < 1 else None),
                     subsample_seed=cfg.subsample_seed, noise_count=cfg.noise_count, noise_seed=cfg.subsample_seed,
                     max_other=cfg.max_other, val_fraction=cfg.val_fraction, label_noise=cfg.label_noise,
                     max_test=cfg.max_test)
    task.source = source_fingerprint(images)
    return task


def resolve_device(name: str) -> str:
    """'auto' -> cuda if available else cpu; any other name is checked before data is read."""
    import torch

    if not isinstance(name, str) or not name:
        raise ConfigError(f"--device: expected a device name such as cpu or cuda, got {name!r}")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"--device {name!r} is not a device torch knows (cpu, cuda, cuda:1, ...)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} requested but no CUDA device is available")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    elif dev.type != "cpu":
        raise ConfigError(f"--device {name!r}: only cpu and cuda devices are supported")
    return name


# What varies between the models of one stack; everything else of a cell (data, architecture, schedule, optimiser)
# must agree, so a stack may hold the models of several regimes of a study (none, l2 and dropout share one).
PER_MEMBER = ("weight", "power", "class_weight", "vector", "seed", "lr", "weight_decay", "dropout", "regime",
              "baseline")


def stack_key(cell: dict) -> str:
    """Cells with equal keys can train in one stack."""
    return config_hash({k: v for k, v in cell.items() if k not in PER_MEMBER})


def plan_groups(cfgs: list[TrainConfig], out: str | Path = "runs") -> list[list[tuple[int, int]]]:
    """The groups of ``cfgs`` that hold an unfinished cell, as (config index, cell index) pairs, grouped by stack
    key and ``max_models`` (the first config's) to a group, in the configs' order.

    Groups are formed over every cell, finished or not, and then the finished ones dropped: a sweep resumed
    after a kill forms the groups an uninterrupted one did, so a run that finished before the kill is trained
    again beside its unfinished stack mates (``run_group`` leaves its records alone) and theirs come out the
    same, their angle to their unweighted partner included."""
    by_key: dict[str, list[tuple[int, int]]] = {}
    cells = [cfg.cells() for cfg in cfgs]
    for ci, cfg in enumerate(cfgs):
        for k, c in enumerate(cells[ci]):
            by_key.setdefault(stack_key(c), []).append((ci, k))
    groups = []
    for members in by_key.values():
        size = cfgs[members[0][0]].max_models
        # the models that differ only in their weight stay in one stack where they fit: the engine measures each
        # net's angle to its unweighted partner only within a stack (a model's numbers never depend on its mates)
        partners: dict[tuple, list[tuple[int, int]]] = {}
        for ci, k in members:
            c = cells[ci][k]
            partners.setdefault(tuple(c[f] for f in PARTNER_FIELDS), []).append((ci, k))
        chunk: list[tuple[int, int]] = []
        for pg in partners.values():
            if chunk and len(chunk) + len(pg) > size:
                groups.append(chunk)
                chunk = []
            while len(pg) > size:  # more weights than a stack holds: split them
                groups.append(pg[:size])
                pg = pg[size:]
            chunk += pg
        if chunk:
            groups.append(chunk)
    return [g for g in groups if not all(Run(out, cells[ci][k]).finished() for ci, k in g)]


def run_study(cfgs: list[TrainConfig], out: str | Path = "runs", data_dir: str | None = None,
              device: str | None = None, download: bool | None = None, progress: bool = True, interrupt=None,
              wait: float = 0.0, arrays=None, factory=None) -> list[Run]:
    """Train every unfinished model of ``cfgs`` (the regimes of a study), stacking models of different regimes
    together where their data and architecture agree; ``interrupt(epoch)`` (tests) may raise to simulate a kill.

    ``wait``: seconds to wait for a run another process is writing (0: refuse at once, naming it). ``arrays``: a
    task of arrays given in memory (dataset "arrays"); ``factory``: a model factory given as a function (else
    the config's ``model`` names it).
    """
    out = check_out(out)
    runs = [Run(out, c) for cfg in cfgs for c in cfg.cells()]
    groups = plan_groups(cfgs, out)
    if not groups:
        drop_finished_checkpoints(out)
        return runs
    dev = resolve_device(device or cfgs[0].device)
    tasks: dict[str, object] = {}
    for members in groups:
        ci, k = members[0]
        key = stack_key(cfgs[ci].cells()[k])
        if key not in tasks:  # one read of the data per distinct task (a draw of it: the cells' subsample_seed)
            tasks = {key: build_task(cfgs[ci].for_draw(cfgs[ci].cells()[k]["subsample_seed"]), data_dir, download,
                                     arrays)}
        run_group(cfgs, out, members, dev, task=tasks[key], progress=progress, interrupt=interrupt, wait=wait,
                  factory=factory)
    drop_finished_checkpoints(out)
    return runs


def run_train(cfg: TrainConfig, out: str | Path = "runs", **kw) -> list[Run]:
    """Train every unfinished model of one config (see ``run_study``)."""
    return run_study([cfg], out, **kw)


def drop_finished_checkpoints(out: Path) -> list[Path]:
    """Delete checkpoints whose runs are all done (left by a kill between two runs' ``done``): no run that is
    done is ever trained again, so they can never be used."""
    dropped = []
    for p in sorted((Path(out) / "_groups").glob("*.pt")):
        h = checkpoint_header(p)
        if h and h.get("runs") and all((Path(out) / r / "done").exists() for r in h["runs"]):
            p.unlink()
            dropped.append(p)
    return dropped


def run_group(cfgs: list[TrainConfig], out: str | Path, members: list[tuple[int, int]], device: str, task=None,
              data_dir: str | None = None, download: bool | None = None, progress: bool = True,
              interrupt=None, wait: float = 0.0, factory=None, arrays=None) -> list[str]:
    """Train one group ((config index, cell index) pairs of one stack key) under their runs' locks; return the
    hashes it finished.

    Runs another writer finished while this one waited are skipped. The unit of work a scheduler hands to a
    worker: it reads the data itself when ``task`` is not given.
    """
    out = Path(out)
    cells = [cfg.cells() for cfg in cfgs]
    all_group = [(Run(out, cells[ci][k]), cells[ci][k]) for ci, k in members]
    cfg = cfgs[members[0][0]].for_draw(cells[members[0][0]][members[0][1]]["subsample_seed"])
    with hold_runs(out, [r.hash for r, _ in all_group], wait=wait):
        group = [(r, c) for r, c in all_group if not r.done]
        if not group:
            return []
        # a group some of whose runs finished before a kill trains whole again: a model's numbers (its angle to
        # its unweighted partner) need its stack mates, and the finished runs' records are left as they are
        group = all_group if len(group) < len(all_group) else group
        if task is None:
            task = build_task(cfg, data_dir, download, arrays)
        key = stack_key(group[0][1])
        siblings = [c for cs in cells for c in cs if stack_key(c) == key]
        planned = {c.regime: [config_hash(x) for x in cs] for c, cs in zip(cfgs, cells)}
        train_group(cfg, out, group, device, task, progress, interrupt, siblings, factory=factory, planned=planned)
    return [r.hash for r, _ in group]


