"""The large seed path's cluster tier in-process: its query stream through its chain. Not a test.

    python bench/seed_cluster.py [--services 5000 --externals 5000] [-n 100000] [--rounds 3] [--no-cache] [--forget]

The cluster tier of `bench/compare.py --seed` (kubeadm's Corefile, `kubernetes` synced from the API
test server with 5,000 services) gets the `cluster.local` queries of the seed stream (musl's
search-path expansion: for the most part NXDOMAINs of the search domains, then the services' A and
AAAA). Here those queries, in the stream's order, go through the listener's per-query work
(`Listener.dispatch`: Request, routing, chain, scrub, a writer whose socket makes no system call)
inside the running server, timed with the process CPU clock: CPU µs per query, best of `--rounds`
passes of `-n` queries, each pass continuing the stream where the last one stopped. It leaves out
the TCP listener (`bench/tcp_listener.py`) and the node tier, so a change to the chain (kubernetes'
answers, the cache in front of it) shows here without the end-to-end noise. The stream runs much
faster than real time, so the cache's TTLs do not expire as they do under dnsperf: the hits
here are capacity hits; `--no-cache` takes `cache 30` out. `--forget` clears kubernetes' memo before
each pass, as any change in the cluster does (a churning cluster computes its negatives again).
"""

from __future__ import annotations

import argparse
import random
import struct
import sys
import tempfile
import time
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.cluster_bench import start_api  # noqa: E402
from bench.compare import CLUSTER, seed_lines  # noqa: E402
from pycoredns.cli import tune_gc  # noqa: E402
from pycoredns.embed import serve  # noqa: E402

CLIENT = ("127.0.0.1", 40000)


class NullSock:
    """The UDP socket's stand-in: `sendto` counts the replies and makes no system call."""

    def __init__(self) -> None:
        self.replies = 0

    def sendto(self, data: bytes, addr: tuple) -> int:
        self.replies += 1
        return len(data)


def wire_query(i: int, line: str) -> bytes:
    name, qtype = line.split()
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\x00"
    header = struct.pack(">HHHHHH", i & 0xFFFF, 0x0100, 1, 0, 0, 0)
    return header + qname + struct.pack(">HH", 28 if qtype == "AAAA" else 1, 1)


def stream(services: int, externals: int) -> list[bytes]:
    """The cluster.local queries of compare.py's seed stream (the same seed), in order."""
    lines = [ln for ln in seed_lines(services, externals, random.Random(2)) if ".cluster.local " in ln + " "]
    return [wire_query(i, ln) for i, ln in enumerate(lines)]


async def measure(corefile: str, queries: list[bytes], n: int, rounds: int, forget: bool) -> list[float]:
    async with serve(corefile) as process:
        assert process.instance is not None
        listener = process.instance.first_listener()
        sock = NullSock()
        transport = listener.udp_transport(sock)  # type: ignore[arg-type]
        dispatch = listener.dispatch
        probe = wire_query(1, "svc-1.bench-1.svc.cluster.local A")
        for _ in range(600):  # synced: a service answers (bounded: 60 s)
            before = sock.replies
            dispatch(probe, CLIENT, transport)
            if sock.replies > before:
                break
            await trio.sleep(0.1)
        await trio.sleep(2)  # the background build of the reverse records ends
        index = listener.zone_names[0][1].handler("kubernetes").index  # type: ignore[union-attr]
        pos = 0
        out = []
        for _ in range(rounds + 1):  # the first pass warms up
            batch = [queries[(pos + k) % len(queries)] for k in range(n)]
            pos += n
            if forget:
                index.forget()  # as any change in the cluster does: every outcome computed again
            t = time.process_time()
            for q in batch:
                dispatch(q, CLIENT, transport)
            out.append((time.process_time() - t) * 1e6 / n)
            await trio.sleep(0)
        return out[1:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--services", type=int, default=5000)
    ap.add_argument("--externals", type=int, default=5000)
    ap.add_argument("--endpoints-per-service", type=int, default=2)
    ap.add_argument("-n", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-cache", action="store_true", help="the chain without `cache 30`")
    ap.add_argument("--forget", action="store_true",
                    help="clear kubernetes' memo before each pass, as a change in the cluster does")
    args = ap.parse_args()
    queries = stream(args.services, args.externals)
    with tempfile.TemporaryDirectory() as tmpdir:
        api, kc = start_api(args, Path(tmpdir))
        try:
            corefile = CLUSTER.format(cluster_port=0, health2=0, ready=0, prom2=0, upstream="127.0.0.1:1",
                                      kubeconfig=kc)
            corefile = corefile.replace("health 127.0.0.1:0", "").replace("ready 127.0.0.1:0", "")
            if args.no_cache:
                corefile = corefile.replace("cache 30", "")
            tune_gc()  # as the server process does at its start
            res = trio.run(measure, corefile, queries, args.n, args.rounds, args.forget)
        finally:
            api.terminate()
            api.wait(15)
    print(f"{len(queries):,} cluster.local queries in the stream; CPU µs per query, {args.rounds} passes of "
          f"{args.n:,}: " + ", ".join(f"{r:.2f}" for r in res) + f" (best {min(res):.2f})")


if __name__ == "__main__":
    main()
