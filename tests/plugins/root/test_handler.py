"""root: relative file arguments of the block's plugins resolve against it."""

from __future__ import annotations

from conftest import query, running


async def test_relative_hosts_file_is_read_from_root(tmp_path) -> None:
    (tmp_path / "myhosts").write_text("192.0.2.7 r.example.\n")
    async with running(f". {{\n root {tmp_path}\n hosts myhosts\n}}\n") as srv:
        r = await query(srv.port(), "r.example.", "A")
        assert [rrset.to_text() for rrset in r.answer] == ["r.example. 3600 IN A 192.0.2.7"]
