"""Reload benchmark (not a test): queries lost while the configuration is swapped, and swap time.

    python bench/reload_bench.py [seconds] [qps]

1. dnsperf at a fixed rate against `python -m pycoredns` for `seconds`, once without reloads
   (baseline) and once with a Corefile edit + SIGUSR1 every 0.25 s; prints lost queries for both.
2. In-process: the time `Process.reload()` takes for a small Corefile (median and max of 50).
"""

from __future__ import annotations

import os
import signal
import statistics
import sys
import threading
import time

import trio
from common import PyCoreDNS, dnsperf, write_queries

COREFILE = ".:{PORT} {\n whoami\n chaos v0\n}\n"


def with_reloads(srv: PyCoreDNS, stop: threading.Event, count: list[int]) -> None:
    path = os.path.join(srv.dir, "Corefile")
    i = 0
    while not stop.wait(0.25):
        i += 1
        with open(path + ".tmp", "w") as f:
            f.write(srv.corefile.replace("chaos v0", f"chaos v{i}"))
        os.replace(path + ".tmp", path)
        assert srv.proc is not None
        srv.proc.send_signal(signal.SIGUSR1)
        count[0] += 1


def loss(seconds: int, qps: int) -> None:
    data = write_queries([f"q{i}.example.org A" for i in range(100)])
    with PyCoreDNS(COREFILE) as srv:
        base = dnsperf(srv.port, data, seconds=seconds, clients=2, outstanding=100, extra=["-Q", str(qps)])
        stop, count = threading.Event(), [0]
        t = threading.Thread(target=with_reloads, args=(srv, stop, count))
        t.start()
        try:
            reloading = dnsperf(srv.port, data, seconds=seconds, clients=2, outstanding=100, extra=["-Q", str(qps)])
        finally:
            stop.set()
            t.join()
    print(f"baseline     : {base}")
    print(f"{count[0]:3d} reloads  : {reloading}")




async def swap_time(n: int = 50) -> None:
    from pycoredns.embed import serve

    text = ". {\n whoami\n chaos v0\n errors\n log\n}\n"
    async with serve(text) as proc:
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            assert await proc.reload()
            times.append((time.perf_counter() - t0) * 1000)
    print(f"Process.reload(): median {statistics.median(times):.2f} ms, max {max(times):.2f} ms (n={n})")


def main() -> None:
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    qps = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
    loss(seconds, qps)
    import logging

    logging.getLogger("pycoredns").setLevel(logging.WARNING)
    trio.run(swap_time)


if __name__ == "__main__":
    main()
