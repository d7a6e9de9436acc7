"""cache: wire-level store and hit builder, and a running cache in front of `forward` to a real unbound
(tests/upstream.py) or to scripted upstreams (moved from tests/test_cache.py)."""

from __future__ import annotations

import re
import sys
import types

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import pytest
import trio
from conftest import query, running
from dnslib import CNAME, QTYPE, RR, SOA, A, DNSRecord
from pycoredns.plugins.cache import Cache, CacheWriter
from pycoredns.plugins.cache import metrics as cachemetrics
from pycoredns.plugins.cache.store import NOERROR, OTHERERROR, Entry, Store, analyze, record_ttls
from upstream import GarbageUpstream, Unbound

from pycoredns import directives, wire
from pycoredns.metrics import REGISTRY
from pycoredns.plugin import Controller, Handler
from pycoredns.request import Request, ResponseWriter

from .helpers import _W, Counting, _cache, _key, _reply, a_values, cache_of, entries, raw, total, ttls

# -- store and hit builder (no server) -----------------------------------------------------------


def test_store_sizes_like_coredns() -> None:
    """CoreDNS's bound: 256 shards of max(CAP/256, 4) entries, Go's truncating division."""
    assert Store(10000).capacity == 9984
    assert Store(0).capacity == 1024
    assert Store(-5).capacity == 1024
    assert Store(2048).capacity == 2048
    assert Store(2100).capacity == 2048


def test_store_is_a_hard_bound_with_random_eviction() -> None:
    s = Store(10)  # 1024 entries
    evictions = 0
    for i in range(3000):
        e = Entry(b"\x00" * 12, 12, [], 60, 0.0, True)
        evictions += s.add((b"n%d" % i, 1, 1, False, False), e)
        assert len(s) <= 1024
        assert evictions == max(0, i + 1 - 1024)  # nothing is evicted before the whole store is full
    assert len(s) == 1024 and evictions == 3000 - 1024
    # the survivors are a random mix of old and new keys, not the last 1024
    assert min(int(k[0][1:]) for k in s.entries) < 3000 - 1024
    # slots stay consistent with the key list: removal and replacement keep the bound
    for key, e in s.entries.items():
        assert s.keys[e.slot] == key
    victim = next(iter(s.entries))
    s.remove(victim)
    s.remove(victim)  # removing an absent key is a no-op
    assert len(s) == 1023 and victim not in s.keys
    for key, e in s.entries.items():
        assert s.keys[e.slot] == key
    assert not s.add(next(iter(s.entries)), Entry(b"\x00" * 12, 12, [], 60, 0.0, True))
    assert len(s) == 1023 and len(s.keys) == 1023


def test_entries_gauge_one_sample_per_label_set() -> None:
    """Two live caches with the same labels (a reload's old and new configuration): one sample per label
    set, the newer cache's count (a scrape that repeated a sample broke the text format)."""
    old, new = _cache(), _cache()
    for c in (old, new):
        c.server, c.zones_label = "dns://:5399", "gauge.test."
    for i in range(3):
        old.pcache.add((b"o%d" % i, 1, 1, False, False), Entry(b"\x00" * 12, 12, [], 60, 0.0, True))
    new.pcache.add((b"n", 1, 1, False, False), Entry(b"\x00" * 12, 12, [], 60, 0.0, True))
    cachemetrics.track(old)
    cachemetrics.track(new)
    try:
        mine = [(labels, v) for labels, v in cachemetrics.entries_gauge.fn() if labels[0] == "dns://:5399"]
        assert sorted(mine) == [(("dns://:5399", "denial", "gauge.test.", ""), 0.0),
                                (("dns://:5399", "success", "gauge.test.", ""), 1.0)]
        cachemetrics.forget(new)
        mine = [(labels, v) for labels, v in cachemetrics.entries_gauge.fn() if labels[0] == "dns://:5399"]
        assert (("dns://:5399", "success", "gauge.test.", ""), 3.0) in mine
    finally:
        cachemetrics.forget(old)
        cachemetrics.forget(new)


