"""The chaos handler: CH-class TXT answers for the server's version, authors and host name."""

from __future__ import annotations

import random
import socket
from collections.abc import Callable

from dnslib import CLASS, QTYPE, RR, TXT

from pycoredns.plugin import NEXT, Request, ResponseWriter, SyncHandler

AUTHORS = ["bradbeam", "chrisohaver", "dilyevsky", "ekleiner", "fastest963", "greenpau", "ihac",
           "inigohu", "isolus", "johnbelamaric", "miekg", "mqasimsarfraz", "nchrisdk", "nitisht",
           "pmoroney", "rajansandeep", "rdrozhdzh", "rtreffer", "snebel29", "stp-ip", "superq",
           "varyoo", "ykhr53", "yongtang", "zouyee"]


class Chaos(SyncHandler):
    name = "chaos"

    def __init__(self, version: str, authors: list[str]) -> None:
        self.version = version
        self.authors = authors
        # qname -> the TXT strings of the answer (made per query: shuffled authors, current host name)
        self.names: dict[str, Callable[[], list[str]]] = {
            "authors.bind.": self._authors,
            "version.bind.": self._version, "version.server.": self._version,
            "hostname.bind.": self._hostname, "id.server.": self._hostname,
        }

    def _authors(self) -> list[str]:
        texts = list(self.authors)
        random.shuffle(texts)
        return texts

    def _version(self) -> list[str]:
        return [self.version]

    @staticmethod
    def _hostname() -> list[str]:
        return [socket.gethostname()]

    def handle(self, req: Request, w: ResponseWriter) -> int:
        if req.qclass != CLASS.CH or req.qtype != QTYPE.TXT:
            return NEXT
        texts = self.names.get(req.name)
        if texts is None:
            return NEXT
        m = req.reply_record()
        for t in texts():
            m.add_answer(RR(req.qlabel, QTYPE.TXT, rclass=CLASS.CH, ttl=0, rdata=TXT(t.encode()[:255])))
        w.write(m)
        return 0
