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
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from pycoredns import wire
from pycoredns.layout import RDATA_NAMES, Layout, expand_name, layout_of, uncompressed
from pycoredns.plugin import self_lookup
from pycoredns.request import Request, ResponseWriter
from pycoredns.wire import Reply

from .names import Matcher, substitute, valid_name

T_CNAME = wire.TYPE_CNAME
_HHIH = struct.Struct(">HHIH")
_HHI = struct.Struct(">HHI")
_HH = struct.Struct(">HH")
_H = struct.Struct(">H")

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
        self._targets: dict[str, tuple[bytes, bool] | None] = {}

    def _target(self, to: str) -> tuple[bytes, bool] | None:
        """None for a name that is no domain name, else its wire form and whether `to` is the canonical
        text of that form (then a record's owner text equals `to` exactly when its wire equals this wire;
        no owner text equals any other text). Memoised, bounded: a rule's targets repeat."""
        got = self._targets.get(to, False)
        if got is False:
            got = None
            if valid_name(to):
                target = wire.text_to_wire(to)
                got = (target, wire.wire_name_to_text(target) == to)
            if len(self._targets) >= 1024:
                self._targets.clear()
            self._targets[to] = got
        return got  # type: ignore[return-value]

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
            got = None if to is None or req.listener is None else self._target(to)
            if got is None:
                continue
            assert to is not None
            spliced = partial(self._spliced, msg, req, w, then, todo, i, to)
            try:
                sub = req.copy_with(wire_qname=got[0])
            except (wire.WireError, ValueError):  # a broken self-lookup leaves only the rewritten CNAMEs
                return spliced(None)
            return self_lookup(sub, w, spliced)
        return then()

    def _spliced(self, msg: Message, req: Request, w: ResponseWriter, then: Callable[[], int], todo: list[Record],
                 i: int, to: str, up: Reply | None) -> int:
        try:
            answers = answers_of(up) if up is not None else []
        except Exception:  # a broken self-lookup leaves only the rewritten CNAMEs
            answers = []
        cnames = [a for a in msg.an if a.rtype == T_CNAME]
        target, canonical = self._target(to) or (wire.text_to_wire(to), False)
        for a in cnames:
            a.rdata = target
        msg.an = cnames + ([a for a in answers if a.owner == target] if canonical else [])
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

    def target(self) -> str:
        """A CNAME's target, in presentation form."""
        return wire.wire_name_to_text(self.rdata)

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
    """A message being written, with RFC 1035 name compression (exact-case matches only).

    Names come in as uncompressed wire bytes; a suffix's key is its bytes from a label on (the same
    label sequence as a tuple of labels, without building one per suffix)."""

    __slots__ = ("buf", "offsets", "pointers")

    def __init__(self) -> None:
        self.buf = bytearray(12)
        self.offsets: dict[bytes, int] = {}
        self.pointers = 0  # compression pointers written so far

    def name(self, name: bytes, compress: bool) -> None:
        buf = self.buf
        offsets = self.offsets
        start = len(buf)
        pos = 0
        length = name[0]
        while length:
            key = name[pos:]  # case-sensitive: pointers must not change a name's case
            off = offsets.get(key)
            if off is None:
                if start + pos < 0x3FFF:
                    offsets[key] = start + pos
            elif compress:
                buf += name[:pos]
                buf += _H.pack(0xC000 | off)
                self.pointers += 1
                return
            pos += 1 + length
            length = name[pos]
        buf += name


def _text_labels(text: str) -> list[bytes]:
    if "\\" not in text and text.isascii():
        body = text[:-1] if text.endswith(".") else text
        labels = [x.encode() for x in body.split(".")] if body else []
        if all(0 < len(x) < 64 for x in labels):
            return labels
    labels, _ = wire.read_name(wire.text_to_wire(text), 0)
    return labels


