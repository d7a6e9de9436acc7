"""Benchmark forward: dnsperf against pycoredns forwarding to unbound, and against unbound directly.

    python bench/forward_bench.py [--seconds 10] [--clients 4] [--outstanding 200] [--tcp]
    python bench/forward_bench.py --loop udp|tcp [--batch 16] [-n 20000] [--timed]
    python bench/forward_bench.py --loop nodelocal [--nx 0.25] [--names 1000] [--batch 16] [-n 20000] [--timed]
    python bench/forward_bench.py --gso [--batch 64]

One unbound (num-threads 1, local-data only, loopback) serves both runs in the same invocation, so the
ratio pycoredns/unbound is the cost of the proxy hop on this machine. Not a test: nothing is asserted.

`--loop`: one process, one trio run: a client socket sends `--batch` queries at a time to a real
pycoredns listener (`errors`, `forward`, `force_tcp` for tcp) whose upstream is a fake UDP or TCP
server in the same run, and waits for the replies; `-n` queries after 200 warm-up rounds. The same
work every time, so for instruction counts the shared machine's load does not move:
`PYTHONHASHSEED=0 valgrind --tool=callgrind python bench/forward_bench.py --loop udp -n 6048`, minus
the same with `-n 1008`, divided by 5,040 (the whole process: client and fake upstream included).
`--timed` prints CPU µs per query instead (the process CPU clock; run it with `taskset -c 0`).
`--loop nodelocal`: compare.py's node-local-style Corefile (errors, cache, reload, loop, forward
with force_tcp, prometheus, health; `cache 3600` and answers of TTL 3600 where compare.py has `cache
30`: under valgrind a run lasts longer than 30 s, and entries that expired in the middle of it made
hits into misses, more of them the longer the run and the busier the machine) over `--names` names
(default 1,000) of which the share `--nx` (every 1/nx-th, in a shuffled order) is NXDOMAIN without
SOA at the fake TCP upstream: never cached, so forwarded every time; a filling pass over the names
first. `--nx 0`: cache hits only. The NXDOMAIN row's cost per miss is (nx - hits) / nx of the two
counts (issue 11, seventh session).

`--gso`: the sender's CPU per 34-byte datagram of a `pycoredns.mmsg.SendBatch` flushed every `--batch`
datagrams to a receiver process on the other core, by sendmmsg and by UDP GSO (issue 11, sixth session).
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import time

import trio
from common import PyCoreDNS, Unbound, dnsperf, udp_responder, udp_rounds, write_queries

QUERIES = [
    "a.example.org A", "a6.example.org AAAA", "www.example.org A", "mx.example.org MX",
    "many.example.org A", "nodata.example.org AAAA", "missing.example.org A", "short.example.org A",
]


def line(label: str, r: dict) -> str:
    if "error" in r:
        return f"{label:<28} dnsperf failed: {r['error']}"
    return (f"{label:<28} {r['qps']:>10,.0f} qps  avg latency {r['avg_latency_ms']:7.3f} ms  "
            f"lost {r['lost']}  ({r['rcodes']})")


ANSWER = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 3600, 4) + bytes([192, 0, 2, 1])


def _query(i: int, labels: tuple[bytes, ...] = (b"bench", b"test"), prefix: bytes = b"n") -> bytes:
    name = b"".join(bytes([len(p)]) + p for p in (prefix + b"%d" % (i % 10000), *labels)) + b"\x00"
    return struct.pack(">HHHHHH", i & 0xFFFF, 0x0100, 1, 0, 0, 0) + name + b"\x00\x01\x00\x01"


def _answer(q: bytes) -> bytes:
    if q[13:14] == b"x":  # x<i>.nx.test: NXDOMAIN without SOA, as the bench's unbound answers nx.test.
        return q[:2] + b"\x81\x83\x00\x01\x00\x00\x00\x00\x00\x00" + q[12:]
    return q[:2] + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00" + q[12:] + ANSWER


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _nodelocal_queries(names: int, nx: float) -> list[bytes]:
    """`names` queries, every round(1/nx)-th of them for x<i>.nx.test (NXDOMAIN), in a fixed shuffled order."""
    import random

    every = round(1 / nx) if nx > 0 else 0
    qs = [_query(i, (b"nx", b"test"), b"x") if every and i % every == 0 else _query(i) for i in range(names)]
    random.Random(1).shuffle(qs)
    return qs


async def _tcp_upstream(lsock: socket.socket, nursery: trio.Nursery) -> None:
    while True:
        await trio.lowlevel.wait_readable(lsock)
        conn, _ = lsock.accept()
        conn.setblocking(False)
        nursery.start_soon(_tcp_conn, conn)


async def _tcp_conn(conn: socket.socket) -> None:
    buf = b""
    while True:
        await trio.lowlevel.wait_readable(conn)
        try:
            chunk = conn.recv(65536)
        except BlockingIOError:
            continue
        except ConnectionResetError:  # forward closed a connection it thought stuck (a slow run under valgrind)
            return
        if not chunk:
            return
        buf += chunk
        out = []
        while len(buf) >= 2 and len(buf) >= 2 + ((buf[0] << 8) | buf[1]):
            n = (buf[0] << 8) | buf[1]
            a = _answer(buf[2 : 2 + n])
            buf = buf[2 + n :]
            out.append(struct.pack(">H", len(a)) + a)
        conn.send(b"".join(out))


async def loop(mode: str, n: int, batch: int, timed: bool, names: int = 10000, nx: float = 0.25) -> None:
    """`--loop`: see the module docstring."""
    from pycoredns.embed import serve

    kind = socket.SOCK_DGRAM if mode == "udp" else socket.SOCK_STREAM
    up = socket.socket(socket.AF_INET, kind)
    up.bind(("127.0.0.1", 0))
    up.setblocking(False)
    if mode != "udp":
        up.listen(16)
    opts = " {\n  force_tcp\n }" if mode == "tcp" else ""
    async with trio.open_nursery() as nursery:
        if mode == "udp":
            nursery.start_soon(udp_responder, up, _answer)
        else:
            nursery.start_soon(_tcp_upstream, up, nursery)
        corefile = f".:0 {{\n bind 127.0.0.1\n errors\n forward . 127.0.0.1:{up.getsockname()[1]}{opts}\n}}\n"
        if mode == "nodelocal":
            corefile = (f".:0 {{\n bind 127.0.0.1\n errors\n cache 3600\n reload\n loop\n forward . "
                        f"127.0.0.1:{up.getsockname()[1]} {{\n  force_tcp\n }}\n prometheus 127.0.0.1:{_free_port()}\n"
                        f" health 127.0.0.1:{_free_port()}\n}}\n")
        async with serve(corefile) as proc:
            cl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            cl.bind(("127.0.0.1", 0))
            cl.connect(("127.0.0.1", proc.port()))
            cl.setblocking(False)
            qs = _nodelocal_queries(names, nx) if mode == "nodelocal" else [_query(i) for i in range(10000)]

            if mode == "nodelocal":
                await udp_rounds(cl, qs, -(-len(qs) // 200), 200)  # the filling pass: every name once, 200 at a time as
                # compare.py's warm-up (dnsperf -q 200): its misses open more than one upstream connection
            await udp_rounds(cl, qs, 200, batch)
            t0 = time.process_time()
            await udp_rounds(cl, qs, n // batch, batch)
            if timed:
                dt = time.process_time() - t0
                print(f"{mode}, {batch} per round: {dt / (n // batch * batch) * 1e6:.2f} µs per query (whole process)")
            cl.close()
        nursery.cancel_scope.cancel()
    up.close()


def gso(batch: int) -> None:
    """`--gso`: see the module docstring."""
    import resource

    from pycoredns import mmsg

    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.connect(rx.getsockname())
    pid = os.fork()
    if pid == 0:  # the receiver: blocked in recv on the other core, as an upstream waits for queries
        os.sched_setaffinity(0, {1})
        tx.close()
        while rx.recv(65535) != b"stop":
            pass
        os._exit(0)
    os.sched_setaffinity(0, {0})
    rx.close()
    n = batch * (64000 // batch)
    try:
        for _ in range(3):
            for use_gso in (False, True):
                b = mmsg.SendBatch(tx)
                b.gso = use_gso
                time.sleep(0.05)
                r0 = resource.getrusage(resource.RUSAGE_SELF)
                for _ in range(n // batch):
                    for _ in range(batch):
                        b.add(b"q" * 34)
                    b.flush()
                r1 = resource.getrusage(resource.RUSAGE_SELF)
                cpu = (r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime) / n * 1e6
                print(f"{'GSO' if use_gso else 'sendmmsg':8s} {batch} per flush: {cpu:.2f} µs per datagram")
    finally:
        mmsg.DEFER.dirty.clear()
        time.sleep(0.2)  # let the receiver drain before the last datagram
        tx.send(b"stop")
        os.waitpid(pid, 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--loop", choices=("udp", "tcp", "nodelocal"), help="the in-process loop (see above) and exit")
    ap.add_argument("--nx", type=float, default=0.25, help="--loop nodelocal: the share of NXDOMAIN names")
    ap.add_argument("--names", type=int, default=1000, help="--loop nodelocal: distinct names")
    ap.add_argument("--gso", action="store_true", help="sendmmsg vs UDP GSO per datagram and exit")
    ap.add_argument("--batch", type=int, default=16, help="--loop: queries per round; --gso: datagrams per flush")
    ap.add_argument("-n", type=int, default=20000, help="--loop: queries measured")
    ap.add_argument("--timed", action="store_true", help="--loop: print CPU µs per query")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--outstanding", type=int, default=200)
    ap.add_argument("--tcp", action="store_true", help="dnsperf over TCP (forward mirrors it to TCP upstream)")
    args = ap.parse_args()
    if args.loop:
        trio.run(loop, args.loop, args.n, args.batch, args.timed, args.names, args.nx)
        return
    if args.gso:
        gso(args.batch)
        return
    data = write_queries(QUERIES)
    extra = ["-m", "tcp"] if args.tcp else []
    try:
        with Unbound() as u:
            direct = dnsperf(u.port, data, args.seconds, args.clients, args.outstanding, extra)
            corefile = f".:{{PORT}} {{\n forward . {u.addr}\n}}\n"
            with PyCoreDNS(corefile) as srv:
                cpu0 = srv.cpu_seconds()
                fwd = dnsperf(srv.port, data, args.seconds, args.clients, args.outstanding, extra)
                cpu = srv.cpu_seconds() - cpu0
        print(line("unbound direct (1 thread)", direct))
        print(line("pycoredns forward -> unbound", fwd))
        if "qps" in direct and "qps" in fwd:
            print(f"ratio pycoredns/unbound: {fwd['qps'] / direct['qps']:.2f}; "
                  f"pycoredns CPU {cpu:.1f}s over {args.seconds}s "
                  f"({fwd['completed'] / cpu if cpu else float('nan'):,.0f} queries per CPU-second)")
    finally:
        os.unlink(data)


if __name__ == "__main__":
    main()
