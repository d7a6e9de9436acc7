"""Listeners: receive queries over UDP and TCP, route them to a server block's chain, scrub replies.

Routing follows CoreDNS's `ServeDNS` (§1.9 of the reference): accept checks, class and EDNS version
checks, longest-suffix zone match (DS to the parent side), root fallback, REFUSED otherwise; a
chain's "not written" rcode is written by the server.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio
from dnslib import DNSBuffer, DNSRecord

from . import log, metrics, mmsg, reuseport, wire
from .exceptions import PluginError
from .handler import PENDING, ObserverHandler, joined, observed, run_slow
from .layout import recent_opt
from .request import Recorder, Rejected, Request, ResponseWriter, client_write
from .timers import Timer, call_at, call_later
from .timers import now as _now
from .truncation import truncate as wire_truncate
from .wire import TYPE_DS, Reply

if TYPE_CHECKING:
    from .block import BlockConfig

_SOCKADDRS = mmsg.SOCKADDRS
_new = object.__new__
_OPT_CLASS_TTL = struct.Struct(">HI")
_LEN = struct.Struct(">H")
DRAIN_BATCH = 64
TCP_DRAIN_BATCH = 16  # chunks a TCP connection reads in a row before it lets other tasks run
_INF = float("inf")
READ_TIMEOUT = 3.0
IDLE_TIMEOUT = 10.0
WRITE_TIMEOUT = 5.0
HELD_TIMEOUT = 30.0  # a closing connection waits this long at most for PENDING queries
MAX_TCP_CONNECTIONS = 1000
RCVBUF = 4 * 1024 * 1024
ROUTE_CACHE_SIZE = 16384  # routing results kept per listener (qnames repeat; cleared when full; ~200 B each)
MAX_REENTRIES = 10  # CoreDNS's maxreentries: nested self-lookups beyond this get SERVFAIL


# -- scrub -------------------------------------------------------------------------------------


def scrub(req: Request, reply: Reply) -> bytes:
    """CoreDNS's ScrubWriter: mirror/normalise the OPT, then truncate to what the client takes."""
    data = reply if isinstance(reply, bytes) else bytes(reply.pack())
    edns = req.edns
    if edns is not None:
        if data[10] == 0 and data[11] == 0:
            data = data[:10] + b"\x00\x01" + data[12:] + edns.mirrored()
        else:
            data = _normalize_opt(req, data)
    n = len(data)
    if n > 512 and n > req.size():  # size() is never below 512: most replies need no call
        data = truncate(data, req.size())
    return data


def _normalize_opt(req: Request, data: bytes) -> bytes:
    opt = recent_opt(data)  # a reply loadbalance just laid out needs no second walk
    if opt is None:
        try:
            _qend, _ttls, opt = wire.rr_layout(data)
        except wire.WireError:
            return data
    edns = req.edns
    assert edns is not None
    if opt < 0:
        arcount = ((data[10] << 8) | data[11]) + 1
        return data[:10] + arcount.to_bytes(2, "big") + data[12:] + edns.mirrored()
    buf = bytearray(data)
    _cls, ttl = _OPT_CLASS_TTL.unpack_from(buf, opt + 3)
    ttl &= 0xFF00
    if edns.do:
        ttl |= 0x8000
    buf[opt] = 0
    _OPT_CLASS_TTL.pack_into(buf, opt + 3, edns.udp_size, ttl)
    return bytes(buf)


def _packed_len(rr: Any) -> int:
    """Wire length of one RR (dnslib's RR.pack needs a buffer, unlike DNSRecord.pack)."""
    buf = DNSBuffer()
    rr.pack(buf)
    return len(buf.data)


def truncate(data: bytes, size: int) -> bytes:
    """miekg's Msg.Truncate: keep as many whole records as fit, TC when any was dropped.

    On the wire (`pycoredns.truncation`); a layout it cannot cut safely goes through dnslib.
    """
    cut = wire_truncate(data, size)
    if cut is not None:
        return cut
    size = max(size, 512)
    rec = DNSRecord.parse(data)
    opt = [r for r in rec.ar if r.rtype == wire.TYPE_OPT]
    rec.ar = [r for r in rec.ar if r.rtype != wire.TYPE_OPT]
    budget = size - sum(_packed_len(r) for r in opt) if opt else size
    sections = [rec.rr, rec.auth, rec.ar]
    full = [list(s) for s in sections]
    for s in sections:
        s.clear()
    dropped = False
    for i, records in enumerate(full):
        lo, hi = 0, len(records)
        while lo < hi:  # largest prefix that fits
            mid = (lo + hi + 1) // 2
            sections[i][:] = records[:mid]
            if len(rec.pack()) <= budget:
                lo = mid
            else:
                hi = mid - 1
        sections[i][:] = records[:lo]
        if lo < len(records):
            dropped = True
            for rest in sections[i + 1 :]:
                rest.clear()
            break
    if dropped:
        rec.header.tc = 1
    rec.ar.extend(opt)
    return bytes(rec.pack())


