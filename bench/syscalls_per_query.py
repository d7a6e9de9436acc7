"""System calls per query of one compare.py row, counted per socket while the row's load runs (not a test).

    sudo python bench/syscalls_per_query.py [--row nxdomain|warm|tcp|udp] [--cmd "python3 -m pycoredns"]
                                             [--seconds 8] [--record 3]

One server (pinned to core 0, as compare.py runs it) with the row's Corefile, the bench's unbound, the
row's warm-up pass and dnsperf (`-c 16 -q 200`, core 1). From 1.5 s into the dnsperf run, `perf record`
takes the system-call tracepoints of the server for `--record` seconds (`strace` would slow the server
two- to threefold and change the batch sizes being counted); `perf script` is then counted per file
descriptor: the listener's UDP socket (the one with the most reads: one per query) and each TCP
connection to the upstream. Prints per query: reads and EAGAINs, sends with their bytes, `sendmmsg`
calls with their datagrams, `epoll_wait` (trio's scheduler passes that poll) and `epoll_ctl`, and
the server's user and system CPU per query over the whole dnsperf run. Needs `perf` with tracepoint
access (root on the development machine). Issue 11, seventh session (bench/README.md).
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare
from common import free_port, write_queries
from sidebyside import LOAD_CORE, pinned

ROWS = {
    "nxdomain": "node-local-style, 25 % NXDOMAIN without SOA",
    "warm": "node-local-style Corefile, 10,000 names after warm-up",
    "tcp": "forward force_tcp, 10,000 names, no cache",
    "udp": "forward UDP, 10,000 names, no cache",
}
EVENTS = ("recvfrom", "sendto", "sendmmsg", "sendmsg", "epoll_wait", "epoll_ctl")
TRACEPOINTS = ",".join([f"syscalls:sys_enter_{e}" for e in EVENTS] + ["syscalls:sys_exit_recvfrom"])


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def upstream_fds(pid: int, port: int) -> list[int]:
    """The server's TCP connections to the upstream's port (ss -tnp)."""
    out = subprocess.run(["ss", "-tnpH"], capture_output=True, text=True, check=False).stdout
    fds = []
    for line in out.splitlines():
        cols = line.split()
        if len(cols) > 5 and cols[4].endswith(f":{port}") and f"pid={pid}," in line:
            fds += [int(fd) for fd in re.findall(rf"pid={pid},fd=(\d+)", line)]
    return sorted(fds)


def count(script: str) -> collections.Counter[tuple[str, int]]:
    """Per (what, fd): calls of each system call, EAGAIN reads, bytes read and sent, datagrams of sendmmsg."""
    c: collections.Counter[tuple[str, int]] = collections.Counter()
    reading = -1
    for line in script.splitlines():
        m = re.search(r"sys_(enter|exit)_(\w+): (.*)", line)
        if not m:
            continue
        kind, name, rest = m.groups()
        if kind == "exit":  # recvfrom's result, for the descriptor of the enter before it (one thread)
            ret = int(rest.strip(), 16)
            if ret >= 1 << 63:
                c[("EAGAIN", reading)] += 1
            else:
                c[("bytes read", reading)] += ret
            continue
        fd_m = re.search(r"fd: 0x([0-9a-f]+)", rest)
        fd = int(fd_m.group(1), 16) if fd_m else -1
        c[(name, fd)] += 1
        if name == "recvfrom":
            reading = fd
        elif name == "sendto":
            c[("bytes sent", fd)] += int(re.search(r" len: 0x([0-9a-f]+)", rest).group(1), 16)
        elif name == "sendmmsg":
            c[("datagrams", fd)] += int(re.search(r"vlen: 0x([0-9a-f]+)", rest).group(1), 16)
    return c


def report(c: collections.Counter[tuple[str, int]], tcp: list[int]) -> None:
    listener = max((fd for what, fd in c if what == "recvfrom"), key=lambda fd: c[("recvfrom", fd)])
    q = c[("recvfrom", listener)] - c[("EAGAIN", listener)]
    print(f"queries read from the listener's socket (fd {listener}): {q:,}")
    used = [fd for fd in tcp if c[("sendto", fd)]]
    print(f"upstream TCP connections: {len(tcp)} open, {len(used)} carrying queries")

    def total(what: str, fds: list[int]) -> int:
        return sum(c[(what, fd)] for fd in fds)

    def calls(what: str) -> int:
        return sum(v for (w, _fd), v in c.items() if w == what)

    reads, eagain, sends = total("recvfrom", used), total("EAGAIN", used), total("sendto", used)
    print(f"per query: TCP sends {sends / q:.4f} ({total('bytes sent', used) / max(1, sends):.0f} bytes each); "
          f"TCP reads {reads / q:.4f} of which EAGAIN {eagain / q:.4f} "
          f"({total('bytes read', used) / max(1, reads - eagain):.0f} bytes per read that found data)")
    mm = c[("sendmmsg", listener)]
    print(f"per query: sendmmsg to clients {mm / q:.4f} ({c[('datagrams', listener)] / max(1, mm):.1f} datagrams "
          f"each), sendto {c[('sendto', listener)] / q:.4f}, listener EAGAIN {c[('EAGAIN', listener)] / q:.4f}; "
          f"epoll_wait {calls('epoll_wait') / q:.4f}, epoll_ctl {calls('epoll_ctl') / q:.4f}")
    every = sum(calls(e) for e in EVENTS)
    print(f"system calls per query (these {len(EVENTS)} kinds): {every / q:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--row", choices=sorted(ROWS), default="nxdomain")
    ap.add_argument("--cmd", default=f"{sys.executable} -m pycoredns", help="command that runs the server")
    ap.add_argument("--seconds", type=int, default=8, help="dnsperf's run")
    ap.add_argument("--record", type=float, default=3.0, help="seconds of perf record inside the run")
    args = ap.parse_args()
    template, lines, warm_first = compare.ROWS[ROWS[args.row]]
    tmp = Path(tempfile.mkdtemp(prefix="syscalls"))
    ub = compare.start_upstream()
    try:
        path = write_queries(lines(random.Random(1)))
        port, prom = free_port(), free_port()
        corefile = template.format(port=port, upstream=f"127.0.0.1:{ub.port}", prom=prom, health=free_port())
        server = compare.start("server", shlex.split(args.cmd), corefile, tmp, port, "a.bench.test.")
        try:
            if warm_first:
                compare.warm(port, path)
            user0, sys0 = cpu_split(server.pid)
            dnsperf = subprocess.Popen([*pinned([], LOAD_CORE), "dnsperf", "-s", "127.0.0.1", "-p", str(port),
                                        "-d", path, "-l", str(args.seconds), "-c", "16", "-q", "200"],
                                       stdout=subprocess.PIPE, text=True)
            time.sleep(1.5)
            data = tmp / "perf.data"
            subprocess.run(["perf", "record", "-q", "-o", str(data), "-e", TRACEPOINTS, "-p", str(server.pid),
                            "--", "sleep", str(args.record)], capture_output=True, check=True)
            tcp = upstream_fds(server.pid, ub.port)
            out, _ = dnsperf.communicate(timeout=args.seconds + 60)
            user1, sys1 = cpu_split(server.pid)
        finally:
            server.__exit__()
        done = int(re.search(r"Queries completed:\s+(\d+)", out).group(1))
        qps = float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))
        print(f"{ROWS[args.row]}: {qps:,.0f} qps; server user {(user1 - user0) * 1e6 / done:.1f} + system "
              f"{(sys1 - sys0) * 1e6 / done:.1f} µs per query; load {os.getloadavg()[0]:.1f}")
        script = subprocess.run(["perf", "script", "-i", str(data)], capture_output=True, text=True, check=True).stdout
        report(count(script), tcp)
    finally:
        ub.stop()


if __name__ == "__main__":
    main()
