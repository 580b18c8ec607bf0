"""`iwtheory import-results`: bring the output of ``experiments/gpu/run.sh`` into ``results/gpu/``, untrusted.

Names come from a fixed alphabet, no link is followed or unpacked, sizes are checked from the archive's headers
before anything is written, and the import is renamed into place only when complete."""

from __future__ import annotations

import json
import os
import re
import shutil
import tarfile
import tempfile
from pathlib import Path

from iwtheory.runs.records import RecordError, load, run_dirs, warn

_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")  # never "", "." or ".."
# the text fields of imported records (names that reach tables, figures and file names): one safe alphabet
NAMED = ("experiment", "regime", "dataset", "loss", "method", "variant", "vector")
_SAFE_TEXT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,63}")


def check_names(df) -> None:
    """Refuse imported records whose names (``NAMED``) hold anything but letters, digits and ``_ . + -``: such a
    name reaches LaTeX and file names; a GPU session's records have no business holding one."""
    for col in NAMED:
        if col not in df:
            continue
        for v in df[col].dropna().unique():
            if not isinstance(v, str) or not _SAFE_TEXT.fullmatch(v):
                raise RecordError(f"an imported record's {col} is {str(v)[:60]!r}: names must be letters, digits and "
                                  "_ . + - (at most 64)")
_IMPORTED = ("README.md", "bench.json", "nvidia-smi.txt", "versions.json")


def _plain_file(path: Path, max_bytes: int) -> bytes | None:
    """The bytes of a regular file that is not a link and not larger than ``max_bytes``; None if it is absent."""
    if not path.exists() and not path.is_symlink():
        return None
    if path.is_symlink() or not path.is_file():
        raise RecordError(f"{path}: not a plain file (a link or a folder); refusing to import it")
    if path.stat().st_size > max_bytes:
        raise RecordError(f"{path}: {path.stat().st_size} bytes, more than the {max_bytes} an import reads")
    return path.read_bytes()


def check_archive(tar, max_bytes: int, max_members: int = 20_000) -> None:
    """Refuse an archive unless every member is a plain file or folder under one relative path of safe names,
    and the sizes its headers declare add up to at most ``max_bytes``: checked before anything is written."""
    members = tar.getmembers() if hasattr(tar, "getmembers") else list(tar)
    if len(members) > max_members:
        raise RecordError(f"the archive holds {len(members)} members, more than {max_members}")
    total = 0
    for m in members:
        parts = m.name.rstrip("/").split("/")
        if m.name.startswith("/") or not all(_SAFE_NAME.fullmatch(x) for x in parts):
            raise RecordError(f"the archive member {m.name[:80]!r} is not a safe relative path")
        if not (m.isfile() or m.isdir()):
            raise RecordError(f"the archive member {m.name[:80]!r} is a link or a device, not a file or folder")
        total += max(int(m.size), 0)
        if total > max_bytes:
            raise RecordError(f"the archive unpacks to more than {max_bytes / 2**20:g} MB (from its headers)")


def import_results(src: str | Path, dest: str | Path = "results/gpu", max_mb: float = 20.0) -> Path:
    """Unpack what ``experiments/gpu/run.sh OUT`` wrote into ``dest/<date>-<gpu>/`` (README, machine files, and
    ``runs/`` with the records); unfinished runs (a study cut by its time budget) are left out, saying so.

    Everything in ``src`` is untrusted: names come from a fixed alphabet (the date must be YYYY-MM-DD), no link
    is followed or unpacked, the archive's sizes are checked from its headers before anything is written, and
    the import is built in a temporary folder beside the target and renamed into place only when complete, so a
    failure leaves nothing behind."""
    src, dest = Path(src), Path(dest)
    max_bytes = int(max_mb * 2**20)
    raw = _plain_file(src / "versions.json", 1 << 16)
    if raw is None:
        raise RecordError(f"{src / 'versions.json'}: missing (not the output of experiments/gpu/run.sh?)")
    try:
        v = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RecordError(f"{src / 'versions.json'}: not readable JSON ({e})") from None
    if not isinstance(v, dict):
        raise RecordError(f"{src / 'versions.json'}: expected a JSON object")
    archive = src / "records.tar.gz"
    if archive.is_symlink() or not archive.is_file():
        raise RecordError(f"{src}: no records.tar.gz as a plain file (not the output of experiments/gpu/run.sh?)")
    date = str(v.get("date", ""))
    date = date if re.fullmatch(r"\d{4}-\d{2}-\d{2}", date) else "undated"
    gpu = "cpu-dry-run" if v.get("dry_run") is True else \
        re.sub(r"[^a-z0-9]+", "-", str(v.get("gpu", "gpu")).lower()).strip("-")[:40] or "gpu"
    target = dest / f"{date}-{gpu}"
    if target.exists() or target.is_symlink():
        raise RecordError(f"{target} exists already; remove it first to import again")
    dest.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".import-", dir=dest))
    try:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                check_archive(tar, max_bytes)
                tar.extractall(staging, filter="data")
        except (tarfile.TarError, OSError, EOFError) as e:
            raise RecordError(f"{archive}: not a readable archive ({e})") from None
        if not (staging / "runs").is_dir():
            raise RecordError(f"{archive}: holds no runs/ folder")
        dropped = [d for d in run_dirs(staging / "runs") if not (d / "done").exists()]
        for d in dropped:
            shutil.rmtree(d)
        for name in _IMPORTED:
            data = _plain_file(src / name, 1 << 20)
            if data is not None:
                (staging / name).write_bytes(data)
        tests = _plain_file(src / "gpu-tests.txt", 1 << 22)
        if tests is not None:  # its summary line only: a failure's traceback holds machine paths
            tail = [ln for ln in tests.decode(errors="replace").splitlines() if ln.strip()][-2:]
            with open(staging / "README.md", "a") as f:
                f.write(f"- GPU-marked tests: {' / '.join(tail)}\n")
        if dropped:
            warn(f"left out {len(dropped)} unfinished run(s) of {src} (the study was cut by its time budget)")
            with open(staging / "README.md", "a") as f:
                f.write(f"- import: {len(dropped)} unfinished run(s) left out\n")
        check_names(load(staging / "runs"))  # every run holds its schedule once and safe names, or this names it
        size = sum(p.stat().st_size for p in staging.rglob("*") if p.is_file())
        if size > max_bytes:
            raise RecordError(f"the import holds {size / 2**20:.1f} MB, more than the {max_mb:g} MB a committed "
                              "result may take")
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
