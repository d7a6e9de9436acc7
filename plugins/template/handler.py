"""template's handler: answers built from Go-template RR strings for names that match regexes.

Templates compile at setup (setup.py), so unsupported syntax is a setup error, never a failure at
query time; each query renders the matching template's sections and parses them as RRs.
"""

from __future__ import annotations

import functools
import re
import struct
from typing import Any

from dnslib import EDNS0, RR, DNSRecord, EDNSOption

from pycoredns import wire
from pycoredns.layout import layout_of, uncompressed
from pycoredns.plugin import NEXT, Handler, PluginError, await_pending, self_lookup_all
from pycoredns.request import Request, ResponseWriter
from pycoredns.util import Fallthrough, zone_match

from .gotemplate import Lazy, Struct, Template, TemplateExecError
from .metrics import matches_total, rr_failures_total, template_failures_total
from .rr import parse_rr, wire_rr

ANY = wire.TYPE_ANY
TYPE_A, TYPE_AAAA, TYPE_CNAME = wire.TYPE_A, wire.TYPE_AAAA, wire.TYPE_CNAME
EDE = 15


class Section:
    __slots__ = ("name", "templates")

    def __init__(self, name: str) -> None:
        self.name = name
        self.templates: list[Template] = []


class Tmpl:
    """One `template CLASS TYPE [ZONE...] { ... }`."""

    def __init__(self, qclass: int, qtype: int, zones: list[str]) -> None:
        self.qclass = qclass
        self.qtype = qtype
        self.zones = zones
        self.regex: list[re.Pattern[str]] = []
        self.answer = Section("answer")
        self.additional = Section("additional")
        self.authority = Section("authority")
        self.rcode = wire.NOERROR
        self.ederror: tuple[int, str] | None = None
        self.fall = Fallthrough()
        self._direct: list[list[list[str | tuple[str, int]]]] | bool | None = False  # False: not looked at yet

    def direct(self) -> list[list[list[str | tuple[str, int]]]] | None:
        """Every section's templates as `Template.direct` plans (answer, additional, authority), or None
        when one needs the template data. Worked out on first use: setup adds the templates later."""
        if self._direct is False:
            plans = [[tpl.direct() for tpl in sec.templates] for sec in (self.answer, self.additional, self.authority)]
            ok = all(p is not None for sec in plans for p in sec)
            self._direct = plans if ok else None  # type: ignore[assignment]
        return self._direct  # type: ignore[return-value]

    def match(self, req: Request) -> tuple[Matched | None, bool]:
        """(match, fallthrough): a match when this template answers the query."""
        name = req.name
        zone = zone_match(self.zones, name)
        if zone is None:
            return None, True
        if self.qclass != ANY and req.qclass != ANY and req.qclass != self.qclass:
            return None, True
        if self.qtype != ANY and req.qtype != ANY and req.qtype != self.qtype:
            return None, True
        for rx in self.regex:
            m = rx.search(name)
            if m is None:
                continue
            qc = req.qclass if req.qclass != ANY else self.qclass
            qt = req.qtype if req.qtype != ANY else self.qtype
            return Matched(req, zone, name, m, wire.class_name(qc), wire.type_name(qt)), False
        return None, self.fall.through(name)

    def render_direct(self, hit: Matched) -> tuple[tuple[str, ...], ...] | None:
        """The rendered texts of every section without the template data (plain templates only), or
        None: the template needs the data, or an index is out of range (the executor reports that)."""
        plans = self.direct()
        if plans is None:
            return None
        m = hit.m
        top = m.re.groups
        values = {"Name": hit.name, "Zone": hit.zone, "Class": hit.qclass, "Type": hit.qtype}
        texts = []
        for sec in plans:
            sec_texts = []
            for plan in sec:
                parts = []
                for p in plan:
                    if isinstance(p, str):
                        parts.append(p)
                    elif p[0] == "Match":
                        if p[1] > top:
                            return None
                        parts.append(m.group(p[1]) or "")
                    else:
                        parts.append(values[p[0]])
                sec_texts.append("".join(parts))
            texts.append(tuple(sec_texts))
        return tuple(texts)


