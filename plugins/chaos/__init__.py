"""chaos: CH-class TXT answers for version.bind, authors.bind, hostname.bind (CoreDNS `chaos`)."""

from __future__ import annotations

import random
import socket

from dnslib import CLASS, QTYPE, RR, TXT

from pycoredns import COREDNS_VERSION
from pycoredns.plugin import NEXT, Controller, SyncHandler
from pycoredns.request import Request, ResponseWriter

AUTHORS = ["bradbeam", "chrisohaver", "dilyevsky", "ekleiner", "fastest963", "greenpau", "ihac",
           "inigohu", "isolus", "johnbelamaric", "miekg", "mqasimsarfraz", "nchrisdk", "nitisht",
           "pmoroney", "rajansandeep", "rdrozhdzh", "rtreffer", "snebel29", "stp-ip", "superq",
           "varyoo", "ykhr53", "yongtang", "zouyee"]


class Chaos(SyncHandler):
    name = "chaos"

    def __init__(self, version: str, authors: list[str]) -> None:
        self.version = version
        self.authors = authors

    def handle(self, req: Request, w: ResponseWriter) -> int:
        if req.qclass != CLASS.CH or req.qtype != QTYPE.TXT:
            return NEXT
        name = req.name
        if name in ("authors.bind.",):
            texts = list(self.authors)
            random.shuffle(texts)
        elif name in ("version.bind.", "version.server."):
            texts = [self.version]
        elif name in ("hostname.bind.", "id.server."):
            texts = [socket.gethostname()]
        else:
            return NEXT
        m = req.reply_record()
        for t in texts:
            m.add_answer(RR(req.qlabel, QTYPE.TXT, rclass=CLASS.CH, ttl=0, rdata=TXT(t.encode()[:255])))
        w.write(m)
        return 0


def setup(c: Controller) -> None:
    version, authors = f"CoreDNS-{COREDNS_VERSION}", AUTHORS
    for _ in c.occurrences():
        args = c.remaining_args()
        if args:
            version = args[0]
        if len(args) > 1:
            authors = args[1:]
        if c.next_block():
            raise c.arg_err()
    c.add_handler(Chaos(version, authors))
