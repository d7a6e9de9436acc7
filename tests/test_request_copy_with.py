"""Request.copy_with's `wire_qname`: the same request as the text form of that name gives."""

from __future__ import annotations

import dns.edns
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


_FIELDS = ("wire", "id", "flags", "qname_wire", "qtype", "qclass", "qend", "remote", "local", "proto", "listener",
           "zone", "meta", "depth")


def _fields(r: Request) -> tuple:
    e = r.edns
    return (*(getattr(r, f) for f in _FIELDS), r.name, r.qname,
            None if e is None else (e.udp_size, e.version, e.flags, e.options))


def test_copy_with_is_the_parse_of_its_bytes() -> None:
    """A copy with only another question is built without parsing its bytes again: every field equals
    what `Request` parses from those bytes (with and without EDNS and its options); names the question
    cannot carry go the parsing way and fail as it does."""
    queries = [dns.message.make_query("x.test.", "AAAA"), dns.message.make_query("Y.Test.", "A", use_edns=0),
               dns.message.make_query("z.", "TXT", use_edns=0, payload=1232, want_dnssec=True,
                                      options=[dns.edns.GenericOption(10, b"12345678")])]
    names = [b"\x00", b"\x01a\x00", b"\x07RENAMED\x05bench\x04test\x00", b"\x03a.b\x01c\x00", b"\x01\xff\x00",
             b"\x3f" + b"a" * 63 + b"\x00", (b"\x3f" + b"b" * 63) * 3 + b"\x3d" + b"c" * 61 + b"\x00"]
    bad = [b"", b"\x01a", b"\x40" + b"a" * 64 + b"\x00", b"\xc0\x0c", (b"\x3f" + b"b" * 63) * 4 + b"\x00",
           b"\x01a\x00\x01b\x00"]
    for q in queries:
        base = Request(q.to_wire(), ("10.0.0.1", 5353), "tcp")
        base.zone, base.meta, base.depth = "test.", {"k": "v"}, 2
        for name in names:
            for qtype in (None, 28, 65535):
                got = base.copy_with(wire_qname=name, qtype=qtype)
                parsed = Request(got.wire, base.remote, base.proto, base.local, base.listener)
                parsed.zone, parsed.meta, parsed.depth = base.zone, base.meta, base.depth
                assert _fields(got) == _fields(parsed)
        for name in bad:
            try:
                Request(base.wire[:12] + name + base.wire[base.qend - 4 :])
            except Exception as e:
                expected: object = type(e)
            else:
                expected = None
            try:
                base.copy_with(wire_qname=name)
            except Exception as e:
                assert type(e) is expected
            else:
                assert expected is None