def _rewrite_name(name: bytes, fn, rules: list[ResponseRule]) -> bytes:
    """`name` (uncompressed wire) through the rules' owner() or value(), in presentation form."""
    text = wire.wire_name_to_text(name)
    new = text
    for r in rules:
        new = fn(r, new)
    if new == text:
        return name
    out = _text_labels(new)
    if sum(len(x) + 1 for x in out) + 1 > 255 or any(len(x) > 63 for x in out):
        return name  # no valid name (CoreDNS fails to pack the reply): the name stays as it was
    return b"".join(bytes((len(x),)) + x for x in out) + b"\x00"


def _owner(r: ResponseRule, n: str) -> str:
    return r.owner(n)


def _value(r: ResponseRule, n: str) -> str:
    return r.value(n)


def revert(reply: bytes, req: Request, rules: list[ResponseRule], drop_opt: bool, keep: bool = False) -> bytes:
    """Restore the client's question and apply the response rules (last rule first, like CoreDNS).

    Raises wire.WireError (or ValueError for a rewritten name that does not encode) on a reply
    that does not unpack. `keep`: also note the answer records as `Message` would read them from the
    result (`answers_of`), for a self-lookup's caller.
    """
    data = reply
    size = len(data)
    qid, flags, qd, an, ns, ar = wire.header(data)
    off = 12
    questions = []
    for i in range(qd):
        name, off = expand_name(data, off)
        if off + 4 > size:
            raise wire.WireError("question overruns message")
        if i > 0:
            questions.append((name, data[off : off + 4]))
        off += 4
    return _write(qid, flags, questions, _wire_records(data, off, (an, ns, ar)), req, rules, drop_opt, keep)


def _wire_records(data: bytes, off: int, counts: tuple[int, int, int]) -> Iterator[_RR]:
    """The records of a message from `off` on: (section, owner, type, class, TTL, data, rdata start, end)."""
    size = len(data)
    for section, n in enumerate(counts):
        for _ in range(n):
            name, off = expand_name(data, off)
            if off + 10 > size:
                raise wire.WireError("record overruns message")
            rtype, rclass, ttl, rdlen = _HHIH.unpack_from(data, off)
            start = off + 10
            end = start + rdlen
            if end > size:
                raise wire.WireError("rdata overruns message")
            off = end
            yield section, name, rtype, rclass, ttl, data, start, end


_RR = tuple[int, bytes, int, int, int, bytes, int, int]
_RAW_NAMES = frozenset(_LAYOUT) - frozenset(RDATA_NAMES)  # names in data `uncompressed` leaves as they came


def revert_message(msg: Message, req: Request, rules: list[ResponseRule], drop_opt: bool) -> bytes:
    """`revert(msg.pack(), ...)` without packing the records and reading them again (their names are
    written out already). Falls back to exactly that for what the records do not say alone: several
    questions, a compressed or short question, data names `uncompressed` did not write out."""
    records = (*msg.an, *msg.ns, *msg.ar)
    try:
        name, end = expand_name(msg.question, 0)
    except wire.WireError:
        end = -1
    if (msg.head[4:6] != b"\x00\x01" or end + 4 != len(msg.question) or name != msg.question[:end]
            or any(r.rtype in _RAW_NAMES for r in records)):
        return revert(msg.pack(), req, rules, drop_opt)
    qid, flags = _HH.unpack_from(msg.head)
    return _write(qid, flags, [], _message_records(msg), req, rules, drop_opt, False)


def _message_records(msg: Message) -> Iterator[_RR]:
    for section, records in enumerate((msg.an, msg.ns, msg.ar)):
        for r in records:
            rtype, rclass, ttl = _HHI.unpack(r.head)
            yield section, r.owner, rtype, rclass, ttl, r.rdata, 0, len(r.rdata)


