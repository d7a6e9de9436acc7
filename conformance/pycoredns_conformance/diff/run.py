"""Start two servers on the same Corefile and fixture, send both the same probes, collect differences.

Each side is a command that takes `-conf FILE` (a CoreDNS release, pycoredns, anything compatible);
each gets its own copy of the world the conformance suite builds (`runner.Environment`: loopback
ports, the Kubernetes API test server with the fixture cluster, unbound upstreams with the suite's
zone data), so the two servers never share state. A Corefile either serves (then the probes are
compared) or is refused (then the exit status and the error message, with its file:line, are).
"""

from __future__ import annotations

import re
import socket
import struct
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..cases import Case, Query
from ..runner import START_TIMEOUT, BinaryTarget, Environment, Group
from .compare import Difference, Options, View, differences, view
from .probes import Probe


def exchange(data: bytes, port: int, proto: str, timeout: float, host: str = "127.0.0.1",
             src_port: int = 0) -> tuple[bytes | None, int]:
    """Send one packet from `src_port` (0: any); (the reply's bytes or None, the source port used).

    Both servers get a probe from the same source port, so answers that echo the client's address
    (whoami) compare equal."""
    used = src_port
    try:
        kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
        with socket.socket(socket.AF_INET, kind) as s:
            if proto == "tcp":  # the first side's connection may still be in TIME_WAIT
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.settimeout(timeout)
            try:
                s.bind((host, src_port))
            except OSError:  # taken meanwhile by another probe: any port (only whoami-like answers differ)
                s.bind((host, 0))
            used = s.getsockname()[1]
            s.connect((host, port))
            if proto == "tcp":
                s.sendall(struct.pack("!H", len(data)) + data)
                head = _recv_exact(s, 2)
                return (_recv_exact(s, struct.unpack("!H", head)[0]) if head else None), used
            s.send(data)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:  # skip stray datagrams whose id is not ours
                reply = s.recv(65535)
                if len(data) < 2 or reply[:2] == data[:2]:
                    return reply, used
                s.settimeout(max(0.01, deadline - time.monotonic()))
    except (OSError, struct.error):
        return None, used
    return None, used


def _recv_exact(s: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


@dataclass
class Side:
    """One server under test: its command and, while running, its environment."""

    label: str  # "binary" or "reference"
    command: str
    target: BinaryTarget | None = None
    env: Environment | None = None
    error: str = ""  # why it is not serving (exit status and message), "" when it is
    exit: int | None = None
    message: str = ""  # the refusal message, normalised

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None


_STAMP = re.compile(r"^(\d{4}[/-]\d\d[/-]\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?Z?\s*)")


def refusal_message(stderr: str, env: Environment) -> str:
    """The last line a refusing server printed, without timestamps and with this run's paths and
    ports put back as placeholders (the two servers run in different directories on different ports)."""
    lines = [_STAMP.sub("", x).strip() for x in stderr.splitlines() if x.strip()]
    text = lines[-1] if lines else ""
    for name, value in sorted(env.values.items(), key=lambda kv: -len(kv[1])):
        if value and len(value) > 1:
            text = text.replace(value, f"@{name}@")
    return text


@dataclass
class CorefileResult:
    name: str
    status: str = ""  # served | refused | start-differs | error
    probes: int = 0
    seconds: float = 0.0
    sides: dict[str, dict[str, Any]] = field(default_factory=dict)
    found: list[tuple[Probe, list[Difference], View, View]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "probes": self.probes,
                "differences": sum(len(d) for _p, d, _a, _b in self.found), "seconds": round(self.seconds, 2),
                "sides": self.sides}


def start_pair(case: Case, sides: list[Side]) -> None:
    """Start both servers (in parallel) and wait until each answers its readiness probe or gives up."""
    def one(side: Side) -> None:
        assert side.target is not None
        for attempt in range(2):
            side.env = Environment(side.target, Group([case]))
            side.env.start()
            side.error = side.env.wait_ready()
            if attempt == 0 and "in use" in side.error.lower():  # a port taken between check and bind
                side.close()
                continue
            break
        if side.error and side.env is not None and side.env.proc is not None:
            side.exit = side.env.wait_exit(1.0)
            side.message = refusal_message(side.env.stderr_text(), side.env)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(one, sides))


