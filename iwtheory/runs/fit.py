"""The per-stack training loop: resume or start, train the epochs, record, finish. One place for both clients,
the TOML runner (``runs.train``) and the Python ``Study`` (``iwtheory.study``).

``train_group`` takes a group of runs (their resolved cells), the stack's settings, a task and, for a user's
model, its factory (seed -> nn.Module); the weighting of each model comes from its cell (``weights``
below), the schedule from the first cell (``runs.schedule``).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from iwtheory.runs.checkpoints import consistency, read_checkpoint, set_aside, write_checkpoint
from iwtheory.runs.config import config_hash
from iwtheory.runs.progress import progress as progress_bar
from iwtheory.runs.records import SWEEP, RecordError, Run, fault_point, identity, mark_quick, read_json
from iwtheory.runs.schedule import lr_factor, train_epochs

_warned_features: set[str] = set()


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
    """SHA-256 (16 hex digits) of every array the runs train, validate and are probed on (the probe sets in
    order, each with its labels where it has them)."""
    h = hashlib.sha256()
    arrays = [("x_train", task.x_train), ("y_train", task.y_train), ("x_val", task.x_val), ("y_val", task.y_val)]
    for name, (x, y) in task.probes.items():
        arrays += [(f"x_{name}", x)] + ([(f"y_{name}", y)] if y is not None else [])
    # a task's own weights are data too (absent from the image tasks, whose fingerprints stay as they were)
    if task.r_train is not None:
        arrays += [("r_train", task.r_train), ("r_val", task.r_val)]
    for name in sorted(task.v_train):
        arrays += [(f"v_train_{name}", task.v_train[name]), (f"v_val_{name}", task.v_val[name])]
    for name, t in arrays:
        t = t.contiguous().cpu()
        h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]


def weights_fingerprint(task) -> str:
    """SHA-256 (16 hex digits) of the task's per-example weights (training and validation)."""
    h = hashlib.sha256()
    parts = [task.r_train, task.r_val] if task.r_train is not None else []
    parts += [t for name in sorted(task.v_train) for t in (task.v_train[name], task.v_val[name])]
    for t in parts:
        h.update(t.contiguous().cpu().double().numpy().tobytes())
    return h.hexdigest()[:16]


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


def class_weight_pair(weight: float, task, norm: str, power: float = 1.0) -> tuple[float, float]:
    """(positive, negative) class weights: (w^power, 1), or with ``norm = "mean"`` rescaled to mean 1 over the
    training set, so every weighting takes steps of a similar size."""
    weight = float(weight) ** power
    if norm == "none":
        return float(weight), 1.0
    n_pos, n_neg = task.class_counts
    k = (n_pos + n_neg) / (weight * n_pos + n_neg)
    return float(weight * k), float(k)


def member_weights(cell: dict, task, norm: str, power: float) -> dict:
    """The engine's ``Member`` weight fields for one cell: class weights (``weight``: the positive class's, or
    ``class_weight``: one per class), or powers of the task's per-example weights (``power``: r^p, p = 0 the
    unweighted partner)."""
    def per_example(train, val, unweighted: bool, p: float = 1.0) -> dict:
        return {"example_weights": train.double().numpy() ** p,
                "val_weights": val.double().numpy() ** p if len(task.y_val) else None, "unweighted": unweighted}

    if "power" in cell:
        if task.r_train is None:
            raise RecordError(f"run {config_hash(cell)} sweeps powers of per-example weights, but its task has none")
        return per_example(task.r_train, task.r_val, float(cell["power"]) == 0.0, float(cell["power"]))
    if "vector" in cell:
        name = cell["vector"]
        if name not in task.v_train:
            raise RecordError(f"run {config_hash(cell)} trains with the weight vector {name!r}, which its task lacks "
                              f"(it has {sorted(task.v_train)})")
        return per_example(task.v_train[name], task.v_val[name], name == "uniform")
    if cell.get("class_weight") is not None:
        cw = np.asarray(cell["class_weight"], dtype=float)
        if task.binary:
            raise RecordError("class_weight vectors are for K-class tasks; a binary task's weight is 'weight'")
        y_tr, y_va = task.y_train.numpy(), task.y_val.numpy()
        return {"example_weights": cw[y_tr], "val_weights": cw[y_va] if len(y_va) else None,
                "unweighted": bool(np.all(cw == cw[0]))}
    wpos, wneg = class_weight_pair(cell["weight"], task, norm, power)
    return {"weight": wpos, "wneg": wneg}


def loss_params_for(cfg, task) -> dict:
    """The binary loss parameters a stack trains with: the config's, with ``counts = "train"`` resolved to the class
    counts of the training set drawn (the papers' recipe: balanced data is adjusted by nothing)."""
    from iwtheory.theory.limits import resolve_params

    params = dict(cfg.loss_params)
    if params.get("counts") == "train":
        params = resolve_params(cfg.loss, {**params, "counts": tuple(int(n) for n in task.class_counts)})
    return params


