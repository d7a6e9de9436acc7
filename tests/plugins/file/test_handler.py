"""file through a running server (every expectation was observed on CoreDNS 1.14.7 with this zone)."""

from __future__ import annotations

import os

import dns.flags
import dns.rcode
import trio
from conftest import query, running
from pycoredns.plugins.file.handler import File, ZoneSlot
from pycoredns.plugins.file.zone import Zone

from pycoredns.testing import Fails, chain, make_request, run_both
from pycoredns.util import Fallthrough

from .zones import NS, SOA, texts, write_zone


def corefile(path, options: str = "") -> str:
    return f"example.org {{\n file {path} {{\n{options} }}\n}}\nexample.net {{\n whoami\n}}\n"


async def test_apex_answers(tmp_path) -> None:
    async with running(corefile(write_zone(tmp_path))) as srv:
        r = await query(srv.port(), "example.org.", "SOA")
        assert r.flags & dns.flags.AA and texts(r.answer) == [SOA] and texts(r.authority) == NS
        r = await query(srv.port(), "example.org.", "NS")
        assert texts(r.answer) == NS and texts(r.additional) == ["ns1.example.org. 3600 IN A 192.0.2.53"]
        r = await query(srv.port(), "example.org.", "MX")
        assert texts(r.answer) == ["example.org. 3600 IN MX 10 mail.example.org.",
                                   "example.org. 3600 IN MX 20 mail2.example.net."]
        assert texts(r.additional) == ["mail.example.org. 3600 IN A 192.0.2.25",
                                       "mail.example.org. 3600 IN AAAA 2001:db8::25"]
        r = await query(srv.port(), "example.org.", "A")
        assert r.rcode() == dns.rcode.NOERROR and r.answer == [] and texts(r.authority) == [SOA]


async def test_names_cnames_and_denials(tmp_path) -> None:
    async with running(corefile(write_zone(tmp_path))) as srv:
        r = await query(srv.port(), "WEB.example.org.", "AAAA")
        assert texts(r.answer) == ["web.example.org. 3600 IN AAAA 2001:db8::10"]  # stored (lowercase) owner
        r = await query(srv.port(), "chain.example.org.", "A")
        assert texts(r.answer) == ["chain.example.org. 3600 IN CNAME www.example.org.",
                                   "www.example.org. 300 IN CNAME web.example.org.",
                                   "web.example.org. 3600 IN A 192.0.2.10"]
        assert texts(r.authority) == NS
        r = await query(srv.port(), "www.example.org.", "CNAME")
        assert texts(r.answer) == ["www.example.org. 300 IN CNAME web.example.org."]
        r = await query(srv.port(), "nope.example.org.", "A")
        assert r.rcode() == dns.rcode.NXDOMAIN and texts(r.authority) == [SOA]
        r = await query(srv.port(), "web.example.org.", "MX")
        assert r.rcode() == dns.rcode.NOERROR and r.answer == [] and texts(r.authority) == [SOA]
        r = await query(srv.port(), "c.example.org.", "A")  # empty non-terminal
        assert r.rcode() == dns.rcode.NOERROR and texts(r.authority) == [SOA]
        r = await query(srv.port(), "included.example.org.", "A")
        assert texts(r.answer) == ["included.example.org. 60 IN A 192.0.2.123"]
        r = await query(srv.port(), "_sip._tcp.example.org.", "SRV")
        assert texts(r.additional) == ["sip.example.org. 3600 IN A 192.0.2.60"]


async def test_cname_out_of_zone_resolved_through_the_server(tmp_path) -> None:
    async with running(corefile(write_zone(tmp_path))) as srv:
        r = await query(srv.port(), "ext.example.org.", "A")
        # whoami answers www.example.net with no answer: NODATA, so the authority is the SOA
        assert texts(r.answer) == ["ext.example.org. 3600 IN CNAME www.example.net."]
        assert texts(r.authority) == [SOA]


async def test_cname_out_of_zone_paths_agree(tmp_path) -> None:
    """The out-of-zone lookup by continuation (serve_fast) and through serve_dns give the same reply; a
    request from no server has no lookup (CoreDNS's nil Upstream reply: Success, the CNAME alone)."""
    slot = ZoneSlot("example.org.", str(write_zone(tmp_path)))
    slot.zone = Zone.load("example.org.", slot.path)
    result = await run_both(lambda: chain(File({"example.org.": slot}, Fallthrough(None)), Fails()),
                            make_request("ext.example.org.", "A"))
    assert result.rcode == dns.rcode.NOERROR and result.error is None
    assert [str(rr.rdata) for rr in result.message.rr] == ["www.example.net."]


async def test_wildcards(tmp_path) -> None:
    async with running(corefile(write_zone(tmp_path))) as srv:
        r = await query(srv.port(), "foo.wild.example.org.", "TXT")
        assert texts(r.answer) == ['foo.wild.example.org. 3600 IN TXT "hello" "two"']
        r = await query(srv.port(), "a.foo.wild.example.org.", "A")
        assert texts(r.answer) == ["a.foo.wild.example.org. 3600 IN A 192.0.2.77"]
        r = await query(srv.port(), "foo.wild.example.org.", "AAAA")
        assert r.answer == [] and texts(r.authority) == [SOA]


async def test_delegation_with_glue(tmp_path) -> None:
    async with running(corefile(write_zone(tmp_path))) as srv:
        for name in ("sub.example.org.", "x.sub.example.org."):
            r = await query(srv.port(), name, "A")
            assert not r.flags & dns.flags.AA and r.answer == []
            assert texts(r.authority) == ["sub.example.org. 3600 IN NS ns.sub.example.org."]
            assert texts(r.additional) == ["ns.sub.example.org. 3600 IN A 192.0.2.99"]
        r = await query(srv.port(), "sub.example.org.", "DS")  # the parent side answers DS itself
        assert r.flags & dns.flags.AA and texts(r.authority) == [SOA]


