"""One writer per run: OS-level advisory locks (``flock``) on ``<out>/<run hash>/lock``.

The lock lives in the run's own folder, so deleting some other folder (``_locks``) cannot let a second
writer in; removing the lock means removing the run. A group of runs holds the locks of all its runs
for its whole life, taken in sorted order (so two writers that wait cannot deadlock). The holder's PID,
host and start time go to ``<out>/_locks/<run hash>.lock``, so a second writer that refuses can name
who holds the run (that file is information only). The kernel releases a lock when its holder dies,
kill -9 included: a lock file left behind is harmless.
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


LOCK_NAME = "lock"


def _holder(info: Path) -> str:
    try:
        text = info.read_text(errors="replace")[:256].split()
        return f"PID {text[0]} on {text[1]}" if len(text) >= 2 else "another process"
    except OSError:
        return "another process"


def _acquire(root: Path, h: str, wait: float) -> int:
    run = root / h
    run.mkdir(parents=True, exist_ok=True)
    path, info = run / LOCK_NAME, root / "_locks" / f"{h}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise RunLockedError(
                    f"run {h} is being written by {_holder(info)} (lock {path}); wait for it to finish "
                    "(--wait), or write to another --out") from None
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
    with contextlib.suppress(OSError):  # who holds it, for a refusal's message; never needed for safety
        info.parent.mkdir(parents=True, exist_ok=True)
        info.write_text(f"{os.getpid()} {socket.gethostname()} {time.time():.0f}\n")
    return fd


@contextlib.contextmanager
def hold_runs(root: str | Path, hashes: list[str], wait: float = 0.0):
    """Hold the write locks of runs ``hashes`` under ``root``; ``wait`` seconds at most for a busy one
    (0: refuse at once, naming the holder; ``float('inf')``: wait for as long as it takes)."""
    fds = []
    try:
        for h in sorted(set(hashes)):
            fds.append(_acquire(Path(root), h, wait))
        yield
    finally:
        for fd in fds:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
