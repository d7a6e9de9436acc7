"""loadbalance: shuffle A, AAAA and MX records of NOERROR replies (CoreDNS `loadbalance`).

It wraps the writer, so it also runs on every cache hit. The common reply (records named by a
pointer to the question, address records and an OPT only) is reordered as byte slices, since
moving records whose owner points at the question cannot break any compression pointer; anything
else goes through dnslib.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import random
import re
import struct
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import trio
from dnslib import QTYPE, DNSRecord

from pycoredns import wire
from pycoredns.log import plugin_logger
from pycoredns.plugin import ConfigError, Controller, Handler
from pycoredns.request import Request, ResponseWriter, WriterWrapper
from pycoredns.util import format_duration, parse_duration
from pycoredns.wire import Reply

log = plugin_logger("loadbalance")

TYPE_A, TYPE_CNAME, TYPE_MX, TYPE_AAAA = 1, 5, 15, 28
ADDRESS = (TYPE_A, TYPE_AAAA)
TYPE_IXFR, TYPE_AXFR = 251, 252
_RR = struct.Struct(">HHIH")
_QPTR = b"\xc0\x0c"

T = TypeVar("T")
Subnet = tuple[int, int, int]  # (version, network int, mask int)


# -- ordering, shared by the wire and the dnslib paths --------------------------------------------


def _shuffle(items: list[T]) -> None:
    """CoreDNS's roundRobinShuffle (random swaps driven by fresh 16-bit ids)."""
    n = len(items)
    if n == 2:
        if random.getrandbits(16) % 2 == 0:
            items[0], items[1] = items[1], items[0]
    elif n > 2:
        for j in range(n):
            p = j + random.getrandbits(16) % (n - j)
            if p != j:
                items[j], items[p] = items[p], items[j]


def _group(items: list[T], type_of: Callable[[T], int]) -> tuple[list[T], list[T], list[T], list[T]]:
    """(CNAMEs, A/AAAA, MX, everything else), each in the original order."""
    cname: list[T] = []
    address: list[T] = []
    mx: list[T] = []
    rest: list[T] = []
    for it in items:
        t = type_of(it)
        (address if t in ADDRESS else cname if t == TYPE_CNAME else mx if t == TYPE_MX else rest).append(it)
    return cname, address, mx, rest


def round_robin(items: list[T], type_of: Callable[[T], int]) -> list[T]:
    """CNAMEs, then other types in order, then shuffled A/AAAA, then shuffled MX."""
    if len(items) <= 1:
        return items
    cname, address, mx, rest = _group(items, type_of)
    _shuffle(address)
    _shuffle(mx)
    return cname + rest + address + mx


def prefer(items: list[T], type_of: Callable[[T], int], ip_of: Callable[[T], tuple[int, int] | None],
           subnets: Sequence[Subnet]) -> list[T]:
    """CoreDNS's reorderRecords: CNAMEs, addresses in the preferred subnets first, MX, the rest."""
    if len(items) <= 1:
        return items
    cname, address, mx, rest = _group(items, type_of)
    ips = [ip_of(a) for a in address]
    seen = [False] * len(address)
    matched: list[T] = []
    for version, net, mask in subnets:
        for i, ip in enumerate(ips):
            if not seen[i] and ip is not None and ip[0] == version and ip[1] & mask == net:
                matched.append(address[i])
                seen[i] = True
    unmatched = [a for i, a in enumerate(address) if not seen[i]]
    return cname + matched + unmatched + mx + rest


# -- the wire path ---------------------------------------------------------------------------------

Slice = tuple[int, bytes]  # (rtype, the whole record)


def _wire_sections(data: bytes, off: int) -> tuple[list[list[Slice]], int] | None:
    """(records per section, end of the last) when every record is movable as bytes, else None.

    Movable: owner is a pointer to the question name and the type is A/AAAA (no names in the
    rdata), or the root-owned OPT. Nothing can then point into the record sections.
    """
    _id, _flags, _qd, an, ns, ar = wire.header(data)
    sections: list[list[Slice]] = []
    unpack = _RR.unpack_from
    for count in (an, ns, ar):
        records: list[Slice] = []
        for _ in range(count):
            if data[off : off + 2] == _QPTR:
                rtype, _cls, _ttl, rdlen = unpack(data, off + 2)
                if rtype not in ADDRESS:
                    return None
                end = off + 12 + rdlen
            elif data[off] == 0:
                rtype, _cls, _ttl, rdlen = unpack(data, off + 1)
                if rtype != wire.TYPE_OPT:
                    return None
                end = off + 11 + rdlen
            else:
                return None
            if end > len(data):
                raise wire.WireError("rdata overruns message")
            records.append((rtype, data[off:end]))
            off = end
        sections.append(records)
    return sections, off


