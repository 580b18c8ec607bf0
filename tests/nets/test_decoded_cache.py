"""The decoded-data cache: a second read gives the same arrays and fingerprint as the source, an edited source
is read again, and a cache file that is damaged, a link or another dataset's is never trusted."""

import gzip
import os
import struct

import numpy as np
import pytest

from iwtheory.nets import readers

RNG = np.random.default_rng(7)


def write_idx(path, arr):
    header = bytes([0, 0, 8, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    path.write_bytes(gzip.compress(header + arr.astype(np.uint8).tobytes()))


@pytest.fixture
def fashion(tmp_path, monkeypatch):
    monkeypatch.delenv("IWTHEORY_NO_DECODED_CACHE", raising=False)
    monkeypatch.setenv("IWTHEORY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(readers.EXPECTED_COUNTS, "fashion_mnist", (30, 10))
    src = tmp_path / "src"
    src.mkdir()
    write_idx(src / "train-images-idx3-ubyte.gz", RNG.integers(0, 256, size=(30, 28, 28)))
    write_idx(src / "train-labels-idx1-ubyte.gz", np.arange(30) % 10)
    write_idx(src / "t10k-images-idx3-ubyte.gz", RNG.integers(0, 256, size=(10, 28, 28)))
    write_idx(src / "t10k-labels-idx1-ubyte.gz", np.arange(10))
    return src


def cached_files(tmp_path):
    return sorted((tmp_path / "cache" / "decoded").glob("*.npz"))


def same(a, b):
    for k in ("x_train", "y_train", "x_test", "y_test"):
        assert getattr(a, k).dtype == getattr(b, k).dtype and np.array_equal(getattr(a, k), getattr(b, k)), k
    assert a.classes == b.classes and a.name == b.name


def test_a_cached_read_equals_the_source_and_keeps_its_fingerprint(fashion, tmp_path):
    direct = readers.read_fashion_mnist(fashion)
    first = readers.load_images("fashion_mnist", fashion)
    (path,) = cached_files(tmp_path)
    second = readers.load_images("fashion_mnist", fashion)
    same(first, direct)
    same(second, direct)
    assert second.fingerprint == readers.source_fingerprint(direct)  # recomputed from the arrays, not stored
    assert os.path.getsize(path) > direct.x_train.nbytes


def test_an_edited_source_is_read_again(fashion, tmp_path):
    readers.load_images("fashion_mnist", fashion)
    new = RNG.integers(0, 256, size=(10, 28, 28))
    write_idx(fashion / "t10k-images-idx3-ubyte.gz", new)
    got = readers.load_images("fashion_mnist", fashion)
    assert np.array_equal(got.x_test[:, 0], new)
    assert len(cached_files(tmp_path)) == 2


@pytest.mark.parametrize("damage", ["junk", "cut", "link", "other arrays", "other dataset"])
def test_a_damaged_or_foreign_cache_file_is_not_trusted(fashion, tmp_path, damage):
    direct = readers.read_fashion_mnist(fashion)
    readers.load_images("fashion_mnist", fashion)
    (path,) = cached_files(tmp_path)
    if damage == "junk":
        path.write_bytes(b"not an npz")
    elif damage == "cut":
        path.write_bytes(path.read_bytes()[:1000])
    elif damage == "link":  # a link to a file of the right form with other images is not followed
        other = tmp_path / "other.npz"
        z = dict(np.load(path))
        z["x_train"] = np.zeros_like(z["x_train"])
        np.savez(other, **z)
        path.unlink()
        path.symlink_to(other)
    elif damage == "other arrays":
        z = dict(np.load(path))
        z["x_train"] = z["x_train"].astype(np.float32)
        np.savez(path.with_suffix(""), **z)
    else:
        z = dict(np.load(path))
        z["meta"] = np.array(str(z["meta"]).replace("fashion_mnist", "cifar10"))
        np.savez(path.with_suffix(""), **z)
    got = readers.load_images("fashion_mnist", fashion)
    same(got, direct)
    assert got.fingerprint == readers.source_fingerprint(direct)


def test_the_cache_can_be_switched_off(fashion, tmp_path, monkeypatch):
    monkeypatch.setenv("IWTHEORY_NO_DECODED_CACHE", "1")
    readers.load_images("fashion_mnist", fashion)
    assert cached_files(tmp_path) == []
