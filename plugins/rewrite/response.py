"""The response side of rewrite: per-record rules, and the reverter that puts the question back.

The reverter works on wire bytes: it walks the reply once, decompressing every name (a restored
question of another length moves every compression pointer after it, so bytes cannot just be
spliced), applies the rules to owner names, record values and TTLs, and writes the reply again with
name compression. `cname` rules rebuild the answer section on the wire too (`Message`: records without
compression pointers).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from functools import partial

from pycoredns import wire
from pycoredns.layout import Layout, layout_of, uncompressed
from pycoredns.plugin import self_lookup
from pycoredns.request import Request, ResponseWriter
from pycoredns.wire import Reply

from .names import Matcher, substitute, valid_name

T_CNAME = wire.TYPE_CNAME
_HHIH = struct.Struct(">HHIH")

# Record data layouts with names: "N" a name compressed on output (RFC 1035 types), "n" a name never
# compressed, "s" a character-string, an int a run of fixed octets. The first name is the "value"
# `answer value` rewrites for CNAME, DNAME, SOA (mname), SRV, MX, NAPTR, NS and PTR.
_LAYOUT: dict[int, tuple[str | int, ...]] = {
    2: ("N",), 3: ("N",), 4: ("N",), 5: ("N",), 7: ("N",), 8: ("N",), 9: ("N",), 12: ("N",),
    6: ("N", "N", 20), 14: ("N", "N"), 15: (2, "N"), 17: ("n", "n"), 18: (2, "n"), 21: (2, "n"),
    26: (2, "n", "n"), 33: (6, "n"), 35: (4, "s", "s", "s", "n"), 36: (2, "n"), 39: ("n",),
}
_VALUE_TYPES = frozenset((2, 5, 6, 12, 15, 33, 35, 39))


class ResponseRule:
    """One response rewrite. The reverter calls these per record (owner, value, TTL) and per reply."""

    def owner(self, name: str) -> str:
        return name

    def value(self, name: str) -> str:
        return name

    def ttl(self, ttl: int) -> int:
        return ttl

    def rcode(self, rcode: int) -> int:
        return rcode

    names = False  # True when owner()/value() may change something (names then go through text)


# -- string rewriters (CoreDNS's stringRewriter) ------------------------------------------------


class RegexRewriter:
    def __init__(self, pattern: re.Pattern[str], replacement: str) -> None:
        self.pattern = pattern
        self.replacement = replacement

    def rewrite(self, src: str) -> str:
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

    names = True

    def __init__(self, rw: Rewriter) -> None:
        self.rw = rw

    def owner(self, name: str) -> str:
        return self.rw.rewrite(name)


class ValueRewriter(ResponseRule):
    """Names inside the data of CNAME, DNAME, SOA, SRV, MX, NAPTR, NS and PTR records."""

    names = True

    def __init__(self, rw: Rewriter) -> None:
        self.rw = rw

    def value(self, name: str) -> str:
        return self.rw.rewrite(name)


class TTLClamp(ResponseRule):
    def __init__(self, lo: int, hi: int) -> None:
        self.lo = lo
        self.hi = hi

    def ttl(self, ttl: int) -> int:
        return self.lo if ttl < self.lo else self.hi if ttl > self.hi else ttl


class RcodeRewriter(ResponseRule):
    def __init__(self, old: int, new: int) -> None:
        self.old = old
        self.new = new

    def rcode(self, rcode: int) -> int:
        return self.new & 0xF if rcode == self.old else rcode


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

    def apply(self, msg: Message, req: Request, w: ResponseWriter, then: Callable[[], int]) -> int:
        """Rewrite the CNAME targets of `msg` that this rule matches, and replace what followed them by
        a lookup of the new target through the server, by continuation (`self_lookup`, one CNAME after
        the other); then `then()`. Returns its rcode, or PENDING (the last lookup then completes `w`)."""
        todo = [r for r in (*msg.ns, *msg.an, *msg.ar) if r.rtype == T_CNAME]
        return self._step(msg, req, w, then, todo, 0)

    def _step(self, msg: Message, req: Request, w: ResponseWriter, then: Callable[[], int], todo: list[Record],
              i: int) -> int:
        while i < len(todo):
            to = self.target_for(todo[i].target())
            i += 1
            if to is None or req.listener is None or not valid_name(to):
                continue
            spliced = partial(self._spliced, msg, req, w, then, todo, i, to)
            try:
                sub = req.copy_with(qname=to)
            except (wire.WireError, ValueError):  # a broken self-lookup leaves only the rewritten CNAMEs
                return spliced(None)
            return self_lookup(sub, w, spliced)
        return then()

    def _spliced(self, msg: Message, req: Request, w: ResponseWriter, then: Callable[[], int], todo: list[Record],
                 i: int, to: str, up: Reply | None) -> int:
        try:
            answers = Message(wire.to_bytes(up)).an if up is not None else []
        except Exception:  # a broken self-lookup leaves only the rewritten CNAMEs
            answers = []
        cnames = [a for a in msg.an if a.rtype == T_CNAME]
        target = wire.text_to_wire(to)
        for a in cnames:
            a.rdata = target
        msg.an = cnames + [a for a in answers if a.owner_text() == to]
        return self._step(msg, req, w, then, todo, i)


class Record:
    """One record of a reply that `cname` rules change: owner and rdata as uncompressed wire."""

    __slots__ = ("head", "owner", "rdata", "rtype")

    def __init__(self, raw: bytes) -> None:
        end = wire.skip_name(raw, 0)
        self.owner = raw[:end]
        self.rtype = (raw[end] << 8) | raw[end + 1]
        self.head = raw[end : end + 8]  # type, class, TTL
        self.rdata = raw[end + 10 :]

    def owner_text(self) -> str:
        return _name_text(wire.read_name(self.owner, 0)[0])

    def target(self) -> str:
        """A CNAME's target, in presentation form."""
        return _name_text(wire.read_name(self.rdata, 0)[0])

    def pack(self) -> bytes:
        return self.owner + self.head + struct.pack(">H", len(self.rdata)) + self.rdata


