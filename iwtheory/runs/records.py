"""Run records: runs/<hash>/{config.json, metrics.jsonl, summary.json, done}, and their checks.

A run directory is named by the hash of its resolved config, so a repeated sweep skips
finished runs. Every metrics line repeats the cell's identity (experiment, config hash,
seed and sweep keys), so a line is meaningful on its own. Writes are append-and-fsync, and
``done`` is written last, only after checking that the metrics hold every scheduled epoch
(or time) exactly once: a directory without it is an unfinished run.

Everything read back is checked and every failure names its file: a malformed metrics line is
an error with its line number, except a partial last line (what a full disk or a kill in the
middle of a write leaves), which a resume drops with a warning.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import signal
import sys
import tempfile
import zipfile
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np

from iwtheory.runs.config import ConfigError, config_hash
from iwtheory.runs.files import read_regular
from iwtheory.runs.schedule import NoSchedule, ScheduleError, schedule_gaps, scheduled

if TYPE_CHECKING:  # pandas loads where records are read into tables, not on every `train` start
    import pandas as pd


class RecordError(ValueError):
    """A run record (metrics, summary, config, features, checkpoint) that is malformed or inconsistent."""


def warn(message: str) -> None:
    """One warning line on stderr (what the CLI's errors look like, with 'warning')."""
    print(f"iwtheory: warning: {message}", file=sys.stderr, flush=True)


# ---- fault injection (tests): IWTHEORY_FAULT=N kills the process with SIGKILL at its Nth write point

_fault = {"count": 0}


def fault_point(tag: str) -> None:
    """A place where a kill -9 must leave records that resume to the same result (tests inject one)."""
    at, log = os.environ.get("IWTHEORY_FAULT"), os.environ.get("IWTHEORY_FAULT_LOG")
    if not at and not log:
        return
    _fault["count"] += 1
    if log:
        with open(log, "a") as f:
            f.write(f"{_fault['count']} {tag}\n")
    if at and _fault["count"] == int(at):
        os.kill(os.getpid(), signal.SIGKILL)


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


def read_json(path: str | Path) -> dict:
    """A JSON object from ``path``, or RecordError naming the file."""
    path = Path(path)
    if not os.path.lexists(path):
        raise RecordError(f"{path}: missing")
    data = read_regular(path, "json", RecordError)
    try:
        obj = json.loads(data.decode())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise RecordError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(obj, dict):
        raise RecordError(f"{path}: expected a JSON object, found {type(obj).__name__}")
    return obj


def read_jsonl(path: str | Path, repair: bool = False, tolerate_partial: bool = False) -> list[dict]:
    """The JSON objects of a metrics file, one per line.

    A last line without its newline that does not parse is a partial write: ``repair`` drops it
    from the file (with a warning), ``tolerate_partial`` ignores it; otherwise, and for any other
    malformed line, RecordError names the file and the line number.
    """
    path = Path(path)
    try:
        text = read_regular(path, "metrics", RecordError, missing=b"").decode()
    except UnicodeDecodeError as e:
        raise RecordError(f"{path}: not readable ({e})") from None
    lines = text.split("\n")
    tail = lines.pop()  # '' when the file ends with a newline
    rows = []
    for i, ln in enumerate(lines, 1):
        if not ln.strip():
            continue
        try:
            r = json.loads(ln)
        except json.JSONDecodeError as e:
            raise RecordError(f"{path}, line {i}: malformed record ({e.msg})") from None
        if not isinstance(r, dict):
            raise RecordError(f"{path}, line {i}: expected a JSON object")
        rows.append(r)
    if tail.strip():
        try:
            r = json.loads(tail)
            if not isinstance(r, dict):
                raise json.JSONDecodeError("not an object", tail, 0)
            rows.append(r)  # complete, only its newline was lost
            if repair:
                _atomic_write(path, text + "\n")
        except json.JSONDecodeError:
            n = len(lines) + 1
            if repair:
                warn(f"{path}, line {n}: dropped a partial last line ({len(tail)} bytes; an interrupted write)")
                _atomic_write(path, "".join(ln + "\n" for ln in lines))
            elif not tolerate_partial:
                raise RecordError(f"{path}, line {n}: partial last line (an interrupted write); "
                                  "rerun the same command to resume the run, which drops it") from None
    return rows


# What identifies a run within its experiment, by run kind, in the order its metrics lines carry them: written
# into every metrics line and summary, and (all kinds together, ``RUN_KEYS``) what the reports refuse to see twice.
IDENTITY = {"theory": ("experiment", "weight", "loss", "depth", "method", "seed", "duplicate"),
            "train": ("experiment", "regime", "dataset", "weight", "seed", "lr", "weight_decay", "dropout"),
            "inside": ("experiment", "weight", "seed")}
QUICK = "quick"  # a marker file in a run folder: the run is of a config's [quick] variant
SWEEP = "sweep.json"  # in a run folder: every run its config's regime plans, so a report can tell a partial sweep
# a user's weighting (powers of per-example weights, class-weight vectors): in the identity only where a run has it
OPTIONAL_IDENTITY = ("power", "class_weight", "vector")
RUN_KEYS = tuple(dict.fromkeys(k for keys in IDENTITY.values() for k in keys))


def identity(cell: dict) -> dict:
    """A resolved cell's identity keys (``IDENTITY`` of its kind); a theory cell leaves ``duplicate`` out at its
    default (so older runs keep their hashes), and its identity says False."""
    keys = IDENTITY[cell["kind"]] + tuple(k for k in OPTIONAL_IDENTITY if k in cell)
    out = {k: bool(cell.get(k, False)) if k == "duplicate" else cell.get(k) for k in keys}
    if "class_weight" in out:  # a vector: one text value, so tables can group by it
        out["class_weight"] = ":".join(f"{float(w):g}" for w in out["class_weight"])
    return out


class Run:
    """One run directory. Its identity (``identity(config)``) is copied into every metrics line.

    ``extra`` (for CNN runs, the data fingerprint) is written to config.json beside the config but is
    not part of the hash: the run's folder is known before any data is read.
    """

    def __init__(self, root: str | Path, config: dict):
        self.config = config
        self.hash = config_hash(config)
        self.dir = Path(root) / self.hash
        self.identity = {"config_hash": self.hash, **identity(config)}

    @property
    def done(self) -> bool:
        return (self.dir / "done").exists()

    def finished(self) -> bool:
        """``done``, and its metrics whole: a done run whose last line was cut (a full disk) or whose schedule
        falls short loses its ``done`` marker here, with a warning, so the sweep reruns it instead of every
        report refusing it for good."""
        if not self.done:
            return False
        try:
            why = check_complete(self.dir, read_jsonl(self.metrics_path))
        except RecordError as e:
            why = str(e)
        if not why:
            return True
        warn(f"run {self.dir} was marked done but its metrics are damaged ({why}); it will be run again")
        (self.dir / "done").unlink()
        return False

    @property
    def metrics_path(self) -> Path:
        return self.dir / "metrics.jsonl"

    def stored_config(self) -> dict | None:
        """config.json as written by an earlier start, or None if there is none."""
        p = self.dir / "config.json"
        return read_json(p) if p.exists() else None

    def start(self, fresh: bool = True, extra: dict | None = None) -> None:
        """Create the directory and config.json; ``fresh`` drops any earlier metrics, summary and features."""
        if self.dir.is_symlink():
            raise RecordError(f"{self.dir} is a link (to {os.readlink(self.dir)!r}): a run folder must be a folder "
                              "of its own under --out; remove the link")
        self.dir.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.dir / "config.json",
                      json.dumps(_jsonable({**self.config, **(extra or {})}), indent=2, sort_keys=True))
        if fresh:
            for name in ("metrics.jsonl", "summary.json", "done"):
                if (self.dir / name).exists():
                    (self.dir / name).unlink()
            for f in sorted((self.dir / "features").glob("*.npz")) if (self.dir / "features").is_dir() else []:
                f.unlink()

    def log(self, rows: list[dict], sync: bool = True) -> None:
        """Append metrics lines. ``sync = False`` leaves them to the page cache (a killed process loses nothing;
        a lost machine may lose lines after the last checkpoint, which a resume drops anyway): the training loop
        calls ``sync`` before each checkpoint instead of paying an fsync per run per evaluation."""
        for r in rows:
            clash = [k for k in r if k in self.identity and r[k] != self.identity[k]]
            if clash:
                raise ValueError(f"metrics {clash} would overwrite the run's identity keys of the same name")
        fault_point("metrics")
        with open(self.metrics_path, "a") as f:
            for r in rows:
                f.write(json.dumps(_jsonable({**self.identity, **r})) + "\n")
            f.flush()
            if sync:
                os.fsync(f.fileno())

    def sync(self) -> None:
        """Force the metrics written so far onto the disk (before a checkpoint that counts on them)."""
        try:  # never through a link, never waiting on a FIFO: durability is best effort, the checks are elsewhere
            fd = os.open(self.metrics_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)

    def read_metrics(self, repair: bool = False) -> list[dict]:
        return read_jsonl(self.metrics_path, repair=repair)

    def truncate_after(self, key: str, last) -> list[dict]:
        """Drop metrics lines with ``key`` > ``last`` (a resume from a checkpoint at ``last``); return the rest."""
        rows = self.read_metrics(repair=True)
        if all(r.get(key, -1) <= last for r in rows):
            return rows
        lines = [ln for ln in self.metrics_path.read_text().splitlines() if ln.strip()]
        keep = [(ln, r) for ln, r in zip(lines, rows) if r.get(key, -1) <= last]  # the lines as written
        _atomic_write(self.metrics_path, "".join(ln + "\n" for ln, _ in keep))
        return [r for _, r in keep]

    def write_summary(self, summary: dict) -> None:
        fault_point("summary")
        _atomic_write(self.dir / "summary.json", json.dumps(_jsonable(summary), indent=2, sort_keys=True))

    def finish(self) -> None:
        """Write ``done``, after checking that the metrics hold every scheduled point exactly once."""
        key, _ = scheduled(self.config)
        gaps = schedule_gaps(self.config, [r.get(key) for r in self.read_metrics()])
        if gaps:
            raise RecordError(f"{self.metrics_path}: not marking the run done: {gaps}")
        self.sync()
        fault_point("done")
        (self.dir / "done").write_text("")