def test_hit_is_spliced_from_wire() -> None:
    """A hit: request id and question (its case), AA, aged uniform TTLs, no OPT, no dnslib needed."""
    c = _cache()
    q = DNSRecord.question("www.example.org", "A")
    req = Request(bytes(q.pack()))
    key = _key(req)
    soa = RR("example.org", QTYPE.SOA, rdata=SOA("ns.example.org", "h.example.org", (1, 2, 3, 4, 5)), ttl=900)
    data = _reply(q, RR("www.example.org", QTYPE.A, rdata=A("192.0.2.1"), ttl=300),
                  RR("www.example.org", QTYPE.A, rdata=A("192.0.2.2"), ttl=200), auth=(soa,), edns=True)
    out, entry, _ = c.ingest(req, key, data)
    assert entry is not None and entry.orig_ttl == 200
    assert {rr.ttl for rr in DNSRecord.parse(out).rr + DNSRecord.parse(out).auth} == {200}
    entry.stored -= 7.5  # seven whole seconds later
    q2 = DNSRecord.question("WwW.ExAmple.ORG", "A")
    q2.header.id = 4321
    req2 = Request(bytes(q2.pack()))
    w = _W()
    assert c.serve_fast(req2, w) == 0
    hit = DNSRecord.parse(w.out)
    assert hit.header.id == 4321 and hit.header.aa == 1 and hit.header.qr == 1
    assert str(hit.q.qname) == "WwW.ExAmple.ORG."
    assert [rr.ttl for rr in hit.rr + hit.auth] == [193, 193, 193]
    assert [str(rr.rdata) for rr in hit.rr] == ["192.0.2.1", "192.0.2.2"]
    assert not hit.ar  # the OPT is not stored (the server mirrors the request's)


def test_one_answer_replies_walk_as_the_general_walk() -> None:
    """A reply with one answer whose owner is a pointer (the short path of `analyze`) classifies and
    offsets as the general walk does; one that is not of the asked type, not NOERROR or cut short goes
    the general way. An entry stored from it finds its TTL offsets at its first hit."""
    q = DNSRecord.question("one.example.org", "A")
    req = Request(bytes(q.pack()))
    qend = req.qend
    data = _reply(q, RR("one.example.org", rdata=A("192.0.2.1"), ttl=60))
    assert data[qend] == 0xC0
    assert analyze(data, req) == (NOERROR, True, qend, [qend + 6], 60, 60, data)
    assert record_ttls(data, qend) == [qend + 6]
    cname = _reply(q, RR("one.example.org", QTYPE.CNAME, rdata=CNAME("two.example.org"), ttl=50))
    assert analyze(cname, req)[:6] == (OTHERERROR, True, qend, [qend + 6], 50, 50)  # a chain cut short
    nx = bytearray(data)
    nx[3] |= 3
    assert analyze(bytes(nx), req)[0] == OTHERERROR  # NXDOMAIN with an answer
    with pytest.raises(wire.WireError):
        analyze(data[:-1], req)  # the rdata overruns the message
    c = _cache(pttl=30.0)  # `cache 30`: the downstream TTL is capped
    out, e, _ = c.ingest(req, _key(req), data)
    assert e is not None and e.ttl_offsets is None and [rr.ttl for rr in DNSRecord.parse(out).rr] == [30]
    e.stored -= 3.5
    w = _W()
    assert c.serve_fast(Request(bytes(q.pack())), w) == 0
    assert [rr.ttl for rr in DNSRecord.parse(w.out).rr] == [27] and e.ttl_offsets == [qend + 6]


def test_ad_bit_stored_and_given_per_request() -> None:
    """AD is not part of the key: a non-AD first query must not freeze AD=0 into the entry (#6642)."""
    c = _cache()
    q = DNSRecord.question("ad.example.org", "A")
    req = Request(bytes(q.pack()))
    key = _key(req)
    up = bytearray(_reply(q, RR("ad.example.org", rdata=A("192.0.2.1"), ttl=60)))
    up[3] |= 0x20  # the upstream's answer is authenticated
    out, _e, _ = c.ingest(req, key, bytes(up))
    assert not out[3] & 0x20  # cleared for a client without DO/AD
    for flags, ad in ((0x0100, False), (0x0120, True)):
        q2 = DNSRecord.question("ad.example.org", "A")
        data = bytearray(q2.pack())
        data[2:4] = flags.to_bytes(2, "big")
        w = _W()
        c.serve_fast(Request(bytes(data)), w)
        assert bool(w.out[3] & 0x20) is ad


def test_question_mismatch_and_garbage_are_dropped() -> None:
    c = _cache()
    q = DNSRecord.question("a.example.org", "A")
    req = Request(bytes(q.pack()))
    key = _key(req)
    other = DNSRecord.question("b.example.org", "A")
    before = total(cachemetrics.drops_total)
    out, entry, _ = c.ingest(req, key, _reply(other, RR("b.example.org", rdata=A("192.0.2.9"))))
    assert entry is None and total(cachemetrics.drops_total) == before + 1
    out, entry, _ = c.ingest(req, key, b"\x12\x34\x81\x80\x00\x01\x00\x05garbage")
    assert entry is None and out == b"\x12\x34\x81\x80\x00\x01\x00\x05garbage"
    assert total(cachemetrics.drops_total) == before + 2
    assert len(c.pcache) == len(c.ncache) == 0


