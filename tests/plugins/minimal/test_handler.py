"""minimal: NOERROR answers lose authority and additional (not the OPT)."""

from __future__ import annotations

from conftest import query, running


async def test_minimal_strips_additional_on_noerror():
    # whoami's reply is NOERROR without SOA: typify calls it NoError, so minimal strips the extras,
    # keeping the OPT the client asked for.
    async with running(". {\n minimal\n whoami\n}\n") as srv:
        r = await query(srv.port(), "example.org", "A", use_edns=0)
        assert r.rcode() == 0 and not r.additional and r.edns == 0
