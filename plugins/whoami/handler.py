"""The whoami handler: the client's address and port in the additional section.

Answers every query, whatever the type: empty answer, AA set, additional holds an A/AAAA record named
after the qname with the client's IP and `_<proto>.<qname>` SRV 0 0 <port> `.`, all with TTL 0 and
the query's class. The reply is built directly on the wire (it is the default server's hot path).
"""

from __future__ import annotations

import socket
import struct

from pycoredns.plugin import Request, ResponseWriter, SyncHandler
from pycoredns.wire import TYPE_A, TYPE_AAAA, TYPE_SRV

MAX_NAME = 255  # octets of a wire-format name (RFC 1035 3.1)


class Whoami(SyncHandler):
    name = "whoami"

    def handle(self, req: Request, w: ResponseWriter) -> int:
        ip = req.remote[0]
        if ":" in ip:
            rtype, rdata = TYPE_AAAA, socket.inet_pton(socket.AF_INET6, ip.split("%")[0])
        else:
            rtype, rdata = TYPE_A, socket.inet_aton(ip)
        cls = req.qclass
        owner = b"\xc0\x0c"  # pointer to the qname in the question
        addr_rr = owner + struct.pack(">HHIH", rtype, cls, 0, len(rdata)) + rdata
        proto = b"_" + req.proto.encode()
        if len(req.qname_wire) + 1 + len(proto) > MAX_NAME:  # `_udp.<qname>` would be no valid name
            w.write(req.reply_header(0, ar=1, aa=True) + req.question + addr_rr)
            return 0
        srv_owner = bytes([len(proto)]) + proto + (b"\x00" if req.qname_wire == b"\x00" else owner)
        srv_rr = srv_owner + struct.pack(">HHIHHHH", TYPE_SRV, cls, 0, 7, 0, 0, req.remote[1]) + b"\x00"
        w.write(req.reply_header(0, ar=2, aa=True) + req.question + addr_rr + srv_rr)
        return 0
