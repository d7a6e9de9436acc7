"""hello: a third-party pycoredns plugin, registered through the `pycoredns.plugins` entry point.

    hello [ZONES...] {
        text WORDS...
    }

Answers TXT queries for names in ZONES with the text (default "hello"); everything else goes on.
"""

from __future__ import annotations

from dnslib import QTYPE, RR, TXT

from pycoredns.plugin import NEXT, Controller, Request, ResponseWriter, SyncHandler
from pycoredns.util import zone_match

AFTER = "cache"  # slot into the chain right behind the cache, like CoreDNS's plugin.cfg position


class Hello(SyncHandler):
    name = "hello"

    def __init__(self, zones: list[str], text: str) -> None:
        self.zones = zones
        self.text = text

    def handle(self, req: Request, w: ResponseWriter) -> int:
        if req.qtype != QTYPE.TXT or zone_match(self.zones, req.name) is None:
            return NEXT
        m = req.reply_record()
        m.header.aa = 1
        m.add_answer(RR(req.qname, QTYPE.TXT, ttl=60, rdata=TXT(self.text.encode())))
        w.write(m)
        return 0


def setup(c: Controller) -> None:
    for _ in c.occurrences(once=True):
        zones = c.zones_from(c.remaining_args())
        text = "hello"
        while c.next_block():
            if c.val() != "text":
                raise c.err(f"unknown property '{c.val()}'")
            words = c.remaining_args()
            if not words:
                raise c.arg_err()
            text = " ".join(words)
    c.add_handler(Hello(zones, text))
