"""Shared test helpers: start a real server in-process on ephemeral ports, query it with dnspython.

    async def test_x():
        async with running(". {\n whoami\n}\n") as srv:
            r = await query(srv.port(), "example.org", "A")
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import dns.asyncquery
import dns.message
import dns.rdatatype
import pytest
from pycoredns_conformance.upstream import free_port  # noqa: F401 - re-exported for the tests

from pycoredns import log
from pycoredns.embed import serve
from pycoredns.process import Process

log.configure()


@asynccontextmanager
async def running(corefile: str, **kw) -> AsyncIterator[Process]:
    """A pycoredns server on ephemeral ports (keys without a port get one) inside this trio test."""
    kw.setdefault("dns_port", 0)
    async with serve(corefile, **kw) as process:
        yield process


async def query(port: int, name: str, rdtype: str | int = "A", *, tcp: bool = False, host: str = "127.0.0.1",
                timeout: float = 3.0, rdclass: str | int = "IN", **make_kw) -> dns.message.Message:
    """One query over real sockets with dnspython (UDP unless tcp=True)."""
    q = dns.message.make_query(name, rdtype, rdclass, **make_kw)
    if tcp:
        return await dns.asyncquery.tcp(q, host, timeout=timeout, port=port)
    return await dns.asyncquery.udp(q, host, timeout=timeout, port=port)


async def settle(pred: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll `pred` every 20 ms until it holds (True) or `timeout` passes (False): bounded in time."""
    import trio

    with trio.move_on_after(timeout):
        while not pred():
            await trio.sleep(0.02)
        return True
    return False


async def http_get(port: int, path: str, host: str = "127.0.0.1") -> tuple[int, str, bytes]:
    """(status, content type, body) of one HTTP/1.1 GET over a real socket (health, ready, metrics)."""
    import trio

    stream = await trio.open_tcp_stream(host, port)
    async with stream:
        await stream.send_all(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        data = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    ctype = next((h.split(":", 1)[1].strip() for h in lines if h.lower().startswith("content-type:")), "")
    return int(lines[0].split()[1]), ctype, body



class ServerProcess:
    """`python -m pycoredns` as a subprocess (CLI, signals, reload tests)."""

    def __init__(self, args: list[str], cwd: str | None = None, env: dict | None = None,
                 module: str = "pycoredns", python: str = sys.executable, prefix: tuple[str, ...] = (),
                 merge_stderr: bool = False) -> None:
        """`prefix` runs the server through another command (`ip netns exec NS`); `merge_stderr`
        reads stderr as part of stdout."""
        self.proc = subprocess.Popen([*prefix, python, "-m", module, *args], cwd=cwd,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
                                     text=False, env={**os.environ, **(env or {})})
        self.lines: list[str] = []
        self._buf = b""

    def wait_for_line(self, text: str, timeout: float = 30.0) -> str:
        """Read stdout until a line containing `text` (bounded by `timeout`)."""
        import select

        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines:
                if text in line:
                    return line
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                break
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            self._buf += chunk
            *complete, self._buf = self._buf.split(b"\n")
            self.lines.extend(c.decode(errors="replace") for c in complete)
        raise AssertionError(f"no line with {text!r}; got {self.lines!r}; stderr={self._stderr()}")

    def _stderr(self) -> str:
        if self.proc.poll() is not None and self.proc.stderr:
            return self.proc.stderr.read().decode(errors="replace")
        return "(running)"

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


@pytest.fixture(scope="module")
def api():
    """The Kubernetes API test server with the fixture cluster, one per test module (modules that
    need other objects define their own `api`)."""
    from pycoredns_conformance.apiserver import FIXTURE_CLUSTER, APIServer, load_objects

    with APIServer(load_objects(FIXTURE_CLUSTER)) as server:
        server.start()
        yield server


@pytest.fixture
def server_process():
    procs: list[ServerProcess] = []

    def start(args: list[str], **kw) -> ServerProcess:
        p = ServerProcess(args, **kw)
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.stop()
        for f in (p.proc.stdout, p.proc.stderr):
            if f:
                f.close()


@pytest.fixture
def logs():
    """The `pycoredns` logger's lines during the test (reload_helpers.LogLines)."""
    from reload_helpers import capture_logs

    yield from capture_logs()


@pytest.fixture
def log_lines(logs) -> list[str]:
    """Just the lines of `logs`, as `[LEVEL] message`."""
    return logs.lines
