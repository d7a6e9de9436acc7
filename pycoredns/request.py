"""A query as plugins see it, and the writers replies go through.

`Request` is built from wire bytes with a hand-written question walk (no dnslib); the full dnslib
parse (`req.msg`) happens only when a plugin asks for it.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

from dnslib import DNSHeader, DNSLabel, DNSQuestion, DNSRecord

from . import wire
from .exceptions import PluginError
from .wire import OPCODE_MASK, OPCODE_NOTIFY, OPCODE_SHIFT, Reply


class Listener(Protocol):
    """The listener a request came in on, as plugins see it (`pycoredns.server.Listener` is one).

    Declared here so the request layer does not import the server above it.
    """

    udp_sock: socket.socket | None
    tcp_sock: socket.socket | None

    @property
    def label(self) -> str:
        """The `server` metric label, e.g. `dns://:53`."""
        ...

    async def resolve(self, req: Request) -> Reply | None:
        """Route `req` through this listener's blocks and chains without a socket (self-lookups)."""
        ...

    def resolve_then(self, req: Request, then: Callable[[Reply | None], object]) -> None:
        """`resolve` by continuation: `then(reply)` is called once, maybe before this returns."""
        ...

_OPT_FIXED = struct.Struct(">HHBBHH")  # type, class(udp size), ext-rcode, version, flags, rdlen
_ID_FLAGS = struct.Struct(">HH")
_HEADER = struct.Struct(">HHHHHH")  # id, flags, qdcount, ancount, nscount, arcount
# EDNS options the server keeps when it mirrors a request's OPT (CoreDNS's SupportedOptions).
SUPPORTED_OPTIONS = {3, 9, 10, 11, 12}  # NSID, EXPIRE, COOKIE, TCP-KEEPALIVE, PADDING


class Edns:
    """The request's OPT record, read off the wire. Read-only: requests with the same bytes share one."""

    __slots__ = ("_mirrored", "do", "flags", "options", "udp_size", "version")

    def __init__(self, udp_size: int, version: int, flags: int, options: bytes) -> None:
        self.udp_size = udp_size
        self.version = version
        self.flags = flags
        self.do = bool(flags & 0x8000)
        self.options = options
        self._mirrored: bytes | None = None

    def option_list(self) -> list[tuple[int, bytes]]:
        out = []
        off = 0
        data = self.options
        while off + 4 <= len(data):
            code, length = struct.unpack_from(">HH", data, off)
            out.append((code, data[off + 4 : off + 4 + length]))
            off += 4 + length
        return out

    def mirrored(self) -> bytes:
        """The OPT the server attaches to a reply that has none (CoreDNS SizeAndDo)."""
        if self._mirrored is not None:
            return self._mirrored
        opts = b"".join(
            struct.pack(">HH", code, len(val)) + val
            for code, val in self.option_list()
            if code in SUPPORTED_OPTIONS
        )
        self._mirrored = b"\x00" + _OPT_FIXED.pack(41, self.udp_size, 0, 0, self.flags & 0xFF00, len(opts)) + opts
        return self._mirrored


class Rejected(Exception):
    """The message is not a query the server accepts; `reply` is what to send (None: stay silent)."""

    def __init__(self, reply: bytes | None) -> None:
        self.reply = reply


PARSE_CACHE_SIZE = 16384  # a cluster's names (PTR of 5k services: ~6,300 distinct); ~200 bytes each
PARSE_CACHE_MAX_QUERY = 512  # bytes after the id and flags; larger queries are parsed every time
# Past half full, one never-seen query in this many is kept: a query that repeats gets in after a few
# tries, one that never does (300,000 distinct names through a cache) costs the insert and the later
# clear less often. Below half full every one is kept (a warm-up pass of 10,000 names fills it at once).
PARSE_CACHE_ADMIT = 4
PARSE_CACHE_OPEN = PARSE_CACHE_SIZE // 2
_PARSED: dict[bytes, tuple[bytes, int, int, int, Edns | None]] = {}
_parse_misses = 0


