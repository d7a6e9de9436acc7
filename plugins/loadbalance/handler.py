"""loadbalance's handler: a writer wrapper that reorders NOERROR replies on their way out.

It wraps the writer, so it also runs on every cache hit. Replies are reordered as wire bytes:
the common shape (only A or only AAAA answers named by a pointer to the question, at most an OPT)
by fixed-size slices matched with one regex; every other layout (SRV with additional addresses,
CNAME chains, mixed types, an OPT anywhere) through `pycoredns.layout`, which moves whole records
and the compression pointers into them. The layout of a reply body is memoised (kubernetes and
cache hits repeat the same bytes). dnslib is used only for replies written as dnslib records; a
reply that does not walk goes out as it came in.
"""

from __future__ import annotations

import functools
import ipaddress
import random
import re
import struct

from dnslib import QTYPE, DNSRecord

from pycoredns import wire
from pycoredns.layout import ForwardPointer, Layout, layout, permute, remember
from pycoredns.plugin import Handler
from pycoredns.request import Request, ResponseWriter, WriterWrapper
from pycoredns.wire import Reply

from .policy import (
    ADDRESS,
    TYPE_A,
    TYPE_AAAA,
    WEIGHTED_TYPES,
    Accessors,
    Subnet,
    Weighted,
    _group,
    prefer,
    round_robin,
    shuffle,
)

TYPE_IXFR, TYPE_AXFR = wire.TYPE_IXFR, wire.TYPE_AXFR
LAYOUT_MEMO = 4096  # reply bodies whose layout is kept (cleared when full; ~2 KB for a 20-record reply)


class LoadBalance(Handler):
    name = "loadbalance"

    def __init__(self, subnets: list[Subnet], weighted: Weighted | None = None) -> None:
        self.subnets = subnets
        self.weighted = weighted
        self._layouts: dict[bytes, tuple[Layout, list, int]] = {}

    async def serve_dns(self, req: Request, w: ResponseWriter) -> int:
        return await self.next_or_failure(req, _Writer(w, self, req))

    def serve_fast(self, req: Request, w: ResponseWriter) -> int | None:
        nxt = self.next
        if nxt is None:
            return self.next_fast(req, w)  # raises the "no next plugin" error
        return nxt.serve_fast(req, _Writer(w, self, req))

    # -- reordering ----------------------------------------------------------------------------
    def reorder(self, reply: Reply, question: bytes = b"", size: int = 65535) -> Reply:
        """The reply with its sections reordered; unchanged when it is not a NOERROR answer.

        `question` (the request's question section, optional) saves walking the reply's question
        when the reply repeats it, as replies to the request do. `size`: the largest reply the client
        takes (the server truncates to it afterwards).
        """
        if isinstance(reply, (bytes, bytearray)):
            try:
                return self._reorder_wire(reply if type(reply) is bytes else bytes(reply), question, size)
            except ForwardPointer:  # glue compressed against the record before it: re-pack (rare)
                try:
                    return bytes(self._reorder_record(DNSRecord.parse(reply)).pack())
                except Exception:  # what dnslib cannot read goes out as it came in
                    return reply
            except (wire.WireError, IndexError, struct.error):
                return reply  # garbage goes out as it came in
        return self._reorder_record(reply)

    def _reorder_wire(self, data: bytes, question: bytes = b"", size: int = 65535) -> bytes:
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
        lay, groups, first_moved = self._layout(data, qend)
        if self.weighted is None and not self.subnets:
            if first_moved > 0 and lay.ends[first_moved - 1] > max(size, 512):
                # the truncation that follows keeps only records before the first one the shuffle
                # may move: its reply is the same whatever the order (headless SRV without EDNS)
                remember(data, lay)
                return data
            order = []
            for fixed, address, mx in groups:  # round_robin on precomputed groups
                order += fixed
                if address:
                    address = list(address)
                    shuffle(address)
                    order += address
                if mx:
                    mx = list(mx)
                    shuffle(mx)
                    order += mx
        else:
            acc = Accessors(lay.types.__getitem__, functools.partial(_index_ip, data, lay),
                            functools.partial(_index_owner, data, lay))
            a, n = lay.counts[0], lay.counts[0] + lay.counts[1]
            sections = self._apply(list(range(a)), list(range(a, n)), list(range(n, len(lay.types))), acc, qtype)
            order = [i for s in sections for i in s]
        if all(i == j for j, i in enumerate(order)):
            return data
        return permute(data, lay, order)

    def _layout(self, data: bytes, qend: int) -> tuple[Layout, list[tuple[list[int], list[int], list[int]]], int]:
        """The records' layout, round-robin groups per section (CNAMEs + others, addresses, MX) and
        the first record round robin may move (0 when a pointer from an earlier record leads into a
        later one: the truncation shortcut is then off), memoised by the header counts and the bytes
        after the question."""
        key = data[4:12] + data[qend:]
        hit = self._layouts.get(key)
        if hit is None or hit[0].qend != qend:
            lay = layout(data, qend)
            groups = []
            first = 0
            for count in lay.counts:
                cname, address, mx, rest = _group(list(range(first, first + count)), lay.types.__getitem__)
                groups.append((cname + rest, address, mx))
                first += count
            moved = min([g[0] for _f, *shuffled in groups for g in shuffled if len(g) > 1], default=len(lay.types))
            if any(rec < moved <= k for rec, _p, k in lay.relocs):
                moved = 0
            hit = (lay, groups, moved)
            if len(self._layouts) >= LAYOUT_MEMO:
                self._layouts.clear()
            self._layouts[key] = hit
        return hit

    def _apply(self, answer: list, auth: list, extra: list, acc: Accessors, qtype: int) -> tuple[list, list, list]:
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

    def _reorder_record(self, rec: DNSRecord) -> DNSRecord:
        """A reply some plugin wrote as a dnslib record."""
        if rec.header.rcode != 0 or not rec.questions:
            return rec
        if rec.q.qtype in (QTYPE.AXFR, QTYPE.IXFR):
            return rec
        rec.rr, rec.auth, rec.ar = self._apply(rec.rr, rec.auth, rec.ar, RR_ACCESSORS, rec.q.qtype)
        return rec


