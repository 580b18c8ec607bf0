import gzip
import os
import pickle
import struct

import numpy as np
import pytest
import torch

from iwtheory.nets import readers
from iwtheory.nets.data import make_task, subsample_indices
from iwtheory.nets.readers import (CIFAR10_CLASSES, DataFileError, ImageData, download, load_images, md5sum,
                                   read_cifar10, read_cifar_bin_file, read_fashion_mnist, read_idx_gz, safe_unpickle)

RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def small_batches(monkeypatch):
    """Fixtures write 20-image CIFAR batches and 30/10-image Fashion-MNIST sets: the readers are told so.
    (The real sizes are checked by test_a_batch_cut_at_a_record_boundary_is_refused.)"""
    monkeypatch.setattr(readers, "_CIFAR_BATCH", 20)
    monkeypatch.setitem(readers.EXPECTED_COUNTS, "cifar10", (100, 20))
    monkeypatch.setitem(readers.EXPECTED_COUNTS, "fashion_mnist", (30, 10))


def fake_cifar(n_per_batch=20):
    """Five training batches and a test batch of random images, labels cycling over the 10 classes."""
    batches = {}
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        x = RNG.integers(0, 256, size=(n_per_batch, 3072), dtype=np.uint8)
        y = RNG.permutation(np.arange(n_per_batch) % 10).astype(np.uint8)
        batches[name] = (x, y)
    return batches


def write_bin(root, batches):
    d = root / "cifar-10-batches-bin"
    d.mkdir(parents=True)
    for name, (x, y) in batches.items():
        (d / f"{name}.bin").write_bytes(np.concatenate([y[:, None], x], axis=1).tobytes())
    return d


def write_py(root, batches):
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    for name, (x, y) in batches.items():
        with open(d / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"labels": y.astype(int).tolist(), b"data": x,
                         b"filenames": [b"f.png"] * len(y)}, f, protocol=2)
    return d


@pytest.mark.parametrize("writer", [write_bin, write_py])
def test_both_cifar_layouts_read_the_same_images(tmp_path, writer):
    batches = fake_cifar()
    writer(tmp_path, batches)
    data = read_cifar10(tmp_path)
    xs = np.concatenate([batches[f"data_batch_{k}"][0] for k in range(1, 6)])
    np.testing.assert_array_equal(data.x_train.reshape(len(xs), -1), xs)
    np.testing.assert_array_equal(data.y_train, np.concatenate([batches[f"data_batch_{k}"][1] for k in range(1, 6)]))
    np.testing.assert_array_equal(data.x_test.reshape(-1, 3072), batches["test_batch"][0])
    assert data.x_train.shape[1:] == (3, 32, 32) and data.classes == CIFAR10_CLASSES


class Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_pickle_asking_for_code_is_refused_and_nothing_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    payload = pickle.dumps({b"data": Evil(), b"labels": []}, protocol=2)
    with pytest.raises(DataFileError, match="refusing to load (posix|os|nt).system"):
        safe_unpickle(payload)
    assert not (tmp_path / "pwned").exists()
    batches = fake_cifar()
    d = write_py(tmp_path, batches)
    (d / "data_batch_3").write_bytes(payload)
    with pytest.raises(DataFileError, match="data_batch_3.*refusing"):
        read_cifar10(tmp_path)
    assert not (tmp_path / "pwned").exists()


def test_truncated_and_malformed_files_get_clear_errors(tmp_path):
    batches = fake_cifar()
    d = write_bin(tmp_path / "a", batches)
    raw = (d / "data_batch_2.bin").read_bytes()
    (d / "data_batch_2.bin").write_bytes(raw[:-100])
    with pytest.raises(DataFileError, match="data_batch_2.bin.*holds 20 records"):
        read_cifar10(tmp_path / "a")
    d = write_py(tmp_path / "b", batches)
    (d / "test_batch").write_bytes((d / "test_batch").read_bytes()[:500])
    with pytest.raises(DataFileError, match="test_batch: not a readable"):
        read_cifar10(tmp_path / "b")
    with pytest.raises(DataFileError, match="no CIFAR-10 batches under"):
        read_cifar10(tmp_path / "empty")


