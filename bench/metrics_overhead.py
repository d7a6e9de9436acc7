"""Per-query cost of the prometheus plugin on the synchronous fast path (in-process, no sockets).

    python bench/metrics_overhead.py [-n 200000] [--dnsperf SECONDS]

Builds the chains from Corefile text exactly as the server does (Process.load), then times
`chain.serve_fast(req, writer)` with timeit for a whoami chain with and without `prometheus`, and
the same for a hosts answer behind loadbalance. Prints µs per query and the difference.
With --dnsperf, also runs `python -m pycoredns` with each whoami Corefile under dnsperf (loopback)
and prints QPS and server CPU µs per query.
"""

from __future__ import annotations

import argparse
import time
import timeit

from dnslib import DNSRecord

from pycoredns.process import Process
from pycoredns.request import Request, ResponseWriter


class NullWriter(ResponseWriter):
    __slots__ = ()

    def write(self, reply) -> None:
        self.written = True


def make_call(corefile: str, qname: str):
    """A zero-argument callable running one query through the chain's fast path."""
    inst = Process(lambda: (corefile, "Corefile"), dns_port=0, quiet=True).load()
    listener = inst.first_listener()
    req = Request(DNSRecord.question(qname, "A").pack(), ("127.0.0.1", 40000), "udp", ("", 53), listener)
    block = listener.route(req)
    assert block is not None and block.chain is not None
    chain, w = block.chain, NullWriter()
    assert chain.serve_fast(req, w) == 0, "the chain must answer on the fast path"
    return lambda: chain.serve_fast(req, w)


def compare(plain: str, counted: str, qname: str, n: int, rounds: int = 7) -> tuple[float, float]:
    """Best CPU µs per query of each chain, in alternating rounds.

    The timer is the process CPU clock, not the wall clock, so time spent descheduled on a busy
    machine does not count.
    """
    ta = timeit.Timer(make_call(plain, qname), timer=time.process_time)
    tb = timeit.Timer(make_call(counted, qname), timer=time.process_time)
    best_a = best_b = float("inf")
    for _ in range(rounds):
        best_a = min(best_a, ta.timeit(number=n) / n * 1e6)
        best_b = min(best_b, tb.timeit(number=n) / n * 1e6)
    return best_a, best_b


def end_to_end(seconds: int) -> None:
    """dnsperf against a subprocess server, whoami with and without prometheus."""
    import os
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from common import PyCoreDNS, dnsperf, free_port, write_queries

    queries = write_queries([f"q{i}.example.org A" for i in range(200)])
    for label, extra in (("whoami", ""), ("prometheus+whoami", f"prometheus 127.0.0.1:{free_port()}\n")):
        with PyCoreDNS(f".:{{PORT}} {{\n {extra} whoami\n}}\n") as srv:
            cpu0 = srv.cpu_seconds()
            res = dnsperf(srv.port, queries, seconds=seconds)
            cpu = srv.cpu_seconds() - cpu0
        if "error" in res:
            print(label, "dnsperf failed:", res["error"])
            continue
        per_q = cpu / max(res["completed"], 1) * 1e6
        print(f"{label:26s} dnsperf {res['qps']:9.0f} qps  server CPU {per_q:6.2f} µs/query  lost {res['lost']}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=200_000)
    ap.add_argument("--dnsperf", type=int, default=0, metavar="SECONDS", help="also measure end to end")
    args = ap.parse_args()
    # inline entries: the chains are built without running startup hooks, which read hosts files
    hosts = "hosts /nonexistent {\n" + "".join(f"  10.0.0.{i} web.example.org\n" for i in range(1, 5)) + " }"
    cases = {
        "whoami": (". {\n whoami\n}\n", ". {\n prometheus 127.0.0.1:0\n whoami\n}\n", "example.org"),
        "loadbalance+hosts (4 A)": (
            f". {{\n loadbalance\n {hosts}\n}}\n",
            f". {{\n prometheus 127.0.0.1:0\n loadbalance\n {hosts}\n}}\n", "web.example.org"),
    }
    for label, (plain, counted, qname) in cases.items():
        a, b = compare(plain, counted, qname, args.n)
        print(f"{label:26s} without prometheus {a:6.2f} µs  with {b:6.2f} µs  overhead {b - a:5.2f} µs/query")
    if args.dnsperf:
        end_to_end(args.dnsperf)


if __name__ == "__main__":
    main()
