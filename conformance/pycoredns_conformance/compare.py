"""How a reply is compared with a case's `expect` mapping (pure functions: the unit tests pin them down).

Expected records are RR text lines, `OWNER [TTL] [CLASS] TYPE RDATA...`. A token `*` matches anything,
`*.svc1.ns1.svc.cluster.local.` is a glob, `a|b` matches either, and a TTL may be `lo-hi`. Names
compare case-insensitively unless the case says `case: exact`. Sections compare as a `set`
(order-insensitive, no extras: the default, since `loadbalance` shuffles), `exact` (same order), or
`subset` (the listed records must be there, others may be too).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any

import dns.flags
import dns.message
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype

SECTIONS = ("answer", "authority", "additional")
MODES = ("set", "exact", "subset")
FLAG_NAMES = ("qr", "aa", "tc", "rd", "ra", "ad", "cd")
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\S+')


class CaseError(ValueError):
    """A case that cannot be read (bad YAML shape, bad RR line): reported as an error, not a crash."""


@dataclass(frozen=True)
class Record:
    """One RR as tokens; `ttl` is a pattern (`*`, `30`, `1-5`, `30|28800`) for expected records."""

    owner: str
    ttl: str
    rclass: str
    rtype: str
    rdata: tuple[str, ...]

    def text(self) -> str:
        return " ".join((self.owner, self.ttl, self.rclass, self.rtype, *self.rdata))


def tokens(text: str) -> list[str]:
    """Whitespace tokens, keeping quoted strings (TXT) whole."""
    return _TOKEN.findall(text)


def _is_pattern(tok: str) -> bool:
    return "*" in tok or "|" in tok


def parse_expected(line: str, default_ttl: str = "*") -> Record:
    """`OWNER [TTL] [CLASS] TYPE RDATA` -> Record; RDATA without patterns is normalised by dnspython."""
    toks = tokens(line)
    if len(toks) < 2:
        raise CaseError(f"RR line needs at least an owner and a type: {line!r}")
    owner, rest = toks[0], toks[1:]
    ttl = default_ttl
    if rest and (rest[0] == "*" or re.fullmatch(r"\d+([-|]\d+)*", rest[0])):
        ttl, rest = rest[0], rest[1:]
    rclass = "IN"
    if rest and rest[0].upper() in ("IN", "CH", "HS", "ANY"):
        rclass, rest = rest[0].upper(), rest[1:]
    if not rest:
        raise CaseError(f"RR line has no type: {line!r}")
    rtype, rdata = rest[0].upper(), rest[1:]
    try:
        dns.rdatatype.from_text(rtype)
    except Exception:
        raise CaseError(f"unknown RR type {rtype!r} in {line!r}")
    if rdata and not any(_is_pattern(t) for t in rdata):
        try:
            rd = dns.rdata.from_text(rclass, rtype, " ".join(rdata))
        except Exception as exc:
            raise CaseError(f"bad rdata in {line!r}: {exc}")
        rdata = tokens(rd.to_text())
    return Record(owner, ttl, rclass, rtype, tuple(rdata))


def records(msg: dns.message.Message, section: str) -> list[Record]:
    """A reply's section as Records (OPT is not in `additional` in dnspython, so never compared)."""
    out: list[Record] = []
    for rrset in getattr(msg, section):
        for rd in rrset:
            out.append(Record(rrset.name.to_text(), str(rrset.ttl), dns.rdataclass.to_text(rrset.rdclass),
                              dns.rdatatype.to_text(rrset.rdtype), tuple(tokens(rd.to_text()))))
    return out


def _fold(tok: str, rtype: str, case_exact: bool) -> str:
    if case_exact or (rtype == "TXT" and tok.startswith('"')):
        return tok
    return tok.lower()


def _tok_match(exp: str, got: str) -> bool:
    if exp == "*":
        return True
    return any(fnmatch.fnmatchcase(got, alt) if "*" in alt else got == alt for alt in exp.split("|"))