def _parse(data: bytes) -> tuple[bytes, int, int, int, Edns | None]:
    """miekg/dns's accept checks on the counts and the question/OPT walk: (qname wire, qtype, qclass,
    qend, edns). Raises `Rejected`. The result depends only on `data[4:]` (id and flags go into reject
    replies only), which is what `Request` caches it by.
    """
    _qid, _flags, qd, an, ns, ar = _HEADER.unpack_from(data)  # wire.header, inline: runs per never-seen query
    if qd != 1 or an > 1 or ns > 1 or ar > 2:
        raise Rejected(_reject(data, wire.FORMERR))
    if len(data) == 12:  # miekg: "Qdcount is a lie", no question; CoreDNS's server answers SERVFAIL
        raise Rejected(_reject(data, wire.SERVFAIL))
    try:
        qname_wire, qtype, qclass, qend = wire.parse_question(data)
    except wire.WireError:
        raise Rejected(_reject(data, wire.FORMERR)) from None
    edns: Edns | None = None
    try:
        if ar == 1 and not an and not ns and data[qend : qend + 3] == b"\x00\x00\x29" and len(data) >= qend + 11:
            # the common case: one OPT right after the question
            _t, size, _ext, version, flags16, rdlen = _OPT_FIXED.unpack_from(data, qend + 1)
            if qend + 11 + rdlen > len(data):
                raise wire.WireError("OPT overruns message")
            edns = Edns(size, version, flags16, _checked_options(data[qend + 11 : qend + 11 + rdlen]))
        elif an or ns or ar:
            edns = _find_opt(data, qend, an, ns, ar)
    except wire.WireError:
        raise Rejected(_reject(data, wire.FORMERR, data[12:qend])) from None
    return qname_wire, qtype, qclass, qend, edns


def repaired(data: bytes) -> bytes | None:
    """A message miekg reads although it is cut short, made whole the way miekg reads it (None: not
    such a message). A question that ends right after its name is type 0, class 0; record counts larger
    than the records present, which end exactly at the message's end, are lowered to what is there
    ("the count is a lie"). CoreDNS serves both; only rejected queries come here (not the hot path)."""
    off, n = 12, len(data)
    while off < n and 0 < data[off] < 64:
        off += 1 + data[off]
    if off + 1 == n and data[off] == 0 and n - 12 <= 255:
        return data + b"\x00\x00\x00\x00"
    off += 5
    counts = list(wire.header(data)[3:])
    for i, count in enumerate(counts):
        for k in range(count):
            if off == n:
                counts[i] = k
                break
            try:
                _, _, off = wire.skip_rr(data, off)
            except wire.WireError:
                return None
    if counts == list(wire.header(data)[3:]):
        return None
    return data[:6] + struct.pack(">HHH", *counts) + data[12:]


#: miekg's EDNS0 option unpackers that can fail: code -> check of the option's data (True: acceptable)
_OPTION_CHECKS: dict[int, Callable[[bytes], bool]] = {
    1: lambda b: len(b) >= 18,  # LLQ
    2: lambda b: len(b) in (4, 8),  # UL
    8: lambda b: _subnet_ok(b),  # client subnet
    9: lambda b: len(b) == 0 or len(b) >= 4,  # EXPIRE
    11: lambda b: len(b) in (0, 2),  # TCP keepalive
    15: lambda b: len(b) >= 2,  # extended error
    19: lambda b: len(b) >= 2,  # zone version
}


def _subnet_ok(b: bytes) -> bool:
    if len(b) < 4:
        return False
    family, mask, scope = (b[0] << 8) | b[1], b[2], b[3]
    if family == 0:
        return mask == 0
    bits = {1: 32, 2: 128}.get(family)
    return bits is not None and mask <= bits and scope <= bits


def _checked_options(rdata: bytes) -> bytes:
    """The OPT rdata if every option unpacks as miekg unpacks it, else WireError (FORMERR)."""
    off, n = 0, len(rdata)
    while off < n:
        if off + 4 > n:
            raise wire.WireError("overflow unpacking opt")
        code, length = struct.unpack_from(">HH", rdata, off)
        off += 4
        if off + length > n:
            raise wire.WireError("overflow unpacking opt")
        check = _OPTION_CHECKS.get(code)
        if check is not None and not check(rdata[off : off + length]):
            raise wire.WireError(f"bad EDNS0 option {code}")
        off += length
    return rdata