def _atomic_write(path: Path, text: str | bytes) -> None:
    """Write ``path`` whole or not at all (a temporary file beside it, renamed into place); a failed write (a full
    disk) removes the temporary file and names the file it was writing."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(text.encode() if isinstance(text, str) else text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)  # never leave a .tmp holding the space that ran out
        raise OSError(e.errno, f"writing {path}: {e.strerror or e}") from None


def check_out(out: str | Path) -> Path:
    """The records folder, created if needed; a file or an unwritable folder is a clear error."""
    if not str(out).strip():
        raise ConfigError("--out is empty: name a folder for the run records (default: runs)")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder of run records")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=out)  # unique: writers may share a process
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ConfigError(f"--out {out} is not writable ({e.strerror or e})") from None
    return out


# ---- reading folders of runs ------------------------------------------------------------------

_RUN_NAME = re.compile(r"[0-9a-f]{16}")


def run_dirs(path: str | Path) -> list[Path]:
    """Run directories at ``path`` (itself a run directory, or a folder of them). A folder not named by a run
    hash (a backup copy such as ``X.bak``) is left out with one warning line: it is not a run of this sweep."""
    path = Path(path)
    if (path / "config.json").exists():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"no run records at {path}")
    found, linked = [], []
    for d in sorted(path.iterdir()):
        if d.is_symlink():  # a run folder is never followed through a link (its records could be anywhere)
            linked.append(d)
        elif d.is_dir() and (d / "config.json").exists():
            found.append(d)
    for d in linked:
        warn(f"{d} is a link (to {os.readlink(d)!r}), not a run folder; left out")
    stray = [d for d in found if not _RUN_NAME.fullmatch(d.name)]
    for d in stray:
        warn(f"{d} is not named by a run hash (a copy?); left out")
    return [d for d in found if _RUN_NAME.fullmatch(d.name)]


def mark_quick(cfg, run: "Run") -> None:
    """The marker that says a run is of its config's [quick] variant (a smoke run), where it is one."""
    if getattr(cfg, "_quick", False):
        (run.dir / QUICK).write_text("the quick variant of its config: a smoke run, not evidence\n")


