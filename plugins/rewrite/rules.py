"""Rewrite rules: parsing (CoreDNS's error texts) and the request side of each rule.

A rule's `rewrite(state)` changes the question/EDNS in `state` and returns the response rules it
needs (a list, possibly empty) when it applied, or None when it did not match.
"""

from __future__ import annotations

import ipaddress
import json
import re
import struct
from collections.abc import Callable

from dnslib import QTYPE

from pycoredns import wire
from pycoredns.request import SUPPORTED_OPTIONS, Request

from .names import EXACT, PREFIX, REGEX, SUBSTRING, SUFFIX, Matcher
from .response import (
    CnameTarget,
    NameRewriter,
    RcodeRewriter,
    RegexRewriter,
    RemapRewriter,
    ResponseRule,
    SuffixRewriter,
    TTLClamp,
    ValueRewriter,
)

STOP, CONTINUE = "stop", "continue"
MAX_REGEX = 10000
CLASSES = {"IN": 1, "CS": 2, "CH": 3, "HS": 4, "NONE": 254, "ANY": 255}  # miekg StringToClass
EDNS_NSID, EDNS_SUBNET = 3, 8


class RuleError(Exception):
    """A rule that does not parse; the text is CoreDNS's (setup prefixes `plugin/rewrite: `)."""


def q(s: str) -> str:
    """Go's %q for the plain strings these messages quote."""
    return json.dumps(s, ensure_ascii=False)


def normalize(name: str) -> str:
    """plugin.Name(x).Normalize(): lowercased and fully qualified."""
    return (name if name.endswith(".") else name + ".").lower()


def compile_regex(pattern: str, what: str) -> re.Pattern[str]:
    if len(pattern) > MAX_REGEX:
        raise RuleError(f"regex pattern too long: {len(pattern)} > {MAX_REGEX}")
    try:
        return re.compile(pattern)
    except re.error:
        raise RuleError(what + pattern) from None


def valid_regex(pattern: str, replacement: str) -> re.Pattern[str]:
    """isValidRegexPattern: compiles, and TO uses no more `{N}` groups than the pattern has."""
    rx = compile_regex(pattern, "invalid regex matching pattern: ")
    used = sum(1 for i in range(101) if "{" + str(i) + "}" in replacement)
    if used > rx.groups:
        raise RuleError(f"the rewrite regex pattern ({replacement}) uses more subexpressions than its "
                        f"corresponding matching regex pattern ({pattern})")
    return rx


class State:
    """The question and EDNS options as the rules change them; the original request stays intact."""

    __slots__ = ("_qname", "edns_changed", "edns_created", "options", "qclass", "qtype", "req")

    def __init__(self, req: Request) -> None:
        self.req = req
        self._qname: str | None = None  # the request's until a rule reads or sets it (cname rules do neither)
        self.qtype = req.qtype
        self.qclass = req.qclass
        self.options: list[tuple[int, bytes]] | None = None
        self.edns_created = False
        self.edns_changed = False

    @property
    def qname(self) -> str:
        """The current qname as the client's case has it (the request's text form, made on first read)."""
        if self._qname is None:
            self._qname = self.req.qname
        return self._qname

    @qname.setter
    def qname(self, name: str) -> None:
        self._qname = name

    def renamed(self) -> bool:
        """A rule set another qname (the request's own is never checked again)."""
        return self._qname is not None and self._qname is not self.req.qname

    @property
    def name(self) -> str:
        """state.Name(): the current qname, lowercased."""
        return self.qname.lower()

    def opts(self) -> list[tuple[int, bytes]]:
        """The EDNS options to edit, creating an OPT (4096, no DO) when the query had none."""
        if self.options is None:
            if self.req.edns is None:
                self.edns_created = True
                self.options = []
            else:
                self.options = self.req.edns.option_list()
        return self.options

    def changed(self) -> bool:
        r = self.req
        return ((self._qname is not None and self._qname != r.qname) or self.qtype != r.qtype
                or self.qclass != r.qclass or self.edns_changed)

    def build(self) -> Request:
        """The rewritten request (question via copy_with, OPT rebuilt when an edns0 rule applied)."""
        r = self.req
        new = r.copy_with(qname=self.qname if self.qname != r.qname else None,
                          qtype=self.qtype, qclass=self.qclass)
        if not self.edns_changed:
            return new
        data = _replace_opt(new, self.opts())
        out = Request(data, r.remote, r.proto, r.local, r.listener)
        out.zone, out.meta = r.zone, r.meta
        return out