class Request:
    """One query: parsed question, EDNS, transport and the server it arrived on."""

    __slots__ = (
        "_msg",
        "_name",
        "_qname",
        "depth",
        "edns",
        "flags",
        "id",
        "listener",
        "local",
        "meta",
        "proto",
        "qclass",
        "qend",
        "qname_wire",
        "qtype",
        "remote",
        "wire",
        "zone",
    )

    def __init__(self, data: bytes, remote: tuple[str, int] = ("127.0.0.1", 0), proto: str = "udp",
                 local: tuple[str, int] = ("127.0.0.1", 53), listener: Listener | None = None) -> None:
        """Parse and accept a query the way miekg/dns's default accept function does.

        Raises `Rejected` for anything that is not a query to answer.
        """
        if type(data) is not bytes:
            data = bytes(data)
        if len(data) < 12:
            raise Rejected(None)
        flags = (data[2] << 8) | data[3]
        if flags & wire.QR:
            raise Rejected(None)
        if flags & OPCODE_MASK and (flags & OPCODE_MASK) >> OPCODE_SHIFT != OPCODE_NOTIFY:  # not QUERY/NOTIFY
            raise Rejected(_reject(data, wire.NOTIMP))
        # Everything after id and flags decides the parse: queries repeat, so reuse it (bounded in
        # entries and in size: only ordinary-sized queries are kept).
        key = data[4:]
        parsed = _PARSED.get(key)
        if parsed is None:
            try:
                parsed = _parse(data)
            except Rejected:
                fixed = repaired(data)  # cut short where miekg still reads it
                if fixed is None:
                    raise
                data, key = fixed, fixed[4:]
                parsed = _parse(data)
            global _parse_misses
            _parse_misses += 1
            if len(key) <= PARSE_CACHE_MAX_QUERY and (_parse_misses >= PARSE_CACHE_ADMIT
                                                      or len(_PARSED) < PARSE_CACHE_OPEN):
                _parse_misses = 0
                if len(_PARSED) >= PARSE_CACHE_SIZE:
                    _PARSED.clear()
                _PARSED[key] = parsed
        self.qname_wire, self.qtype, self.qclass, self.qend, self.edns = parsed
        qid = (data[0] << 8) | data[1]
        self.wire = data
        self.id = qid
        self.flags = flags
        self.remote = remote
        self.local = local
        self.proto = proto
        self.listener = listener
        self.zone = "."
        self.meta: dict[str, Any] | None = None
        self.depth = 0  # nesting of self-lookups (a CNAME loop through the server stops at MAX_REENTRIES)
        self._msg: DNSRecord | None = None
        self._name: str | None = None
        self._qname: str | None = None

    # -- names -------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """Lowercased fully-qualified qname, what plugins match zones against."""
        if self._name is None:
            self._name = wire.wire_name_to_text(self.qname_wire)
        return self._name

    @property
    def qname(self) -> str:
        """The qname as the client sent it (case preserved)."""
        if self._qname is None:
            self._qname = wire.wire_name_to_text(self.wire[12 : self.qend - 4])
        return self._qname

    @property
    def qlabel(self) -> DNSLabel:
        """The qname as a dnslib label (case preserved, any bytes): use it as the owner of answers."""
        labels, _ = wire.read_name(self.wire, 12)
        return DNSLabel(labels)

    @property
    def question(self) -> bytes:
        """The question section exactly as sent."""
        return self.wire[12 : self.qend]

    @property
    def msg(self) -> DNSRecord:
        """The full dnslib parse, done on first use.

        dnslib refuses some messages miekg/dns accepts (labels that are not UTF-8): that becomes a
        SERVFAIL with an error for `errors` to log, never a panic.
        """
        if self._msg is None:
            try:
                self._msg = DNSRecord.parse(self.wire)
            except Exception as e:
                raise PluginError(wire.SERVFAIL, f"cannot parse query: {e}") from None
        return self._msg

    # -- EDNS and size -------------------------------------------------------------------------
    @property
    def do(self) -> bool:
        return self.edns is not None and self.edns.do

    @property
    def cd(self) -> bool:
        return bool(self.flags & wire.CD)

    @property
    def rd(self) -> bool:
        return bool(self.flags & wire.RD)

    def size(self) -> int:
        """Largest reply the client takes: 65535 over TCP, else the EDNS size with a floor of 512."""
        if self.proto != "udp":
            return 65535
        if self.edns is None or self.edns.udp_size < 512:
            return 512
        return self.edns.udp_size

    @property
    def family(self) -> int:
        return 2 if ":" in self.remote[0] else 1

    # -- building replies -------------------------------------------------------------------
    def reply_header(self, rcode: int = 0, an: int = 0, ns: int = 0, ar: int = 0, aa: bool = False) -> bytes:
        """Header of a reply to this query: id, opcode, RD and CD copied (miekg SetReply)."""
        flags = wire.QR | (self.flags & (OPCODE_MASK | wire.RD | wire.CD))
        if aa:
            flags |= wire.AA
        return wire.make_reply_header(self.id, flags, rcode, 1, an, ns, ar)

    def empty_reply(self, rcode: int) -> bytes:
        """Question only, with the rcode (the server's own SERVFAIL/REFUSED/... replies)."""
        return self.reply_header(rcode) + self.question

    def reply_record(self) -> DNSRecord:
        """A dnslib reply skeleton (SetReply semantics) for plugins that build with dnslib.

        Built from the wire question, so it works for any name the server accepted.
        """
        hdr = DNSHeader(id=self.id, bitmap=(self.flags & (OPCODE_MASK | wire.RD | wire.CD)) | wire.QR)
        return DNSRecord(header=hdr, q=DNSQuestion(self.qlabel, self.qtype, self.qclass))

    def with_flags(self, flags: int, proto: str | None = None) -> Request:
        """The same query with other header flags (and transport): the question is not parsed again."""
        r = Request.__new__(Request)
        # One attribute a line: tuple assignments of five build a tuple (this runs per cache miss).
        r.wire = _ID_FLAGS.pack(self.id, flags) + self.wire[4:]
        r.flags = flags
        r.id = self.id
        r.qname_wire = self.qname_wire
        r.qtype = self.qtype
        r.qclass = self.qclass
        r.qend = self.qend
        r.edns = self.edns
        r.remote = self.remote
        r.local = self.local
        r.listener = self.listener
        r.proto = self.proto if proto is None else proto
        r.zone = self.zone
        r.meta = self.meta
        r.depth = self.depth
        r._msg = None
        r._name = self._name
        r._qname = self._qname
        return r

    def copy_with(self, qname: str | None = None, qtype: int | None = None, qclass: int | None = None,
                  flags: int | None = None, wire_qname: bytes | None = None) -> Request:
        """A new request with another question (rewrite, autopath, self-lookups). `wire_qname`: the new
        qname already in uncompressed wire form (a self-lookup's target the caller has as wire)."""
        if wire_qname is not None:
            qwire = wire_qname
        else:
            qwire = wire.text_to_wire(qname) if qname is not None else self.wire[12 : self.qend - 4]
        qt = self.qtype if qtype is None else qtype
        qc = self.qclass if qclass is None else qclass
        data = (
            self.wire[:2]
            + (self.flags if flags is None else flags).to_bytes(2, "big")
            + self.wire[4:12]
            + qwire
            + _ID_FLAGS.pack(qt, qc)
            + self.wire[self.qend :]
        )
        if flags is None and type(qwire) is bytes and _one_name(qwire):
            # Only the question changed, to one plain name: what `Request(data)` would parse is known
            # (the header and everything after the question are this accepted request's), so no parse.
            r = _new_request(Request)
            r.wire = data
            r.id = self.id
            r.flags = self.flags
            r.qname_wire = qwire.lower()
            r.qtype = qt
            r.qclass = qc
            r.qend = 16 + len(qwire)
            r.edns = self.edns
            r.remote = self.remote
            r.local = self.local
            r.proto = self.proto
            r.listener = self.listener
            r._msg = None
            r._name = None
            r._qname = None
        else:
            r = Request(data, self.remote, self.proto, self.local, self.listener)
        r.zone = self.zone
        r.meta = self.meta
        r.depth = self.depth
        return r

    def __repr__(self) -> str:
        return f"<Request {self.id} {self.name} {self.qtype} {self.proto} {self.remote}>"


