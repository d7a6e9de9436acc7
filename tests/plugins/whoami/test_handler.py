"""whoami: the client's address and port over UDP and TCP (the embedded server answers real queries)."""

from __future__ import annotations

from conftest import query, running


async def test_whoami_udp_and_tcp():
    async with running(". {\n whoami\n}\n") as srv:
        for tcp in (False, True):
            r = await query(srv.port(), "example.org", "A", tcp=tcp)
            assert r.rcode() == 0
            assert r.flags & 0x0400  # AA
            assert not r.answer
            texts = sorted(rr.to_text() for rr in r.additional)
            assert any("127.0.0.1" in t for t in texts)
            assert any(t.startswith(f"_{'tcp' if tcp else 'udp'}.example.org. 0 IN SRV 0 0 ") for t in texts)


async def test_longest_names_leave_the_srv_record_out():
    """`_udp.<qname>` beyond 255 octets is no name: the reply keeps the A record only (found by fuzzing)."""
    name = ".".join(["a" * 63] * 3 + ["b" * 61]) + "."  # 255 octets on the wire: the longest name
    async with running(". {\n whoami\n}\n") as srv:
        for tcp in (False, True):
            r = await query(srv.port(), name, "A", tcp=tcp)
            assert r.rcode() == 0
            assert [rr.rdtype for rr in r.additional] == [1]
            assert r.additional[0].name.to_text() == name
        r = await query(srv.port(), name[5:], "A")  # 250 octets: `_udp.<qname>` is 255, it still fits
        assert sorted(rr.rdtype for rr in r.additional) == [1, 33]
