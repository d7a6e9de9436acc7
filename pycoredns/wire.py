"""Wire-level DNS helpers for the hot paths.

dnslib costs ~12 µs to parse a query and ~40 µs to parse, answer and pack one; the per-query budget
for cache hits is a few µs. Everything here works on `bytes` with `struct` and slicing, and is shared
by the server (routing, scrub), cache (stored replies) and kubernetes (precomputed answers).
"""

from __future__ import annotations

import re
import struct
from typing import TypeAlias

from dnslib import DNSRecord

# Header flag bits (second 16-bit word).
QR = 0x8000
AA = 0x0400
TC = 0x0200
RD = 0x0100
RA = 0x0080
Z = 0x0040
AD = 0x0020
CD = 0x0010

# Opcode: bits 11-14 of the flags word.
OPCODE_MASK = 0x7800
OPCODE_SHIFT = 11
OPCODE_QUERY, OPCODE_NOTIFY, OPCODE_UPDATE = 0, 4, 5

# Rcodes (the header's 4 bits; BADVERS needs the OPT's extended bits).
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
BADVERS = 16

# Resource record types (one home: modules import these instead of redefining them).
TYPE_A, TYPE_NS, TYPE_CNAME, TYPE_SOA, TYPE_PTR, TYPE_HINFO, TYPE_MX, TYPE_TXT = 1, 2, 5, 6, 12, 13, 15, 16
TYPE_AAAA, TYPE_SRV, TYPE_OPT, TYPE_DS = 28, 33, 41, 43
TYPE_SVCB, TYPE_HTTPS = 64, 65
TYPE_IXFR, TYPE_AXFR, TYPE_ANY = 251, 252, 255

# Classes.
CLASS_IN, CLASS_CH, CLASS_HS, CLASS_NONE, CLASS_ANY = 1, 3, 4, 254, 255

# Extended DNS Error info codes (RFC 8914) the plugins set.
EDE_BLOCKED, EDE_FILTERED = 15, 17

RCODE_NAMES = {
    0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
    6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE", 16: "BADSIG",
    17: "BADKEY", 18: "BADTIME", 19: "BADMODE", 20: "BADNAME", 21: "BADALG", 22: "BADTRUNC",
    23: "BADCOOKIE",
}
RCODE_VALUES = {v: k for k, v in RCODE_NAMES.items()}
RCODE_VALUES["BADVERS"] = 16

_H = struct.Struct(">HHHHHH")
_HH = struct.Struct(">HH")
_HHIH = struct.Struct(">HHIH")
_I = struct.Struct(">I")

Reply: TypeAlias = bytes | DNSRecord


class WireError(ValueError):
    """The message does not unpack (a FORMERR for a query, a garbage reply from an upstream)."""


def header(data: bytes) -> tuple[int, int, int, int, int, int]:
    """(id, flags, qdcount, ancount, nscount, arcount)."""
    return _H.unpack_from(data)


def skip_name(data: bytes, off: int) -> int:
    """Return the offset just after the (possibly compressed) name at `off`."""
    n = len(data)
    while True:
        if off >= n:
            raise WireError("name overruns message")
        length = data[off]
        if length == 0:
            return off + 1
        if length >= 0xC0:
            if off + 2 > n:
                raise WireError("pointer overruns message")
            return off + 2
        if length > 63:
            raise WireError("bad label length")
        off += 1 + length


def read_name(data: bytes, off: int) -> tuple[list[bytes], int]:
    """Labels of the name at `off` (following pointers) and the offset after it in place."""
    labels: list[bytes] = []
    end = -1
    hops = 0
    n = len(data)
    total = 0
    while True:
        if off >= n:
            raise WireError("name overruns message")
        length = data[off]
        if length == 0:
            if end < 0:
                end = off + 1
            return labels, end
        if length >= 0xC0:
            if off + 2 > n:
                raise WireError("pointer overruns message")
            if end < 0:
                end = off + 2
            off = ((length & 0x3F) << 8) | data[off + 1]
            hops += 1
            if hops > 64:
                raise WireError("compression loop")
            continue
        if length > 63:
            raise WireError("bad label length")
        label = data[off + 1 : off + 1 + length]
        if len(label) != length:
            raise WireError("label overruns message")
        total += length + 1
        if total > 255:
            raise WireError("name too long")
        labels.append(label)
        off += 1 + length


