"""One upstream of `forward`: a shared UDP socket, a small pool of pipelined TCP/TLS connections, health checks.

No task waits for a reply. A query registers itself (a `Waiter`: `on_reply(data)`, `on_error(err)`)
in the pending table of a channel under a fresh random 16-bit ID, and the channel's reader task hands
each reply to the waiter its ID names; replies with an unknown ID are dropped (late, duplicated,
forged). Deadlines come from `pycoredns.timers`; the waiter's timer calls `channel.timed_out`.

UDP: one connected non-blocking socket per upstream carries every in-flight query: one send and one
recv syscall per query.

TCP/TLS: persistent connections, many queries in flight on each (RFC 7766 pipelining), replies
matched by ID in any order; a few connections per upstream, the first one with room taking the next query.
Plain TCP uses raw non-blocking sockets (a drain loop, `send` straight from the query's callback);
TLS goes through trio's SSLStream with one writer task per connection. A connection that dies fails
its queries at once (they retry elsewhere or SERVFAIL); idle ones are closed after `expire`.
"""

from __future__ import annotations

import errno
import functools
import os
import random
import socket
import ssl
import struct
from typing import TYPE_CHECKING, Protocol, cast

import trio

from pycoredns import metrics, mmsg, wire
from pycoredns.log import plugin_logger
from pycoredns.timers import Timer, call_at, now

from .validate import accept

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


class Waiter(Protocol):
    """What a channel needs from a query waiting for a reply (forward's `Exchange`)."""

    def on_reply(self, data: bytes) -> None: ...

    def on_error(self, err: UpstreamError) -> None: ...


class TimedWaiter(Waiter, Protocol):
    """A waiter on a channel with an expiry sweep (`Expiry`): its send time and read deadline."""

    sent: float
    expires: float

_LEN = struct.Struct(">H")
_LEN_ID = struct.Struct(">HH")  # a TCP frame's length prefix and the query's ID
log = plugin_logger("forward")

request_duration = metrics.REGISTRY.histogram(
    "coredns_proxy_request_duration_seconds", "Histogram of the time each request took.",
    metrics.DURATION_BUCKETS, ("proxy_name", "to", "rcode"))
healthcheck_failures = metrics.REGISTRY.counter(
    "coredns_proxy_healthcheck_failures_total", "Counter of the number of failed healthchecks.",
    ("proxy_name", "to"))
conn_cache_hits = metrics.REGISTRY.counter(
    "coredns_proxy_conn_cache_hits_total", "Counter of connection cache hits per upstream and protocol.",
    ("proxy_name", "to", "proto"))
conn_cache_misses = metrics.REGISTRY.counter(
    "coredns_proxy_conn_cache_misses_total", "Counter of connection cache misses per upstream and protocol.",
    ("proxy_name", "to", "proto"))

RCODE_TEXT = [wire.RCODE_NAMES.get(i, str(i)) for i in range(16)]  # the `rcode` label of a header's rcode

HC_TIMEOUT = 1.0  # a health probe's whole budget (CoreDNS: 1s)
DIAL_TIMEOUT = 2.0  # cap on connect + TLS handshake (bounded further by the query's deadline)
PIPELINE = 64  # queries in flight on one connection before another one is opened
POOL_MAX = 4  # connections per upstream and transport
SWEEP_INTERVAL = 10.0  # how often idle connections past `expire` are closed
UDP_RCVBUF = 4 << 20


class UpstreamError(Exception):
    """A network-level failure talking to an upstream; str() reads like Go's net errors."""


class CachedClosed(UpstreamError):
    """A pooled connection turned out to be closed by the peer: retry at once on a new one."""


async def guarded(what: str, fn: Callable[..., Awaitable[None]], *args: object,
                  on_error: Callable[[], None] | None = None) -> None:
    """Run a background task so that a bug in it is logged instead of taking the server down."""
    try:
        await fn(*args)
    except Exception as e:
        log.error(f"{what} failed: {type(e).__name__}: {e}")
        if on_error is not None:
            on_error()