_ADDRESS_RECORD = {  # rtype -> (record length, regex of one record: owner pointer, type, any class/TTL, rdlength)
    TYPE_A: (16, rb"\xc0\x0c\x00\x01.{6}\x00\x04.{4}"),
    TYPE_AAAA: (28, rb"\xc0\x0c\x00\x1c.{6}\x00\x10.{16}"),
}


@functools.lru_cache(maxsize=256)
def _address_run(rtype: int, n: int) -> re.Pattern[bytes]:
    """A regex matching exactly `n` records of the address shape (one C call checks them all)."""
    return re.compile(b"(?:%s){%d}" % (_ADDRESS_RECORD[rtype][1], n), re.DOTALL)


def _shuffle_addresses(data: bytes, qend: int, an: int, ar: int) -> bytes | None:
    """The kubernetes/cache hit shape: only A (or only AAAA) answers named by a pointer to the question,
    no authority, at most an OPT after them. Shuffle fixed-size slices; None for any other shape."""
    if not an or len(data) <= qend + 4:
        return None
    rtype = (data[qend + 2] << 8) | data[qend + 3]
    shape = _ADDRESS_RECORD.get(rtype)
    if shape is None:
        return None
    size = shape[0]
    end = qend + an * size
    tail = data[end:]
    if ar:
        if len(tail) < 11 or tail[0] != 0 or tail[1:3] != b"\x00\x29" or 11 + ((tail[9] << 8) | tail[10]) != len(tail):
            return None
    elif tail:
        return None
    if end > len(data) or _address_run(rtype, an).fullmatch(data, qend, end) is None:
        return None
    if an == 2:  # _shuffle of two items, without building the list
        if random.getrandbits(16) % 2 == 0:
            return data[:qend] + data[qend + size : end] + data[qend : qend + size] + tail
        return data
    parts = [data[o : o + size] for o in range(qend, end, size)]
    _shuffle(parts)
    return data[:qend] + b"".join(parts) + tail


def _slice_type(s: Slice) -> int:
    return s[0]


def _slice_ip(s: Slice) -> tuple[int, int] | None:
    rtype, rr = s
    if rtype == TYPE_A:
        return 4, int.from_bytes(rr[-4:], "big")
    if rtype == TYPE_AAAA:
        return 6, int.from_bytes(rr[-16:], "big")
    return None


# -- the dnslib path -------------------------------------------------------------------------------


def _rr_type(rr) -> int:
    return rr.rtype


def _rr_ip(rr) -> tuple[int, int] | None:
    if rr.rtype not in ADDRESS:
        return None
    try:
        ip = ipaddress.ip_address(str(rr.rdata))
    except ValueError:
        return None
    return ip.version, int(ip)


# -- weighted ---------------------------------------------------------------------------------------

TYPE_SRV = 33
WEIGHTED_TYPES = (TYPE_A, TYPE_AAAA, TYPE_SRV)
DEFAULT_WEIGHT_RELOAD = 30.0


class WeightFileError(Exception):
    """A weight file that cannot be read or parsed; str() is CoreDNS's message."""


def parse_weights(text: str, filename: str) -> dict[str, list[tuple[tuple[int, int], int]]]:
    """Weight file: a domain line, then `IP WEIGHT` lines (1-255); `#` lines are comments."""
    domains: dict[str, list[tuple[tuple[int, int], int]]] = {}
    dname = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) == 1:
            if _parse_ip(fields[0]) is not None:
                raise WeightFileError(f'wrong domain name:"{fields[0]}" in weight file {filename}. '
                                      "(Maybe a missing weight value?)")
            dname = fields[0].lower() if fields[0].endswith(".") else fields[0].lower() + "."
            domains.setdefault(dname, [])
        elif len(fields) == 2:
            ip = _parse_ip(fields[0])
            if ip is None:
                raise WeightFileError(f'wrong IP address:"{fields[0]}" in weight file {filename}')
            if not (fields[1].isascii() and fields[1].isdigit()) or not 0 < int(fields[1]) < 256:
                raise WeightFileError(f'wrong weight value:"{fields[1]}" in weight file {filename}')
            if not dname:
                raise WeightFileError(f"missing domain name in weight file {filename}")
            domains[dname].append((ip, int(fields[1])))
        else:
            raise WeightFileError(f'could not parse weight line:"{line}" in weight file {filename}')
    return domains


def _parse_ip(text: str) -> tuple[int, int] | None:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # Go's net.IP.Equal treats ::ffff:a.b.c.d as a.b.c.d
    return ip.version, int(ip)


