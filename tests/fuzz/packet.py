"""Fuzz target: the packet path — request parsing, routing and every plugin's fast path, with the scrub.

    python tests/fuzz/packet.py -runs=N [CORPUS_DIR]      (libFuzzer flags; see harness.py)

A server is started in this process (trio in a background thread) on a Corefile that puts most
plugins in front of one another, kubernetes included (against the API test server's fixture
cluster). Each input is one datagram handed to the listener's `dispatch`, the server's real entry
point, with a transport that collects what would be sent instead of a socket. Queries that need to
wait (the slow path) run to completion before the next input.

Checks per input: nothing escapes (a crash); no plugin panicked (`coredns_panics_total` unchanged);
every datagram sent is a reply to this query (same ID, QR set), fits the client's UDP size, and
parses as DNS (dnspython).
"""

from __future__ import annotations

import os
import queue
import sys
import tempfile
import threading

import dns.exception
import dns.message
import trio

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from pycoredns import directives, metrics
from pycoredns.embed import serve
from pycoredns.server import UDPTransport
from tests.fuzz.harness import main

ZONE = """\
$ORIGIN zone.example.
@ 3600 IN SOA ns hostmaster 1 3600 600 86400 60
@ 3600 IN NS ns
ns 3600 IN A 192.0.2.53
www 300 IN CNAME a
a 300 IN A 192.0.2.1
a 300 IN AAAA 2001:db8::1
*.wild 300 IN TXT "wild"
sub 300 IN NS ns.sub
ns.sub 300 IN A 192.0.2.54
mx 300 IN MX 10 a
srv 300 IN SRV 0 5 53 a
"""

# (directive, lines): lines of directives this build does not have are left out.
EXAMPLE_ORG = [
    ("errors", "errors"),
    ("metadata", "metadata"),
    ("bufsize", "bufsize 1232"),
    ("nsid", "nsid fuzz"),
    ("acl", "acl {\n  block type MX net 10.0.0.0/8\n  filter type HINFO\n }"),
    ("any", "any"),
    ("rewrite", "rewrite name regex (.*)\\.rw\\.example\\.org {1}.example.org answer auto"),
    ("header", "header {\n  response set ra\n }"),
    ("cache", "cache 30 {\n  success 256\n  denial 256\n  prefetch 2\n  serve_stale 1h\n }"),
    ("loadbalance", "loadbalance"),
    ("minimal", "minimal"),
    ("dns64", "dns64 64:ff9b::/96"),
    ("hosts", "hosts {\n  192.0.2.10 h.example.org\n  2001:db8::10 h.example.org\n  fallthrough\n }"),
    ("template", "template IN A example.org {\n  match ^t[0-9]*\\.example\\.org\\.$\n"
                 "  answer \"{{ .Name }} 60 IN A 192.0.2.2\"\n  fallthrough\n }"),
    ("file", "file {zonefile} zone.example"),
    ("whoami", "whoami"),
]
ROOT = [
    ("chaos", "chaos v1 fuzz@example.org"),
    ("local", "local"),
    ("template", "template ANY ANY in-addr.arpa {\n  rcode NXDOMAIN\n }"),
    ("whoami", "whoami"),
]


def corefile(kubeconfig: str, zonefile: str) -> str:
    have = set(directives.available())

    def block(keys: str, lines: list[tuple[str, str]]) -> str:
        body = "\n".join(" " + text.replace("{zonefile}", zonefile) for name, text in lines if name in have)
        return f"{keys} {{\n{body}\n}}\n"

    kube = [("kubernetes", f"kubernetes cluster.local in-addr.arpa ip6.arpa {{\n  kubeconfig {kubeconfig}\n"
                           "  pods verified\n  endpoint_pod_names\n  fallthrough in-addr.arpa ip6.arpa\n }"),
            ("autopath", "autopath @kubernetes"), ("cache", "cache 30"), ("loadbalance", "loadbalance")]
    return (block("example.org zone.example", EXAMPLE_ORG) + block(".", ROOT)
            + block("cluster.local in-addr.arpa ip6.arpa", kube))