def engine_setup(cfg, cells: list[dict], task) -> tuple:
    """(EngineSettings, [Member]) of a stack of ``cells`` of ``cfg`` on ``task``: what the engine is built from."""
    import dataclasses

    from iwtheory.nets.engine import EngineSettings, Member

    # every setting the engine shares with the config by name, and the two it names otherwise
    same = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(EngineSettings) if hasattr(cfg, f.name)}
    settings = EngineSettings(**{**same, "hidden": cfg.hidden_widths, "feature_seed": cfg.subsample_seed,
                                 "loss_params": loss_params_for(cfg, task)})
    members = []
    for c in cells:
        w = member_weights(c, task, cfg.weight_norm, cfg.weight_power)
        members.append(Member(w.pop("weight", 1.0), c["seed"], c["lr"], c["weight_decay"], c["dropout"],
                              wneg=w.pop("wneg", 1.0), **w))
    return settings, members


def train_group(cfg, out: Path, group, dev: str, task, progress: bool, interrupt, siblings: list[dict],
                factory=None, planned: dict | None = None) -> None:
    """Train one stack group: check its data, resume from its checkpoint or start, train the epochs, finish."""
    fp = _check_data(cfg, out, task, siblings)
    group = [(r, c, not r.done) for r, c in group]  # a run done before a kill: trained again, never rewritten
    factory = factory or cfg.factory()
    evals, record = train_epochs(group[0][1])
    settings, members = engine_setup(cfg, [c for _, c, _ in group], task)
    hashes = [r.hash for r, _, _ in group]
    meta = {"group": config_hash(hashes), "runs": hashes, "data_fingerprint": fp}
    (out / "_groups").mkdir(parents=True, exist_ok=True)
    ckpt = out / "_groups" / f"{meta['group']}.pt"
    stack = _resume_or_start(group, members, task, settings, dev, ckpt, fp, evals, set(record), factory)
    for r, c, active in group:  # beside each run it writes: what its sweep plans (a report can then tell a partial
        if not active:          # one) and whether it is a quick variant's; a finished run's folder stays as it is
            continue
        if planned and c["regime"] in planned:
            (r.dir / SWEEP).write_text(json.dumps({"experiment": c["experiment"], "regime": c["regime"],
                                                   "planned": planned[c["regime"]]}) + "\n")
        mark_quick(cfg, r)
    _train_epochs(cfg, group, stack, ckpt, meta, dev, set(evals), set(record), progress, interrupt)
    _finish(cfg, group, stack, members, task, fp, dev, ckpt)


def _check_data(cfg, out: Path, task, siblings: list[dict]) -> str:
    """The task's data fingerprint, after checking that no run of the sweep under ``out`` used other data."""
    fp = data_fingerprint(task)
    check_fingerprint(siblings, out, fp)
    if task.source:
        check_source(out, cfg.name, task.source)
    return fp


def _resume_or_start(group, members, task, settings, dev: str, ckpt: Path, fp: str, evals: list[int],
                     record_set: set[int], factory=None):
    """The group's stack: from its checkpoint when the checkpoint and the run folders agree (the metrics cut back
    to its epoch), else fresh with epoch 0 recorded; a checkpoint that cannot be trusted is set aside."""
    from iwtheory.nets.engine import Stack

    stack = Stack(members, task, settings, dev, factory=factory)
    extra = {"data_fingerprint": fp, **({"source_fingerprint": task.source} if task.source else {}),
             **({"weights_fingerprint": weights_fingerprint(task)} if task.r_train is not None or task.v_train
                else {})}
    if ckpt.exists():
        try:
            header, payload = read_checkpoint(ckpt)
        except RecordError as e:
            header, payload, why = None, None, f"is unreadable ({e})"
        else:
            # a malformed metrics line raises, naming it
            why = consistency(header, [r for r, _, _ in group], fp, evals, finished={r.hash for r, _, a in group
                                                                                     if not a})
        if not why:
            try:
                stack.load_bytes(payload)
            except Exception as e:  # a checksummed file torch cannot load: written by another version
                why = f"cannot be loaded into this group's models ({type(e).__name__}: {e})"
                stack = Stack(members, task, settings, dev, factory=factory)
        if not why:
            for r, _, active in group:
                if active:
                    r.start(fresh=False, extra=extra)
                    r.truncate_after("epoch", stack.epoch)
            return stack
        set_aside(ckpt, why)
    for r, _, active in group:
        if active:
            r.start(fresh=True, extra=extra)
    _record(stack, group, 0, record_set)
    return stack


