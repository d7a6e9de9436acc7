"""template: answers built from Go-template RR strings for names that match regexes (CoreDNS
`template`, reference §3.16).

CoreDNS runs Go's text/template; here a small evaluator covers what real Corefiles use (see
template.md for the exact subset). Templates compile at setup, so unsupported syntax is a setup
error, never a failure at query time.
"""

from __future__ import annotations

import functools
import re
import struct
from collections.abc import Callable
from typing import Any

from dnslib import EDNS0, QTYPE, RD, RDMAP, RR, DNSLabel, DNSRecord, EDNSOption

from pycoredns import metrics, wire
from pycoredns.corefile.errors import go_quote, go_sprintf
from pycoredns.plugin import NEXT, Controller, Handler, PluginError
from pycoredns.request import Request, ResponseWriter
from pycoredns.util import Fallthrough, zone_match

MAX_REGEX = 10000
ANY = wire.TYPE_ANY
TYPE_A, TYPE_AAAA, TYPE_CNAME = wire.TYPE_A, wire.TYPE_AAAA, wire.TYPE_CNAME
EDE = 15
CLASSES = {"IN": 1, "CS": 2, "CH": 3, "HS": 4, "NONE": 254, "ANY": 255}  # miekg StringToClass
DEFAULT_TTL = 3600  # miekg's NewRR default when a template leaves the TTL out

matches_total = metrics.REGISTRY.counter(
    "coredns_template_matches_total", "Counter of template regex matches.",
    ("server", "zone", "view", "class", "type"))
template_failures_total = metrics.REGISTRY.counter(
    "coredns_template_template_failures_total", "Counter of go template failures.",
    ("server", "zone", "view", "class", "type", "section", "template"))
rr_failures_total = metrics.REGISTRY.counter(
    "coredns_template_rr_failures_total", "Counter of mis-templated RRs.",
    ("server", "zone", "view", "class", "type", "section", "template"))


# == a Go text/template subset ==================================================================


class TemplateSyntaxError(Exception):
    """The template does not compile (a setup error)."""


class TemplateExecError(Exception):
    """The template failed at query time (counted in coredns_template_template_failures_total)."""


