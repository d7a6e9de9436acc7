"""hosts: answer A, AAAA and PTR from a hosts(5) file and inline entries (CoreDNS `hosts`).

Every answer is precomputed on load: a lookup is one dict hit on the wire qname and one join of
bytes. The file is re-read when its mtime or size changes (checked every `reload`, default 5s).
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
import struct

import trio

from pycoredns import metrics, wire
from pycoredns.log import plugin_logger
from pycoredns.plugin import NEXT, Controller, SyncHandler
from pycoredns.request import Request, ResponseWriter
from pycoredns.util import Fallthrough, fqdn, parse_duration, zone_match

log = plugin_logger("hosts")

TYPE_A, TYPE_AAAA, TYPE_PTR = 1, 28, 12
DEFAULT_PATH = "/etc/hosts"
DEFAULT_TTL = 3600
DEFAULT_RELOAD = 5.0
_QPTR = b"\xc0\x0c"  # owner name = pointer to the question's name
_RR_FIXED = struct.Struct(">HHIH")
_ATOI = re.compile(r"[+-]?[0-9]+")  # strconv.Atoi

entries_gauge = metrics.REGISTRY.gauge(
    "coredns_hosts_entries", "The combined number of entries in hosts and Corefile.")
reload_timestamp = metrics.REGISTRY.gauge(
    "coredns_hosts_reload_timestamp_seconds", "The timestamp of the last reload of hosts file.")
hits_total = metrics.REGISTRY.counter("coredns_hosts_hits_total", "The number of requests served from the hosts file")
_HITS = hits_total.values

IP = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_ip(text: str) -> IP | None:
    """Go's net.ParseIP after dropping an IPv6 zone; IPv4-mapped IPv6 becomes IPv4 (To4)."""
    text = text.split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class HostsMap:
    """One parsed source: name -> addresses per family, address -> names (for PTR)."""

    __slots__ = ("addr", "name4", "name6")

    def __init__(self) -> None:
        self.name4: dict[str, list[IP]] = {}
        self.name6: dict[str, list[IP]] = {}
        self.addr: dict[IP, list[str]] = {}

    def __len__(self) -> int:
        """CoreDNS's Map.Len: addresses of every name plus names of every address (PTR entries)."""
        return sum(len(v) for table in (self.name4, self.name6, self.addr) for v in table.values())


def parse_hosts(lines: list[str], origins: list[str], reverse: bool) -> HostsMap:
    """hosts(5) lines into a map; names outside `origins` are ignored, like CoreDNS."""
    m = HostsMap()
    for line in lines:
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2:
            continue
        ip = parse_ip(fields[0])
        if ip is None:
            continue
        table = m.name4 if ip.version == 4 else m.name6
        for raw in fields[1:]:
            name = fqdn(raw.lower())
            if zone_match(origins, name) is None:
                continue
            table.setdefault(name, []).append(ip)
            if reverse and not name.startswith("*."):  # no PTR for wildcard names
                m.addr.setdefault(ip, []).append(name)
    return m


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
        _HITS[()] = _HITS.get((), 0.0) + 1.0
        return wire.NOERROR


def setup(c: Controller) -> None:
    path = DEFAULT_PATH
    origins: list[str] = list(c.zones)
    inline: list[str] = []
    ttl, reverse, reload = DEFAULT_TTL, True, DEFAULT_RELOAD
    fall = Fallthrough()
    for _ in c.occurrences(once=True):
        args = c.remaining_args()
        if args:
            path = c.path(args[0])
            _check_file(c, path)
        origins = c.zones_from(args[1:])
        while c.next_block():
            opt = c.val()
            if opt == "fallthrough":
                fall.set_zones(c.remaining_args())
            elif opt == "no_reverse":
                reverse = False
            elif opt == "ttl":
                ttl = _ttl(c)
            elif opt == "reload":
                reload = _reload(c)
            elif not fall:
                inline.append(" ".join([opt, *c.remaining_args()]))
            else:
                raise c.err(f"unknown property '{opt}'")
    h = Hosts(path, origins, inline, ttl, reverse, reload, fall)

    async def load() -> None:
        h.read()

    c.on_startup(load)
    if reload > 0:
        c.start_soon(h.reload_loop)
    c.add_handler(h)


def _check_file(c: Controller, path: str) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        log.warning(f"File does not exist: {path}")
        return
    except OSError as e:
        raise c.err(f"unable to access hosts file '{path}': {e.strerror or e}") from None
    except ValueError:  # a NUL byte in the path (Go: invalid argument)
        raise c.err(f"unable to access hosts file '{path}': invalid argument") from None
    if stat.S_ISDIR(st.st_mode):
        log.warning(f'Hosts file "{path}" is a directory')


def _ttl(c: Controller) -> int:
    args = c.remaining_args()
    if not args:
        raise c.err("ttl needs a time in second")
    if not _ATOI.fullmatch(args[0]):
        raise c.err("ttl needs a number of second")
    ttl = int(args[0])
    if ttl <= 0 or ttl > 65535:
        raise c.err("ttl provided is invalid")
    return ttl


def _reload(c: Controller) -> float:
    args = c.remaining_args()
    if len(args) != 1:
        raise c.err("reload needs a duration (zero seconds to disable)")
    try:
        value = parse_duration(args[0])
    except ValueError:
        raise c.err(f"invalid duration for reload '{args[0]}'") from None
    if value < 0:
        raise c.err(f"invalid negative duration for reload '{args[0]}'")
    return value


__all__ = ["Hosts", "HostsMap", "parse_hosts", "setup"]