def compare_corefile(name: str, case: Case, a: Side, b: Side, probes_for: Callable[[], list[Probe]],
                     opts: Options, jobs: int, timeout: float,
                     progress: Callable[[str], None] | None = None) -> CorefileResult:
    """Start both, then compare their refusals or their answers to every probe; always stops both."""
    res = CorefileResult(name)
    t0 = time.monotonic()
    try:
        start_pair(case, [a, b])
        for s in (a, b):
            res.sides[s.label] = {"command": s.command, "serving": not s.error, "exit": s.exit,
                                  "message": s.message, "error": s.error[:500]}
        if a.error or b.error:
            res.status = "refused" if a.error and b.error else "start-differs"
            diffs = []
            if bool(a.error) != bool(b.error):
                diffs.append(Difference("start", "serving" if not a.error else f"exit {a.exit}: {a.message}",
                                        "serving" if not b.error else f"exit {b.exit}: {b.message}"))
            else:
                if a.exit != b.exit:
                    diffs.append(Difference("exit", str(a.exit), str(b.exit)))
                if a.message != b.message:
                    diffs.append(Difference("message", a.message, b.message))
            if diffs:
                res.found.append((Probe("start", b"", "-", "start"), diffs, View(False), View(False)))
            return res
        res.status = "served"
        probes = probes_for()
        res.probes = len(probes)
        assert a.env is not None and b.env is not None
        pa, pb = a.env.port, b.env.port
        done = [0]

        def ask(p: Probe) -> tuple[list[Difference], View, View]:
            for _ in range(3):  # the second side could not get the first side's client port: again
                ra, src = exchange(p.wire, pa, p.proto, timeout)
                rb, src_b = exchange(p.wire, pb, p.proto, timeout, src_port=src)
                if src_b == src:
                    break
            va, vb = view(ra, opts), view(rb, opts)
            return differences(va, vb, opts), va, vb

        def one(p: Probe) -> tuple[Probe, list[Difference], View, View]:
            d, va, vb = ask(p)
            if d and all(x.field.endswith(".ttl") for x in d):
                # two caches filled a moment apart: one entry may expire (and be refetched with the full
                # TTL) up to a second before the other; asked again a second later, both have moved on
                time.sleep(1.1)
                d, va, vb = ask(p)
            done[0] += 1
            if progress and done[0] % 1000 == 0:
                progress(f"{name}: {done[0]}/{len(probes)} probes")
            return p, d, va, vb

        with ThreadPoolExecutor(max(1, jobs)) as pool:
            for p, d, va, vb in pool.map(one, probes):
                if d:
                    res.found.append((p, d, va, vb))
        # a server that died under the probes is a finding in itself
        for s in (a, b):
            if s.env is not None and s.env.proc is not None and s.env.proc.poll() is not None:
                res.found.append((Probe("after the probes", b"", "-", "start"),
                                  [Difference(f"{s.label} exited", str(s.env.proc.returncode),
                                              s.env.stderr_text().strip()[-300:])], View(False), View(False)))
        return res
    except Exception as exc:  # a broken environment is this Corefile's error, not the run's
        res.status = "error"
        res.found.append((Probe("environment", b"", "-", "start"),
                          [Difference("error", f"{type(exc).__name__}: {exc}", "")], View(False), View(False)))
        return res
    finally:
        a.close()
        b.close()
        res.seconds = time.monotonic() - t0


def corefile_case(name: str, text: str, ready: Query | None, ready_rcode: str = "NOERROR") -> Case:
    """A Corefile as the suite's runner starts it (placeholders filled per side)."""
    c = Case(area="diff", name=name, level="optional", corefile=text, corefile_name=name, ready=ready,
             ready_rcode=ready_rcode)
    c.exit = None
    return c


__all__ = ["START_TIMEOUT", "CorefileResult", "Side", "compare_corefile", "corefile_case", "exchange"]
