"""Progress that suits where it goes: a tqdm bar on a terminal, a plain line every tenth otherwise.

A bar redraws itself with carriage returns; written into a log file (CI, ``make reproduce > log``)
that is one endless line of redraws, so a stream that is not a terminal gets whole lines instead.
"""

from __future__ import annotations

import sys
import time

from tqdm import tqdm


class LineProgress:
    """tqdm's update/close/context interface, printing ``desc: k/total unit (p%), s elapsed`` each time
    another ``step`` of the total is done, and once at the end."""

    def __init__(self, total: int, desc: str = "", unit: str = "it", initial: int = 0, step: float = 0.1,
                 file=None):
        self.total, self.desc, self.unit, self.n = max(int(total), 0), desc, unit, int(initial)
        self.every = max(1, int(round(step * self.total)))
        self.next = (self.n // self.every + 1) * self.every
        self.file = file or sys.stderr
        self.t0 = time.monotonic()
        self.closed = False

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.n >= self.next and self.n < self.total:
            self._line()
            self.next = (self.n // self.every + 1) * self.every

    def _line(self) -> None:
        share = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        print(f"{self.desc}: {self.n}/{self.total} {self.unit}{share}, {time.monotonic() - self.t0:.0f} s",
              file=self.file, flush=True)

    def close(self) -> None:
        if not self.closed and self.total and self.n >= self.total:
            self._line()
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def progress(total: int, desc: str = "", unit: str = "it", initial: int = 0, enabled: bool = True, file=None):
    """A tqdm bar when ``file`` (stderr) is a terminal, a ``LineProgress`` otherwise, nothing when disabled."""
    file = file or sys.stderr
    if not enabled:
        return tqdm(total=total, disable=True)
    if getattr(file, "isatty", lambda: False)():
        return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=file)
    return LineProgress(total, desc, unit, initial, file=file)
