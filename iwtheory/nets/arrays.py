"""A researcher's own task: arrays in, every check made before anything is trained or written.

    task = Task(x, y, weights=r, probes={"test": (x_test, y_test), "shifted": x_target})

- ``x``: inputs of any shape (N, ...), numpy or torch, finite numbers.
- ``y``: labels. Two distinct values make a binary task: {-1, +1} and {0, 1} name their positive class
  themselves (+1, 1); any other pair needs ``positive=`` naming it. Three or more distinct values make a
  K-class task (labels 0..K-1 in sorted order of the values). One value, a ``positive`` that is not a
  label, or NaN labels are refused. No row is ever dropped.
- ``weights``: per-example importance weights r (N,): density ratios, propensity weights. Finite, >= 0,
  not all zero. Weightings sweep powers r^p of them (p = 0: the unweighted partner).
- ``vectors``: explicit weight vectors by name ({"uniform": ones, "clipped": min(r, 10), ...}), each checked as
  ``weights`` are; one must be named ``uniform`` (all ones), the unweighted partner.
- ``probes``: named probe sets, each an array of inputs or an ``(x, y)`` pair with labels in the task's
  classes; names are lower-case identifiers (they become record columns).
- ``normalise``: ``None`` (inputs as given), ``"standardise"`` (per-feature mean and standard deviation of
  the training inputs) or ``{"mean": m, "std": s}`` (arrays that broadcast against one input): the
  normalisation is data, stored with the task and its fingerprint.

The validation split and the tensors the engine trains on come from ``tensors``.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

from iwtheory.theory import seeds

NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
RESERVED = ("train", "val")
MAX_CLASSES = 1000


class TaskError(ValueError):
    """A task whose arrays, labels, weights or probes cannot be trained on as given."""


def _array(v, what: str, dtype=np.float32) -> np.ndarray:
    if hasattr(v, "detach"):  # a torch tensor
        v = v.detach().cpu().numpy()
    try:
        a = np.asarray(v)
    except Exception as e:  # ragged lists and the like
        raise TaskError(f"{what}: not an array ({type(e).__name__}: {e})") from None
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise TaskError(f"{what}: expected numbers, got an array of {a.dtype}")
    a = a.astype(dtype, copy=False)
    if not np.isfinite(a).all():
        bad = int((~np.isfinite(a)).sum())
        raise TaskError(f"{what}: {bad} NaN or infinite value(s)")
    return a


def _inputs(v, what: str, shape: tuple | None = None) -> np.ndarray:
    a = _array(v, what)
    if a.ndim < 2:
        raise TaskError(f"{what}: inputs must be (N, ...) with at least one feature axis; got shape {a.shape} "
                        "(reshape a 1-D array to (N, 1))")
    if shape is not None and a.shape[1:] != shape:
        raise TaskError(f"{what}: each input must have the training inputs' shape {shape}; got {a.shape[1:]}")
    return np.ascontiguousarray(a)


def _raw_labels(v, what: str) -> np.ndarray:
    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    a = np.asarray(v)
    if a.ndim != 1:
        raise TaskError(f"{what}: labels must be one value per example (N,); got shape {a.shape}")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise TaskError(f"{what}: {int((~np.isfinite(a)).sum())} NaN or infinite label(s)")
    if a.dtype == object or a.dtype.kind not in "biufUS":
        raise TaskError(f"{what}: labels must be numbers or strings; got {a.dtype}")
    return a


def _same(a, b) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


class Task:
    """A task of arrays (see the module's docstring): inputs, labels, optional per-example weights, named
    probe sets and the normalisation, checked on construction."""

    def __init__(self, x, y, weights=None, probes: dict | None = None, positive=None, normalise=None,
                 name: str = "task", vectors: dict | None = None):
        if not isinstance(name, str) or not NAME.match(name):
            raise TaskError(f"name must be a lower-case identifier (a-z, 0-9, _; at most 32); got {name!r}")
        self.name = name
        self.x = _inputs(x, "x")
        labels = _raw_labels(y, "y")
        if len(labels) != len(self.x):
            raise TaskError(f"x has {len(self.x)} examples but y has {len(labels)} labels")
        if len(self.x) < 2:
            raise TaskError(f"a task needs at least 2 training examples; got {len(self.x)}")
        values = np.unique(labels)
        if len(values) < 2:
            raise TaskError(f"y holds one label value ({values[0]!r}); a task needs at least two classes")
        if len(values) > MAX_CLASSES:
            raise TaskError(f"y holds {len(values)} distinct values, more than {MAX_CLASSES} classes: "
                            "are these labels (not a continuous target)?")
        self.values = values
        if len(values) == 2:
            self.n_classes = 2
            self.positive = self._positive(values, positive)
        else:
            if positive is not None:
                raise TaskError(f"positive= names the positive class of a binary task; y has {len(values)} "
                                "classes (a K-class task)")
            self.n_classes, self.positive = len(values), None
        self.y = self.encode(labels, "y")
        self.weights = None if weights is None else self._weight_vector(weights, "weights")
        self.vectors = {}
        for vname, v in (vectors or {}).items():
            if not isinstance(vname, str) or not NAME.match(vname):
                raise TaskError(f"weight vector name {vname!r}: use a lower-case identifier (a-z, 0-9, _)")
            self.vectors[vname] = self._weight_vector(v, f"weight vector {vname!r}")
        if self.vectors and "uniform" not in self.vectors:
            raise TaskError("explicit weight vectors need one named 'uniform' (all ones): the unweighted partner "
                            "every effect is measured against")
        if "uniform" in self.vectors and not np.all(self.vectors["uniform"] == self.vectors["uniform"][0]):
            raise TaskError("the weight vector 'uniform' must weigh every example alike")
        self.probes = {}
        for pname, p in (probes or {}).items():
            if not isinstance(pname, str) or not NAME.match(pname) or pname in RESERVED:
                raise TaskError(f"probe name {pname!r}: use a lower-case identifier (a-z, 0-9, _; at most 32), "
                                f"not {RESERVED}")
            px, py = p if isinstance(p, tuple) else (p, None)
            px = _inputs(px, f"probe {pname!r}", self.x.shape[1:])
            if py is not None:
                yl = _raw_labels(py, f"probe {pname!r} labels")
                if len(yl) != len(px):
                    raise TaskError(f"probe {pname!r}: {len(px)} inputs but {len(yl)} labels")
                py = self.encode(yl, f"probe {pname!r} labels")
            if len(px) == 0:
                raise TaskError(f"probe {pname!r} is empty")
            self.probes[pname] = (px, py)
        self.mean, self.std = self._normalisation(normalise)

    def _weight_vector(self, v, what: str) -> np.ndarray:
        w = _array(v, what, np.float64)
        if w.shape != (len(self.x),):
            raise TaskError(f"{what} must be one number per example ({len(self.x)},); got shape {w.shape}")
        if (w < 0).any():
            raise TaskError(f"{what}: {int((w < 0).sum())} negative value(s) (first at example "
                            f"{int(np.flatnonzero(w < 0)[0])}); importance weights are >= 0")
        if not (w > 0).any():
            raise TaskError(f"{what} are all zero: nothing would be trained")
        return w

    # ---- labels --------------------------------------------------------------------------------

    def _positive(self, values: np.ndarray, positive):
        if positive is not None:
            hits = [v for v in values if _same(v, positive)]
            if not hits:
                raise TaskError(f"positive={positive!r} is not one of the labels {values.tolist()}")
            return hits[0]
        as_set = set(values.tolist())
        for pair, pos in (({-1, 1}, 1), ({0, 1}, 1)):
            if values.dtype.kind in "biuf" and as_set == pair:
                return values[values == pos][0]
        raise TaskError(f"the two labels {values.tolist()} do not say which is positive: pass positive= (one of "
                        "them), or use {-1, +1} or {0, 1}")

    def encode(self, labels: np.ndarray, what: str) -> np.ndarray:
        """Labels as the engine reads them: +-1 (float32) for two classes, 0..K-1 (int64) for K."""
        known = np.isin(labels, self.values)
        if not known.all():
            first = labels[~known][0]
            raise TaskError(f"{what}: {int((~known).sum())} label(s) outside the task's classes "
                            f"{self.values.tolist()} (first {first!r})")
        if self.n_classes == 2:
            return np.where(labels == self.positive, 1.0, -1.0).astype(np.float32)
        return np.searchsorted(self.values, labels).astype(np.int64)

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names in label order (binary: negative, positive)."""
        if self.n_classes == 2:
            neg = [v for v in self.values if not _same(v, self.positive)][0]
            return str(neg), str(self.positive)
        return tuple(str(v) for v in self.values)

    def class_counts(self) -> np.ndarray:
        """Training examples per class, in label order (binary: negatives, positives)."""
        if self.n_classes == 2:
            return np.array([(self.y < 0).sum(), (self.y > 0).sum()])
        return np.bincount(self.y, minlength=self.n_classes)

    # ---- normalisation and identity ------------------------------------------------------------

    def _normalisation(self, how) -> tuple[np.ndarray, np.ndarray]:
        shape = self.x.shape[1:]
        if how is None:
            return np.zeros((), np.float32), np.ones((), np.float32)
        if isinstance(how, str) and how == "standardise":
            return self.x.mean(0), np.maximum(self.x.std(0), 1e-6).astype(np.float32)
        if isinstance(how, dict) and set(how) == {"mean", "std"}:
            m, s = _array(how["mean"], "normalise mean"), _array(how["std"], "normalise std")
            for a, what in ((m, "mean"), (s, "std")):
                try:
                    np.broadcast_to(a, shape)
                except ValueError:
                    raise TaskError(f"normalise {what} of shape {a.shape} does not broadcast to an input of "
                                    f"shape {shape}") from None
            if (s <= 0).any():
                raise TaskError("normalise std must be positive")
            return m, s
        raise TaskError(f"normalise must be None, 'standardise' or {{'mean': ..., 'std': ...}}; got {how!r}")

    def fingerprint(self) -> str:
        """SHA-256 (16 hex digits) of the inputs, labels, probes and normalisation (not the weights)."""
        h = hashlib.sha256()
        parts = [("x", self.x), ("y", self.y), ("mean", self.mean), ("std", self.std)]
        for k, (px, py) in self.probes.items():
            parts += [(f"probe:{k}", px)] + ([(f"probe:{k}:y", py)] if py is not None else [])
        for name, a in parts:
            a = np.ascontiguousarray(a)
            h.update(f"{name}{a.shape}{a.dtype}".encode())
            h.update(a.tobytes())
        return h.hexdigest()[:16]

    def __repr__(self) -> str:
        return (f"Task({self.name!r}: {len(self.x)} examples of shape {self.x.shape[1:]}, {self.n_classes} classes "
                f"{list(self.classes)}, weights {'given' if self.weights is not None else 'none'}, probes "
                f"{list(self.probes)})")

    # ---- the engine's form ---------------------------------------------------------------------

    def split(self, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """(train, val) indices: ``val_fraction`` of each class held out, drawn without replacement."""
        if not 0 <= val_fraction < 1:
            raise TaskError(f"val_fraction must lie in [0, 1); got {val_fraction}")
        if val_fraction == 0:
            return np.arange(len(self.y)), np.arange(0)
        rng = seeds.rng(seed, "validation")
        tr, va = [], []
        for k in (np.unique(self.y)):
            idx = np.flatnonzero(self.y == k)
            n = int(round(val_fraction * len(idx)))
            if not 1 <= n < len(idx):
                raise TaskError(f"val_fraction {val_fraction} leaves no validation or no training examples of "
                                f"class {k} ({len(idx)} examples)")
            v = np.sort(rng.choice(idx, n, replace=False))
            va.append(v)
            tr.append(np.setdiff1d(idx, v))
        return np.sort(np.concatenate(tr)), np.sort(np.concatenate(va))

    def tensors(self, val_fraction: float = 0.0, seed: int = 0):
        """The engine's task (``iwtheory.nets.data.Task``): tensors, the validation split drawn by ``seed``."""
        import torch

        from iwtheory.nets.data import Task as TensorTask

        tr, va = self.split(val_fraction, seed)
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
        r = None if self.weights is None else self.weights
        neg, pos = self.classes if self.n_classes == 2 else ("neg", "pos")
        return TensorTask(t(self.x[tr]), t(self.y[tr]),
                          {k: (t(px), None if py is None else t(py)) for k, (px, py) in self.probes.items()},
                          t(self.mean), t(self.std), pos, neg, tr, t(self.x[va]), t(self.y[va]),
                          source=self.fingerprint(), divisor=1.0, n_classes=self.n_classes, classes=self.classes,
                          r_train=None if r is None else t(r[tr]), r_val=None if r is None else t(r[va]),
                          v_train={k: t(v[tr]) for k, v in self.vectors.items()},
                          v_val={k: t(v[va]) for k, v in self.vectors.items()})


def load_npz(path, max_bytes: int = 2**32) -> Task:
    """A task from an ``.npz`` file: arrays ``x``, ``y``, optional ``weights`` and ``positive``, probe inputs
    ``probe_<name>`` with optional labels ``probe_<name>_y``; read without pickles, size checked first."""
    import os
    import zipfile

    path = os.fspath(path)
    if os.path.islink(path) or not os.path.isfile(path):
        raise TaskError(f"{path}: not a regular file")
    size = os.path.getsize(path)
    if size > max_bytes:
        raise TaskError(f"{path}: {size} bytes, more than the {max_bytes} a data file may hold")
    try:
        with zipfile.ZipFile(path) as z:
            declared = sum(i.file_size for i in z.infolist())
        if declared > 4 * max_bytes:
            raise TaskError(f"{path}: its arrays declare {declared} bytes, more than {4 * max_bytes}")
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise TaskError(f"{path}: not a readable .npz file ({e})") from None
    for need in ("x", "y"):
        if need not in arrays:
            raise TaskError(f"{path}: no array {need!r} (it holds {sorted(arrays)})")
    known = {"x", "y", "weights", "positive"} | {k for k in arrays if k.startswith("weights_")}
    vectors = {k[len("weights_"):]: arrays[k] for k in sorted(arrays) if k.startswith("weights_")}
    probes = {}
    for k in sorted(arrays):
        if k.startswith("probe_") and not k.endswith("_y"):
            name = k[len("probe_"):]
            probes[name] = (arrays[k], arrays[f"{k}_y"]) if f"{k}_y" in arrays else arrays[k]
            known |= {k, f"{k}_y"}
    unknown = sorted(set(arrays) - known)
    if unknown:
        raise TaskError(f"{path}: unknown array(s) {unknown}; a task file holds x, y, weights, weights_<name>, "
                        "positive, probe_<name> and probe_<name>_y")
    positive = arrays["positive"].item() if "positive" in arrays else None
    return Task(arrays["x"], arrays["y"], weights=arrays.get("weights"), probes=probes, positive=positive,
                vectors=vectors)