class Weighted:
    """The weight file (re-read every `reload` when its md5 changed) and the top-record choice."""

    def __init__(self, path: str, reload: float) -> None:
        self.path = path
        self.reload = reload
        self.digest = b""
        self.domains: dict[str, list[tuple[tuple[int, int], int]]] = {}

    def update(self) -> bool:
        """Re-read the file; True when the weights changed. Raises WeightFileError."""
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except OSError:
            raise WeightFileError("weight file open error") from None
        digest = hashlib.md5(data, usedforsecurity=False).digest()
        if digest == self.digest:
            return False
        self.domains = parse_weights(data.decode("utf-8", "replace"), self.path)
        self.digest = digest
        log.info(f"Successfully reloaded weight file {self.path}")
        return True

    async def reload_loop(self) -> None:
        while True:
            await trio.sleep(self.reload)
            try:
                self.update()
            except WeightFileError as e:
                log.error(str(e))

    def reorder(self, items: list[T], acc: Accessors[T]) -> list[T]:
        """CNAMEs, the rest, the addresses with one chosen by weight swapped to the top, MX."""
        cname, address, mx, rest = _group(items, acc.type_of)
        if not address:
            return items
        top = self._top(address, acc)
        if top > 0:
            address[0], address[top] = address[top], address[0]
        return cname + rest + address + mx

    def _top(self, address: list[T], acc: Accessors[T]) -> int:
        weighted = []
        for i, rr in enumerate(address):
            ip = acc.ip_of(rr)
            weight = next((wt for wip, wt in self.domains.get(acc.name_of(rr), ()) if wip == ip), 1)
            weighted.append((weight, i))
        weighted.sort(key=lambda x: -x[0])
        v = random.randrange(sum(wt for wt, _ in weighted))
        acc_sum = 0
        for wt, i in weighted:
            acc_sum += wt
            if v < acc_sum:
                return i
        return -1


class Accessors(Generic[T]):
    """How to read a record's type, address and owner name, for byte slices or dnslib RRs."""

    __slots__ = ("ip_of", "name_of", "type_of")

    def __init__(self, type_of: Callable[[T], int], ip_of: Callable[[T], tuple[int, int] | None],
                 name_of: Callable[[T], str]) -> None:
        self.type_of = type_of
        self.ip_of = ip_of
        self.name_of = name_of


def _rr_name(rr) -> str:
    return str(rr.rname).lower()


RR_ACCESSORS: Accessors = Accessors(_rr_type, _rr_ip, _rr_name)


class LoadBalance(Handler):
    name = "loadbalance"

    def __init__(self, subnets: list[Subnet], weighted: Weighted | None = None) -> None:
        self.subnets = subnets
        self.weighted = weighted

    async def serve_dns(self, req: Request, w: ResponseWriter) -> int:
        return await self.next_or_failure(req, _Writer(w, self, req.question))

    def serve_fast(self, req: Request, w: ResponseWriter) -> int | None:
        nxt = self.next
        if nxt is None:
            return self.next_fast(req, w)  # raises the "no next plugin" error
        return nxt.serve_fast(req, _Writer(w, self, req.question))

    # -- reordering ----------------------------------------------------------------------------
    def reorder(self, reply: Reply, question: bytes = b"") -> Reply:
        """The reply with its sections reordered; unchanged when it is not a NOERROR answer.

        `question` (the request's question section, optional) saves walking the reply's question
        when the reply repeats it, as replies to the request do.
        """
        if isinstance(reply, (bytes, bytearray)):
            try:
                return self._reorder_wire(reply if type(reply) is bytes else bytes(reply), question)
            except (wire.WireError, IndexError, struct.error):
                return reply  # garbage goes out as it came in
        return self._reorder_record(reply)

    def _reorder_wire(self, data: bytes, question: bytes = b"") -> bytes:
        if len(data) < 12 or data[3] & 0x0F:
            return data
        _id, _flags, qd, an, ns, ar = wire.header(data)
        if qd != 1 or (an <= 1 and ns <= 1 and ar <= 1):
            return data  # a single record per section never moves
        same_question = question and data.startswith(question, 12)
        qend = 12 + len(question) if same_question else wire.skip_name(data, 12) + 4
        qtype = (data[qend - 4] << 8) | data[qend - 3]
        if qtype in (TYPE_AXFR, TYPE_IXFR):
            return data
        if ns == 0 and ar <= 1 and not self.subnets and self.weighted is None:
            fast = _shuffle_addresses(data, qend, an, ar)
            if fast is not None:
                return fast
        found = _wire_sections(data, qend)
        if found is None:
            return self._reorder_parsed(data)
        (answer, auth, extra), end = found
        qname = wire.wire_name_to_text(data[12 : qend - 4]).lower()
        acc = Accessors(_slice_type, _slice_ip, lambda _s: qname)  # every movable owner is the qname
        answer, auth, extra = self._apply(answer, auth, extra, acc, qtype)
        return data[:qend] + b"".join([s for _, s in answer + auth + extra]) + data[end:]

    def _apply(self, answer: list[T], auth: list[T], extra: list[T], acc: Accessors[T],
               qtype: int) -> tuple[list[T], list[T], list[T]]:
        """The configured policy on the three sections, then `prefer` (CoreDNS's shuffle function)."""
        if self.weighted is not None:
            if qtype in WEIGHTED_TYPES:
                answer = self.weighted.reorder(answer, acc)
                extra = self.weighted.reorder(extra, acc)
        else:
            answer = round_robin(answer, acc.type_of)
            auth = round_robin(auth, acc.type_of)
            extra = round_robin(extra, acc.type_of)
        if self.subnets:
            answer = prefer(answer, acc.type_of, acc.ip_of, self.subnets)
            extra = prefer(extra, acc.type_of, acc.ip_of, self.subnets)
        return answer, auth, extra

    def _reorder_parsed(self, data: bytes) -> Reply:
        try:
            rec = DNSRecord.parse(data)
        except Exception:  # dnslib raises assorted errors on garbage
            return data
        return self._reorder_record(rec)

    def _reorder_record(self, rec: DNSRecord) -> DNSRecord:
        if rec.header.rcode != 0 or not rec.questions:
            return rec
        if rec.q.qtype in (QTYPE.AXFR, QTYPE.IXFR):
            return rec
        rec.rr, rec.auth, rec.ar = self._apply(rec.rr, rec.auth, rec.ar, RR_ACCESSORS, rec.q.qtype)
        return rec


