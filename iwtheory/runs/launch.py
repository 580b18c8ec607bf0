"""Sweeps on Dask distributed: `--scheduler local[:N]` or `--scheduler tcp://HOST:PORT`.

Units of work: a stack group of models (``train``) or a batch of theory cells (``theory``). Each unit runs
on a worker and writes its own records into the shared ``--out`` folder, under the runs' write locks, so a
unit never runs twice at once and a unit rescheduled after its worker died resumes from its checkpoint and
ends with the records an uninterrupted run writes. A unit that raises is reported with its runs and the
others go on; rerunning the same command resumes. Records are identical across modes when the torch
thread counts agree (a worker of a local cluster uses one thread).

    local           a LocalCluster with one single-threaded worker process per core
    local:N         ... with N worker processes
    tcp://HOST:PORT an existing scheduler (`dask scheduler`, `dask worker tcp://HOST:PORT --nthreads 1`,
                    or dask-jobqueue's SLURMCluster); GPU groups ask for the resource GPU=1
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from iwtheory.runs.config import ConfigError, config_hash, load_study, load_toml
from iwtheory.runs.progress import progress as progress_bar
from iwtheory.runs.records import Run, check_out
from iwtheory.runs.train import (
    TrainConfig,
    drop_finished_checkpoints,
    plan_groups,
    resolve_device,
    run_group,
    run_study,
)


class UnitsFailed(RuntimeError):
    """Some units of a distributed sweep raised; the message lists them."""


def parse_scheduler(spec: str) -> tuple[str, int | None]:
    """('local', N or None) or ('tcp://...', None); anything else is a ConfigError."""
    if spec == "local":
        return "local", None
    if spec.startswith("local:"):
        try:
            n = int(spec.split(":", 1)[1])
        except ValueError:
            n = 0
        if n < 1:
            raise ConfigError(f"--scheduler {spec!r}: local:N needs a positive number of workers")
        return "local", n
    if spec.startswith(("tcp://", "tls://", "ucx://")):
        return spec, None
    raise ConfigError(f"--scheduler {spec!r}: expected local, local:N or tcp://HOST:PORT")


def probe_scheduler(address: str, timeout: float = 5.0) -> None:
    """Check that a Dask scheduler answers at ``tcp://HOST:PORT`` before a Client is built on it: the port
    must accept within ``timeout`` and send Dask's handshake (a scheduler speaks first: an 8-byte message length,
    then a frame count), so a closed port, a silent service, an HTTP server or one that sends a banner of its
    own gets a one-line ConfigError instead of a hang or a huge allocation."""
    if not address.startswith("tcp://"):
        return  # tls:// and ucx:// speak their own handshakes first
    try:
        u = urlsplit(address)
        host, port = u.hostname, u.port
    except ValueError:
        host, port = None, None
    if not host or not port:
        raise ConfigError(f"--scheduler {address}: expected tcp://HOST:PORT")
    try:
        with socket.create_connection((host, port), timeout=timeout) as so:
            so.settimeout(timeout)
            head = b""
            while len(head) < 16:
                chunk = so.recv(16 - len(head))
                if not chunk:
                    break
                head += chunk
    except socket.timeout:
        raise ConfigError(f"--scheduler {address}: the port accepts but sends nothing within {timeout:g} s; a Dask "
                          "scheduler greets first (an HTTP server or another service?)") from None
    except OSError as e:
        raise ConfigError(f"--scheduler {address}: no scheduler answers there ({e.strerror or e})") from None
    total, frames = struct.unpack("<QQ", head) if len(head) == 16 else (0, 0)
    if not (16 <= total <= 1 << 20 and 1 <= frames <= 64):
        shown = head[:16].decode("ascii", "replace").encode("unicode_escape").decode()
        raise ConfigError(f"--scheduler {address}: not a Dask scheduler (it greeted with {shown!r})")


@contextlib.contextmanager
def connect(spec: str, connect_timeout: float = 10.0, worker_timeout: float = 60.0):
    """A dask.distributed Client for ``spec`` (a LocalCluster is started here and closed after). An existing
    scheduler is probed first (``probe_scheduler``), and must have a worker within ``worker_timeout`` seconds."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError("--scheduler needs dask[distributed] (pip install 'dask[distributed]')") from None
    kind, n = parse_scheduler(spec)
    if kind == "local":
        n = n or os.cpu_count() or 1
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                               silence_logs=40)
        client = Client(cluster)
    else:
        cluster = None
        probe_scheduler(kind, timeout=min(connect_timeout, 5.0))
        try:
            client = Client(kind, timeout=f"{connect_timeout}s")
        except (OSError, TimeoutError) as e:
            raise ConfigError(f"--scheduler {spec}: no scheduler answers there ({e})") from None
        try:
            client.wait_for_workers(1, timeout=worker_timeout)
        except (TimeoutError, OSError):
            client.close()
            raise ConfigError(f"--scheduler {spec}: the scheduler has no workers after {worker_timeout:g} s; start "
                              f"some with `dask worker {spec} --nthreads 1`") from None
    print(f"dask: {len(client.scheduler_info()['workers'])} worker(s); dashboard {client.dashboard_link}",
          flush=True)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


