"""Run records: runs/<hash>/{config.json, metrics.jsonl, summary.json, done}.

A run directory is named by the hash of its resolved config, so a repeated sweep skips
finished runs. Every metrics line repeats the cell's identity (experiment, config hash,
seed and sweep keys), so a line is meaningful on its own. Writes are append-and-flush,
and ``done`` is written last: a directory without it is an unfinished run.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pandas as pd

from iwtheory.runs.config import config_hash


def _jsonable(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "tolist"):
        return _jsonable(x.tolist())
    return x


class Run:
    """One run directory. ``identity`` keys are copied into every metrics line."""

    def __init__(self, root: str | Path, config: dict, identity: dict):
        self.config = config
        self.hash = config_hash(config)
        self.dir = Path(root) / self.hash
        self.identity = {"config_hash": self.hash, **identity}

    @property
    def done(self) -> bool:
        return (self.dir / "done").exists()

    def start(self, fresh: bool = True) -> None:
        """Create the directory and config.json; ``fresh`` drops a previous partial metrics file."""
        self.dir.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.dir / "config.json", json.dumps(_jsonable(self.config), indent=2, sort_keys=True))
        if fresh and (self.dir / "metrics.jsonl").exists():
            (self.dir / "metrics.jsonl").unlink()

    def log(self, rows: list[dict]) -> None:
        for r in rows:
            clash = [k for k in r if k in self.identity and r[k] != self.identity[k]]
            if clash:
                raise ValueError(f"metrics {clash} would overwrite the run's identity keys of the same name")
        with open(self.dir / "metrics.jsonl", "a") as f:
            for r in rows:
                f.write(json.dumps(_jsonable({**self.identity, **r})) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def truncate_after(self, key: str, last) -> None:
        """Drop metrics lines with ``key`` > ``last`` (used when resuming from a checkpoint)."""
        path = self.dir / "metrics.jsonl"
        if not path.exists():
            return
        keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln).get(key, -1) <= last]
        _atomic_write(path, "".join(ln + "\n" for ln in keep))

    def write_summary(self, summary: dict) -> None:
        _atomic_write(self.dir / "summary.json", json.dumps(_jsonable(summary), indent=2, sort_keys=True))

    def finish(self) -> None:
        (self.dir / "done").write_text("")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def run_dirs(path: str | Path) -> list[Path]:
    """Run directories at ``path`` (itself a run directory, or a folder of them)."""
    path = Path(path)
    if (path / "config.json").exists():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"no run records at {path}")
    return sorted(p.parent for p in path.glob("*/config.json"))


def load(path: str | Path, experiment: str | None = None, finished_only: bool = True) -> pd.DataFrame:
    """All metrics lines under ``path`` as one DataFrame (one row per line).

    ``experiment`` keeps one experiment's runs; unfinished runs are left out unless
    ``finished_only`` is False, in which case a ``done`` column tells them apart.
    """
    frames = []
    for d in run_dirs(path):
        is_done = (d / "done").exists()
        if finished_only and not is_done:
            continue
        m = d / "metrics.jsonl"
        if not m.exists():
            continue
        rows = [json.loads(ln) for ln in m.read_text().splitlines() if ln.strip()]
        if experiment is not None:
            rows = [r for r in rows if r.get("experiment") == experiment]
        if rows:
            df = pd.DataFrame(rows)
            df["done"] = is_done
            frames.append(df)
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


def load_summaries(path: str | Path, experiment: str | None = None) -> pd.DataFrame:
    """summary.json of every finished run (one row each), with its config hash."""
    rows = []
    for d in run_dirs(path):
        s = d / "summary.json"
        if (d / "done").exists() and s.exists():
            r = json.loads(s.read_text())
            if experiment is None or r.get("experiment") == experiment:
                rows.append(r)
    return pd.DataFrame(rows)


def missing_runs(root: str | Path, hashes: list[str]) -> dict[str, list[str]]:
    """Which of the expected run hashes are absent or unfinished under ``root``."""
    root = Path(root)
    absent = [h for h in hashes if not (root / h).is_dir()]
    unfinished = [h for h in hashes if (root / h).is_dir() and not (root / h / "done").exists()]
    return {"absent": absent, "unfinished": unfinished}
