"""Helpers of the cache tests: counters, a raw UDP exchange, scripted upstreams and writers, reply builders
(moved from tests/test_cache.py)."""

from __future__ import annotations

import struct

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import trio
from dnslib import EDNS0, RR, DNSRecord
from pycoredns.plugins.cache import Cache, key_of
from pycoredns.plugins.cache import metrics as cachemetrics
from upstream import reply_for

from pycoredns import wire
from pycoredns.request import Request, ResponseWriter


def total(counter, **match: str) -> float:
    """Sum of a counter over the label sets whose labels match `match`."""
    names = counter.label_names
    out = 0.0
    for labels, v in counter.values.items():
        d = dict(zip(names, labels, strict=True))
        if all(d.get(k) == val for k, val in match.items()):
            out += v
    return out


def entries(kind: str) -> float:
    return sum(v for labels, v in cachemetrics.entries_gauge.fn() if labels[1] == kind)


def cache_of(srv) -> Cache:
    for block in srv.instance.blocks:
        for h in block.handlers:
            if isinstance(h, Cache):
                return h
    raise AssertionError("no cache handler")


async def raw(port: int, data: bytes) -> bytes:
    """One UDP exchange without dnspython's checks (for replies it would refuse)."""
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    with sock:
        await sock.connect(("127.0.0.1", port))
        await sock.send(data)
        with trio.fail_after(3):
            return await sock.recv(65535)


def ttls(msg: dns.message.Message) -> list[int]:
    return [rrset.ttl for section in (msg.answer, msg.authority, msg.additional) for rrset in section]


def a_values(msg: dns.message.Message) -> list[str]:
    return sorted(rd.to_text() for rrset in msg.answer for rd in rrset if rrset.rdtype == dns.rdatatype.A)


class Counting:
    """A scripted upstream (GarbageUpstream callable): A 192.0.2.N with N counting the queries."""

    def __init__(self, ttl: int = 60, rcode: int = 0, flags: int = 0x8180, answer: bool = True) -> None:
        self.n = 0
        self.ttl = ttl
        self.rcode = rcode
        self.flags = flags
        self.answer = answer
        self.silent_after: int | None = None

    def __call__(self, data: bytes) -> list[bytes]:
        self.n += 1
        if self.silent_after is not None and self.n > self.silent_after:
            return []
        r = reply_for(data, rcode=self.rcode, flags=self.flags,
                      answer_a=f"192.0.2.{self.n}" if self.answer else None)
        if self.answer:  # reply_for uses TTL 60: patch the single A record's TTL
            r = r[:-10] + struct.pack(">I", self.ttl) + r[-6:]
        return [r]


class _W(ResponseWriter):
    __slots__ = ("out",)

    def __init__(self) -> None:
        super().__init__()
        self.out: bytes | None = None

    def write(self, reply) -> None:
        self.written = True
        self.out = wire.to_bytes(reply)


def _reply(q: DNSRecord, *rrs: RR, auth: tuple[RR, ...] = (), rcode: int = 0, edns: bool = False) -> bytes:
    r = q.reply()
    r.header.rcode = rcode
    for rr in rrs:
        r.add_answer(rr)
    for rr in auth:
        r.add_auth(rr)
    if edns:
        r.add_ar(EDNS0(udp_len=1232))
    return bytes(r.pack())


def _cache(**opts) -> Cache:
    c = Cache()
    for k, v in opts.items():
        setattr(c, k, v)
    c.finish()
    return c


def _key(req: Request) -> tuple:
    key, _do = key_of(req)
    return key
