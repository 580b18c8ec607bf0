"""A random stand-in for CIFAR-10 in the official binary layout, for dry runs where no copy exists.

usage: standin_cifar.py OUTDIR   (writes OUTDIR/cifar-10-batches-bin/, 10,000 records a batch, ~180 MB)
Each class has its own mean image, so a classifier can learn something; nothing measured on it means anything.
"""

import sys
from pathlib import Path

import numpy as np


def main(out: str) -> None:
    d = Path(out) / "cifar-10-batches-bin"
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    protos = rng.integers(40, 216, size=(10, 3072))
    for name in [f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]:
        y = rng.permutation(np.arange(10_000) % 10).astype(np.uint8)
        x = np.clip(protos[y] + rng.normal(0, 40, size=(10_000, 3072)), 0, 255).astype(np.uint8)
        (d / name).write_bytes(np.concatenate([y[:, None], x], axis=1).tobytes())


if __name__ == "__main__":
    main(sys.argv[1])