# The clock of connection ages and query send times: the timers' (trio's) clock, which forward's
# deadlines and the channels' expiry sweeps use too.
_now = now


def _fmt_addr(addr: tuple) -> str:
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _os_text(e: OSError) -> str:
    """Go's syscall error wording (`connection refused`, ...)."""
    if e.errno is not None and e.errno in errno.errorcode:
        return os.strerror(e.errno).lower()
    return str(e) or type(e).__name__


def tls_error_text(e: BaseException) -> str:
    """A failed TLS handshake as Go words it where Python knows as much (`tls: failed to verify certificate: ...`)."""
    if isinstance(e, ssl.SSLCertVerificationError):
        return f"tls: failed to verify certificate: {e.verify_message or e.reason}"
    if isinstance(e, ssl.SSLError) and e.reason:
        return f"tls: {e.reason}"
    return f"tls: {e}"


def _sole_error(group: BaseExceptionGroup) -> BaseException:
    """The one error inside a nursery's exception group; the group itself when it holds several or a
    Cancelled (a connection closed under a timeout raised a group that no `except` clause matched: the
    task was logged as failed and the error text was lost)."""
    leaves: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        e = stack.pop()
        if isinstance(e, BaseExceptionGroup):
            stack.extend(e.exceptions)
        else:
            leaves.append(e)
    if len(leaves) == 1 and not isinstance(leaves[0], trio.Cancelled):
        return leaves[0]
    return group


def truncated_reply(reply: bytes) -> bytes:
    """CoreDNS's truncateResponse for a UDP reply larger than the buffer: header + question, TC=1, no records."""
    try:
        qend = wire.skip_name(reply, 12) + 4 if reply[4:6] == b"\x00\x01" else 12
    except wire.WireError:
        qend = 12
    if qend > len(reply):
        qend = 12
    qd = 1 if qend > 12 else 0
    flags = ((reply[2] << 8) | reply[3]) | wire.TC
    return struct.pack(">HHHHHH", (reply[0] << 8) | reply[1], flags, qd, 0, 0, 0) + reply[12:qend]


def check_reply(reply: bytes, udp: bool = False) -> bytes:
    """The reply as miekg's ReadMsg leaves it (`validate.accept`); UpstreamError when it is rejected."""
    if len(reply) < 12:
        raise UpstreamError("dns: overflow unpacking uint16")
    try:
        return accept(reply, udp)
    except (wire.WireError, struct.error, IndexError) as e:
        raise UpstreamError(f"dns: bad reply: {e}") from None


# -- channels --------------------------------------------------------------------------------------


_getrandbits = random.getrandbits


def _free_id(pending: dict[int, Waiter]) -> int:
    for _ in range(16):
        qid = _getrandbits(16)
        if qid not in pending:
            return qid
    raise UpstreamError("no free query id")


class Expiry:
    """Read timeouts of a channel's queries by one sweep timer, not one timer per query.

    Every query on a channel waits the same read timeout (its upstream's), so their deadlines come
    in the order they were sent, which is the order of `pending` (a dict keeps insertion order, and a
    query leaves it on its reply, error or timeout). The sweep fires at the oldest query's deadline,
    fails what is due with `timed_out`'s error and waits for the next one: a query costs no timer,
    no cancel, and no later pop of a cancelled one. The query calls `watch(expires)` after its send when
    no sweep is armed. A query whose overall budget ends before its read timeout keeps a timer of its
    own (its `expires` stays send + read timeout, so the order holds)."""

    __slots__ = ("sweep",)
    sweeps = True  # the Exchange relies on `watch` (H2Conn: False, it keeps per-query timers)
    sweep: Timer | None
    pending: dict[int, Waiter]

    def timed_out(self, qid: int, waiter: Waiter, sent: float) -> UpstreamError:  # pragma: no cover
        raise NotImplementedError

    def watch(self, expires: float) -> None:
        """Arm the sweep for a query just sent (none is armed: it is the oldest query in flight)."""
        self.sweep = call_at(expires, self._expire)

    def _expire(self) -> None:
        self.sweep = None
        t = now()
        due: list[tuple[int, TimedWaiter]] = []
        for qid, waiter in cast("dict[int, TimedWaiter]", self.pending).items():
            if waiter.expires > t:
                self.sweep = call_at(waiter.expires, self._expire)
                break
            due.append((qid, waiter))
        for qid, waiter in due:  # a failed query may resend here: it joins the end of `pending`
            if self.pending.get(qid) is waiter:
                waiter.on_error(self.timed_out(qid, waiter, waiter.sent))

    def stop_sweep(self) -> None:
        if self.sweep is not None:
            self.sweep.cancel()
            self.sweep = None