def test_classification_and_lifetimes() -> None:
    c = _cache(minpttl=0.0)
    q = DNSRecord.question("x.example.org", "A")
    req = Request(bytes(q.pack()))
    key = _key(req)
    soa = RR("example.org", QTYPE.SOA, rdata=SOA("ns.example.org", "h.example.org", (1, 2, 3, 4, 300)), ttl=40)
    # NXDOMAIN: lifetime from the SOA record's TTL (not its MINIMUM field)
    _out, e, _ = c.ingest(req, key, _reply(q, auth=(soa,), rcode=3))
    assert e is not None and not e.positive and e.orig_ttl == 40
    # a CNAME chain without the final type and without SOA is not stored (HEAD)
    cname = RR("x.example.org", QTYPE.CNAME, rdata=CNAME("y.example.org"), ttl=50)
    c2 = _cache()
    _out, e, _ = c2.ingest(req, key, _reply(q, cname))
    assert e is None and len(c2.pcache) == 0
    # ...but with an SOA it is NODATA
    _out, e, _ = c2.ingest(req, key, _reply(q, cname, auth=(soa,)))
    assert e is not None and not e.positive
    # TTL 0 is still cached for MINTTL (5 s by default); no records at all: 5 s
    c3 = _cache()
    _out, e, _ = c3.ingest(req, key, _reply(q, RR("x.example.org", rdata=A("192.0.2.1"), ttl=0)))
    assert e is not None and e.orig_ttl == 5
    _out, e, _ = c3.ingest(req, key, _reply(q))
    assert e is not None and e.positive and e.orig_ttl == 5
    # REFUSED and TC replies are not stored
    c4 = _cache()
    _out, e, _ = c4.ingest(req, key, _reply(q, rcode=5))
    assert e is None
    tc = bytearray(_reply(q, RR("x.example.org", rdata=A("192.0.2.1"), ttl=60)))
    tc[2] |= 0x02
    _out, e, _ = c4.ingest(req, key, bytes(tc))
    assert e is None and len(c4.pcache) == len(c4.ncache) == 0


def test_replies_without_records_that_are_never_stored() -> None:
    """`ingest`'s short path (a reply without records whose rcode is neither NOERROR, SERVFAIL nor
    NOTIMP: OTHERERROR without the walk) does what the general path does: nothing stored, no drop
    counted, the reply passed on as it is but for AD (kept only for DO or AD askers), `refreshed` for
    an NXDOMAIN without TC."""
    q = DNSRecord.question("nx.example.org", "A")
    drops = total(cachemetrics.drops_total)
    for asked_ad in (False, True):
        q.header.ad = asked_ad
        req = Request(bytes(q.pack()))
        for rcode in (wire.FORMERR, wire.NXDOMAIN, wire.REFUSED):
            for flags in (0, wire.AD, wire.TC, wire.AD | wire.TC):
                data = bytearray(_reply(q, rcode=rcode))
                data[2] |= flags >> 8
                data[3] |= flags & 0xFF
                assert analyze(bytes(data), req)[0] == OTHERERROR
                c = _cache()
                out, e, refreshed = c.ingest(req, _key(req), bytes(data))
                if not asked_ad:
                    data[3] &= ~wire.AD & 0xFF
                assert (out, e, refreshed) == (bytes(data), None, rcode == wire.NXDOMAIN and not flags & wire.TC)
                assert len(c.pcache) == len(c.ncache) == 0 and total(cachemetrics.drops_total) == drops
    # an echoed question in another case goes the general way, with the same outcome
    req = Request(bytes(DNSRecord.question("NX.example.org", "A").pack()))
    data = _reply(q, rcode=wire.NXDOMAIN)
    assert _cache().ingest(req, _key(req), data)[:2] == (data[:3] + bytes([data[3] & ~wire.AD & 0xFF]) + data[4:], None)


def test_servfail_does_not_hide_fresh_positive_and_positive_replaces_denial() -> None:
    c = _cache()
    q = DNSRecord.question("p.example.org", "A")
    req = Request(bytes(q.pack()))
    key = _key(req)
    c.ingest(req, key, _reply(q, RR("p.example.org", rdata=A("192.0.2.1"), ttl=60)))
    c.ingest(req, key, _reply(q, rcode=2))
    assert len(c.pcache) == 1 and len(c.ncache) == 1
    w = _W()
    c.serve_fast(Request(bytes(q.pack())), w)
    assert DNSRecord.parse(w.out).header.rcode == 0
    c.ingest(req, key, _reply(q, RR("p.example.org", rdata=A("192.0.2.2"), ttl=60)))
    assert len(c.ncache) == 0


