"""Bounded, typed reads of files from elsewhere: records, configs, snapshots.

A file is read only when it is a regular file (not a link, FIFO, device or folder), no larger than the cap of
its kind, checked by ``lstat`` before it is opened and by ``fstat`` on the opened descriptor (opened without
following links and without blocking, so a FIFO swapped in between cannot hang the reader). Every failure is
one error naming the file and what it is.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

MiB = 2**20
CAPS = {"metrics": 512 * MiB, "json": 16 * MiB, "config": 4 * MiB, "snapshot": 16 * MiB,
        "features": 256 * MiB}  # a run's features file: a few hundred images' features (48 KB in the study)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "a link"), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def read_regular(path: str | Path, kind: str, error=ValueError, missing=None) -> bytes:
    """The bytes of ``path``, a regular file of at most ``CAPS[kind]`` bytes; else ``error`` naming it. A missing
    file returns ``missing`` when that is given (bytes), else raises ``error``."""
    path = Path(path)
    cap = CAPS[kind]
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        if missing is not None:
            return missing
        raise error(f"{path}: does not exist") from None
    except OSError as e:
        raise error(f"{path}: cannot be read ({e.strerror or e})") from None
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{path}: {_kind(st.st_mode)}, not a regular file; refusing to read it")
    if st.st_size > cap:
        raise error(f"{path}: {st.st_size} bytes, more than the {cap} a {kind} file may hold")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise error(f"{path}: cannot be opened ({e.strerror or e})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{path}: {_kind(st.st_mode)}, not a regular file; refusing to read it")
        chunks, left = [], cap + 1
        while left > 0:
            b = os.read(fd, min(left, 8 * MiB))
            if not b:
                break
            chunks.append(b)
            left -= len(b)
        data = b"".join(chunks)
    except OSError as e:
        raise error(f"{path}: cannot be read ({e.strerror or e})") from None
    finally:
        os.close(fd)
    if len(data) > cap:
        raise error(f"{path}: grew past the {cap} bytes a {kind} file may hold while being read")
    return data
