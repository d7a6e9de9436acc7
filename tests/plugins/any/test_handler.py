"""any: ANY queries get RFC 8482's HINFO; other queries go on."""

from __future__ import annotations

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
from conftest import query, running


async def test_any_answers_hinfo():
    async with running(". {\n any\n whoami\n}\n") as srv:
        r = await query(srv.port(), "example.org", "ANY")
        assert r.answer[0].rdtype == dns.rdatatype.HINFO and r.answer[0].ttl == 8482
        assert r.answer[0][0].to_text() == '"ANY obsoleted" "See RFC 8482"'
        r = await query(srv.port(), "example.org", "A")
        assert not r.answer