def ttl_match(pattern: str, ttl: int) -> bool:
    """`*`, `N`, `lo-hi`, and `|` alternatives of those."""
    for alt in pattern.split("|"):
        if alt == "*":
            return True
        if "-" in alt:
            lo, _, hi = alt.partition("-")
            if int(lo) <= ttl <= int(hi):
                return True
        elif alt.isdigit() and int(alt) == ttl:
            return True
    return False


def record_match(exp: Record, got: Record, case_exact: bool = False) -> bool:
    """Does a reply record satisfy an expected record?"""
    if exp.rtype != got.rtype or exp.rclass != got.rclass or len(exp.rdata) != len(got.rdata):
        return False
    if not _tok_match(_fold(exp.owner, "", case_exact), _fold(got.owner, "", case_exact)):
        return False
    if not ttl_match(exp.ttl, int(got.ttl)):
        return False
    return all(_tok_match(_fold(e, exp.rtype, case_exact), _fold(g, exp.rtype, case_exact))
               for e, g in zip(exp.rdata, got.rdata, strict=True))


def _assign(exp: list[Record], got: list[Record], case_exact: bool) -> bool:
    """Can every expected record take a distinct reply record? (backtracking; sections are small)"""
    used = [False] * len(got)

    def place(i: int) -> bool:
        if i == len(exp):
            return True
        for j, g in enumerate(got):
            if not used[j] and record_match(exp[i], g, case_exact):
                used[j] = True
                if place(i + 1):
                    return True
                used[j] = False
        return False

    return place(0)


def section_match(exp: list[Record], got: list[Record], mode: str = "set", case_exact: bool = False) -> bool:
    """Compare one section in `mode` (set | exact | subset)."""
    if mode == "exact":
        return len(exp) == len(got) and all(record_match(e, g, case_exact) for e, g in zip(exp, got, strict=True))
    if mode == "set" and len(exp) != len(got):
        return False
    if mode not in MODES:
        raise CaseError(f"unknown compare mode {mode!r} (one of {', '.join(MODES)})")
    return _assign(exp, got, case_exact)


def parse_flags(spec: Any) -> tuple[set[str], set[str]]:
    """`"aa !tc"` or `[aa, "!tc"]` -> (must be set, must be clear)."""
    items = spec.split() if isinstance(spec, str) else list(spec or [])
    on, off = set(), set()
    for item in items:
        name = str(item).lower()
        neg = name.startswith(("!", "-"))
        name = name.lstrip("!-")
        if name not in FLAG_NAMES:
            raise CaseError(f"unknown flag {item!r} (one of {', '.join(FLAG_NAMES)})")
        (off if neg else on).add(name)
    return on, off


def reply_flags(msg: dns.message.Message) -> set[str]:
    return {f for f in FLAG_NAMES if msg.flags & getattr(dns.flags, f.upper())}


