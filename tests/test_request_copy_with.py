"""Request.copy_with's `wire_qname`: the same request as the text form of that name gives."""

from __future__ import annotations

import dns.message

from pycoredns import wire
from pycoredns.request import Request


def test_wire_qname_is_the_text_qname() -> None:
    base = Request(dns.message.make_query("x.test.", "AAAA", use_edns=0).to_wire())
    for text in ("renamed.bench.test.", "Mixed.Case.", ".", "a\\.b.c.", "\\255.x."):
        by_text = base.copy_with(qname=text, qtype=1)
        by_wire = base.copy_with(wire_qname=wire.text_to_wire(text), qtype=1)
        assert by_wire.wire == by_text.wire
        assert (by_wire.qname, by_wire.name, by_wire.qtype, by_wire.qend) == (
            by_text.qname, by_text.name, by_text.qtype, by_text.qend)
        assert by_wire.edns is not None and by_wire.depth == base.depth