def _replace_opt(req: Request, options: list[tuple[int, bytes]]) -> bytes:
    """The request's wire with its OPT record replaced (or added) carrying `options`."""
    data = req.wire
    _id, _flags, _qd, an, ns, ar = wire.header(data)
    off = req.qend
    for _ in range(an + ns):
        _t, _ttl, off = wire.skip_rr(data, off)
    keep = data[req.qend:off]
    extra = b""
    size, ttl = 4096, 0
    count = 0
    for _ in range(ar):
        start = off
        rtype, _ttl, off = wire.skip_rr(data, off)
        if rtype == wire.TYPE_OPT:
            size, ttl = struct.unpack_from(">HI", data, start + 3)
        else:
            extra += data[start:off]
            count += 1
    rdata = b"".join(struct.pack(">HH", c, len(v)) + v for c, v in options)
    opt = b"\x00" + struct.pack(">HHIH", wire.TYPE_OPT, size, ttl, len(rdata)) + rdata
    head = data[:10] + (count + 1).to_bytes(2, "big")
    return head + data[12:req.qend] + keep + extra + opt


class Rule:
    mode = STOP

    def rewrite(self, st: State) -> list[ResponseRule] | None:  # pragma: no cover - interface
        raise NotImplementedError


# -- name ----------------------------------------------------------------------------------------


class NameRule(Rule):
    def __init__(self, mode: str, matcher: Matcher, to: str, auto: bool, static: list[ResponseRule]) -> None:
        self.mode = mode
        self.matcher = matcher
        self.to = to
        self.auto = auto
        self.static = static

    def rewrite(self, st: State) -> list[ResponseRule] | None:
        before = st.name
        new = self.matcher.replace(before, self.to)
        if new is None:
            return None
        st.qname = new
        if not self.auto:
            return self.static
        remap = RemapRewriter(new, before)
        return [NameRewriter(remap), ValueRewriter(remap), *self.static]


def parse_answers(name: str, args: list[str]) -> tuple[bool, list[ResponseRule]]:
    """parseAnswerRules: `answer auto | answer name RE TO | answer value RE TO`, `answer` optional after the first."""
    auto = False
    rules: list[ResponseRule] = []
    names = 0
    last = ""
    i = 0
    if len(args) < 2:
        raise RuleError(f"invalid arguments for {name} rule")
    while i < len(args):
        if last == "" and args[i] != "answer":
            raise RuleError(f"exceeded the number of arguments for a non-answer rule argument for {name} rule")
        if args[i] == "answer":
            i += 1
        if len(args) - i == 0:
            raise RuleError(f"type missing for answer rule for {name} rule")
        last = args[i]
        i += 1
        if last == "auto":
            auto = True
            continue
        if last not in ("name", "value"):
            raise RuleError(f"invalid type {q(last)} for answer rule for {name} rule")
        if len(args) - i < 2:
            raise RuleError(f"{last} answer rule for {name} rule: 2 arguments required")
        try:
            rx = valid_regex(args[i], args[i + 1])
        except RuleError as e:
            raise RuleError(f"{last} answer rule for {name} rule: {e}") from None
        rw = RegexRewriter(rx, normalize(args[i + 1]))
        if last == "name":
            rules.append(NameRewriter(rw))
            names += 1
        else:
            rules.append(ValueRewriter(rw))
        i += 2
    if auto and names:
        raise RuleError("auto name answer rule cannot be combined with explicit name anwer rules")
    return auto, rules


def new_name_rule(mode: str, args: list[str]) -> Rule:
    if len(args) < 2:
        raise RuleError("too few arguments for a name rule")
    if len(args) == 2:
        kind, frm, to = EXACT, normalize(args[0]), normalize(args[1])
    else:
        kind = args[0].lower()
        frm, to = (args[1], args[2]) if kind == REGEX else (normalize(args[1]), normalize(args[2]))
    auto = False
    answers: list[ResponseRule] = []
    if len(args) > 3:
        auto, answers = parse_answers(kind, args[3:])
    if kind == EXACT:
        valid_regex(to, frm)
        return NameRule(mode, Matcher(EXACT, frm), to, True, answers)
    if kind == SUFFIX:
        static = [NameRewriter(SuffixRewriter(to, frm)), ValueRewriter(SuffixRewriter(to, frm))] if auto else []
        return NameRule(mode, Matcher(SUFFIX, frm), to, False, static + answers)
    if kind in (PREFIX, SUBSTRING):
        return NameRule(mode, Matcher(kind, frm), to, auto, answers)
    if kind == REGEX:
        rx = valid_regex(frm, to)
        return NameRule(mode, Matcher(REGEX, frm, rx), normalize(args[2]), auto, answers)
    raise RuleError(f"name rule supports only exact, prefix, suffix, substring, and regex name matching, "
                    f"received: {kind}")


