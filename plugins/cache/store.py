"""The cache's storage: sharded, hard-bounded maps of wire-level entries, and the hit builder.

An entry keeps the upstream reply as bytes (question section included, OPT removed) plus the
offsets of every TTL word, so that a hit is a header pack, the request's own question bytes and a
record section whose TTL words were rewritten once per remaining-TTL second (then reused). No dnslib
on the hit path: that is what makes a Python cache hit cost a couple of microseconds.
"""

from __future__ import annotations

import random
import struct

from pycoredns import response, wire

SHARDS = 256
MIN_SHARD_SIZE = 4

_I = struct.Struct(">I")
_HH = struct.Struct(">HH")
# Bits of the request's flags word copied into a hit: opcode, RD, CD (miekg SetReply).
REQ_BITS = wire.OPCODE_MASK | wire.RD | wire.CD
HIT_BASE = wire.QR | wire.AA  # AA forced on every hit (CoreDNS's glibc workaround)


class Entry:
    """One stored reply: everything a hit needs, precomputed."""

    __slots__ = (
        "ad",
        "body",
        "body_ttl",
        "counts",
        "failed_at",
        "hflags",
        "hits",
        "last",
        "orig_ttl",
        "positive",
        "qend",
        "rcode",
        "refreshing",
        "ret",
        "servfail",
        "slot",
        "stored",
        "template",
        "ttl_offsets",
    )

    def __init__(self, message: bytes, qend: int, ttl_offsets: list[int], orig_ttl: int, stored: float,
                 positive: bool) -> None:
        """`message` is the reply without OPT; `ttl_offsets` are absolute offsets into it."""
        flags = (message[2] << 8) | message[3]
        self.template = message
        self.qend = qend
        self.ttl_offsets = [o - qend for o in ttl_offsets]
        self.counts = message[4:12]
        self.rcode = flags & 0xF
        self.hflags = flags & (wire.RA | 0xF)
        self.ad = bool(flags & wire.AD)
        self.servfail = self.rcode in (wire.SERVFAIL, wire.NOTIMP)
        # What a hit returns to the chain: the rcode when it is a "written" one, else NOERROR as
        # CoreDNS's cache does (it always returns RcodeSuccess after writing a hit).
        self.ret = self.rcode if self.rcode not in (1, 2, 4, 5) else 0
        self.orig_ttl = orig_ttl
        self.stored = stored
        self.positive = positive
        self.body = b""
        self.body_ttl = -1
        self.hits = 0  # prefetch popularity (CoreDNS freq.Freq)
        self.last = float("-inf")
        self.refreshing = False  # a background refresh is in flight (single-flight)
        self.failed_at = float("-inf")
        self.slot = -1

    def ttl(self, now: float) -> int:
        """Remaining whole seconds; <= 0 means expired (HEAD's freshness rule)."""
        return self.orig_ttl - int(now - self.stored)

    def records(self, ttl: int) -> bytes:
        """The record sections with every TTL set to `ttl` (rebuilt only when `ttl` changes)."""
        if ttl == self.body_ttl:
            return self.body
        buf = bytearray(self.template[self.qend :])
        pack = _I.pack_into
        for o in self.ttl_offsets:
            pack(buf, o, ttl)
        self.body = bytes(buf)
        self.body_ttl = ttl
        return self.body

    def reply(self, qid: int, req_flags: int, question: bytes, ad_ok: bool, ttl: int) -> bytes:
        """The hit for a request: its id, opcode/RD/CD and question; AA=1, RA/rcode/AD as stored."""
        flags = HIT_BASE | (req_flags & REQ_BITS) | self.hflags
        if self.ad and ad_ok:
            flags |= wire.AD
        return _HH.pack(qid, flags) + self.counts + question + self.records(ttl)

    def popular(self, window: float, now: float) -> int:
        """Count one hit (CoreDNS freq.Update): a gap of `window` or more restarts the count."""
        if self.last < now - window:
            self.hits = 1
        else:
            self.hits += 1
        self.last = now
        return self.hits