# -- writers -----------------------------------------------------------------------------------


class ClientWriter(ResponseWriter):
    """The server's end of the writer chain: the reply goes to the client (scrubbed).

    `done` (a PENDING query completing) does what `dispatch` does with a returned rcode: write a
    "not written" rcode, report a panic; and releases the query's hold on its listener (reload drain).

    Observable (`ResponseWriter.observable`): the reply written is kept as bytes before the scrub
    (`reply`), and the observers registered with `watch` run first in `done`. `held` is False while
    the chain's fast path runs: a `done` then (a handler that completed before returning PENDING) is kept
    as (rcode, error) and finished by `hold`, once the observers above that handler have registered.
    True: held by the listener (PENDING); None: completed; UNHELD: served by a task (`done` acts at once).
    """

    __slots__ = ("held", "hooks", "reply", "req")
    observable = True
    req: Request
    held: Any  # False, True, None, UNHELD, or the (rcode, error) of a completion waiting for `hold`
    hooks: list[tuple[Any, Request, Any]] | None
    reply: bytes | None

    def watch(self, handler: ObserverHandler, req: Request, started: Any) -> None:
        """`handler.observe(req, self, rcode, error, started)` when the query completes (`done`)."""
        hooks = self.hooks
        if hooks is None:
            self.hooks = [(handler, req, started)]
        else:
            hooks.append((handler, req, started))

    def hold(self) -> None:
        """The chain returned PENDING: count the query in flight until `done` (which came already, if
        the chain completed it before returning: it is finished now)."""
        outcome = self.held
        self.held = True
        lst: Listener | None = self.req.listener  # type: ignore[assignment]  # (no typing.cast call per query)
        if lst is not None:
            lst.inflight += 1
        if outcome is not False:
            self.done(*outcome)

    def done(self, rcode: int, error: BaseException | None = None) -> None:
        held = self.held
        if held is not True and held is not UNHELD:
            if held is False:  # inside the chain's fast path: `hold` finishes it
                self.held = (rcode, error)
            return  # completed already, or waiting for `hold`
        self.held = None
        hooks = self.hooks
        if hooks is not None:
            self.hooks = None
            rcode, error = observed(hooks, self, rcode, error)
        req = self.req
        lst: Listener | None = req.listener  # type: ignore[assignment]
        if error is not None:
            if isinstance(error, PluginError):
                rcode = error.rcode
            elif lst is not None:
                rcode = lst._panic(error)  # never re-raised here: a callback has no caller to crash
            else:
                rcode = wire.SERVFAIL
        if not self.written and not client_write(rcode):
            self.write(req.empty_reply(rcode))
        if held is True and lst is not None:
            lst.inflight -= 1


UNHELD: Any = object()  # ClientWriter.held of a query served by a task: `done` completes at once


def _kept(w: ClientWriter, reply: Reply) -> bytes | None:
    """`write`'s bytes for the reply, kept for observers (`w.reply`); None once a reply was written:
    the client gets one, observers see them all (`joined`)."""
    data = reply if type(reply) is bytes else wire.to_bytes(reply)
    if w.written:
        w.reply = joined(w.reply, data)
        return None
    w.written = True
    w.reply = data
    return data


class UDPWriter(ClientWriter):
    """Inside a drain iteration (`mmsg.DEFER.active`) the reply joins the socket's batch, sent by
    one sendmmsg when the iteration ends; otherwise it is sent at once. Made by `UDPTransport.writer`."""

    __slots__ = ("addr", "batch", "sock")
    sock: socket.socket
    addr: tuple[Any, ...]
    batch: mmsg.SendBatch | None

    def write(self, reply: Reply) -> None:
        if self.written:
            _kept(self, reply)
            return
        data = reply if type(reply) is bytes else wire.to_bytes(reply)
        self.written = True
        self.reply = data
        req = self.req
        if req.edns is not None or len(data) > 512:  # else the scrub has nothing to do: no call
            data = scrub(req, data)
        if self.batch is not None and mmsg.DEFER.active:
            try:
                name = _SOCKADDRS.get(self.addr)  # mmsg.sockaddr's memo, read here: one call less per reply
                self.batch.add(data, None, name if name is not None else mmsg.sockaddr(self.addr))
                return
            except (ValueError, OSError):
                pass  # not an address sockaddr() encodes: sendto says what it makes of it
        try:
            self.sock.sendto(data, self.addr)
        except OSError:
            pass  # full send buffer or a vanished client: UDP drops it, as the kernel would