def planned_runs(path: str | Path) -> dict[tuple[str, str], set[str]]:
    """(experiment, regime) -> the run hashes the sweeps behind the runs under ``path`` planned (their
    ``sweep.json``; runs written before these files existed plan nothing)."""
    out: dict[tuple[str, str], set[str]] = {}
    for d in run_dirs(path):
        if not (d / SWEEP).exists():
            continue
        s = read_json(d / SWEEP)
        hashes = s.get("planned")
        if not isinstance(hashes, list) or not all(isinstance(h, str) and _RUN_NAME.fullmatch(h) for h in hashes):
            raise RecordError(f"{d / SWEEP}: 'planned' is not a list of run hashes")
        out.setdefault((str(s.get("experiment")), str(s.get("regime"))), set()).update(hashes)
    return out


# values a metrics line must hold as numbers in [0, 1] unless its model diverged
_SHARES = ("train_acc", "test_acc", "val_acc", "test_balanced_acc", "frac_pos_test", "frac_pos_other",
           "frac_pos_noise")


OPTIONAL_NUMBERS = ("angle_unweighted", "normalised_margin", "param_norm")  # null where they do not apply


def check_rows(d: Path, rows: list[dict]) -> None:
    """Every metrics line of run folder ``d`` belongs to it (its config hash) and holds its shares as numbers
    in [0, 1] (a model that diverged excepted): a foreign or damaged line must not reach a published number."""
    for i, r in enumerate(rows, 1):
        h = r.get("config_hash")
        if h != d.name:
            whose = f"belongs to run {h!r}" if h is not None else "names no run (no config_hash)"
            raise RecordError(f"{d / 'metrics.jsonl'} line {i}: {whose}, not {d.name}")
        step = r.get("step")
        if step is not None and not (isinstance(step, int) and not isinstance(step, bool) and step >= 0):
            raise RecordError(f"{d / 'metrics.jsonl'} line {i}: step = {step!r} is not a count of steps")
        if r.get("diverged"):
            continue
        for k in _SHARES:
            v = r.get(k)
            if v is not None and not (isinstance(v, (int, float)) and not isinstance(v, bool)
                                      and math.isfinite(v) and 0.0 <= v <= 1.0):
                raise RecordError(f"{d / 'metrics.jsonl'} line {i}: {k} = {v!r} is not a share in [0, 1]")