class UdpMux(Expiry):
    """The upstream's shared UDP socket: ID table + one reader task delivering replies to waiters."""

    proto = "udp"

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.sock: socket.socket | None = None
        self.pending: dict[int, Waiter] = {}
        self.sweep: Timer | None = None
        self.local = ""
        self.batch: mmsg.SendBatch | None = None  # queries sent inside a drain iteration (pycoredns.mmsg)

    def _open(self) -> socket.socket:
        nursery = self.proxy.nursery
        if nursery is None:
            raise UpstreamError("forward is not running")
        sock = socket.socket(self.proxy.family, socket.SOCK_DGRAM)
        sock.setblocking(False)
        try:  # every in-flight reply queues here: room for bursts (the kernel caps it at rmem_max)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RCVBUF)
        except OSError:
            pass
        try:
            if self.proxy.source:
                sock.bind((self.proxy.source, 0))
            sock.connect(self.proxy.addr)
        except OSError as e:
            sock.close()
            raise UpstreamError(f"dial udp {self.proxy.to}: {_os_text(e)}") from None
        self.local = _fmt_addr(sock.getsockname())
        self.sock = sock
        if mmsg.AVAILABLE:
            self.batch = mmsg.SendBatch(sock, self._send_failed)
        nursery.start_soon(functools.partial(guarded, f"udp socket to {self.proxy.to}", self._reader, sock,
                                             on_error=self.close))
        return sock

    def send(self, waiter: Waiter, data: bytes) -> int:
        """Send `data` under a fresh ID registered for `waiter`; the ID. Raises UpstreamError.

        Inside a drain iteration the query joins the socket's batch (one sendmmsg when the iteration
        ends); a send the kernel refuses then reaches the waiter through `on_error`."""
        sock = self.sock or self._open()
        pending = self.pending
        qid = _getrandbits(16)  # _free_id's first try, inlined
        if qid in pending:
            try:
                qid = _free_id(pending)
            except UpstreamError:
                raise UpstreamError(f"write udp {self.local}->{self.proxy.to}: no free query id") from None
        if mmsg.DEFER.active and self.batch is not None:
            pending[qid] = waiter
            self.batch.add(qid.to_bytes(2, "big") + data[2:], (qid, waiter))
            return qid
        try:
            sock.send(qid.to_bytes(2, "big") + data[2:])
        except BlockingIOError:
            raise UpstreamError(f"write udp {self.local}->{self.proxy.to}: i/o timeout") from None
        except OSError as e:
            raise UpstreamError(f"write udp {self.local}->{self.proxy.to}: write: {_os_text(e)}") from None
        pending[qid] = waiter
        return qid

    def _send_failed(self, tag: tuple[int, Waiter], err: int) -> None:
        """A batched query the kernel refused: the error the immediate send would have raised."""
        qid, waiter = tag
        if self.pending.get(qid) is not waiter:
            return  # failed or answered meanwhile
        del self.pending[qid]
        text = "i/o timeout" if err in (errno.EAGAIN, errno.EWOULDBLOCK) else f"write: {_os_text(OSError(err, ''))}"
        waiter.on_error(UpstreamError(f"write udp {self.local}->{self.proxy.to}: {text}"))

    def forget(self, qid: int, waiter: Waiter) -> None:
        if self.pending.get(qid) is waiter:
            del self.pending[qid]

    def timed_out(self, qid: int, waiter: Waiter, sent: float) -> UpstreamError:
        self.forget(qid, waiter)
        return UpstreamError(f"read udp {self.local}->{self.proxy.to}: i/o timeout")

    def close(self) -> None:
        sock, self.sock = self.sock, None
        self.stop_sweep()
        if self.batch is not None:
            self.batch.drop()
            self.batch = None
        if sock is not None:
            trio.lowlevel.notify_closing(sock)
            sock.close()
        self._fail_all(UpstreamError("upstream socket closed"))

    def _fail_all(self, err: UpstreamError) -> None:
        pending, self.pending = self.pending, {}
        for waiter in pending.values():
            waiter.on_error(err)

    async def _reader(self, sock: socket.socket) -> None:
        """Drain the socket; hand each reply to the waiter its ID names, drop the rest.

        What the replies send (to clients, further attempts upstream) is batched and flushed before
        each await, as in the listener's drain loop."""
        pending = self.pending
        defer = mmsg.DEFER
        n = 0
        try:
            while True:
                try:
                    data = sock.recv(65535)
                except BlockingIOError:
                    n = 0
                    if defer.active:
                        defer.flush()
                    try:
                        await trio.lowlevel.wait_readable(sock)
                    except (trio.ClosedResourceError, OSError):
                        return
                    pending = self.pending
                    continue
                except OSError as e:
                    if sock.fileno() < 0:
                        return
                    # ICMP errors (port unreachable) concern this upstream, hence every query waiting on it.
                    self._fail_all(UpstreamError(f"read udp {self.local}->{self.proxy.to}: read: {_os_text(e)}"))
                    pending = self.pending
                    continue
                if len(data) >= 2:
                    waiter = pending.pop((data[0] << 8) | data[1], None)
                    if waiter is not None:
                        defer.active = True
                        waiter.on_reply(data)
                n += 1
                if n >= 64:
                    n = 0
                    defer.flush()
                    await trio.lowlevel.checkpoint()
        finally:
            defer.flush()