# -- type and class ------------------------------------------------------------------------------


class FieldRule(Rule):
    """type/class: replace the qtype or qclass when it equals FROM."""

    def __init__(self, mode: str, field: str, frm: int, to: int) -> None:
        self.mode = mode
        self.field = field
        self.frm = frm
        self.to = to

    def rewrite(self, st: State) -> list[ResponseRule] | None:
        if getattr(st, self.field) != self.frm:
            return None
        setattr(st, self.field, self.to)
        return []


def new_field_rule(mode: str, field: str, args: list[str]) -> Rule:
    table = QTYPE.reverse if field == "qtype" else CLASSES
    what = "type" if field == "qtype" else "class"
    vals = []
    for a in args:
        v = table.get(a.upper())
        if v is None:
            raise RuleError(f"invalid {what} {q(a.upper())}")
        vals.append(v)
    return FieldRule(mode, field, vals[0], vals[1])


# -- ttl and rcode (response-only rules keyed by the question name) ----------------------------


class MatchRule(Rule):
    def __init__(self, mode: str, matcher: Matcher, response: ResponseRule) -> None:
        self.mode = mode
        self.matcher = matcher
        self.response = response

    def rewrite(self, st: State) -> list[ResponseRule] | None:
        return [self.response] if self.matcher.match(st.name) else None


def _matcher(kind: str, text: str, rule: str) -> Matcher:
    kind = kind.lower()
    if kind == REGEX:
        return Matcher(REGEX, text, compile_regex(text, f"invalid regex pattern in a {rule} rule: "))
    if kind in (EXACT, PREFIX, SUFFIX, SUBSTRING):
        return Matcher(kind, normalize(text))
    raise RuleError(f"{rule} rule supports only exact, prefix, suffix, substring, and regex name matching")


def parse_ttl(v: str) -> tuple[int, int] | None:
    """SECONDS, MIN-MAX, `30-` (at least), `-30` (at most); None when invalid."""
    def num(s: str) -> int | None:
        return int(s) if s.isascii() and s.isdigit() and int(s) <= 0xFFFFFFFF else None

    parts = v.split("-")
    if len(parts) == 1:
        n = num(parts[0])
        return None if n is None else (n, n)
    if len(parts) != 2 or parts == ["", ""]:
        return None
    lo = 0 if parts[0] == "" else num(parts[0])
    hi = 2147483647 if parts[1] == "" else num(parts[1])
    if lo is None or hi is None or lo > hi:
        return None
    return lo, hi


def new_ttl_rule(mode: str, args: list[str]) -> Rule:
    if len(args) < 2:
        raise RuleError(f"too few ({len(args)}) arguments for a ttl rule")
    s = args[1] if len(args) == 2 else args[2] if len(args) == 3 else ""
    ttl = parse_ttl(s)
    if ttl is None:
        raise RuleError(f"invalid TTL '{s}' for a ttl rule")
    if len(args) > 3:
        raise RuleError("many few arguments for a ttl rule")
    m = _matcher(args[0], args[1], "ttl") if len(args) == 3 else Matcher(EXACT, normalize(args[0]))
    return MatchRule(mode, m, TTLClamp(*ttl))


def parse_rcode(v: str) -> int | None:
    if v.isascii() and v.isdigit() and int(v) <= 23:
        return int(v)
    return wire.RCODE_VALUES.get(v.upper())


def new_rcode_rule(mode: str, args: list[str]) -> Rule:
    if len(args) < 3:
        raise RuleError(f"too few ({len(args)}) arguments for a rcode rule")
    old_s, new_s = (args[1], args[2]) if len(args) == 3 else (args[2], args[3]) if len(args) == 4 else ("", "")
    old = parse_rcode(old_s)
    if old is None:
        raise RuleError(f"invalid matching RCODE '{old_s}' for a rcode rule")
    new = parse_rcode(new_s)
    if new is None:
        raise RuleError(f"invalid replacement RCODE '{new_s}' for a rcode rule")
    if len(args) > 4:
        raise RuleError("many few arguments for a rcode rule")
    m = _matcher(args[0], args[1], "rcode") if len(args) == 4 else Matcher(EXACT, normalize(args[0]))
    return MatchRule(mode, m, RcodeRewriter(old, new))


