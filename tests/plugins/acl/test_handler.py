"""acl: allow, block (EDE 15), filter (EDE 17) and drop through a running server; metrics."""

from __future__ import annotations

import socket

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import pytest
from conftest import query, running

from pycoredns import metrics


def _ede(r) -> list[int]:
    return [int(e.code) for e in r.extended_errors()]


def _count(name: str, *labels: str) -> float:
    return metrics.REGISTRY.metrics[name].get(*labels)


def _have_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


async def test_block_and_filter_with_ede():
    cf = "example.org {\n acl {\n  block type A\n  filter type MX net 127.0.0.0/8\n }\n whoami\n}\n"
    async with running(cf) as srv:
        server = srv.instance.first_listener().label
        before = _count("coredns_acl_blocked_requests_total", server, "example.org.", "")
        r = await query(srv.port(), "www.example.org", "A")
        assert r.rcode() == dns.rcode.REFUSED
        assert not r.answer and not r.additional
        assert r.edns == 0 and r.payload == 4096 and r.ednsflags & dns.flags.DO
        assert _ede(r) == [15]
        assert _count("coredns_acl_blocked_requests_total", server, "example.org.", "") == before + 1
        # the client's EDNS size wins over the plugin's OPT; DO stays (CoreDNS SizeAndDo keeps 0xff00)
        r = await query(srv.port(), "www.example.org", "A", use_edns=0, payload=1232)
        assert r.rcode() == dns.rcode.REFUSED and r.payload == 1232 and r.ednsflags & dns.flags.DO
        assert _ede(r) == [15]
        r = await query(srv.port(), "www.example.org", "MX", tcp=True)
        assert r.rcode() == dns.rcode.NOERROR and not r.answer
        assert _ede(r) == [17]
        # other types go on to whoami
        allowed = _count("coredns_acl_allowed_requests_total", server, "")
        r = await query(srv.port(), "www.example.org", "AAAA")
        assert r.rcode() == dns.rcode.NOERROR and r.additional and not _ede(r)
        assert _count("coredns_acl_allowed_requests_total", server, "") == allowed + 1


async def test_drop_sends_nothing_and_server_keeps_serving():
    cf = ". {\n acl {\n  drop type TXT\n }\n whoami\n}\n"
    async with running(cf) as srv:
        server = srv.instance.first_listener().label
        before = _count("coredns_acl_dropped_requests_total", server, ".", "")
        with pytest.raises(dns.exception.Timeout):
            await query(srv.port(), "example.org", "TXT", timeout=0.3)
        assert _count("coredns_acl_dropped_requests_total", server, ".", "") == before + 1
        r = await query(srv.port(), "example.org", "A")
        assert r.rcode() == dns.rcode.NOERROR and r.additional


async def test_rule_order_networks_and_zones():
    cf = (". {\n"
          " acl sub.example.org {\n  allow net 127.0.0.1\n  block\n }\n"
          " acl other.example.org {\n  block net 10.0.0.0/8 192.168.0.0/16\n }\n"
          " acl {\n  block type AAAA net 127.0.0.0/24\n  allow\n }\n"
          " whoami\n}\n")
    async with running(cf) as srv:
        # first rule: allowed, stops checking (the third rule would block AAAA)
        r = await query(srv.port(), "a.sub.example.org", "AAAA")
        assert r.rcode() == dns.rcode.NOERROR and r.additional
        # second rule: network does not match; third rule blocks AAAA from 127.0.0.0/24
        r = await query(srv.port(), "other.example.org", "AAAA")
        assert r.rcode() == dns.rcode.REFUSED
        r = await query(srv.port(), "other.example.org", "A")
        assert r.rcode() == dns.rcode.NOERROR
        # a client outside the sub.example.org allow-list is blocked by its catch-all
        q = dns.message.make_query("a.sub.example.org", "A")
        r = await dns.asyncquery.udp(q, "127.0.0.1", timeout=3, port=srv.port(), source="127.0.0.2")
        assert r.rcode() == dns.rcode.REFUSED and _ede(r) == [15]


@pytest.mark.skipif(not _have_ipv6(), reason="no IPv6 loopback")
async def test_ipv6_client():
    cf = ". {\n bind ::1\n acl {\n  block net ::1\n }\n whoami\n}\n"
    async with running(cf) as srv:
        r = await query(srv.port(), "example.org", "A", host="::1")
        assert r.rcode() == dns.rcode.REFUSED


async def test_networks_from_file(tmp_path):
    f = tmp_path / "nets"
    f.write_text("# blocked\n127.0.0.0/8  # loopback\n\n")
    async with running(f". {{\n acl {{\n  block file {f}\n }}\n whoami\n}}\n") as srv:
        r = await query(srv.port(), "example.org", "A")
        assert r.rcode() == dns.rcode.REFUSED
