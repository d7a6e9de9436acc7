"""What miekg/dns's ReadMsg makes of an upstream reply, decided on the wire bytes in one walk.

CoreDNS 1.14.7 unpacks every upstream reply and writes the unpacked message to the client, so
(measured against the reference binary, see README.md):

- bytes after the last record are dropped; header counts larger than the records present are
  lowered to what is there (the reply ends at a record boundary);
- a reply whose records do not unpack ("overflow" errors: rdata shorter than its type needs, a
  name running out of its record, char-strings past the end) becomes, over UDP, the header and
  question with TC set and no records (CoreDNS's truncateResponse), so the client retries over TCP;
  over TCP it is an error (SERVFAIL);
- a reply with TC set whose records do not unpack becomes header and question (over TCP too);
- a header or question that does not unpack is an error.

`accept(reply, udp)` returns the bytes to pass on or raises `Damaged`/`wire.WireError`.
"""

from __future__ import annotations

import struct

from pycoredns import wire

_H = struct.Struct(">HHHHHH")
_HHIH = struct.Struct(">HHIH")


class Damaged(wire.WireError):
    """Records that do not unpack (miekg's overflow errors): over UDP the client gets TC."""


def _names(data: bytes, off: int, end: int, count: int) -> int:
    for _ in range(count):
        _labels, off = wire.read_name(data, off)
        if off > end:
            raise Damaged("name overflows its record")
    return off


def _strings(data: bytes, off: int, end: int, count: int = -1) -> int:
    """`count` char-strings (-1: as many as fill the rdata)."""
    n = 0
    while (count < 0 and off < end) or n < count:
        if off >= end:
            raise Damaged("overflow unpacking txt")
        off += 1 + data[off]
        if off > end:
            raise Damaged("overflow unpacking txt")
        n += 1
    return off


def _fixed(size: int, exact: bool = True):
    def check(data: bytes, off: int, end: int) -> None:
        if (end - off != size) if exact else (end - off < size):
            raise Damaged("bad rdlength" if exact else "overflow unpacking rdata")

    return check


def _name_at(skip: int, names: int = 1, tail: int = 0, rest: bool = False):
    """`skip` fixed bytes, `names` names, then `tail` fixed bytes (`rest`: anything after)."""

    def check(data: bytes, off: int, end: int) -> None:
        if off + skip > end:
            raise Damaged("overflow unpacking rdata")
        off = _names(data, off + skip, end, names) + tail
        if off > end or (off != end and not rest):
            raise Damaged("bad rdlength")

    return check


def _txt(data: bytes, off: int, end: int) -> None:
    _strings(data, off, end)


def _hinfo(data: bytes, off: int, end: int) -> None:
    if _strings(data, off, end, 2) != end:
        raise Damaged("bad rdlength")


def _caa(data: bytes, off: int, end: int) -> None:
    if end - off < 2 or off + 2 + data[off + 1] > end:
        raise Damaged("overflow unpacking caa")


def _naptr(data: bytes, off: int, end: int) -> None:
    if off + 4 > end:
        raise Damaged("overflow unpacking naptr")
    off = _strings(data, off + 4, end, 3)
    if _names(data, off, end, 1) != end:
        raise Damaged("bad rdlength")


def _nsec(data: bytes, off: int, end: int) -> None:
    off = _names(data, off, end, 1)
    _bitmap(data, off, end)


def _bitmap(data: bytes, off: int, end: int) -> None:
    while off < end:
        if off + 2 > end:
            raise Damaged("overflow unpacking nsec")
        length = data[off + 1]
        if length == 0 or length > 32 or off + 2 + length > end:
            raise Damaged("bad nsec bitmap")
        off += 2 + length


def _opt(data: bytes, off: int, end: int) -> None:
    while off < end:
        if off + 4 > end:
            raise Damaged("overflow unpacking opt")
        off += 4 + ((data[off + 2] << 8) | data[off + 3])
        if off > end:
            raise Damaged("overflow unpacking opt")