class StreamConn(Expiry):
    """One persistent TCP or TLS connection to the upstream, many queries in flight on it.

    States: dialing (queries queue in `outbuf`), open, closed. The connection's task dials, then reads
    length-prefixed replies and hands each to its waiter; when it ends, for whatever reason, every
    query still pending gets an error at once.
    """

    __slots__ = ("batched", "deferred", "kind", "last_recv", "local", "outbuf", "pending", "proxy", "served",
                 "sock", "state", "stream", "used", "wake")

    def __init__(self, proxy: Proxy, kind: str) -> None:
        self.proxy = proxy
        self.kind = kind  # "tcp" or "tcp-tls"
        self.sock: socket.socket | None = None
        self.stream: trio.SSLStream | None = None
        self.local = "?"
        self.state = "dialing"
        self.pending: dict[int, Waiter] = {}
        self.outbuf = bytearray()
        # frames sent inside a drain iteration go out in one send when it ends (mmsg.DEFER, `flush`)
        self.batched = bytearray()
        self.deferred: list[tuple[int, Waiter]] | None = None  # their queries; None: nothing batched
        self.used = _now()  # made, last reply read, or a query timed out: idle expiry
        self.last_recv = 0.0  # last byte read (a stuck connection is closed by a query's timeout)
        self.served = 0  # replies read: a connection that served one is a "cached" one
        self.wake = trio.lowlevel.ParkingLot()
        self.sweep: Timer | None = None

    # -- the waiter side -----------------------------------------------------------------------
    def send(self, waiter: Waiter, data: bytes) -> int:
        if self.state == "closed":
            raise CachedClosed("cached connection was closed by peer")
        pending = self.pending
        qid = _getrandbits(16)  # _free_id's first try, inlined
        if qid in pending:
            qid = _free_id(pending)
        frame = _LEN_ID.pack(len(data), qid) + data[2:]
        pending[qid] = waiter  # `used` is not read while a query is pending: the reader sets it on replies
        if self.state == "open" and self.stream is None and not self.outbuf:
            if mmsg.DEFER.active:
                if self.deferred is None:
                    self.deferred = []
                    mmsg.DEFER.dirty.append(self)
                self.deferred.append((qid, waiter))
                self.batched += frame
                return qid
            assert self.sock is not None
            try:
                n = self.sock.send(frame)
            except BlockingIOError:
                n = 0
            except OSError as e:
                del self.pending[qid]
                self.close()  # the reader fails the other queries
                raise UpstreamError(f"write tcp {self.local}->{self.proxy.to}: write: {_os_text(e)}") from None
            if n == len(frame):
                return qid
            frame = frame[n:]
        self.outbuf += frame
        if self.state == "open":
            self.wake.unpark_all()
        return qid

    def flush(self) -> None:
        """The frames of one drain iteration in one send; what the kernel does not take goes to the
        writer task. A failed send fails those queries with the text the immediate send raises."""
        queued, self.deferred = self.deferred, None
        data = bytes(self.batched)
        self.batched.clear()
        if queued is None or not data or self.state != "open":
            return  # closed meanwhile: the connection's task fails what is pending
        if self.outbuf:
            self.outbuf += data
            self.wake.unpark_all()
            return
        assert self.sock is not None
        try:
            n = self.sock.send(data)
        except BlockingIOError:
            n = 0
        except OSError as e:
            err = UpstreamError(f"write tcp {self.local}->{self.proxy.to}: write: {_os_text(e)}")
            failed = [(qid, w) for qid, w in queued if self.pending.get(qid) is w]
            for qid, _w in failed:
                del self.pending[qid]
            self.close()  # the reader fails the other queries
            for _qid, w in failed:
                w.on_error(err)
            return
        if n < len(data):
            self.outbuf += data[n:]
            self.wake.unpark_all()

    def forget(self, qid: int, waiter: Waiter) -> None:
        if self.pending.get(qid) is waiter:
            del self.pending[qid]

    def timed_out(self, qid: int, waiter: Waiter, sent: float) -> UpstreamError:
        self.forget(qid, waiter)
        self.used = _now()  # idle from now on, if this was its last query (expire counts from here)
        if self.state == "dialing":
            return UpstreamError(f"dial tcp {self.proxy.to}: i/o timeout")
        if self.last_recv < sent:
            self.close()  # nothing read since this query went out: the connection is stuck
        return UpstreamError(f"read tcp {self.local}->{self.proxy.to}: i/o timeout")

    def close(self) -> None:
        """Close now; the connection's task notices and fails what is still pending."""
        if self.state == "closed":
            return
        self.state = "closed"
        self.stop_sweep()
        self.proxy.drop_conn(self)
        sock = self.sock
        if sock is not None:
            trio.lowlevel.notify_closing(sock)
            sock.close()
        self.wake.unpark_all()

    # -- the connection's task -----------------------------------------------------------------
    async def run(self) -> None:
        err: UpstreamError | None = None
        try:
            await self._dial()
            if self.state == "closed":
                return
            self.state = "open"
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._writer)
                    try:
                        await self._read()
                    finally:
                        nursery.cancel_scope.cancel()
            except BaseExceptionGroup as group:  # the reader's or the writer's error, for the clauses below
                raise _sole_error(group)  # not `from`: the error keeps its own __cause__ (the OSError)
        except UpstreamError as e:
            err = e
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as e:
            cause = e.__cause__ if isinstance(e, trio.BrokenResourceError) else e
            text = _os_text(cause) if isinstance(cause, OSError) else str(cause or e)
            err = UpstreamError(f"read tcp {self.local}->{self.proxy.to}: {text}")
        finally:
            cached = self.served > 0
            self.close()
            self._fail_pending(err, cached, "EOF")

    def _fail_pending(self, err: UpstreamError | None, cached: bool, lost: str) -> None:
        """Fail every query still waiting on this closed connection: a connection that had served
        before reports CoreDNS's cached-connection error (the caller retries on a fresh one), else
        `err`, or `lost` when the peer just went away."""
        pending, self.pending = self.pending, {}
        if not pending:
            return
        if cached:
            err = CachedClosed("cached connection was closed by peer")
        elif err is None:
            err = UpstreamError(lost)
        for waiter in pending.values():
            waiter.on_error(err)

    async def _dial(self) -> None:
        proxy = self.proxy
        sock = socket.socket(proxy.family, socket.SOCK_STREAM)
        sock.setblocking(False)
        self.sock = sock
        try:
            with trio.fail_after(DIAL_TIMEOUT):
                if proxy.source:
                    sock.bind((proxy.source, 0))
                rc = sock.connect_ex(proxy.addr)
                if rc not in (0, errno.EINPROGRESS):
                    raise OSError(rc, os.strerror(rc))
                await trio.lowlevel.wait_writable(sock)
                rc = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if rc:
                    raise OSError(rc, os.strerror(rc))
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.local = _fmt_addr(sock.getsockname())
                if self.kind == "tcp-tls":
                    assert proxy.tls is not None
                    self.stream = trio.SSLStream(trio.SocketStream(trio.socket.from_stdlib_socket(sock)), proxy.tls,
                                                 server_hostname=proxy.server_name)
                    await self.stream.do_handshake()
        except trio.TooSlowError:
            raise UpstreamError(f"dial tcp {proxy.to}: i/o timeout") from None
        except ssl.SSLError as e:
            raise UpstreamError(tls_error_text(e)) from None
        except trio.BrokenResourceError as e:
            raise UpstreamError(tls_error_text(e.__cause__ or e)) from None
        except (trio.ClosedResourceError, ValueError):
            raise UpstreamError(f"dial tcp {proxy.to}: use of closed network connection") from None
        except OSError as e:
            raise UpstreamError(f"dial tcp {proxy.to}: connect: {_os_text(e)}") from None

    async def _writer(self) -> None:
        """Flush `outbuf`: what a raw send could not take at once, and everything over TLS."""
        while self.state != "closed":
            if not self.outbuf:
                await self.wake.park()
                continue
            data = bytes(self.outbuf)
            self.outbuf.clear()
            if self.stream is not None:
                await self.stream.send_all(data)
                continue
            assert self.sock is not None
            while data:
                try:
                    n = self.sock.send(data)
                except BlockingIOError:
                    await trio.lowlevel.wait_writable(self.sock)
                    continue
                data = data[n:]

    async def _read(self) -> None:
        """Read replies and hand each to its waiter; what they send is flushed after each chunk."""
        buf = bytearray()
        sock, stream = self.sock, self.stream
        assert sock is not None
        defer = mmsg.DEFER
        try:
            await self._read_loop(buf, sock, stream, defer)
        finally:
            defer.flush()

    async def _read_loop(self, buf: bytearray, sock: socket.socket, stream: trio.SSLStream | None,
                         defer: mmsg.Deferral) -> None:
        while True:
            if stream is not None:
                chunk = await stream.receive_some(65536)
            else:
                try:
                    chunk = sock.recv(65536)
                except BlockingIOError:
                    await trio.lowlevel.wait_readable(sock)
                    continue
                except OSError:
                    if self.state == "closed":
                        return  # closed by another task after this one was woken (EBADF): not the peer's error
                    raise
            if not chunk:
                return  # EOF: the finally of run() fails what is pending
            if buf:  # a frame began in an earlier chunk: join them (the usual chunk holds whole frames)
                buf += chunk
                data = bytes(buf)
                buf.clear()
            else:
                data = chunk if type(chunk) is bytes else bytes(chunk)  # TLS streams may return a bytearray
            self.last_recv = self.used = _now()
            # the frames by offset, each sliced once out of the bytes read (no copy of the chunk, no
            # memmove per frame); only the unfinished last frame is kept in `buf`
            off, n = 0, len(data)
            while n - off >= 2:
                end = off + 2 + ((data[off] << 8) | data[off + 1])
                if end > n:
                    break
                msg = data[off + 2 : end]
                off = end
                self.served += 1
                waiter = self.pending.pop((msg[0] << 8) | msg[1], None) if len(msg) >= 2 else None
                if waiter is not None:
                    defer.active = True
                    waiter.on_reply(msg)
            if off < n:
                buf += data[off:]
            if defer.active:
                defer.flush()
            if not self.pending:
                self.proxy.idle_conn(self)
            await trio.lowlevel.checkpoint_if_cancelled()


