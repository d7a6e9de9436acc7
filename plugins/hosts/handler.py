"""The hosts handler: A, AAAA and PTR answers precomputed on load, re-read when the file changes.

A lookup is one dict hit on the wire qname and one join of bytes. The file is re-read when its mtime
or size changes (checked every `reload`, default 5s).
"""

from __future__ import annotations

import os
import struct

import trio

from pycoredns import wire
from pycoredns.log import plugin_logger
from pycoredns.plugin import NEXT, Request, ResponseWriter, SyncHandler
from pycoredns.util import Fallthrough
from pycoredns.wire import TYPE_A, TYPE_AAAA, TYPE_PTR

from .hostsfile import HostsMap, parse_hosts
from .metrics import HITS, entries_gauge, reload_timestamp

log = plugin_logger("hosts")

_QPTR = b"\xc0\x0c"  # owner name = pointer to the question's name
_RR_FIXED = struct.Struct(">HHIH")


def _wire(name: str) -> bytes | None:
    """Lowercased wire form of a hosts-file name; None for names that cannot be on the wire."""
    try:
        w = wire.text_to_wire(name).lower()
        labels, end = wire.read_name(w, 0)
    except (ValueError, UnicodeError):  # label over 255 bytes, or WireError (a ValueError)
        return None
    if end != len(w) or any(len(label) > 63 for label in labels):
        return None
    return w


def _rr(rtype: int, ttl: int, rdata: bytes) -> bytes:
    """A record without its owner name (type, class IN, TTL, rdata)."""
    return _RR_FIXED.pack(rtype, 1, ttl, len(rdata)) + rdata


class Answers:
    """Precomputed answers: wire qname -> {qtype: record tails}, reverse wire name -> PTR tails.

    `wild` holds `*.parent` entries keyed by the parent's wire name: a miss on `label.parent`
    tries it (one label only, never the apex), as CoreDNS HEAD does.
    """

    __slots__ = ("names", "ptrs", "wild")

    def __init__(self, maps: list[HostsMap], ttl: int) -> None:
        self.names: dict[bytes, dict[int, list[bytes]]] = {}
        self.wild: dict[bytes, dict[int, list[bytes]]] = {}
        self.ptrs: dict[bytes, list[bytes]] = {}
        for m in maps:  # file first, then inline: CoreDNS's merge order
            for table, rtype in ((m.name4, TYPE_A), (m.name6, TYPE_AAAA)):
                for name, ips in table.items():
                    key = _wire(name)
                    if key is None:
                        continue
                    target = self.names
                    if key.startswith(b"\x01*"):
                        target, key = self.wild, key[2:]
                    target.setdefault(key, {}).setdefault(rtype, []).extend(_rr(rtype, ttl, ip.packed) for ip in ips)
            for ip, names in m.addr.items():
                targets = [t for t in map(_wire, names) if t is not None]
                if targets:
                    self.ptrs.setdefault(wire.text_to_wire(ip.reverse_pointer + "."), []).extend(
                        _rr(TYPE_PTR, ttl, t) for t in targets)


def _reply(req: Request, tails: list[bytes]) -> bytes:
    """NOERROR, AA, the records named after the qname (lowercased, as CoreDNS's state.Name())."""
    question_name = req.wire[12 : req.qend - 4]
    owner = _QPTR if question_name == req.qname_wire else req.qname_wire
    return req.reply_header(0, an=len(tails), aa=True) + req.question + b"".join(owner + t for t in tails)


class Hosts(SyncHandler):
    name = "hosts"

    def __init__(self, path: str, origins: list[str], inline: list[str], ttl: int, reverse: bool,
                 reload: float, fall: Fallthrough) -> None:
        self.path = path
        self.origins = origins
        self.origin_wires = {wire.text_to_wire(z).lower() for z in origins}
        self.ttl = ttl
        self.reverse = reverse
        self.reload = reload
        self.fall = fall
        self.inline = parse_hosts(inline, origins, reverse)
        self.file = HostsMap()
        self.stamp: tuple[float, int] | None = None
        self.answers = Answers([self.file, self.inline], ttl)
        self._publish()

    # -- loading -------------------------------------------------------------------------------
    def read(self) -> bool:
        """Re-read the file if its mtime or size changed; True when the table was rebuilt."""
        try:
            with open(self.path, encoding="utf-8", errors="replace") as f:
                st = os.fstat(f.fileno())
                stamp = (st.st_mtime, st.st_size)
                if stamp == self.stamp:
                    return False
                lines = f.read().splitlines()
        except OSError:
            return False  # a missing file was reported at setup; keep what we have
        self.file = parse_hosts(lines, self.origins, self.reverse)
        self.stamp = stamp
        self.answers = Answers([self.file, self.inline], self.ttl)
        log.debug(f"Parsed hosts file into {len(self.file)} entries")
        self._publish()
        reload_timestamp.set(value=stamp[0])
        return True

    def _publish(self) -> None:
        entries_gauge.set(value=len(self.file) + len(self.inline))

    async def reload_loop(self) -> None:
        while True:
            await trio.sleep(self.reload)
            self.read()

    # -- serving -------------------------------------------------------------------------------
    def _in_zone(self, qn: bytes) -> bool:
        zones = self.origin_wires
        off = 0
        while True:
            if qn[off:] in zones:
                return True
            length = qn[off]
            if length == 0:
                return False
            off += 1 + length

    def handle(self, req: Request, w: ResponseWriter) -> int:
        qn = req.qname_wire
        qtype = req.qtype
        answers = self.answers
        if qtype == TYPE_PTR:
            tails = answers.ptrs.get(qn)
            if not tails:
                return NEXT  # reverse misses always go on, fallthrough or not
        else:
            types = answers.names.get(qn)
            if types is None and answers.wild and qn[0]:
                types = answers.wild.get(qn[1 + qn[0] :])
            if types is None:
                if not self._in_zone(qn) or self.fall.through(req.name):
                    return NEXT
                return wire.SERVFAIL  # no SOA to build an NXDOMAIN with
            tails = types.get(qtype, [])  # empty: NODATA without SOA
        w.write(_reply(req, tails))
        HITS[()] = HITS.get((), 0.0) + 1.0
        return wire.NOERROR
