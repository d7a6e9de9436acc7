"""any: answer ANY queries with the RFC 8482 HINFO record (CoreDNS `any`)."""

from __future__ import annotations

from dnslib import HINFO, QTYPE, RR

from pycoredns.plugin import NEXT, Controller, SyncHandler
from pycoredns.request import Request, ResponseWriter


class Any(SyncHandler):
    name = "any"

    def handle(self, req: Request, w: ResponseWriter) -> int:
        if req.qtype != QTYPE.ANY:
            return NEXT
        m = req.reply_record()
        m.add_answer(RR(req.qname, QTYPE.HINFO, rclass=req.qclass, ttl=8482,
                        rdata=HINFO(b"ANY obsoleted", b"See RFC 8482")))
        w.write(m)
        return 0


def setup(c: Controller) -> None:
    for _ in c.occurrences():
        if c.next_arg():
            raise c.arg_err()
    c.add_handler(Any())