class Proxy:
    """One TO of a forward instance."""

    def __init__(self, addr: tuple[str, int], transport: str = "dns", tls: ssl.SSLContext | None = None,
                 server_name: str | None = None, proxy_name: str = "forward") -> None:
        self.addr = addr
        self.family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        self.source = ""  # forward's source_address: the local address sockets bind to
        self.transport = transport  # "dns" or "tls"
        self.tls = tls
        self.server_name = server_name or addr[0]
        self.to = _fmt_addr(addr)
        self.proxy_name = proxy_name
        self.hit_keys = {kind: (proxy_name, self.to, kind) for kind in ("udp", "tcp", "tcp-tls")}  # metric labels
        self.fails = 0
        self.expire = 10.0
        self.read_timeout = 2.0
        self.hc_interval = 0.5
        self.hc_recursion = True
        self.hc_domain = "."
        self.hc_tcp = False
        self.max_idle = 0  # 0: unlimited idle connections per transport
        self.nursery: trio.Nursery | None = None
        self.udp = UdpMux(self)
        self.conns: dict[str, list[StreamConn]] = {"tcp": [], "tcp-tls": []}
        self._hc_running = False

    def __repr__(self) -> str:
        return f"<Proxy {self.transport}://{self.to}>"

    # -- health ----------------------------------------------------------------------------
    def down(self, max_fails: int) -> bool:
        return max_fails != 0 and self.fails > max_fails

    def healthcheck(self) -> None:
        """Start the probe loop unless one runs: probe now, then every interval until a probe succeeds."""
        if self._hc_running or self.nursery is None or self.hc_interval <= 0:
            return
        self._hc_running = True
        self.nursery.start_soon(guarded, f"health check of {self.to}", self._hc_loop)

    async def _hc_loop(self) -> None:
        try:
            while True:
                if await self.probe():
                    self.fails = 0
                    return
                self.fails += 1
                healthcheck_failures.inc(self.proxy_name, self.to)
                await trio.sleep(self.hc_interval)
        finally:
            self._hc_running = False

    def _probe_query(self) -> bytes:
        flags = wire.RD if self.hc_recursion else 0
        return (struct.pack(">HHHHHH", random.getrandbits(16), flags, 1, 0, 0, 0)
                + wire.text_to_wire(self.hc_domain) + struct.pack(">HH", 2, 1))

    async def probe(self) -> bool:
        """One `<domain> IN NS` probe on a fresh connection; any DNS reply counts as healthy."""
        q = self._probe_query()
        with trio.move_on_after(HC_TIMEOUT):
            try:
                if self.transport == "tls" or self.hc_tcp:
                    conn = StreamConn(self, "tcp-tls" if self.transport == "tls" else "tcp")
                    try:
                        await conn._dial()
                        assert conn.sock is not None
                        stream = conn.stream or trio.SocketStream(trio.socket.from_stdlib_socket(conn.sock))
                        await stream.send_all(_LEN.pack(len(q)) + q)
                        reply = await _read_frame(stream)
                    finally:
                        if conn.sock is not None:
                            conn.sock.close()
                    return len(reply) >= 12
                with trio.socket.socket(self.family, socket.SOCK_DGRAM) as s:
                    if self.source:
                        await s.bind((self.source, 0))
                    await s.connect(self.addr)
                    await s.send(q)
                    while True:
                        reply = await s.recv(65535)
                        if reply[:2] == q[:2]:
                            return len(reply) >= 12
            except (OSError, EOFError, UpstreamError, trio.BrokenResourceError, trio.ClosedResourceError):
                return False
        return False

    # -- channels ------------------------------------------------------------------------------
    def channel(self, proto: str) -> UdpMux | StreamConn:
        """Where the next query goes: the UDP socket, or the least busy connection of the pool."""
        if self.transport == "tls":
            return self.stream_conn("tcp-tls")
        if proto == "udp":
            if self.udp.sock is not None:  # conn_cache_hits.inc, without its frame (once per query)
                hits, key = conn_cache_hits.values, self.hit_keys["udp"]
                hits[key] = hits.get(key, 0.0) + 1.0
            else:
                conn_cache_misses.inc(self.proxy_name, self.to, "udp")
            return self.udp
        return self.stream_conn("tcp")

    def stream_conn(self, kind: str) -> StreamConn:
        """The first live connection with fewer than PIPELINE queries in flight; a new one when all are
        that busy (up to POOL_MAX; then the least busy) or expired.

        First, not least busy: the queries of one drain iteration then share one connection, so they go
        out in one send, the upstream reads them in one chunk and its replies come back in few reads.
        Spread over the pool (which a burst above PIPELINE opens to POOL_MAX), each connection's send,
        read wake-up and reply flush carried a quarter of them (bench/README.md, seventh session); the
        connections past the first now fall idle and close after `expire`."""
        conns = self.conns[kind]
        now = 0.0  # read only when an idle connection is met
        best: StreamConn | None = None
        fewest = 0
        expired: list[StreamConn] = []
        for c in conns:
            n = len(c.pending)
            if not n:
                now = now or _now()
                if now - c.used >= self.expire:
                    expired.append(c)  # idle past `expire`
                    continue
            if n < PIPELINE:
                best, fewest = c, n
                break
            if best is None or n < fewest:
                best, fewest = c, n
        for c in expired:
            c.close()  # leaves `conns`
        if best is not None and (fewest < PIPELINE or len(conns) >= POOL_MAX):
            hits, key = conn_cache_hits.values, self.hit_keys[kind]  # conn_cache_hits.inc, without its frame
            hits[key] = hits.get(key, 0.0) + 1.0
            return best
        nursery = self.nursery
        if nursery is None:
            raise UpstreamError("forward is not running")
        conn_cache_misses.inc(self.proxy_name, self.to, kind)
        conn = StreamConn(self, kind)
        conns.append(conn)
        nursery.start_soon(guarded, f"connection to {self.to}", conn.run)
        return conn

    def drop_conn(self, conn: StreamConn) -> None:
        conns = self.conns[conn.kind]
        if conn in conns:
            conns.remove(conn)

    def idle_conn(self, conn: StreamConn) -> None:
        """`conn` has nothing in flight: close it if more than `max_idle_conns` are idle."""
        if self.max_idle and sum(1 for c in self.conns[conn.kind] if not c.pending) > self.max_idle:
            conn.close()

    def sweep(self) -> None:
        """Close idle connections older than `expire` (the 10s sweeper)."""
        now = _now()
        for conns in self.conns.values():
            for c in list(conns):
                if not c.pending and now - c.used >= self.expire:
                    c.close()

    def close(self) -> None:
        """Shutdown: close the UDP socket and every connection (their queries fail at once)."""
        self.udp.close()
        for conns in self.conns.values():
            for c in list(conns):
                c.close()


async def _read_frame(stream: trio.abc.Stream) -> bytes:
    buf = bytearray()
    while len(buf) < 2 or len(buf) < 2 + ((buf[0] << 8) | buf[1]):
        chunk = await stream.receive_some(65536)
        if not chunk:
            raise EOFError
        buf += chunk
    return bytes(buf[2 : 2 + ((buf[0] << 8) | buf[1])])