def test_a_batch_cut_at_a_record_boundary_is_refused(tmp_path, monkeypatch):
    monkeypatch.undo()  # the official sizes: 10,000 records in every batch
    full = np.zeros((10_000, 3073), dtype=np.uint8)
    (tmp_path / "full.bin").write_bytes(full.tobytes())
    assert read_cifar_bin_file(tmp_path / "full.bin")[0].shape == (10_000, 3, 32, 32)
    (tmp_path / "cut.bin").write_bytes(full[:100].tobytes())  # a whole number of records, but too few
    with pytest.raises(DataFileError, match="cut.bin: 307300 bytes.*holds 10000 records"):
        read_cifar_bin_file(tmp_path / "cut.bin")


def test_float_labels_and_mismatched_shapes_are_refused(tmp_path):
    batches = fake_cifar()
    d = write_py(tmp_path, batches)
    x, y = batches["data_batch_1"]
    with open(d / "data_batch_1", "wb") as f:
        pickle.dump({b"labels": (y + 0.7).tolist(), b"data": x}, f, protocol=2)
    with pytest.raises(DataFileError, match="data_batch_1: labels must be integers"):
        read_cifar10(tmp_path)
    with open(d / "data_batch_1", "wb") as f:
        pickle.dump({b"labels": y.astype(int).tolist(), b"data": x}, f, protocol=2)
    read_cifar10(tmp_path)
    xtr = RNG.integers(0, 256, size=(30, 28, 28))
    ytr = np.arange(30) % 10
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", xtr)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", ytr)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", RNG.integers(0, 256, size=(10, 27, 28)))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", ytr[:10])
    with pytest.raises(DataFileError, match=r"training images of shape \(1, 28, 28\) but test images"):
        read_fashion_mnist(tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", xtr[:10])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.full(10, 200))
    with pytest.raises(DataFileError, match="t10k-labels-idx1-ubyte.gz: label 200 is outside 0..9"):
        read_fashion_mnist(tmp_path)


def test_a_corrupt_gzip_stream_is_named(tmp_path):
    arr = RNG.integers(0, 256, size=(30, 28, 28))
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", arr)
    raw = bytearray((tmp_path / "train-images-idx3-ubyte.gz").read_bytes())
    raw[40:60] = bytes(20)  # the header parses; the deflate stream does not
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(bytes(raw))
    with pytest.raises(DataFileError, match="train-images-idx3-ubyte.gz: not a readable gzip"):
        readers.read_idx_gz(tmp_path / "train-images-idx3-ubyte.gz", 3)


def test_download_accepts_a_local_copy_by_its_content_and_writes_only_to_the_cache(tmp_path, monkeypatch):
    local = tmp_path / "system"
    xtr = RNG.integers(0, 256, size=(30, 28, 28))
    for name, arr in (("train-images-idx3-ubyte.gz", xtr), ("train-labels-idx1-ubyte.gz", np.arange(30) % 10),
                      ("t10k-images-idx3-ubyte.gz", xtr[:10]), ("t10k-labels-idx1-ubyte.gz", np.arange(10))):
        local.mkdir(exist_ok=True)
        write_idx(local / name, arr)  # recompressed: its MD5 is not the official one
    local.chmod(0o555)
    before = sorted(p.name for p in local.iterdir())
    monkeypatch.setenv("IWTHEORY_CACHE", str(tmp_path / "cache"))
    data = load_images("fashion_mnist", local, fetch=True)  # nothing fetched: the copy reads correctly
    assert len(data.y_train) == 30 and sorted(p.name for p in local.iterdir()) == before
    assert not (tmp_path / "cache").exists()
    # a folder without a copy: the download goes to the cache (here it fails: no network), never into it
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr(readers, "DOWNLOADS", {"fashion_mnist": [("http://127.0.0.1:9/f.gz", "f.gz", "0" * 32)]})
    with pytest.raises(DataFileError, match="without a network"):
        load_images("fashion_mnist", empty, fetch=True)
    assert list(empty.iterdir()) == [] and (tmp_path / "cache" / "fashion_mnist").is_dir()


def write_idx(path, arr):
    header = bytes([0, 0, 8, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    path.write_bytes(gzip.compress(header + arr.astype(np.uint8).tobytes()))


def test_fashion_mnist_idx_reader(tmp_path):
    xtr = RNG.integers(0, 256, size=(30, 28, 28))
    ytr = np.arange(30) % 10
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", xtr)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", ytr)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", xtr[:10])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", ytr[:10])
    data = read_fashion_mnist(tmp_path)
    assert data.x_train.shape == (30, 1, 28, 28)
    np.testing.assert_array_equal(data.x_train[:, 0], xtr)
    np.testing.assert_array_equal(data.y_test, ytr[:10])
    raw = gzip.decompress((tmp_path / "t10k-images-idx3-ubyte.gz").read_bytes())
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw[:-50]))
    with pytest.raises(DataFileError, match="truncated"):
        read_fashion_mnist(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(DataFileError, match="not a readable gzip"):
        read_fashion_mnist(tmp_path)
    with pytest.raises(DataFileError, match="dataset-fashion-mnist"):
        read_fashion_mnist(tmp_path / "nowhere")


def test_download_verifies_checksums_and_fails_fast_offline(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"official bytes")
    good = md5sum(src)
    out = tmp_path / "dl"
    download("x", out, sources=[(src.as_uri(), "file.bin", good)])
    assert (out / "file.bin").read_bytes() == b"official bytes"
    with pytest.raises(DataFileError, match="checksum mismatch"):
        download("x", tmp_path / "dl2", sources=[(src.as_uri(), "file.bin", "0" * 32)])
    assert not (tmp_path / "dl2" / "file.bin").exists()
    # a closed local port refuses at once: the no-network path reports how to supply files
    with pytest.raises(DataFileError, match="without a network"):
        download("x", tmp_path / "dl3", sources=[("http://127.0.0.1:9/f.gz", "f.gz", good)], timeout=2)


def small_images(n_per_class=12):
    y = np.repeat(np.arange(10), n_per_class)
    # each image encodes its own index, so labels can be audited after subsampling
    x = np.zeros((len(y), 3, 8, 8), dtype=np.uint8)
    x[:, 0, 0, 0] = np.arange(len(y)) % 256
    x[:, 1, 0, 0] = np.arange(len(y)) // 256
    x[:, 2] = (y * 20)[:, None, None]
    yt = np.repeat(np.arange(10), 3)
    xt = np.full((len(yt), 3, 8, 8), 255, dtype=np.uint8)
    xt[:, 2] = (yt * 20)[:, None, None]
    return ImageData(x, y, xt, yt, CIFAR10_CLASSES, "fake")


def test_task_subsamples_without_replacement_and_keeps_labels_aligned():
    img = small_images()
    task = make_task(img, "dog", "cat", keep_pos=5, keep_neg=0.5, subsample_seed=3)
    idx = task.train_index
    assert len(np.unique(idx)) == len(idx) == 5 + 6
    # every kept image is the source image at that index, with the source's label
    ids = task.x_train[:, 0, 0, 0].numpy().astype(int) + 256 * task.x_train[:, 1, 0, 0].numpy().astype(int)
    np.testing.assert_array_equal(ids, idx)
    want = np.where(img.y_train[idx] == CIFAR10_CLASSES.index("dog"), 1.0, -1.0)
    np.testing.assert_array_equal(task.y_train.numpy(), want)
    assert (task.y_train > 0).sum() == 5
    # other seeds give other subsets; the same seed the same one
    again = make_task(img, "dog", "cat", keep_pos=5, keep_neg=0.5, subsample_seed=3)
    np.testing.assert_array_equal(again.train_index, idx)
    assert not np.array_equal(make_task(img, "dog", "cat", keep_pos=5, subsample_seed=4).train_index[:5], idx[:5])


def test_probe_sets_come_from_the_test_split_and_the_right_classes():
    img = small_images()
    task = make_task(img, noise_count=7, noise_seed=1)
    # test images are all 255 in channel 0; no training image is
    assert bool((task.x_test[:, 0] == 255).all()) and len(task.x_test) == 6
    assert set(np.unique(task.x_other[:, 2, 0, 0].numpy() // 20)) == set(range(10)) - {3, 5}
    assert task.x_noise.shape == (7, 3, 8, 8)
    torch.testing.assert_close(task.x_noise, make_task(img, noise_count=7, noise_seed=1).x_noise)
    # normalisation by the training set's channel statistics
    z = task.normalise(task.x_train)
    torch.testing.assert_close(z.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)


def test_subsampling_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="without replacement"):
        subsample_indices(np.arange(5), 6, rng)
    with pytest.raises(ValueError, match="ratio"):
        subsample_indices(np.arange(5), 1.5, rng)
    with pytest.raises(ValueError, match="unknown class 'wolf'"):
        make_task(small_images(), "wolf", "cat")


def test_validation_split_and_label_noise_are_seeded_and_disjoint():
    img = small_images(n_per_class=40)
    task = make_task(img, "dog", "cat", val_fraction=0.25, label_noise=0.1, subsample_seed=5)
    ids = lambda x: x[:, 0, 0, 0].numpy().astype(int) + 256 * x[:, 1, 0, 0].numpy().astype(int)  # noqa: E731
    tr, va = set(ids(task.x_train)), set(ids(task.x_val))
    assert not tr & va and len(va) == 20 and len(tr) == 60  # a quarter of each class held out
    assert (task.y_val > 0).sum() == 10
    clean = np.where(img.y_train[ids(task.x_train)] == CIFAR10_CLASSES.index("dog"), 1.0, -1.0)
    flipped = task.y_train.numpy() != clean
    assert flipped.sum() == 6 and np.array_equal(flipped, task.flipped)  # 10% of 60 labels
    again = make_task(img, "dog", "cat", val_fraction=0.25, label_noise=0.1, subsample_seed=5)
    np.testing.assert_array_equal(again.flipped, task.flipped)
    # the split leaves the subsampling as it was
    assert set(make_task(img, "dog", "cat", subsample_seed=5).train_index) == tr | va
    with pytest.raises(ValueError, match="label-noise share"):
        make_task(img, label_noise=0.6)


def test_mean_weight_normalisation():
    from iwtheory.runs.train import class_weight_pair

    task = make_task(small_images(n_per_class=40), "dog", "cat", keep_pos=10)
    n_pos, n_neg = task.class_counts
    assert (n_pos, n_neg) == (10, 40)
    for w in (1 / 64, 1.0, 64.0):
        cp, cn = class_weight_pair(w, task, "mean")
        assert (cp * n_pos + cn * n_neg) / (n_pos + n_neg) == pytest.approx(1.0)
        assert cp / cn == pytest.approx(w)
    assert class_weight_pair(8.0, task, "none") == (8.0, 1.0)


def test_a_pickle_of_shared_references_is_refused_before_it_is_expanded(tmp_path):
    # 200 bytes of pickle: a labels list whose items all point to one list of a million ints; np.asarray of it
    # would allocate 20 x 10^6 ints (and with deeper nesting without bound)
    batches = fake_cifar()
    d = write_py(tmp_path, batches)
    x, _ = batches["data_batch_1"]
    inner = list(range(1_000_000))
    with open(d / "data_batch_1", "wb") as f:
        pickle.dump({b"labels": [inner] * 20, b"data": x}, f, protocol=2)
    with pytest.raises(DataFileError, match="labels must be integers 0..9, one flat list of 20 .found list items"):
        read_cifar10(tmp_path)
    with open(d / "data_batch_1", "wb") as f:
        pickle.dump({b"labels": list(range(10)) * 2, b"data": x.tolist()}, f, protocol=2)
    with pytest.raises(DataFileError, match="b'data' must be a uint8 array"):
        read_cifar10(tmp_path)


def test_a_gzip_bomb_is_refused_from_its_header(tmp_path):
    import gzip
    import struct
    import tracemalloc

    # a 4 MB idx that claims 4 x 10^9 bytes, and one that holds far more than its header promises
    with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(bytes([0, 0, 8, 3]) + struct.pack(">3I", 4_000_000, 1000, 1))
        f.write(b"\0" * (4 << 20))
    with pytest.raises(DataFileError, match="more than"):
        read_idx_gz(tmp_path / "train-images-idx3-ubyte.gz", 3)
    with gzip.open(tmp_path / "padded.gz", "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + b"\0" * (64 << 20))
    tracemalloc.start()
    with pytest.raises(DataFileError, match="promises 10 bytes but holds more"):
        read_idx_gz(tmp_path / "padded.gz", 1)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 4 << 20  # bounded by the header, not by the 64 MB the stream inflates to