async def test_axfr_is_refused_without_transfer(tmp_path) -> None:
    async with running(corefile(write_zone(tmp_path))) as srv:
        r = await query(srv.port(), "example.org.", "AXFR", tcp=True)
        assert r.rcode() == dns.rcode.REFUSED


async def test_fallthrough(tmp_path) -> None:
    cf = f"example.org {{\n file {write_zone(tmp_path)} {{\n  fallthrough\n }}\n whoami\n}}\n"
    async with running(cf) as srv:
        r = await query(srv.port(), "nope.example.org.", "A")
        assert r.rcode() == dns.rcode.NOERROR and len(r.additional) == 2  # whoami's


async def test_reload_on_serial_change(tmp_path) -> None:
    path = write_zone(tmp_path)
    async with running(corefile(path, "  reload 50ms\n")) as srv:
        r = await query(srv.port(), "new.example.org.", "A")
        assert r.rcode() == dns.rcode.NXDOMAIN
        write_zone(tmp_path, serial=2024010102, extra="new A 192.0.2.200\n")
        for _ in range(100):  # bounded: 100 x 50 ms
            await trio.sleep(0.05)
            r = await query(srv.port(), "new.example.org.", "A")
            if r.answer:
                break
        assert texts(r.answer) == ["new.example.org. 3600 IN A 192.0.2.200"]


async def test_reload_ignores_same_serial(tmp_path) -> None:
    path = write_zone(tmp_path)
    async with running(corefile(path, "  reload 50ms\n")) as srv:
        write_zone(tmp_path, extra="same A 192.0.2.201\n")
        await trio.sleep(0.3)  # several reload ticks
        r = await query(srv.port(), "same.example.org.", "A")
        assert r.rcode() == dns.rcode.NXDOMAIN


async def test_reload_keeps_serving_when_the_file_breaks(tmp_path) -> None:
    path = write_zone(tmp_path)
    async with running(corefile(path, "  reload 50ms\n")) as srv:
        path.write_text("@ IN SOA ns1 admin (\n")  # unbalanced: the reload logs an error
        await trio.sleep(0.3)  # several reload ticks
        r = await query(srv.port(), "web.example.org.", "A")
        assert texts(r.answer) == ["web.example.org. 3600 IN A 192.0.2.10"]


DNAME_ZONE = """$ORIGIN example.org.
$TTL 300
@ IN SOA ns1 admin 1 7200 3600 1209600 300
  IN NS ns1
ns1 A 192.0.2.53
old DNAME new.example.org.
www.new A 192.0.2.10
loop DNAME loop.example.org.
"""


async def test_dname_synthesis(tmp_path) -> None:
    """Answers observed on CoreDNS 1.14.7: the DNAME, the CNAME it synthesises, then the chase."""
    (tmp_path / "db").write_text(DNAME_ZONE)
    async with running(f"example.org {{\n file {tmp_path / 'db'}\n}}\n") as srv:
        r = await query(srv.port(), "www.old.example.org.", "A")
        assert texts(r.answer) == ["old.example.org. 300 IN DNAME new.example.org.",
                                   "www.old.example.org. 300 IN CNAME www.new.example.org.",
                                   "www.new.example.org. 300 IN A 192.0.2.10"]
        r = await query(srv.port(), "nope.old.example.org.", "A")
        assert r.rcode() == dns.rcode.NXDOMAIN and len(r.answer) == 2
        r = await query(srv.port(), "old.example.org.", "A")  # the owner itself: no synthesis
        assert r.answer == [] and r.rcode() == dns.rcode.NOERROR
        r = await query(srv.port(), "a.loop.example.org.", "A")  # a CNAME to itself
        assert r.rcode() == dns.rcode.SERVFAIL


async def test_reload_by_mtime_ignores_the_serial(tmp_path) -> None:
    path = write_zone(tmp_path)
    async with running(corefile(path, "  reload 50ms\n  reload_by_mtime\n")) as srv:
        write_zone(tmp_path, extra="same A 192.0.2.201\n")  # same serial, newer file
        os.utime(path, (path.stat().st_atime, path.stat().st_mtime + 5))
        for _ in range(100):  # bounded: 100 x 50 ms
            await trio.sleep(0.05)
            r = await query(srv.port(), "same.example.org.", "A")
            if r.answer:
                break
        assert texts(r.answer) == ["same.example.org. 3600 IN A 192.0.2.201"]


async def test_wildcard_for_a_label_with_a_dot(tmp_path) -> None:
    """A qname label holding a dot (from the wire) matches the wildcard: an answer, not a panic
    (found by tests/fuzz/packet.py: dnslib's IDNA pass refuses such a label)."""
    import dns.name

    async with running(corefile(write_zone(tmp_path))) as srv:
        name = dns.name.Name([b".", b"wild", b"example", b"org", b""])
        r = await query(srv.port(), name, "TXT")
        assert r.rcode() == dns.rcode.NOERROR and len(r.answer) == 1
        # 62 octets, 4 of them above 127: their IDNA (xn--) form is over 63 characters, dnslib's IDNA pass
        # said "label empty or too long" (tests/fuzz/regressions/packet/file-wildcard-owner-idna-label-over-63)
        name = dns.name.Name([b"<" * 58 + b"\xec\xd0\xf8\xb2", b"wild", b"example", b"org", b""])
        r = await query(srv.port(), name, "TXT")
        assert r.rcode() == dns.rcode.NOERROR and [rr.name for rr in r.answer] == [name]
