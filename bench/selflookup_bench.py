"""Self-lookups through the server (issue 11, item 4), side by side. Not a test.

    python bench/selflookup_bench.py [--other /work/ref/bin/coredns] [--seconds 10]
        [--before "env PYTHONPATH=/tmp/before:<site-packages> python3 -S -m pycoredns"] [--before-first]
        [--pycoredns "env PYTHONPATH=/tmp/after:<site-packages> python3 -S -m pycoredns"]

Rows (10,000 distinct names each, no cache, so every query waits for the upstream):
- template: `n<i>.alias.test. A` is answered with a CNAME to `n<i>.bench.test.`, whose A comes from a
  lookup through the server itself (forward to unbound);
- rewrite cname: forward gets `n<i>.cn.test. A` from a small responder as a CNAME to
  `target.bench.test.` (unbound answers a CNAME of a local zone with SERVFAIL); the `cname` rule renames
  the target to `renamed.bench.test.` and looks that up through the server (forward to unbound);
- dns64: `n<i>.bench.test. AAAA` is forwarded to unbound (NODATA), then dns64 looks the A up through
  the server (forward again) and synthesises the AAAA (two upstream round trips per query).

Servers, pinning, dnsperf and the CPU figures are bench/compare.py's (server on core 0, dnsperf and
unbound on core 1). `--before` runs another pycoredns checkout: a `git archive` copy with
`ln -s ../plugins pycoredns/plugins`, started with `python3 -S` and PYTHONPATH=<copy>:<site-packages>
(this tree's editable finder is installed by a .pth file, which -S skips).

`--loop template|rewrite|dns64|forward [-n 6048] [--batch 16] [--timed]`: one process, one trio run: a client
socket sends the row's queries `--batch` at a time to a real pycoredns listener with the row's Corefile, whose
upstreams (the responder and unbound) are one fake UDP server in the same run that answers as they do
(`_fake_answer`) and counts the queries it gets; `forward` is one forwarded A query alone (the part of a row
that is not its self-lookup). `-n` queries after `--warmup` rounds (200). The same work every time, for instruction
counts the shared machine's load does not move:
`PYTHONHASHSEED=0 valgrind --tool=callgrind <python3.11> bench/selflookup_bench.py --loop rewrite -n 3000`,
minus the same with `-n 1000`, divided by 2,000 (the whole process: client and fake upstream included).
`--timed` prints CPU µs per query (the process CPU clock) and the upstream queries per client query.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import answers, free_port, udp_responder, udp_rounds, write_queries  # noqa: E402
from bench.compare import measure, print_header, row_cells, start, start_upstream  # noqa: E402
from bench.sidebyside import LOAD_CORE, SERVER_CORE, load_average, pinned  # noqa: E402

NAMES = 10_000
TEMPLATE = """.:{port} {{
    bind 127.0.0.1
    template IN A alias.test {{
        match ^(n[0-9]+)[.]alias[.]test[.]$
        answer "{{{{ .Name }}}} 60 IN CNAME {{{{ index .Match 1 }}}}.bench.test."
    }}
    forward . {upstream}
}}
"""
REWRITE = """.:{port} {{
    bind 127.0.0.1
    rewrite cname regex ^target[.]bench[.]test[.]$ renamed.bench.test.
    forward cn.test {responder}
    forward . {upstream}
}}
"""
DNS64 = """.:{port} {{
    bind 127.0.0.1
    dns64 {{
        allow_ipv4
    }}
    forward . {upstream}
}}
"""
ROWS = {  # corefile, zone of the names, query type
    "template CNAME -> self-lookup -> forward": (TEMPLATE, "alias.test", "A"),
    "rewrite cname -> self-lookup -> forward": (REWRITE, "cn.test", "A"),
    "dns64: forward AAAA (NODATA) -> self-lookup A -> forward": (DNS64, "bench.test", "AAAA"),
}


def responder(port: int) -> None:
    """Answer every A query with a CNAME to target.bench.test. (run in a process of its own)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    target = b"\x06target\x05bench\x04test\x00"
    rr = b"\xc0\x0c" + struct.pack(">HHIH", 5, 1, 300, len(target)) + target
    while True:
        data, addr = sock.recvfrom(65535)
        if len(data) < 17:
            continue
        end = data.index(b"\x00", 12) + 5  # the question (no compression in queries)
        sock.sendto(data[:2] + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00" + data[12:end] + rr, addr)


def start_responder() -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([*pinned([], LOAD_CORE), sys.executable, __file__, "--responder", str(port)])
    deadline = time.monotonic() + 10
    while not answers(port, "n0.cn.test.") and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc, f"127.0.0.1:{port}"


def _fake_answer(q: bytes) -> bytes:
    """What the row's upstreams answer, byte for byte as they do: `*.cn.test. A` a CNAME to
    target.bench.test. (the responder); under bench.test. (unbound's redirect zone, AA) an A 192.0.2.1
    for A, NODATA with the zone's SOA for the rest, its names compressed against the question; a query's
    OPT is answered with an OPT of 1232 bytes, as unbound does."""
    end = q.index(b"\x00", 12) + 5
    name, qtype = q[12 : end - 4], q[end - 4 : end - 2]
    opt = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00" if q[10:12] != b"\x00\x00" else b""
    arcount = b"\x00\x01" if opt else b"\x00\x00"
    if name.endswith(b"\x02cn\x04test\x00") and qtype == b"\x00\x01":
        target = b"\x06target\x05bench\x04test\x00"
        rr = b"\xc0\x0c" + struct.pack(">HHIH", 5, 1, 300, len(target)) + target
        return q[:2] + b"\x81\x80\x00\x01\x00\x01\x00\x00" + arcount + q[12:end] + rr + opt
    if qtype == b"\x00\x01":
        rr = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 300, 4) + bytes([192, 0, 2, 1])
        return q[:2] + b"\x85\x80\x00\x01\x00\x01\x00\x00" + arcount + q[12:end] + rr + opt
    zone = struct.pack(">H", 0xC000 | (12 + len(name) - len(b"\x05bench\x04test\x00")))  # in the question
    rdata = b"\x02ns" + zone + b"\x0ahostmaster" + zone + struct.pack(">IIIII", 1, 3600, 600, 86400, 60)
    soa = zone + struct.pack(">HHIH", 6, 1, 60, len(rdata)) + rdata
    return q[:2] + b"\x85\x80\x00\x01\x00\x00\x00\x01" + arcount + q[12:end] + soa + opt


