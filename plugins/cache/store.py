"""The cache's storage: hard-bounded maps of wire-level entries, and the hit builder.

An entry keeps the upstream reply as bytes (question section included, OPT removed) plus the
offsets of every TTL word, so that a hit is a header pack, the request's own question bytes and a
record section whose TTL words were rewritten once per remaining-TTL second (then reused). No dnslib
on the hit path: that is what makes a Python cache hit cost a couple of microseconds.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Hashable

from pycoredns import wire
from pycoredns.request import Request

SHARDS = 256  # CoreDNS's shard count: only its capacity rounding is kept (see Store)
MIN_SHARD_SIZE = 4

_I = struct.Struct(">I")
_HH = struct.Struct(">HH")
_H6 = struct.Struct(">HHHHHH")
_HHH = struct.Struct(">HHH")
_RR = struct.Struct(">HHIH")  # type, class, TTL, rdlength
_random = random.random
TYPE_ANY, TYPE_CNAME, TYPE_NS, TYPE_OPT, TYPE_SOA = (wire.TYPE_ANY, wire.TYPE_CNAME, wire.TYPE_NS, wire.TYPE_OPT,
                                                     wire.TYPE_SOA)
# Bits of the request's flags word copied into a hit: opcode, RD, CD (miekg SetReply).
REQ_BITS = wire.OPCODE_MASK | wire.RD | wire.CD
HIT_BASE = wire.QR | wire.AA  # AA forced on every hit (CoreDNS's glibc workaround)
RA_RCODE = wire.RA | 0xF  # the stored reply's header bits a hit keeps
AD, SERVFAIL, NOTIMP = wire.AD, wire.SERVFAIL, wire.NOTIMP
NOT_WRITTEN = frozenset((wire.FORMERR, wire.SERVFAIL, wire.NOTIMP, wire.REFUSED))
NEVER = float("-inf")
QR = wire.QR
OPCODE_RCODE = wire.OPCODE_MASK | 0xF  # a QUERY (not UPDATE or NOTIFY) with rcode NOERROR has none of these
XFR = (wire.TYPE_AXFR, wire.TYPE_IXFR)


def _header_bits(low: int) -> tuple[int, bool, bool, int]:
    """From the low byte of a stored reply's flags word (RA, AD, rcode): the bits a hit keeps, AD,
    whether it is a SERVFAIL/NOTIMP, and what a hit returns to the chain: the rcode when it is a
    "written" one, else NOERROR as CoreDNS's cache does (it always returns RcodeSuccess after writing
    a hit)."""
    rcode = low & 0xF
    return low & RA_RCODE, (low & AD) != 0, rcode in (SERVFAIL, NOTIMP), 0 if rcode in NOT_WRITTEN else rcode


_head = [_header_bits(low) for low in range(256)].__getitem__  # one list index per entry


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
        "refreshing",
        "ret",
        "servfail",
        "slot",
        "stored",
        "template",
        "ttl_offsets",
    )

    def __init__(self, message: bytes, qend: int, ttl_offsets: list[int] | None, orig_ttl: int, stored: float,
                 positive: bool) -> None:
        """`message` is the reply without OPT; `ttl_offsets` are absolute offsets into it (kept, not
        copied: the caller's list is the entry's), or None: found by `record_ttls` at the first hit.
        A miss passes None: most missed names are never hit, and an entry evicted thousands of misses
        later frees two objects less (the list and its items), whose cold memory new objects reuse."""
        self.template = message
        self.qend = qend
        self.ttl_offsets = ttl_offsets
        self.counts = b""  # the header's four counts, sliced at the first hit (most misses are never hit)
        self.hflags, self.ad, self.servfail, self.ret = _head(message[3])
        self.orig_ttl = orig_ttl
        self.stored = stored
        self.positive = positive
        self.body = b""
        self.body_ttl = -1
        self.hits = 0  # prefetch popularity (CoreDNS freq.Freq)
        self.last = NEVER
        self.refreshing = False  # a background refresh is in flight (single-flight)
        self.failed_at = NEVER
        self.slot = -1

    def ttl(self, now: float) -> int:
        """Remaining whole seconds; <= 0 means expired (HEAD's freshness rule)."""
        return self.orig_ttl - int(now - self.stored)

    def records(self, ttl: int) -> bytes:
        """The record sections with every TTL set to `ttl` (rebuilt only when `ttl` changes)."""
        if ttl == self.body_ttl:
            return self.body
        if not self.counts:
            self.counts = self.template[4:12]
        offsets = self.ttl_offsets
        if offsets is None:
            offsets = self.ttl_offsets = record_ttls(self.template, self.qend)
        qend = self.qend
        buf = bytearray(self.template[qend:])
        pack = _I.pack_into
        for o in offsets:
            pack(buf, o - qend, ttl)
        self.body = bytes(buf)
        self.body_ttl = ttl
        return self.body

    def reply(self, qid: int, req_flags: int, question: bytes, ad_ok: bool, ttl: int) -> bytes:
        """The hit for a request: its id, opcode/RD/CD and question; AA=1, RA/rcode/AD as stored."""
        flags = HIT_BASE | (req_flags & REQ_BITS) | self.hflags
        if self.ad and ad_ok:
            flags |= wire.AD
        body = self.records(ttl)  # first: it also slices `counts` at the first hit
        return _HH.pack(qid, flags) + self.counts + question + body

    def popular(self, window: float, now: float) -> int:
        """Count one hit (CoreDNS freq.Update): a gap of `window` or more restarts the count."""
        if self.last < now - window:
            self.hits = 1
        else:
            self.hits += 1
        self.last = now
        return self.hits


class Store:
    """One cache (positive or denial): at most `capacity` entries, CoreDNS's bound for CAP.

    CoreDNS splits a cache into 256 shards of max(CAP/256, 4) entries, so that goroutines contend
    less, and a new key in a full shard evicts one random entry of that shard. One process has nothing
    to contend for, so this is one map with the same total bound (9984 for CAP 10000): a new key evicts
    one uniformly random entry only when the whole cache is full, not when the key's shard is, which
    CoreDNS's uneven shards reach long before (README, "Differences from CoreDNS"). The entry count is
    a hard bound. Expired entries are not swept (as in CoreDNS); they stay until overwritten or evicted.
    """

    __slots__ = ("capacity", "entries", "keys")

    def __init__(self, capacity: int) -> None:
        per_shard = int(capacity / SHARDS)  # Go's integer division truncates towards zero
        self.capacity = max(per_shard, MIN_SHARD_SIZE) * SHARDS
        self.entries: dict[Hashable, Entry] = {}
        self.keys: list[Hashable] = []  # entry.slot is its key's index here: a random victim in O(1)

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, key: Hashable, entry: Entry) -> bool:
        """Insert or replace; True when a random entry had to be evicted to make room.

        The new key takes the victim's slot in the key list, so no other entry moves: an eviction is
        one insert, one delete and the victim's free (it was last touched thousands of misses ago)."""
        d = self.entries
        old = d.setdefault(key, entry)  # one hash for the common case, a new key
        if old is not entry:
            entry.slot = old.slot
            d[key] = entry
            return False
        keys = self.keys
        n = len(keys)
        if n < self.capacity:
            entry.slot = n
            keys.append(key)
            return False
        i = int(_random() * n)  # uniform over the entries before this one; randrange costs ~1 µs more
        victim = keys[i]
        keys[i] = key
        entry.slot = i
        del d[victim]
        return True

    def remove(self, key: Hashable) -> None:
        """Remove `key` if present, in O(1): the last key moves into its slot."""
        d = self.entries
        e = d.get(key)
        if e is None:
            return
        keys = self.keys
        i = e.slot
        last = keys.pop()
        if i < len(keys):
            keys[i] = last
            d[last].slot = i
        del d[key]


