"""The any handler: ANY queries get the RFC 8482 HINFO record, everything else goes on."""

from __future__ import annotations

from dnslib import QTYPE, RD, RR

from pycoredns.plugin import NEXT, Request, ResponseWriter, SyncHandler

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
