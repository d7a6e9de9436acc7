"""errors: error log lines and consolidation through a running server."""

from __future__ import annotations

import trio
from conftest import query, running


async def test_errors_logs_no_next_plugin(log_lines):
    async with running("example.org {\n errors\n any\n}\n") as srv:
        r = await query(srv.port(), "a.example.org", "A")
        assert r.rcode() == 2
    assert "[ERROR] plugin/errors: 2 a.example.org. A: plugin/any: no next plugin found" in log_lines


async def test_errors_consolidate(log_lines):
    cf = "example.org {\n errors {\n  consolidate 1s \"no next plugin\" warning\n }\n any\n}\n"
    async with running(cf) as srv:
        for i in range(3):
            await query(srv.port(), f"q{i}.example.org", "A")
        assert not any("no next plugin found" in line for line in log_lines)
        with trio.fail_after(3):
            while not any("errors like" in line for line in log_lines):
                await trio.sleep(0.1)
    assert "[WARNING] plugin/errors: 3 errors like 'no next plugin' occurred in last 1s" in log_lines


async def test_errors_consolidate_show_first(log_lines):
    cf = "example.org {\n errors {\n  consolidate 1s \"no next\" info show_first\n }\n any\n}\n"
    async with running(cf) as srv:
        await query(srv.port(), "q.example.org", "A")
        assert "[INFO] plugin/errors: 2 q.example.org. A: plugin/any: no next plugin found" in log_lines


async def test_errors_writer_passes_replies_straight_through():
    """errors' per-query writer hands replies to the writer below (its `write` is that writer's) and
    reports `written` as the writer below does, on both paths."""
    from pycoredns.plugins.errors import Errors

    from pycoredns.testing import Later, RecordingWriter, Static, answer_a, chain, make_request, run_both

    for below in (Static, Later):
        result = await run_both(lambda b=below: chain(Errors([], lambda *a: True), b(answer_a("192.0.2.1"))),
                                make_request("q.example.org.", "A"))
        assert result.rcode == 0 and [str(r.rdata) for r in result.message.rr] == ["192.0.2.1"]
    w = RecordingWriter()
    errors = Errors([], lambda *a: True)
    ww = errors.writer(w, errors, make_request("q.example.org.", "A"))
    assert ww.written is False
    ww.write(b"\x00" * 12)
    assert ww.written is True and w.replies == [b"\x00" * 12]
