"""loadbalance: shuffle A, AAAA and MX records of NOERROR replies (CoreDNS `loadbalance`).

It wraps the writer, so it also runs on every cache hit. The common reply (records named by a
pointer to the question, address records and an OPT only) is reordered as byte slices, since
moving records whose owner points at the question cannot break any compression pointer; anything
else goes through dnslib.
"""

from __future__ import annotations

import ipaddress
import random
import struct
from collections.abc import Callable, Sequence
from typing import TypeVar

from dnslib import QTYPE, DNSRecord

from pycoredns import wire
from pycoredns.plugin import ConfigError, Controller, Handler
from pycoredns.request import Request, ResponseWriter, WriterWrapper
from pycoredns.wire import Reply

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


def round_robin(items: list[T], type_of: Callable[[T], int]) -> list[T]:
    """CNAMEs, then other types in order, then shuffled A/AAAA, then shuffled MX."""
    if len(items) <= 1:
        return items
    cname: list[T] = []
    address: list[T] = []
    mx: list[T] = []
    rest: list[T] = []
    for it in items:
        t = type_of(it)
        if t in ADDRESS:
            address.append(it)
        elif t == TYPE_CNAME:
            cname.append(it)
        elif t == TYPE_MX:
            mx.append(it)
        else:
            rest.append(it)
    _shuffle(address)
    _shuffle(mx)
    return cname + rest + address + mx


def prefer(items: list[T], type_of: Callable[[T], int], ip_of: Callable[[T], tuple[int, int] | None],
           subnets: Sequence[Subnet]) -> list[T]:
    """CoreDNS's reorderRecords: CNAMEs, addresses in the preferred subnets first, MX, the rest."""
    if len(items) <= 1:
        return items
    cname: list[T] = []
    address: list[T] = []
    mx: list[T] = []
    rest: list[T] = []
    for it in items:
        t = type_of(it)
        (address if t in ADDRESS else cname if t == TYPE_CNAME else mx if t == TYPE_MX else rest).append(it)
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


_ADDRESS_SHAPES = {  # rtype -> (record length, owner pointer + type, rdlength)
    TYPE_A: (16, _QPTR + b"\x00\x01", b"\x00\x04"),
    TYPE_AAAA: (28, _QPTR + b"\x00\x1c", b"\x00\x10"),
}


def _shuffle_addresses(data: bytes, qend: int, an: int, ar: int) -> bytes | None:
    """The kubernetes/cache hit shape: only A (or only AAAA) answers named by a pointer to the question,
    no authority, at most an OPT after them. Shuffle fixed-size slices; None for any other shape."""
    shape = _ADDRESS_SHAPES.get((data[qend + 2] << 8) | data[qend + 3]) if an and len(data) > qend + 4 else None
    if shape is None:
        return None
    size, head, rdlen = shape
    end = qend + an * size
    tail = data[end:]
    if ar:
        if len(tail) < 11 or tail[0] != 0 or tail[1:3] != b"\x00\x29" or 11 + ((tail[9] << 8) | tail[10]) != len(tail):
            return None
    elif tail:
        return None
    parts = [data[o : o + size] for o in range(qend, end, size)]
    for p in parts:
        if p[:4] != head or p[10:12] != rdlen:
            return None
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


class LoadBalance(Handler):
    name = "loadbalance"

    def __init__(self, subnets: list[Subnet]) -> None:
        self.subnets = subnets

    async def serve_dns(self, req: Request, w: ResponseWriter) -> int:
        return await self.next_or_failure(req, _Writer(w, self))

    def serve_fast(self, req: Request, w: ResponseWriter) -> int | None:
        return self.next_fast(req, _Writer(w, self))

    # -- reordering ----------------------------------------------------------------------------
    def reorder(self, reply: Reply) -> Reply:
        """The reply with its sections reordered; unchanged when it is not a NOERROR answer."""
        if isinstance(reply, (bytes, bytearray)):
            try:
                return self._reorder_wire(bytes(reply))
            except (wire.WireError, IndexError, struct.error):
                return reply  # garbage goes out as it came in
        return self._reorder_record(reply)

    def _reorder_wire(self, data: bytes) -> bytes:
        if len(data) < 12 or data[3] & 0x0F:
            return data
        _id, _flags, qd, an, ns, ar = wire.header(data)
        if qd != 1 or (an <= 1 and ns <= 1 and ar <= 1):
            return data  # a single record per section never moves
        qend = wire.skip_name(data, 12) + 4
        qtype = (data[qend - 4] << 8) | data[qend - 3]
        if qtype in (TYPE_AXFR, TYPE_IXFR):
            return data
        if ns == 0 and ar <= 1 and not self.subnets:
            fast = _shuffle_addresses(data, qend, an, ar)
            if fast is not None:
                return fast
        found = _wire_sections(data, qend)
        if found is None:
            return self._reorder_parsed(data)
        (answer, auth, extra), end = found
        answer = round_robin(answer, _slice_type)
        auth = round_robin(auth, _slice_type)
        extra = round_robin(extra, _slice_type)
        if self.subnets:
            answer = prefer(answer, _slice_type, _slice_ip, self.subnets)
            extra = prefer(extra, _slice_type, _slice_ip, self.subnets)
        return data[:qend] + b"".join([s for _, s in answer + auth + extra]) + data[end:]

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
        rec.rr = round_robin(rec.rr, _rr_type)
        rec.auth = round_robin(rec.auth, _rr_type)
        rec.ar = round_robin(rec.ar, _rr_type)
        if self.subnets:
            rec.rr = prefer(rec.rr, _rr_type, _rr_ip, self.subnets)
            rec.ar = prefer(rec.ar, _rr_type, _rr_ip, self.subnets)
        return rec


class _Writer(WriterWrapper):
    __slots__ = ("lb",)

    def __init__(self, inner: ResponseWriter, lb: LoadBalance) -> None:
        super().__init__(inner)
        self.lb = lb

    def write(self, reply: Reply) -> None:
        super().write(self.lb.reorder(reply))


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
    for _ in c.occurrences():
        args = c.remaining_args()
        if args:
            if args[0] == "round_robin":
                if len(args) > 1:
                    raise c.errf("unknown property for %s", args[0])
            elif args[0] == "weighted":
                raise ConfigError("weighted policy is not supported by pycoredns")
            else:
                raise ConfigError(f"unknown policy: {args[0]}")
        while c.next_block():
            if c.val() != "prefer":
                raise c.errf("unknown property '%s'", c.val())
            for cidr in c.remaining_args():
                subnets.append(_subnet(c, cidr))
    c.add_handler(LoadBalance(subnets))
