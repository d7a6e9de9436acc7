"""The response side of rewrite: per-record rules, and the reverter that puts the question back.

Replies are handled with dnslib here: restoring a question of another length moves every
compression pointer after it, so a byte splice is not safe.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from dnslib import RR, DNSLabel, DNSQuestion, DNSRecord

from pycoredns import wire
from pycoredns.request import Request

if TYPE_CHECKING:
    from .rules import Matcher

T_CNAME, T_NS, T_SOA, T_PTR, T_MX, T_SRV, T_NAPTR, T_DNAME = 5, 2, 6, 12, 15, 33, 35, 39
_VALUE_ATTR = {T_CNAME: "label", T_NS: "label", T_PTR: "label", T_MX: "label", T_SRV: "target",
               T_SOA: "mname", T_NAPTR: "replacement"}


class ResponseRule:
    """One response rewrite; `rr` runs for every record, `message` once per reply."""

    def rr(self, rr: RR) -> None:
        return None

    def message(self, rec: DNSRecord) -> None:
        return None


# -- string rewriters (CoreDNS's stringRewriter) ------------------------------------------------


class RegexRewriter:
    def __init__(self, pattern: re.Pattern[str], replacement: str) -> None:
        self.pattern = pattern
        self.replacement = replacement

    def rewrite(self, src: str) -> str:
        from .rules import substitute

        m = self.pattern.search(src)
        return substitute(self.replacement, m) if m else src


class RemapRewriter:
    """Maps a name, and names below it, back to the original (`answer auto`, exact rules)."""

    def __init__(self, orig: str, replacement: str) -> None:
        self.orig = orig
        self.replacement = replacement

    def rewrite(self, src: str) -> str:
        if src == self.orig:
            return self.replacement
        if src.endswith("." + self.orig):
            return src[: len(src) - len(self.orig)] + self.replacement
        return src


class SuffixRewriter:
    def __init__(self, suffix: str, replacement: str) -> None:
        self.suffix = suffix
        self.replacement = replacement

    def rewrite(self, src: str) -> str:
        if src.endswith(self.suffix):
            return src[: len(src) - len(self.suffix)] + self.replacement
        return src


Rewriter = RegexRewriter | RemapRewriter | SuffixRewriter


class NameRewriter(ResponseRule):
    """Owner names."""

    def __init__(self, rw: Rewriter) -> None:
        self.rw = rw

    def rr(self, rr: RR) -> None:
        old = str(rr.rname)
        new = self.rw.rewrite(old)
        if new != old:
            rr.rname = DNSLabel(new)


def get_value(rr: RR) -> str:
    """The name a record points at (CNAME, DNAME, SOA mname, SRV, MX, NAPTR, NS, PTR), or ""."""
    attr = _VALUE_ATTR.get(rr.rtype)
    if attr is not None:
        return str(getattr(rr.rdata, attr, ""))
    if rr.rtype == T_DNAME:
        try:
            labels, _ = wire.read_name(bytes(rr.rdata.data), 0)
        except (wire.WireError, AttributeError):
            return ""
        return wire.labels_to_text(labels)
    return ""


def set_value(rr: RR, value: str) -> None:
    attr = _VALUE_ATTR.get(rr.rtype)
    if attr is not None:
        setattr(rr.rdata, attr, DNSLabel(value))
    elif rr.rtype == T_DNAME:
        rr.rdata.data = wire.text_to_wire(value)


class ValueRewriter(ResponseRule):
    """Names inside the data of CNAME, DNAME, SOA, SRV, MX, NAPTR, NS and PTR records."""

    def __init__(self, rw: Rewriter) -> None:
        self.rw = rw

    def rr(self, rr: RR) -> None:
        value = get_value(rr)
        if value:
            new = self.rw.rewrite(value)
            if new != value:
                set_value(rr, new)


class TTLClamp(ResponseRule):
    def __init__(self, lo: int, hi: int) -> None:
        self.lo = lo
        self.hi = hi

    def rr(self, rr: RR) -> None:
        if rr.ttl < self.lo:
            rr.ttl = self.lo
        elif rr.ttl > self.hi:
            rr.ttl = self.hi


class RcodeRewriter(ResponseRule):
    def __init__(self, old: int, new: int) -> None:
        self.old = old
        self.new = new

    def message(self, rec: DNSRecord) -> None:
        if rec.header.rcode == self.old:
            rec.header.rcode = self.new & 0xF


class CnameTarget(ResponseRule):
    """`cname`: rewrite a CNAME target and replace what followed it by a lookup of the new target."""

    def __init__(self, matcher: Matcher, to: str) -> None:
        self.matcher = matcher
        self.to = to

    def target_for(self, target: str) -> str | None:
        m = self.matcher
        if m.kind == "exact":
            return self.to if target == m.text else None
        return m.replace(target, self.to)

    async def apply(self, rec: DNSRecord, req: Request) -> None:
        from .rules import valid_name

        for rr in [*rec.auth, *rec.rr, *rec.ar]:
            if rr.rtype != T_CNAME:
                continue
            to = self.target_for(str(rr.rdata.label))
            if to is None or req.listener is None or not valid_name(to):
                continue
            try:
                up = await req.listener.resolve(req.copy_with(qname=to))
                answers = wire.to_record(up).rr if up is not None else []
            except Exception:  # a broken self-lookup leaves only the rewritten CNAMEs
                answers = []
            cnames = [a for a in rec.rr if a.rtype == T_CNAME]
            for a in cnames:
                a.rdata.label = DNSLabel(to)
            rec.rr = cnames + [a for a in answers if str(a.rname) == to]


def revert(reply: wire.Reply, req: Request, rules: list[ResponseRule], drop_opt: bool) -> DNSRecord:
    """Restore the original question and apply the response rules (last rule first, like CoreDNS)."""
    rec = wire.to_record(reply)
    q = DNSQuestion(req.qlabel, req.qtype, req.qclass)
    if rec.questions:
        rec.questions[0] = q
    else:
        rec.questions = [q]
    if drop_opt:
        rec.ar = [rr for rr in rec.ar if rr.rtype != wire.TYPE_OPT]
    if rules:
        ordered = rules[::-1]
        for rr in [*rec.auth, *rec.rr, *rec.ar]:
            if rr.rtype == wire.TYPE_OPT:
                continue
            for rule in ordered:
                rule.rr(rr)
        for rule in ordered:
            rule.message(rec)
    return rec