class Message:
    """A reply as its header, question and three lists of records without compression pointers (what
    `cname` rules rebuild; the reverter compresses it again). No dnslib parse or pack."""

    __slots__ = ("an", "ar", "head", "ns", "question")

    def __init__(self, data: bytes, lay: Layout | None = None) -> None:
        lay = layout_of(data) if lay is None else lay
        records = [Record(r) for r in uncompressed(data, lay)]
        an, ns, _ar = lay.counts
        self.head = data[:6]  # id, flags, QDCOUNT
        self.question = data[12 : lay.qend]
        self.an, self.ns, self.ar = records[:an], records[an : an + ns], records[an + ns :]

    def pack(self) -> bytes:
        return b"".join((self.head, struct.pack(">HHH", len(self.an), len(self.ns), len(self.ar)), self.question,
                         *(r.pack() for r in (*self.an, *self.ns, *self.ar))))


# -- the wire reverter ---------------------------------------------------------------------------


class _Out:
    """A message being written, with RFC 1035 name compression (exact-case matches only)."""

    __slots__ = ("buf", "offsets")

    def __init__(self) -> None:
        self.buf = bytearray(12)
        self.offsets: dict[tuple[bytes, ...], int] = {}

    def name(self, labels: list[bytes], compress: bool) -> None:
        buf = self.buf
        for i in range(len(labels)):
            key = tuple(labels[i:])  # case-sensitive: pointers must not change a name's case
            if compress:
                off = self.offsets.get(key)
                if off is not None:
                    buf += struct.pack(">H", 0xC000 | off)
                    return
            if len(buf) < 0x3FFF and key not in self.offsets:
                self.offsets[key] = len(buf)
            buf.append(len(labels[i]))
            buf += labels[i]
        buf.append(0)


def _text_labels(text: str) -> list[bytes]:
    if "\\" not in text and text.isascii():
        body = text[:-1] if text.endswith(".") else text
        labels = [x.encode() for x in body.split(".")] if body else []
        if all(0 < len(x) < 64 for x in labels):
            return labels
    labels, _ = wire.read_name(wire.text_to_wire(text), 0)
    return labels


_PLAIN = re.compile(rb"[A-Za-z0-9_*-]+")


