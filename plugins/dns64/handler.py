"""The dns64 handler: AAAA queries whose answer has no AAAA get A records mapped into the prefix.

As CoreDNS: only AAAA/IN queries from IPv6 clients (any client with `allow_ipv4`); the rest of
the chain answers into a writer that holds the reply; NXDOMAIN and answers with AAAA records (unless
`translate_all`) pass unchanged; otherwise the A records of the name are looked up through the server
itself (by continuation: no task waits) and each becomes an AAAA with TTL min(A TTL, SOA TTL of the
original reply or 600). The synthesised reply is a fresh SetReply (no AA) carrying the A lookup's
authority, additional and TC bit.
"""

from __future__ import annotations

import ipaddress
import struct
from functools import partial

from pycoredns import response, wire
from pycoredns.layout import Layout, layout_of, uncompressed
from pycoredns.plugin import PENDING, PluginError, WaitingHandler, self_lookup
from pycoredns.request import Request, ResponseWriter, WriterWrapper
from pycoredns.wire import Reply

from .metrics import translated_total

DEFAULT_SOA_TTL = 600
IN = wire.CLASS_IN
TYPE_A, TYPE_AAAA, TYPE_SOA = wire.TYPE_A, wire.TYPE_AAAA, wire.TYPE_SOA
_HHIH = struct.Struct(">HHIH")


