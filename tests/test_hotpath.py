"""The hot path's memoisation (parse by bytes, routes by qname, name texts) never changes an answer."""

from __future__ import annotations

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import trio
from conftest import query, running

from pycoredns import wire
from pycoredns.request import Rejected, Request


async def udp_exchange(port: int, data: bytes) -> bytes:
    """Send raw bytes over UDP on loopback, return the raw reply (bounded wait)."""
    with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as s:
        await s.connect(("127.0.0.1", port))
        await s.send(data)
        with trio.fail_after(3):
            return await s.recv(4096)


async def test_same_bytes_other_opcode_is_still_notimp():
    async with running(". {\n whoami\n}\n") as srv:
        q = dns.message.make_query("example.org", "A")
        data = bytearray(q.to_wire())
        r = dns.message.from_wire(await udp_exchange(srv.port(), bytes(data)))
        assert r.rcode() == dns.rcode.NOERROR  # now the parse of these bytes is memoised
        data[2] = (data[2] & 0x87) | (dns.opcode.UPDATE << 3)
        raw = await udp_exchange(srv.port(), bytes(data))
        assert raw[3] & 0x0F == dns.rcode.NOTIMP and (raw[2] >> 3) & 0x0F == dns.opcode.UPDATE


async def test_same_question_other_ids_each_get_their_own():
    async with running(". {\n cache\n whoami\n}\n") as srv:
        q = dns.message.make_query("example.org", "A", use_edns=0, payload=1232)
        for qid in (1, 2, 0xFFFF, 7):
            q.id = qid
            raw = await udp_exchange(srv.port(), q.to_wire())
            r = dns.message.from_wire(raw)
            assert r.id == qid and r.rcode() == dns.rcode.NOERROR and r.edns == 0 and r.payload == 1232


async def test_route_memo_keeps_ds_on_the_parent_side():
    cf = "example.org {\n whoami\n}\nsub.example.org {\n any\n}\n"
    async with running(cf) as srv:
        for _ in range(2):  # the A routes first and is memoised; the DS must not reuse it
            r = await query(srv.port(), "sub.example.org", "A")
            assert r.rcode() == dns.rcode.SERVFAIL  # sub's chain: any has no next
            r = await query(srv.port(), "sub.example.org", "DS")
            assert r.rcode() == dns.rcode.NOERROR and r.additional  # example.org's whoami


async def test_refused_then_served_after_nothing_changes():
    async with running("example.org {\n whoami\n}\n") as srv:
        for _ in range(2):
            assert (await query(srv.port(), "example.net", "A")).rcode() == dns.rcode.REFUSED
            assert (await query(srv.port(), "a.EXAMPLE.org", "A")).rcode() == dns.rcode.NOERROR


def test_request_parse_memo_shares_only_immutable_parts():
    q = dns.message.make_query("Example.ORG", "AAAA", use_edns=0, payload=4096, want_dnssec=True)
    first = Request(q.to_wire())
    q.id ^= 0x5555
    q.flags |= dns.flags.CD
    second = Request(q.to_wire())
    assert second.id == q.id and second.cd and not first.cd
    assert second.qname_wire == first.qname_wire == wire.text_to_wire("example.org.")
    assert second.qtype == 28 and second.do and second.size() == 4096
    assert second.qname == "Example.ORG."  # case as sent, from this request's own bytes


def test_rejections_are_not_memoised():
    q = dns.message.make_query("example.org", "A").to_wire()
    bad = q[:4] + b"\x00\x02" + q[6:]  # two questions: FORMERR
    for _ in range(2):
        try:
            Request(bad)
        except Rejected as rej:
            assert rej.reply is not None and rej.reply[3] & 0x0F == wire.FORMERR
        else:
            raise AssertionError("two questions must be rejected")
    assert Request(q).qtype == 1


def test_name_text_escapes_like_miekg():
    for labels, text in (
        ([b"a.b", b"c"], "a\\.b.c."),
        ([b"sp ace", b"\x00\xff"], "sp\\ ace.\\000\\255."),
        ([b'q"();@$\\'], 'q\\"\\(\\)\\;\\@\\$\\\\.'),
        ([], "."),
        ([b"Mixed", b"CASE"], "Mixed.CASE."),
    ):
        wname = b"".join(bytes([len(x)]) + x for x in labels) + b"\x00"
        assert wire.labels_to_text(labels) == text
        assert wire.wire_name_to_text(wname) == text
        assert wire.wire_name_to_text(wname) == text  # memoised


def test_parse_memo_is_bounded():
    from pycoredns import request

    request._PARSED.clear()
    big = dns.message.make_query("example.org", "A", use_edns=0, payload=1232,
                                 options=[dns.edns.GenericOption(65001, b"x" * 1000)]).to_wire()
    assert Request(big).edns is not None and not request._PARSED  # large queries are not kept
    for i in range(request.PARSE_CACHE_SIZE + 10):
        Request(dns.message.make_query(f"n{i}.example.org", "A").to_wire())
    assert 0 < len(request._PARSED) <= request.PARSE_CACHE_SIZE


async def test_batched_query_metrics_add_up(monkeypatch):
    """prometheus folds identical observations in batches: scrapes still see every query exactly."""
    import importlib

    from prom_helpers import samples, value

    from pycoredns.metrics import REGISTRY

    cf = "batch.prom.test {\n prometheus 127.0.0.1:0\n whoami\n}\n"
    async with running(cf) as srv:
        prom = importlib.import_module("pycoredns.plugins.prometheus.handler")
        monkeypatch.setattr(prom, "PENDING_MAX", 3)  # overflow flushes happen between scrapes too
        server = srv.instance.first_listener().label
        names = [f"{'x' * i}.batch.prom.test" for i in range(1, 23)]
        sizes = []
        for name in names:
            q = dns.message.make_query(name, "A")
            sizes.append(len(q.to_wire()))
            assert (await query(srv.port(), name, "A")).rcode() == dns.rcode.NOERROR
        s = samples(REGISTRY.expose())
    zone = {"server": server, "zone": "batch.prom.test.", "view": ""}
    assert value(s, "coredns_dns_requests_total", **zone, proto="udp", family="1", type="A") == 22
    assert value(s, "coredns_dns_responses_total", **zone, rcode="NOERROR", plugin="whoami") == 22
    assert value(s, "coredns_dns_request_size_bytes_count", **zone, proto="udp") == 22
    assert value(s, "coredns_dns_request_size_bytes_sum", **zone, proto="udp") == sum(sizes)
    assert value(s, "coredns_dns_request_size_bytes_bucket", **zone, proto="udp", le="100") == 22
    assert value(s, "coredns_dns_response_size_bytes_count", **zone, proto="udp") == 22
    assert value(s, "coredns_dns_request_duration_seconds_count", server=server, zone="batch.prom.test.",
                 view="") == 22
    assert value(s, "coredns_dns_request_duration_seconds_sum", server=server, zone="batch.prom.test.",
                 view="") > 0
