"""Reply truncation on wire bytes (miekg's Msg.Truncate, without a dnslib parse and re-pack).

A reply larger than the client takes keeps its records in order (answer, authority, additional) while
they fit, with room kept for the OPT record, which goes last (moved there on the wire when it was not,
pointers into the records after it following them: `pycoredns.layout`); TC is set when any record was
dropped. As in miekg, the first record that does not fit ends the message: no later record is tried.
Compression pointers almost always point backwards, so the kept prefix stays valid; a kept record
pointing forward into a dropped one is the one layout left to the caller's full parse.
"""

from __future__ import annotations

import struct

from . import wire
from .layout import layout, layout_of, opt_index, permute

_H = struct.Struct(">HHHHHH")


def truncate(data: bytes, size: int) -> bytes | None:
    """`data` cut down to `size` bytes (floor 512); unchanged when it fits.

    None when the message does not walk (garbage) or a kept record points into a dropped one: the
    caller then truncates with a full parse.
    """
    size = max(size, 512)
    if len(data) <= size:
        return data
    try:
        lay = layout_of(data)
        opt = opt_index(lay)
        last = len(lay.types) - 1
        if 0 <= opt < last:
            data = permute(data, lay, [i for i in range(last + 1) if i != opt] + [opt])
            lay = layout(data, lay.qend)
            opt = last
    except wire.WireError:
        return None
    starts, ends = lay.starts, lay.ends
    n = len(starts) - (1 if opt >= 0 else 0)
    budget = size - (ends[opt] - starts[opt] if opt >= 0 else 0)
    kept = 0
    while kept < n and ends[kept] <= budget:
        kept += 1
    if kept == n:
        return data
    if any(rec < kept <= k for rec, _p, k in lay.relocs):
        return None
    an, ns, _ar = lay.counts
    counts = (min(kept, an), min(max(kept - an, 0), ns), max(kept - an - ns, 0))
    qid, flags, qd = _H.unpack_from(data)[:3]
    head = _H.pack(qid, flags | wire.TC, qd, counts[0], counts[1], counts[2] + (1 if opt >= 0 else 0))
    body_end = ends[kept - 1] if kept else lay.qend
    tail = data[starts[opt] : ends[opt]] if opt >= 0 else b""
    return head + data[12:body_end] + tail
