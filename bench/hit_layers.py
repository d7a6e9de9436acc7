"""CPU per query of the node-local hit path's layers in process: the UDP listener's `dispatch` with a
socket stand-in, through cache hits alone, errors, prometheus, and the node-local-style chain (not a test).

    taskset -c 0 python bench/hit_layers.py [-n 20000] [--rounds 5] [--only node-local]
    PYTHONHASHSEED=0 valgrind --tool=callgrind python bench/hit_layers.py --loop node-local -n 12000

The server starts from Corefile text (`pycoredns.embed.serve`) with bench/cache_path.py's synchronous
fake upstream in place of forward; queries ask 2 names (or 10,000, all of them cached) after a pass
that filled the cache. `--loop CHAIN` runs `-n` queries through one chain without timing: for
callgrind instruction counts, which the shared machine's load does not move (the same with `-n 2000`
subtracted, divided by the difference in queries). bench/README.md, "Sixth session".
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable

import trio
from cache_path import CLIENT, fake_chain, query  # bench/ is the script's directory

PROM = " prometheus 127.0.0.1:0"
NODELOCAL = " errors\n cache 30\n reload\n loop\n" + PROM
# label -> (plugins before the upstream, name of the i-th query)
CASES: dict[str, tuple[str, Callable[[int], str]]] = {
    "cache": (" cache 30", lambda i: f"{'ab'[i & 1]}.bench.test."),
    "errors cache": (" errors\n cache 30", lambda i: f"{'ab'[i & 1]}.bench.test."),
    "prometheus cache": (PROM + "\n cache 30", lambda i: f"{'ab'[i & 1]}.bench.test."),
    "node-local": (NODELOCAL, lambda i: f"{'ab'[i & 1]}.bench.test."),
    "node-local, 10,000 names all hits": (NODELOCAL.replace("cache 30", "cache 30 {\n  success 40000\n }"),
                                          lambda i: f"n{i % 10000}.bench.test."),
}


async def run(plugins: str, name: Callable[[int], str], n: int, rounds: int, timed: bool) -> float:
    async with fake_chain(plugins) as (dispatch, transport, sock):
        fill = [query(name(i)) for i in range(10000)]  # the same work whatever -n is: --loop subtracts it
        for d in fill:  # fill the cache
            dispatch(d, CLIENT, transport)
        if sock.last[3] & 0x0F:
            raise SystemExit(f"expected NOERROR, got rcode {sock.last[3] & 0x0F}")
        datas = (fill * (n // 10000 + 1))[:n]  # the i-th query asks name(i % 10000)
        if not timed:
            for d in datas:
                dispatch(d, CLIENT, transport)
            return 0.0
        best = float("inf")
        for _ in range(rounds):
            t0 = time.process_time()
            for d in datas:
                dispatch(d, CLIENT, transport)
            best = min(best, (time.process_time() - t0) / n)
        return best * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", default="", help="comma-separated substrings of case names")
    ap.add_argument("--loop", choices=list(CASES), help="run -n queries through this chain untimed and exit")
    args = ap.parse_args()
    gc.freeze()  # as pycoredns.cli.tune_gc does in a serving process
    gc.set_threshold(50_000, *gc.get_threshold()[1:])
    if args.loop:
        plugins, name = CASES[args.loop]
        trio.run(run, plugins, name, args.n, 1, False)
        return
    for label, (plugins, name) in CASES.items():
        if args.only and not any(s in label for s in args.only.split(",")):
            continue
        print(f"{label:40s} {trio.run(run, plugins, name, args.n, args.rounds, True):6.2f} µs", flush=True)


if __name__ == "__main__":
    main()