class Sink:
    """Stands where the UDP socket would: keeps what the server sends."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def sendto(self, data: bytes, addr: tuple) -> int:
        self.sent.append(bytes(data))
        return len(data)


class Server:
    """A running server in a background trio thread; `one(data)` runs one datagram through it."""

    def __init__(self) -> None:
        from pycoredns_conformance.apiserver import FIXTURE_CLUSTER, APIServer, load_objects

        self.tmp = tempfile.mkdtemp(prefix="pycoredns-fuzz-server-")
        self.api = APIServer(objects=load_objects(FIXTURE_CLUSTER), host="127.0.0.1", port=0)
        self.api.start()
        kubeconfig = os.path.join(self.tmp, "kubeconfig")
        self.api.write_kubeconfig(kubeconfig)
        zonefile = os.path.join(self.tmp, "zone.example")
        with open(zonefile, "w") as f:
            f.write(ZONE)
        self.text = corefile(kubeconfig, zonefile)
        started: queue.Queue = queue.Queue()
        threading.Thread(target=trio.run, args=(self._serve, started), daemon=True).start()
        self.process, self.token = started.get(timeout=120)
        if isinstance(self.process, BaseException):
            raise self.process
        self.listener = next(lst for lst in self.process.instance.listeners.values() if lst.udp_sock is not None)

    async def _serve(self, started: queue.Queue) -> None:
        try:
            async with serve(self.text, dns_port=0) as process:
                with trio.move_on_after(60):  # the kubernetes plugin has listed the cluster
                    while process.instance.ready():
                        await trio.sleep(0.05)
                started.put((process, trio.lowlevel.current_trio_token()))
                await trio.sleep_forever()
        except BaseException as e:
            started.put((e, None))
            raise

    def one(self, data: bytes) -> list[bytes]:
        return trio.from_thread.run(self._one, data, trio_token=self.token)

    async def _one(self, data: bytes) -> list[bytes]:
        sink = Sink()
        slow: list = []
        transport = UDPTransport(sink, lambda fn, *args: slow.append((fn, args)))  # type: ignore[arg-type]
        self.listener.dispatch(data, ("127.0.0.1", 53000), transport)
        with trio.fail_after(10):  # a query that never completes is a finding too
            for fn, args in slow:
                await fn(*args)
            while self.listener.inflight:
                await trio.sleep(0.001)
        return sink.sent


def udp_size(data: bytes) -> int:
    """The client's UDP size: 512, or its EDNS size (at least 512) when it sent an OPT that parses."""
    try:
        q = dns.message.from_wire(data)
    except Exception:
        return 65535  # the server may read more of a damaged query than dnspython: no size check
    return max(512, q.payload) if q.edns >= 0 else 512


def check(data: bytes, sent: list[bytes]) -> None:
    assert len(sent) <= 1, f"{len(sent)} datagrams for one query"
    for reply in sent:
        assert len(reply) >= 12, f"reply of {len(reply)} bytes"
        assert reply[:2] == data[:2], "reply ID differs from the query's"
        assert reply[2] & 0x80, "QR not set"
        assert len(reply) <= udp_size(data), f"{len(reply)} bytes exceed the client's UDP size"
        if not _class_in(reply):
            continue  # CH/HS records keep IN rdata as in CoreDNS (whoami's A); dnspython reads CH A otherwise
        try:
            dns.message.from_wire(reply)
        except dns.message.Truncated:
            pass
        except dns.exception.DNSException as e:
            if not _parses(data):
                continue  # options mirrored from a query dnspython rejects too (a 5-byte cookie)
            raise AssertionError(f"reply does not parse: {e!r}: {reply.hex()}") from None


def _parses(data: bytes) -> bool:
    try:
        dns.message.from_wire(data)
    except Exception:
        return False
    return True


def _class_in(msg: bytes) -> bool:
    """Whether the first question's class is IN (True when there is no readable question)."""
    off = 12
    while off < len(msg) and msg[off] and msg[off] < 0xC0:
        off += 1 + msg[off]
    return msg[off + 3 : off + 5] in (b"\x00\x01", b"")


SERVER: Server | None = None


def target(data: bytes) -> None:
    global SERVER
    if SERVER is None:
        SERVER = Server()
    panics = metrics.panics_total.get()
    sent = SERVER.one(data)
    assert metrics.panics_total.get() == panics, f"a plugin panicked on {data.hex()}"
    check(data, sent)


NAMES = ["example.org", "a.example.org", "h.example.org", "t1.example.org", "x.rw.example.org",
         "a.zone.example", "www.zone.example", "x.wild.zone.example", "x.sub.zone.example", "mx.zone.example",
         "srv.zone.example", "zone.example", "localhost", "version.bind", "1.0.0.127.in-addr.arpa",
         "kubernetes.default.svc.cluster.local", "default.svc.cluster.local", "svc.cluster.local",
         "_https._tcp.kubernetes.default.svc.cluster.local", "1-2-3-4.default.pod.cluster.local",
         "kubernetes.default.svc.cluster.local.default.svc.cluster.local", "dns-version.cluster.local",
         "1.0.96.10.in-addr.arpa", "nothere.example.net", ".",
         # the fixture cluster's names, as tests/test_robustness_packets.py uses them
         "svc1.ns1.svc.cluster.local", "_http._tcp.svc1.ns1.svc.cluster.local", "10-244-1-10.ns1.pod.cluster.local",
         "hdls1.ns1.svc.cluster.local", "x.hdls1.ns1.svc.cluster.local", "101.16.240.10.in-addr.arpa"]
TYPES = ["A", "AAAA", "TXT", "MX", "SRV", "PTR", "NS", "SOA", "ANY", "HINFO", "CNAME", "DS", "AXFR", "IXFR"]


def seeds() -> list[bytes]:
    out = []
    for i, name in enumerate(NAMES):
        for j, rdtype in enumerate(TYPES):
            if (i + j) % 3:
                continue
            kw = {"use_edns": 0, "payload": 1232, "want_dnssec": bool(j % 2)} if (i + j) % 2 else {}
            rdclass = "CH" if name == "version.bind" else "IN"
            out.append(dns.message.make_query(name, rdtype, rdclass, **kw).to_wire())
    q = dns.message.make_query("example.org", "A", use_edns=0, options=[dns.edns.GenericOption(10, b"12345678")])
    out.append(q.to_wire())  # a cookie
    return out


if __name__ == "__main__":
    import dns.edns

    SERVER = Server()
    main(target, seeds)