def _write(qid: int, flags: int, questions: list[tuple[bytes, bytes]], records: Iterator[_RR], req: Request,
           rules: list[ResponseRule], drop_opt: bool, keep: bool) -> bytes:
    """The reverted reply: the client's question, then `questions` and `records` through the rules."""
    ordered, names, ttls, rcoders = _prepared(rules)
    rcode = flags & 0xF
    for r in rcoders:
        rcode = r.rcode(rcode)
    out = _Out()
    buf = out.buf
    out.name(req.wire[12 : req.qend - 4], True)  # a query's question is never compressed
    buf += req.wire[req.qend - 4 : req.qend]
    for name, tail in questions:
        out.name(name, True)
        buf += tail
    counts = [0, 0, 0]
    kept: list[Record] | None = [] if keep else None
    for section, name, rtype, rclass, ttl, data, start, end in records:
        if rtype == wire.TYPE_OPT:
            if drop_opt:
                continue
            buf += b"\x00" + _HHIH.pack(rtype, rclass, ttl, end - start) + data[start:end]
            counts[section] += 1
            if kept is not None and section == 0:
                kept.append(Record(bytes(buf[-(end - start + 11) :])))
            continue
        if names:
            name = _rewrite_name(name, _owner, ordered)
        for r in ttls:
            ttl = r.ttl(ttl)
        out.name(name, True)
        head = len(buf)
        buf += _HHIH.pack(rtype, rclass, ttl, 0)
        pointers = out.pointers
        _rdata(out, data, start, end, rtype, ordered if names and rtype in _VALUE_TYPES else None)
        _H.pack_into(buf, head + 8, len(buf) - head - 10)
        counts[section] += 1
        if kept is not None and section == 0:
            if out.pointers != pointers:  # a compressed name in the data: `answers_of` reads the reply
                kept = None
            else:
                kept.append(Record(name + buf[head:]))
    struct.pack_into(">HHHHHH", buf, 0, qid, (flags & 0xFFF0) | (rcode & 0xF), 1 + len(questions), *counts)
    result = bytes(buf)
    if kept is not None:
        _kept[:] = [result, kept]
    return result


_Prepared = tuple[list[ResponseRule], bool, list[ResponseRule], list[ResponseRule]]


def _prepare(rules: list[ResponseRule]) -> _Prepared:
    """The rules last first, whether any changes names, those that change TTLs and those that change the
    rcode (the others keep them)."""
    ordered = rules[::-1]
    return (ordered, any(r.names for r in ordered), [r for r in ordered if type(r).ttl is not ResponseRule.ttl],
            [r for r in ordered if type(r).rcode is not ResponseRule.rcode])


class PreparedRules(list[ResponseRule]):
    """Response rules that are the same for every query (a rewrite handler whose rules are all `cname`
    rules): the reverter's preparation of them is worked out once. Not to be changed after."""

    __slots__ = ("prepared",)

    def __init__(self, rules: list[ResponseRule]) -> None:
        super().__init__(rules)
        self.prepared = _prepare(self)


def _prepared(rules: list[ResponseRule]) -> _Prepared:
    return rules.prepared if type(rules) is PreparedRules else _prepare(rules)


# the answers of the reply revert() wrote last with `keep` (a self-lookup's pass through rewrite), for
# `answers_of` of that same reply (the next thing that happens to it, in the same call, when no writer
# above rewrite replaced it), matched by identity, taken once
_kept: list[Any] = [None, None]


def answers_of(reply: Reply) -> list[Record]:
    """The answer records of `reply` without compression pointers (`Message(reply).an`)."""
    if _kept[0] is reply:
        answers: list[Record] = _kept[1]
        _kept[:] = [None, None]  # once: the caller changes these records
        return answers
    return Message(wire.to_bytes(reply)).an


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
            name, off = expand_name(data, off)
            if off > end:
                raise wire.WireError("name overruns rdata")
            if first and rules is not None:
                name = _rewrite_name(name, _value, rules)
            first = False
            out.name(name, part == "N")
    if off != end:
        raise wire.WireError("rdata length mismatch")
