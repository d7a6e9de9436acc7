"""template's RR-text parser: one zone-file RR line as miekg's dns.NewRR reads it."""

from __future__ import annotations

from dnslib import QTYPE, RD, RDMAP, RR, DNSLabel

from pycoredns import wire
from pycoredns.corefile.errors import go_quote

DEFAULT_TTL = 3600  # miekg's NewRR default when a template leaves the TTL out


def _rr_tokens(text: str) -> list[str]:
    """Zone-file tokens of one line: quotes (with escapes) group, `( )` and whitespace separate, `;` ends."""
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


def parse_rr(text: str) -> RR:
    """One zone-file RR (dns.NewRR): relative names are below the root, TTL defaults to 3600,
    TTL and class in either order. Raises ValueError."""
    try:
        toks = _rr_tokens(text)
        if len(toks) < 2:
            raise ValueError("not enough fields")
        owner = toks.pop(0)
        name = _ROOT if owner == "@" else DNSLabel(owner if owner.endswith(".") else owner + ".")
        ttl, rclass = DEFAULT_TTL, 1
        for _ in range(2):
            if toks and toks[0].isdigit():
                ttl = int(toks.pop(0))
            elif toks and toks[0].upper() in _RR_CLASSES:
                rclass = _RR_CLASSES[toks.pop(0).upper()]
        if not toks:
            raise ValueError("missing type")
        rtype_s = toks.pop(0).upper()
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