# -- cname ---------------------------------------------------------------------------------------


class CnameRule(Rule):
    """Always applies (as CoreDNS's): the response rule rewrites matching CNAME targets and re-resolves."""

    def __init__(self, mode: str, response: CnameTarget) -> None:
        self.mode = mode
        self.response = response

    def rewrite(self, st: State) -> list[ResponseRule] | None:
        return [self.response]


def new_cname_rule(mode: str, args: list[str]) -> Rule:
    if len(args) == 3:
        kind = args[0].lower()
        if kind not in (EXACT, PREFIX, SUFFIX, SUBSTRING, REGEX):
            raise RuleError(f"unknown cname rewrite type: {kind}")
        frm, to = args[1].lower(), args[2].lower()
    elif len(args) == 2:
        kind, frm, to = EXACT, args[0].lower(), args[1].lower()
    else:
        raise RuleError(f"too few ({len(args)}) arguments for a cname rule")
    rx = compile_regex(frm, "invalid regex matching pattern: ") if kind == REGEX else None
    return CnameRule(mode, CnameTarget(Matcher(kind, frm, rx), to))


# -- edns0 ---------------------------------------------------------------------------------------

APPEND, REPLACE, SET, UNSET = "append", "replace", "set", "unset"
VARIABLES = ("{qname}", "{qtype}", "{client_ip}", "{client_port}", "{protocol}", "{server_ip}", "{server_port}")
_LABEL = re.compile(r"^\{[^/{}]+/[^{}]+\}$")


class EdnsRule(Rule):
    """edns0 local|nsid|subnet: set/append/replace/unset one option (matched by code)."""

    def __init__(self, mode: str, action: str, code: int, data: Callable[[State, bytes | None], bytes | None]) -> None:
        self.mode = mode
        self.action = action
        self.code = code
        self.data = data  # (state, existing option data or None) -> new data, None to skip

    def rewrite(self, st: State) -> list[ResponseRule] | None:
        opts = st.opts()
        for i, (code, old) in enumerate(opts):
            if code != self.code:
                continue
            if self.action == UNSET:
                del opts[i]
            elif self.action in (REPLACE, SET):
                val = self.data(st, old)
                if val is None:
                    return None
                opts[i] = (code, val)
            else:
                return None
            st.edns_changed = True
            return []
        if self.action in (APPEND, SET):
            val = self.data(st, None)
            if val is None:
                return None
            opts.append((self.code, val))
            st.edns_changed = True
            return []
        return None


def _variable(name: str) -> Callable[[State, bytes | None], bytes | None]:
    def ip_bytes(ip: str) -> bytes:
        return ipaddress.ip_address(ip.split("%")[0]).packed

    def value(st: State, _old: bytes | None) -> bytes | None:
        r = st.req
        try:
            if name == "{qname}":
                return st.qname.encode()
            if name == "{qtype}":
                return st.qtype.to_bytes(2, "big")
            if name == "{client_ip}":
                return ip_bytes(r.remote[0])
            if name == "{server_ip}":
                return ip_bytes(r.local[0] or "0.0.0.0")
            if name == "{client_port}":
                return r.remote[1].to_bytes(2, "big")
            if name == "{server_port}":
                return r.local[1].to_bytes(2, "big")
            if name == "{protocol}":
                return r.proto.encode()
        except ValueError:
            return None
        meta = (r.meta or {}).get(name[1:-1])
        if callable(meta):
            meta = meta()
        return str(meta).encode() if meta else None

    return value


def _parse_code(s: str) -> int:
    try:
        c = int(s, 0)
    except ValueError:
        raise RuleError(f'strconv.ParseUint: parsing {q(s)}: invalid syntax') from None
    if not 0 <= c <= 0xFFFF:
        raise RuleError(f'strconv.ParseUint: parsing {q(s)}: value out of range')
    return c


