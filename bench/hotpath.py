"""CPU cost of one UDP query through the server's synchronous hot path, per role (not a test).

    python bench/hotpath.py [-n 50000] [--rounds 7] [--only node-local,cluster,...]

Each role's chain is built from Corefile text and started for real (`pycoredns.embed.serve`, so
startup hooks run: the kubernetes plugin syncs from the API test server, started as a subprocess).
Then, inside the running trio program, the per-datagram work of the UDP receive loop (everything
between `recvfrom` and `sendto`: writer, Request parse, routing, chain, scrub) is timed with the
process CPU clock (`time.process_time`, so time spent descheduled on a loaded machine does not
count), best of `--rounds` rounds of `-n` queries. The socket is a stand-in whose `sendto` only
keeps the reply, so the two syscalls per query (measured separately: bench/README.md) are left out.
Each case checks once that the reply is a NOERROR answer before timing it. Results go in
bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path

import trio
from dnslib import EDNS0, DNSRecord

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pycoredns.embed import serve  # noqa: E402
from pycoredns.server import Listener  # noqa: E402

HOSTS = "hosts {\n  10.0.0.1 web.example.org\n  10.0.0.2 two.example.org\n  10.0.0.3 two.example.org\n }"
CLIENT = ("127.0.0.1", 40000)


def corefiles(kubeconfig: str | None) -> dict[str, tuple[str, str]]:
    """Role name -> (Corefile, qname). Directive order in the text does not matter (plugin.cfg)."""
    out = {
        "bare cache hit": (f". {{\n cache 300\n {HOSTS}\n}}\n", "web.example.org"),
        "node-local (prometheus errors loadbalance cache)": (
            f". {{\n prometheus 127.0.0.1:0\n errors\n loadbalance\n cache 300\n {HOSTS}\n}}\n",
            "web.example.org"),
        "node-local + log class error": (
            f". {{\n prometheus 127.0.0.1:0\n errors\n log . {{\n  class error\n }}\n loadbalance\n cache 300\n"
            f" {HOSTS}\n}}\n", "web.example.org"),
        "node-local, 2 A shuffled": (
            f". {{\n prometheus 127.0.0.1:0\n errors\n loadbalance\n cache 300\n {HOSTS}\n}}\n",
            "two.example.org"),
    }
    if kubeconfig:
        kube = f" kubernetes cluster.local in-addr.arpa ip6.arpa {{\n  kubeconfig {kubeconfig}\n }}\n"
        out["cluster (prometheus errors loadbalance cache kubernetes)"] = (
            f". {{\n prometheus 127.0.0.1:0\n errors\n loadbalance\n cache 30\n{kube}}}\n",
            "svc-1.bench-1.svc.cluster.local")
        out["cluster, no cache (kubernetes precomputed)"] = (
            f". {{\n prometheus 127.0.0.1:0\n errors\n loadbalance\n{kube}}}\n",
            "svc-1.bench-1.svc.cluster.local")
    return out


class NullSock:
    """Stands in for the UDP socket: `sendto` keeps the last reply and makes no syscall."""

    def __init__(self) -> None:
        self.last = b""

    def sendto(self, data: bytes, addr: tuple) -> int:
        self.last = data
        return len(data)


def per_datagram(listener: Listener, sock: NullSock) -> Callable[[bytes], None]:
    """The body of the UDP receive loop for one datagram, as the server runs it."""
    if hasattr(listener, "udp_transport"):  # after the hot-path work: one transport object per socket
        transport = listener.udp_transport(sock)  # type: ignore[arg-type]
        dispatch = listener.dispatch
        return lambda data: dispatch(data, CLIENT, transport)  # type: ignore[call-arg]

    # before: serve_udp made two closures per datagram and called dispatch with them
    from pycoredns.server import UDPWriter

    def spawn(*_a) -> None:
        raise RuntimeError("the hot path must not spawn a task")

    def old(data: bytes) -> None:
        addr = CLIENT

        def make_writer(req, _a=addr):
            return UDPWriter(sock, None, req, _a)  # type: ignore[arg-type]

        def send_raw(b: bytes, _a=addr) -> None:
            sock.sendto(b, _a)

        listener.dispatch(data, addr, "udp", make_writer, send_raw, spawn)  # type: ignore[call-arg]

    return old


def query(qname: str, edns: bool) -> bytes:
    q = DNSRecord.question(qname, "A")
    q.header.id = 4242
    if edns:
        q.add_ar(EDNS0(udp_len=1232))
    return bytes(q.pack())


async def measure(corefile: str, qname: str, n: int, rounds: int) -> dict[str, float]:
    results = {}
    async with serve(corefile) as process:
        assert process.instance is not None
        listener = process.instance.first_listener()
        sock = NullSock()
        run = per_datagram(listener, sock)
        for edns in (False, True):
            data = query(qname, edns)
            run(data)  # warm up: fills the cache
            run(data)
            reply = DNSRecord.parse(sock.last)
            if reply.header.rcode != 0 or not reply.rr:
                raise SystemExit(f"{qname}: expected a NOERROR answer, got\n{reply}")
            t = timeit.Timer(lambda data=data: run(data), timer=time.process_time)
            best = min(t.timeit(number=n) / n for _ in range(rounds))
            results["edns" if edns else "plain"] = best * 1e6
    return results


def start_apiserver(tmp: str) -> tuple[subprocess.Popen, str]:
    kc = os.path.join(tmp, "kubeconfig")
    api = subprocess.Popen([sys.executable, "-m", "pycoredns_conformance.apiserver", "--listen", "127.0.0.1:0",
                            "--generate-services", "50", "--endpoints-per-service", "2",
                            "--kubeconfig-out", kc], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert api.stdout is not None
    api.stdout.readline()
    api.stdout.readline()
    if not os.path.exists(kc):
        api.kill()
        raise SystemExit("API test server did not start")
    return api, kc


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--only", default="", help="comma-separated substrings of role names")
    ap.add_argument("--no-kubernetes", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        api, kc = (None, None) if args.no_kubernetes else start_apiserver(tmp)
        try:
            for label, (corefile, qname) in corefiles(kc).items():
                if args.only and not any(s in label for s in args.only.split(",")):
                    continue
                r = trio.run(measure, corefile, qname, args.n, args.rounds)
                print(f"{label:58s} {r['plain']:6.2f} µs  EDNS {r['edns']:6.2f} µs", flush=True)
        finally:
            if api is not None:
                api.terminate()
                api.wait(10)


if __name__ == "__main__":
    main()
