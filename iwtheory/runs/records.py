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

import hashlib
import json
import math
import os
import re
import signal
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from iwtheory.runs.config import ConfigError, config_hash
from iwtheory.runs.schedule import NoSchedule, ScheduleError, schedule_gaps, scheduled


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
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        raise RecordError(f"{path}: missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
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
        text = path.read_bytes().decode()
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as e:
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


class Run:
    """One run directory. ``identity`` keys are copied into every metrics line.

    ``extra`` (for CNN runs, the data fingerprint) is written to config.json beside the config but is
    not part of the hash: the run's folder is known before any data is read.
    """

    def __init__(self, root: str | Path, config: dict, identity: dict):
        self.config = config
        self.hash = config_hash(config)
        self.dir = Path(root) / self.hash
        self.identity = {"config_hash": self.hash, **identity}

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
        self.dir.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.dir / "config.json",
                      json.dumps(_jsonable({**self.config, **(extra or {})}), indent=2, sort_keys=True))
        if fresh:
            for name in ("metrics.jsonl", "summary.json", "done"):
                if (self.dir / name).exists():
                    (self.dir / name).unlink()
            for f in sorted((self.dir / "features").glob("*.npz")) if (self.dir / "features").is_dir() else []:
                f.unlink()

    def log(self, rows: list[dict]) -> None:
        for r in rows:
            clash = [k for k in r if k in self.identity and r[k] != self.identity[k]]
            if clash:
                raise ValueError(f"metrics {clash} would overwrite the run's identity keys of the same name")
        fault_point("metrics")
        with open(self.metrics_path, "a") as f:
            for r in rows:
                f.write(json.dumps(_jsonable({**self.identity, **r})) + "\n")
            f.flush()
            os.fsync(f.fileno())

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
        fault_point("done")
        (self.dir / "done").write_text("")


def _atomic_write(path: Path, text: str | bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(text.encode() if isinstance(text, str) else text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def check_out(out: str | Path) -> Path:
    """The records folder, created if needed; a file or an unwritable folder is a clear error."""
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


# ---- checkpoints: a checked header, then the torch payload ----------------------------------

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
    found = sorted(p.parent for p in path.glob("*/config.json"))
    stray = [d for d in found if not _RUN_NAME.fullmatch(d.name)]
    for d in stray:
        warn(f"{d} is not named by a run hash (a copy?); left out")
    return [d for d in found if _RUN_NAME.fullmatch(d.name)]


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
        if r.get("diverged"):
            continue
        for k in _SHARES:
            v = r.get(k)
            if v is not None and not (isinstance(v, (int, float)) and not isinstance(v, bool)
                                      and math.isfinite(v) and 0.0 <= v <= 1.0):
                raise RecordError(f"{d / 'metrics.jsonl'} line {i}: {k} = {v!r} is not a share in [0, 1]")


def check_complete(d: Path, rows: list[dict]) -> str:
    """'' when a finished run's metrics hold its schedule once; otherwise what is wrong."""
    cfg = read_json(d / "config.json")
    if not isinstance(cfg, dict):
        raise RecordError(f"{d / 'config.json'}: expected a JSON object")
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
        if experiment is not None:
            rows = [r for r in rows if r.get("experiment") == experiment]
        if rows:
            df = pd.DataFrame(rows)
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
    """One saved features file (penultimate features, labels, last layer), or RecordError naming it."""
    try:
        with np.load(path) as z:
            out = {k: z[k] for k in ("features", "labels", "weight", "bias", "epoch")}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise RecordError(f"{path}: not a readable features file ({type(e).__name__}: {e})") from None
    if out["features"].ndim != 2 or len(out["labels"]) != len(out["features"]):
        raise RecordError(f"{path}: features of shape {out['features'].shape} with {len(out['labels'])} labels")
    return out


def feature_angles(run_dir: str | Path) -> pd.DataFrame:
    """For one CNN run: per recorded epoch, the last layer's angle to the feature-space max-margin direction."""
    from iwtheory.compare.directions import feature_max_margin

    run_dir = Path(run_dir)
    cfg = read_json(run_dir / "config.json")
    rows = []
    for f in sorted((run_dir / "features").glob("epoch_*.npz")):
        z = read_features(f)
        r = feature_max_margin(z["features"], z["labels"], z["weight"], z["bias"])
        rows.append({"epoch": int(z["epoch"]), "weight": cfg["weight"], "seed": cfg["seed"],
                     "regime": cfg.get("regime", "none"), "config_hash": run_dir.name, **r})
    return pd.DataFrame(rows)


_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")  # never "", "." or ".."
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
    import shutil
    import tarfile

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
        load(staging / "runs")  # every imported run holds its schedule once, or this names it
        size = sum(p.stat().st_size for p in staging.rglob("*") if p.is_file())
        if size > max_bytes:
            raise RecordError(f"the import holds {size / 2**20:.1f} MB, more than the {max_mb:g} MB a committed "
                              "result may take")
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def feature_limit_angle(run_dir: str | Path) -> dict:
    """For one CNN run, at its last recorded epoch: the last layer's angle to the limit its loss predicts for
    its own penultimate features (trained with the run's own class weights)."""
    from iwtheory.compare.directions import feature_limit

    run_dir = Path(run_dir)
    cfg, summ = read_json(run_dir / "config.json"), read_json(run_dir / "summary.json")
    files = sorted((run_dir / "features").glob("epoch_*.npz"))
    if not files:
        return {}
    z = read_features(files[-1])
    params = {"alpha": cfg.get("poly_alpha", 1.0)} if cfg["loss"] == "polynomial" else dict(cfg.get("loss_params", {}))
    r = feature_limit(z["features"], z["labels"], z["weight"], z["bias"], cfg["loss"],
                      summ.get("class_weights", [cfg["weight"], 1.0]), **params)
    return {"config_hash": run_dir.name, "epoch": int(z["epoch"]), **r}