class TCPWriter(ClientWriter):
    """A reply framed on its connection (`TCPConnection.send`). Made by `TCPConnection.writer`."""

    __slots__ = ("conn",)
    conn: TCPConnection

    def write(self, reply: Reply) -> None:
        data = _kept(self, reply)
        if data is not None:
            self.conn.send(scrub(self.req, data))

    def write_more(self, reply: Reply) -> None:
        """A further message on this connection after `write` (a zone transfer sends several)."""
        self.conn.send(scrub(self.req, reply))

    def hold(self) -> None:
        self.conn.held += 1
        super().hold()

    def done(self, rcode: int, error: BaseException | None = None) -> None:
        held = self.held
        super().done(rcode, error)
        if held is not True:
            return  # not held by the listener: nothing to count down (or `hold` finishes it)
        conn = self.conn  # the connection's count of its own queries (it waits for them before closing)
        conn.held -= 1
        if conn.held == 0 and conn.all_released is not None:
            conn.all_released.set()


class UDPTransport:
    """What `dispatch` needs from a UDP socket, made once per socket (no closures per datagram)."""

    __slots__ = ("batch", "sock", "spawn")
    proto = "udp"

    def __init__(self, sock: socket.socket, spawn: Callable[..., None]) -> None:
        self.sock = sock
        self.spawn = spawn
        # replies written inside a drain iteration (this socket's or an upstream socket's) go out together
        batched = mmsg.AVAILABLE and isinstance(sock, socket.socket) and sock.family in (socket.AF_INET,
                                                                                         socket.AF_INET6)
        self.batch = mmsg.SendBatch(sock, named=True) if batched else None

    def writer(self, req: Request, addr: tuple[Any, ...]) -> UDPWriter:
        """A query's writer: its slots set here, one Python frame and no class call (this runs per query)."""
        w = _new(UDPWriter)
        w.written = False
        w.held = False
        w.hooks = None
        w.reply = None
        w.sock = self.sock
        w.addr = addr
        w.req = req
        w.batch = self.batch
        return w

    def send_raw(self, data: bytes, addr: tuple[Any, ...]) -> None:
        try:
            self.sock.sendto(data, addr)
        except OSError:
            pass


# -- the listener -------------------------------------------------------------------------------


class _Resolved(Recorder):
    """`Listener.resolve_then`'s recorder: when the query completes, `then` gets the reply, or the
    empty reply of an rcode nothing was written for (one object per self-lookup, no closure)."""

    __slots__ = ("listener", "req", "then")

    def __init__(self, listener: Listener, req: Request, then: Callable[[Reply | None], object]) -> None:
        self.written = False  # Recorder's state, set directly (one per self-lookup)
        self.reply: Reply | None = None
        self.rcode: int | None = None
        self.error: BaseException | None = None
        self.on_done = None
        self.listener = listener
        self.req = req
        self.then = then

    def done(self, rcode: int, error: BaseException | None = None) -> None:
        if self.rcode is not None:
            return
        self.rcode, self.error = rcode, error
        if error is not None:
            rcode = error.rcode if isinstance(error, PluginError) else self.listener._panic(error)
        reply = self.reply
        self.then(self.req.empty_reply(rcode) if reply is None and not client_write(rcode) else reply)


