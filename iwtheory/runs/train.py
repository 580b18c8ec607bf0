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

import hashlib
import os
import time
from pathlib import Path

import numpy as np

from iwtheory.nets.names import PARTNER_FIELDS
from iwtheory.runs.checkpoints import checkpoint_header, consistency, read_checkpoint, set_aside, write_checkpoint
from iwtheory.runs.config import ConfigError, config_hash
from iwtheory.runs.locks import hold_runs
from iwtheory.runs.progress import progress as progress_bar
from iwtheory.runs.records import RecordError, Run, check_out, fault_point, identity, read_json
from iwtheory.runs.schedule import train_epochs
from iwtheory.runs.train_config import TrainConfig
from iwtheory.theory.data import bl_toy


def build_task(cfg: TrainConfig, data_dir: str | None = None, download: bool | None = None):
    """Read the dataset and build the binary task with its probe sets."""
    from iwtheory.nets.data import make_task, points_task, synthetic_images
    from iwtheory.nets.readers import load_images

    if cfg.dataset == "bl_toy":
        p = dict(cfg.synthetic)
        n_test = p.pop("n_test", 1000)
        # the generator checks separability with its bias feature; the MLP has biases of its own
        train = bl_toy(bias=True, **p)
        test = bl_toy(bias=True, **{**p, "seed": p.get("seed", 0) + 1, "n_per_class": max(1, n_test // 2)})
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


def source_fingerprint(images) -> str:
    """SHA-256 (16 hex digits) of a whole dataset (both splits): what every regime of a study draws its task
    from, so regimes run at different times can be checked to share it."""
    h = hashlib.sha256(images.name.encode())
    for a in (images.x_train, images.y_train, images.x_test, images.y_test):
        a = np.ascontiguousarray(a)
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def check_source(out: Path, experiment: str, fp: str) -> None:
    """Refuse to add runs of ``experiment`` to ``out`` from another dataset than its runs there were drawn
    from (any regime), naming both fingerprints: the reports would otherwise combine the two."""
    for d in sorted(Path(out).glob("*/config.json")):
        try:
            c = read_json(d)
        except RecordError:
            continue  # a damaged config is named by the reports, not here
        have = c.get("source_fingerprint")
        if c.get("experiment") == experiment and have and have != fp:
            raise RecordError(
                f"{out} holds runs of {experiment} drawn from a dataset with fingerprint {have} (run "
                f"{d.parent.name}), but the data read now has fingerprint {fp}: a sweep must not mix datasets; "
                "point --data-dir at the same copy, or use another --out")


def data_fingerprint(task) -> str:
    """SHA-256 (16 hex digits) of every array the runs train, validate and are probed on."""
    h = hashlib.sha256()
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test", "x_other", "x_noise"):
        t = getattr(task, name).contiguous().cpu()
        h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]


def class_weight_pair(weight: float, task, norm: str, power: float = 1.0) -> tuple[float, float]:
    """(positive, negative) class weights: (w^power, 1), or with ``norm = "mean"`` rescaled to mean 1 over the
    training set, so every weighting takes steps of a similar size."""
    weight = float(weight) ** power
    if norm == "none":
        return float(weight), 1.0
    n_pos, n_neg = task.class_counts
    k = (n_pos + n_neg) / (weight * n_pos + n_neg)
    return float(weight * k), float(k)


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
PER_MEMBER = ("weight", "seed", "lr", "weight_decay", "dropout", "regime")


def stack_key(cell: dict) -> str:
    """Cells with equal keys can train in one stack."""
    return config_hash({k: v for k, v in cell.items() if k not in PER_MEMBER})


def plan_groups(cfgs: list[TrainConfig], out: str | Path = "runs") -> list[list[tuple[int, int]]]:
    """The unfinished cells of ``cfgs`` as (config index, cell index) pairs, grouped by stack key and
    ``max_models`` (the first config's) to a group, in the configs' order."""
    by_key: dict[str, list[tuple[int, int]]] = {}
    cells = [cfg.cells() for cfg in cfgs]
    for ci, cfg in enumerate(cfgs):
        for k, c in enumerate(cells[ci]):
            if not Run(out, c).finished():
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
    return groups


def run_study(cfgs: list[TrainConfig], out: str | Path = "runs", data_dir: str | None = None,
              device: str | None = None, download: bool | None = None, progress: bool = True, interrupt=None,
              wait: float = 0.0) -> list[Run]:
    """Train every unfinished model of ``cfgs`` (the regimes of a study), stacking models of different regimes
    together where their data and architecture agree; ``interrupt(epoch)`` (tests) may raise to simulate a kill.

    ``wait``: seconds to wait for a run another process is writing (0: refuse at once, naming it).
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
        if key not in tasks:  # one read of the data per distinct task
            tasks = {key: build_task(cfgs[ci], data_dir, download)}
        run_group(cfgs, out, members, dev, task=tasks[key], progress=progress, interrupt=interrupt, wait=wait)
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


def check_fingerprint(cells: list[dict], out: Path, fp: str) -> None:
    """Refuse data other than what the sweep's existing runs were trained on, naming both fingerprints."""
    for c in cells:
        stored = Run(out, c).stored_config()
        have = stored.get("data_fingerprint") if stored else None
        if have is not None and have != fp:
            raise RecordError(
                f"run {config_hash(c)} under {out} was trained on data with fingerprint {have}, but the data "
                f"read now has fingerprint {fp}: a sweep must not mix datasets; point --data-dir at the "
                "same copy, or use another --out")


def run_group(cfgs: list[TrainConfig], out: str | Path, members: list[tuple[int, int]], device: str, task=None,
              data_dir: str | None = None, download: bool | None = None, progress: bool = True,
              interrupt=None, wait: float = 0.0) -> list[str]:
    """Train one group ((config index, cell index) pairs of one stack key) under their runs' locks; return the
    hashes it finished.

    Runs another writer finished while this one waited are skipped. The unit of work a scheduler hands to a
    worker: it reads the data itself when ``task`` is not given.
    """
    out = Path(out)
    cells = [cfg.cells() for cfg in cfgs]
    all_group = [(Run(out, cells[ci][k]), cells[ci][k]) for ci, k in members]
    cfg = cfgs[members[0][0]]
    with hold_runs(out, [r.hash for r, _ in all_group], wait=wait):
        group = [(r, c) for r, c in all_group if not r.done]
        if not group:
            return []
        if task is None:
            task = build_task(cfg, data_dir, download)
        key = stack_key(group[0][1])
        siblings = [c for cs in cells for c in cs if stack_key(c) == key]
        _train_group(cfg, out, group, device, task, progress, interrupt, siblings)
    return [r.hash for r, _ in group]


def engine_setup(cfg: TrainConfig, cells: list[dict], task) -> tuple:
    """(EngineSettings, [Member]) of a stack of ``cells`` of ``cfg`` on ``task``: what the engine is built from."""
    from iwtheory.nets.engine import EngineSettings, Member

    settings = EngineSettings(model=cfg.model, batchnorm=cfg.batchnorm, hidden=cfg.hidden_widths, bias=cfg.bias,
                              loss=cfg.loss,
                              poly_alpha=cfg.poly_alpha, loss_params=dict(cfg.loss_params), momentum=cfg.momentum,
                              batch_size=cfg.batch_size, n_feature_images=cfg.n_feature_images,
                              feature_seed=cfg.subsample_seed, precision=cfg.precision,
                              channels_last=cfg.channels_last, compile=cfg.compile, eval_chunk=cfg.eval_chunk)
    members = []
    for c in cells:
        wpos, wneg = class_weight_pair(c["weight"], task, cfg.weight_norm, cfg.weight_power)
        members.append(Member(wpos, c["seed"], c["lr"], c["weight_decay"], c["dropout"], wneg=wneg))
    return settings, members


def _train_group(cfg: TrainConfig, out: Path, group, dev: str, task, progress: bool, interrupt,
                 siblings: list[dict]) -> None:
    """Train one stack group: check its data, resume from its checkpoint or start, train the epochs, finish."""
    fp = _check_data(cfg, out, task, siblings)
    evals, record = train_epochs(group[0][1])
    settings, members = engine_setup(cfg, [c for _, c in group], task)
    hashes = [r.hash for r, _ in group]
    meta = {"group": config_hash(hashes), "runs": hashes, "data_fingerprint": fp}
    (out / "_groups").mkdir(parents=True, exist_ok=True)
    ckpt = out / "_groups" / f"{meta['group']}.pt"
    stack = _resume_or_start(group, members, task, settings, dev, ckpt, fp, evals, set(record))
    _train_epochs(cfg, group, stack, ckpt, meta, dev, set(evals), set(record), progress, interrupt)
    _finish(cfg, group, stack, members, task, fp, dev, ckpt)


def _check_data(cfg: TrainConfig, out: Path, task, siblings: list[dict]) -> str:
    """The task's data fingerprint, after checking that no run of the sweep under ``out`` used other data."""
    fp = data_fingerprint(task)
    check_fingerprint(siblings, out, fp)
    if task.source:
        check_source(out, cfg.name, task.source)
    return fp


def _resume_or_start(group, members, task, settings, dev: str, ckpt: Path, fp: str, evals: list[int],
                     record_set: set[int]):
    """The group's stack: from its checkpoint when the checkpoint and the run folders agree (the metrics cut back
    to its epoch), else fresh with epoch 0 recorded; a checkpoint that cannot be trusted is set aside."""
    from iwtheory.nets.engine import Stack

    stack = Stack(members, task, settings, dev)
    extra = {"data_fingerprint": fp, **({"source_fingerprint": task.source} if task.source else {})}
    if ckpt.exists():
        try:
            header, payload = read_checkpoint(ckpt)
        except RecordError as e:
            header, payload, why = None, None, f"is unreadable ({e})"
        else:
            why = consistency(header, [r for r, _ in group], fp, evals)  # a malformed metrics line raises, naming it
        if not why:
            try:
                stack.load_bytes(payload)
            except Exception as e:  # a checksummed file torch cannot load: written by another version
                why = f"cannot be loaded into this group's models ({type(e).__name__}: {e})"
                stack = Stack(members, task, settings, dev)
        if not why:
            for r, _ in group:
                r.start(fresh=False, extra=extra)
                r.truncate_after("epoch", stack.epoch)
            return stack
        set_aside(ckpt, why)
    for r, _ in group:
        r.start(fresh=True, extra=extra)
    _record(stack, group, 0, record_set)
    return stack


def _train_epochs(cfg: TrainConfig, group, stack, ckpt: Path, meta: dict, dev: str, eval_set: set[int],
                  record_set: set[int], progress: bool, interrupt) -> None:
    """Epochs from the stack's own up to ``cfg.epochs``: records at the scheduled ones, a checkpoint every
    ``checkpoint_every`` epochs once ``checkpoint_seconds`` have passed, and one at the end."""
    regimes = "+".join(dict.fromkeys(c["regime"] for _, c in group))
    bar = progress_bar(cfg.epochs, f"{cfg.name}/{regimes} [{len(group)} models on {dev}]", "epochs",
                       initial=stack.epoch, enabled=progress)
    last_checkpoint = time.monotonic()
    while stack.epoch < cfg.epochs:
        stack.train_epoch()
        e = stack.epoch
        if e in eval_set:
            _record(stack, group, e, record_set)
        if e == cfg.epochs or (e % cfg.checkpoint_every == 0
                               and time.monotonic() - last_checkpoint >= cfg.checkpoint_seconds):
            write_checkpoint(ckpt, stack.state_bytes(), {**meta, "epoch": e})
            last_checkpoint = time.monotonic()
        bar.update(1)
        if interrupt is not None:
            interrupt(e)
    bar.close()


def _finish(cfg: TrainConfig, group, stack, members, task, fp: str, dev: str, ckpt: Path) -> None:
    """Each run's summary and ``done``, then the group's checkpoint removed (it must never make a run done
    again)."""
    import torch

    sizes = {"train": len(task.y_train), "val": len(task.y_val), **{k: len(x) for k, (x, _) in task.probes.items()}}
    for m, (r, c) in enumerate(group):
        r.write_summary({**identity(c), "config_hash": r.hash, "epochs": cfg.epochs, "task_sizes": sizes,
                         "diverged_epoch": stack.diverged_epoch[m] if stack.diverged_epoch[m] >= 0 else None,
                         "class_weights": [members[m].weight, members[m].wneg], "data_fingerprint": fp,
                         "device": str(dev), "torch": torch.__version__})
        r.finish()
    fault_point("group-finished")
    ckpt.unlink()


def _record(stack, group, epoch: int, record_epochs: set[int]) -> None:
    metrics = stack.evaluate()
    feats = stack.features() if epoch in record_epochs else None
    for m, (r, c) in enumerate(group):
        row = {"epoch": epoch, **metrics[m], "diverged": stack.diverged_epoch[m] >= 0}
        if feats is not None:
            name = f"features/epoch_{epoch:05d}.npz"
            (r.dir / "features").mkdir(exist_ok=True)
            f, w, b = (t[m].cpu().numpy() for t in feats)
            fault_point("features")
            tmp = r.dir / (name + ".tmp")
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, features=f, labels=stack.task.y_train[stack.feature_idx.to(
                    stack.device)].cpu().numpy(), weight=w, bias=b, epoch=epoch)
            os.replace(tmp, r.dir / name)
            row["features"] = name
        r.log([row])