class Matched:
    """A template's regex match: what plain templates read, and the full template data on demand."""

    __slots__ = ("_data", "m", "name", "qclass", "qtype", "req", "zone")

    def __init__(self, req: Request, zone: str, name: str, m: re.Match[str], qclass: str, qtype: str) -> None:
        self.req, self.zone, self.name, self.m, self.qclass, self.qtype = req, zone, name, m, qclass, qtype
        self._data: Struct | None = None

    def data(self) -> Struct:
        """The `*template.templateData` the Go templates see (built once)."""
        if self._data is not None:
            return self._data
        req, m = self.req, self.m
        match = [m.group(0), *(g or "" for g in m.groups())]
        group = {str(i): v for i, v in enumerate(match)}
        group.update({k: v or "" for k, v in m.groupdict().items()})
        data = self._data = Struct(
            "*template.templateData", Zone=self.zone, Name=self.name, Regex=m.re.pattern, Match=match, Group=group,
            Class=self.qclass, Type=self.qtype,
            Question=Lazy(lambda: Struct("dns.Question", Name=req.qname, Qtype=req.qtype, Qclass=req.qclass)),
            Remote=req.remote[0],
            Meta=functools.partial(_meta, req.meta or {}),
        )
        data.fields["Message"] = Lazy(functools.partial(_message, data, req))
        return data


def _message(data: Struct, req: Request) -> Struct:
    """`.Message` of a template: built only when a template reads it."""
    return Struct("*dns.Msg", Id=req.id, Question=[data.field("Question")], RecursionDesired=req.rd,
                  CheckingDisabled=req.cd, Opcode=(req.flags >> 11) & 0xF)


def _meta(meta: dict[str, Any], key: Any) -> str:
    v = meta.get(str(key))
    if callable(v):
        v = v()
    return "" if v is None else str(v)


class Reply:
    """One rendering: the packed reply body when no lookup is needed; with lookups, each record packed
    on its own, without compression (answer, authority, additional), to splice the looked-up answers in."""

    __slots__ = ("body", "counts", "lookups", "records", "targets", "types")

    def __init__(self, lookups: bool, counts: tuple[int, int, int]) -> None:
        self.lookups = lookups  # A/AAAA query with CNAME answers: targets are resolved at write time
        self.counts = counts
        self.body = b""
        self.records: list[bytes] = []
        self.types: list[int] = []  # of the answers
        self.targets: list[bytes | None] = []  # the CNAME answers' targets as wire, in order (with lookups;
        # None: a target the wire cannot carry)


class Outcome:
    """A template's reply before it is written: metric bumps wait until it is committed."""

    __slots__ = ("bumps", "error", "rcode", "reply", "template")

    def __init__(self) -> None:
        self.rcode: int | object = NEXT
        self.reply: Reply | None = None
        self.template: Tmpl | None = None
        self.bumps: list[tuple[Any, tuple[str, ...]]] = []
        self.error: PluginError | None = None

    def commit(self) -> None:
        for counter, labels in self.bumps:
            counter.inc(*labels)

    @property
    def lookups(self) -> bool:
        return self.reply is not None and self.reply.lookups


CACHE_SIZE = 4096  # rendered replies kept per handler (cleared when full)