class Store:
    """One cache (positive or denial): 256 shards, each holding at most max(CAP/256, 4) entries.

    A full shard evicts one random entry to admit a new key, so the entry count is a hard bound.
    Expired entries are not swept (as in CoreDNS); they stay until overwritten or evicted.
    """

    __slots__ = ("keys", "shard_size", "shards")

    def __init__(self, capacity: int) -> None:
        size = int(capacity / SHARDS)  # Go's integer division truncates towards zero
        self.shard_size = max(size, MIN_SHARD_SIZE)
        self.shards: list[dict[tuple, Entry]] = [{} for _ in range(SHARDS)]
        self.keys: list[list[tuple]] = [[] for _ in range(SHARDS)]

    @property
    def capacity(self) -> int:
        return self.shard_size * SHARDS

    def __len__(self) -> int:
        return sum(len(s) for s in self.shards)

    def get(self, shard: int, key: tuple) -> Entry | None:
        return self.shards[shard].get(key)

    def add(self, shard: int, key: tuple, entry: Entry) -> bool:
        """Insert or replace; True when a random entry had to be evicted to make room."""
        d = self.shards[shard]
        keys = self.keys[shard]
        old = d.get(key)
        if old is not None:
            entry.slot = old.slot
            d[key] = entry
            return False
        evicted = False
        if len(d) >= self.shard_size:
            self._drop_slot(d, keys, random.randrange(len(keys)))
            evicted = True
        entry.slot = len(keys)
        keys.append(key)
        d[key] = entry
        return evicted

    def remove(self, shard: int, key: tuple) -> None:
        d = self.shards[shard]
        e = d.get(key)
        if e is not None:
            self._drop_slot(d, self.keys[shard], e.slot)

    @staticmethod
    def _drop_slot(d: dict[tuple, Entry], keys: list[tuple], i: int) -> None:
        """Remove the key at position `i` in O(1): the last key moves into its slot."""
        victim = keys[i]
        last = keys.pop()
        if i < len(keys):
            keys[i] = last
            d[last].slot = i
        del d[victim]


class Layout:
    """One walk of a reply: what the cache needs to classify and store it (`analyze`)."""

    __slots__ = ("answer_types", "data", "message", "msg_ttls", "ns_count", "qend", "qtype", "soa", "ttls")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.message = data  # without the OPT record
        self.qend = 12
        self.qtype = -1  # the first question's type
        self.ttls: list[int] = []  # TTL offsets of the non-OPT records in `data`
        self.msg_ttls: list[int] = []  # the same in `message`
        self.answer_types: list[int] = []
        self.soa = False  # an SOA in the authority section
        self.ns_count = 0  # NS records in the authority section

    def typify(self) -> response.Type:
        """response.typify without walking the message again (same rules, same order)."""
        data = self.data
        flags = (data[2] << 8) | data[3]
        opcode = (flags & wire.OPCODE_MASK) >> wire.OPCODE_SHIFT
        rcode = flags & 0xF
        if opcode == wire.OPCODE_UPDATE:
            return response.Type.UPDATE
        if opcode == wire.OPCODE_NOTIFY or self.qtype in (wire.TYPE_AXFR, wire.TYPE_IXFR):
            return response.Type.META
        if self.answer_types and rcode == 0:
            return response.Type.NOERROR
        if self.soa and rcode == 0:
            return response.Type.NODATA
        if self.soa and rcode == 3:
            return response.Type.NAMEERROR
        if rcode in (2, 4):
            return response.Type.SERVERERROR
        if self.ns_count and rcode == 0:
            return response.Type.DELEGATION
        if rcode == 0:
            return response.Type.NOERROR
        return response.Type.OTHERERROR


def analyze(data: bytes) -> Layout:
    """Walk a reply once: question end, TTL offsets, answer types, authority SOA/NS, the message
    without its OPT (and the TTL offsets in it). Raises WireError (or IndexError/struct.error)."""
    lay = Layout(data)
    _id, _flags, qd, an, ns, ar = wire.header(data)
    off = 12
    for i in range(qd):
        off = wire.skip_name(data, off)
        if i == 0:
            lay.qtype = (data[off] << 8) | data[off + 1]
        off += 4
    lay.qend = off
    ttls = lay.ttls
    opt_start = opt_end = -1
    skip_rr = wire.skip_rr
    for _ in range(an):
        rtype, ttl_off, off = skip_rr(data, off)
        lay.answer_types.append(rtype)
        ttls.append(ttl_off)
    for _ in range(ns):
        rtype, ttl_off, off = skip_rr(data, off)
        if rtype == wire.TYPE_SOA:
            lay.soa = True
        elif rtype == wire.TYPE_NS:
            lay.ns_count += 1
        ttls.append(ttl_off)
    for _ in range(ar):
        start = off
        rtype, ttl_off, off = skip_rr(data, off)
        if rtype == wire.TYPE_OPT:  # no TTL word to rewrite; the first one is left out of `message`
            if opt_start < 0:
                opt_start, opt_end = start, off
            continue
        ttls.append(ttl_off)
    if off > len(data):
        raise wire.WireError("message overruns")
    if opt_start < 0:
        lay.msg_ttls = ttls
        return lay
    arcount = ar - 1
    lay.message = data[:10] + arcount.to_bytes(2, "big") + data[12:opt_start] + data[opt_end:]
    cut = opt_end - opt_start
    lay.msg_ttls = [o - cut if o > opt_start else o for o in ttls]
    return lay
