"""`cname` rules' capture: a reply in which no record can be a CNAME is reverted without the CNAME walk,
with the same reply out and, for a damaged one, the same two warnings as the walk gives."""

from __future__ import annotations

import logging
import struct

import dns.message
import dns.rrset
import pytest
from pycoredns.plugins.rewrite.handler import Rewrite, _LookupCapture
from pycoredns.plugins.rewrite.rules import new_rule

from pycoredns import wire
from pycoredns.request import Recorder, Request


def _capture(data: bytes) -> tuple[Recorder, _LookupCapture]:
    query = dns.message.make_query("a.example.", "A")
    query.id = 7
    req = Request(query.to_wire())
    rw = Rewrite([new_rule(["cname", "exact", "x.example.", "y.example."])])
    plan = rw._plan(req)
    assert plan is not None and plan.lookups
    inner = Recorder()
    cap = _LookupCapture(inner, rw, plan)
    cap.write(data)
    return inner, cap


def test_plain_reply_is_reverted_at_once() -> None:
    reply = dns.message.make_response(dns.message.make_query("a.example.", "A"))
    reply.id = 7
    reply.answer.append(dns.rrset.from_text("a.example.", 60, "IN", "A", "192.0.2.1"))
    data = reply.to_wire()
    assert data.find(b"\x00\x05", 12) < 0
    inner, cap = _capture(data)
    assert cap.looked_up(0, None) == 0
    assert cap.reverted and inner.reply == data  # nothing to change: the reverter writes the same message


@pytest.mark.parametrize("cut", [20, 30, 40])
def test_damaged_reply_warns_as_before(cut: int) -> None:
    """The walk's warning, then the reverter's, and the reply goes out as written."""
    data = (struct.pack(">HHHHHH", 7, 0x8180, 1, 1, 0, 0) + wire.text_to_wire("a.example.") + b"\x00\x01\x00\x01"
            + b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + bytes([192, 0, 2, 1]))[:cut]
    assert data.find(b"\x00\x05", 12) < 0
    inner, cap = _capture(data)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("pycoredns.plugin.rewrite")
    logger.addHandler(handler)
    try:
        assert cap.looked_up(0, None) == 0
    finally:
        logger.removeHandler(handler)
    lines = [r.getMessage() for r in records if "cannot rewrite reply" in r.getMessage()]
    assert len(lines) == 2 and not cap.reverted and inner.reply == data
