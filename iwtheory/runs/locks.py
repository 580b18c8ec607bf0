"""One writer per run: OS-level advisory locks (``flock``) on ``<out>/_locks/<run hash>.lock``.

A group of runs holds the locks of all its runs for its whole life, taken in sorted order (so two
writers that wait cannot deadlock). The lock file holds the holder's PID, host and start time,
so a second writer that refuses can name who holds the run. The kernel releases a lock when its
holder dies, kill -9 included: a lock file left behind is harmless.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from pathlib import Path


class RunLockedError(RuntimeError):
    """A run is being written by another process."""


def _holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 256).decode(errors="replace").split()
        return f"PID {text[0]} on {text[1]}" if len(text) >= 2 else "another process"
    except OSError:
        return "another process"


def _acquire(path: Path, wait: float) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                who = _holder(fd)
                os.close(fd)
                raise RunLockedError(
                    f"run {path.stem} is being written by {who} (lock {path}); wait for it to finish "
                    "(--wait), or write to another --out") from None
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {socket.gethostname()} {time.time():.0f}\n".encode(), 0)
    return fd


@contextlib.contextmanager
def hold_runs(root: str | Path, hashes: list[str], wait: float = 0.0):
    """Hold the write locks of runs ``hashes`` under ``root``; ``wait`` seconds at most for a busy one
    (0: refuse at once, naming the holder; ``float('inf')``: wait for as long as it takes)."""
    d = Path(root) / "_locks"
    d.mkdir(parents=True, exist_ok=True)
    fds = []
    try:
        for h in sorted(set(hashes)):
            fds.append(_acquire(d / f"{h}.lock", wait))
        yield
    finally:
        for fd in fds:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