def _subnet(v4: int, v6: int) -> Callable[[State, bytes | None], bytes | None]:
    def value(st: State, old: bytes | None) -> bytes | None:
        ip = st.req.remote[0].split("%")[0]
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        fam, limit = (1, v4) if addr.version == 4 else (2, v6)
        mask = 128 if old is None or len(old) < 3 else old[2]
        mask = min(mask, limit)
        net = ipaddress.ip_network(f"{addr}/{mask}", strict=False)
        raw = net.network_address.packed[: (mask + 7) // 8]
        return struct.pack(">HBB", fam, mask, 0) + raw

    return value


def new_edns0_rule(mode: str, args: list[str]) -> Rule:
    if len(args) < 2:
        raise RuleError("too few arguments for an EDNS0 rule")
    if len(args) > 2 and args[-1].lower() == "revert":
        args = args[:-1]  # the reply always goes out against the client's own request here
    kind, action = args[0].lower(), args[1].lower()
    if action not in (APPEND, REPLACE, SET, UNSET):
        raise RuleError(f"invalid action: {q(action)}")
    if kind == "local":
        if action == UNSET:
            if len(args) != 3:
                raise RuleError("EDNS0 local unset rules require exactly two args")
            return EdnsRule(mode, action, _parse_code(args[2]), lambda st, old: None)
        if len(args) != 4:
            raise RuleError("EDNS0 local rules require exactly three args")
        code = _parse_code(args[2])
        data = args[3]
        if data.startswith("{") and data.endswith("}"):
            if data not in VARIABLES and not _LABEL.match(data):
                raise RuleError(f"unsupported variable name {q(data)}")
            fn = _variable(data)
        else:
            raw = data.encode()
            if data.startswith("0x"):
                try:
                    raw = bytes.fromhex(data[2:])
                except ValueError:
                    raise RuleError("encoding/hex: invalid byte in " + q(data[2:])) from None
            fn = (lambda r: lambda st, old: r)(raw)
        SUPPORTED_OPTIONS.add(code)  # CoreDNS's edns.SetSupportedOption: the server mirrors it
        return EdnsRule(mode, action, code, fn)
    if kind == "nsid":
        if len(args) != 2:
            raise RuleError("EDNS0 NSID rules do not accept args")
        return EdnsRule(mode, action, EDNS_NSID, lambda st, old: b"")
    if kind == "subnet":
        if action == UNSET:
            if len(args) != 2:
                raise RuleError("EDNS0 subnet unset rules do not accept args")
            return EdnsRule(mode, action, EDNS_SUBNET, lambda st, old: None)
        if len(args) != 4:
            raise RuleError("EDNS0 subnet rules require exactly three args")
        v4, v6 = _parse_code(args[2]), _parse_code(args[3])
        if v4 > 32:
            raise RuleError(f"invalid IPv4 bit mask length {v4}")
        if v6 > 128:
            raise RuleError(f"invalid IPv6 bit mask length {v6}")
        return EdnsRule(mode, action, EDNS_SUBNET, _subnet(v4, v6))
    raise RuleError(f"invalid rule type {q(kind)}")


# -- the rule line -----------------------------------------------------------------------------


def new_rule(args: list[str]) -> Rule:
    """newRule: `[continue|stop] FIELD ARGS...`."""
    if not args:
        raise RuleError("no rule type specified for rewrite")
    arg0 = args[0].lower()
    mode = STOP
    if arg0 in (STOP, CONTINUE):
        if len(args) < 2:
            raise RuleError(f"{arg0} rule must begin with a rule type")
        mode = arg0
        kind, expect, rest = args[1].lower(), len(args) - 1, args[2:]
    else:
        kind, expect, rest = arg0, len(args), args[1:]
    if kind == "answer":
        raise RuleError("response rewrites must begin with a name rule")
    if kind in ("class", "type") and expect != 3:
        raise RuleError(f"{kind} rules must have exactly two arguments")
    make = RULE_KINDS.get(kind)
    if make is not None:
        return make(mode, rest)
    raise RuleError(f"invalid rule type {q(args[0])}")


RULE_KINDS: dict[str, Callable[[str, list[str]], Rule]] = {
    "name": new_name_rule,
    "class": lambda mode, rest: new_field_rule(mode, "qclass", rest),
    "type": lambda mode, rest: new_field_rule(mode, "qtype", rest),
    "edns0": new_edns0_rule,
    "ttl": new_ttl_rule,
    "cname": new_cname_rule,
    "rcode": new_rcode_rule,
}
"""newRule's rule types: each parses its arguments (after the optional mode and the type) and names its errors."""
