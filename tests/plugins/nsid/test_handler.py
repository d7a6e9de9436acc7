"""nsid through a running server: only queries asking for NSID get it; a missing OPT is added."""

from __future__ import annotations

import socket

import dns.edns
from conftest import query, running

NSID_QUERY = {"use_edns": 0, "options": [dns.edns.GenericOption(dns.edns.NSID, b"")]}


def nsid_of(r) -> list[bytes]:
    return [o.to_wire() for o in r.options if o.otype == dns.edns.NSID]


async def test_nsid_words_joined() -> None:
    async with running(". {\n nsid my replica\n local\n whoami\n}\n") as srv:
        r = await query(srv.port(), "localhost.", "A", **NSID_QUERY)
        assert nsid_of(r) == [b"my replica"] and r.edns == 0
        r = await query(srv.port(), "localhost.", "A", tcp=True, **NSID_QUERY)
        assert nsid_of(r) == [b"my replica"]
        r = await query(srv.port(), "localhost.", "A", use_edns=0)
        assert nsid_of(r) == []
        r = await query(srv.port(), "localhost.", "A")
        assert r.edns == -1


async def test_default_is_hostname() -> None:
    async with running(". {\n nsid\n whoami\n}\n") as srv:
        r = await query(srv.port(), "example.org.", "A", payload=1400, **NSID_QUERY)
        assert nsid_of(r) == [socket.gethostname().encode()]
        assert r.payload == 1400 and len(r.additional) == 2
