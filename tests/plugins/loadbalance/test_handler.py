"""loadbalance on wire bytes for every layout CoreDNS produces: records move whole, pointers follow."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rrset
from pycoredns.plugins.loadbalance import LoadBalance


def _records(data: bytes) -> list[str]:
    m = dns.message.from_wire(data)
    return sorted(line for s in m.answer + m.authority + m.additional for line in s.to_text().splitlines())


def _sections(data: bytes) -> list[list[str]]:
    m = dns.message.from_wire(data)
    return [[line for s in sec for line in s.to_text().splitlines()] for sec in (m.answer, m.authority, m.additional)]


def _cname_chain() -> bytes:
    """An upstream-style compressed reply: a CNAME chain, addresses, NS with glue pointing into the NS rdata."""
    q = dns.message.make_query("www.example.org", "A", use_edns=0)
    r = dns.message.make_response(q)
    r.answer.append(dns.rrset.from_text("www.example.org.", 60, "IN", "CNAME", "a.example.net."))
    r.answer.append(dns.rrset.from_text("a.example.net.", 60, "IN", "CNAME", "b.example.net."))
    r.answer.append(dns.rrset.from_text("b.example.net.", 60, "IN", "A", *[f"192.0.2.{i}" for i in range(1, 6)]))
    r.authority.append(dns.rrset.from_text("example.net.", 60, "IN", "NS", "ns1.example.net.", "ns2.example.net."))
    r.additional.append(dns.rrset.from_text("ns1.example.net.", 60, "IN", "A", "198.51.100.1", "198.51.100.2"))
    r.additional.append(dns.rrset.from_text("ns2.example.net.", 60, "IN", "AAAA", "2001:db8::3"))
    return r.to_wire()


def _headless_srv(n: int = 10) -> bytes:
    q = dns.message.make_query("_http._tcp.h.ns.svc.cluster.local", "SRV")
    r = dns.message.make_response(q)
    r.answer.append(dns.rrset.from_text(q.question[0].name, 30, "IN", "SRV",
                                        *[f"0 10 80 h-{i}.h.ns.svc.cluster.local." for i in range(n)]))
    for i in range(n):
        r.additional.append(dns.rrset.from_text(f"h-{i}.h.ns.svc.cluster.local.", 30, "IN", "A", f"10.0.0.{i}"))
    return r.to_wire()  # glue owners compressed into the SRV targets


def test_cname_chain_and_glue_shuffle_with_pointers_kept():
    data = _cname_chain()
    lb = LoadBalance([])
    seen = set()
    for _ in range(100):
        out = lb.reorder(data)
        assert isinstance(out, bytes) and len(out) == len(data)
        assert _records(out) == _records(data)  # every name still reads right after the move
        answer = _sections(out)[0]
        assert [x.split()[3] for x in answer[:2]] == ["CNAME", "CNAME"]  # CNAMEs first, in order
        seen.add(out)
    assert len(seen) > 10


def test_headless_srv_shuffles_glue_only():
    data = _headless_srv()
    lb = LoadBalance([])
    orders = set()
    for _ in range(50):
        out = lb.reorder(data)
        assert isinstance(out, bytes)
        assert _records(out) == _records(data)
        answer, _auth, extra = _sections(out)
        assert answer == _sections(data)[0]  # SRV order is kept (CoreDNS shuffles A/AAAA/MX only)
        orders.add(tuple(extra))
    assert len(orders) > 5


def test_opt_in_the_middle_and_prefer():
    q = dns.message.make_query("x.example.org", "A", use_edns=0)
    r = dns.message.make_response(q)
    r.answer.append(dns.rrset.from_text("x.example.org.", 60, "IN", "A", "10.0.0.1", "192.168.1.1", "10.0.0.2"))
    r.additional.append(dns.rrset.from_text("ns.example.org.", 60, "IN", "A", "10.9.9.9", "192.168.9.9"))
    data = r.to_wire()  # OPT last; after loadbalance's "rest before addresses" it sits before the glue
    lb = LoadBalance([(4, 0xC0A80000, 0xFFFF0000)])
    for _ in range(20):
        out = lb.reorder(data)
        assert _records(out) == _records(data)
        answer, _auth, extra = _sections(out)
        assert answer[0].endswith("192.168.1.1")
        assert extra[0].endswith("192.168.9.9")
        assert dns.message.from_wire(out).edns == 0


def test_garbage_passes_unchanged():
    data = _headless_srv()
    lb = LoadBalance([])
    for cut in (13, 40, 200, len(data) - 3):
        assert lb.reorder(data[:cut]) == data[:cut]


def test_reordering_never_makes_a_pointer_point_forward() -> None:
    """Glue compressed against the record before it (as dnslib or miekg pack A then AAAA for one name):
    moving them apart would leave a forward pointer, which dnspython and RFC 1035 refuse; such a reply
    keeps its order (found by the differential run)."""
    q = dns.message.make_query("_http._tcp.svc.example.", "SRV")
    r = dns.message.make_response(q)
    r.answer.append(dns.rrset.from_text("_http._tcp.svc.example.", 30, "IN", "SRV", "0 50 80 t.svc.example."))
    r.additional.append(dns.rrset.from_text("t.svc.example.", 30, "IN", "A", "10.0.0.1"))
    r.additional.append(dns.rrset.from_text("t.svc.example.", 30, "IN", "AAAA", "fd00::1"))
    data = r.to_wire()  # the AAAA's owner is a pointer to the A's
    lb = LoadBalance([])
    for _ in range(20):
        out = lb.reorder(data)
        assert sorted(_records(out)) == sorted(_records(data))
        dns.message.from_wire(out)  # raises on a forward pointer


def test_truncation_reuses_the_permuted_layout():
    """The server truncates loadbalance's output with the layout permute() computed: same cut as a fresh walk."""
    from pycoredns.truncation import truncate

    data = _headless_srv(30)
    lb = LoadBalance([])
    for _ in range(20):
        out = lb.reorder(data)
        fresh = truncate(bytes(bytearray(out)), 512)  # a copy: walked again
        assert truncate(out, 512) == fresh
        m = dns.message.from_wire(fresh)
        assert m.flags & dns.flags.TC and sum(len(s) for s in m.additional) == 0


def test_no_shuffle_when_the_truncation_drops_every_movable_record():
    """Headless SRV without EDNS: the SRV answers alone overflow 512 bytes, so the truncation keeps none
    of the glue the shuffle would move; the reply goes on unshuffled and is cut the same way."""
    from pycoredns.truncation import truncate

    data = _headless_srv(30)
    lb = LoadBalance([])
    assert lb.reorder(data, size=512) is data
    cut = truncate(data, 512)
    assert all(truncate(bytes(bytearray(lb.reorder(data))), 512) == cut for _ in range(10))
    assert len({lb.reorder(data, size=4096) for _ in range(20)}) > 1  # the reply fits: shuffled


def test_recent_opt_matches_a_walk():
    """The server's OPT normalisation finds the OPT of loadbalance's output without walking it again."""
    from pycoredns import wire
    from pycoredns.layout import recent_opt

    lb = LoadBalance([])
    for data in (_cname_chain(), _headless_srv()):
        for _ in range(10):
            out = lb.reorder(data)
            assert recent_opt(out) == wire.rr_layout(bytes(bytearray(out)))[2]
    assert recent_opt(bytes(bytearray(out))) is None  # another message: the caller walks it