def labels_to_text(labels: list[bytes]) -> str:
    """Presentation form of a name, escaped like miekg/dns (`\\.`, `\\DDD`), always fully qualified."""
    if not labels:
        return "."
    joined = b".".join(labels)  # the usual name: one search of the whole name, no dot inside a label
    if _SPECIAL_BUT_DOT.search(joined) is None and joined.count(b".") == len(labels) - 1:
        return joined.decode("ascii") + "."
    out = []
    special = _SPECIAL.search
    for label in labels:
        if special(label) is None:  # printable ASCII without characters that need a backslash
            out.append(label.decode("ascii"))
        else:
            out.append("".join(_escape_byte(b) for b in label))
    return ".".join(out) + "."


# Bytes a label cannot show as-is: controls, space, non-ASCII, and `.\"();@$` (miekg's escapes).
_SPECIAL = re.compile(rb'[\x00-\x20.\\"();@$\x7f-\xff]')
_SPECIAL_BUT_DOT = re.compile(rb'[\x00-\x20\\"();@$\x7f-\xff]')


def _escape_byte(b: int) -> str:
    c = chr(b)
    if c in '.\\"();@$ ':
        return "\\" + c
    if 0x21 <= b <= 0x7E:
        return c
    return f"\\{b:03d}"


def parse_question(data: bytes) -> tuple[bytes, int, int, int]:
    """Walk the single question at offset 12: (lowercased wire qname, qtype, qclass, end offset)."""
    off = 12
    n = len(data)
    while True:
        if off >= n:
            raise WireError("question overruns message")
        length = data[off]
        if length == 0:
            break
        if length > 63:
            raise WireError("compressed or bad label in question")
        off += 1 + length
    off += 1
    if off + 4 > n or off - 12 > 255:
        raise WireError("question overruns message")
    qtype, qclass = _HH.unpack_from(data, off)
    return data[12:off].lower(), qtype, qclass, off + 4


def wire_name_to_text(wname: bytes) -> str:
    """Text form of an uncompressed wire name (memoised, bounded: the same names come again and again)."""
    text = _NAME_TEXT.get(wname)
    if text is None:
        labels, _ = read_name(wname, 0)
        text = labels_to_text(labels)
        if len(_NAME_TEXT) >= NAME_CACHE_SIZE:
            _NAME_TEXT.clear()
        _NAME_TEXT[wname] = text
    return text


NAME_CACHE_SIZE = 4096
_NAME_TEXT: dict[bytes, str] = {}


def _without_final_dots(name: str) -> str:
    """`name` without its final unescaped dots: an escaped one (`a\\..`, the label "a.") stays."""
    end = len(name)
    while end and name[end - 1] == ".":
        slashes = 0
        while end - 2 - slashes >= 0 and name[end - 2 - slashes] == "\\":
            slashes += 1
        if slashes % 2:
            break  # `\\.`: a dot inside the last label
        end -= 1
    return name[:end]


_LENGTH_OCTET = [bytes((i,)) for i in range(256)]


def text_to_wire(name: str) -> bytes:
    """Uncompressed wire form of a presentation-form name (handles `\\.` and `\\DDD` escapes)."""
    if "\\" not in name:  # no escapes (the usual name): per label, not per character
        name = name.rstrip(".")
        if not name:
            return b"\x00"
        # (a dot's byte occurs in no other character's UTF-8: the labels are the encoded name's split)
        try:
            return b"".join([_LENGTH_OCTET[len(b)] + b for b in name.encode("utf-8").split(b".")]) + b"\x00"
        except IndexError:
            raise ValueError("bytes must be in range(0, 256)") from None  # a label of 256+ octets
    name = _without_final_dots(name)
    out = bytearray()
    label = bytearray()
    i = 0
    while i < len(name):
        c = name[i]
        if c == "\\" and i + 1 < len(name):
            nxt = name[i + 1 : i + 4]
            if len(nxt) == 3 and nxt.isascii() and nxt.isdigit():
                label.append(int(nxt) & 0xFF)  # miekg's dddToByte wraps \256..\999 into a byte
                i += 4
                continue
            label += name[i + 1].encode("utf-8")
            i += 2
            continue
        if c == ".":
            out.append(len(label))
            out += label
            label = bytearray()
        else:
            label += c.encode("utf-8")
        i += 1
    out.append(len(label))
    out += label
    out.append(0)
    return bytes(out)


