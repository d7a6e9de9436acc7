"""dns64 over a file zone through a running server (answers observed on CoreDNS 1.14.7)."""

from __future__ import annotations

import ipaddress
import socket
import struct

import dns.flags
import dns.rcode
import pytest
from conftest import query, running
from pycoredns.plugins.dns64.handler import DNS64
from pycoredns.plugins.dns64.metrics import translated_total

from pycoredns import wire
from pycoredns.plugin import PluginError, Request
from pycoredns.testing import Fails, Later, Static, chain, make_request, run_both

ZONE = """$TTL 300
@ IN SOA ns admin 1 7200 3600 1209600 120
  IN NS ns
ns A 192.0.2.53
v4 A 192.0.2.1
v4 A 192.0.2.2
both A 192.0.2.3
both AAAA 2001:db8::3
alias CNAME v4
"""
NS = ["example.org. 300 IN NS ns.example.org."]


def texts(section) -> list[str]:
    return [line for rrset in section for line in rrset.to_text().splitlines()]


def corefile(tmp_path, options: str) -> str:
    (tmp_path / "db").write_text(ZONE)
    return f"example.org {{\n dns64 {options}\n file {tmp_path / 'db'}\n}}\n"


async def test_synthesis(tmp_path) -> None:
    before = sum(translated_total.values.values())
    async with running(corefile(tmp_path, "{\n  allow_ipv4\n }")) as srv:
        r = await query(srv.port(), "v4.example.org.", "AAAA")
        assert not r.flags & dns.flags.AA  # a fresh SetReply, as CoreDNS
        assert texts(r.answer) == ["v4.example.org. 300 IN AAAA 64:ff9b::c000:201",
                                   "v4.example.org. 300 IN AAAA 64:ff9b::c000:202"]
        assert texts(r.authority) == NS
        r = await query(srv.port(), "alias.example.org.", "AAAA")
        assert texts(r.answer) == ["alias.example.org. 300 IN CNAME v4.example.org.",
                                   "v4.example.org. 300 IN AAAA 64:ff9b::c000:201",
                                   "v4.example.org. 300 IN AAAA 64:ff9b::c000:202"]
        r = await query(srv.port(), "both.example.org.", "AAAA")  # has AAAA: unchanged
        assert texts(r.answer) == ["both.example.org. 300 IN AAAA 2001:db8::3"] and r.flags & dns.flags.AA
        r = await query(srv.port(), "nope.example.org.", "AAAA")
        assert r.rcode() == dns.rcode.NXDOMAIN
        r = await query(srv.port(), "example.org.", "AAAA")  # no A either: empty, authority from the A lookup
        assert r.answer == [] and r.rcode() == dns.rcode.NOERROR
    assert sum(translated_total.values.values()) - before == 3


async def test_prefix_and_translate_all(tmp_path) -> None:
    opts = "{\n  prefix 2001:db8:1::/48\n  translate_all\n  allow_ipv4\n }"
    async with running(corefile(tmp_path, opts)) as srv:
        r = await query(srv.port(), "both.example.org.", "AAAA")
        assert texts(r.answer) == ["both.example.org. 300 IN AAAA 2001:db8:1:c000:2:300::"]


async def test_prefix_argument_skips_the_block(tmp_path) -> None:
    """CoreDNS's parse `continue`s after a PREFIX argument: the block's options are not applied."""
    async with running(corefile(tmp_path, "2001:db8:1::/48 {\n  translate_all\n  allow_ipv4\n }")) as srv:
        r = await query(srv.port(), "both.example.org.", "AAAA")
        assert texts(r.answer) == ["both.example.org. 300 IN AAAA 2001:db8::3"]


def _has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


async def test_ipv4_clients_only_with_allow_ipv4(tmp_path) -> None:
    async with running(corefile(tmp_path, "")) as srv:
        r = await query(srv.port(), "v4.example.org.", "AAAA")
        assert r.answer == [] and r.flags & dns.flags.AA  # file's NODATA, untouched
        if not _has_ipv6():
            pytest.skip("no IPv6 loopback")
        r = await query(srv.port(), "v4.example.org.", "AAAA", host="::1")
        assert len(r.answer[0]) == 2


def _dns64() -> DNS64:
    return DNS64(ipaddress.IPv6Network("64:ff9b::/96"), translate_all=False, allow_ipv4=True, server="dns://:53")


def _aaaa(req: Request) -> bytes:
    rr = b"\xc0\x0c" + struct.pack(">HHIH", wire.TYPE_AAAA, 1, 300, 16) + ipaddress.IPv6Address("2001:db8::1").packed
    return req.reply_header(an=1) + req.question + rr


BELOW = {  # what the rest of the chain does, and the outcome dns64 gives (no listener: no A lookup)
    "sync-aaaa": (lambda: Static(_aaaa), wire.NOERROR, None),
    "pending-aaaa": (lambda: Later(_aaaa), wire.NOERROR, None),
    "sync-nodata": (lambda: Static(lambda r: r.empty_reply(wire.NOERROR)), wire.SERVFAIL, None),
    "pending-nodata": (lambda: Later(lambda r: r.empty_reply(wire.NOERROR)), wire.SERVFAIL, None),
    "sync-error": (lambda: Fails(wire.SERVFAIL, "upstream down"), wire.SERVFAIL, "upstream down"),
    "pending-error": (lambda: Later(None, error=PluginError(wire.REFUSED, "upstream down")), wire.REFUSED,
                      "upstream down"),
}


@pytest.mark.parametrize("below", sorted(BELOW))
async def test_paths_agree(below: str) -> None:
    """The fast path (the chain below answering at once or by continuation) and serve_dns agree: an
    AAAA answer passes unchanged, a NODATA needs the A lookup (SERVFAIL: a request from no server has
    none, as CoreDNS's failed Upstream.Lookup), an error below goes up unchanged with nothing written."""
    make, rcode, error = BELOW[below]
    result = await run_both(lambda: chain(_dns64(), make()), make_request("a.example.org.", "AAAA"))
    assert result.rcode == rcode and (str(result.error) if result.error else None) == error
    if below.endswith("aaaa"):
        assert [str(rr.rdata) for rr in result.message.rr] == ["2001:db8::1"]


@pytest.mark.parametrize("qname", [b"\x02V4\x07Example\x03ORG\x00", b"\x02a.\x00", b"\x03a\\.\x01B\x00",
                                   b"\x04\xff\x00 (\x00", b"\x00"])
def test_a_lookup_asks_the_lowercased_name(qname: bytes) -> None:
    """The A lookup asks the query's lowercased name (CoreDNS's req.Name()) by its wire form: the same
    name the text form gives, escaped dots, backslashes and octets included (an escaped final dot too)."""
    req = Request(struct.pack(">HHHHHH", 7, 0x0100, 1, 0, 0, 0) + qname + struct.pack(">HH", wire.TYPE_AAAA, 1))
    by_wire = req.copy_with(wire_qname=req.qname_wire, qtype=wire.TYPE_A)
    by_text = req.copy_with(qname=req.name, qtype=wire.TYPE_A)
    assert by_wire.wire == by_text.wire and by_wire.qname_wire == qname.lower()
