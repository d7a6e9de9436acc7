"""Where every record of a reply is, and every compression pointer in it: moving records on the wire.

`layout(data)` walks a message once: the records (section, start, end, type) and the positions of
the compression pointers in their owner names and in the rdata names of the types that may be
compressed (RFC 3597 §4 plus the ones miekg unpacks compressed: SRV, DNAME...). `permute()` then
writes the records in any order within their sections, moving each pointer that targets a record
which moved by the same distance, so the message stays valid without a parse and a re-pack. This is
what loadbalance (shuffling) and truncation (the OPT moved to the end) need; dnslib is then only
for messages that do not walk.
"""

from __future__ import annotations

import struct
from bisect import bisect_right
from typing import Any, NamedTuple

from .wire import TYPE_OPT, WireError

_HHIH = struct.Struct(">HHIH")

# rtype -> (offset of the first name in the rdata, number of names back to back from there)
RDATA_NAMES: dict[int, tuple[int, int]] = {
    2: (0, 1), 3: (0, 1), 4: (0, 1), 5: (0, 1), 7: (0, 1), 8: (0, 1), 9: (0, 1), 12: (0, 1), 39: (0, 1),  # NS..DNAME
    6: (0, 2), 14: (0, 2), 17: (0, 2),  # SOA, MINFO, RP
    15: (2, 1), 18: (2, 1), 21: (2, 1), 36: (2, 1),  # MX, AFSDB, RT, KX
    33: (6, 1),  # SRV
}


class Layout(NamedTuple):
    """The records of one message. Offsets are absolute; `relocs` only lists pointers into records."""

    qend: int  # end of the question section
    counts: tuple[int, int, int]  # records per section (answer, authority, additional)
    starts: list[int]
    ends: list[int]
    types: list[int]
    relocs: list[tuple[int, int, int]]  # (record holding the pointer, pointer position, record it targets)
    end: int  # end of the last record


def _name(data: bytes, off: int, pointers: list[int]) -> int:
    """Walk one name; note the position of its pointer (a name has at most one, at its end)."""
    n = len(data)
    for _ in range(128):
        if off >= n:
            raise WireError("name overruns message")
        b = data[off]
        if b == 0:
            return off + 1
        if b >= 0xC0:
            if off + 2 > n:
                raise WireError("pointer overruns message")
            pointers.append(off)
            return off + 2
        if b > 63:
            raise WireError("bad label length")
        off += 1 + b
    raise WireError("name too long")


def layout(data: bytes, qend: int = 0) -> Layout:
    """Walk the records after the question (found when `qend` is 0). Raises WireError on garbage."""
    if len(data) < 12:
        raise WireError("short message")
    qd, an, ns, ar = struct.unpack_from(">HHHH", data, 4)
    if not qend:
        qend = 12
        for _ in range(qd):
            qend = _name(data, qend, []) + 4
    off = qend
    starts: list[int] = []
    ends: list[int] = []
    types: list[int] = []
    pointers: list[tuple[int, int]] = []  # (record, position)
    names = RDATA_NAMES
    found: list[int] = []
    size = len(data)
    for i in range(an + ns + ar):
        starts.append(off)
        if off + 2 <= size and data[off] >= 0xC0:  # the usual owner: a pointer
            pointers.append((i, off))
            off += 2
        else:
            off = _name(data, off, found)
        if off + 10 > size:
            raise WireError("record overruns message")
        rtype, _cls, _ttl, rdlen = _HHIH.unpack_from(data, off)
        rdata = off + 10
        off = rdata + rdlen
        if off > size:
            raise WireError("rdata overruns message")
        spec = names.get(rtype)
        if spec is not None and not (spec[1] == 1 and data[off - 1] == 0 and data[off - 2] < 0xC0
                                     and off - 2 >= rdata + spec[0]):
            # (a single name ending the rdata with a root label has no pointer: a name's only pointer
            # is its last two bytes, and those would start with 0b11. Only other names are walked.)
            at = rdata + spec[0]
            for _ in range(spec[1]):
                at = _name(data, at, found)
            if at > off:
                raise WireError("name overruns rdata")
        types.append(rtype)
        ends.append(off)
        if found:
            pointers.extend([(i, p) for p in found])
            found.clear()
    relocs = []
    for rec, pos in pointers:
        target = ((data[pos] & 0x3F) << 8) | data[pos + 1]
        if target >= qend:
            k = bisect_right(starts, target) - 1
            if k >= 0 and target < ends[k]:
                relocs.append((rec, pos, k))
    return Layout(qend, (an, ns, ar), starts, ends, types, relocs, off)


class ForwardPointer(WireError):
    """This order would leave a name pointing at a record written after it: re-pack the message instead."""