# -- a running cache -----------------------------------------------------------------------------


async def test_whoami_hits_age_and_zones() -> None:
    """Synchronous backends are cached on the fast path; only qnames in ZONES are cached."""
    async with running(". {\n cache example.org\n whoami\n}\n") as srv:
        c = cache_of(srv)
        r1 = await query(srv.port(), "a.example.org", "A")
        assert ttls(r1) == [5, 5]  # whoami's TTL 0 is raised to MINTTL
        await trio.sleep(1.1)
        r2 = await query(srv.port(), "a.example.org", "A")
        assert ttls(r2) == [4, 4] and r2.flags & dns.flags.AA
        await query(srv.port(), "a.example.net", "A")
        assert len(c.pcache) == 1


def _mixed_ttls(data: bytes) -> list[bytes]:
    """Two A records (TTL 300 and 100) and an additional A (TTL 500) for any question."""
    q = DNSRecord.parse(data)
    r = q.reply()
    r.add_answer(RR(q.q.qname, rdata=A("192.0.2.1"), ttl=300), RR(q.q.qname, rdata=A("192.0.2.2"), ttl=100))
    r.add_ar(RR("glue.example.org", rdata=A("192.0.2.3"), ttl=500))
    return [bytes(r.pack())]


async def test_uniform_ttls_max_cap_and_ageing() -> None:
    async with GarbageUpstream(_mixed_ttls) as g:
        async with running(f". {{\n cache 30\n forward . {g.addr}\n}}\n") as srv:
            r = await query(srv.port(), "mixed.example.org", "A")
            assert [rr.ttl for rr in r.answer + r.additional] == [30, 30]  # 300/100/500 capped, uniform
        async with running(f". {{\n cache\n forward . {g.addr}\n}}\n") as srv:
            r = await query(srv.port(), "mixed.example.org", "A")
            assert [rr.ttl for rr in r.answer + r.additional] == [100, 100]  # the smallest TTL, everywhere
            await trio.sleep(1.1)
            r = await query(srv.port(), "mixed.example.org", "A")
            assert [rr.ttl for rr in r.answer + r.additional] == [99, 99] and r.flags & dns.flags.AA
    async with Unbound() as u, running(f". {{\n cache 30\n forward . {u.addr}\n}}\n") as srv:
        r = await query(srv.port(), "long.example.org", "A")  # 86400 upstream
        assert ttls(r) == [30]


async def test_ad_cleared_on_replies_never_stored() -> None:
    """The downstream query carries AD (as CoreDNS's); unbound echoes it in its AXFR/IXFR REFUSED, which
    is never stored but must still lose AD for a client that sent neither DO nor AD (found by diff)."""
    async with Unbound() as u, running(f". {{\n cache 30\n forward . {u.addr}\n}}\n") as srv:
        for qtype, tcp in (("AXFR", True), ("IXFR", False)):
            r = await query(srv.port(), "example.org", qtype, tcp=tcp)
            assert r.rcode() == dns.rcode.REFUSED and not r.flags & dns.flags.AD


async def test_minttl_and_keepttl() -> None:
    async with Unbound() as u:
        cf = f". {{\n cache {{\n success 100 3600 10\n keepttl\n }}\n forward . {u.addr}\n}}\n"
        async with running(cf) as srv:
            r = await query(srv.port(), "short.example.org", "A")  # TTL 5 raised to MINTTL 10
            assert ttls(r) == [10]
            await trio.sleep(1.1)
            r = await query(srv.port(), "short.example.org", "A")
            assert ttls(r) == [10]  # keepttl


async def test_hits_after_upstream_stopped_and_metrics() -> None:
    async with Unbound() as u, running(f". {{\n cache\n forward . {u.addr}\n}}\n") as srv:
        req0, hit0 = total(cachemetrics.requests_total), total(cachemetrics.hits_total, type="success")
        miss0 = total(cachemetrics.misses_total)
        first = await query(srv.port(), "a6.example.org", "AAAA")
        await trio.to_thread.run_sync(u.stop)
        again = await query(srv.port(), "A6.EXAMPLE.org", "AAAA")  # case-insensitive key
        assert again.rcode() == dns.rcode.NOERROR
        assert [rr.to_text() for rr in again.answer[0]] == [rr.to_text() for rr in first.answer[0]]
        assert again.answer[0].name.to_text() == "A6.EXAMPLE.org."  # the request's question case
        assert total(cachemetrics.requests_total) == req0 + 2
        assert total(cachemetrics.hits_total, type="success") == hit0 + 1
        assert total(cachemetrics.misses_total) == miss0 + 1
        assert entries("success") == 1
        text = REGISTRY.expose()
        assert re.search(r'^coredns_cache_entries\{server="[^"]*",type="success",view="",zones="\."\} 1$', text, re.M)
        assert "# TYPE coredns_cache_entries gauge" in text and "# TYPE coredns_cache_hits_total counter" in text