# rtype -> check(data, rdata start, rdata end); types not listed are opaque (RFC 3597).
RDATA = {
    1: _fixed(4), 28: _fixed(16),  # A, AAAA
    2: _name_at(0), 5: _name_at(0), 12: _name_at(0), 39: _name_at(0),  # NS, CNAME, PTR, DNAME
    3: _name_at(0), 4: _name_at(0), 7: _name_at(0), 8: _name_at(0), 9: _name_at(0),  # MD MF MB MG MR
    6: _name_at(0, 2, 20),  # SOA
    15: _name_at(2), 18: _name_at(2), 21: _name_at(2), 36: _name_at(2),  # MX, AFSDB, RT, KX
    33: _name_at(6),  # SRV
    14: _name_at(0, 2),  # MINFO
    17: _name_at(0, 2),  # RP
    16: _txt, 99: _txt,  # TXT, SPF
    13: _hinfo, 257: _caa, 35: _naptr,
    47: _nsec,  # NSEC
    46: _name_at(18, 1, 0, rest=True),  # RRSIG: fixed part, signer, signature
    43: _fixed(4, False), 59: _fixed(4, False), 32769: _fixed(4, False),  # DS, CDS, DLV
    48: _fixed(4, False), 60: _fixed(4, False),  # DNSKEY, CDNSKEY
    44: _fixed(2, False), 52: _fixed(3, False), 53: _fixed(3, False),  # SSHFP, TLSA, SMIMEA
    41: _opt,
}


def accept(reply: bytes, udp: bool, qend: int = 0) -> bytes:
    """The reply as CoreDNS would pass it on (see the module docstring); raises on what it rejects.

    `qend`: where the question ends when the caller already knows (forward: a reply whose one question
    equals the query's, compared on the wire), so it is not walked again; 0: walk it."""
    n = len(reply)
    if n < 12:
        raise wire.WireError("overflow unpacking uint16")
    _qid, flags, qd, an, ns, ar = _H.unpack_from(reply)
    off = 12
    if qend:
        off = qend
    else:
        for _ in range(qd):
            off = wire.skip_name(reply, off) + 4
            if off > n:
                raise wire.WireError("overflow unpacking uint16")
    skip_name = wire.skip_name
    _hhih = _HHIH.unpack_from
    try:
        for i in range(an + ns + ar):  # the three sections as one run of records
            if off == n:  # the counts promise more records than there are: miekg keeps what is there
                kept_an = min(an, i)
                kept_ns = min(ns, i - kept_an)
                return _fix_counts(reply, off, [kept_an, kept_ns, i - kept_an - kept_ns])
            # an owner that is one compression pointer (most are) is two bytes: skip_name's answer
            off = off + 2 if reply[off] >= 0xC0 and off + 2 <= n else skip_name(reply, off)
            if off + 10 > n:
                raise Damaged("overflow unpacking rr header")
            rtype, _cls, _ttl, rdlen = _hhih(reply, off)
            start = off + 10
            off = start + rdlen
            if off > n:
                raise Damaged("overflow unpacking rdata")
            if rtype == 1:  # A: RDATA[1] (_fixed(4)), inlined for the commonest record
                if rdlen and rdlen != 4:
                    raise Damaged("bad rdlength")
            elif rdlen:
                check = RDATA.get(rtype)
                if check is not None:
                    check(reply, start, off)
    except (wire.WireError, IndexError, struct.error):
        if not udp and not flags & wire.TC:
            raise
        return _tc_only(reply, _question_end(reply))
    if off != n:
        return reply[:off]  # trailing bytes: dropped, as a repack does
    return reply


def _question_end(reply: bytes) -> int:
    off = 12
    for _ in range((reply[4] << 8) | reply[5]):
        off = wire.skip_name(reply, off) + 4
    return min(off, len(reply))


def _tc_only(reply: bytes, qend: int) -> bytes:
    """CoreDNS truncateResponse: header (TC set, counts of the question only) and the question."""
    flags = ((reply[2] << 8) | reply[3]) | wire.TC
    qd = (reply[4] << 8) | reply[5]
    return _H.pack((reply[0] << 8) | reply[1], flags, qd, 0, 0, 0) + reply[12:qend]


def _fix_counts(reply: bytes, end: int, counts: list[int]) -> bytes:
    return reply[:6] + struct.pack(">HHH", *counts) + reply[12:end]
