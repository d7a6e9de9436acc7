"""The local handler: fixed answers under localhost. and the 0/127/255 in-addr.arpa zones.

Everything has TTL 604800; denials carry `<origin> SOA localhost. root.localhost. 1 0 0 0 604800`.
Like CoreDNS, replies are not authoritative (SetReply only) and owner names keep the query's case.
"""

from __future__ import annotations

from dnslib import AAAA, NS, PTR, QTYPE, RR, SOA, A, DNSLabel

from pycoredns import wire
from pycoredns.plugin import NEXT, SyncHandler
from pycoredns.request import Request, ResponseWriter
from pycoredns.util import zone_match
from pycoredns.wire import ReplyMemo

from .metrics import localhost_total

TTL = 604800
ZONES = ["localhost.", "0.in-addr.arpa.", "127.in-addr.arpa.", "255.in-addr.arpa."]
APEXES = frozenset(ZONES)
LOOPBACK_PTR = "1.0.0.127.in-addr.arpa."


def soa(origin: DNSLabel | str) -> RR:
    return RR(origin, QTYPE.SOA, ttl=TTL, rdata=SOA("localhost.", "root.localhost.", (1, 0, 0, 0, TTL)))


def loopback(req: Request, owner: DNSLabel) -> RR | None:
    """A 127.0.0.1 / ::1 answer for A / AAAA queries, None for other types."""
    if req.qtype == QTYPE.A:
        return RR(owner, QTYPE.A, ttl=TTL, rdata=A("127.0.0.1"))
    if req.qtype == QTYPE.AAAA:
        return RR(owner, QTYPE.AAAA, ttl=TTL, rdata=AAAA("::1"))
    return None


class Local(SyncHandler):
    name = "local"

    def __init__(self, disable_localhost_prefix: bool = False) -> None:
        self.disable_prefix = disable_localhost_prefix
        self.memo = ReplyMemo()  # every answer depends only on the question: built once, then bytes

    def handle(self, req: Request, w: ResponseWriter) -> int:
        name = req.name
        long = len(name) > len("localhost.")
        localhost_sub = long and (name.endswith(".localhost.") or
                                  (not self.disable_prefix and name.startswith("localhost.")))
        hit = self.memo.get(req.flags, req.question, req.id)
        if hit is not None:
            if localhost_sub:
                localhost_total.inc()
            w.write(hit)
            return 0
        if localhost_sub:
            localhost_total.inc()
            return self._answer(req, w, self._localhost(req))
        zone = zone_match(ZONES, name)
        if zone is None:
            return NEXT
        m = req.reply_record()
        qname = req.qlabel
        zone_owner = DNSLabel(qname.label[len(qname.label) - len(DNSLabel(zone).label):])
        qtype = req.qtype
        if name in APEXES:
            if qtype in (QTYPE.A, QTYPE.AAAA) and name == "localhost.":
                m.add_answer(loopback(req, qname))
            elif qtype == QTYPE.SOA:
                m.add_answer(soa(qname))
            elif qtype == QTYPE.NS:
                m.add_answer(RR(qname, QTYPE.NS, ttl=TTL, rdata=NS("localhost.")))
            else:
                m.add_auth(soa(qname))
        elif name == LOOPBACK_PTR:
            if qtype == QTYPE.PTR:
                m.add_answer(RR(qname, QTYPE.PTR, ttl=TTL, rdata=PTR("localhost.")))
            else:
                m.add_auth(soa(zone_owner))
        if not m.rr and not m.auth:
            m.add_auth(soa(zone_owner))
            m.header.rcode = wire.NXDOMAIN
        return self._answer(req, w, m)

    def _answer(self, req: Request, w: ResponseWriter, m) -> int:
        data = bytes(m.pack())
        self.memo.put(req.flags, req.question, data)
        w.write(data)
        return 0

    @staticmethod
    def _localhost(req: Request):
        m = req.reply_record()
        rr = loopback(req, req.qlabel)
        if rr is not None:
            m.add_answer(rr)
        else:
            m.add_auth(soa(req.qlabel))
        return m