class Listener:
    """One (transport, address, port): its zones and the blocks that serve them."""

    def __init__(self, transport: str, host: str, port: int) -> None:
        self.transport = transport
        self.host = host
        self.port = port
        self.zones: dict[bytes, list[BlockConfig]] = {}
        self.zone_names: list[tuple[str, BlockConfig]] = []
        self.class_chaos = False
        self.has_views = False  # a block with `view`: routing depends on the client, never memoised
        self.ssl_context = None  # tls:// listeners: the block's `tls` certificate (plain TCP without one)
        self.debug = False
        self.nursery: trio.Nursery | None = None
        self.udp_sock: socket.socket | None = None
        self.udp_batch: mmsg.SendBatch | None = None  # the replies batched by serve_udp (tests read it)
        self.tcp_sock: socket.socket | None = None
        self.tcp_limit = trio.CapacityLimiter(MAX_TCP_CONNECTIONS)
        self.tcp_conns: set[TCPConnection] = set()
        self.tcp_retiring = False
        self.inflight = 0
        self._label = ""
        # routing results by qname wire: DS queries apart (their zone is the parent side's)
        self._routes: dict[bytes, tuple[BlockConfig, str]] = {}
        self._ds_routes: dict[bytes, tuple[BlockConfig, str]] = {}
        self._sole: BlockConfig | None = None  # the one block when it serves only the root zone (`.:53`)
        self._local = (host, port)  # Request.local of every query (made once, not per query)
        # TCP timeouts and queries per connection; the `timeouts` plugin sets them per block
        self.read_timeout = READ_TIMEOUT
        self.write_timeout = WRITE_TIMEOUT
        self.idle_timeout = IDLE_TIMEOUT
        self.max_tcp_queries = -1

    # Metric label and banner address.
    @property
    def label(self) -> str:
        if not self._label:
            host = f"[{self.host}]" if ":" in self.host else self.host
            self._label = f"{self.transport}://{host}:{self.port}"
        return self._label

    @property
    def socket_key(self) -> tuple[str, int]:
        """Its sockets' key in the process's pool (`socket_key`)."""
        return socket_key(self.transport, self.host, self.port)

    @property
    def bound_port(self) -> int:
        sock = self.udp_sock or self.tcp_sock
        return sock.getsockname()[1] if sock is not None else self.port

    def add_zone(self, zone: str, block: BlockConfig) -> None:
        key = wire.text_to_wire(zone).lower()
        self.zones.setdefault(key, []).append(block)
        self.zone_names.append((zone, block))
        if {"chaos", "forward", "proxy"} & block.directive_names:
            self.class_chaos = True
        if block.debug:
            self.debug = True
        if "view" in block.extra:
            self.has_views = True
        if self.transport == "tls" and "tls" in block.extra:
            self.ssl_context = block.extra["tls"]
        for name in ("read_timeout", "write_timeout", "idle_timeout", "max_tcp_queries"):
            if name in block.extra:  # the last block with a value wins (CoreDNS's server group)
                setattr(self, name, block.extra[name])
        only = self.zones.get(b"\x00")
        self._sole = only[0] if len(self.zones) == 1 and only and len(only) == 1 and not self.has_views else None

    # -- routing --------------------------------------------------------------------------------
    def route(self, req: Request) -> BlockConfig | None:
        """The block whose chain serves `req`; None means REFUSED. Memoised per (qname, DS or not),
        except on a listener whose one block serves the root zone: every query goes there (no memo
        entry per never-seen name, as under 300,000 distinct names)."""
        sole = self._sole
        if sole is not None:
            req.zone = "."
            return sole if sole.chain is not None else None
        if self.has_views:
            return self._route(req)
        routes = self._ds_routes if req.qtype == TYPE_DS else self._routes  # keyed by bytes: no tuple per query
        hit = routes.get(req.qname_wire)
        if hit is not None:
            req.zone = hit[1]
            return hit[0]
        block = self._route(req)
        if block is not None:
            if len(routes) >= ROUTE_CACHE_SIZE:
                routes.clear()
            routes[req.qname_wire] = (block, req.zone)
        return block

    def _route(self, req: Request) -> BlockConfig | None:
        qn = req.qname_wire
        zones = self.zones
        ds: BlockConfig | None = None
        off = 0
        while True:
            blocks = zones.get(qn[off:] if off else qn)
            if blocks:
                for b in blocks:
                    if b.chain is None:
                        return None
                    if self.has_views and not _passes_view(b, req):
                        continue  # blocks sharing a zone are tried in order (CoreDNS's filter funcs)
                    if req.qtype != TYPE_DS:
                        req.zone = b.zone_of(qn[off:])
                        return b
                    ds = b
                    req.zone = b.zone_of(qn[off:])
            length = qn[off]
            if length == 0:
                break
            off += 1 + length
            if qn[off] == 0:
                break  # the root is only a last resort
        if ds is not None:
            return ds
        for b in zones.get(b"\x00", ()):
            if b.chain is not None and (not self.has_views or _passes_view(b, req)):
                req.zone = "."
                return b
        return None

    # -- one query -----------------------------------------------------------------------------
    def dispatch(self, data: bytes, remote: tuple[Any, ...], transport: UDPTransport | TCPConnection) -> None:
        """Handle one query synchronously if its chain can, else start a task for it.

        `transport` makes the writer, sends the server's raw replies and spawns the slow path.
        """
        client = remote  # what plugins see; replies go to `remote` as the socket gave it
        ip = remote[0]
        if ":" in ip or len(remote) != 2:  # an IPv4 client on an IPv4 socket (the usual case) skips this
            if ip.startswith("::ffff:") and "." in ip:
                client = (ip[7:], remote[1])  # IPv4 client on a dual-stack socket
            elif len(remote) != 2:
                client = (ip, remote[1])  # IPv6: without flowinfo and scope id
        try:
            req = _new(Request)  # Request(...) without the class call: __init__ as a method
            req.__init__(data, client, transport.proto, self._local, self)  # type: ignore[misc]  # exactly Request
        except Rejected as rej:
            if rej.reply is not None:
                transport.send_raw(rej.reply, remote)
            return
        if req.qclass != 1 and not self.class_chaos:
            self.server_reply(req, transport.writer(req, remote), wire.REFUSED, dropped=True)
            return
        if req.edns is not None and req.edns.version != 0:
            transport.send_raw(_badvers(req), remote)
            return
        block = self.route(req)
        if block is None:
            self.server_reply(req, transport.writer(req, remote), wire.REFUSED, dropped=True)
            return
        w = transport.writer(req, remote)
        try:
            rc = block.chain.serve_fast(req, w)  # type: ignore[union-attr]  # None: caught as a panic
        except Exception as exc:
            rc = self._rcode_for(exc)
        if rc is None:
            transport.spawn(self._serve_async, block, req, w)
            return
        if rc is PENDING:
            if w.held is not None:  # not completed during serve_fast already
                w.hold()
            return
        if not w.written and not client_write(rc):  # written: the usual case, no call
            self.server_reply(req, w, rc)

    async def _serve_async(self, block: BlockConfig, req: Request, w: ResponseWriter) -> None:
        if isinstance(w, ClientWriter):
            w.held = UNHELD  # not in the fast path any more: a `done` completes at once
        self.inflight += 1
        try:
            rc = await block.chain.serve_dns(req, w)  # type: ignore[union-attr]  # None: caught as a panic
        except Exception as exc:
            rc = self._rcode_for(exc)
        finally:
            self.inflight -= 1
        if not client_write(rc) and not w.written:
            self.server_reply(req, w, rc)

    def _rcode_for(self, exc: Exception) -> int:
        """The rcode a chain that raised means: a PluginError's own, SERVFAIL for a panic (re-raised
        under `debug`, which lets panics crash the server like CoreDNS)."""
        if isinstance(exc, PluginError):
            return exc.rcode
        if self.debug:
            raise exc
        return self._panic(exc)

    def _panic(self, exc: BaseException) -> int:
        metrics.panics_total.inc()
        log.core.error(f'Recovered from panic in server: "{self.label}" {exc!r}')
        return wire.SERVFAIL

    def server_reply(self, req: Request, w: ResponseWriter, rcode: int, dropped: bool = False) -> None:
        """The server's own reply: SetRcode(req) + the mirrored OPT (errorFunc/errorAndMetricsFunc)."""
        reply = req.empty_reply(rcode)
        w.write(reply)
        if dropped:
            metrics.requests_total.inc(self.label, "dropped", "", req.proto, str(req.family),
                                       metrics.MONITORED_TYPES.get(req.qtype, "other"))
            metrics.responses_total.inc(self.label, "dropped", "", wire.RCODE_NAMES.get(rcode, str(rcode)), "")

    # -- in-process resolution ------------------------------------------------------------------
    def resolve_then(self, req: Request, then: Callable[[Reply | None], object]) -> None:
        """Run a query through this listener's routing and chain into a Recorder and call `then(reply)`
        once it completes: at once when the chain answers synchronously, else from the continuation
        (an upstream reply, a deadline) or the task of a chain that awaits. Self-lookups
        (`pycoredns.plugin.self_lookup`); `req.depth` bounds their nesting."""
        if req.depth >= MAX_REENTRIES:  # a CNAME loop through template/rewrite/kubernetes lookups
            then(req.empty_reply(wire.SERVFAIL))
            return
        block = self.route(req)
        if block is None:
            then(req.empty_reply(wire.REFUSED))
            return
        req.depth += 1
        rec = _Resolved(self, req, then)
        chain = block.chain
        try:
            rc = chain.serve_fast(req, rec)  # type: ignore[union-attr]  # None: caught as a panic
        except Exception as exc:
            rc = self._rcode_for(exc)
        if rc is None:
            run_slow(chain, req, rec)  # type: ignore[arg-type]
        elif rc is not PENDING:
            rec.done(rc)

    async def resolve(self, req: Request) -> Reply | None:
        """`resolve_then` for callers that await (embedding, `serve_dns` plugins)."""
        got: list[Reply | None] = []
        event = trio.Event()

        def then(reply: Reply | None) -> None:
            got.append(reply)
            event.set()

        self.resolve_then(req, then)
        await event.wait()
        return got[0]

    # -- UDP -----------------------------------------------------------------------------------
    def udp_transport(self, sock: socket.socket) -> UDPTransport:
        assert self.nursery is not None
        return UDPTransport(sock, self.nursery.start_soon)

    async def serve_udp(self, sock: socket.socket) -> None:
        """Drain loop: recvfrom until EAGAIN, wait_readable only then, a checkpoint every 64.

        The sends its queries make (replies, forward's upstream queries) are batched (`mmsg`) and
        flushed before each await."""
        recv = sock.recvfrom
        dispatch = self.dispatch
        transport = self.udp_transport(sock)
        self.udp_batch = transport.batch
        defer = mmsg.DEFER
        n = 0
        try:
            while True:
                try:
                    data, addr = recv(65535)
                except BlockingIOError:
                    if defer.active:
                        defer.flush()
                    await trio.lowlevel.wait_readable(sock)
                    n = 0
                    continue
                except OSError as e:
                    if e.errno in (errno.EBADF, errno.ENOTSOCK):
                        return
                    continue  # ICMP errors reported on the socket; keep serving
                defer.active = True
                dispatch(data, addr, transport)
                n += 1
                if n >= DRAIN_BATCH:
                    n = 0
                    defer.flush()
                    await trio.lowlevel.checkpoint()
        finally:
            defer.flush()

    # -- TCP -----------------------------------------------------------------------------------
    async def serve_tcp(self, sock: socket.socket) -> None:
        tsock = trio.socket.from_stdlib_socket(sock)
        listener = trio.SocketListener(tsock)
        assert self.nursery is not None
        while True:
            await self.tcp_limit.acquire_on_behalf_of(_token := object())
            try:
                stream = await listener.accept()
            except BaseException:
                self.tcp_limit.release_on_behalf_of(_token)
                raise
            self.nursery.start_soon(self._tcp_conn, stream, _token)

    async def _tcp_conn(self, stream: trio.SocketStream, token: object) -> None:
        if self.ssl_context is not None:  # DNS over TLS: the same chain, over a TLS stream
            stream = trio.SSLStream(stream, self.ssl_context, server_side=True)
        conn = TCPConnection(self, stream)
        self.tcp_conns.add(conn)
        if self.tcp_retiring:
            conn.retire()
        try:
            await conn.run()
        finally:
            self.tcp_conns.discard(conn)
            self.tcp_limit.release_on_behalf_of(token)

    def retire_tcp(self) -> None:
        """Reload: connections stop reading once idle; queries already read are answered, then closed."""
        self.tcp_retiring = True
        for conn in self.tcp_conns:
            conn.retire()


