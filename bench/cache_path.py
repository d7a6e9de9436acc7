"""CPU per query of the cache's miss, hit and node-local paths in-process, without sockets or an
upstream (not a test).

    python bench/cache_path.py [-n 20000] [--rounds 5] [--only misses]

Each case starts a real server from Corefile text (`pycoredns.embed.serve`, so setup and startup run),
then replaces the chain's last handler (`whoami`, a placeholder) with a synchronous fake upstream:
every name under bench.test. answers A 192.0.2.1 with TTL 300, every name under nx.test. is NXDOMAIN
without SOA (not cacheable). Queries go through the UDP listener's per-datagram work (Request parse,
routing, chain, scrub) with a socket stand-in, timed with the process CPU clock, best of `--rounds`
rounds of `-n` queries. The miss rows use names never asked before (the store evicts once the 9,984
entries are full, as under 300,000 distinct names); the node-local rows ask 10,000 names after a pass
that filled the cache (about 0.3 % still miss: 10,000 names in a 9,984-entry cache), 25 % of
them NXDOMAIN without SOA in the second. The difference to "no cache" is what the cache adds to a
forwarded query (bench/README.md, issue 11). Run it with `taskset -c 0` on a shared machine.
"""

from __future__ import annotations

import argparse
import gc
import struct
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import trio

from pycoredns import wire
from pycoredns.embed import serve
from pycoredns.plugin import Request, ResponseWriter, SyncHandler

CLIENT = ("127.0.0.1", 40000)
ANSWER = b"\xc0\x0c" + struct.pack(">HHIH", wire.TYPE_A, 1, 300, 4) + bytes([192, 0, 2, 1])
NX = wire.text_to_wire("nx.test.")


class FakeUpstream(SyncHandler):
    """Answers at once what unbound answers in bench/compare.py."""

    name = "fakeup"

    def handle(self, req: Request, w: ResponseWriter) -> int:
        d = req.wire
        if req.qname_wire.endswith(NX):
            w.write(d[:2] + b"\x81\x83\x00\x01\x00\x00\x00\x00\x00\x00" + d[12 : req.qend])
            return wire.NXDOMAIN
        w.write(d[:2] + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00" + d[12 : req.qend] + ANSWER)
        return wire.NOERROR


class NullSock:
    """Stands in for the UDP socket: keeps the last reply, no syscall."""

    last = b""

    def sendto(self, data: bytes, addr: tuple) -> int:
        self.last = data
        return len(data)


def query(name: str) -> bytes:
    return struct.pack(">HHHHHH", 4242, 0x0100, 1, 0, 0, 0) + wire.text_to_wire(name) + b"\x00\x01\x00\x01"


NODELOCAL = " errors\n cache 30\n prometheus 127.0.0.1:0"
# label -> (plugins before the upstream, name of the i-th query, fill the cache with one pass first?)
CASES: dict[str, tuple[str, Callable[[int], str], bool]] = {
    "hits, 2 names (errors cache 30)": (" errors\n cache 30", lambda i: f"{'ab'[i % 2]}.bench.test.", True),
    "no cache (errors)": (" errors", lambda i: f"m{i}.bench.test.", False),
    "misses (errors cache 30)": (" errors\n cache 30", lambda i: f"m{i}.bench.test.", False),
    "node-local misses (errors cache prometheus)": (NODELOCAL, lambda i: f"m{i}.bench.test.", False),
    "node-local 10,000 names, warm": (NODELOCAL, lambda i: f"n{i % 10000}.bench.test.", True),
    "node-local, 25 % NXDOMAIN without SOA": (
        NODELOCAL, lambda i: f"x{i % 10000}.nx.test." if i % 4 == 0 else f"n{i % 10000}.bench.test.", True),
}


@asynccontextmanager
async def fake_chain(plugins: str) -> AsyncIterator[tuple[Callable[..., object], object, NullSock]]:
    """A real server from Corefile text whose chain ends in FakeUpstream (in place of whoami): its UDP
    listener's `dispatch`, the transport over a socket stand-in, and the stand-in."""
    async with serve(". {\n" + plugins + "\n whoami\n}\n") as process:
        assert process.instance is not None
        process.instance.blocks[0].handlers[-2].next = FakeUpstream()
        listener = process.instance.first_listener()
        sock = NullSock()
        yield listener.dispatch, listener.udp_transport(sock), sock  # type: ignore[arg-type]


async def measure(plugins: str, name: Callable[[int], str], fill: bool, n: int, rounds: int) -> float:
    async with fake_chain(plugins) as (dispatch, transport, _sock):
        best = float("inf")
        for r in range(rounds):
            base = 0 if fill else r * n  # misses: names never asked before
            datas = [query(name(base + i)) for i in range(n)]
            if fill:
                for d in datas:
                    dispatch(d, CLIENT, transport)
            t0 = time.process_time()
            for d in datas:
                dispatch(d, CLIENT, transport)
            best = min(best, (time.process_time() - t0) / n)
        return best * 1e6


class Sink(ResponseWriter):
    """The client's writer for `loop`: keeps nothing."""

    __slots__ = ()

    def write(self, reply: bytes) -> None:
        self.written = True

    def done(self, rcode: int, error: BaseException | None = None) -> None:
        pass


def loop(kind: str, n: int) -> None:
    """`n` queries through a bare `cache 30` (no server, no timing) in front of FakeUpstream, after 12,000
    names filled it (so every miss evicts): for instruction counts that the shared machine's load does
    not move, e.g. `PYTHONHASHSEED=0 valgrind --tool=callgrind python bench/cache_path.py --loop miss
    -n 12000`, minus the same with `-n 2000`, divided by 10,000. `kind`: miss, hit (2 names), or none
    (the parse and the upstream alone)."""
    from pycoredns.plugins.cache import Cache

    c = Cache()
    c.pttl = 30.0
    c.finish()
    c.next = FakeUpstream()
    for i in range(12000):
        c.serve_fast(Request(query(f"f{i}.bench.test.")), Sink())
    if kind == "miss":
        for i in range(n):
            c.serve_fast(Request(query(f"m{i}.bench.test.")), Sink())
    elif kind == "hit":
        for i in range(n):
            c.serve_fast(Request(query(f"f{11999 - (i & 1)}.bench.test.")), Sink())
    else:
        for i in range(n):
            c.next.serve_fast(Request(query(f"m{i}.bench.test.")), Sink())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", default="", help="comma-separated substrings of case names")
    ap.add_argument("--loop", choices=("miss", "hit", "none"), help="run `loop` (for callgrind) and exit")
    args = ap.parse_args()
    if args.loop:
        loop(args.loop, args.n)
        return
    gc.freeze()  # as pycoredns.cli.tune_gc does in a serving process
    gc.set_threshold(50_000, *gc.get_threshold()[1:])
    for label, (plugins, name, fill) in CASES.items():
        if args.only and not any(s in label for s in args.only.split(",")):
            continue
        print(f"{label:50s} {trio.run(measure, plugins, name, fill, args.n, args.rounds):6.2f} µs", flush=True)


if __name__ == "__main__":
    main()