def to6(prefix: ipaddress.IPv6Network, a: bytes) -> bytes:
    """RFC 6052 §2.2: the IPv4 bytes after the prefix, skipping byte 8 (the u octet)."""
    return mapped(prefix.network_address.packed[: prefix.prefixlen // 8], a)


def mapped(head: bytes, a: bytes) -> bytes:
    """`to6` from the prefix's first octets (`head`: 4 to 12 of them, the prefix lengths setup accepts)."""
    n = len(head)
    if n <= 8:
        return (head + a[: 8 - n] + b"\x00" + a[8 - n :]).ljust(16, b"\x00")
    return (head + a).ljust(16, b"\x00")


class _Intercept(WriterWrapper):
    """Holds the reply of the rest of the chain (CoreDNS's nonwriter); when the query completes below,
    dns64 passes it on or looks the A records up by continuation (`finish`)."""

    __slots__ = ("plugin", "reply", "req")

    def __init__(self, inner: ResponseWriter, plugin: DNS64, req: Request) -> None:
        super().__init__(inner)
        self.plugin = plugin
        self.req = req
        self.reply: Reply | None = None

    def write(self, reply: Reply) -> None:
        self.written = True
        self.reply = reply

    def done(self, rcode: int, error: BaseException | None = None) -> None:
        if error is not None:  # the chain below failed: its error goes up, nothing is written
            self.inner.done(rcode, error)
            return
        try:
            rc = self.finish(rcode)
        except PluginError as e:
            self.inner.done(e.rcode, e)
            return
        except Exception as e:  # a panic, as on the fast path
            self.inner.done(wire.SERVFAIL, e)
            return
        if rc is not PENDING:  # PENDING: the A lookup completes the writer below
            self.inner.done(rc)

    def finish(self, rc: int) -> int:
        """The reply below goes out unchanged, or the A lookup through the server starts (`self_lookup`,
        no task): its rcode when it answered at once, else PENDING."""
        reply, req, w = self.reply, self.req, self.inner
        if reply is None:  # nothing written below: its rcode goes up
            return rc
        data = wire.to_bytes(reply)
        lay = layout_of(data)
        if not self.plugin.should_translate(data, lay):
            w.write(reply)
            return rc
        # the lowercased name (CoreDNS's req.Name()), as wire: no text written back to wire
        return self_lookup(req.copy_with(wire_qname=req.qname_wire, qtype=TYPE_A), w,
                           partial(self.plugin.synthesized, req, w, soa_ttl(data, lay)))


class DNS64(WaitingHandler):
    """Intercepted queries wait twice without a task: for the rest of the chain (forward's PENDING
    completes `_Intercept`) and for the A lookup (`self_lookup`)."""

    name = "dns64"

    def __init__(self, prefix: ipaddress.IPv6Network, translate_all: bool, allow_ipv4: bool, server: str) -> None:
        self.prefix = prefix
        self.head = prefix.network_address.packed[: prefix.prefixlen // 8]  # what A records map after
        self.translate_all = translate_all
        self.allow_ipv4 = allow_ipv4
        self.server = server

    def intercepts(self, req: Request) -> bool:
        if not self.allow_ipv4 and req.family == 1:
            return False
        return req.qtype == TYPE_AAAA and req.qclass == IN

    def start(self, req: Request, w: ResponseWriter) -> int:
        if not self.intercepts(req):
            return self.next_continue(req, w)
        cap = _Intercept(w, self, req)
        rc = self.next_continue(req, cap)  # a PluginError goes up as it is: nothing was written
        if rc is PENDING:
            return PENDING  # type: ignore[no-any-return]
        return cap.finish(rc)

    def synthesized(self, req: Request, w: ResponseWriter, soa_ttl: int, a_reply: Reply | None) -> int:
        """The A lookup's reply arrived: write the synthesised AAAA reply (CoreDNS's DoDNS64)."""
        if a_reply is None:
            return wire.SERVFAIL
        w.write(self.synthesize(req, soa_ttl, wire.to_bytes(a_reply)))
        translated_total.inc(req.listener.label if req.listener is not None else self.server)  # WithServer(ctx)
        return wire.NOERROR  # the reply's rcode: a fresh SetReply's

    def should_translate(self, data: bytes, lay: Layout) -> bool:
        """RFC 6147 5.1: not NXDOMAIN, and no AAAA in the answer (any answer with translate_all)."""
        if data[3] & 0xF == wire.NXDOMAIN and response.typify(data) == response.Type.NAMEERROR:
            return False  # (NAMEERROR is an NXDOMAIN rcode with more: no walk for the other rcodes)
        if self.translate_all:
            return True
        return TYPE_AAAA not in lay.types[: lay.counts[0]]

    def synthesize(self, req: Request, soa_ttl: int, a_reply: bytes) -> bytes:
        """CoreDNS's Synthesize on the wire: a fresh reply (rcode 0, no AA) with the A reply's TC bit,
        authority and additional; its A records become AAAA in the prefix with TTL min(A, SOA), other
        answers pass unchanged. The records are spliced uncompressed (`uncompressed`), so no dnslib
        parse or pack."""
        lay = layout_of(a_reply)
        records = uncompressed(a_reply, lay)
        an, ns, ar = lay.counts
        answers = []
        for rr in records[:an]:
            end = wire.skip_name(rr, 0)
            rtype, rclass, ttl, rdlen = _HHIH.unpack_from(rr, end)
            if rtype != TYPE_A:
                answers.append(rr)
                continue
            if rdlen != 4:
                raise wire.WireError("A record of the lookup is not 4 octets")
            v6 = mapped(self.head, rr[end + 10 : end + 14])
            answers.append(rr[:end] + _HHIH.pack(TYPE_AAAA, rclass, min(ttl, soa_ttl), 16) + v6)
        head = bytearray(req.reply_header(an=an, ns=ns, ar=ar))
        head[2] |= (wire.header(a_reply)[1] & wire.TC) >> 8
        return bytes(head) + req.question + b"".join(answers) + b"".join(records[an:])


def soa_ttl(data: bytes, lay: Layout) -> int:
    """The TTL of the last SOA in the authority section of `data`, else DEFAULT_SOA_TTL (RFC 6147 5.1.7)."""
    ttl = DEFAULT_SOA_TTL
    an, ns, _ar = lay.counts
    for i in range(an, an + ns):
        if lay.types[i] == TYPE_SOA:
            ttl = _HHIH.unpack_from(data, wire.skip_name(data, lay.starts[i]))[2]
    return ttl
