"""hello: a leaf that never waits (SyncHandler): answers hello.test. A 192.0.2.1, passes the rest on."""

from __future__ import annotations

import struct

from pycoredns import wire
from pycoredns.plugin import NEXT, Controller, Request, ResponseWriter, SyncHandler

AFTER = "slow"  # chain position (a directive name)
_A = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + bytes((192, 0, 2, 1))


class Hello(SyncHandler):
    name = "hello"

    def handle(self, req: Request, w: ResponseWriter) -> int:
        if req.name != "hello.test." or req.qtype != 1:
            return NEXT  # type: ignore[no-any-return]
        w.write(req.reply_header(an=1, aa=True) + req.question + _A)
        return wire.NOERROR


def setup(c: Controller) -> None:
    for _ in c.occurrences():
        if c.next_arg():
            raise c.arg_err()
    c.add_handler(Hello())
