"""Turning two replies to the same probe into a list of differences.

A reply becomes a `View`: rcode (extended with the OPT bits), opcode, flags, id, question, the OPT
record, and the three sections as RR tuples. Sections compare as multisets (order ignored: loadbalance
shuffles, Go maps iterate randomly) unless `order` is set. TTLs compare separately, with a tolerance
(answers from a cache count down; two servers started a second apart see different ages). Values that
depend on when a server started (an SOA serial made from the clock) are masked by default.
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype

SECTIONS = ("answer", "authority", "additional")
FLAGS = ("qr", "aa", "tc", "rd", "ra", "ad", "cd")
_FLAG_BITS = {"qr": 0x8000, "aa": 0x0400, "tc": 0x0200, "rd": 0x0100, "ra": 0x0080, "ad": 0x0020, "cd": 0x0010}


@dataclass
class Options:
    """What counts as a difference."""

    ttl_tolerance: int = 2  # seconds two TTLs of the same record may differ by
    order: bool = False  # compare record order inside sections too
    ignore_case: bool = False  # compare owner names and rdata case-insensitively
    mask_soa_serial: bool = True  # SOA serials derived from the clock differ between two starts
    ignore: tuple[str, ...] = ()  # fields never compared (e.g. "additional", "ttl", "opt")


@dataclass
class View:
    """What a client can see of one reply (or of its absence)."""

    reply: bool
    error: str = ""  # the reply did not parse
    header: dict[str, Any] = field(default_factory=dict)
    question: list[str] = field(default_factory=list)
    opt: str | None = None
    sections: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # (record key, ttl)
    size: int = 0

    def summary(self) -> str:
        if not self.reply:
            return "no reply"
        if self.error:
            return f"unparsable ({self.size} bytes): {self.error}"
        h = self.header
        counts = " ".join(f"{s[:2]}={len(self.sections.get(s, []))}" for s in SECTIONS)
        return f"{h.get('rcode')} {h.get('flags')} {counts}"

    def as_dict(self) -> dict[str, Any]:
        if not self.reply:
            return {"reply": False}
        d: dict[str, Any] = {"reply": True, "size": self.size}
        if self.error:
            d["error"] = self.error
        d.update(self.header)
        d["question"] = self.question
        d["opt"] = self.opt
        for s in SECTIONS:
            d[s] = [f"{k} ttl={t}" for k, t in self.sections.get(s, [])]
        return d


def _flags_text(bits: int) -> str:
    return " ".join(f for f in FLAGS if bits & _FLAG_BITS[f]) or "-"


def _raw_header(data: bytes) -> dict[str, Any]:
    if len(data) < 12:
        return {}
    qid, bits, qd, an, ns, ar = struct.unpack("!HHHHHH", data[:12])
    return {"id": qid, "rcode": dns.rcode.to_text(bits & 0xF), "opcode": dns.opcode.to_text((bits >> 11) & 0xF),
            "flags": _flags_text(bits), "counts": f"{qd}/{an}/{ns}/{ar}"}


def view(data: bytes | None, opts: Options) -> View:
    if data is None:
        return View(False)
    try:
        msg = dns.message.from_wire(data, ignore_trailing=False, one_rr_per_rrset=True)
    except (dns.exception.DNSException, ValueError, struct.error, IndexError) as exc:
        return View(True, error=f"{type(exc).__name__}: {exc}"[:200], header=_raw_header(data), size=len(data))
    raw = _raw_header(data)
    header = {"id": msg.id, "rcode": dns.rcode.to_text(msg.rcode()), "opcode": dns.opcode.to_text(msg.opcode()),
              "flags": _flags_text(msg.flags), "counts": raw.get("counts", "")}
    opt = None
    if msg.edns >= 0:
        opts_text = ",".join(sorted(f"{o.otype}:{o.to_wire().hex() if hasattr(o, 'to_wire') else ''}"
                                    for o in msg.options))
        opt = f"v{msg.edns} size={msg.payload} do={int(bool(msg.ednsflags & dns.flags.DO))}" + \
            (f" flags={msg.ednsflags & 0x7FFF:#x}" if msg.ednsflags & 0x7FFF else "") + \
            (f" options={opts_text}" if opts_text else "")
    fold = str.lower if opts.ignore_case else str
    question = [fold(f"{q.name} {dns.rdataclass.to_text(q.rdclass)} {dns.rdatatype.to_text(q.rdtype)}")
                for q in msg.question]
    sections = {}
    for s in SECTIONS:
        rows = []
        for rrset in getattr(msg, s):
            for rd in rrset:
                text = rd.to_text()
                if opts.mask_soa_serial and rrset.rdtype == dns.rdatatype.SOA:
                    parts = text.split()
                    parts[2] = "<serial>"
                    text = " ".join(parts)
                key = (f"{rrset.name} {dns.rdataclass.to_text(rrset.rdclass)} "
                       f"{dns.rdatatype.to_text(rrset.rdtype)} {text}")
                rows.append((fold(key), rrset.ttl))
        sections[s] = rows
    return View(True, header=header, question=question, opt=opt, sections=sections, size=len(data))


@dataclass
class Difference:
    field: str
    a: str
    b: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "a": self.a, "b": self.b}


def _section_diff(name: str, a: list[tuple[str, int]], b: list[tuple[str, int]], opts: Options) -> list[Difference]:
    out: list[Difference] = []
    ka, kb = Counter(k for k, _ in a), Counter(k for k, _ in b)
    if ka != kb:
        only_a = sorted((ka - kb).elements())
        only_b = sorted((kb - ka).elements())
        out.append(Difference(name, "; ".join(only_a) or "-", "; ".join(only_b) or "-"))
        return out
    if opts.order and [k for k, _ in a] != [k for k, _ in b]:
        out.append(Difference(f"{name}.order", "; ".join(k for k, _ in a), "; ".join(k for k, _ in b)))
    if "ttl" not in opts.ignore:
        ta: dict[str, list[int]] = {}
        tb: dict[str, list[int]] = {}
        for k, t in a:
            ta.setdefault(k, []).append(t)
        for k, t in b:
            tb.setdefault(k, []).append(t)
        for k in ta:
            x, y = sorted(ta[k]), sorted(tb[k])
            if any(abs(i - j) > opts.ttl_tolerance for i, j in zip(x, y, strict=True)):
                out.append(Difference(f"{name}.ttl", f"{k} ttl={','.join(map(str, x))}",
                                      f"{k} ttl={','.join(map(str, y))}"))
    return out


def differences(a: View, b: View, opts: Options) -> list[Difference]:
    """Every observable difference between two replies to the same probe."""
    if a.reply != b.reply:
        return [Difference("reply", a.summary(), b.summary())]
    if not a.reply:
        return []
    if bool(a.error) != bool(b.error):
        return [Difference("parse", a.summary(), b.summary())]
    out: list[Difference] = []
    for key in ("rcode", "opcode", "flags", "id"):
        if key not in opts.ignore and a.header.get(key) != b.header.get(key):
            out.append(Difference(key, str(a.header.get(key)), str(b.header.get(key))))
    if a.error:  # both unparsable: the header is all there is to compare
        return out
    if "question" not in opts.ignore and a.question != b.question:
        out.append(Difference("question", "; ".join(a.question) or "-", "; ".join(b.question) or "-"))
    if "opt" not in opts.ignore and a.opt != b.opt:
        out.append(Difference("opt", a.opt or "no OPT", b.opt or "no OPT"))
    for s in SECTIONS:
        if s not in opts.ignore:
            out += _section_diff(s, a.sections.get(s, []), b.sections.get(s, []), opts)
    return out
