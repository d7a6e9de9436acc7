"""The bufsize handler: lower the query's EDNS UDP size before the rest of the chain sees it.

CoreDNS changes the request's OPT in place, so everything after (forward's upstream query, the
server's truncation and the OPT mirrored into the reply) uses the new size; here the request gets
new wire bytes and a new `Edns` (requests with the same bytes share one, so it is never mutated).
"""

from __future__ import annotations

import struct

from pycoredns import wire
from pycoredns.plugin import Wrapper, WrapperHandler
from pycoredns.request import Edns, Request, ResponseWriter


def opt_offset(data: bytes, qend: int) -> int:
    """Offset of the OPT record's owner name in a query, or -1."""
    _id, _flags, _qd, an, ns, ar = wire.header(data)
    off = qend
    for i in range(an + ns + ar):
        start = off
        rtype, _, off = wire.skip_rr(data, off)
        if rtype == wire.TYPE_OPT and i >= an + ns:
            return start
    return -1


def cap_udp_size(req: Request, size: int) -> None:
    """Set the request's EDNS UDP size to `size` when it announces more."""
    edns = req.edns
    if edns is None or edns.udp_size <= size:
        return
    data = req.wire
    off = opt_offset(data, req.qend)
    if off < 0:
        return
    cls = wire.skip_name(data, off) + 2
    req.wire = data[:cls] + struct.pack(">H", size) + data[cls + 2 :]
    req.edns = Edns(size, edns.version, edns.flags, edns.options)


class Bufsize(WrapperHandler):
    name = "bufsize"

    def __init__(self, size: int) -> None:
        self.size = size

    def wrap(self, req: Request, w: ResponseWriter) -> tuple[Request, Wrapper] | None:
        cap_udp_size(req, self.size)  # the request changes; the writer does not
        return None