class TCPConnection:
    """One client connection: length-prefixed queries, answered as they complete.

    Plain TCP is read with raw non-blocking `os.read` on the descriptor, waiting (`wait_readable`) only
    when nothing is there: a chunk that is ready costs no pass through trio's scheduler, which
    `SocketStream.receive_some` always makes. DNS over TLS reads through its `SSLStream`. Both wait
    inside one cancel scope per connection: the read and idle timeouts are a deadline (`_until`) set
    before each wait and checked by one lazily re-armed timer (`_expire`), not a scope per chunk.
    """

    def __init__(self, listener: Listener, stream: trio.SocketStream) -> None:
        self.listener = listener
        self.stream = stream
        self.send_q, self.recv_q = trio.open_memory_channel[bytes](1000)
        try:
            sock = stream.socket if isinstance(stream, trio.SocketStream) else stream.transport_stream.socket
            peer = sock.getpeername()
        except OSError:
            peer = ("", 0)
        self.remote = (peer[0], peer[1])
        self.closed = False
        self.queries: trio.Nursery | None = None
        self.retiring = False
        self._read_scope: trio.CancelScope | None = None
        self._idle = False  # at least one query read and nothing partial in the buffer
        self._timeout = listener.read_timeout  # for the first query; then the idle timeout
        self._budget = listener.max_tcp_queries  # queries left before closing; -1: unlimited
        self._until = _INF  # the deadline of the wait in progress (inf: not waiting)
        self._timer: Timer | None = None  # fires at or before `_until`; re-armed lazily
        self.held = 0  # queries completing by continuation (PENDING), not in `queries`
        self.all_released: trio.Event | None = None
        # Plain TCP: replies are written straight to the (non-blocking) socket; only what the kernel
        # does not take at once goes through the writer task (TLS always does).
        self._fd = stream.socket.fileno() if isinstance(stream, trio.SocketStream) else -1
        self.queued = 0  # frames handed to the writer task and not yet sent
        # Replies written while the read loop dispatches the queries of one chunk (plain TCP): sent
        # with one write when the chunk is done, not one write (and one loopback wake-up) per reply.
        self._batch: list[bytes] | None = None

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        frame = _LEN.pack(len(data)) + data
        if self._batch is not None:  # answered while the read loop dispatches a chunk: one write for all
            self._batch.append(frame)
            return
        self._write(frame)

    def _write(self, frame: bytes) -> None:
        """Write a frame (or several) now; what the kernel does not take goes through the writer task."""
        if self._fd >= 0 and not self.queued:
            try:
                n = os.write(self._fd, frame)
            except BlockingIOError:
                n = 0
            except OSError:  # reset by the peer: the read loop ends the connection
                self.closed = True
                return
            if n == len(frame):
                return
            frame = frame[n:]
        try:
            self.send_q.send_nowait(frame)
            self.queued += 1
        except (trio.WouldBlock, trio.ClosedResourceError):
            pass

    async def _writer(self) -> None:
        async for frame in self.recv_q:
            with trio.move_on_after(self.listener.write_timeout) as cs:
                try:
                    await self.stream.send_all(frame)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    break
            self.queued -= 1
            if cs.cancelled_caught:
                break
        self.closed = True

    async def run(self) -> None:
        try:
            async with trio.open_nursery() as outer:
                outer.start_soon(self._writer)
                async with trio.open_nursery() as queries:
                    self.queries = queries
                    await self._read_loop()
                if self.held:  # queries completing by continuation: their own deadlines bound this
                    self.all_released = trio.Event()
                    with trio.move_on_after(HELD_TIMEOUT):
                        await self.all_released.wait()
                # every query of this connection has been answered
                await self.send_q.aclose()
        finally:
            self.closed = True  # no direct write to a descriptor number that may be reused
            with trio.CancelScope(shield=True):
                await self.stream.aclose()

    def retire(self) -> None:
        self.retiring = True
        if self._read_scope is not None and self._idle:
            self._read_scope.cancel()

    # -- reading ---------------------------------------------------------------------------------
    def _wait_from_now(self) -> None:
        """Before a wait for the client's next bytes: its deadline, and the timer if none is armed."""
        self._until = _now() + self._timeout
        if self._timer is None:
            self._timer = call_later(self._timeout, self._expire)

    def _expire(self) -> None:
        """The timer: a wait past its deadline ends the read loop; one still within it (the deadline
        moved since the timer was armed) re-arms the timer for that deadline; no wait: nothing to do
        until the next one arms a timer again."""
        self._timer = None
        until = self._until
        if until == _INF or self._read_scope is None:
            return
        if _now() >= until:
            self._read_scope.cancel()
        else:
            self._timer = call_at(until, self._expire)

    async def _read_loop(self) -> None:
        with trio.CancelScope() as self._read_scope:  # cancelled by `_expire` and by `retire`
            try:
                if self._fd >= 0:
                    await self._read_raw(self._fd)
                else:
                    await self._read_stream()
            finally:
                self._until = _INF
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None

    async def _read_raw(self, fd: int) -> None:
        """Plain TCP: `os.read` until EAGAIN, `wait_readable` only then, a checkpoint every few chunks."""
        rest = b""
        n = 0
        while not self.closed and not (self.retiring and self._idle):
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                self._wait_from_now()
                await trio.lowlevel.wait_readable(fd)
                self._until = _INF
                n = 0
                continue
            except OSError:  # reset by the peer
                return
            if not chunk:
                return
            off = self._frames(rest + chunk if rest else chunk)
            if off is None:
                return
            rest = off
            n += 1
            if n >= TCP_DRAIN_BATCH:  # a client that never lets the socket empty shares the loop
                n = 0
                await trio.lowlevel.checkpoint()

    async def _read_stream(self) -> None:
        """DNS over TLS: chunks from the SSLStream."""
        rest = b""
        while not self.closed and not (self.retiring and self._idle):
            self._wait_from_now()
            try:
                chunk = await self.stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                return
            self._until = _INF
            if not chunk:
                return
            data = bytes(chunk)  # a TLS stream may return a bytearray
            off = self._frames(rest + data if rest else data)
            if off is None:
                return
            rest = off

    def _frames(self, data: bytes) -> bytes | None:
        """Dispatch each whole frame of `data`, sliced once by offset (no copy of the chunk, no memmove
        per frame); returns the unfinished rest, or None once `maxtcpqueries` is reached (the queries
        read are answered, then the connection closes). Plain TCP writes their replies in one write."""
        if self._fd >= 0:
            self._batch = []
        dispatch = self.listener.dispatch
        remote = self.remote
        off, end = 0, len(data)
        try:
            while end - off >= 2:
                stop = off + 2 + ((data[off] << 8) | data[off + 1])
                if stop > end:
                    break
                msg = data[off + 2 : stop]
                off = stop
                dispatch(msg, remote, self)
                self._budget -= 1
                if self._budget == 0:
                    return None  # maxtcpqueries reached: answer what was read, then close
        finally:
            batch, self._batch = self._batch, None
            if batch and not self.closed:
                self._write(b"".join(batch))
        if off:
            self._timeout = self.listener.idle_timeout  # a query was read: the idle timeout from now on
        self._idle = off == end
        return data[off:] if off < end else b""

    # -- the transport interface of Listener.dispatch --------------------------------------------
    proto = "tcp"

    def writer(self, req: Request, addr: tuple[Any, ...]) -> ClientWriter:
        """A query's writer, its slots set here (no class call per query, as `UDPTransport.writer`)."""
        w = _new(TCPWriter)
        w.written = False
        w.held = False
        w.hooks = None
        w.reply = None
        w.conn = self
        w.req = req
        return w

    def send_raw(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.send(data)

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        assert self.queries is not None
        self.queries.start_soon(fn, *args)


def _passes_view(block: BlockConfig, req: Request) -> bool:
    """Whether the block's `view` (if any) accepts the query."""
    view = block.extra.get("view")
    return view is None or view.filter(req)


def _badvers(req: Request) -> bytes:
    """edns.Version: SetReply + an OPT (version 0, extended rcode BADVERS, size 0)."""
    hdr = req.reply_header(wire.BADVERS & 0xF, ar=1)
    opt = b"\x00" + struct.pack(">HHIH", 41, 0, (wire.BADVERS >> 4) << 24, 0)
    return hdr + req.question + opt


# -- sockets ------------------------------------------------------------------------------------


def socket_key(transport: str, host: str, port: int) -> tuple[str, int]:
    """A listener's sockets' key in the process's pool, kept across reloads: (host, configured port)
    for dns:// (a UDP and a TCP socket), ("tls://host", port) for tls:// (a TCP listener)."""
    return (host, port) if transport == "dns" else (f"{transport}://{host}", port)


def bind_udp(host: str, port: int, shared: bool | None = None) -> socket.socket:
    return _bind(socket.SOCK_DGRAM, host, port, shared)


def bind_tcp(host: str, port: int, shared: bool | None = None) -> socket.socket:
    return _bind(socket.SOCK_STREAM, host, port, shared)


def _bind(kind: int, host: str, port: int, shared: bool | None = None) -> socket.socket:
    """A non-blocking socket; the wildcard host is dual-stack where IPv6 exists.

    `shared` (the default for a configured port): SO_REUSEPORT, so other processes (a surge upgrade,
    `-workers`) serve the address beside this one. Not for an ephemeral port (`:0`, and the TCP twin
    of one): a UDP bind to port 0 with SO_REUSEPORT and SO_REUSEADDR may be given a port that another
    such socket of the same user already holds, and the two would then split its datagrams."""
    if not 0 <= port <= 65535:  # keys are not range-checked (as CoreDNS); Python would raise OverflowError
        raise OSError(f"address {port}: invalid port")
    if shared is None:
        shared = port != 0
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if not host:
        family = socket.AF_INET6 if socket.has_ipv6 and _dual_stack_ok() else socket.AF_INET
    s = socket.socket(family, kind)
    try:
        if shared:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if shared or kind == socket.SOCK_STREAM:  # TCP: never shares a listening port; skips TIME_WAIT
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if kind == socket.SOCK_DGRAM:
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            except OSError:
                pass
        if family == socket.AF_INET6 and not host:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind((host or ("::" if family == socket.AF_INET6 else "0.0.0.0"), port))
        if kind == socket.SOCK_STREAM:
            s.listen(1024)
            if shared:
                reuseport.join_group(s)  # the group's selection back to the kernel's hash
        s.setblocking(False)
    except BaseException:
        s.close()
        raise
    return s


_dual: bool | None = None


def _dual_stack_ok() -> bool:
    """Whether a wildcard IPv6 socket can also take IPv4 (false on hosts without IPv6)."""
    global _dual
    if _dual is None:
        try:
            s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            s.bind(("::", 0))
            s.close()
            _dual = True
        except OSError:
            _dual = False
    return _dual


def now() -> float:
    return time.monotonic()
