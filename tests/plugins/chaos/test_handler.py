"""chaos: CH TXT answers for the version, the authors and the host name; everything else goes on."""

from __future__ import annotations

import socket

import dns.rcode
from conftest import query, running


def _txt(r) -> list[str]:
    return [rr.to_text() for rrset in r.answer for rr in rrset]


async def test_version_authors_and_hostname() -> None:
    async with running(". {\n chaos CoreDNS-test alice bob\n whoami\n}\n") as srv:
        port = srv.port()
        for name in ("version.bind", "version.server"):
            assert _txt(await query(port, name, "TXT", rdclass="CH")) == ['"CoreDNS-test"']
        authors = await query(port, "authors.bind", "TXT", rdclass="CH")
        assert sorted(_txt(authors)) == ['"alice"', '"bob"']
        for name in ("hostname.bind", "id.server"):
            assert _txt(await query(port, name, "TXT", rdclass="CH")) == [f'"{socket.gethostname()}"']


async def test_other_names_and_types_go_on() -> None:
    async with running(". {\n chaos\n}\n") as srv:  # nothing after chaos: what goes on fails
        port = srv.port()
        for name, rdtype in (("other.bind", "TXT"), ("version.bind", "A")):
            r = await query(port, name, rdtype, rdclass="CH")
            assert r.rcode() == dns.rcode.SERVFAIL and not r.answer