class _Writer(WriterWrapper):
    __slots__ = ("lb", "question")

    def __init__(self, inner: ResponseWriter, lb: LoadBalance, question: bytes = b"") -> None:
        self.written = False
        self.inner = inner
        self.lb = lb
        self.question = question

    def write(self, reply: Reply) -> None:
        self.written = True
        if type(reply) is bytes and len(reply) >= 12 and not (reply[6] | reply[8] | reply[10]) \
                and reply[7] <= 1 and reply[9] <= 1 and reply[11] <= 1:
            self.inner.write(reply)  # at most one record per section: nothing can move (most hits)
            return
        self.inner.write(self.lb.reorder(reply, self.question))


def _subnet(c: Controller, text: str) -> Subnet:
    """Go's net.ParseCIDR: a prefix length is required, host bits are masked."""
    try:
        if "/" not in text:
            raise ValueError(text)
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise c.errf("invalid CIDR %q: %v", text, f"invalid CIDR address: {text}") from None
    return net.version, int(net.network_address), int(net.netmask)


def setup(c: Controller) -> None:
    subnets: list[Subnet] = []
    weighted: Weighted | None = None
    for _ in c.occurrences():
        args = c.remaining_args()
        if args:
            if args[0] == "round_robin":
                if len(args) > 1:
                    raise c.errf("unknown property for %s", args[0])
            elif args[0] == "weighted":
                weighted = _weighted(c, args)
            else:
                raise ConfigError(f"unknown policy: {args[0]}")
        while c.next_block():
            if c.val() != "prefer":
                raise c.errf("unknown property '%s'", c.val())
            for cidr in c.remaining_args():
                subnets.append(_subnet(c, cidr))
    if weighted is not None:
        # CoreDNS reads the file at startup; reading it here gives the same error before serving.
        try:
            weighted.update()
        except WeightFileError as e:
            if str(e) != "weight file open error" or weighted.reload == 0:
                raise ConfigError(str(e)) from None
            log.warning(f"Failed to open weight file:{e}. Will try again in {format_duration(weighted.reload)}")
        if weighted.reload > 0:
            c.start_soon(weighted.reload_loop)
    c.add_handler(LoadBalance(subnets, weighted))


def _weighted(c: Controller, args: list[str]) -> Weighted:
    """`weighted FILE { reload DURATION }`: this block is the policy's (CoreDNS reads it here)."""
    if len(args) < 2:
        raise c.err("missing weight file argument")
    if len(args) > 2:
        raise c.err("unexpected argument(s)")
    reload = DEFAULT_WEIGHT_RELOAD
    while c.next_block():
        if c.val() != "reload":
            raise c.errf("unknown property '%s'", c.val())
        t = c.remaining_args()
        if not t:
            raise c.err("reload duration value is missing")
        if len(t) > 1:
            raise c.err("unexpected argument")
        try:
            reload = parse_duration(t[0])
        except ValueError:
            raise c.errf("invalid reload duration '%s'", t[0]) from None
    return Weighted(c.path(args[1]), reload)
