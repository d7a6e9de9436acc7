"""A small RFC 1035 master-file reader: `$ORIGIN`, `$TTL`, `$INCLUDE`, `@`, relative names, blank
owners, parentheses, comments, quoted strings, TTL units (`1h30m`), `TYPEnnn` and `\\# LEN HEX` rdata.

Records come out as dnslib RRs with every name absolute; rdata is read by dnslib's zone readers
after the names in it were made absolute here (dnslib leaves some relative, e.g. SRV targets).
TTL rules are miekg's: an RR without TTL takes `$TTL`, else the last explicit TTL, else 3600.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

from dnslib import CNAME, QTYPE, RD, RDMAP, RR, TXT, DNSLabel

DEFAULT_TTL = 3600
MAX_INCLUDE_DEPTH = 7  # miekg's maxIncludeDepth
CLASSES = {"IN": 1, "CH": 3, "CS": 2, "HS": 4}
# Positions of domain names in the rdata of the types that have them.
NAME_FIELDS = {"NS": (0,), "CNAME": (0,), "PTR": (0,), "DNAME": (0,), "MX": (1,), "SRV": (3,), "SOA": (0, 1),
               "RP": (0, 1), "NAPTR": (5,), "KX": (1,), "AFSDB": (1,), "NSEC": (0,), "RRSIG": (7,)}
_TTL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class DNAME(CNAME):
    """DNAME rdata (RFC 6672): one name, like CNAME's, but never compressed on the wire."""

    def pack(self, buffer) -> None:
        buffer.encode_name_nocompress(self.label)


EXTRA_TYPES = {"DNAME": DNAME}  # rdata readers dnslib does not have


class ZoneFileError(ValueError):
    """A line that does not parse: str() is `<file>:<line>: <problem>`."""


class Token(str):
    """A token's text; `quoted` for "..." strings (TXT keeps them as written)."""

    quoted = False


def _tokens(text: str, filename: str) -> Iterator[tuple[int, bool, list[Token]]]:
    """Logical lines: (line number, starts with blank, tokens); parentheses join lines."""
    line_no = 1
    start_line = 1
    depth = 0
    tokens: list[Token] = []
    blank_start = False
    i, n = 0, len(text)
    at_line_start = True
    while i < n:
        c = text[i]
        if at_line_start and depth == 0:
            blank_start = c in " \t"
            start_line = line_no
            at_line_start = False
        if c == "\n":
            line_no += 1
            if depth == 0:
                if tokens:
                    yield start_line, blank_start, tokens
                tokens = []
                at_line_start = True
            i += 1
        elif c in " \t\r":
            i += 1
        elif c == ";":
            while i < n and text[i] != "\n":
                i += 1
        elif c == "(":
            depth += 1
            i += 1
        elif c == ")":
            if depth == 0:
                raise ZoneFileError(f"{filename}:{line_no}: extra closing brace")
            depth -= 1
            i += 1
        elif c == '"':
            j = i + 1
            buf = []
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    buf.append(text[j : j + 2])
                    j += 2
                    continue
                if text[j] == "\n":
                    line_no += 1
                buf.append(text[j])
                j += 1
            if j >= n:
                raise ZoneFileError(f"{filename}:{line_no}: unterminated quoted string")
            t = Token("".join(buf))
            t.quoted = True
            tokens.append(t)
            i = j + 1
        else:
            j = i
            while j < n and text[j] not in ' \t\r\n;()"':
                j += 2 if text[j] == "\\" and j + 1 < n else 1
            tokens.append(Token(text[i:j]))
            i = j
    if depth:
        raise ZoneFileError(f"{filename}:{line_no}: unbalanced parenthesis")
    if tokens:
        yield start_line, blank_start, tokens


def parse_ttl(text: str) -> int | None:
    """A TTL: seconds, or miekg's unit form (`1w2d3h4m5s`); None when it is not one."""
    if text.isdigit():
        return int(text) & 0xFFFFFFFF
    m = re.fullmatch(r"(?:\d+[smhdwSMHDW])+", text)
    if not m:
        return None
    return sum(int(v) * _TTL_UNITS[u.lower()] for v, u in re.findall(r"(\d+)([a-zA-Z])", text))


def absolute(name: str, origin: str) -> str:
    """`@`, relative and absolute names to an absolute name."""
    if name == "@":
        return origin
    if name.endswith(".") and not name.endswith("\\."):
        return name
    return name + "." + origin if origin != "." else name + "."


def label_of(name: str) -> DNSLabel:
    """A DNSLabel for an absolute name, lowercased (as dnslib's IDNA path does for ASCII): built from
    its labels directly when it is plain ASCII (no IDNA pass: a third of the reading time), else by dnslib."""
    if name.isascii() and "\\" not in name:
        parts = name.lower().rstrip(".").split(".") if name != "." else []
        if all(0 < len(p) < 64 for p in parts):
            return DNSLabel([p.encode() for p in parts])
    return DNSLabel(name)


