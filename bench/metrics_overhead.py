"""Per-query cost of the prometheus plugin on the synchronous fast path (in-process, no sockets).

    python bench/metrics_overhead.py [-n 200000]

Builds the chains from Corefile text exactly as the server does (Process.load), then times
`chain.serve_fast(req, writer)` with timeit for a whoami chain with and without `prometheus`, and
the same for a hosts answer behind loadbalance. Prints µs per query and the difference.
"""

from __future__ import annotations

import argparse
import timeit

from dnslib import DNSRecord

from pycoredns.process import Process
from pycoredns.request import Request, ResponseWriter


class NullWriter(ResponseWriter):
    __slots__ = ()

    def write(self, reply) -> None:
        self.written = True


def chain_cost(corefile: str, qname: str, n: int, repeat: int = 5) -> float:
    """Best-of-`repeat` µs per serve_fast call."""
    inst = Process(lambda: (corefile, "Corefile"), dns_port=0, quiet=True).load()
    listener = inst.first_listener()
    req = Request(DNSRecord.question(qname, "A").pack(), ("127.0.0.1", 40000), "udp", ("", 53), listener)
    block = listener.route(req)
    assert block is not None and block.chain is not None
    chain, w = block.chain, NullWriter()
    assert chain.serve_fast(req, w) == 0, "the chain must answer on the fast path"
    best = min(timeit.repeat(lambda: chain.serve_fast(req, w), number=n, repeat=repeat))
    return best / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=200_000)
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
        a = chain_cost(plain, qname, args.n)
        b = chain_cost(counted, qname, args.n)
        print(f"{label:26s} without prometheus {a:6.2f} µs  with {b:6.2f} µs  overhead {b - a:5.2f} µs/query")


if __name__ == "__main__":
    main()