def label_offsets(wname: bytes) -> list[int]:
    """Offsets of each label start in an uncompressed wire name, longest suffix first, root last."""
    offs = []
    off = 0
    while wname[off]:
        offs.append(off)
        off += 1 + wname[off]
    offs.append(off)
    return offs


def skip_rr(data: bytes, off: int) -> tuple[int, int, int]:
    """Skip one resource record: (rtype, offset of its TTL, offset after the record)."""
    off = skip_name(data, off)
    if off + 10 > len(data):
        raise WireError("record overruns message")
    rtype, _rclass, _ttl, rdlen = _HHIH.unpack_from(data, off)
    end = off + 10 + rdlen
    if end > len(data):
        raise WireError("rdata overruns message")
    return rtype, off + 4, end


def rr_layout(data: bytes) -> tuple[int, list[int], int]:
    """For a reply: (end of question section, TTL offsets of non-OPT records, offset of OPT or -1).

    The cache stores these offsets so that a hit only rewrites TTL words in place.
    """
    _id, _flags, qd, an, ns, ar = _H.unpack_from(data)
    off = 12
    for _ in range(qd):
        off = skip_name(data, off) + 4
    qend = off
    ttls: list[int] = []
    opt = -1
    for i in range(an + ns + ar):
        start = off
        rtype, ttl_off, off = skip_rr(data, off)
        if rtype == TYPE_OPT and i >= an + ns:
            opt = start
        else:
            ttls.append(ttl_off)
    if off > len(data):
        raise WireError("message overruns")
    return qend, ttls, opt


def rcode_of(reply: Reply) -> int:
    if isinstance(reply, bytes):
        return reply[3] & 0x0F
    return int(reply.header.rcode)


def flags_of(reply: Reply) -> int:
    if isinstance(reply, bytes):
        return (reply[2] << 8) | reply[3]
    return int(reply.header.bitmap)


def to_bytes(reply: Reply) -> bytes:
    """A written reply as bytes (what the server sends and observers see); a bytearray is copied."""
    if isinstance(reply, bytes):
        return reply
    if isinstance(reply, bytearray):
        return bytes(reply)
    return bytes(reply.pack())


def to_record(reply: Reply) -> DNSRecord:
    if isinstance(reply, DNSRecord):
        return reply
    return DNSRecord.parse(reply)


def min_ttl(data: bytes, ttl_offsets: list[int]) -> int | None:
    """Smallest TTL among the given records (None when there are none)."""
    if not ttl_offsets:
        return None
    return min(int(_I.unpack_from(data, o)[0]) for o in ttl_offsets)


def set_ttls(buf: bytearray, ttl_offsets: list[int], ttl: int) -> None:
    for o in ttl_offsets:
        _I.pack_into(buf, o, ttl)


def set_id(data: bytes, qid: int) -> bytes:
    return qid.to_bytes(2, "big") + data[2:]


class ReplyMemo:
    """Bounded memo of whole replies that depend only on the question and the copied flags.

    For authoritative data that does not change between reloads (file zones, local): the key is the
    opcode/RD/CD bits and the question exactly as sent (case kept), the value the reply with its id;
    `get` gives it back with the query's id. Cleared when full (queries repeat).
    """

    __slots__ = ("limit", "table")

    KEY_FLAGS = 0x7800 | RD | CD  # what SetReply copies from the query into the reply header

    def __init__(self, limit: int = 4096) -> None:
        self.table: dict[tuple[int, bytes], bytes] = {}
        self.limit = limit

    def get(self, flags: int, question: bytes, qid: int) -> bytes | None:
        hit = self.table.get((flags & self.KEY_FLAGS, question))
        return None if hit is None else qid.to_bytes(2, "big") + hit[2:]

    def put(self, flags: int, question: bytes, reply: bytes) -> None:
        if len(self.table) >= self.limit:
            self.table.clear()
        self.table[(flags & self.KEY_FLAGS, question)] = reply


