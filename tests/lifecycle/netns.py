"""A private network namespace with the node-local address, servers inside it, and a fixed-rate load.

Every test gets a fresh namespace (`ip netns add`), so it can bind the real node-local address
169.254.20.10 on port 53 without touching the host. The load is dnsperf at a fixed rate; a test
counts the queries it lost and never times anything. Where namespaces cannot be created (no root,
no `ip`) or dnsperf is missing, the tests skip with the reason.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ServerProcess

ADDR = "169.254.20.10"
UNPRIVILEGED = ("setpriv", "--bounding-set=-bpf,-sys_admin", "--")
RATE = 10_000  # queries per second, as in issue 15
_names = itertools.count()


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


def requirements() -> str:
    """Why the lifecycle tests cannot run here ('' when they can)."""
    if not shutil.which("ip"):
        return "iproute2 (ip) is not installed"
    if not shutil.which("dnsperf"):
        return "dnsperf is not installed (bash .ci/install)"
    if os.geteuid() != 0:
        return "network namespaces need root (CAP_SYS_ADMIN)"
    return ""


class Server(ServerProcess):
    """`python -m pycoredns ARGS` inside the namespace, stderr merged into stdout."""

    def __init__(self, ns: Netns, args: list[str], cwd: Path, unprivileged: bool = False) -> None:
        """`unprivileged`: without CAP_BPF and CAP_SYS_ADMIN (as in a container that has neither)."""
        prefix = ("ip", "netns", "exec", ns.name, *(UNPRIVILEGED if unprivileged else ()))
        super().__init__(args, cwd=str(cwd), prefix=prefix, merge_stderr=True)

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        """The first output line containing `text` (bounded by `timeout`)."""
        return self.wait_for_line(text, timeout)

    def output(self) -> str:
        """Everything it printed (after it exited)."""
        assert self.proc.stdout is not None
        rest = self.proc.stdout.read() if self.proc.poll() is not None else b""
        return "\n".join(self.lines) + "\n" + (self._buf + rest).decode(errors="replace")

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)  # `ip netns exec` execs the server: this pid is the server's

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


@dataclass
class Result:
    sent: int
    completed: int
    lost: int
    output: str


class Load:
    """dnsperf at a fixed rate in the namespace, running in the background until `result()`."""

    def __init__(self, ns: Netns, queries: list[str], seconds: float, rate: int = RATE,
                 server: str = ADDR, port: int = 53, clients: int = 8) -> None:
        self.file = ns.tmp / f"queries{next(_names)}.txt"
        self.file.write_text("\n".join(queries) + "\n")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns.name, "dnsperf", "-s", server, "-p", str(port), "-d", str(self.file),
             "-Q", str(rate), "-l", str(seconds), "-c", str(clients), "-t", "3"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def result(self, timeout: float = 60.0) -> Result:
        out, _ = self.proc.communicate(timeout=timeout)
        text = out.decode(errors="replace")

        def field(name: str) -> int:
            m = re.search(rf"Queries {name}:\s+(\d+)", text)
            assert m, text
            return int(m.group(1))

        return Result(field("sent"), field("completed"), field("lost"), text)


class TCPLoad:
    """tcp_load.py in the namespace: RATE new connections a second, each with pipelined queries
    (`tls`: (CA file, server name) for DNS over TLS)."""

    def __init__(self, ns: Netns, rate: int, seconds: float, per_connection: int = 3,
                 zone: str = "example.org", port: int = 53, tls: tuple[str, str] | None = None) -> None:
        self.proc = ns.python(str(Path(__file__).with_name("tcp_load.py")), ADDR, str(port), str(rate),
                              str(seconds), str(per_connection), zone, *(tls or ()))
        assert self.proc.stdout is not None
        started = self.proc.stdout.readline()  # its imports take a while on a busy machine
        assert started.strip() == b"started", started

    def result(self, timeout: float = 60.0) -> dict[str, int]:
        """The tally: sent, answered, lost, connections, and what the losing connections met."""
        out, _ = self.proc.communicate(timeout=timeout)
        text = out.decode(errors="replace")
        assert self.proc.returncode == 0 and text.strip(), text
        return json.loads(text.strip().splitlines()[-1])


class Netns:
    """A fresh network namespace with lo up and ADDR on lo; servers and loads started in it."""

    def __init__(self, tmp: Path) -> None:
        self.name = f"pcdns-lc-{os.getpid()}-{next(_names)}"
        self.tmp = tmp
        self.servers: list[Server] = []
        self.loads: list[Load] = []
        self.helpers: list[subprocess.Popen] = []

    def server(self, *args: str, unprivileged: bool = False) -> Server:
        s = Server(self, list(args), self.tmp, unprivileged)
        self.servers.append(s)
        return s

    def load(self, queries: list[str], seconds: float, **kw) -> Load:
        ld = Load(self, queries, seconds, **kw)
        self.loads.append(ld)
        return ld

    def tcp_load(self, rate: int, seconds: float, per_connection: int = 3, zone: str = "example.org",
                 port: int = 53, tls: tuple[str, str] | None = None) -> TCPLoad:
        return TCPLoad(self, rate, seconds, per_connection, zone, port, tls)

    def sysctl(self, name: str, value: str) -> bool:
        """Set a sysctl of this namespace (net.* ones are per namespace); False where it cannot."""
        return _run("ip", "netns", "exec", self.name, "sysctl", "-qw", f"{name}={value}").returncode == 0

    def iptables(self, *rule: str) -> bool:
        """Add an iptables rule in this namespace; False where it cannot (no iptables, no module)."""
        return bool(shutil.which("iptables")) and _run("ip", "netns", "exec", self.name, "iptables",
                                                       *rule).returncode == 0

    def lossy_tcp(self, port: int, required: bool = True) -> None:
        """TCP handshakes to `port` made slow (`lossy_handshakes`) with net.ipv4.tcp_migrate_req at 0,
        so that only pycoredns's own hand-over keeps a closing listener's connections. Skips the test
        where either cannot be set (`required`), else does what it can."""
        if not self.sysctl("net.ipv4.tcp_migrate_req", "0") and required:
            pytest.skip("no net.ipv4.tcp_migrate_req here (Linux < 5.14): nothing to prove it against")
        if not self.iptables(*lossy_handshakes(port)) and required:
            pytest.skip("iptables with the connbytes and statistic matches is not available")

    def python(self, *args: str) -> subprocess.Popen:
        """A Python helper process inside the namespace (an upstream)."""
        p = subprocess.Popen(["ip", "netns", "exec", self.name, sys.executable, *args],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.helpers.append(p)
        return p

    def slow_upstream(self, port: int = 5300, delay: float = 1.5) -> None:
        """slow_upstream.py on 127.0.0.1:`port`, answering every query after `delay` seconds; ready."""
        p = self.python(str(Path(__file__).with_name("slow_upstream.py")), "127.0.0.1", str(port), str(delay))
        assert p.stdout is not None and p.stdout.readline().strip() == b"ready"

    def cleanup(self) -> None:
        for ld in self.loads:
            if ld.proc.poll() is None:
                ld.proc.kill()
                ld.proc.wait(5)
        for s in self.servers:
            s.stop()
        for p in self.helpers:
            if p.poll() is None:
                p.kill()
                p.wait(5)
        _run("ip", "netns", "del", self.name)


def lossy_handshakes(port: int) -> tuple[str, ...]:
    """An iptables rule: the client's handshake ACK and first segment to `port` dropped, 30 % each (at
    most two drops a connection, the client retransmits). A connection stays a handshake in progress
    on the listener that took its SYN for a retransmission timeout (0.2-1 s), as on a lossy or distant
    network; so when an old listener closes, a few connections are half-way through their handshake
    on it."""
    return ("-A", "OUTPUT", "-p", "tcp", "--dport", str(port), "-m", "connbytes", "--connbytes", "2:3",
            "--connbytes-dir", "original", "--connbytes-mode", "packets",
            "-m", "statistic", "--mode", "random", "--probability", "0.3", "-j", "DROP")


def need_setpriv() -> None:
    """Skip a test that runs servers `unprivileged` where setpriv (util-linux) is missing."""
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is not installed")


@contextmanager
def netns(tmp: Path) -> Iterator[Netns]:
    """A namespace for one test (skips the test where namespaces cannot be made)."""
    why = requirements()
    if why:
        pytest.skip(why)
    ns = Netns(tmp)
    made = _run("ip", "netns", "add", ns.name)
    if made.returncode != 0:
        pytest.skip(f"cannot create a network namespace: {made.stderr.strip()}")
    try:
        for cmd in (("link", "set", "lo", "up"), ("addr", "add", f"{ADDR}/32", "dev", "lo")):
            r = _run("ip", "-n", ns.name, *cmd)
            if r.returncode != 0:
                pytest.skip(f"cannot configure the namespace: {r.stderr.strip()}")
        yield ns
    finally:
        ns.cleanup()


def queries(zone: str = "example.org", n: int = 50) -> list[str]:
    """A dnsperf query file: distinct names (A and AAAA) under `zone`."""
    return [f"q{i}.{zone} {'A' if i % 2 else 'AAAA'}" for i in range(n)]
