"""local through a running server, checked with dnspython (answers observed on CoreDNS 1.14.7)."""

from __future__ import annotations

import dns.flags
import dns.rcode
from conftest import query, running

from pycoredns import metrics

COREFILE = ". {\n local\n whoami\n}\n"
SOA = "604800 IN SOA localhost. root.localhost. 1 0 0 0 604800"


def texts(section) -> list[str]:
    return [line for rrset in section for line in rrset.to_text().splitlines()]


async def test_localhost_apex() -> None:
    async with running(COREFILE) as srv:
        r = await query(srv.port(), "localhost.", "A")
        assert r.rcode() == dns.rcode.NOERROR
        assert not r.flags & dns.flags.AA  # SetReply only, as CoreDNS
        assert texts(r.answer) == ["localhost. 604800 IN A 127.0.0.1"]
        r = await query(srv.port(), "LocalHost.", "AAAA")
        assert texts(r.answer) == ["LocalHost. 604800 IN AAAA ::1"]
        r = await query(srv.port(), "localhost.", "MX")
        assert r.answer == [] and texts(r.authority) == [f"localhost. {SOA}"]
        r = await query(srv.port(), "localhost.", "NS")
        assert texts(r.answer) == ["localhost. 604800 IN NS localhost."]


async def test_reverse_zones() -> None:
    async with running(COREFILE) as srv:
        r = await query(srv.port(), "1.0.0.127.in-addr.arpa.", "PTR")
        assert texts(r.answer) == ["1.0.0.127.in-addr.arpa. 604800 IN PTR localhost."]
        r = await query(srv.port(), "1.0.0.127.in-addr.arpa.", "A")
        assert r.rcode() == dns.rcode.NOERROR and texts(r.authority) == [f"127.in-addr.arpa. {SOA}"]
        r = await query(srv.port(), "2.0.0.127.in-addr.arpa.", "PTR")
        assert r.rcode() == dns.rcode.NXDOMAIN and texts(r.authority) == [f"127.in-addr.arpa. {SOA}"]
        r = await query(srv.port(), "127.in-addr.arpa.", "A")
        assert r.rcode() == dns.rcode.NOERROR and texts(r.authority) == [f"127.in-addr.arpa. {SOA}"]
        r = await query(srv.port(), "x.255.in-addr.arpa.", "A")
        assert r.rcode() == dns.rcode.NXDOMAIN and texts(r.authority) == [f"255.in-addr.arpa. {SOA}"]


async def test_localhost_subdomains_and_prefix() -> None:
    before = metrics.REGISTRY.metrics["coredns_local_localhost_requests_total"].get()
    async with running(COREFILE) as srv:
        r = await query(srv.port(), "foo.localhost.", "A")
        assert texts(r.answer) == ["foo.localhost. 604800 IN A 127.0.0.1"]
        r = await query(srv.port(), "foo.localhost.", "TXT")
        assert texts(r.authority) == [f"foo.localhost. {SOA}"]
        r = await query(srv.port(), "localhost.example.org.", "A")
        assert texts(r.answer) == ["localhost.example.org. 604800 IN A 127.0.0.1"]
        r = await query(srv.port(), "example.org.", "A")  # not ours: whoami answers
        assert r.answer == [] and r.flags & dns.flags.AA
    assert metrics.REGISTRY.metrics["coredns_local_localhost_requests_total"].get() == before + 3


async def test_prefix_off() -> None:
    async with running(". {\n local {\n  localhost_prefix off\n }\n whoami\n}\n") as srv:
        r = await query(srv.port(), "localhost.example.org.", "A")
        assert r.answer == [] and len(r.additional) == 2  # whoami's
        r = await query(srv.port(), "a.localhost.", "A")
        assert texts(r.answer) == ["a.localhost. 604800 IN A 127.0.0.1"]