class TemplateHandler(Handler):
    name = "template"

    def __init__(self, zones: list[str], templates: list[Tmpl], server: str) -> None:
        self.zones = zones
        self.templates = templates
        self.server = server
        # (template, exact question, rendered texts) -> Reply: a repeated query skips RR parsing and
        # packing; keyed by the question bytes so compression pointers into it stay right.
        self.cache: dict[tuple, Reply] = {}

    def _evaluate(self, req: Request) -> Outcome:
        out = Outcome()
        if zone_match(self.zones, req.name) is None:
            return out
        server = req.listener.label if req.listener is not None else self.server
        for t in self.templates:
            hit, fall = t.match(req)
            if hit is None:
                if not fall:
                    out.rcode = wire.SERVFAIL
                    return out
                continue
            labels = (server, hit.zone, "", hit.qclass, hit.qtype)
            out.bumps.append((matches_total, labels))
            if t.rcode == wire.SERVFAIL:
                out.rcode = wire.SERVFAIL
                return out
            try:
                out.reply = self._reply(req, t, hit, labels, out)
                out.rcode, out.template = t.rcode, t
            except (TemplateExecError, ValueError) as e:
                out.rcode, out.error = wire.SERVFAIL, PluginError(wire.SERVFAIL, str(e))
            return out
        return out

    def _reply(self, req: Request, t: Tmpl, hit: Matched, labels: tuple[str, ...], out: Outcome) -> Reply:
        texts = t.render_direct(hit)
        if texts is None:
            data = hit.data()
            texts = tuple(tuple(self._render(tpl, sec.name, data, labels, out) for tpl in sec.templates)
                          for sec in (t.answer, t.additional, t.authority))
        key = (id(t), req.question, texts)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        reply = self._wire_reply(req, t, texts) or self._dnslib_reply(req, t, texts, labels, out)
        if len(self.cache) >= CACHE_SIZE:
            self.cache.clear()
        self.cache[key] = reply
        return reply

    @staticmethod
    def _wire_reply(req: Request, t: Tmpl, texts: tuple[tuple[str, ...], ...]) -> Reply | None:
        """The reply of an A/AAAA query answered with CNAMEs (to be followed by lookups), built on the
        wire when every record is one `wire_rr` builds; else None (dnslib builds it)."""
        if req.qtype not in (TYPE_A, TYPE_AAAA) or t.ederror is not None:
            return None
        built = [[wire_rr(text) for text in sec] for sec in texts]  # answer, additional, authority
        answers, additional, authority = built
        if not any(r is not None and r.rtype == TYPE_CNAME for r in answers):
            return None  # no lookups: dnslib's compressed reply
        records = [*answers, *authority, *additional]
        if None in records:
            return None
        reply = Reply(True, (len(answers), len(authority), len(additional)))
        reply.records = [r.packed for r in records]  # type: ignore[union-attr]
        reply.types = [r.rtype for r in answers]  # type: ignore[union-attr]
        reply.targets = [r.rdata for r in answers if r.rtype == TYPE_CNAME]  # type: ignore[union-attr]
        return reply

    def _dnslib_reply(self, req: Request, t: Tmpl, texts: tuple[tuple[str, ...], ...], labels: tuple[str, ...],
                      out: Outcome) -> Reply:
        """The reply parsed and packed with dnslib (compressed when no lookups follow)."""
        sections = (t.answer, t.additional, t.authority)
        rrs: list[list[RR]] = []
        for sec, sec_texts in zip(sections, texts, strict=True):
            parsed = []
            for tpl, text in zip(sec.templates, sec_texts, strict=True):
                try:
                    parsed.append(parse_rr(text))
                except ValueError:
                    out.bumps.append((rr_failures_total, (*labels, sec.name, tpl.source)))
                    raise
            rrs.append(parsed)
        lookups = req.qtype in (TYPE_A, TYPE_AAAA) and any(rr.rtype == TYPE_CNAME for rr in rrs[0])
        rec = self._record(req, t, *rrs)
        packed = bytes(rec.pack())
        reply = Reply(lookups, (len(rec.rr), len(rec.auth), len(rec.ar)))
        reply.types = [rr.rtype for rr in rrs[0]]
        if lookups:
            reply.records = uncompressed(packed)
            reply.targets = [_wire_or_none(str(rr.rdata.label)) for rr in rrs[0] if rr.rtype == TYPE_CNAME]
        else:
            reply.body = packed[len(req.question) + 12 :]
        return reply

    def _render(self, tpl: Template, section: str, data: Struct, labels: tuple[str, ...], out: Outcome) -> str:
        try:
            return tpl.execute(data)
        except TemplateExecError:
            out.bumps.append((template_failures_total, (*labels, section, tpl.source)))
            raise

    @staticmethod
    def _record(req: Request, t: Tmpl, answers: list[RR], additional: list[RR], authority: list[RR]) -> DNSRecord:
        """The reply with dnslib (without what CNAME targets' lookups add)."""
        rec = req.reply_record()
        rec.header.aa = 1
        rec.header.rcode = t.rcode
        rec.rr.extend(answers)
        rec.ar.extend(additional)
        rec.auth.extend(authority)
        if t.ederror is not None:
            code, reason = t.ederror
            ede = EDNSOption(EDE, struct.pack(">H", code) + reason.encode())
            rec.add_ar(EDNS0(udp_len=4096, flags="do", opts=[ede]))
        return rec

    def _write(self, req: Request, out: Outcome, w: ResponseWriter, looked: list[list[bytes]] | None = None) -> int:
        """Write the rendered reply; with lookups, each CNAME answer is followed by its target's answers
        (`looked`, uncompressed records, in the order of the CNAMEs), spliced in on the wire."""
        out.commit()
        if out.error is not None:
            raise out.error
        assert isinstance(out.rcode, int)
        reply = out.reply
        if reply is None or out.template is None:
            return out.rcode
        an, ns, ar = reply.counts
        body = reply.body
        if reply.lookups:
            extra = iter(looked or [])
            parts = []
            for rtype, packed in zip(reply.types, reply.records, strict=False):
                parts.append(packed)
                if rtype == TYPE_CNAME:
                    more = next(extra, [])
                    parts += more
                    an += len(more)
            parts += reply.records[len(reply.types):]
            body = b"".join(parts)
        w.write(req.reply_header(out.rcode, an, ns, ar, aa=True) + req.question + body)
        return out.rcode

    def serve_fast(self, req: Request, w: ResponseWriter) -> int | None:
        if zone_match(self.zones, req.name) is None:  # not ours (a self-lookup of a CNAME target, often)
            return self.next_continue(req, w)
        out = self._evaluate(req)
        if out.rcode is NEXT and out.error is None:
            return self.next_continue(req, w)
        if out.lookups:
            return self._looked_up(req, w, out)
        return self._write(req, out, w)

    async def serve_dns(self, req: Request, w: ResponseWriter) -> int:
        out = self._evaluate(req)
        if out.rcode is NEXT and out.error is None:
            return await self.next_or_failure(req, w)
        if out.lookups:
            return await await_pending(functools.partial(self._looked_up, out=out), req, w)
        return self._write(req, out, w)

    def _looked_up(self, req: Request, w: ResponseWriter, out: Outcome) -> int:
        """A/AAAA answered with CNAMEs: each target is resolved through this server (the full chain
        again) by continuation, and its answers follow its CNAME. The rcode, or PENDING."""
        assert out.reply is not None
        subs: list[Request | None] = []
        for target in out.reply.targets:
            try:
                subs.append(None if target is None else req.copy_with(wire_qname=target))
            except (wire.WireError, ValueError):
                subs.append(None)  # a target the wire cannot carry: nothing to append

        def then(replies: list[wire.Reply | None]) -> int:
            got = iter(replies)
            return self._write(req, out, w, [_answers(next(got)) if s is not None else [] for s in subs])

        return self_lookup_all([s for s in subs if s is not None], w, then)


def _wire_or_none(name: str) -> bytes | None:
    """A CNAME target's wire form; None when the wire cannot carry it (the self-lookup then has no answers)."""
    try:
        return wire.text_to_wire(name)
    except (wire.WireError, ValueError):
        return None


def _answers(reply: wire.Reply | None) -> list[bytes]:
    """The answer records of a self-lookup's reply, uncompressed (none from garbage below)."""
    if reply is None:
        return []
    try:
        data = wire.to_bytes(reply)
        lay = layout_of(data)
        return uncompressed(data, lay)[: lay.counts[0]]
    except Exception:  # garbage from below: no answers to append
        return []