@dataclass
class Unit:
    """One piece of work and the runs it writes (named in failure reports)."""

    name: str
    runs: list[str]
    fn: object
    args: tuple
    resources: dict | None = None
    kwargs: dict = field(default_factory=dict)


def _set_threads(threads: int | None) -> None:
    if threads:
        with contextlib.suppress(Exception):
            import torch

            torch.set_num_threads(threads)


def _train_unit(cfgs, out, members, device, data_dir, download, threads, arrays=None):
    _set_threads(threads)
    return run_group(cfgs, out, members, device, data_dir=data_dir, download=download, progress=False,
                     wait=math.inf, arrays=arrays)


def _theory_unit(cfg, out, indices, threads):
    from iwtheory.runs.theory import run_cells

    _set_threads(threads)
    return run_cells(cfg, out, indices, wait=math.inf)


def train_units(cfgs, out, device: str, data_dir=None, download=None, threads: int | None = 1,
                arrays=None) -> list[Unit]:
    """One unit per stack group of the unfinished models of ``cfgs``; ``arrays``: a task of arrays given in memory
    (it travels to the workers with each unit)."""
    units = []
    for members in plan_groups(cfgs, out):
        hashes = [Run(out, c).hash for c in (cfgs[ci].cells()[k] for ci, k in members)]
        units.append(Unit(f"train-{config_hash(hashes)}", hashes, _train_unit,
                          (cfgs, str(out), members, device, data_dir, download, threads, arrays),
                          {"GPU": 1} if device.startswith("cuda") else None))
    return units


def theory_units(cfg, out, batch: int | None = None, workers: int = 2, threads: int | None = 1) -> list[Unit]:
    """The unfinished cells of ``cfg`` in batches (by default about four batches per worker)."""
    cells = cfg.cells()
    todo = [i for i, c in enumerate(cells) if not Run(out, c).finished()]
    size = batch or max(1, math.ceil(len(todo) / (4 * max(workers, 1))))
    units = []
    for g in range(0, len(todo), size):
        idx = todo[g:g + size]
        hashes = [config_hash(cells[i]) for i in idx]
        units.append(Unit(f"theory-{config_hash(hashes)}", hashes, _theory_unit, (cfg, str(out), idx, threads)))
    return units


def run_units(client, units: list[Unit], progress: bool = True, what: str = "units") -> list[str]:
    """Submit every unit, show a bar over finished units, report failures (the others go on); return the
    hashes finished. Raises UnitsFailed listing the failed units when any failed."""
    from distributed import as_completed

    if not units:
        return []
    futures = {client.submit(u.fn, *u.args, key=f"{u.name}-{time.time_ns()}", pure=False,
                             resources=u.resources, **u.kwargs): u for u in units}
    done, failed = [], []
    with progress_bar(len(units), what, "units", enabled=progress) as bar:
        for fut in as_completed(futures):
            unit = futures[fut]
            try:
                done += fut.result()
            except Exception as e:  # a unit's failure is reported with its runs; the others go on
                failed.append(f"{unit.name} (runs {', '.join(unit.runs[:4])}{' ...' if len(unit.runs) > 4 else ''})"
                              f": {type(e).__name__}: {e}")
                print(f"iwtheory: unit failed: {failed[-1]}", file=sys.stderr, flush=True)
            bar.update(1)
    if failed:
        raise UnitsFailed(f"{len(failed)} of {len(units)} units failed; rerun the same command to resume them: "
                          + " | ".join(failed))
    return done


