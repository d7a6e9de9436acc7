"""hosts: answers, file reloads, and files that are (or turn into) garbage."""

from __future__ import annotations

import trio
from broken_corefiles import block, eventually
from conftest import query, running

from pycoredns import metrics


async def _serve_and_query(corefile: str, name: str, want: str) -> None:
    async with running(corefile) as srv:
        r = await query(srv.port(), name, "A")
        assert [rr.to_text() for rrset in r.answer for rr in rrset] == [want]


async def test_hosts_garbage_file_answers(tmp_path):
    p = tmp_path / "hosts"
    p.write_bytes(
        b"\xff\xfe garbage\n300.1.1.1 bad\n1.2.3.4\n::1%zz foo\n" + b"a" * 5000 + b"\n"
        b"10.0.0.1 " + b"x" * 70 + b".example.\n\x00\x00\n10.0.0.2 good.example.\n"
    )
    await _serve_and_query(block(f" hosts {p}\n errors"), "good.example.", "10.0.0.2")


async def test_hosts_file_turning_to_garbage_at_runtime(tmp_path):
    """The reload loop survives a file that becomes binary junk, vanishes, or becomes a directory."""
    p = tmp_path / "hosts"
    p.write_text("10.0.0.2 good.example.\n")
    panics = metrics.panics_total.get()
    async with running(block(f" hosts {p} {{\n  reload 50ms\n }}\n errors")) as srv:
        port = srv.port()

        async def answers(want: str) -> bool:
            m = await query(port, "good.example.", "A")
            return [rr.to_text() for rrset in m.answer for rr in rrset] == [want]

        await eventually(lambda: answers("10.0.0.2"))
        p.write_bytes(b"\xff\x00\xfe" * 1000 + b"\n10.0.0.3 good.example.\n" + b"\x00" * 100)
        await eventually(lambda: answers("10.0.0.3"))
        p.unlink()
        await trio.sleep(0.2)
        p.mkdir()
        await trio.sleep(0.2)
        p.rmdir()
        p.write_text("10.0.0.4 good.example.\n")
        await eventually(lambda: answers("10.0.0.4"))
    assert metrics.panics_total.get() == panics