_new_request = object.__new__


def _one_name(qwire: bytes) -> bool:
    """`qwire` is exactly one uncompressed name that `wire.parse_question` accepts (labels of at most 63
    octets, at most 255 in all, ending with the root label at its last byte)."""
    n = len(qwire)
    if n > 255:
        return False
    off = 0
    while off < n:
        length = qwire[off]
        if length == 0:
            return off + 1 == n
        if length > 63:
            return False
        off += 1 + length
    return False


def _reject(data: bytes, rcode: int, question: bytes = b"") -> bytes:
    """miekg's reject reply: the request header with QR, Z cleared, the rcode, no sections."""
    qid, flags = struct.unpack_from(">HH", data)
    flags = (flags | wire.QR) & ~wire.Z & 0xFFF0 | rcode
    return struct.pack(">HHHHHH", qid, flags, 1 if question else 0, 0, 0, 0) + question


def _find_opt(data: bytes, off: int, an: int, ns: int, ar: int) -> Edns | None:
    """The OPT among the records after the question, read as miekg does: an OPT may have any owner, its
    options and a TSIG's rdata must unpack."""
    for _ in range(an + ns):
        _, _, off = wire.skip_rr(data, off)
    found = None
    for _ in range(ar):
        fixed = wire.skip_name(data, off)
        rtype, _, off = wire.skip_rr(data, off)
        if rtype == wire.TYPE_OPT and found is None:
            _t, size, _ext, version, flags, rdlen = _OPT_FIXED.unpack_from(data, fixed)
            found = Edns(size, version, flags, _checked_options(data[fixed + 10 : fixed + 10 + rdlen]))
        elif rtype == TYPE_TSIG:
            _check_tsig(data, fixed + 10, off)
    return found


