"""The dns64 handler: AAAA queries whose answer has no AAAA get A records mapped into the prefix.

As CoreDNS: only AAAA/IN queries from IPv6 clients (any client with `allow_ipv4`); the rest of
the chain answers into a recorder; NXDOMAIN and answers with AAAA records (unless `translate_all`)
pass unchanged; otherwise the A records of the name are looked up through the server itself and
each becomes an AAAA with TTL min(A TTL, SOA TTL of the original reply or 600). The synthesised
reply is a fresh SetReply (no AA) carrying the A lookup's authority, additional and TC bit.
"""

from __future__ import annotations

import ipaddress

from dnslib import AAAA, QTYPE, RR

from pycoredns import response, wire
from pycoredns.plugin import Handler
from pycoredns.request import Recorder, Request, ResponseWriter

from .metrics import translated_total

DEFAULT_SOA_TTL = 600
IN = wire.CLASS_IN


def to6(prefix: ipaddress.IPv6Network, a: bytes) -> bytes:
    """RFC 6052 §2.2: the IPv4 bytes after the prefix, skipping byte 8 (the u octet)."""
    n = prefix.prefixlen // 8
    v6 = bytearray(16)
    v6[:n] = prefix.network_address.packed[:n]
    i, j = n, 0
    while i < 8 and j < 4:
        v6[i] = a[j]
        i, j = i + 1, j + 1
    if i == 8:
        i += 1
    while j < 4:
        v6[i] = a[j]
        i, j = i + 1, j + 1
    return bytes(v6)


class DNS64(Handler):
    name = "dns64"

    def __init__(self, prefix: ipaddress.IPv6Network, translate_all: bool, allow_ipv4: bool, server: str) -> None:
        self.prefix = prefix
        self.translate_all = translate_all
        self.allow_ipv4 = allow_ipv4
        self.server = server

    def intercepts(self, req: Request) -> bool:
        if not self.allow_ipv4 and req.family == 1:
            return False
        return req.qtype == QTYPE.AAAA and req.qclass == IN

    def serve_fast(self, req: Request, w: ResponseWriter) -> int | None:
        if not self.intercepts(req):
            return self.next_fast(req, w)
        return None  # the A lookup through the server waits: the task path

    async def serve_dns(self, req: Request, w: ResponseWriter) -> int:
        if not self.intercepts(req):
            return await self.next_or_failure(req, w)
        rec = Recorder()
        rc = await self.next_or_failure(req, rec)
        if rec.reply is None:
            return rc
        orig = wire.to_record(rec.reply)
        if not self.should_translate(rec.reply, orig):
            w.write(rec.reply)
            return rc
        assert req.listener is not None
        a_reply = await req.listener.resolve(req.copy_with(qname=req.name, qtype=QTYPE.A))
        if a_reply is None:
            return wire.SERVFAIL
        out = self.synthesize(req, orig, wire.to_record(a_reply))
        translated_total.inc(req.listener.label if req.listener is not None else self.server)  # WithServer(ctx)
        w.write(out)
        return out.header.rcode

    def should_translate(self, reply, orig) -> bool:
        if response.typify(reply) == response.Type.NAMEERROR:
            return False
        if self.translate_all:
            return True
        return not any(rr.rtype == QTYPE.AAAA for rr in orig.rr)

    def synthesize(self, req: Request, orig, resp):
        m = req.reply_record()
        m.header.tc = resp.header.tc
        m.ar = list(resp.ar)
        m.auth = list(resp.auth)
        soa_ttl = DEFAULT_SOA_TTL
        for rr in orig.auth:
            if rr.rtype == QTYPE.SOA:
                soa_ttl = rr.ttl
        for rr in resp.rr:
            if rr.rtype != QTYPE.A:
                m.rr.append(rr)
                continue
            addr = to6(self.prefix, bytes(rr.rdata.data))
            m.rr.append(RR(rr.rname, QTYPE.AAAA, rclass=rr.rclass, ttl=min(rr.ttl, soa_ttl),
                           rdata=AAAA(str(ipaddress.IPv6Address(addr)))))
        return m