def _positive_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _text(v) -> bool:
    return isinstance(v, str)


# the settings of a network run's config.json that the reports compute with: a value of another type is a damaged
# record, refused here by name instead of failing deep in a report (a null batch size was a TypeError)
TRAIN_FIELDS = {
    "batch_size": ("a positive integer", _positive_int),
    "epochs": ("a positive integer", _positive_int),
    "seed": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "experiment": ("text", _text), "regime": ("text", _text), "dataset": ("text", _text), "model": ("text", _text),
    "hidden": ("a list of positive integers", lambda v: isinstance(v, list) and all(map(_positive_int, v))),
    "weight": ("a finite positive number or null", lambda v: v is None or (
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0)),
}


def check_train_config(path: Path, cfg: dict) -> None:
    """A network run's ``config.json`` holds the settings the reports read, each of its type (RecordError)."""
    for key, (what, ok) in TRAIN_FIELDS.items():
        if key in cfg and not ok(cfg[key]):
            raise RecordError(f"{path}: {key} = {cfg[key]!r} is not {what}; the record is damaged (delete the run "
                              "folder and rerun it)")


def check_complete(d: Path, rows: list[dict]) -> str:
    """'' when a finished run's metrics hold its schedule once; otherwise what is wrong."""
    cfg = read_json(d / "config.json")
    if cfg.get("kind") == "train":
        check_train_config(d / "config.json", cfg)
    try:
        key, _ = scheduled(cfg)
    except NoSchedule:
        return ""  # a kind without a schedule (imported records of another tool) is not checked
    except ScheduleError as e:
        raise RecordError(f"{d / 'config.json'}: {e}") from None
    return schedule_gaps(cfg, [r.get(key) for r in rows])