def _name_text(labels: list[bytes]) -> str:
    """Presentation form; plain host-name labels skip the escaping walk."""
    if labels and all(_PLAIN.fullmatch(x) for x in labels):
        return b".".join(labels).decode() + "."
    return wire.labels_to_text(labels)


def _rewrite_name(labels: list[bytes], fn, rules: list[ResponseRule]) -> list[bytes]:
    text = _name_text(labels)
    new = text
    for r in rules:
        new = fn(r, new)
    if new == text:
        return labels
    out = _text_labels(new)
    if sum(len(x) + 1 for x in out) + 1 > 255 or any(len(x) > 63 for x in out):
        return labels  # no valid name (CoreDNS fails to pack the reply): the name stays as it was
    return out


def _owner(r: ResponseRule, n: str) -> str:
    return r.owner(n)


def _value(r: ResponseRule, n: str) -> str:
    return r.value(n)


def revert(reply: bytes, req: Request, rules: list[ResponseRule], drop_opt: bool) -> bytes:
    """Restore the client's question and apply the response rules (last rule first, like CoreDNS).

    Raises wire.WireError (or ValueError for a rewritten name that does not encode) on a reply
    that does not unpack.
    """
    data = reply
    qid, flags, qd, an, ns, ar = wire.header(data)
    ordered = rules[::-1]
    names = any(r.names for r in ordered)
    rcode = flags & 0xF
    for r in ordered:
        rcode = r.rcode(rcode)
    out = _Out()
    q_labels, _ = wire.read_name(req.wire, 12)
    out.name(q_labels, True)
    out.buf += req.wire[req.qend - 4 : req.qend]
    off = 12
    extra_q = 0
    for i in range(qd):
        labels, off = wire.read_name(data, off)
        if off + 4 > len(data):
            raise wire.WireError("question overruns message")
        if i > 0:
            out.name(labels, True)
            out.buf += data[off : off + 4]
            extra_q += 1
        off += 4
    counts = [0, 0, 0]
    for section, n in enumerate((an, ns, ar)):
        for _ in range(n):
            labels, off = wire.read_name(data, off)
            if off + 10 > len(data):
                raise wire.WireError("record overruns message")
            rtype, rclass, ttl, rdlen = _HHIH.unpack_from(data, off)
            start = off + 10
            end = start + rdlen
            if end > len(data):
                raise wire.WireError("rdata overruns message")
            off = end
            if rtype == wire.TYPE_OPT:
                if drop_opt:
                    continue
                out.buf += b"\x00" + data[start - 10 : end]
                counts[section] += 1
                continue
            if names:
                labels = _rewrite_name(labels, _owner, ordered)
            for r in ordered:
                ttl = r.ttl(ttl)
            out.name(labels, True)
            head = len(out.buf)
            out.buf += _HHIH.pack(rtype, rclass, ttl, 0)
            _rdata(out, data, start, end, rtype, ordered if names and rtype in _VALUE_TYPES else None)
            struct.pack_into(">H", out.buf, head + 8, len(out.buf) - head - 10)
            counts[section] += 1
    struct.pack_into(">HHHHHH", out.buf, 0, qid, (flags & 0xFFF0) | (rcode & 0xF), 1 + extra_q, *counts)
    return bytes(out.buf)


def _rdata(out: _Out, data: bytes, start: int, end: int, rtype: int, rules: list[ResponseRule] | None) -> None:
    """Copy record data, decompressing its names (and rewriting the value name when `rules`)."""
    layout = _LAYOUT.get(rtype)
    if layout is None:
        out.buf += data[start:end]
        return
    off = start
    first = True
    for part in layout:
        if isinstance(part, int):
            if off + part > end:
                raise wire.WireError("short rdata")
            out.buf += data[off : off + part]
            off += part
        elif part == "s":
            if off >= end or off + 1 + data[off] > end:
                raise wire.WireError("short rdata")
            out.buf += data[off : off + 1 + data[off]]
            off += 1 + data[off]
        else:
            labels, off = wire.read_name(data, off)
            if off > end:
                raise wire.WireError("name overruns rdata")
            if first and rules is not None:
                labels = _rewrite_name(labels, _value, rules)
            first = False
            out.name(labels, part == "N")
    if off != end:
        raise wire.WireError("rdata length mismatch")
