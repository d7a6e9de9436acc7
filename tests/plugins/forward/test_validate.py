"""Damaged upstream replies, decided on the wire as CoreDNS 1.14.7 does (measured against the reference
binary: the client's rcode, flags and answer count for each shape)."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode
import pytest
from conftest import query, running
from pycoredns.plugins.forward.validate import Damaged, accept
from upstream import GarbageUpstream, reply_for

Q = dns.message.make_query("a.example.org", "A").to_wire()
OK = reply_for(Q)
EMPTY = reply_for(Q, answer_a=None)


def with_answer(rr: bytes) -> bytes:
    return EMPTY[:6] + b"\x00\x01" + EMPTY[8:] + rr


def rr(rtype: int, rdata: bytes) -> bytes:
    return b"\xc0\x0c" + rtype.to_bytes(2, "big") + b"\x00\x01\x00\x00\x00\x3c" + len(rdata).to_bytes(2, "big") + rdata


DAMAGED = {  # all of these: header + question with TC over UDP, an error over TCP (CoreDNS: SERVFAIL)
    "txt": with_answer(rr(16, b"\x05ab")),
    "mx": with_answer(rr(15, b"\x00")),
    "aaaa": with_answer(rr(28, b"abcd")),
    "soa": with_answer(rr(6, b"\xc0\x0c\xc0\x0c\x00\x00")),
    "opt-option": OK[:10] + b"\x00\x01" + OK[12:] + b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x03\x00\x0a\x00",
    "caa": with_answer(rr(257, b"\x00\x05i")),
    "hinfo": with_answer(rr(13, b"\x01ab")),
    "nsec": with_answer(rr(47, b"\x00\x00\x05\x40")),
}


@pytest.mark.parametrize("shape", sorted(DAMAGED))
def test_damaged_records(shape: str) -> None:
    out = accept(DAMAGED[shape], udp=True)
    m = dns.message.from_wire(out)
    assert m.flags & dns.flags.TC and not m.answer and not m.additional and len(m.question) == 1
    with pytest.raises(Damaged):
        accept(DAMAGED[shape], udp=False)


def test_trailing_bytes_dropped_and_counts_lowered() -> None:
    assert accept(OK + b"\x00\x00\x00", udp=True) == OK
    lie = OK[:6] + b"\x00\x02" + OK[8:]  # two answers promised, one present
    assert len(dns.message.from_wire(accept(lie, udp=False)).answer[0]) == 1


def test_tc_reply_with_good_records_passed_and_unknown_types_opaque() -> None:
    tc = reply_for(Q, flags=0x8380)
    assert accept(tc, udp=False) == tc
    odd = with_answer(rr(0xFF00, b"ab"))
    assert accept(odd, udp=True) == odd


async def test_end_to_end_udp_tc_and_tcp_servfail() -> None:
    with GarbageUpstream(lambda q: [reply_for(q, answer_a=None)[:6] + b"\x00\x01" + reply_for(q, answer_a=None)[8:]
                                    + rr(15, b"\x00")]) as g:
        async with running(f". {{\n forward . {g.addr}\n}}\n") as srv:
            r = await query(srv.port(), "a.example.org", "A")
            assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.TC and not r.answer
            r = await query(srv.port(), "a.example.org", "A", tcp=True)
            assert r.rcode() == dns.rcode.SERVFAIL


async def test_reply_without_records_passed_without_trailing_bytes() -> None:
    """A reply of header and question only (forward's short way past `accept`: an NXDOMAIN without SOA)
    reaches the client as it came, without the bytes after the question, over UDP and TCP."""
    with GarbageUpstream(lambda q: [reply_for(q, rcode=3, answer_a=None) + b"\x00\x07\x00"]) as g:
        async with running(f". {{\n forward . {g.addr}\n}}\n") as srv:
            for tcp in (False, True):
                r = await query(srv.port(), "a.example.org", "A", tcp=tcp)
                assert r.rcode() == dns.rcode.NXDOMAIN and not r.answer and not r.authority
                assert not r.additional and len(r.question) == 1 and not r.flags & dns.flags.TC
    assert accept(EMPTY[:3] + b"\x83" + EMPTY[4:] + b"\x00\x07\x00", udp=True) == EMPTY[:3] + b"\x83" + EMPTY[4:]


def test_reply_question_match_on_the_wire():
    """forward's request.Match: same name (any case) and type; a pointer, another name or type, a
    question cut short, no QR bit or two questions do not match."""
    import struct

    from pycoredns.plugins.forward.handler import _matches

    from pycoredns.request import Request

    qname = b"\x05n1234\x05bench\x04test\x00"
    query = struct.pack(">HHHHHH", 7, 0x0100, 1, 0, 0, 0) + qname + b"\x00\x01\x00\x01"
    req = Request(query, ("127.0.0.1", 1), "udp", ("127.0.0.1", 53), None)

    def reply(question: bytes, flags: int = 0x8180, qd: int = 1) -> bytes:
        return struct.pack(">HHHHHH", 7, flags, qd, 0, 0, 0) + question

    assert _matches(req, reply(qname + b"\x00\x01\x00\x01"))
    assert _matches(req, reply(b"\x05N1234\x05BeNcH\x04TEST\x00" + b"\x00\x01\x00\x01"))
    assert not _matches(req, reply(b"\x05n1235\x05bench\x04test\x00" + b"\x00\x01\x00\x01"))
    assert not _matches(req, reply(qname + b"\x00\x1c\x00\x01"))  # AAAA
    assert not _matches(req, reply(b"\xc0\x0c" + b"\x00\x01\x00\x01"))  # a pointer
    assert not _matches(req, reply(b"\x05n1234\x05bench\x04test\x03com\x00" + b"\x00\x01\x00\x01"))
    assert not _matches(req, reply(qname + b"\x00"))  # cut short
    assert not _matches(req, reply(qname + b"\x00\x01\x00\x01", flags=0x0100))  # not a response
    assert not _matches(req, reply(qname + b"\x00\x01\x00\x01" * 2, qd=2))
