"""Binary tasks from image datasets: class pairs, seeded subsampling, probe sets, normalisation.

Labels are +1 for the positive class (dog by default) and -1 for the negative one (cat), so
y * f(x) is the margin of the theory. Images stay uint8 until a batch is drawn; on a GPU
the whole task lives on the device.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from iwtheory.nets.readers import ImageData


@dataclass
class Task:
    """A binary task with its probe sets, as tensors on one device.

    ``x_*`` are uint8 (N, C, H, W); ``mean``/``std`` are the training set's channel statistics
    (float32, shape (C,)) used by ``normalise``. Probe sets: ``test`` (the task's test images),
    ``other`` (test images of every other class) and ``noise`` (seeded uniform noise).
    """

    x_train: torch.Tensor
    y_train: torch.Tensor          # float32 +-1
    x_test: torch.Tensor
    y_test: torch.Tensor
    x_other: torch.Tensor
    x_noise: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    pos: str
    neg: str
    train_index: np.ndarray        # indices into the source training split (for audits)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 -> float32 standardised by the training set's channel statistics."""
        x = x.float().div_(255.0)
        return (x - self.mean[:, None, None]) / self.std[:, None, None]

    def to(self, device) -> "Task":
        moved = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in vars(self).items()}
        return Task(**moved)


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


def make_task(images: ImageData, pos: str = "dog", neg: str = "cat", keep_pos=None, keep_neg=None,
              subsample_seed: int = 0, noise_count: int = 1000, noise_seed: int = 0,
              max_other: int | None = None) -> Task:
    """Build the binary task ``pos`` (+1) vs ``neg`` (-1) with its probe sets.

    ``keep_pos``/``keep_neg`` subsample each class of the training split (a count or a ratio),
    without replacement, seeded by ``subsample_seed``. The test split gives the task's test set
    and, from all other classes, the ``other`` probe set (at most ``max_other``, seeded).
    """
    names = list(images.classes)
    for c in (pos, neg):
        if c not in names:
            raise ValueError(f"unknown class {c!r} for {images.name}; classes are {names}")
    if pos == neg:
        raise ValueError("the positive and negative classes must differ")
    ip, ineg = names.index(pos), names.index(neg)
    rng = np.random.default_rng(subsample_seed)
    tr_pos = subsample_indices(np.flatnonzero(images.y_train == ip), keep_pos, rng)
    tr_neg = subsample_indices(np.flatnonzero(images.y_train == ineg), keep_neg, rng)
    tr = np.concatenate([tr_pos, tr_neg])
    te = np.flatnonzero((images.y_test == ip) | (images.y_test == ineg))
    other = np.flatnonzero((images.y_test != ip) & (images.y_test != ineg))
    if max_other is not None and len(other) > max_other:
        other = np.sort(np.random.default_rng(subsample_seed + 1).choice(other, max_other, replace=False))

    def signs(labels):
        return torch.from_numpy(np.where(labels == ip, 1.0, -1.0).astype(np.float32))

    x_train = torch.from_numpy(np.ascontiguousarray(images.x_train[tr]))
    xf = x_train.float() / 255.0
    mean = xf.mean(dim=(0, 2, 3))
    std = xf.std(dim=(0, 2, 3)).clamp_min(1e-6)
    noise = np.random.default_rng(noise_seed).integers(0, 256, size=(noise_count, *images.x_train.shape[1:]),
                                                       dtype=np.uint8)
    return Task(x_train, signs(images.y_train[tr]),
                torch.from_numpy(np.ascontiguousarray(images.x_test[te])), signs(images.y_test[te]),
                torch.from_numpy(np.ascontiguousarray(images.x_test[other])), torch.from_numpy(noise),
                mean, std, pos, neg, tr)


def synthetic_images(n_train: int = 200, n_test: int = 100, shape=(3, 32, 32), n_classes: int = 10,
                     seed: int = 0) -> ImageData:
    """Random class-dependent images for tests and benchmarks (each class has its own mean pattern)."""
    rng = np.random.default_rng(seed)
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
