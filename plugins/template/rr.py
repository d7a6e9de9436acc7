"""template's RR-text parser: one zone-file RR line as miekg's dns.NewRR reads it."""

from __future__ import annotations

import ipaddress
import re
import struct
from typing import NamedTuple

from dnslib import QTYPE, RD, RDMAP, RR, DNSLabel

from pycoredns import wire
from pycoredns.corefile.errors import go_quote

DEFAULT_TTL = 3600  # miekg's NewRR default when a template leaves the TTL out


_SPECIAL = re.compile(r'["\\();]')


def _rr_tokens(text: str) -> list[str]:
    """Zone-file tokens of one line: quotes (with escapes) group, `( )` and whitespace separate, `;` ends."""
    if _SPECIAL.search(text) is None:  # the usual rendering: whitespace alone separates
        return text.split()
    out: list[str] = []
    cur: list[str] = []
    quoted = False
    i, n = 0, len(text)
    has = False
    while i < n:
        c = text[i]
        if quoted:
            if c == "\\" and i + 1 < n:
                d = text[i + 1 : i + 4]
                if len(d) == 3 and d.isdigit():
                    cur.append(chr(int(d)))
                    i += 4
                    continue
                cur.append(text[i + 1])
                i += 2
                continue
            if c == '"':
                quoted = False
            else:
                cur.append(c)
        elif c == '"':
            quoted = has = True
        elif c.isspace() or c in "()":
            if cur or has:
                out.append("".join(cur))
            cur, has = [], False
        elif c == ";":
            break
        else:
            cur.append(c)
            if c == "\\" and i + 1 < n:
                cur.append(text[i + 1])
                i += 1
        i += 1
    if quoted:
        raise ValueError("unbalanced quotes")
    if cur or has:
        out.append("".join(cur))
    return out


_ROOT = DNSLabel("")
_RR_CLASSES = {"IN": 1, "CS": 2, "CH": 3, "HS": 4, "NONE": 254, "ANY": 255}


def _head(toks: list[str]) -> tuple[str, int, int, str]:
    """Owner, TTL, class and type of an RR's tokens (consumed from `toks`, the rdata stays): relative
    owners are below the root, TTL defaults to 3600, TTL and class in either order. Raises ValueError."""
    if len(toks) < 2:
        raise ValueError("not enough fields")
    owner = toks.pop(0)
    ttl, rclass = DEFAULT_TTL, 1
    for _ in range(2):
        if toks and toks[0].isdigit():
            ttl = int(toks.pop(0))
        elif toks and toks[0].upper() in _RR_CLASSES:
            rclass = _RR_CLASSES[toks.pop(0).upper()]
    if not toks:
        raise ValueError("missing type")
    return owner, ttl, rclass, toks.pop(0).upper()


def parse_rr(text: str) -> RR:
    """One zone-file RR (dns.NewRR) with dnslib. Raises ValueError."""
    try:
        toks = _rr_tokens(text)
        owner, ttl, rclass, rtype_s = _head(toks)
        name = _ROOT if owner == "@" else DNSLabel(owner if owner.endswith(".") else owner + ".")
        rtype = wire.type_value(rtype_s)
        if rtype is None:
            raise ValueError(f"unknown RR type {rtype_s}")
        rd = RDMAP.get(QTYPE.forward.get(rtype, ""), RD)
        if not toks or (rd is RD and toks[0] != "\\#"):
            raise ValueError(f"bad {rtype_s} rdata")
        if ttl > 0xFFFFFFFF:
            raise ValueError("bad TTL")
        return RR(name, rtype, rclass, ttl, rd.fromZone(toks, _ROOT))
    except Exception as e:
        raise ValueError(f"dns: bad RR {go_quote(text)}: {e or type(e).__name__}") from None


# -- the wire builder: the common types without dnslib ------------------------------------------------

_PLAIN_NAME = re.compile(r"[A-Za-z0-9_*-]{1,63}(?:[.][A-Za-z0-9_*-]{1,63})*[.]?")  # (labels first: fewer steps)
_IPV4 = re.compile(r"([0-9]{1,3})[.]([0-9]{1,3})[.]([0-9]{1,3})[.]([0-9]{1,3})")
_IPV6 = re.compile(r"[0-9A-Fa-f:]+")
_U16 = re.compile(r"[0-9]{1,5}")
_NAME_TYPES = {"CNAME": wire.TYPE_CNAME, "NS": 2, "PTR": 12}  # dnslib has no DNAME: parse_rr fails it


class WireRR(NamedTuple):
    """One record built on the wire: uncompressed, so it fits anywhere in a reply."""

    rtype: int
    packed: bytes
    target: str  # a CNAME's target in presentation form ("" for other types)
    rdata: bytes  # (a CNAME's: its target in wire form, what a self-lookup asks)


def _plain(name: str) -> bytes | None:
    """Wire form of a host name of plain labels (what dnslib reads the same way), else None."""
    if _PLAIN_NAME.fullmatch(name) is None:
        return None
    w = wire.text_to_wire(name)
    return w if len(w) <= 255 else None


def _u16(tok: str) -> bytes | None:
    return struct.pack(">H", int(tok)) if _U16.fullmatch(tok) and int(tok) <= 0xFFFF else None


def wire_rr(text: str) -> WireRR | None:
    """The record `parse_rr(text)` packs, built on the wire for A, AAAA, CNAME, NS, PTR, MX and
    SRV with plain names, one rdata form each; None for anything else (unusual names or rdata, other
    types, errors), which then goes through `parse_rr`, so its result and its errors stay dnslib's."""
    try:
        toks = _rr_tokens(text)
        owner, ttl, rclass, rtype_s = _head(toks)
    except ValueError:
        return None
    own = _plain(owner)
    if own is None or ttl > 0xFFFFFFFF:
        return None
    rdata: bytes | None = None
    target = ""
    if rtype_s == "A" and len(toks) == 1:
        m = _IPV4.fullmatch(toks[0])
        if m is not None and all(int(x) <= 255 for x in m.groups()):
            rtype, rdata = wire.TYPE_A, bytes(int(x) for x in m.groups())
    elif rtype_s == "AAAA" and len(toks) == 1 and _IPV6.fullmatch(toks[0]):
        try:
            rtype, rdata = wire.TYPE_AAAA, ipaddress.IPv6Address(toks[0]).packed
        except ValueError:
            return None
    elif rtype_s in _NAME_TYPES and len(toks) == 1:
        rtype, rdata = _NAME_TYPES[rtype_s], _plain(toks[0])
        if rtype == wire.TYPE_CNAME:
            target = toks[0] if toks[0].endswith(".") else toks[0] + "."
    elif rtype_s == "MX" and len(toks) == 2:
        pref, host = _u16(toks[0]), _plain(toks[1])
        rtype, rdata = 15, pref + host if pref is not None and host is not None else None
    elif rtype_s == "SRV" and len(toks) == 4:
        nums = [_u16(x) for x in toks[:3]]
        host = _plain(toks[3])
        if host is not None and all(x is not None for x in nums):
            rtype, rdata = 33, b"".join(nums) + host  # type: ignore[arg-type]
    if rdata is None:
        return None
    return WireRR(rtype, own + struct.pack(">HHIH", rtype, rclass, ttl, len(rdata)) + rdata, target, rdata)