def permute(data: bytes, lay: Layout, order: list[int]) -> bytes:
    """The message with its records written in `order` (indexes into the layout, a permutation that
    keeps each record in its section), pointers into moved records following them."""
    starts, ends = lay.starts, lay.ends
    parts = [data[: lay.qend]]
    new_start = [0] * len(starts)
    pos = lay.qend
    for i in order:
        new_start[i] = pos
        parts.append(data[starts[i] : ends[i]])
        pos += ends[i] - starts[i]
    parts.append(data[lay.end :])
    out = b"".join(parts)
    buf: bytearray | None = None
    for rec, p, k in lay.relocs:
        if new_start[k] == starts[k] and new_start[rec] == starts[rec]:
            continue
        target = ((data[p] & 0x3F) << 8) | data[p + 1]
        new_target = target - starts[k] + new_start[k]
        new_p = p - starts[rec] + new_start[rec]
        if new_target >= new_p:  # a record compressed against a later one: RFC 1035 pointers go back
            raise ForwardPointer("pointer would point forward after moving")
        if new_target >= 0x4000:
            raise WireError("pointer target beyond 16 KB after moving")
        if new_target != target:
            if buf is None:
                buf = bytearray(out)
            struct.pack_into(">H", buf, new_p, 0xC000 | new_target)
    if buf is not None:
        out = bytes(buf)
    _recent[:] = [out, (lay, order, new_start)]  # its Layout is built if truncation asks (`layout_of`)
    return out


def _permuted(lay: Layout, order: list[int], new_start: list[int]) -> Layout:
    """The Layout of the message permute() wrote from `lay` in `order`."""
    starts, ends = lay.starts, lay.ends
    rank = [0] * len(order)
    for new, old in enumerate(order):
        rank[old] = new
    new_starts = [new_start[i] for i in order]
    return Layout(lay.qend, lay.counts, new_starts,
                  [s + ends[i] - starts[i] for s, i in zip(new_starts, order, strict=True)],
                  [lay.types[i] for i in order],
                  [(rank[rec], p - starts[rec] + new_start[rec], rank[k]) for rec, p, k in lay.relocs], lay.end)


# the layout of the message permute() made last (or one handed over by `remember`): the server's
# truncation of that same reply (the next thing that happens to it, in the same call) needs no
# second walk. Matched by identity; a permuted message's Layout is built only when asked for (a reply
# that fits, the usual case, never needs it).
_recent: list[Any] = [None, None]  # [message, its Layout or (Layout before, order, new starts)]


def remember(data: bytes, lay: Layout) -> None:
    """`lay` is the layout of `data` (a memoised one, from a caller that knows): `layout_of` returns it."""
    _recent[:] = [data, lay]


def recent_opt(data: bytes) -> int | None:
    """Offset of the last OPT record in the additional section of `data` (-1: none) when `data` is the
    message permute() made last or `remember` was given, without a walk; None for any other message."""
    if _recent[0] is not data:
        return None
    hit = _recent[1]
    lay, new_start = (hit[0], hit[2]) if type(hit) is tuple else (hit, hit.starts)
    at = -1
    types = lay.types
    for i in range(lay.counts[0] + lay.counts[1], len(types)):
        if types[i] == TYPE_OPT and new_start[i] > at:
            at = new_start[i]
    return at


def layout_of(data: bytes) -> Layout:
    """`layout(data)`, without walking again when `data` is the message permute() just returned."""
    if _recent[0] is data:
        hit = _recent[1]
        if type(hit) is tuple:
            hit = _recent[1] = _permuted(*hit)
        return hit  # type: ignore[no-any-return]
    return layout(data)


def opt_index(lay: Layout) -> int:
    """Index of the OPT record in the additional section, or -1."""
    first = lay.counts[0] + lay.counts[1]
    for i in range(first, len(lay.types)):
        if lay.types[i] == TYPE_OPT:
            return i
    return -1


def uncompressed(data: bytes, lay: Layout | None = None) -> list[bytes]:
    """Every record of a message (answer, authority, additional, in order) with its owner and its
    compressible rdata names written out: records without compression pointers, which can be spliced
    into another message anywhere (a self-lookup's answers after a CNAME). Raises WireError on garbage."""
    if lay is None:
        lay = layout_of(data)
    out = []
    for start, end, rtype in zip(lay.starts, lay.ends, lay.types, strict=True):
        owner, off = expand_name(data, start)
        rdata_at = off + 10
        rdata = data[rdata_at:end]
        spec = RDATA_NAMES.get(rtype)
        if spec is not None:
            first, count = spec
            pos = rdata_at + first
            names = []
            for _ in range(count):
                name, pos = expand_name(data, pos)
                names.append(name)
            if pos > end:
                raise WireError("rdata name overruns its record")
            rdata = data[rdata_at : rdata_at + first] + b"".join(names) + data[pos:end]
        out.append(owner + data[off : off + 8] + struct.pack(">H", len(rdata)) + rdata)
    return out


def expand_name(data: bytes, off: int) -> tuple[bytes, int]:
    """The name at `off` with its pointers followed, as wire bytes, and the offset after it in place:
    `read_name` (same checks, same errors) that copies runs of labels instead of each label."""
    parts = []
    end = -1
    hops = 0
    n = len(data)
    total = 0
    run = off
    while True:
        if off >= n:
            raise WireError("name overruns message")
        length = data[off]
        if length == 0:
            if end < 0:
                return data[run : off + 1], off + 1
            parts.append(data[run : off + 1])
            return b"".join(parts), end
        if length >= 0xC0:
            if off + 2 > n:
                raise WireError("pointer overruns message")
            if end < 0:
                end = off + 2
            parts.append(data[run:off])
            off = run = ((length & 0x3F) << 8) | data[off + 1]
            hops += 1
            if hops > 64:
                raise WireError("compression loop")
            continue
        if length > 63:
            raise WireError("bad label length")
        if off + 1 + length > n:
            raise WireError("label overruns message")
        total += length + 1
        if total > 255:
            raise WireError("name too long")
        off += 1 + length
