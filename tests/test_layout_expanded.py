"""pycoredns.layout's name expansion (what `uncompressed` writes out) reads names exactly as wire.read_name."""

from __future__ import annotations

import random

import dns.message
import dns.rrset

from pycoredns.layout import expand_name, uncompressed
from pycoredns.wire import WireError, read_name


def _by_labels(data: bytes, off: int) -> tuple[bytes, int] | str:
    try:
        labels, end = read_name(data, off)
    except WireError as e:
        return str(e)
    return b"".join(bytes((len(x),)) + x for x in labels) + b"\x00", end


def _expand(data: bytes, off: int) -> tuple[bytes, int] | str:
    try:
        return expand_name(data, off)
    except WireError as e:
        return str(e)


def test_expanded_matches_read_name_on_damaged_replies() -> None:
    m = dns.message.make_response(dns.message.make_query("n1.Example.COM.", "A"))
    m.answer.append(dns.rrset.from_text("n1.example.com.", 60, "IN", "CNAME", "t1.example.com."))
    m.answer.append(dns.rrset.from_text("t1.example.com.", 60, "IN", "A", "192.0.2.1"))
    m.authority.append(dns.rrset.from_text("example.com.", 60, "IN", "SOA", "ns.example.com. h.example.com. 1 2 3 4 5"))
    good = m.to_wire()
    assert uncompressed(good)[0][:16] == b"\x02n1\x07Example\x03COM\x00"  # the question's case
    rnd = random.Random(11)
    for _ in range(5000):
        data = bytearray(good)
        for _ in range(rnd.randint(0, 3)):
            data[rnd.randrange(len(data))] = rnd.randrange(256)
        cut = bytes(data[: rnd.randint(12, len(data))]) if rnd.random() < 0.3 else bytes(data)
        off = rnd.randrange(12, len(cut) + 1)
        assert _expand(cut, off) == _by_labels(cut, off)
