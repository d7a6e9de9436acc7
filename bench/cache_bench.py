"""Cache-hit throughput: pycoredns (`cache` in front of `forward` to unbound) against unbound itself.

    python bench/cache_bench.py [--seconds 10] [--clients 32] [--outstanding 200] [--profile out.prof]

Both servers run on loopback in the same run: unbound with `num-threads: 1` answering local-data
(tests/upstream.py), and `python -m pycoredns` as a subprocess forwarding to it. The query file is a
small hot set (answers, NXDOMAIN, NODATA, with and without EDNS) so that after one warm-up pass
nearly every pycoredns query is a cache hit. dnsperf drives each server for a bounded time; the
script prints qps, average latency and the ratio. `--profile` runs pycoredns under cProfile and
writes the stats (then the pycoredns numbers include the profiler's overhead).
A benchmark, never a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from upstream import Unbound, free_port  # noqa: E402

HOT = [
    "a.example.org A", "a6.example.org A", "a6.example.org AAAA", "long.example.org A", "mx.example.org MX",
    "mail.example.org A", "many.example.org A", "nodata.example.org AAAA", "nope.example.org A",
    "missing.example.org AAAA", "ns.example.org A", "example.org SOA", "example.org NS", "a.example.net A",
    "absent.example.net A",
]


def dnsperf(port: int, qfile: str, seconds: int, clients: int, outstanding: int) -> dict[str, float]:
    """Run dnsperf once; qps, average latency (s) and lost queries from its summary."""
    cmd = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", qfile, "-l", str(seconds),
           "-c", str(clients), "-q", str(outstanding)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout

    def num(label: str) -> float:
        m = re.search(label + r"\s*:?\s*([0-9.]+)", out)
        return float(m.group(1)) if m else float("nan")

    return {"qps": num("Queries per second"), "latency": num(r"Average Latency \(s\)"),
            "lost": num("Queries lost")}


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all threads), from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(pids: list[int], port: int, qfile: str, args: argparse.Namespace) -> dict[str, float]:
    """One dnsperf run plus the server's CPU time per answered query (independent of machine load)."""
    before = sum(cpu_seconds(p) for p in pids)
    r = dnsperf(port, qfile, args.seconds, args.clients, args.outstanding)
    r["cpu_us"] = (sum(cpu_seconds(p) for p in pids) - before) / max(r["qps"] * args.seconds, 1) * 1e6
    return r


def wait_port(port: int, timeout: float = 15.0) -> None:
    """Until the server answers a query over UDP (bounded)."""
    import socket

    q = bytes.fromhex("abcd01000001000000000000") + b"\x07example\x03org\x00\x00\x06\x00\x01"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.3)
            try:
                s.sendto(q, ("127.0.0.1", port))
                s.recv(4096)
                return
            except OSError:
                time.sleep(0.1)
    raise RuntimeError(f"nothing answers on 127.0.0.1:{port}")


def hit_cost(number: int = 200_000) -> None:
    """Python cost of one cache hit (serve_fast: key, lookup, header, splice, write), CPU time, best of 7."""
    import timeit

    from dnslib import RR, A, DNSRecord
    from pycoredns.plugins.cache import Cache, key_of

    from pycoredns.request import Request, ResponseWriter

    class Sink(ResponseWriter):
        def write(self, reply) -> None:
            self.written = True

    c = Cache()
    c.finish()
    q = DNSRecord.question("www.example.org", "A")
    req = Request(bytes(q.pack()))
    r = q.reply()
    for ip in ("192.0.2.1", "192.0.2.2"):
        r.add_answer(RR("www.example.org", rdata=A(ip), ttl=300))
    key, _do = key_of(req)
    c.ingest(req, key, bytes(r.pack()))
    w = Sink()
    assert c.serve_fast(req, w) == 0 and w.written
    for name, fn in (("serve_fast (hit)", lambda: c.serve_fast(req, w)),
                     ("Request() parse, for scale", lambda: Request(req.wire))):
        t = min(timeit.Timer(fn, timer=time.process_time).repeat(number=number, repeat=7)) / number
        print(f"{name:28s} {t * 1e6:6.2f} us")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--outstanding", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=1, help="alternate the two servers this many times")
    ap.add_argument("--procs", type=int, default=1,
                    help="pycoredns processes sharing the port (SO_REUSEPORT); the default 1 is the fair comparison")
    ap.add_argument("--timeit", action="store_true", help="only measure the Python cost of one hit")
    ap.add_argument("--profile", default="", help="run pycoredns under cProfile, stats to this file")
    args = ap.parse_args()
    if args.timeit:
        hit_cost()
        return

    work = tempfile.mkdtemp(prefix="cache-bench-")
    qfile = os.path.join(work, "queries.txt")
    with open(qfile, "w") as f:
        f.write("\n".join(HOT * 4) + "\n")
    with Unbound() as ub:
        port = free_port()
        corefile = os.path.join(work, "Corefile")
        with open(corefile, "w") as f:
            f.write(f".:{port} {{\n    bind 127.0.0.1\n    cache\n    forward . {ub.addr}\n}}\n")
        cmd = [sys.executable]
        if args.profile:
            cmd += ["-m", "cProfile", "-o", args.profile]
        cmd += ["-m", "pycoredns", "-conf", corefile, "-quiet"]
        procs = [subprocess.Popen(cmd, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for _ in range(max(args.procs, 1))]
        try:
            try:
                wait_port(port)
                time.sleep(0.5 if len(procs) > 1 else 0)  # every process bound
            except RuntimeError:
                procs[0].kill()
                raise RuntimeError(f"pycoredns did not start: {procs[0].communicate()[1][-2000:]}") from None
            dnsperf(port, qfile, 1, args.clients, 10)  # warm-up: fill the cache(s)
            assert ub.proc is not None
            pids = [p.pid for p in procs]
            rounds = [(measure([ub.proc.pid], ub.port, qfile, args), measure(pids, port, qfile, args))
                      for _ in range(args.rounds)]
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
    print(f"dnsperf -l {args.seconds} -c {args.clients} -q {args.outstanding}, {len(HOT)} hot names, loopback, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("server CPU = user+system time of the server process(es) over the run / answered queries")
    ratios = []
    for i, (u, p) in enumerate(rounds, 1):
        for name, r in (("unbound (1 thread)", u), (f"pycoredns cache x{args.procs}", p)):
            print(f"round {i} {name:20s} {r['qps']:9.0f} qps   avg latency {r['latency'] * 1000:7.3f} ms   "
                  f"server CPU {r['cpu_us']:6.1f} us/query   lost {r['lost']:.0f}")
        ratios.append(p["qps"] / u["qps"])
        print(f"round {i} ratio pycoredns/unbound qps: {ratios[-1]:.2f}   "
              f"CPU per query pycoredns/unbound: {p['cpu_us'] / u['cpu_us']:.2f}")
    print(f"median qps ratio over {len(ratios)} round(s): {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
