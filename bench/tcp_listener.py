"""The server side of DNS over TCP in isolation: pipelined queries on persistent connections. Not a test.

    python bench/tcp_listener.py [--server "python3 -m pycoredns"] [--server /path/to/other] ...
                                 [--frames 15] [--window 2] [--connections 2] [--queries 200000] [--rounds 3]

What the cluster tier of the seed path sees from node-local's `force_tcp` forward: a few persistent
connections, each carrying chunks of pipelined queries (node-local flushes one chunk per drain
iteration; ~15 frames a chunk were counted in the fourth session). Each `--server` command (a
pycoredns checkout's start script, as bench/compare.py's `--pycoredns`) runs on core 0 with a
Corefile whose chain answers at once (`whoami` by default, `--corefile` for another; `{port}` is
filled in), so what differs between two trees is the listener: reading, framing, the writer, the
reply write. This client runs on core 1 and keeps `--window` chunks of `--frames` queries in flight
per connection. Per run: server CPU µs per query (utime+stime from /proc), qps, and the server's
sleeps per 1,000 queries; rounds alternate the order of the servers and the table shows medians.
"""

from __future__ import annotations

import argparse
import os
import selectors
import shlex
import socket
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import answers, free_port  # noqa: E402
from bench.sidebyside import LOAD_CORE, Server, context_switches, load_average, pid_cpu_seconds  # noqa: E402

COREFILE = """.:{port} {{
    bind 127.0.0.1
    errors
    whoami
}}
"""


def query_frames(n: int) -> list[bytes]:
    """`n` length-prefixed A queries for distinct names under bench.test."""
    out = []
    for i in range(n):
        qname = b"".join(bytes([len(p)]) + p for p in (f"q{i}".encode(), b"bench", b"test")) + b"\x00"
        msg = struct.pack(">HHHHHH", i & 0xFFFF, 0x0100, 1, 0, 0, 0) + qname + b"\x00\x01\x00\x01"
        out.append(struct.pack(">H", len(msg)) + msg)
    return out


def drive(port: int, total: int, frames: int, window: int, connections: int) -> int:
    """Send `total` queries (whole chunks) and read every reply; returns the replies read."""
    pool = query_frames(1000)
    chunks = [b"".join(pool[(k * frames + j) % len(pool)] for j in range(frames)) for k in range(64)]
    sel = selectors.DefaultSelector()
    state = {}
    for _ in range(connections):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        state[s] = [0, b""]  # replies awaited, unfinished bytes
        sel.register(s, selectors.EVENT_READ)
    sent = got = k = 0

    def send(s: socket.socket) -> None:
        nonlocal sent, k
        s.sendall(chunks[k % len(chunks)])
        k += 1
        sent += frames
        state[s][0] += frames

    try:
        for s in state:
            for _ in range(window):
                if sent < total:
                    send(s)
        deadline = time.monotonic() + 120 + total / 1000  # bounded: a lost reply ends the run
        while got < sent and time.monotonic() < deadline:
            for key, _ev in sel.select(timeout=5):
                s = key.fileobj
                st = state[s]
                data = st[1] + s.recv(1 << 20)
                if len(data) == len(st[1]):
                    raise SystemExit("the server closed a connection")
                off = 0
                while len(data) - off >= 2:
                    end = off + 2 + ((data[off] << 8) | data[off + 1])
                    if end > len(data):
                        break
                    off = end
                    st[0] -= 1
                    got += 1
                st[1] = data[off:]
                while st[0] <= (window - 1) * frames and sent < total:
                    send(s)
    finally:
        for s in state:
            sel.unregister(s)
            s.close()
        sel.close()
    return got


def run(label: str, cmd: list[str], args: argparse.Namespace, tmp: Path) -> dict:
    port = free_port()
    conf = tmp / f"Corefile.{label}"
    conf.write_text((args.corefile.read_text() if args.corefile else COREFILE).format(port=port))
    with Server(label, [*cmd, "-conf", str(conf)], port, cwd=tmp, log=tmp / f"{label}.log") as srv:
        deadline = time.monotonic() + 60
        while not answers(port, "a.bench.test."):
            if time.monotonic() > deadline or srv.proc.poll() is not None:
                raise SystemExit(f"{label} does not answer: {(tmp / f'{label}.log').read_text()[-300:]}")
            time.sleep(0.05)
        drive(port, args.queries // 10, args.frames, args.window, args.connections)  # warm-up
        cpu, sleeps, t = pid_cpu_seconds(srv.pid), context_switches(srv.pid)[0], time.monotonic()
        got = drive(port, args.queries, args.frames, args.window, args.connections)
        wall = time.monotonic() - t
        cpu, sleeps = pid_cpu_seconds(srv.pid) - cpu, context_switches(srv.pid)[0] - sleeps
    return {"us": cpu * 1e6 / got, "qps": got / wall, "sleeps": sleeps * 1000 / got, "got": got}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", action="append", default=[], help="a command that runs a server (repeatable)")
    ap.add_argument("--corefile", type=Path, default=None, help="a Corefile template with {port}")
    ap.add_argument("--frames", type=int, default=15, help="queries per chunk (one write)")
    ap.add_argument("--window", type=int, default=2, help="chunks in flight per connection")
    ap.add_argument("--connections", type=int, default=2)
    ap.add_argument("--queries", type=int, default=200000, help="per run")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    servers = args.server or [f"{sys.executable} -m pycoredns"]
    os.sched_setaffinity(0, {int(LOAD_CORE)})
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {args.connections} connections x {args.window} "
          f"chunks x {args.frames} queries in flight; {args.queries:,} queries per run; load average before: "
          f"{load_average()}", flush=True)
    results: dict[str, list[dict]] = {s: [] for s in servers}
    with tempfile.TemporaryDirectory() as tmpdir:
        for rnd in range(args.rounds):
            order = servers if rnd % 2 == 0 else servers[::-1]
            for cmd in order:
                r = run(f"s{servers.index(cmd)}", shlex.split(cmd), args, Path(tmpdir))
                results[cmd].append(r)
                print(f"round {rnd + 1}: {cmd}: {r['us']:.2f} µs/q, {r['qps']:,.0f} qps, "
                      f"{r['sleeps']:.1f} sleeps per 1,000 queries; load {load_average()}", flush=True)
    print("\n| server | µs/q median (min-max) | qps median | sleeps / 1,000 q |\n|---|---:|---:|---:|")
    for cmd, rs in results.items():
        us = [r["us"] for r in rs]
        print(f"| `{cmd}` | {statistics.median(us):.2f} ({min(us):.2f}-{max(us):.2f}) | "
              f"{statistics.median(r['qps'] for r in rs):,.0f} | {statistics.median(r['sleeps'] for r in rs):.1f} |")
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