class Lazy:
    """A struct field computed on first use (most templates never look at .Message)."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn


class Struct:
    """A Go struct value: unknown fields are an execution error (maps print `<no value>` instead)."""

    def __init__(self, type_name: str, **fields: Any) -> None:
        self._type = type_name
        self.fields = fields

    def field(self, name: str) -> Any:
        if name not in self.fields:
            raise TemplateExecError(f"can't evaluate field {name} in type {self._type}")
        value = self.fields[name]
        if type(value) is Lazy:
            value = self.fields[name] = value.fn()
        return value

    def __str__(self) -> str:
        return "{" + " ".join(go_print(self.field(k)) for k, v in self.fields.items() if not callable(v)) + "}"


def go_print(v: Any) -> str:
    """fmt.Sprint of a value the way text/template prints it."""
    if v is None:
        return "<no value>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + " ".join(go_print(x) for x in v) + "]"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{go_print(v[k])}" for k in sorted(v)) + "]"
    return str(v)


def _index(item: Any, *keys: Any) -> Any:
    for k in keys:
        if isinstance(item, dict):
            item = item.get(k)
        elif isinstance(item, list):
            if not isinstance(k, int) or isinstance(k, bool):
                raise TemplateExecError(f"cannot index slice/array with type {type(k).__name__}")
            if not 0 <= k < len(item):
                raise TemplateExecError(f"index out of range: {k}")
            item = item[k]
        else:
            raise TemplateExecError(f"can't index item of type {type(item).__name__}")
    return item


def _parse_int(s: Any, base: Any = 10, bits: Any = 64) -> int:
    """strconv.ParseUint(s, base, bitSize)."""
    text = str(s)
    err = None
    try:
        b = int(base)
        v = int(text, b if b else 0)
        if v < 0 or text.strip() != text or text.startswith(("+", "-")) or ("_" in text and b):
            err = "invalid syntax"
        elif v >= 1 << int(bits or 64):
            err = "value out of range"
    except (ValueError, TypeError):
        err = "invalid syntax"
    if err:
        raise TemplateExecError(f"strconv.ParseUint: parsing {go_quote(text)}: {err}")
    return v


def _printf(fmt: Any, *args: Any) -> str:
    return go_sprintf(str(fmt), *[go_print(a) if isinstance(a, (list, dict)) or a is None else a for a in args])


FUNCS: dict[str, Callable[..., Any]] = {
    "index": _index,
    "parseInt": _parse_int,
    "printf": _printf,
    "print": lambda *a: "".join(go_print(x) for x in a),
    "len": lambda x: len(x),
}
UNSUPPORTED = {"if", "else", "end", "range", "with", "define", "template", "block", "break", "continue"}

_TOKEN = re.compile(r"""\s*(?:
    (?P<str>"(?:[^"\\]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<num>-?\d+)
  | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)
  | (?P<var>\$[A-Za-z0-9_]*)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>[()|])
  | (?P<bad>\S+)
)""", re.VERBOSE)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a", "b": "\b", "f": "\f",
            "v": "\v"}


def _unquote(s: str) -> str:
    out, i = [], 1
    while i < len(s) - 1:
        c = s[i]
        if c == "\\":
            out.append(_ESCAPES.get(s[i + 1], s[i + 1]))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


# A compiled pipeline is a list of commands; a command a list of operands; an operand is
# ("lit", value) | ("field", [names]) | ("func", name) | ("pipe", pipeline, [names]).
Operand = tuple


class Template:
    """One compiled RR template: text pieces and actions."""

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.parts: list[str | list[list[Operand]]] = []
        self._compile()

    def _err(self, msg: str) -> TemplateSyntaxError:
        return TemplateSyntaxError(f"template: {self.name}:1: {msg}")

    def _compile(self) -> None:
        src = self.source
        pos = 0
        while True:
            start = src.find("{{", pos)
            if start < 0:
                self.parts.append(src[pos:])
                return
            text = src[pos:start]
            end = src.find("}}", start + 2)
            if end < 0:
                raise self._err("unclosed action")
            body = src[start + 2 : end]
            if body.startswith("- ") or body.startswith("-\t") or body == "-":
                text = text.rstrip()
                body = body[1:]
            pos = end + 2
            if body.endswith(" -") or body.endswith("\t-"):
                body = body[:-1]
                while pos < len(src) and src[pos].isspace():
                    pos += 1
            self.parts.append(text)
            if body.strip().startswith("/*"):
                if not body.strip().endswith("*/"):
                    raise self._err("unclosed comment")
                continue
            self.parts.append(self._pipeline(self._tokens(body), top=True))

    def _tokens(self, body: str) -> list[tuple[str, str]]:
        out = []
        for m in _TOKEN.finditer(body):
            kind = m.lastgroup
            if kind is None:
                continue
            val = m.group(kind)
            if kind == "bad":
                if val in (":=", "="):
                    raise self._err(f"unsupported template syntax: variable assignment {go_quote(val)}")
                raise self._err(f"unexpected {go_quote(val)} in command")
            if kind == "var":
                raise self._err(f"unsupported template syntax: variable {val}")
            if kind == "ident" and val in UNSUPPORTED:
                raise self._err(f"unsupported template syntax: {go_quote(val)}")
            out.append((kind, val))
        if not out:
            raise self._err("missing value for command")
        return out

    def _pipeline(self, toks: list[tuple[str, str]], top: bool = False) -> list[list[Operand]]:
        """Parse `cmd | cmd ...`, consuming `toks` in place (stops at an unmatched `)`)."""
        cmds: list[list[Operand]] = []
        cmd: list[Operand] = []
        while toks:
            kind, val = toks[0]
            if kind == "op" and val == ")":
                if top:
                    raise self._err("unexpected right paren")
                break
            toks.pop(0)
            if kind == "op" and val == "|":
                if not cmd:
                    raise self._err("missing command")
                cmds.append(cmd)
                cmd = []
            elif kind == "op" and val == "(":
                inner = self._pipeline(toks)
                if not toks or toks[0] != ("op", ")"):
                    raise self._err("unclosed left paren")
                toks.pop(0)
                fields: list[str] = []
                if toks and toks[0][0] == "field" and toks[0][1] != ".":
                    fields = toks.pop(0)[1].split(".")[1:]
                cmd.append(("pipe", inner, fields))
            elif kind in ("str", "raw"):
                cmd.append(("lit", _unquote(val) if kind == "str" else val[1:-1]))
            elif kind == "num":
                cmd.append(("lit", int(val)))
            elif kind == "field":
                cmd.append(("field", [] if val == "." else val.split(".")[1:]))
            elif val in ("true", "false"):
                cmd.append(("lit", val == "true"))
            elif val == "nil":
                cmd.append(("lit", None))
            elif val in FUNCS:
                cmd.append(("func", val))
            else:
                raise self._err(f"function {go_quote(val)} not defined")
        if not cmd:
            raise self._err("missing value for command")
        cmds.append(cmd)
        return cmds

    # -- execution -----------------------------------------------------------------------------
    def execute(self, data: Struct) -> str:
        out = []
        for p in self.parts:
            if isinstance(p, str):
                out.append(p)
            else:
                try:
                    out.append(go_print(self._run(p, data)))
                except TemplateExecError as e:
                    raise TemplateExecError(f"template: {self.name}: executing {go_quote(self.name)}: {e}") from None
        return "".join(out)

    def _run(self, pipeline: list[list[Operand]], data: Struct) -> Any:
        value: Any = _NOPIPE
        for cmd in pipeline:
            value = self._command(cmd, data, value)
        return value

    def _command(self, cmd: list[Operand], data: Struct, piped: Any) -> Any:
        head = cmd[0]
        if head[0] == "func":
            args = [self._operand(op, data, ()) for op in cmd[1:]]
            if piped is not _NOPIPE:
                args.append(piped)
            try:
                return FUNCS[head[1]](*args)
            except TemplateExecError as e:
                raise TemplateExecError(f"error calling {head[1]}: {e}") from None
            except TypeError:
                raise TemplateExecError(f"wrong number of args for {head[1]}") from None
        args = [self._operand(op, data, ()) for op in cmd[1:]]
        if piped is not _NOPIPE:
            args.append(piped)
        return self._operand(head, data, args)

    def _operand(self, op: Operand, data: Struct, args: Any) -> Any:
        kind = op[0]
        if kind == "lit":
            value, fields = op[1], []
        elif kind == "field":
            value, fields = data, op[1]
        elif kind == "func":
            return self._command([op], data, _NOPIPE)
        else:
            value, fields = self._run(op[1], data), op[2]
        for i, name in enumerate(fields):
            if isinstance(value, Struct):
                value = value.field(name)
            elif isinstance(value, dict):
                value = value.get(name)
            elif value is None:
                raise TemplateExecError(f"nil pointer evaluating {name}")
            else:
                raise TemplateExecError(f"can't evaluate field {name} in type {type(value).__name__}")
            if callable(value):
                value = value(*(args if i == len(fields) - 1 else ()))
                args = ()
        if args:
            raise TemplateExecError(f"can't give argument to non-function {go_print(value)}")
        return value


_NOPIPE = object()


# == the plugin ===================================================================================


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

    def match(self, req: Request) -> tuple[Struct | None, bool]:
        """(template data, fallthrough): data when this template answers the query."""
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
            groups = [g or "" for g in m.groups()]
            match = [m.group(0), *groups]
            group = {str(i): v for i, v in enumerate(match)}
            group.update({k: v or "" for k, v in m.groupdict().items()})
            qc = req.qclass if req.qclass != ANY else self.qclass
            qt = req.qtype if req.qtype != ANY else self.qtype
            data = Struct(
                "*template.templateData", Zone=zone, Name=name, Regex=rx.pattern, Match=match, Group=group,
                Class=wire.class_name(qc), Type=wire.type_name(qt),
                Question=Lazy(lambda: Struct("dns.Question", Name=req.qname, Qtype=req.qtype, Qclass=req.qclass)),
                Remote=req.remote[0],
                Meta=functools.partial(_meta, req.meta or {}),
            )
            data.fields["Message"] = Lazy(functools.partial(_message, data, req))
            return data, False
        return None, self.fall.through(name)


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
    """The parsed records of one rendering, and the packed reply body when no lookup is needed."""

    __slots__ = ("additional", "answers", "authority", "body", "counts", "lookups")

    def __init__(self, answers: list[RR], additional: list[RR], authority: list[RR], lookups: bool) -> None:
        self.answers = answers
        self.additional = additional
        self.authority = authority
        self.lookups = lookups  # A/AAAA query with CNAME answers: targets are resolved at write time
        self.body = b""
        self.counts = (0, 0, 0)


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
            data, fall = t.match(req)
            if data is None:
                if not fall:
                    out.rcode = wire.SERVFAIL
                    return out
                continue
            labels = (server, data.fields["Zone"], "", data.fields["Class"], data.fields["Type"])
            out.bumps.append((matches_total, labels))
            if t.rcode == wire.SERVFAIL:
                out.rcode = wire.SERVFAIL
                return out
            try:
                out.reply = self._reply(req, t, data, labels, out)
                out.rcode, out.template = t.rcode, t
            except (TemplateExecError, ValueError) as e:
                out.rcode, out.error = wire.SERVFAIL, PluginError(wire.SERVFAIL, str(e))
            return out
        return out

    def _reply(self, req: Request, t: Tmpl, data: Struct, labels: tuple[str, ...], out: Outcome) -> Reply:
        sections = (t.answer, t.additional, t.authority)
        texts = tuple(tuple(self._render(tpl, sec.name, data, labels, out) for tpl in sec.templates)
                      for sec in sections)
        key = (id(t), req.question, texts)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
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
        reply = Reply(rrs[0], rrs[1], rrs[2], lookups)
        if not lookups:
            rec = self._record(req, t, reply, None)
            reply.body = bytes(rec.pack())[len(req.question) + 12 :]
            reply.counts = (len(rec.rr), len(rec.auth), len(rec.ar))
        if len(self.cache) >= CACHE_SIZE:
            self.cache.clear()
        self.cache[key] = reply
        return reply

    def _render(self, tpl: Template, section: str, data: Struct, labels: tuple[str, ...], out: Outcome) -> str:
        try:
            return tpl.execute(data)
        except TemplateExecError:
            out.bumps.append((template_failures_total, (*labels, section, tpl.source)))
            raise

    @staticmethod
    def _record(req: Request, t: Tmpl, reply: Reply, looked: list[list[RR]] | None) -> DNSRecord:
        """The reply with dnslib; CNAME answers are followed by their looked-up answers."""
        rec = req.reply_record()
        rec.header.aa = 1
        rec.header.rcode = t.rcode
        extra = iter(looked or [])
        for rr in reply.answers:
            rec.add_answer(rr)
            if reply.lookups and rr.rtype == TYPE_CNAME:
                rec.rr.extend(next(extra, []))
        rec.ar.extend(reply.additional)
        rec.auth.extend(reply.authority)
        if t.ederror is not None:
            code, reason = t.ederror
            ede = EDNSOption(EDE, struct.pack(">H", code) + reason.encode())
            rec.add_ar(EDNS0(udp_len=4096, flags="do", opts=[ede]))
        return rec

    def _write(self, req: Request, out: Outcome, w: ResponseWriter, looked: list[list[RR]] | None = None) -> int:
        out.commit()
        if out.error is not None:
            raise out.error
        assert isinstance(out.rcode, int)
        reply = out.reply
        if reply is None or out.template is None:
            return out.rcode
        if reply.lookups:
            w.write(bytes(self._record(req, out.template, reply, looked).pack()))
        else:
            an, ns, ar = reply.counts
            w.write(req.reply_header(out.rcode, an, ns, ar, aa=True) + req.question + reply.body)
        return out.rcode

    def serve_fast(self, req: Request, w: ResponseWriter) -> int | None:
        out = self._evaluate(req)
        if out.rcode is NEXT and out.error is None:
            return self.next_continue(req, w)
        if out.lookups:
            return None
        return self._write(req, out, w)

    async def serve_dns(self, req: Request, w: ResponseWriter) -> int:
        out = self._evaluate(req)
        if out.rcode is NEXT and out.error is None:
            return await self.next_or_failure(req, w)
        looked: list[list[RR]] = []
        if out.reply is not None and out.reply.lookups:
            for rr in out.reply.answers:
                if rr.rtype == TYPE_CNAME:
                    looked.append(await self._lookup(req, str(rr.rdata.label)))
        return self._write(req, out, w, looked)

    async def _lookup(self, req: Request, target: str) -> list[RR]:
        """Resolve a CNAME target through this server (the full chain again), keep its answers."""
        if req.listener is None:
            return []
        try:
            reply = await req.listener.resolve(req.copy_with(qname=target))
        except (wire.WireError, ValueError):
            return []
        if reply is None:
            return []
        try:
            return list(wire.to_record(reply).rr)
        except Exception:  # garbage from below: no answers to append
            return []


# == setup ========================================================================================

_RCODES = {**wire.RCODE_VALUES, "NOTIMPL": wire.NOTIMP}


def setup(c: Controller) -> None:
    templates: list[Tmpl] = []
    zones: list[str] = []
    for _ in c.occurrences():
        if not c.next_arg():
            raise c.arg_err()
        qclass = CLASSES.get(c.val())
        if qclass is None:
            raise c.errf("invalid query class %s", c.val())
        if not c.next_arg():
            raise c.arg_err()
        qtype = QTYPE.reverse.get(c.val()) if c.val().isupper() else None
        if qtype is None:
            raise c.errf("invalid RR class %s", c.val())
        tz = c.zones_from(c.remaining_args())
        zones.extend(z for z in tz if z not in zones)
        t = Tmpl(qclass, qtype, tz)
        while c.next_block():
            opt = c.val()
            if opt == "match":
                args = c.remaining_args()
                if not args:
                    raise c.arg_err()
                for rx in args:
                    if len(rx) > MAX_REGEX:
                        raise c.errf("regex pattern too long: %d > %d", len(rx), MAX_REGEX)
                    try:
                        t.regex.append(re.compile(rx))
                    except re.error as e:
                        raise c.errf("could not parse regex: %s, %v", rx, f"error parsing regexp: {e}") from None
            elif opt in ("answer", "additional", "authority"):
                args = c.remaining_args()
                if not args:
                    raise c.arg_err()
                sec: Section = getattr(t, opt)
                for text in args:
                    try:
                        sec.templates.append(Template(opt, text))
                    except TemplateSyntaxError as e:
                        nl = "" if opt == "answer" else "\n"
                        raise c.errf("could not compile template: %s, %v" + nl, c.val(), str(e)) from None
            elif opt == "rcode":
                if not c.next_arg():
                    raise c.arg_err()
                rc = _RCODES.get(c.val())
                if rc is None:
                    raise c.errf("unknown rcode %s", c.val())
                t.rcode = rc
            elif opt == "ederror":
                args = c.remaining_args()
                if len(args) not in (1, 2):
                    raise c.arg_err()
                digits = args[0].isascii() and args[0].isdigit()
                if not digits or int(args[0]) > 0xFFFF:
                    err = "value out of range" if digits else "invalid syntax"
                    raise c.errf("error parsing extended DNS error code %s, %v\n", c.val(),
                                 f"strconv.ParseUint: parsing {go_quote(args[0])}: {err}")
                t.ederror = (int(args[0]), args[1] if len(args) == 2 else "")
            elif opt == "fallthrough":
                t.fall.set_zones(c.remaining_args())
            elif opt == "upstream":
                c.remaining_args()  # deprecated: CNAME targets are always resolved through the server
            else:
                raise c.arg_err()
        if not t.regex:
            t.regex.append(re.compile(".*"))
        templates.append(t)
    c.add_handler(TemplateHandler(zones, templates, c.server_label()))

