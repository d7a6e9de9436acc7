"""file with a signed zone and DO (answers observed on CoreDNS 1.14.7 with this zone): RRSIGs go
along, denials carry NSEC records, delegations their DS. Signatures are dummies: nobody validates here."""

from __future__ import annotations

import dns.rcode
import dns.rdatatype
import pytest
from conftest import query, running

from pycoredns.instance import StartupError

S = "20301231000000 20240101000000 4711 example.org. AAECAwQFBgcICQoLDA0ODw=="


def sig(owner: str, rtype: str, labels: int) -> str:
    return f"{owner} 300 IN RRSIG {rtype} 13 {labels} 300 {S}"


ZONE = "\n".join([
    "example.org. 300 IN SOA ns1.example.org. admin.example.org. 1 7200 3600 1209600 300",
    sig("example.org.", "SOA", 2),
    "example.org. 300 IN NS ns1.example.org.", sig("example.org.", "NS", 2),
    "example.org. 300 IN NSEC a.example.org. NS SOA RRSIG NSEC", sig("example.org.", "NSEC", 2),
    "a.example.org. 300 IN A 192.0.2.1", sig("a.example.org.", "A", 3),
    "a.example.org. 300 IN NSEC ns1.example.org. A RRSIG NSEC", sig("a.example.org.", "NSEC", 3),
    "ns1.example.org. 300 IN A 192.0.2.53", sig("ns1.example.org.", "A", 3),
    "ns1.example.org. 300 IN NSEC sub.example.org. A RRSIG NSEC", sig("ns1.example.org.", "NSEC", 3),
    "sub.example.org. 300 IN NS ns.sub.example.org.",
    "sub.example.org. 300 IN DS 12345 13 2 AABBCCDDEEFF00112233445566778899AABBCCDDEEFF00112233445566778899",
    sig("sub.example.org.", "DS", 3),
    "sub.example.org. 300 IN NSEC *.wild.example.org. NS DS RRSIG NSEC", sig("sub.example.org.", "NSEC", 3),
    "ns.sub.example.org. 300 IN A 192.0.2.99",
    "*.wild.example.org. 300 IN A 192.0.2.77", sig("*.wild.example.org.", "A", 2),
    "*.wild.example.org. 300 IN NSEC www.example.org. A RRSIG NSEC", sig("*.wild.example.org.", "NSEC", 4),
    "www.example.org. 300 IN CNAME a.example.org.", sig("www.example.org.", "CNAME", 3),
    "www.example.org. 300 IN NSEC example.org. CNAME RRSIG NSEC", sig("www.example.org.", "NSEC", 3),
]) + "\n"


def types(section) -> list[str]:
    return [f"{rrset.name} {dns.rdatatype.to_text(rrset.rdtype)}" + (
        f" {dns.rdatatype.to_text(rrset[0].type_covered)}" if rrset.rdtype == dns.rdatatype.RRSIG else "")
            for rrset in section]


@pytest.fixture
def corefile(tmp_path) -> str:
    (tmp_path / "db").write_text(ZONE)
    return f"example.org {{\n file {tmp_path / 'db'}\n}}\n"


async def test_signed_answers_with_do(corefile: str) -> None:
    async with running(corefile) as srv:
        r = await query(srv.port(), "a.example.org.", "A", want_dnssec=True)
        assert types(r.answer) == ["a.example.org. A", "a.example.org. RRSIG A"]
        assert types(r.authority) == ["example.org. NS", "example.org. RRSIG NS"]
        r = await query(srv.port(), "a.example.org.", "A")  # no DO: no signatures
        assert types(r.answer) == ["a.example.org. A"] and types(r.authority) == ["example.org. NS"]
        r = await query(srv.port(), "www.example.org.", "A", want_dnssec=True)
        assert types(r.answer) == ["www.example.org. CNAME", "www.example.org. RRSIG CNAME",
                                   "a.example.org. A", "a.example.org. RRSIG A"]
        r = await query(srv.port(), "foo.wild.example.org.", "A", want_dnssec=True)
        assert types(r.answer) == ["foo.wild.example.org. A", "foo.wild.example.org. RRSIG A"]
        assert types(r.authority) == ["example.org. NS", "example.org. RRSIG NS", "*.wild.example.org. NSEC",
                                      "*.wild.example.org. RRSIG NSEC"]


async def test_denials_and_delegation_with_do(corefile: str) -> None:
    async with running(corefile) as srv:
        r = await query(srv.port(), "nope.example.org.", "A", want_dnssec=True)
        assert r.rcode() == dns.rcode.NXDOMAIN
        assert types(r.authority) == ["example.org. SOA", "example.org. RRSIG SOA", "a.example.org. NSEC",
                                      "a.example.org. RRSIG NSEC", "example.org. NSEC", "example.org. RRSIG NSEC"]
        r = await query(srv.port(), "a.example.org.", "AAAA", want_dnssec=True)
        assert types(r.authority) == ["example.org. SOA", "example.org. RRSIG SOA", "a.example.org. NSEC",
                                      "a.example.org. RRSIG NSEC"]
        r = await query(srv.port(), "x.sub.example.org.", "A", want_dnssec=True)
        assert types(r.authority) == ["sub.example.org. NS", "sub.example.org. DS", "sub.example.org. RRSIG DS"]
        assert types(r.additional) == ["ns.sub.example.org. A"]


async def test_nsec3_zone_is_refused(tmp_path) -> None:
    (tmp_path / "db").write_text(ZONE + "example.org. 300 IN TYPE50 \\# 5 0100000000\n")
    with pytest.raises(StartupError) as e:
        async with running(f"example.org {{\n file {tmp_path / 'db'}\n}}\n"):
            pass
    assert str(e.value) == "plugin/file: NSEC3 zone is not supported, dropping RR: example.org. for zone: example.org."
