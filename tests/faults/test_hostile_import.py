"""`iwtheory import-gpu` on folders and archives made to escape, to exhaust, or to half-finish."""

import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from iwtheory.runs.gpu_import import import_results
from iwtheory.runs.records import RecordError


def out_folder(tmp_path: Path, members, versions=None) -> Path:
    """An OUT folder of experiments/gpu/run.sh: versions.json and records.tar.gz built from ``members``
    (name, bytes) or ready TarInfo objects (name, TarInfo)."""
    src = tmp_path / "out"
    src.mkdir(parents=True)
    (src / "versions.json").write_text(json.dumps(versions or {"date": "2026-01-02", "gpu": "NVIDIA H200"}))
    with tarfile.open(src / "records.tar.gz", "w:gz") as tar:
        for name, body in members:
            if isinstance(body, tarfile.TarInfo):
                tar.addfile(body)
            else:
                info = tarfile.TarInfo(name)
                info.size = len(body)
                tar.addfile(info, io.BytesIO(body))
    return src


def test_a_hostile_date_cannot_place_the_import_elsewhere(tmp_path):
    for k, date in enumerate(("../../../escaped", "/abs/path", "2026-01-02/../../x")):
        src = out_folder(tmp_path / f"src{k}", [("runs/a", b"")], {"date": date, "gpu": "../../gpu"})
        target = import_results(src, tmp_path / f"results{k}")
        assert target == tmp_path / f"results{k}" / "undated-gpu"  # a fixed alphabet, inside dest
    assert not (tmp_path / "escaped").exists() and not Path("/abs/path").exists()


@pytest.mark.parametrize("name", ["../outside.txt", "/tmp/abs.txt", "runs/../../outside.txt", "runs/.hidden/../x"])
def test_members_outside_the_folder_are_refused_before_anything_is_written(tmp_path, name):
    src = out_folder(tmp_path, [(name, b"x")])
    with pytest.raises(RecordError, match="safe relative path"):
        import_results(src, tmp_path / "results")
    assert not (tmp_path / "outside.txt").exists()
    assert list((tmp_path / "results").iterdir()) == []


def test_links_in_the_archive_and_in_the_folder_are_refused(tmp_path):
    link = tarfile.TarInfo("runs/evil")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc"
    src = out_folder(tmp_path / "a", [("runs/evil", link)])
    with pytest.raises(RecordError, match="link"):
        import_results(src, tmp_path / "results")
    hard = tarfile.TarInfo("runs/hard")
    hard.type, hard.linkname = tarfile.LNKTYPE, "../../etc/passwd"
    src = out_folder(tmp_path / "b", [("runs/hard", hard)])
    with pytest.raises(RecordError, match="link"):
        import_results(src, tmp_path / "results")
    # a README.md that is a link to a file elsewhere is not copied into the results
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the repository")
    src = out_folder(tmp_path / "c", [("runs/x/config.json", b"{}")])
    os.symlink(secret, src / "README.md")
    with pytest.raises(RecordError, match="not a plain file"):
        import_results(src, tmp_path / "results")
    assert list((tmp_path / "results").iterdir()) == []


def test_the_size_is_checked_from_the_headers_before_unpacking(tmp_path):
    big = tarfile.TarInfo("runs/big.bin")
    big.size = 50 * 2**20  # declared; the stream would be read only when extracting
    src = tmp_path / "out"
    src.mkdir()
    (src / "versions.json").write_text(json.dumps({"date": "2026-01-02", "gpu": "x"}))
    with tarfile.open(src / "records.tar.gz", "w:gz") as tar:
        tar.addfile(big, io.BytesIO(b"\0" * big.size))
    with pytest.raises(RecordError, match="more than 20 MB"):
        import_results(src, tmp_path / "results")
    assert list((tmp_path / "results").iterdir()) == []


def test_a_damaged_archive_leaves_nothing_behind(tmp_path):
    src = tmp_path / "out"
    src.mkdir()
    (src / "versions.json").write_text(json.dumps({"date": "2026-01-02", "gpu": "x"}))
    (src / "records.tar.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(RecordError, match="not a readable archive"):
        import_results(src, tmp_path / "results")
    assert list((tmp_path / "results").iterdir()) == []
