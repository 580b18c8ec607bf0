"""`--scheduler tcp://...` pointed at what is not a working Dask scheduler: a one-line ConfigError naming the
address, within seconds, never a hang or a huge allocation. Every server here listens on 127.0.0.1 only, serves
one bounded purpose and is closed by the test."""

import socket
import threading
import time

import pytest

from iwtheory.runs.config import ConfigError

distributed = pytest.importorskip("distributed")
from iwtheory.runs.launch import connect, probe_scheduler  # noqa: E402


class Server:
    """A loopback TCP server that accepts and then sends ``greeting`` (or nothing) and holds the connection."""

    def __init__(self, greeting: bytes | None):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.sock.settimeout(0.2)
        self.greeting, self.stop, self.conns = greeting, threading.Event(), []
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"tcp://127.0.0.1:{self.sock.getsockname()[1]}"

    def run(self):
        deadline = time.monotonic() + 60  # bounded even if a test forgets to close it
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(c)
            if self.greeting:
                c.sendall(self.greeting)

    def close(self):
        self.stop.set()
        self.thread.join(timeout=5)
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.mark.parametrize("greeting, message", [
    (None, "sends nothing within"),                                     # a silent port, an HTTP server
    (b"SSH-2.0-OpenSSH_9.6\r\n" + b"\0" * 16, "not a Dask scheduler"),  # a service that speaks first
    (b"\xff" * 16, "not a Dask scheduler"),                             # 8 bytes that read as 2**64 - 1
])
def test_a_service_that_is_not_dask_is_refused_quickly(greeting, message):
    srv = Server(greeting)
    try:
        t = time.monotonic()
        with pytest.raises(ConfigError, match=message) as e:
            probe_scheduler(srv.address, timeout=1.0)
        assert time.monotonic() - t < 10 and srv.address in str(e.value)
        with pytest.raises(ConfigError, match=message):
            with connect(srv.address, connect_timeout=1.0, worker_timeout=1.0):
                pass
    finally:
        srv.close()


def test_a_closed_port_and_a_bad_address_are_named():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(ConfigError, match="no scheduler answers there"):
        probe_scheduler(f"tcp://127.0.0.1:{port}", timeout=1.0)
    with pytest.raises(ConfigError, match="expected tcp://HOST:PORT"):
        probe_scheduler("tcp://nohostport", timeout=1.0)


def test_a_scheduler_without_workers_times_out_with_a_message():
    import asyncio

    from distributed import Scheduler

    started, done = threading.Event(), threading.Event()
    box = {}

    def serve():
        async def main():
            async with Scheduler(host="127.0.0.1", port=0, dashboard_address=None) as s:
                box["address"] = s.address
                started.set()
                while not done.is_set():
                    await asyncio.sleep(0.05)
        asyncio.run(main())

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    try:
        assert started.wait(30)
        probe_scheduler(box["address"], timeout=2.0)  # a real scheduler passes the probe
        t = time.monotonic()
        with pytest.raises(ConfigError, match="no workers after 2 s"):
            with connect(box["address"], connect_timeout=5.0, worker_timeout=2.0):
                pass
        assert time.monotonic() - t < 30
    finally:
        done.set()
        th.join(timeout=30)