def record_ttls(message: bytes, qend: int) -> list[int]:
    """The offsets of the TTL words in a stored message (OPT removed) that a hit rewrites: every record
    of the answer and authority sections and the additional section's non-OPT ones, as `analyze`
    finds them in the reply the message was cut from."""
    an, ns, ar = _HHH.unpack_from(message, 6)
    authority = an + ns
    off = qend
    out: list[int] = []
    skip_name = wire.skip_name
    for i in range(authority + ar):
        b = message[off]
        if b >= 0xC0:
            off += 2
        elif b:
            off = skip_name(message, off)
        else:
            off += 1
        rtype, _rclass, _ttl, rdlen = _RR.unpack_from(message, off)
        if i < authority or rtype != TYPE_OPT:
            out.append(off + 4)
        off += 10 + rdlen
    return out


# Reply classes (response.Type's, with HEAD's refinements, as ints for the miss path).
NOERROR, DELEGATION, NODATA, NAMEERROR, SERVERERROR, OTHERERROR, META, UPDATE = range(8)


# What `analyze` finds in a reply, as a plain tuple (no object per miss): (kind, matched, qend, ttls, lo,
# hi, message). `kind` is the reply class, `matched` whether it answers exactly the request's question
# (CoreDNS request.Match), `qend` the end of its question section, `ttls` the TTL offsets of its non-OPT
# records, `lo`/`hi` their smallest and largest TTL (-1 without records) and `message` the reply without
# its OPT record (an entry finds its TTL offsets in it at its first hit: `record_ttls`).
Walk = tuple[int, bool, int, list[int], int, int, bytes]


