"""Reply truncation on wire bytes (miekg's Msg.Truncate, without a dnslib parse and re-pack).

A reply larger than the client takes keeps its records in order (answer, authority, additional) while
they fit, with room kept for the OPT record, which is moved to the end; TC is set when any record was
dropped. Compression pointers only point backwards, so cutting a suffix of the records keeps every kept
record valid. Unlike miekg, a later section is not tried after a record did not fit (its records could
point into the dropped ones).
"""

from __future__ import annotations

import struct

from . import wire

_H = struct.Struct(">HHHHHH")


def truncate(data: bytes, size: int) -> bytes | None:
    """`data` cut down to `size` bytes (floor 512); unchanged when it fits.

    None when the wire layout does not allow a byte-level cut (an OPT that is not the last record, or
    a message that does not parse): the caller then truncates with a full parse.
    """
    size = max(size, 512)
    if len(data) <= size:
        return data
    try:
        qid, flags, qd, an, ns, ar = _H.unpack_from(data)
        off = 12
        for _ in range(qd):
            off = wire.skip_name(data, off) + 4
        question_end = off
        records: list[tuple[int, int, int]] = []  # (section, start, end)
        opt = b""
        for i in range(an + ns + ar):
            start = off
            rtype, _ttl, off = wire.skip_rr(data, off)
            section = 0 if i < an else 1 if i < an + ns else 2
            if opt:
                return None  # records after the OPT would move: pointers into them could break
            if section == 2 and rtype == wire.TYPE_OPT:
                opt = data[start:off]
            else:
                records.append((section, start, off))
    except wire.WireError:
        return None
    budget = size - len(opt)
    length = question_end
    counts = [0, 0, 0]
    for section, start, end in records:
        if length + (end - start) > budget:
            break
        length += end - start
        counts[section] += 1
    kept = sum(counts)
    if kept == len(records):
        return data
    body_end = records[kept - 1][2] if kept else question_end
    head = _H.pack(qid, flags | wire.TC, qd, counts[0], counts[1], counts[2] + (1 if opt else 0))
    return head + data[12:body_end] + opt