def _unescape(text: str) -> bytes:
    """A character-string's escapes (`\\"`, `\\DDD`) to bytes."""
    out = bytearray()
    i = 0
    raw = text.encode()
    while i < len(raw):
        if raw[i] == 0x5C and i + 1 < len(raw):
            if raw[i + 1 : i + 4].isdigit() and len(raw[i + 1 : i + 4]) == 3:
                out.append(int(raw[i + 1 : i + 4]) & 0xFF)
                i += 4
                continue
            out.append(raw[i + 1])
            i += 2
            continue
        out.append(raw[i])
        i += 1
    return bytes(out)


def _rdata(rtype: str, rd: list[Token], origin: str):
    if rd and rd[0] == "\\#":  # RFC 3597 generic rdata
        return RD(bytes.fromhex("".join(rd[2:])))
    if rtype in ("TXT", "SPF"):
        return TXT([_unescape(t) for t in rd])
    fields = [str(t) for t in rd]
    for pos in NAME_FIELDS.get(rtype, ()):
        if pos < len(fields):
            fields[pos] = absolute(fields[pos], origin)
    cls = RDMAP.get(rtype) or EXTRA_TYPES.get(rtype)
    if cls is None:
        raise ValueError(f"unsupported type {rtype}")
    return cls.fromZone(fields, DNSLabel(origin))


def _type_value(word: str) -> int | None:
    up = word.upper()
    if up.startswith("TYPE") and up[4:].isdigit():
        return int(up[4:])
    try:
        v = QTYPE.reverse.get(up)
    except AttributeError:
        v = None
    return v if isinstance(v, int) else None


class Parser:
    """One master file (and its includes) read with a starting origin."""

    def __init__(self, origin: str) -> None:
        self.origin = origin if origin.endswith(".") else origin + "."
        self.default_ttl: int | None = None
        self.by_directive = False
        self.last_owner: str | None = None

    def parse_file(self, path: str, depth: int = 0) -> Iterator[RR]:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
        yield from self.parse(text, path, depth)

    def parse(self, text: str, filename: str, depth: int = 0) -> Iterator[RR]:
        """The records in file order, one at a time (a reload stops at an unchanged SOA)."""
        saved_origin = self.origin
        for line, blank, toks in _tokens(text, filename):
            try:
                if toks[0].upper() == "$ORIGIN":
                    self.origin = absolute(toks[1], self.origin).lower() if len(toks) > 1 else self.origin
                elif toks[0].upper() == "$TTL":
                    ttl = parse_ttl(toks[1]) if len(toks) > 1 else None
                    if ttl is None:
                        raise ValueError("bad TTL in $TTL")
                    self.default_ttl, self.by_directive = ttl, True
                elif toks[0].upper() == "$INCLUDE":
                    yield from self._include(toks, filename, depth)
                elif toks[0].startswith("$"):
                    raise ValueError(f"unknown directive {toks[0]}")
                else:
                    yield self._record(blank, toks)
            except ZoneFileError:
                raise
            except Exception as e:  # dnslib's readers raise many kinds on bad rdata
                raise ZoneFileError(f"{filename}:{line}: {e}") from None
        self.origin = saved_origin if depth else self.origin

    def _include(self, toks: list[Token], filename: str, depth: int) -> Iterator[RR]:
        if len(toks) < 2:
            raise ValueError("$INCLUDE needs a file name")
        if depth + 1 > MAX_INCLUDE_DEPTH:
            raise ValueError("too deeply nested $INCLUDE")
        path = str(toks[1])
        if not os.path.isabs(path):
            path = os.path.join(os.path.dirname(filename), path)
        saved = self.origin
        if len(toks) > 2:
            self.origin = absolute(toks[2], self.origin).lower()
        try:
            yield from self.parse_file(path, depth + 1)
        finally:
            self.origin = saved

    def _record(self, blank: bool, toks: list[Token]) -> RR:
        if blank:
            if self.last_owner is None:
                raise ValueError("no owner name")
            owner = self.last_owner
            rest = toks
        else:
            owner = absolute(toks[0], self.origin)
            rest = toks[1:]
        self.last_owner = owner
        ttl: int | None = None
        rclass = 1
        i = 0
        while i < len(rest):  # [TTL] [CLASS] or [CLASS] [TTL] before the type
            word = rest[i]
            if ttl is None and parse_ttl(word) is not None:
                ttl = parse_ttl(word)
            elif word.upper() in CLASSES:
                rclass = CLASSES[word.upper()]
            else:
                break
            i += 1
        if i >= len(rest):
            raise ValueError("no type")
        rtype = rest[i].upper()
        rtype_value = _type_value(rtype)
        if rtype_value is None:
            raise ValueError(f"unknown RR type {rest[i]}")
        if ttl is None:
            ttl = self.default_ttl if self.default_ttl is not None else DEFAULT_TTL
        elif not self.by_directive:
            self.default_ttl = ttl
        rdata = _rdata(rtype, rest[i + 1 :], self.origin)
        return RR(label_of(owner), rtype_value, rclass=rclass, ttl=ttl, rdata=rdata)


def read_zone(path: str, origin: str) -> Iterator[RR]:
    """The records of the master file at `path` read with `origin`, as they are read. Raises OSError or
    ZoneFileError (while iterating)."""
    return Parser(origin).parse_file(path)