async def test_nxdomain_and_nodata_cached_with_soa_ttl() -> None:
    async with Unbound() as u:
        direct = await query(u.port, "nope.example.org", "A")
        soa_ttl = direct.authority[0].ttl
        async with running(f". {{\n cache\n forward . {u.addr}\n}}\n") as srv:
            r = await query(srv.port(), "nope.example.org", "A")
            assert r.rcode() == dns.rcode.NXDOMAIN and ttls(r) == [min(soa_ttl, 1800)]
            r = await query(srv.port(), "nodata.example.org", "AAAA")
            assert r.rcode() == dns.rcode.NOERROR and not r.answer and r.authority
            hits0 = total(cachemetrics.hits_total, type="denial")
            await trio.to_thread.run_sync(u.stop)
            r = await query(srv.port(), "nope.example.org", "A")
            assert r.rcode() == dns.rcode.NXDOMAIN and r.flags & dns.flags.AA
            r = await query(srv.port(), "nodata.example.org", "AAAA")
            assert r.rcode() == dns.rcode.NOERROR and not r.answer
            assert total(cachemetrics.hits_total, type="denial") == hits0 + 2
            assert entries("denial") == 2


async def test_aa_forced_on_hits_and_do_cd_separate_entries() -> None:
    up = Counting()
    async with GarbageUpstream(up) as g, running(f". {{\n cache\n forward . {g.addr}\n}}\n") as srv:
        r = await query(srv.port(), "x.example.org", "A")
        assert not r.flags & dns.flags.AA and a_values(r) == ["192.0.2.1"]
        r = await query(srv.port(), "X.example.ORG", "A")
        assert r.flags & dns.flags.AA and a_values(r) == ["192.0.2.1"] and up.n == 1
        r = await query(srv.port(), "x.example.org", "A", want_dnssec=True)
        assert a_values(r) == ["192.0.2.2"] and up.n == 2  # DO is part of the key
        r = await query(srv.port(), "x.example.org", "A", flags=dns.flags.RD | dns.flags.CD)
        assert a_values(r) == ["192.0.2.3"] and up.n == 3  # so is CD
        r = await query(srv.port(), "x.example.org", "A", want_dnssec=True)
        assert a_values(r) == ["192.0.2.2"] and up.n == 3
        assert r.flags & dns.flags.CD == 0


async def test_truncated_replies_are_not_cached() -> None:
    up = Counting(flags=0x8380)  # QR, TC, RD, RA
    async with GarbageUpstream(up) as g, running(f". {{\n cache\n forward . {g.addr}\n}}\n") as srv:
        for _ in range(2):
            data = await raw(srv.port(), dns.message.make_query("tc.example.org", "A").to_wire())
            assert data[2] & 0x02  # TC passed on
        assert up.n >= 2 and len(cache_of(srv).pcache) == 0


async def test_servfail_cached_for_servfail_duration() -> None:
    up = Counting(rcode=2, answer=False)
    cf = ". {{\n cache {{\n servfail {d}\n }}\n forward . {addr}\n}}\n"
    async with GarbageUpstream(up) as g, running(cf.format(d="30s", addr=g.addr)) as srv:
        r = await query(srv.port(), "fail.example.org", "A")
        assert r.rcode() == dns.rcode.SERVFAIL
        up.rcode, up.answer = 0, True
        r = await query(srv.port(), "fail.example.org", "A")
        assert r.rcode() == dns.rcode.SERVFAIL and r.flags & dns.flags.AA and up.n == 1
    up = Counting(rcode=2, answer=False)
    async with GarbageUpstream(up) as g, running(cf.format(d="0", addr=g.addr)) as srv:
        r = await query(srv.port(), "fail.example.org", "A")
        assert r.rcode() == dns.rcode.SERVFAIL
        up.rcode, up.answer = 0, True
        r = await query(srv.port(), "fail.example.org", "A")
        assert r.rcode() == dns.rcode.NOERROR and up.n == 2


async def test_disable_success_keeps_denial() -> None:
    async with Unbound() as u:
        cf = f". {{\n cache {{\n disable success example.org\n }}\n forward . {u.addr}\n}}\n"
        async with running(cf) as srv:
            await query(srv.port(), "a.example.org", "A")
            await query(srv.port(), "nope.example.org", "A")
            c = cache_of(srv)
            assert len(c.pcache) == 0 and len(c.ncache) == 1
    async with Unbound() as u:
        cf = f". {{\n cache {{\n disable denial\n }}\n forward . {u.addr}\n}}\n"
        async with running(cf) as srv:
            await query(srv.port(), "a.example.org", "A")
            await query(srv.port(), "nope.example.org", "A")
            c = cache_of(srv)
            assert len(c.pcache) == 1 and len(c.ncache) == 0