def distributed_theory(client, cfg, out, progress: bool = True) -> list[str]:
    out = check_out(out).resolve()  # workers elsewhere see the shared folder by its full path
    workers = len(client.scheduler_info()["workers"])
    return run_units(client, theory_units(cfg, out, workers=workers, threads=threads_for(client)), progress,
                     cfg.name)


def threads_for(client) -> int | None:
    """Torch threads per unit: 1 on a local cluster's single-threaded workers, else the worker's own setting."""
    return 1 if getattr(client, "cluster", None) is not None else None


def distributed_train(client, cfgs, out, data_dir=None, device: str | None = None, download=None,
                      progress: bool = True, arrays=None) -> list[str]:
    out = check_out(out).resolve()
    dev = device or cfgs[0].device
    if dev == "auto":
        dev = "cpu"  # the client cannot see the workers' devices; name cuda to use GPU workers
    dev = resolve_device(dev) if dev == "cpu" else dev
    data_dir = str(Path(data_dir).resolve()) if data_dir else None
    done = run_units(client, train_units(cfgs, out, dev, data_dir, download, threads_for(client), arrays), progress,
                     cfgs[0].name)
    drop_finished_checkpoints(Path(out))
    return done


# ---- one interface: where a sweep runs is chosen once, by `launcher` --------------------------------------


def load_experiment(path: str | Path, runner: str, quick: bool = False, overrides: list[str] = (),
                    regimes: list[str] | None = None):
    """An experiment config for ``runner`` (theory, inside: one config; train: the study's list of regimes)."""
    # each runner's module loads here, on first use: a `train` start then never imports the theory solvers
    if runner == "theory":
        from iwtheory.runs.theory import TheoryConfig

        return load_toml(path, TheoryConfig, quick=quick, overrides=overrides)
    if runner == "inside":
        from iwtheory.runs.inside import InsideConfig

        return load_toml(path, InsideConfig, quick=quick, overrides=overrides)
    if runner == "train":
        return load_study(path, TrainConfig, quick=quick, overrides=overrides, regimes=regimes)
    raise ConfigError(f"unknown runner {runner!r}; expected theory, inside or train")


def sweep_size(runner: str, cfg) -> int:
    """The number of runs a loaded experiment names."""
    return sum(len(c.cells()) for c in cfg) if runner == "train" else len(cfg.cells())


class Serial:
    """Runs every unfinished run of a sweep in this process (``wait``: seconds to wait for another writer's
    locks)."""

    def __init__(self, wait: float = 0.0):
        self.wait = wait

    def run(self, runner: str, cfg, out, data_dir=None, device=None, download=None, progress: bool = True) -> int:
        """Run experiment ``cfg`` (as ``load_experiment`` gives it); return the number of runs it names."""
        if runner == "theory":
            from iwtheory.runs.theory import run_theory

            return len(run_theory(cfg, out, progress=progress, wait=self.wait))
        if runner == "inside":
            from iwtheory.runs.inside import run_inside

            return len(run_inside(cfg, out, progress=progress, wait=self.wait))
        return len(run_study(cfg, out, data_dir=data_dir, device=device, download=download, progress=progress,
                             wait=self.wait))


class Distributed(Serial):
    """Runs a sweep's units on a Dask client; the long runs (one small stack of nets) stay in this process."""

    def __init__(self, client):
        super().__init__(wait=math.inf)
        self.client = client

    def run(self, runner: str, cfg, out, data_dir=None, device=None, download=None, progress: bool = True) -> int:
        if runner == "theory":
            distributed_theory(self.client, cfg, out, progress)
        elif runner == "train":
            distributed_train(self.client, cfg, out, data_dir, device, download, progress)
        else:
            return Serial(wait=0.0).run(runner, cfg, out, progress=progress)
        return sweep_size(runner, cfg)


@contextlib.contextmanager
def launcher(scheduler: str | None = None, wait: float = 0.0):
    """The one place where serial or Dask is chosen: ``Serial`` without a scheduler, else ``Distributed`` on a
    client of ``connect(scheduler)`` (closed on leaving)."""
    if not scheduler:
        yield Serial(wait)
        return
    with connect(scheduler) as client:
        yield Distributed(client)
