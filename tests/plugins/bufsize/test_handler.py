"""bufsize through a running server: the client's larger EDNS size is lowered for the whole chain."""

from __future__ import annotations

from conftest import query, running


async def test_default_1232_caps_reply_opt() -> None:
    async with running(". {\n bufsize\n local\n}\n") as srv:
        r = await query(srv.port(), "localhost.", "A", use_edns=0, payload=4096)
        assert r.payload == 1232
        r = await query(srv.port(), "localhost.", "A", use_edns=0, payload=800)
        assert r.payload == 800  # smaller sizes are kept
        r = await query(srv.port(), "localhost.", "A")
        assert r.edns == -1


async def test_truncates_to_the_lowered_size() -> None:
    hosts = "\n".join(f"  10.0.{i // 250}.{i % 250} big.example." for i in range(60))
    async with running(f". {{\n bufsize 512\n hosts {{\n{hosts}\n }}\n}}\n") as srv:
        r = await query(srv.port(), "big.example.", "A", use_edns=0, payload=4096)
        assert r.payload == 512 and r.flags & 0x0200  # TC: 60 A records do not fit in 512 bytes
        r = await query(srv.port(), "big.example.", "A", tcp=True, use_edns=0, payload=4096)
        assert len(r.answer[0]) == 60