class _Writer(WriterWrapper):
    """Reorders what the chain writes; the request's question and size are read only for a reply with
    more than one record in a section (most hits have none to move)."""

    __slots__ = ("lb", "req")

    def __init__(self, inner: ResponseWriter, lb: LoadBalance, req: Request) -> None:
        self.written = False
        self.inner = inner
        self.lb = lb
        self.req = req

    def write(self, reply: Reply) -> None:
        self.written = True
        if type(reply) is bytes and len(reply) >= 12 and not (reply[6] | reply[8] | reply[10]) \
                and reply[7] <= 1 and reply[9] <= 1 and reply[11] <= 1:
            self.inner.write(reply)  # at most one record per section: nothing can move (most hits)
            return
        req = self.req
        self.inner.write(self.lb.reorder(reply, req.question, req.size()))


# -- the wire path ---------------------------------------------------------------------------------

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
    if an == 2:  # shuffle of two items, without building the list
        if random.getrandbits(16) % 2 == 0:
            return data[:qend] + data[qend + size : end] + data[qend : qend + size] + tail
        return data
    parts = [data[o : o + size] for o in range(qend, end, size)]
    shuffle(parts)
    return data[:qend] + b"".join(parts) + tail


def _index_ip(data: bytes, lay: Layout, i: int) -> tuple[int, int] | None:
    rtype = lay.types[i]
    if rtype == TYPE_A:
        return 4, int.from_bytes(data[lay.ends[i] - 4 : lay.ends[i]], "big")
    if rtype == TYPE_AAAA:
        return 6, int.from_bytes(data[lay.ends[i] - 16 : lay.ends[i]], "big")
    return None


def _index_owner(data: bytes, lay: Layout, i: int) -> str:
    return wire.labels_to_text(wire.read_name(data, lay.starts[i])[0]).lower()


# -- the dnslib path (replies written as records) ------------------------------------------------


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


def _rr_name(rr) -> str:
    return str(rr.rname).lower()


RR_ACCESSORS: Accessors = Accessors(_rr_type, _rr_ip, _rr_name)
