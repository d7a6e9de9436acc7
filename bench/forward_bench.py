"""Benchmark forward: dnsperf against pycoredns forwarding to unbound, and against unbound directly.

    python bench/forward_bench.py [--seconds 10] [--clients 4] [--outstanding 200] [--tcp]

One unbound (num-threads 1, local-data only, loopback) serves both runs in the same invocation, so the
ratio pycoredns/unbound is the cost of the proxy hop on this machine. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import os

from common import PyCoreDNS, Unbound, dnsperf, write_queries

QUERIES = [
    "a.example.org A", "a6.example.org AAAA", "www.example.org A", "mx.example.org MX",
    "many.example.org A", "nodata.example.org AAAA", "missing.example.org A", "short.example.org A",
]


def line(label: str, r: dict) -> str:
    if "error" in r:
        return f"{label:<28} dnsperf failed: {r['error']}"
    return (f"{label:<28} {r['qps']:>10,.0f} qps  avg latency {r['avg_latency_ms']:7.3f} ms  "
            f"lost {r['lost']}  ({r['rcodes']})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--outstanding", type=int, default=200)
    ap.add_argument("--tcp", action="store_true", help="dnsperf over TCP (forward mirrors it to TCP upstream)")
    args = ap.parse_args()
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