def load(path: str | Path, experiment: str | None = None, finished_only: bool = True,
         check: bool = True) -> pd.DataFrame:
    """All metrics lines under ``path`` as one DataFrame (one row per line).

    ``experiment`` keeps one experiment's runs; unfinished runs are left out unless
    ``finished_only`` is False, in which case a ``done`` column tells them apart. With ``check``,
    a finished run whose metrics miss or repeat a scheduled epoch is a RecordError naming it.
    """
    import pandas as pd

    frames = []
    for d in run_dirs(path):
        is_done = (d / "done").exists()
        if finished_only and not is_done:
            continue
        rows = read_jsonl(d / "metrics.jsonl", tolerate_partial=not is_done)
        if check:
            check_rows(d, rows)
        if check and is_done:
            gaps = check_complete(d, rows)
            if gaps:
                raise RecordError(f"run {d} is marked done but its metrics fall short: {gaps}; "
                                  "delete the folder and rerun to redo it")
        if not rows and not is_done and not finished_only:
            # started (its folder and config.json written) but no metrics line yet: still a run of the sweep, and
            # an unfinished one; leaving it out would let a report read a partial sweep as a whole one
            cfg = read_json(d / "config.json")
            rows = [{"config_hash": d.name, "experiment": cfg.get("experiment"), "started_only": True}]
        if experiment is not None:
            rows = [r for r in rows if r.get("experiment") == experiment]
        if rows:
            df = pd.DataFrame(rows)
            if (d / QUICK).is_file():
                df["quick"] = True
            for col in OPTIONAL_NUMBERS:  # null where they do not apply: float columns with nan, not objects
                if col in df:
                    try:
                        df[col] = pd.to_numeric(df[col]).astype(float)
                    except (TypeError, ValueError) as e:
                        raise RecordError(f"{d / 'metrics.jsonl'}: {col} holds a value that is no number ({e})") \
                            from None
            df["done"] = is_done
            frames.append(df)
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


def load_summaries(path: str | Path, experiment: str | None = None) -> pd.DataFrame:
    """summary.json of every finished run (one row each), with its config hash."""
    import pandas as pd

    rows = []
    for d in run_dirs(path):
        s = d / "summary.json"
        if (d / "done").exists():
            r = read_json(s)
            if experiment is None or r.get("experiment") == experiment:
                rows.append(r)
    return pd.DataFrame(rows)


def missing_runs(root: str | Path, hashes: list[str]) -> dict[str, list[str]]:
    """Which of the expected run hashes are absent or unfinished under ``root``."""
    root = Path(root)
    absent = [h for h in hashes if not (root / h).is_dir()]
    unfinished = [h for h in hashes if (root / h).is_dir() and not (root / h / "done").exists()]
    return {"absent": absent, "unfinished": unfinished}


def read_features(path: str | Path) -> dict[str, np.ndarray]:
    """One saved features file (penultimate features, labels, last layer), or RecordError naming it; read through
    ``read_regular`` (a FIFO would block np.load, a link could lead anywhere)."""
    data = read_regular(path, "features", RecordError)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            out = {k: z[k] for k in ("features", "labels", "weight", "bias", "epoch")}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise RecordError(f"{path}: not a readable features file ({type(e).__name__}: {e})") from None
    if out["features"].ndim != 2 or len(out["labels"]) != len(out["features"]):
        raise RecordError(f"{path}: features of shape {out['features'].shape} with {len(out['labels'])} labels")
    return out


def feature_files(run_dir: str | Path) -> list[Path]:
    """A CNN run's saved feature files (``features/epoch_*.npz``), in epoch order of their names."""
    return sorted((Path(run_dir) / "features").glob("epoch_*.npz"))