TYPE_TSIG = 250


def _check_tsig(data: bytes, off: int, end: int) -> None:
    """miekg's TSIG unpack: algorithm name, time (48 bits), fudge, MAC, original id, error, other data,
    ending exactly at the end of the rdata ("bad rdlength" otherwise)."""
    off = wire.skip_name(data, off) + 8
    if off + 2 > end:
        raise wire.WireError("overflow unpacking tsig")
    off += 2 + ((data[off] << 8) | data[off + 1]) + 4
    if off + 2 > end:
        raise wire.WireError("overflow unpacking tsig")
    off += 2 + ((data[off] << 8) | data[off + 1])
    if off != end:
        raise wire.WireError("bad rdlength")


# -- writers -----------------------------------------------------------------------------------

NOT_WRITTEN = frozenset((wire.SERVFAIL, wire.REFUSED, wire.FORMERR, wire.NOTIMP))


def client_write(rcode: int) -> bool:
    """True when a handler returning `rcode` has written the reply itself (CoreDNS ClientWrite)."""
    return rcode not in NOT_WRITTEN


class ResponseWriter:
    """Where a handler writes its reply. Wrapping writers subclass `WriterWrapper`.

    `done(rcode, error)` completes a query whose handler returned PENDING (pycoredns.handler): it is
    called once, after the reply (if any) was written, with the rcode the handler would have
    returned, or with the exception it would have raised. Wrappers pass it inward; the server's
    writers then do what the server does with a returned rcode (write a "not written" rcode, report
    a panic).

    `observable`: True for the server's own writers (`pycoredns.server.ClientWriter`), where nothing
    between the handler and the client changes replies or completions: an `ObserverHandler` then keeps
    no writer of its own; the writer keeps the reply written (`reply`, bytes) and runs the observers
    registered with `watch` from its `done`.
    """

    __slots__ = ("written",)
    observable: ClassVar[bool] = False

    def __init__(self) -> None:
        self.written = False

    def write(self, reply: Reply) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def done(self, rcode: int, error: BaseException | None = None) -> None:
        """The query is complete (see the class docstring). The default does nothing."""


class WriterWrapper(ResponseWriter):
    """Intercept a reply on its way out (log, metrics, cache, loadbalance, rewrite...)."""

    __slots__ = ("inner",)

    def __init__(self, inner: ResponseWriter) -> None:
        self.written = False  # ResponseWriter's state, set directly (wrappers are made per query)
        self.inner = inner

    def write(self, reply: Reply) -> None:
        self.written = True
        self.inner.write(reply)

    def done(self, rcode: int, error: BaseException | None = None) -> None:
        self.inner.done(rcode, error)


class Recorder(ResponseWriter):
    """Keeps the reply instead of sending it: self-lookups, autopath, cache refreshes.

    `on_done`, when set, is called once with the recorder when the query completes through `done`.
    """

    __slots__ = ("error", "on_done", "rcode", "reply")

    def __init__(self, on_done: Callable[[Recorder], None] | None = None) -> None:
        super().__init__()
        self.reply: Reply | None = None
        self.rcode: int | None = None
        self.error: BaseException | None = None
        self.on_done = on_done

    def write(self, reply: Reply) -> None:
        self.written = True
        self.reply = reply

    def done(self, rcode: int, error: BaseException | None = None) -> None:
        if self.rcode is not None:
            return
        self.rcode, self.error = rcode, error
        if self.on_done is not None:
            self.on_done(self)
