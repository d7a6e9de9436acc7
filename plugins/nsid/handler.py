"""The nsid handler: a writer that puts `NSID = hex(DATA)` into the reply's OPT.

As in CoreDNS, only queries carrying an (empty) NSID option get one; a reply without an OPT gets a
fresh OPT (the request's UDP size, DO set; the server then normalises DO to the request's) holding
only the NSID option; an NSID already in the reply is replaced.
"""

from __future__ import annotations

import struct

from pycoredns import wire
from pycoredns.plugin import Wrapper, WrapperHandler
from pycoredns.request import Request, ResponseWriter
from pycoredns.wire import Reply

NSID = 3
_OPT_HEAD = struct.Struct(">HHIH")  # type, class (UDP size), ttl (ext-rcode, version, flags), rdlength


def options(rdata: bytes) -> list[tuple[int, bytes]]:
    out = []
    off = 0
    while off + 4 <= len(rdata):
        code, length = struct.unpack_from(">HH", rdata, off)
        out.append((code, rdata[off + 4 : off + 4 + length]))
        off += 4 + length
    return out


def with_nsid(data: bytes, value: bytes, udp_size: int) -> bytes:
    """The reply with NSID set in its OPT (added when missing). Unparsable replies pass unchanged."""
    try:
        _qend, _ttls, opt = wire.rr_layout(data)
    except wire.WireError:
        return data
    nsid = struct.pack(">HH", NSID, len(value)) + value
    if opt < 0:
        arcount = ((data[10] << 8) | data[11]) + 1
        rr = b"\x00" + _OPT_HEAD.pack(wire.TYPE_OPT, udp_size, 0x8000, len(nsid)) + nsid
        return data[:10] + arcount.to_bytes(2, "big") + data[12:] + rr
    name_end = wire.skip_name(data, opt)
    _t, cls, ttl, rdlen = _OPT_HEAD.unpack_from(data, name_end)
    rd_start = name_end + _OPT_HEAD.size
    opts = options(data[rd_start : rd_start + rdlen])
    if any(code == NSID for code, _ in opts):
        rdata = b"".join(nsid if code == NSID else struct.pack(">HH", code, len(v)) + v for code, v in opts)
    else:
        rdata = data[rd_start : rd_start + rdlen] + nsid
    head = _OPT_HEAD.pack(wire.TYPE_OPT, cls, ttl, len(rdata))
    return data[:name_end] + head + rdata + data[rd_start + rdlen :]


class _NsidWriter(Wrapper):
    __slots__ = ("size", "value")

    def __init__(self, inner: ResponseWriter, value: bytes, size: int) -> None:
        super().__init__(inner)
        self.value = value
        self.size = size

    def write(self, reply: Reply) -> None:
        super().write(with_nsid(wire.to_bytes(reply), self.value, self.size))


class Nsid(WrapperHandler):
    name = "nsid"

    def __init__(self, data: str) -> None:
        # CoreDNS sends hex.EncodeToString(DATA) as the option's text, i.e. the raw DATA bytes on the wire
        self.value = data.encode()

    def wrap(self, req: Request, w: ResponseWriter) -> tuple[Request, Wrapper] | None:
        edns = req.edns
        if edns is not None and any(code == NSID for code, _ in edns.option_list()):
            return req, _NsidWriter(w, self.value, edns.udp_size)
        return None