async def test_prefetch_single_refresh_in_background() -> None:
    up = Counting(ttl=5)
    # lifetime 5 s, threshold ceil(90% of 5) = 5: the first hit already qualifies
    cf = ". {{\n cache {{\n prefetch 1 1m 90%\n }}\n forward . {addr}\n}}\n"
    async with GarbageUpstream(up) as g, running(cf.format(addr=g.addr)) as srv:
        p0 = total(cachemetrics.prefetch_total)
        r = await query(srv.port(), "pf.example.org", "A")
        assert a_values(r) == ["192.0.2.1"]
        r = await query(srv.port(), "pf.example.org", "A")
        assert a_values(r) == ["192.0.2.1"]  # served from cache, refresh started behind it
        with trio.fail_after(3):
            while up.n < 2:
                await trio.sleep(0.02)
        with trio.fail_after(3):
            while True:
                r = await query(srv.port(), "pf.example.org", "A")
                if a_values(r) != ["192.0.2.1"]:
                    break
                await trio.sleep(0.02)
        assert a_values(r)[0].startswith("192.0.2.") and total(cachemetrics.prefetch_total) >= p0 + 1


async def test_prefetch_is_single_flight() -> None:
    up = Counting(ttl=5)
    up.silent_after = 1  # the refresh never gets an answer: it stays in flight
    cf = ". {{\n cache {{\n prefetch 1 1m 90%\n }}\n forward . {addr}\n}}\n"
    async with GarbageUpstream(up) as g, running(cf.format(addr=g.addr)) as srv:
        await query(srv.port(), "sf.example.org", "A")
        for _ in range(20):
            r = await query(srv.port(), "sf.example.org", "A")
            assert a_values(r) == ["192.0.2.1"]
        await trio.sleep(0.2)
        assert 2 <= up.n <= 3  # the miss, one refresh (and at most one retry by forward)


@pytest.mark.parametrize(("mode", "stale_ttl"), [("immediate 30s", 30), ("verify", 0)])
async def test_serve_stale_when_upstream_down(mode: str, stale_ttl: int) -> None:
    async with Unbound() as u:
        cf = f". {{\n cache 1 {{\n serve_stale 1h {mode}\n }}\n forward . {u.addr}\n}}\n"
        async with running(cf) as srv:
            r = await query(srv.port(), "a.example.org", "A")
            assert ttls(r) == [1]
            await trio.to_thread.run_sync(u.stop)
            await trio.sleep(1.1)
            s0 = total(cachemetrics.served_stale_total)
            r = await query(srv.port(), "a.example.org", "A")
            assert r.rcode() == dns.rcode.NOERROR and a_values(r) == ["192.0.2.1"]
            assert ttls(r) == [stale_ttl]  # RESPONSE_TTL
            assert total(cachemetrics.served_stale_total) == s0 + 1


async def test_serve_stale_verify_prefers_fresh_then_falls_back() -> None:
    up = Counting()
    cf = ". {{\n cache 1 {{\n serve_stale 1h verify\n }}\n forward . {addr}\n}}\n"
    async with GarbageUpstream(up) as g, running(cf.format(addr=g.addr)) as srv:
        r = await query(srv.port(), "v.example.org", "A")
        assert a_values(r) == ["192.0.2.1"]
        await trio.sleep(1.1)
        r = await query(srv.port(), "v.example.org", "A")
        assert a_values(r) == ["192.0.2.2"] and ttls(r) == [1]  # verified with the upstream first
        up.rcode, up.answer = 2, False  # now the upstream fails
        await trio.sleep(1.1)
        r = await query(srv.port(), "v.example.org", "A")
        assert a_values(r) == ["192.0.2.2"] and ttls(r) == [0]  # stale, TTL 0


async def test_serve_stale_verify_timeout() -> None:
    up = Counting()
    up.silent_after = 1
    cf = ". {{\n cache 1 {{\n serve_stale 1h verify 200ms\n }}\n forward . {addr}\n}}\n"
    async with GarbageUpstream(up) as g, running(cf.format(addr=g.addr)) as srv:
        await query(srv.port(), "vt.example.org", "A")
        await trio.sleep(1.1)
        with trio.fail_after(2):  # well before forward's own timeout
            r = await query(srv.port(), "vt.example.org", "A")
        assert a_values(r) == ["192.0.2.1"] and ttls(r) == [0]