def make_reply_header(qid: int, flags: int, rcode: int, qd: int, an: int, ns: int, ar: int) -> bytes:
    return _H.pack(qid, (flags & 0xFFF0) | (rcode & 0x0F), qd, an, ns, ar)


_CLASS_NAMES = {CLASS_IN: "IN", CLASS_CH: "CH", CLASS_HS: "HS", CLASS_NONE: "NONE", CLASS_ANY: "ANY"}


_type_names: dict[int, str] = {}


def type_name(qtype: int) -> str:
    """Mnemonic of a type, `TYPE<n>` when unknown (miekg's Type.String). Memoised: the errors plugin
    names the type of every failed query (the import statement alone was ~0.3 us a call)."""
    name = _type_names.get(qtype)
    if name is None:
        from dnslib import QTYPE

        name = QTYPE.forward.get(qtype) or f"TYPE{qtype}"
        if 0 <= qtype <= 0xFFFF:
            _type_names[qtype] = name  # at most 65,536 short strings
    return name


def class_name(qclass: int) -> str:
    return _CLASS_NAMES.get(qclass, f"CLASS{qclass}")


def type_value(name: str) -> int | None:
    """Type number from a mnemonic or `TYPE<n>`; None when unknown."""
    from dnslib import QTYPE

    up = name.upper()
    if up in QTYPE.reverse:
        return int(QTYPE.reverse[up])
    if up.startswith("TYPE") and up[4:].isascii() and up[4:].isdigit() and int(up[4:]) <= 0xFFFF:
        return int(up[4:])
    return None


def class_value(name: str) -> int | None:
    up = name.upper()
    for k, v in _CLASS_NAMES.items():
        if v == up:
            return k
    if up.startswith("CLASS") and up[5:].isascii() and up[5:].isdigit() and int(up[5:]) <= 0xFFFF:
        return int(up[5:])
    return None


def flags_text(flags: int) -> str:
    """`qr,aa,tc,rd,ra,z,ad,cd` for the flags that are set (CoreDNS log's {>rflags})."""
    names = ((QR, "qr"), (AA, "aa"), (TC, "tc"), (RD, "rd"), (RA, "ra"), (Z, "z"), (AD, "ad"), (CD, "cd"))
    return ",".join(n for bit, n in names if flags & bit)


def uncompressed_length(data: bytes) -> int:
    """Length of the message packed without name compression (miekg's Msg.Len)."""
    _id, _f, qd, an, ns, ar = header(data)
    total = 12
    off = 12
    for _ in range(qd):
        labels, off = read_name(data, off)
        total += sum(len(x) + 1 for x in labels) + 1 + 4
        off += 4
    for _ in range(an + ns + ar):
        labels, off = read_name(data, off)
        rdlen = int.from_bytes(data[off + 8 : off + 10], "big")
        total += sum(len(x) + 1 for x in labels) + 1 + 10 + rdlen
        off += 10 + rdlen
    return total


def answer_only(data: bytes) -> bytes:
    """The message with authority and additional removed, except an OPT record (minimal responses)."""
    _id, _flags, qd, an, ns, ar = header(data)
    off = 12
    for _ in range(qd):
        off = skip_name(data, off) + 4
    for _ in range(an):
        _t, _ttl, off = skip_rr(data, off)
    end_answer = off
    for _ in range(ns):
        _t, _ttl, off = skip_rr(data, off)
    opt = b""
    for _ in range(ar):
        start = off
        rtype, _ttl, off = skip_rr(data, off)
        if rtype == TYPE_OPT and not opt:
            opt = data[start:off]
    return data[:8] + b"\x00\x00" + (b"\x00\x01" if opt else b"\x00\x00") + data[12:end_answer] + opt
