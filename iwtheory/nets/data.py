"""Tasks as tensors: binary tasks from image datasets (class pairs, seeded subsampling, probe sets,
normalisation), and the tensor form of a user's task of arrays (``iwtheory.task``).

Labels are +1 for the positive class (dog by default) and -1 for the negative one (cat), so
y * f(x) is the margin of the theory. Images stay uint8 until a batch is drawn; on a GPU
the whole task lives on the device.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from iwtheory.nets.readers import ImageData
from iwtheory.theory import seeds


@dataclass
class Task:
    """A task with its probe sets, as tensors on one device.

    ``x_*`` are uint8 images (N, C, H, W), float32 points, or a user's float32 inputs of any shape (N, ...).
    ``y_*`` are float32 +-1 for two classes (``n_classes == 2``), int64 0..K-1 for K classes. ``normalise``
    maps inputs to what the models read: ``(x / divisor - mean) / std``, ``mean``/``std`` broadcast against
    one input (images: per channel, (C, 1, 1); a user's task: whatever it declares). ``probes`` are named
    probe sets in order, each (inputs, labels or None); the image tasks have ``test`` (the task's test images,
    labelled), ``other`` (test images of every other class) and ``noise`` (seeded uniform noise). ``val`` is
    a held-out split of the training examples (possibly empty), for early stopping; ``flipped`` marks training
    labels flipped by label noise. ``r_train``/``r_val`` are per-example importance weights (density ratios,
    propensities) when the task has them: the weightings that read them take powers of them.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    probes: dict
    mean: torch.Tensor
    std: torch.Tensor
    pos: str = "pos"
    neg: str = "neg"
    train_index: np.ndarray | None = None  # indices into the source training split (for audits)
    x_val: torch.Tensor | None = None
    y_val: torch.Tensor | None = None
    flipped: np.ndarray | None = None
    source: str = ""               # fingerprint of the dataset the task was drawn from (set by the runner)
    divisor: float = 255.0         # images are scaled by 1/255 before standardising
    n_classes: int = 2
    classes: tuple = ()            # the class names, in label order (binary: negative, positive)
    r_train: torch.Tensor | None = None
    r_val: torch.Tensor | None = None
    v_train: dict = field(default_factory=dict)  # explicit weight vectors by name (training, validation examples)
    v_val: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.x_val is None:
            self.x_val = self.x_train[:0]
            self.y_val = self.y_train[:0]
        if self.flipped is None:
            self.flipped = np.zeros(len(self.y_train), dtype=bool)
        if self.train_index is None:
            self.train_index = np.arange(len(self.y_train))
        if not self.classes:
            self.classes = (self.neg, self.pos) if self.n_classes == 2 else tuple(str(k) for k in
                                                                                 range(self.n_classes))

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def binary(self) -> bool:
        return self.n_classes == 2

    @property
    def class_counts(self) -> tuple[int, int]:
        """(positives, negatives) among the training labels as trained on (two classes)."""
        n_pos = int((self.y_train > 0).sum())
        return n_pos, len(self.y_train) - n_pos

    # the image tasks' three probe sets by their old names (benchmarks and audits read them)
    x_test = property(lambda self: self.probes["test"][0])
    y_test = property(lambda self: self.probes["test"][1])
    x_other = property(lambda self: self.probes["other"][0])
    x_noise = property(lambda self: self.probes["noise"][0])

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """Inputs (uint8 images, or floats) -> float32 ``(x / divisor - mean) / std``."""
        # float input must not be divided in place: it is the task's own tensor
        x = x.float().div_(self.divisor) if x.dtype == torch.uint8 else x.float() / self.divisor
        return (x - self.mean) / self.std

    def to(self, device) -> "Task":
        def move(v):
            if isinstance(v, torch.Tensor):
                return v.to(device)
            if isinstance(v, dict):
                return {k: (t.to(device) if isinstance(t, torch.Tensor) else
                            tuple(None if u is None else u.to(device) for u in t)) for k, t in v.items()}
            return v

        return Task(**{k: move(v) for k, v in vars(self).items()})


def image_probes(x_test, y_test, x_other, x_noise) -> dict:
    """The image tasks' probe sets: the task's test images (labelled), other classes, noise."""
    return {"test": (x_test, y_test), "other": (x_other, None), "noise": (x_noise, None)}


def subsample_indices(idx: np.ndarray, keep, rng: np.random.Generator) -> np.ndarray:
    """``keep`` of ``idx`` (a count, or a ratio in (0, 1]) drawn without replacement, in original order."""
    n = len(idx)
    if keep is None:
        return idx
    k = int(round(keep * n)) if isinstance(keep, float) else int(keep)
    if isinstance(keep, float) and not 0 < keep <= 1:
        raise ValueError(f"a subsampling ratio must lie in (0, 1]; got {keep}")
    if not 1 <= k <= n:
        raise ValueError(f"cannot keep {k} of {n} examples (subsampling is without replacement)")
    return np.sort(rng.choice(idx, size=k, replace=False))


def split_validation(idx: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(train, val): ``fraction`` of ``idx`` held out without replacement, both in original order."""
    if not 0 <= fraction < 1:
        raise ValueError(f"a validation fraction must lie in [0, 1); got {fraction}")
    k = int(round(fraction * len(idx)))
    if fraction > 0 and not 1 <= k < len(idx):
        raise ValueError(f"a validation fraction of {fraction} leaves no validation or no training images "
                         f"of a class with {len(idx)}")
    val = np.sort(rng.choice(idx, size=k, replace=False)) if k else idx[:0]
    return np.setdiff1d(idx, val), val


def flip_labels(n: int, share: float, rng: np.random.Generator) -> np.ndarray:
    """A boolean mask marking round(share * n) of n labels, drawn without replacement."""
    if not 0 <= share < 0.5:
        raise ValueError(f"a label-noise share must lie in [0, 0.5); got {share}")
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, size=int(round(share * n)), replace=False)] = True
    return mask


def make_task(images: ImageData, pos: str = "dog", neg: str = "cat", keep_pos=None, keep_neg=None,
              subsample_seed: int = 0, noise_count: int = 1000, noise_seed: int = 0,
              max_other: int | None = None, val_fraction: float = 0.0, label_noise: float = 0.0,
              max_test: int | None = None) -> Task:
    """Build the binary task ``pos`` (+1) vs ``neg`` (-1) with its probe sets.

    ``keep_pos``/``keep_neg`` subsample each class of the training split (a count or a ratio),
    without replacement, seeded by ``subsample_seed``. ``val_fraction`` of each class is then held
    out as a validation split, and ``label_noise`` of the remaining training labels are flipped
    (both seeded by ``subsample_seed`` too). The test split gives the task's test set and, from all
    other classes, the ``other`` probe set (at most ``max_other``, seeded); ``max_test`` caps the task's
    test set the same way.
    """
    names = list(images.classes)
    for c in (pos, neg):
        if c not in names:
            raise ValueError(f"unknown class {c!r} for {images.name}; classes are {names}")
    if pos == neg:
        raise ValueError("the positive and negative classes must differ")
    ip, ineg = names.index(pos), names.index(neg)
    rng = seeds.rng(subsample_seed, "subsample")
    tr_pos = subsample_indices(np.flatnonzero(images.y_train == ip), keep_pos, rng)
    tr_neg = subsample_indices(np.flatnonzero(images.y_train == ineg), keep_neg, rng)
    split_rng = seeds.rng(subsample_seed, "validation")  # its own stream: subsampling stays as it was
    (tr_pos, va_pos), (tr_neg, va_neg) = (split_validation(i, val_fraction, split_rng) for i in (tr_pos, tr_neg))
    tr = np.concatenate([tr_pos, tr_neg])
    va = np.concatenate([va_pos, va_neg])
    flipped = flip_labels(len(tr), label_noise, seeds.rng(subsample_seed, "label_noise"))
    te = np.flatnonzero((images.y_test == ip) | (images.y_test == ineg))
    other = np.flatnonzero((images.y_test != ip) & (images.y_test != ineg))
    if max_test and len(te) > max_test:
        te = np.sort(seeds.rng(subsample_seed, "test_cap").choice(te, max_test, replace=False))
    if max_other is not None and len(other) > max_other:
        other = np.sort(seeds.rng(subsample_seed, "other_probe").choice(other, max_other, replace=False))

    def signs(labels):
        return torch.from_numpy(np.where(labels == ip, 1.0, -1.0).astype(np.float32))

    x_train = torch.from_numpy(np.ascontiguousarray(images.x_train[tr]))
    mean, std = _channel_stats(x_train.float() / 255.0)
    noise = seeds.rng(noise_seed, "noise_probe").integers(0, 256, size=(noise_count, *images.x_train.shape[1:]),
                                                       dtype=np.uint8)
    y_train = signs(images.y_train[tr])
    y_train[torch.from_numpy(flipped)] *= -1
    probes = image_probes(torch.from_numpy(np.ascontiguousarray(images.x_test[te])), signs(images.y_test[te]),
                          torch.from_numpy(np.ascontiguousarray(images.x_test[other])), torch.from_numpy(noise))
    return Task(x_train, y_train, probes, mean[:, None, None], std[:, None, None], pos, neg, tr,
                torch.from_numpy(np.ascontiguousarray(images.x_train[va])), signs(images.y_train[va]), flipped)


def _channel_stats(xf: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return xf.mean(dim=(0, 2, 3)), xf.std(dim=(0, 2, 3)).clamp_min(1e-6)


def points_task(X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray, y_test: np.ndarray,
                noise_count: int = 500, noise_seed: int = 0, val_fraction: float = 0.0,
                split_seed: int = 0) -> Task:
    """A task of float feature vectors (the 2-D toy) in the engine's layout (N, d, 1, 1).

    The noise probe set is uniform over the box spanned by the training points; the task's test
    points double as the ``other`` probe set (a toy has no other classes).
    """
    X_train, X_test = np.asarray(X_train, dtype=np.float32), np.asarray(X_test, dtype=np.float32)
    rng = seeds.rng(split_seed, "validation")
    parts = [split_validation(np.flatnonzero(y_train == s), val_fraction, rng) for s in (1, -1)]
    tr = np.concatenate([p[0] for p in parts])
    va = np.concatenate([p[1] for p in parts])
    lo, hi = X_train.min(0), X_train.max(0)
    noise = seeds.rng(noise_seed, "noise_probe").uniform(lo, hi, size=(noise_count, X_train.shape[1]))

    def t(a):
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32).reshape(len(a), a.shape[1], 1, 1))

    x_train = t(X_train[tr])
    mean, std = _channel_stats(x_train / 255.0)  # normalise() scales by 1/255 before standardising
    ys = lambda v: torch.from_numpy(np.asarray(v, dtype=np.float32))  # noqa: E731
    return Task(x_train, ys(y_train[tr]), image_probes(t(X_test), ys(y_test), t(X_test), t(noise)),
                mean[:, None, None], std[:, None, None], "pos", "neg", tr, t(X_train[va]), ys(y_train[va]))


def synthetic_images(n_train: int = 200, n_test: int = 100, shape=(3, 32, 32), n_classes: int = 10,
                     seed: int = 0) -> ImageData:
    """Random class-dependent images for tests and benchmarks (each class has its own mean pattern)."""
    rng = seeds.rng(seed, "data")
    protos = rng.integers(40, 216, size=(n_classes, *shape))

    def draw(n):
        y = np.arange(n) % n_classes
        noise = rng.normal(0, 30, size=(n, *shape)).astype(np.float32)  # float32 halves peak memory
        x = np.clip(protos[y] + noise, 0, 255).astype(np.uint8)
        return x, y.astype(np.int64)

    xtr, ytr = draw(n_train)
    xte, yte = draw(n_test)
    classes = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    return ImageData(xtr, ytr, xte, yte, classes[:n_classes], "synthetic")