async def test_capacity_bound_with_eviction() -> None:
    async with running(". {\n cache {\n success 10\n }\n whoami\n}\n") as srv:
        ev0 = total(cachemetrics.evictions_total, type="success")
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        with sock:
            await sock.connect(("127.0.0.1", srv.port()))
            for i in range(1500):
                q = dns.message.make_query(f"n{i}.example.org", "A")
                q.id = i
                await sock.send(q.to_wire())
                with trio.fail_after(3):
                    await sock.recv(4096)
                if i % 250 == 0:
                    assert entries("success") <= 1024
        assert entries("success") <= 1024
        assert total(cachemetrics.evictions_total, type="success") > ev0
        assert entries("success") > 900


# -- a scripted backend for replies forward would never pass on ----------------------------------


class _Backend(Handler):
    """Writes whatever `reply(req)` returns (test-only plugin)."""

    name = "cachetest_backend"
    reply = None
    calls = 0

    def serve_fast(self, req: Request, w: ResponseWriter) -> int | None:
        type(self).calls += 1
        w.write(type(self).reply(req))
        return 0


def _backend_setup(c: Controller) -> None:
    while c.next():
        pass
    c.add_handler(_Backend())


_mod = types.ModuleType("cachetest_backend")
_mod.setup = _backend_setup  # type: ignore[attr-defined]
sys.modules["cachetest_backend"] = _mod


@pytest.fixture
def backend():
    directives.register("cachetest_backend", _mod, after="whoami")
    _Backend.calls = 0
    yield _Backend


async def test_question_mismatch_not_cached_and_garbage_passed_on(backend) -> None:
    other = DNSRecord.question("other.example.org", "A")
    backend.reply = lambda req: req.wire[:2] + _reply(other, RR("other.example.org", rdata=A("192.0.2.8")))[2:]
    async with running(". {\n cache\n cachetest_backend\n}\n") as srv:
        d0 = total(cachemetrics.drops_total)
        for _ in range(2):
            data = await raw(srv.port(), dns.message.make_query("mm.example.org", "A").to_wire())
            assert b"\x05other" in data and data[3] & 0xF == 0
        assert backend.calls == 2 and total(cachemetrics.drops_total) == d0 + 2
        assert len(cache_of(srv).pcache) == 0
        # a reply that does not unpack is passed on untouched and the server keeps serving
        backend.reply = lambda req: req.wire[:2] + b"\x81\x80\x00\x01\x00\x09"
        data = await raw(srv.port(), dns.message.make_query("g.example.org", "A").to_wire())
        assert data[2:8] == b"\x81\x80\x00\x01\x00\x09"
        backend.reply = lambda req: _reply(DNSRecord.parse(req.wire), RR(req.name, rdata=A("192.0.2.7")))
        r = await query(srv.port(), "ok.example.org", "A")
        assert a_values(r) == ["192.0.2.7"]


async def test_non_query_opcodes_pass_through(backend) -> None:
    backend.reply = lambda req: _reply(DNSRecord.parse(req.wire), RR(req.name, rdata=A("192.0.2.7")))
    async with running(". {\n cache\n cachetest_backend\n}\n") as srv:
        await query(srv.port(), "n.example.org", "A")
        await query(srv.port(), "n.example.org", "A")
        assert backend.calls == 1
        notify = dns.message.make_query("n.example.org", "A")
        notify.set_opcode(dns.opcode.NOTIFY)
        data = await raw(srv.port(), notify.to_wire())
        assert backend.calls == 2 and (data[2] >> 3) & 0xF == dns.opcode.NOTIFY


def test_cache_writer_passes_dnslib_replies() -> None:
    """Plugins may write dnslib records: the miss writer stores and forwards bytes with uniform TTLs."""
    c = _cache()
    q = DNSRecord.question("d.example.org", "A")
    req = Request(bytes(q.pack()))
    key = _key(req)
    inner = _W()
    rec = q.reply()
    rec.add_answer(RR("d.example.org", rdata=A("192.0.2.1"), ttl=100))
    rec.add_answer(RR("d.example.org", rdata=A("192.0.2.2"), ttl=50))
    CacheWriter(inner, c, req, key).write(rec)
    assert [rr.ttl for rr in DNSRecord.parse(inner.out).rr] == [50, 50]
    assert len(c.pcache) == 1


# -- refresh logic with a scripted next handler (no sockets) -------------------------------------


class _Next(Handler):
    """The rest of the chain: writes `replies` in turn (None: fails with a PluginError)."""

    name = "next"

    def __init__(self, replies: list) -> None:
        self.replies = replies
        self.calls = 0

    async def serve_dns(self, req: Request, w: ResponseWriter) -> int:
        self.calls += 1
        reply = self.replies[min(self.calls, len(self.replies)) - 1]
        if reply is None:
            from pycoredns.plugin import PluginError

            raise PluginError(wire.SERVFAIL, "upstream down")
        w.write(reply(req) if callable(reply) else reply)
        return 0