def _train_epochs(cfg, group, stack, ckpt: Path, meta: dict, dev: str, eval_set: set[int],
                  record_set: set[int], progress: bool, interrupt) -> None:
    """Epochs from the stack's own up to ``cfg.epochs``: records at the scheduled ones, a checkpoint every
    ``checkpoint_every`` epochs once ``checkpoint_seconds`` have passed, and one at the end."""
    regimes = "+".join(dict.fromkeys(c["regime"] for _, c, _ in group))
    bar = progress_bar(cfg.epochs, f"{cfg.name}/{regimes} [{len(group)} models on {dev}]", "epochs",
                       initial=stack.epoch, enabled=progress)
    last_checkpoint = time.monotonic()
    while stack.epoch < cfg.epochs:
        stack.lr_factor = lr_factor(stack.epoch, cfg.epochs, cfg.lr_decay)
        stack.train_epoch()
        e = stack.epoch
        if e in eval_set:
            _record(stack, group, e, record_set)
        if e == cfg.epochs or (e % cfg.checkpoint_every == 0
                               and time.monotonic() - last_checkpoint >= cfg.checkpoint_seconds):
            for r, _, active in group:  # the metrics a checkpoint counts on reach the disk before it does
                if active:
                    r.sync()
            write_checkpoint(ckpt, stack.state_bytes(), {**meta, "epoch": e})
            last_checkpoint = time.monotonic()
        bar.update(1)
        if interrupt is not None:
            interrupt(e)
    bar.close()


def _finish(cfg, group, stack, members, task, fp: str, dev: str, ckpt: Path) -> None:
    """Each run's summary and ``done``, then the group's checkpoint removed (it must never make a run done
    again)."""
    import torch

    sizes = {"train": len(task.y_train), "val": len(task.y_val), **{k: len(x) for k, (x, _) in task.probes.items()}}
    distances = probe_distances(task)
    for m, (r, c, active) in enumerate(group):
        if not active:
            continue
        r.write_summary({**identity(c), "config_hash": r.hash, "epochs": cfg.epochs, "task_sizes": sizes,
                         "diverged_epoch": stack.diverged_epoch[m] if stack.diverged_epoch[m] >= 0 else None,
                         "class_weights": [members[m].weight, members[m].wneg], "data_fingerprint": fp,
                         **({"loss_params": stack.s.loss_params} if cfg.loss_params.get("counts") == "train" else {}),
                         "probe_distances": distances, "device": str(dev), "torch": torch.__version__})
        r.finish()
    fault_point("group-finished")
    ckpt.unlink()


MAX_DISTANCE_POINTS = 2000  # points per set the distances are measured on (a seeded subset beyond it)


def probe_distances(task) -> dict[str, float]:
    """How far each probe set lies from the training data, in the normalised input space the nets read: the median
    over a set's points of the Euclidean distance to the nearest training point; ``train``: the same among the
    training points (each to its nearest other). Where a probe set is far beyond ``train``, a net's predictions
    there are set by directions the data does not pin down."""
    import torch

    def flat(x):
        x = torch.as_tensor(x)
        if len(x) > MAX_DISTANCE_POINTS:
            x = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:MAX_DISTANCE_POINTS]]
        return task.normalise(x).reshape(len(x), -1).double()

    tr = flat(task.x_train)
    if len(tr) < 2:
        return {}
    d = torch.cdist(tr, tr)
    d.fill_diagonal_(float("inf"))
    out = {"train": float(d.min(dim=1).values.median())}
    for name, (x, _) in task.probes.items():
        if len(x):
            out[name] = float(torch.cdist(flat(x), tr).min(dim=1).values.median())
    return out


def _record(stack, group, epoch: int, record_epochs: set[int]) -> None:
    metrics = stack.evaluate()
    feats = stack.features() if epoch in record_epochs else None
    if epoch in record_epochs and feats is None and stack.task.source not in _warned_features:
        _warned_features.add(stack.task.source)
        why = "a K-class task" if not stack.task.binary else "a model without features() and a linear head"
        print(f"note: {why}: the feature-space measurements are skipped", file=sys.stderr)
    for m, (r, c, active) in enumerate(group):
        if not active:
            continue
        row = {"epoch": epoch, "step": epoch * stack.steps_per_epoch, **metrics[m],
               "diverged": stack.diverged_epoch[m] >= 0}
        if feats is not None:
            name = f"features/epoch_{epoch:05d}.npz"
            (r.dir / "features").mkdir(exist_ok=True)
            f, w, b = (t[m].cpu().numpy() for t in feats)
            fault_point("features")
            tmp = r.dir / (name + ".tmp")
            # uncompressed: zlib saved 0.4% of a features file (48,129 against 48,308 bytes) for 0.3 s of zlib in a
            # 40-epoch run of the study (profiled)
            with open(tmp, "wb") as fh:
                np.savez(fh, features=f, labels=stack.task.y_train[stack.feature_idx.to(
                    stack.device)].cpu().numpy(), weight=w, bias=b, epoch=epoch)
            os.replace(tmp, r.dir / name)
            row["features"] = name
        r.log([row], sync=False)
