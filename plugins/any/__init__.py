"""any: answer ANY queries with the RFC 8482 HINFO record (CoreDNS `any`)."""

from __future__ import annotations

from dnslib import QTYPE, RD, RR

from pycoredns.plugin import NEXT, Controller, SyncHandler
from pycoredns.request import Request, ResponseWriter

HINFO_RDATA = b"\x0dANY obsoleted\x0cSee RFC 8482"  # two character-strings: CPU and OS


class Any(SyncHandler):
    name = "any"

    def handle(self, req: Request, w: ResponseWriter) -> int:
        if req.qtype != QTYPE.ANY:
            return NEXT
        m = req.reply_record()
        m.add_answer(RR(req.qlabel, QTYPE.HINFO, rclass=req.qclass, ttl=8482, rdata=RD(HINFO_RDATA)))
        w.write(m)
        return 0


def setup(c: Controller) -> None:
    for _ in c.occurrences():
        if c.next_arg():
            raise c.arg_err()
    c.add_handler(Any())
