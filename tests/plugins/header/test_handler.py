"""header through a running server: response flags set/cleared; query rules seen by later plugins."""

from __future__ import annotations

import dns.flags
from conftest import query, running


async def test_response_flags() -> None:
    body = " header {\n  response set ra\n  response clear aa rd\n }\n whoami\n"
    async with running(f". {{\n{body}}}\n") as srv:
        r = await query(srv.port(), "example.org.", "A")
        assert r.flags & dns.flags.RA and not r.flags & dns.flags.AA and not r.flags & dns.flags.RD


async def test_query_rule_reaches_the_reply() -> None:
    # whoami (after header in plugin.cfg order) copies RD from the rewritten query into its reply
    async with running(". {\n header {\n  query clear rd\n }\n whoami\n}\n") as srv:
        r = await query(srv.port(), "example.org.", "A")
        assert not r.flags & dns.flags.RD
        r = await query(srv.port(), "example.org.", "A", tcp=True)
        assert not r.flags & dns.flags.RD


async def test_plugins_before_header_are_untouched() -> None:
    # local comes before header in plugin.cfg: its replies never pass header's writer
    async with running(". {\n header {\n  response set ra\n }\n local\n}\n") as srv:
        r = await query(srv.port(), "localhost.", "A")
        assert not r.flags & dns.flags.RA


async def test_last_rule_wins() -> None:
    async with running(". {\n header {\n  response set ra\n  response clear ra\n }\n whoami\n}\n") as srv:
        r = await query(srv.port(), "example.org.", "A")
        assert not r.flags & dns.flags.RA
