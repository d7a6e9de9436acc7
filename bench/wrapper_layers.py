"""CPU per query of the writer-wrapper layers in process: `serve_fast` through errors, prometheus +
errors, or minimal above a synchronous leaf that writes 12 bytes (not a test).

    taskset -c 0 python bench/wrapper_layers.py [-n 200000] [--rounds 5]

Best of `--rounds` rounds, process CPU clock, the garbage collector off while timing. Another checkout:
`cd /tmp && PYTHONPATH=<checkout>:<site-packages> python3 -S <checkout>/bench/wrapper_layers.py`
(bench/README.md, "The writer wrappers").
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable

from pycoredns.plugins.errors import Errors
from pycoredns.plugins.minimal import Minimal
from pycoredns.plugins.prometheus import Metrics

from pycoredns.plugin import Handler, Request, ResponseWriter, SyncHandler
from pycoredns.testing import chain, make_request


class Sink(ResponseWriter):
    __slots__ = ()

    def write(self, reply: object) -> None:
        self.written = True


class Leaf(SyncHandler):
    name = "leaf"

    def handle(self, req: Request, w: ResponseWriter) -> int:
        w.write(b"\x00" * 12)
        return 0


CASES: dict[str, Callable[[], list[Handler]]] = {
    "errors": lambda: [Errors([], lambda *a: True)],
    "prometheus errors": lambda: [Metrics(["."], "dns://:53"), Errors([], lambda *a: True)],
    "minimal": lambda: [Minimal()],
    "(the leaf alone)": lambda: [],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=200000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    req = make_request("q.example.org.", "A")
    for label, make in CASES.items():
        best = float("inf")
        for _ in range(args.rounds):
            head = chain(*make(), Leaf())
            gc.disable()
            t = time.process_time()
            for _ in range(args.n):
                head.serve_fast(req, Sink())
            best = min(best, time.process_time() - t)
            gc.enable()
        print(f"{label:20s} {best / args.n * 1e9:7.0f} ns per query")


if __name__ == "__main__":
    main()
