"""`-workers N` against unbound with 1 and 2 threads: cache hits under dnsperf with many clients.

    python bench/workers_bench.py [--seconds 10] [--clients 64] [--workers 1,2] [--rounds 2]

unbound serves a small zone from local-data; pycoredns runs `cache` + `forward` to it (so after a
warm-up every pycoredns query is a cache hit, in every worker). Each server is driven in turn by
dnsperf (`-c CLIENTS`: distinct source ports, so SO_REUSEPORT spreads them over the workers) and
the script prints qps, latency and the server CPU per answered query (user+system of all its
processes from /proc). A benchmark, never a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from cache_bench import HOT, measure, wait_port  # noqa: E402
from upstream import Unbound, free_port  # noqa: E402


def tree(pid: int) -> list[int]:
    """pid and its children (the workers), from /proc."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [pid, *(int(p) for p in f.read().split())]
    except OSError:
        return [pid]


def run_pycoredns(workers: int, upstream: str, qfile: str, args: argparse.Namespace) -> dict[str, float]:
    work = tempfile.mkdtemp(prefix="workers-bench-")
    port = free_port()
    corefile = os.path.join(work, "Corefile")
    with open(corefile, "w") as f:
        extra = "".join(f"    {d}\n" for d in args.plugins.split(",") if d)
        f.write(f".:{port} {{\n    bind 127.0.0.1\n{extra}    cache\n    forward . {upstream}\n}}\n")
    cmd = [sys.executable, "-m", "pycoredns", "-conf", corefile, "-quiet"]
    if workers > 1:
        cmd += ["-workers", str(workers)]
    proc = subprocess.Popen(cmd, cwd=args.repo, stdout=subprocess.DEVNULL)
    try:
        wait_port(port)
        deadline = time.monotonic() + 30
        while len(tree(proc.pid)) < workers + (workers > 1) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        measure(tree(proc.pid), port, qfile, argparse.Namespace(seconds=2, clients=args.clients, outstanding=20))
        return measure(tree(proc.pid), port, qfile, args)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--outstanding", type=int, default=200)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--plugins", default="", help="more directives, comma-separated (e.g. prometheus,errors)")
    ap.add_argument("--repo", default=os.path.dirname(HERE),
                    help="run pycoredns from this checkout (e.g. an older commit, for before/after numbers)")
    args = ap.parse_args()
    qfile = os.path.join(tempfile.mkdtemp(prefix="workers-bench-"), "queries.txt")
    with open(qfile, "w") as f:
        f.write("\n".join(HOT * 4) + "\n")
    print(f"dnsperf -l {args.seconds} -c {args.clients} -q {args.outstanding}, {len(HOT)} hot names, loopback, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
    with Unbound() as ub, Unbound(extra="  num-threads: 2") as ub2:
        assert ub.proc is not None and ub2.proc is not None
        for r in range(1, args.rounds + 1):
            rows = [("unbound num-threads 1", measure([ub.proc.pid], ub.port, qfile, args)),
                    ("unbound num-threads 2", measure([ub2.proc.pid], ub2.port, qfile, args))]
            for n in (int(x) for x in args.workers.split(",")):
                rows.append((f"pycoredns -workers {n}", run_pycoredns(n, ub.addr, qfile, args)))
            for name, m in rows:
                print(f"round {r} {name:24s} {m['qps']:9.0f} qps  avg latency {m['latency'] * 1000:7.3f} ms  "
                      f"server CPU {m['cpu_us']:6.1f} µs/query  lost {m['lost']:.0f}", flush=True)


if __name__ == "__main__":
    main()