@dataclass
class Expectation:
    """A case's `expect` mapping, parsed once."""

    rcode: str | None = None
    flags_on: set[str] = field(default_factory=set)
    flags_off: set[str] = field(default_factory=set)
    sections: dict[str, list[Record]] = field(default_factory=dict)
    modes: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    opt: bool | None = None
    case_exact: bool = False
    timeout: bool = False  # no reply at all is expected

    @classmethod
    def parse(cls, spec: dict[str, Any]) -> Expectation:
        known = {"rcode", "flags", "compare", "ttl", "case", "opt", "no_reply", *SECTIONS,
                 *(f"{s}_count" for s in SECTIONS)}
        unknown = set(spec) - known
        if unknown:
            raise CaseError(f"unknown expect keys: {', '.join(sorted(unknown))}")
        e = cls()
        if "rcode" in spec:
            e.rcode = str(spec["rcode"]).upper()
            for alt in e.rcode.split("|"):
                try:
                    dns.rcode.from_text(alt)
                except Exception:
                    raise CaseError(f"unknown rcode {alt!r}")
        e.flags_on, e.flags_off = parse_flags(spec.get("flags"))
        compare = spec.get("compare", "set")
        for s in SECTIONS:
            mode = compare.get(s, "set") if isinstance(compare, dict) else compare
            if mode not in MODES:
                raise CaseError(f"unknown compare mode {mode!r} (one of {', '.join(MODES)})")
            e.modes[s] = mode
        default_ttl = str(spec.get("ttl", "*"))
        for s in SECTIONS:
            if s in spec:
                lines = spec[s] or []
                if isinstance(lines, str):
                    lines = [lines]
                e.sections[s] = [parse_expected(str(line), default_ttl) for line in lines]
            if f"{s}_count" in spec:
                e.counts[s] = int(spec[f"{s}_count"])
        e.opt = spec.get("opt")
        e.case_exact = spec.get("case", "insensitive") == "exact"
        e.timeout = bool(spec.get("no_reply", False))
        return e

    def summary(self) -> str:
        """Short text for the table's `expected` column."""
        parts = [self.rcode or "*"]
        parts += sorted(self.flags_on) + [f"!{f}" for f in sorted(self.flags_off)]
        for s, recs in self.sections.items():
            body = ", ".join(_short(r) for r in recs) or "-"
            parts.append(f"{s}[{body}]")
        parts += [f"{s}#={n}" for s, n in self.counts.items()]
        if self.timeout:
            parts = ["no reply"]
        return " ".join(parts)

    def check(self, msg: dns.message.Message) -> list[str]:
        """Mismatches as readable lines (empty: the reply passes)."""
        problems: list[str] = []
        rcode = dns.rcode.to_text(msg.rcode())
        if self.rcode and rcode not in self.rcode.split("|"):
            problems.append(f"rcode {rcode}, expected {self.rcode}")
        have = reply_flags(msg)
        for f in sorted(self.flags_on - have):
            problems.append(f"flag {f} not set")
        for f in sorted(self.flags_off & have):
            problems.append(f"flag {f} set")
        for s, exp in self.sections.items():
            got = records(msg, s)
            if not section_match(exp, got, self.modes[s], self.case_exact):
                problems.append(f"{s} ({self.modes[s]}) differs: got [{'; '.join(r.text() for r in got) or '-'}]")
        for s, n in self.counts.items():
            if len(records(msg, s)) != n:
                problems.append(f"{s} has {len(records(msg, s))} records, expected {n}")
        if self.opt is not None and (msg.edns >= 0) != bool(self.opt):
            problems.append("OPT record " + ("missing" if self.opt else "present"))
        return problems


def _short(r: Record) -> str:
    return f"{r.rtype} {' '.join(r.rdata)}".strip()


def reply_summary(msg: dns.message.Message) -> str:
    """Short text for the table's `got` column."""
    parts = [dns.rcode.to_text(msg.rcode()), *sorted(reply_flags(msg) - {"qr", "rd"})]
    for s in SECTIONS:
        recs = records(msg, s)
        if recs:
            parts.append(f"{s}[{', '.join(f'{_short(r)} ({r.ttl})' for r in recs)}]")
    return " ".join(parts)


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?(?:\s+(\S+))?')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_sample(text: str) -> tuple[str, dict[str, str], str | None]:
    """`name{a="x",b="y"} value` (Prometheus text exposition) -> (name, labels, value)."""
    m = _SAMPLE.match(text.strip())
    if not m:
        raise CaseError(f"not a metric sample: {text!r}")
    return m.group(1), dict(_LABEL.findall(m.group(2) or "")), m.group(3)


def metric_present(expected: str, exposition: str) -> bool:
    """Is there a sample with this name, these labels (in any order; others allowed) and, if given,
    this value? Label order is a serialisation detail, so it is not compared."""
    name, labels, value = parse_sample(expected)
    for line in exposition.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        try:
            got_name, got_labels, got_value = parse_sample(line)
        except CaseError:
            continue
        if got_name != name or any(got_labels.get(k) != v for k, v in labels.items()):
            continue
        if value is None or (got_value is not None and float(got_value) == float(value)):
            return True
    return False
