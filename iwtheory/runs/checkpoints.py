"""Checkpoints of stacks of models: a checked header (SHA-256, size, the epoch and the runs it holds), then the
torch payload. A checkpoint that fails its checks is set aside, never deleted."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from iwtheory.runs.records import RecordError, _atomic_write, fault_point, warn

_MAGIC = b"IWTHEORY-CHECKPOINT 1\n"


def write_checkpoint(path: Path, payload: bytes, meta: dict) -> None:
    """Write ``payload`` with a header holding its SHA-256 and ``meta`` (epoch, group and run hashes)."""
    header = {**meta, "sha256": hashlib.sha256(payload).hexdigest(), "bytes": len(payload)}
    fault_point("checkpoint")
    _atomic_write(path, _MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n" + payload)


def checkpoint_header(path: Path) -> dict | None:
    """A checkpoint's header alone (no payload read, no checksum), or None if it has none."""
    try:
        with open(path, "rb") as f:
            if f.read(len(_MAGIC)) != _MAGIC:
                return None
            header = json.loads(f.readline())
    except (OSError, ValueError):
        return None
    return header if isinstance(header, dict) else None


def read_checkpoint(path: Path) -> tuple[dict, bytes]:
    """(header, payload) of a checkpoint, after checking its checksum; RecordError names what is wrong."""
    try:
        blob = Path(path).read_bytes()
    except OSError as e:
        raise RecordError(f"{path}: not readable ({e})") from None
    if not blob.startswith(_MAGIC):
        raise RecordError(f"{path}: not an iwtheory checkpoint (bad header)")
    end = blob.find(b"\n", len(_MAGIC))
    try:
        header = json.loads(blob[len(_MAGIC):end])
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RecordError(f"{path}: corrupt checkpoint header") from None
    payload = blob[end + 1:]
    if not isinstance(header, dict) or len(payload) != header.get("bytes"):
        raise RecordError(f"{path}: truncated checkpoint ({len(payload)} payload bytes)")
    if hashlib.sha256(payload).hexdigest() != header.get("sha256"):
        raise RecordError(f"{path}: checksum mismatch (the file is corrupt)")
    return header, payload


def set_aside(path: Path, why: str) -> Path:
    """Rename a checkpoint that cannot be trusted (never delete it) and say so in one warning line."""
    k = 0
    while (dest := path.with_name(f"{path.name}.set-aside-{k}")).exists():
        k += 1
    os.replace(path, dest)
    warn(f"checkpoint {path} {why}; set aside as {dest.name}, its runs restart from scratch")
    return dest


def consistency(header: dict, runs: list, fp: str, evals: list[int], finished: set[str] = frozenset()) -> str:
    """'' when a checkpoint's header and its group's run folders (``runs``, records.Run) agree: the same runs,
    the same data (fingerprint ``fp``), and metrics for exactly the scheduled epochs ``evals`` up to the
    checkpoint's; otherwise why not. ``finished``: runs of the group known to be done (trained again for their
    stack mates, their records untouched), whose folders are not compared."""
    hashes = [r.hash for r in runs]
    if header.get("runs") != hashes:
        return "belongs to other runs"
    if header.get("data_fingerprint") != fp:
        return f"was made with other data (fingerprint {header.get('data_fingerprint')}, now {fp})"
    epoch = header.get("epoch")
    if not isinstance(epoch, int) or epoch < 0:
        return "has no valid epoch"
    want = [e for e in evals if e <= epoch]
    for r in runs:
        if r.hash in finished:
            continue
        if r.done:
            return f"belongs to run {r.hash}, which is already done"
        if r.stored_config() is None:
            return f"belongs to run {r.hash}, whose folder is gone"
        # a malformed line other than a partial last one raises, naming the file and line: never repaired
        got = [row.get("epoch") for row in r.read_metrics(repair=True) if row.get("epoch", -1) <= epoch]
        if sorted(got) != want:
            return f"is at epoch {epoch} but run {r.hash} holds metrics for {len(got)} of its {len(want)} epochs"
    return ""