def analyze(data: bytes, req: Request) -> Walk:
    """Walk a reply to `req` once (see `Walk`); the reply class follows response.typify's rules in its
    order, then HEAD's: a NOERROR whose answer is a CNAME chain cut short is NODATA with an authority
    SOA, else OTHERERROR; an NXDOMAIN with answers is OTHERERROR. Raises WireError (or IndexError/
    struct.error)."""
    _id, flags, qd, an, ns, ar = _H6.unpack_from(data)
    qtype = req.qtype
    qend = req.qend
    if qd == 1 and flags & QR and data.startswith(req.wire[12:qend], 12):
        matched = True  # the question echoed byte for byte: the common case, one comparison
        off = qend
        first_qtype = qtype
    else:
        qn = req.qname_wire
        off = 12 + len(qn)
        matched = (qd == 1 and flags & QR != 0 and data[12:off].lower() == qn
                   and data[off : off + 4] == req.wire[qend - 4 : qend])  # type and class as asked
        if matched:
            off += 4
            first_qtype = qtype
        else:  # the general walk, for a reply that is not stored (counted in drops_total) but passed on
            off = 12
            first_qtype = -1
            for i in range(qd):
                off = wire.skip_name(data, off)
                if i == 0:
                    first_qtype = (data[off] << 8) | data[off + 1]
                off += 4
    qend = off
    n = len(data)
    if an == 1 and not ns and not ar and matched and data[off] == 0xC0:
        # One answer whose owner is a pointer, nothing else (a plain A or AAAA reply): when it is of the
        # asked type in a QUERY with NOERROR it is stored as NOERROR, without the general walk's set-up.
        rtype, _rclass, ttl, rdlen = _RR.unpack_from(data, off + 2)
        if rtype == qtype and not flags & OPCODE_RCODE and qtype not in XFR and off + 12 + rdlen <= n:
            return NOERROR, True, qend, [off + 6], ttl, ttl, data
    ttls: list[int] = []
    soa = has_q = has_cname = False
    ns_count = 0
    lo = hi = -1
    opt_start = opt_end = -1
    unpack = _RR.unpack_from
    skip_name = wire.skip_name
    answers, authority = an, an + ns
    for i in range(authority + ar):
        start = off
        b = data[off]
        if b >= 0xC0:  # a compression pointer: the common owner
            off += 2
        elif b:
            off = skip_name(data, off)
        else:
            off += 1
        rtype, _rclass, ttl, rdlen = unpack(data, off)
        ttl_off = off + 4
        off += 10 + rdlen
        if off > n:
            raise wire.WireError("rdata overruns message")
        if i < answers:
            if rtype == qtype:
                has_q = True
            elif rtype == TYPE_CNAME:
                has_cname = True
        elif i < authority:
            if rtype == TYPE_SOA:
                soa = True
            elif rtype == TYPE_NS:
                ns_count += 1
        elif rtype == TYPE_OPT:  # no TTL word to rewrite; the first one is left out of `message`
            if opt_start < 0:
                opt_start, opt_end = start, off
            continue
        ttls.append(ttl_off)
        if lo < 0:
            lo = hi = ttl
        elif ttl < lo:
            lo = ttl
        elif ttl > hi:
            hi = ttl
    if an and not flags & OPCODE_RCODE and has_q and first_qtype not in XFR:
        kind = NOERROR  # _kind's answer for the common positive reply, without the call
    else:
        kind = _kind(flags, first_qtype, an, soa, ns_count,
                     an == 0 or has_q or not has_cname or qtype in (TYPE_ANY, TYPE_CNAME))
    if opt_start < 0:
        return kind, matched, qend, ttls, lo, hi, data
    message = data[:10] + (ar - 1).to_bytes(2, "big") + data[12:opt_start] + data[opt_end:]
    return kind, matched, qend, ttls, lo, hi, message


def _kind(flags: int, qtype: int, an: int, soa: bool, ns_count: int, answers_question: bool) -> int:
    """response.typify (same rules, same order) with HEAD's refinements; see `analyze`."""
    rcode = flags & 0xF
    opcode = (flags & wire.OPCODE_MASK) >> wire.OPCODE_SHIFT
    if opcode == wire.OPCODE_UPDATE:
        return UPDATE
    if opcode == wire.OPCODE_NOTIFY or qtype in (wire.TYPE_AXFR, wire.TYPE_IXFR):
        return META
    if an and rcode == 0:
        if answers_question:
            return NOERROR
        return NODATA if soa else OTHERERROR
    if soa and rcode == 0:
        return NODATA
    if soa and rcode == 3:
        return OTHERERROR if an else NAMEERROR
    if rcode in (2, 4):
        return SERVERERROR
    if ns_count and rcode == 0:
        return DELEGATION
    if rcode == 0:
        return NOERROR
    return OTHERERROR