FORWARD = """.:{port} {{
    bind 127.0.0.1
    forward . {upstream}
}}
"""
# the rows in-process, and `forward`: one forwarded exchange alone, what each row's self-lookups add to
LOOP_ROWS = {"template": (TEMPLATE, "alias.test", 1), "rewrite": (REWRITE, "cn.test", 1),
             "dns64": (DNS64, "bench.test", 28), "forward": (FORWARD, "bench.test", 1)}


async def loop(row: str, n: int, batch: int, timed: bool, warmup: int) -> None:
    """`--loop`: see the module docstring."""
    import trio

    from pycoredns.cli import tune_gc
    from pycoredns.embed import serve

    tune_gc()  # the collector as a serving process has it
    corefile, zone, qtype = LOOP_ROWS[row]
    up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    up.bind(("127.0.0.1", 0))
    up.setblocking(False)
    seen = [0]

    def counted_answer(q: bytes) -> bytes:
        seen[0] += 1
        return _fake_answer(q)

    def query(i: int) -> bytes:
        name = b"".join(bytes([len(p)]) + p for p in (f"n{i}.{zone}".encode().split(b"."))) + b"\x00"
        return struct.pack(">HHHHHH", i & 0xFFFF, 0x0100, 1, 0, 0, 0) + name + struct.pack(">HH", qtype, 1)

    addr = f"127.0.0.1:{up.getsockname()[1]}"
    async with trio.open_nursery() as nursery:
        nursery.start_soon(udp_responder, up, counted_answer)
        async with serve(corefile.format(port=0, upstream=addr, responder=addr)) as proc:
            cl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            cl.bind(("127.0.0.1", 0))
            cl.connect(("127.0.0.1", proc.port()))
            cl.setblocking(False)
            qs = [query(i) for i in range(NAMES)]

            await udp_rounds(cl, qs, warmup, batch)
            t0, seen0 = time.process_time(), seen[0]
            # names not asked yet: in the bench each of the 10,000 comes back after 9,999 others, more
            # than most per-name memos of the server keep
            await udp_rounds(cl, qs, n // batch, batch, warmup * batch)
            if timed:
                done = n // batch * batch
                print(f"{row}: {(time.process_time() - t0) / done * 1e6:.2f} µs per query (whole process), "
                      f"{(seen[0] - seen0) / done:.2f} upstream queries per query")
            cl.close()
        nursery.cancel_scope.cancel()
    up.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--other", default="/work/ref/bin/coredns", help="another server binary ('' for none)")
    ap.add_argument("--pycoredns", default=f"{sys.executable} -m pycoredns",
                    help="command that runs this pycoredns (e.g. a snapshot of the tree, as --before)")
    ap.add_argument("--before", default="", help="command that runs another pycoredns checkout")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("-k", dest="match", default="", help="only rows whose name contains this")
    ap.add_argument("--before-first", action="store_true", help="run the --before checkout first in each row "
                    "(alternate runs with and without it: the shared machine's load drifts)")
    ap.add_argument("--responder", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--loop", choices=tuple(LOOP_ROWS), help="the in-process loop of a row (see above) and exit")
    ap.add_argument("--batch", type=int, default=16, help="--loop: queries per round")
    ap.add_argument("-n", type=int, default=6048, help="--loop: queries measured")
    ap.add_argument("--timed", action="store_true", help="--loop: print CPU µs per query")
    ap.add_argument("--warmup", type=int, default=200, help="--loop: rounds before the measured ones")
    args = ap.parse_args()
    if args.loop:
        import trio

        trio.run(loop, args.loop, args.n, args.batch, args.timed, args.warmup)
        return
    if args.responder:
        responder(args.responder)
        return
    if shutil.which("dnsperf") is None:
        raise SystemExit("dnsperf is needed (bash .ci/install)")
    binaries = {"pycoredns": shlex.split(args.pycoredns)}
    if args.before:
        binaries["before"] = shlex.split(args.before)
        if args.before_first:
            binaries = {"before": binaries["before"], "pycoredns": binaries["pycoredns"]}
    if args.other and os.path.exists(args.other):
        binaries[Path(args.other).name] = [args.other]
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; servers on core {SERVER_CORE}, dnsperf and "
          f"unbound on core {LOAD_CORE}; load average before: {load_average()}", flush=True)
    ub = start_upstream()
    resp, resp_addr = start_responder()
    try:
        with tempfile.TemporaryDirectory() as tmpdir:
            tmp = Path(tmpdir)
            print_header(list(binaries))
            for name, (corefile, zone, qtype) in ROWS.items():
                if args.match not in name:
                    continue
                path = write_queries([f"n{i}.{zone}. {qtype}" for i in range(NAMES)])
                results = []
                try:
                    for label, cmd in binaries.items():
                        port = free_port()
                        text = corefile.format(port=port, upstream=ub.addr, responder=resp_addr)
                        s = start(label, cmd, text, tmp, port, f"n0.{zone}.")
                        try:
                            results.append(measure([s], port, path, args.seconds))
                        finally:
                            s.__exit__()
                finally:
                    os.unlink(path)
                print(f"| {name} | {row_cells(results)} |  {'; '.join(r.get('rcodes', '') for r in results)}",
                      flush=True)
    finally:
        ub.stop()
        resp.terminate()
        resp.wait(5)
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
