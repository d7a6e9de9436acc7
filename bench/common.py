"""Shared benchmark helpers (not tests): start pycoredns as a subprocess, wait until it answers, run dnsperf.

    from bench.common import PyCoreDNS, dnsperf, write_queries
    with PyCoreDNS(corefile_text) as srv:
        print(dnsperf(srv.port, write_queries(["a.example.org A"]), seconds=10))

The unbound upstream is `tests/upstream.py`'s `Unbound` (one thread, loopback only).
"""

from __future__ import annotations

import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from upstream import Unbound, free_port  # noqa: E402

__all__ = ["ROOT", "PyCoreDNS", "Unbound", "answers", "dnsperf", "finish_dnsperf", "free_port", "start_dnsperf",
           "udp_responder", "udp_rounds", "write_queries"]


def answers(port: int, name: str = "example.org.", timeout: float = 0.3) -> bool:
    """True when something answers a UDP query on 127.0.0.1:port."""
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".") if p) + b"\x00"
    q = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + labels + struct.pack("!HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(q, ("127.0.0.1", port))
            return len(s.recv(4096)) >= 12
        except OSError:
            return False


class PyCoreDNS:
    """`python -m pycoredns` on a Corefile; `{PORT}` in the text is replaced by a free port (`.port`)."""

    def __init__(self, corefile: str, probe_name: str = "example.org.", ready_timeout: float = 15.0) -> None:
        self.port = free_port()
        self.corefile = corefile.replace("{PORT}", str(self.port))
        self.probe_name = probe_name
        self.ready_timeout = ready_timeout
        self.dir = tempfile.mkdtemp(prefix="pycoredns-bench-")
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> PyCoreDNS:
        path = os.path.join(self.dir, "Corefile")
        with open(path, "w") as f:
            f.write(self.corefile)
        self.proc = subprocess.Popen([sys.executable, "-m", "pycoredns", "-conf", path, "-quiet"], cwd=str(ROOT),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"pycoredns exited with {self.proc.returncode}: {self.proc.stderr.read()}")
            if answers(self.port, self.probe_name):
                return self
            time.sleep(0.05)
        self.__exit__()
        raise SystemExit(f"pycoredns did not answer within {self.ready_timeout}s")

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def cpu_seconds(self) -> float:
        """user+system CPU time of the server process so far (from /proc)."""
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def udp_responder(sock: socket.socket, answer: Callable[[bytes], bytes]) -> None:
    """The in-process loops' fake upstream: answer every datagram on the non-blocking `sock` with
    `answer(query)`, until cancelled."""
    import trio

    while True:
        await trio.lowlevel.wait_readable(sock)
        while True:
            try:
                q, addr = sock.recvfrom(65535)
            except BlockingIOError:
                break
            sock.sendto(answer(q), addr)


async def udp_rounds(sock: socket.socket, queries: list[bytes], rounds: int, batch: int, start: int = 0) -> int:
    """The in-process loops' load: `rounds` times, send `batch` queries (cycling through `queries` from
    index `start`) on a connected non-blocking UDP socket, then wait for as many replies. Returns the
    next index. Bounded by the server's answers: every query of these loops is answered."""
    import trio

    i = start
    for _ in range(rounds):
        for _ in range(batch):
            sock.send(queries[i % len(queries)])
            i += 1
        got = 0
        while got < batch:
            await trio.lowlevel.wait_readable(sock)
            while True:
                try:
                    sock.recv(65535)
                except BlockingIOError:
                    break
                got += 1
    return i


def write_queries(lines: list[str]) -> str:
    """A dnsperf data file (`NAME TYPE` per line) in a temp file; returns its path."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(lines) + "\n")
        return f.name


def start_dnsperf(port: int, datafile: str, seconds: int = 10, clients: int = 4, outstanding: int = 200,
                  extra: list[str] | None = None, prefix: list[str] | None = None) -> subprocess.Popen:
    """dnsperf against 127.0.0.1:port, started and left running; `finish_dnsperf` collects it.

    `prefix` goes before the command (`taskset -c 1` pins the load generator to a core; taskset execs
    dnsperf, so the process is dnsperf itself and its rusage is dnsperf's)."""
    cmd = [*(prefix or []), "dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", datafile, "-l", str(seconds),
           "-c", str(clients), "-q", str(outstanding), *(extra or [])]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish_dnsperf(proc: subprocess.Popen, timeout: float) -> dict:
    """Wait for a `start_dnsperf` process; returns qps, avg_latency_ms, lost, completed, rcodes and
    cpu_s (dnsperf's own user+system CPU, from wait4's rusage), or error."""
    killer = threading.Timer(timeout, proc.kill)  # a hung dnsperf is killed; its output so far is parsed
    killer.start()
    try:
        assert proc.stdout is not None
        out = proc.stdout.read()  # to EOF; not communicate(), which reaps the process and loses its rusage
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        killer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    qps = re.search(r"Queries per second:\s+([\d.]+)", out)
    lat = re.search(r"Average Latency \(s\):\s+([\d.]+) \(min [\d.]+, max ([\d.]+)\)", out)
    lost = re.search(r"Queries lost:\s+(\d+)", out)
    done = re.search(r"Queries completed:\s+(\d+)", out)
    rcodes = re.search(r"Response codes:\s+(.*)", out)
    if not qps:
        return {"error": out[-500:]}
    return {"qps": float(qps.group(1)), "avg_latency_ms": float(lat.group(1)) * 1000 if lat else float("nan"),
            "lost": int(lost.group(1)) if lost else -1, "completed": int(done.group(1)) if done else -1,
            "rcodes": rcodes.group(1) if rcodes else "", "cpu_s": cpu,
            "max_latency_ms": float(lat.group(2)) * 1000 if lat else float("nan")}


def dnsperf(port: int, datafile: str, seconds: int = 10, clients: int = 4, outstanding: int = 200,
            extra: list[str] | None = None, prefix: list[str] | None = None) -> dict:
    """Run dnsperf against 127.0.0.1:port; returns qps, avg_latency_ms, lost, completed, rcodes, cpu_s (or error).

    `prefix` goes before the command (`taskset -c 1` pins the load generator to a core)."""
    return finish_dnsperf(start_dnsperf(port, datafile, seconds, clients, outstanding, extra, prefix), seconds + 60)