def _stale_setup(nursery: trio.Nursery, replies: list, **opts) -> tuple[Cache, _Next, DNSRecord]:
    c = _cache(stale_up_to=10.0, **opts)
    c.instance = types.SimpleNamespace(nursery=nursery)
    c.next = _Next(replies)
    return c, c.next, DNSRecord.question("s.example.org", "A")


async def _settle() -> None:
    for _ in range(20):
        await trio.sleep(0)


async def test_stale_window_single_refresh_and_failure_recheck() -> None:
    async with trio.open_nursery() as n:
        c, nxt, q = _stale_setup(n, [None], failure_recheck=5.0)
        req = Request(bytes(q.pack()))
        key = _key(req)
        _out, e, _ = c.ingest(req, key, _reply(q, RR("s.example.org", rdata=A("192.0.2.1"), ttl=60)))
        e.stored -= 63  # expired 3 s ago: within the 10 s stale window
        for _ in range(3):
            w = _W()
            assert c.serve_fast(Request(bytes(q.pack())), w) == 0
            assert [rr.ttl for rr in DNSRecord.parse(w.out).rr] == [0]
        await _settle()
        assert nxt.calls == 1 and e.failed_at > 0  # one refresh, failed
        w = _W()
        c.serve_fast(Request(bytes(q.pack())), w)
        await _settle()
        assert nxt.calls == 1  # within FAILURE_RECHECK: no new attempt
        e.stored -= 20  # now beyond the stale window: a miss, completed by the chain below (PENDING)
        from pycoredns.plugin import PENDING

        assert c.serve_fast(Request(bytes(q.pack())), _W()) is PENDING
        await _settle()
        assert nxt.calls == 2  # the miss went down the chain once, with the decision made by the fast path


async def _stale_refresh_then_hit(c, nxt, q) -> DNSRecord:
    """Store an A 192.0.2.1 answer for `q`, age it past its TTL, ask once (served stale while the chain
    below refreshes it, exactly once), then ask again and return that reply."""
    req = Request(bytes(q.pack()))
    key = _key(req)
    _out, e, _ = c.ingest(req, key, _reply(q, RR("s.example.org", rdata=A("192.0.2.1"), ttl=60)))
    e.stored -= 61
    c.serve_fast(Request(bytes(q.pack())), _W())
    await _settle()
    assert nxt.calls == 1
    w = _W()
    c.serve_fast(Request(bytes(q.pack())), w)
    return DNSRecord.parse(w.out)


async def test_immediate_refresh_replaces_stale_entry() -> None:
    async with trio.open_nursery() as n:

        def answer(req: Request) -> bytes:
            return _reply(DNSRecord.parse(req.wire), RR("s.example.org", rdata=A("192.0.2.2"), ttl=60))

        c, nxt, q = _stale_setup(n, [answer])
        hit = await _stale_refresh_then_hit(c, nxt, q)
        assert [str(rr.rdata) for rr in hit.rr] == ["192.0.2.2"] and hit.rr[0].ttl == 60


@pytest.mark.parametrize("prefer_positive", [False, True])
async def test_serve_stale_policy_prefer_positive(prefer_positive: bool) -> None:
    soa = RR("example.org", QTYPE.SOA, rdata=SOA("ns.example.org", "h.example.org", (1, 2, 3, 4, 5)), ttl=30)

    def nxdomain(req: Request) -> bytes:
        return _reply(DNSRecord.parse(req.wire), auth=(soa,), rcode=3)

    async with trio.open_nursery() as n:
        c, nxt, q = _stale_setup(n, [nxdomain], prefer_positive=prefer_positive)
        hit = await _stale_refresh_then_hit(c, nxt, q)
        if prefer_positive:  # the last-known-good answer keeps being served
            assert hit.header.rcode == 0 and [str(rr.rdata) for rr in hit.rr] == ["192.0.2.1"]
        else:
            assert hit.header.rcode == 3 and not hit.rr


async def test_tcp_hits() -> None:
    async with Unbound() as u, running(f". {{\n cache\n forward . {u.addr}\n}}\n") as srv:
        first = await query(srv.port(), "many.example.org", "A", tcp=True)
        await trio.to_thread.run_sync(u.stop)
        again = await query(srv.port(), "many.example.org", "A", tcp=True)
        assert len(again.answer[0]) == 20 and a_values(again) == a_values(first)
        assert again.flags & dns.flags.AA
