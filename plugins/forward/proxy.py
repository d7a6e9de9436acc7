"""One upstream of `forward`: a shared UDP socket with an ID remap table, pooled TCP/TLS connections, health checks.

UDP: one connected non-blocking socket per upstream carries every in-flight query. Each exchange gets a
random 16-bit ID that is free in `pending`; a single reader task drains the socket and hands each reply to
the task waiting for its ID (replies with an unknown ID are dropped: late, duplicated or forged). This
keeps the miss path at one send and one recv syscall per query, without a socket or task per query.

TCP/TLS: one query at a time per connection (as CoreDNS); idle connections wait in a FIFO pool per
transport and are dropped once older than `expire`.
"""

from __future__ import annotations

import collections
import errno
import functools
import heapq
import itertools
import os
import random
import socket
import ssl
import struct
import time
from typing import TYPE_CHECKING

import outcome
import trio

from pycoredns import metrics, wire
from pycoredns.log import plugin_logger

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

_LEN = struct.Struct(">H")
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

HC_TIMEOUT = 1.0  # a health probe's whole budget (CoreDNS: 1s)
DIAL_TIMEOUT = 2.0  # cap on connect + TLS handshake (bounded further by the query's deadline)
TIMER_TICK = 0.05  # resolution of UDP read timeouts
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


def _now() -> float:
    return time.monotonic()


def _fmt_addr(addr: tuple) -> str:
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _os_text(e: OSError) -> str:
    """Go's syscall error wording (`connection refused`, ...)."""
    if e.errno is not None and e.errno in errno.errorcode:
        return os.strerror(e.errno).lower()
    return str(e) or type(e).__name__


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


# Where a compressible name starts in the rdata of the types miekg unpacks names from (SOA has two).
_RDATA_NAME_AT = {2: 0, 5: 0, 6: 0, 12: 0, 15: 2, 33: 6, 39: 0}
_RDATA_SIZE = {1: 4, 28: 16}  # A, AAAA: miekg's "bad rdlength" otherwise


def check_reply(reply: bytes) -> None:
    """Raise UpstreamError when the reply does not unpack (what miekg's ReadMsg rejects)."""
    if len(reply) < 12:
        raise UpstreamError("dns: overflow unpacking uint16")
    try:
        wire.rr_layout(reply)
        _check_rdata_names(reply)
    except (wire.WireError, struct.error, IndexError) as e:
        raise UpstreamError(f"dns: bad reply: {e}") from None


def _check_rdata_names(reply: bytes) -> None:
    """Names inside rdata (CNAME/NS/PTR/DNAME/MX/SRV/SOA) must unpack and stay inside their record, as in
    miekg: a damaged target would otherwise reach the client (and cache, loadbalance) as garbage."""
    _qid, _flags, qd, an, ns, ar = wire.header(reply)
    off = 12
    for _ in range(qd):
        off = wire.skip_name(reply, off) + 4
    for _ in range(an + ns + ar):
        rtype, ttl_off, end = wire.skip_rr(reply, off)
        size = _RDATA_SIZE.get(rtype)
        if size is not None and end - ttl_off - 6 != size:
            raise wire.WireError("bad rdlength")
        at = _RDATA_NAME_AT.get(rtype)
        if at is not None:
            _labels, name_end = wire.read_name(reply, ttl_off + 6 + at)
            if rtype == 6:
                _labels, name_end = wire.read_name(reply, name_end)
                name_end += 20  # serial, refresh, retry, expire, minimum
            if name_end != end:
                raise wire.WireError("bad rdlength")
        off = end


class UdpMux:
    """The upstream's shared UDP socket: ID remap table + one reader task."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.sock: socket.socket | None = None
        # query ID -> (waiting task, sequence number); the heap holds (deadline, sequence, ID) and skips
        # entries whose ID has since been answered or reused (the sequence differs).
        self.pending: dict[int, tuple[trio.lowlevel.Task, int]] = {}
        self.deadlines: list[tuple[float, int, int]] = []
        self.seq = itertools.count()
        self.local = ""

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
            sock.connect(self.proxy.addr)
        except OSError as e:
            sock.close()
            raise UpstreamError(f"dial udp {self.proxy.to}: {_os_text(e)}") from None
        self.local = _fmt_addr(sock.getsockname())
        self.sock = sock
        where = f"udp socket to {self.proxy.to}"
        nursery.start_soon(functools.partial(guarded, where, self._reader, sock, on_error=self.close))
        nursery.start_soon(functools.partial(guarded, where, self._timer, sock, on_error=self.close))
        return sock

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            trio.lowlevel.notify_closing(sock)
            sock.close()
        self._fail_all(UpstreamError("upstream socket closed"))

    def _fail_all(self, err: Exception) -> None:
        pending, self.pending = self.pending, {}
        for task, _seq in pending.values():
            trio.lowlevel.reschedule(task, outcome.Error(err))

    async def _reader(self, sock: socket.socket) -> None:
        """Drain the socket; wake the task whose ID a reply carries, drop the rest."""
        pending = self.pending
        n = 0
        while True:
            try:
                data = sock.recv(65535)
            except BlockingIOError:
                n = 0
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
                entry = pending.pop((data[0] << 8) | data[1], None)
                if entry is not None:
                    trio.lowlevel.reschedule(entry[0], outcome.Value(data))
            n += 1
            if n >= 64:
                n = 0
                await trio.lowlevel.checkpoint()

    async def _timer(self, sock: socket.socket) -> None:
        """Expire waiting queries (one ticking task instead of a cancel scope per query: 30 µs saved each)."""
        heap = self.deadlines
        while self.sock is sock:
            await trio.sleep(TIMER_TICK)
            now = trio.current_time()
            while heap and heap[0][0] <= now:
                _, seq, qid = heapq.heappop(heap)
                entry = self.pending.get(qid)
                if entry is not None and entry[1] == seq:
                    del self.pending[qid]
                    err = UpstreamError(f"read udp {self.local}->{self.proxy.to}: i/o timeout")
                    trio.lowlevel.reschedule(entry[0], outcome.Error(err))

    async def exchange(self, data: bytes, timeout: float) -> bytes:
        """Send `data` under a fresh ID, wait at most `timeout` for the reply with that ID (returned as received)."""
        sock = self.sock or self._open()
        pending = self.pending
        for _ in range(16):
            qid = random.getrandbits(16)
            if qid not in pending:
                break
        else:
            raise UpstreamError(f"write udp {self.local}->{self.proxy.to}: no free query id")
        try:
            sock.send(qid.to_bytes(2, "big") + data[2:])
        except BlockingIOError:
            raise UpstreamError(f"write udp {self.local}->{self.proxy.to}: i/o timeout") from None
        except OSError as e:
            raise UpstreamError(f"write udp {self.local}->{self.proxy.to}: write: {_os_text(e)}") from None
        seq = next(self.seq)
        entry = pending[qid] = (trio.lowlevel.current_task(), seq)
        heapq.heappush(self.deadlines, (trio.current_time() + timeout, seq, qid))

        def abort(_raise_cancel: Callable) -> trio.lowlevel.Abort:
            if self.pending.get(qid) is entry:
                del self.pending[qid]
            return trio.lowlevel.Abort.SUCCEEDED

        return await trio.lowlevel.wait_task_rescheduled(abort)


class StreamConn:
    """A TCP or TLS connection to the upstream carrying length-prefixed messages."""

    __slots__ = ("buf", "local", "stream", "used")

    def __init__(self, stream: trio.abc.Stream, local: str) -> None:
        self.stream = stream
        self.local = local  # our address, for Go-like error texts
        self.buf = bytearray()
        self.used = _now()

    async def read_msg(self) -> bytes:
        buf = self.buf
        while True:
            if len(buf) >= 2:
                size = (buf[0] << 8) | buf[1]
                if len(buf) >= 2 + size:
                    msg = bytes(buf[2 : 2 + size])
                    del buf[: 2 + size]
                    return msg
            chunk = await self.stream.receive_some(65536)
            if not chunk:
                raise EOFError
            buf += chunk

    def close(self) -> None:
        """Close without waiting (no TLS close_notify): used on errors, expiry and shutdown."""
        s = self.stream
        if isinstance(s, trio.SSLStream):
            s = s.transport_stream
        if isinstance(s, trio.SocketStream):
            s.socket.close()


class Proxy:
    """One TO of a forward instance."""

    def __init__(self, addr: tuple[str, int], transport: str = "dns", tls: ssl.SSLContext | None = None,
                 server_name: str | None = None, proxy_name: str = "forward") -> None:
        self.addr = addr
        self.family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        self.transport = transport  # "dns" or "tls"
        self.tls = tls
        self.server_name = server_name or addr[0]
        self.to = _fmt_addr(addr)
        self.proxy_name = proxy_name
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
        self.pools: dict[str, collections.deque[StreamConn]] = {"tcp": collections.deque(),
                                                                 "tcp-tls": collections.deque()}
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
                    conn = await self._dial("tcp-tls" if self.transport == "tls" else "tcp", HC_TIMEOUT)
                    try:
                        await conn.stream.send_all(_LEN.pack(len(q)) + q)
                        reply = await conn.read_msg()
                    finally:
                        conn.close()
                    return len(reply) >= 12
                with trio.socket.socket(self.family, socket.SOCK_DGRAM) as s:
                    await s.connect(self.addr)
                    await s.send(q)
                    while True:
                        reply = await s.recv(65535)
                        if reply[:2] == q[:2]:
                            return len(reply) >= 12
            except (OSError, EOFError, UpstreamError, trio.BrokenResourceError, trio.ClosedResourceError):
                return False
        return False

    # -- exchange --------------------------------------------------------------------------
    async def exchange(self, data: bytes, proto: str, bufsize: int, timeout: float) -> bytes:
        """Send the query (client ID kept in `data`), return the upstream reply bytes with the ID it came with.

        `proto` is "udp" or "tcp" (a TLS upstream always uses TLS). Raises UpstreamError.
        """
        start = _now()
        if self.transport == "tls":
            reply = await self._stream_exchange("tcp-tls", data, timeout)
        elif proto == "udp":
            if self.udp.sock is not None:
                conn_cache_hits.inc(self.proxy_name, self.to, "udp")
            else:
                conn_cache_misses.inc(self.proxy_name, self.to, "udp")
            reply = await self.udp.exchange(data, timeout)
            if len(reply) > bufsize:
                reply = truncated_reply(reply)
        else:
            reply = await self._stream_exchange("tcp", data, timeout)
        check_reply(reply)
        rcode = reply[3] & 0x0F
        request_duration.observe(_now() - start, self.proxy_name, self.to, wire.RCODE_NAMES.get(rcode, str(rcode)))
        return reply

    def _take(self, kind: str) -> StreamConn | None:
        pool = self.pools[kind]
        now = _now()
        while pool:
            conn = pool.popleft()
            if now - conn.used < self.expire:
                return conn
            conn.close()
        return None

    def sweep(self) -> None:
        """Drop idle connections older than `expire` (the 10s sweeper)."""
        now = _now()
        for pool in self.pools.values():
            keep = [c for c in pool if now - c.used < self.expire]
            for c in pool:
                if now - c.used >= self.expire:
                    c.close()
            pool.clear()
            pool.extend(keep)

    async def _dial(self, kind: str, timeout: float) -> StreamConn:
        net = "tcp"
        try:
            with trio.fail_after(min(timeout, DIAL_TIMEOUT)):
                sock = trio.socket.socket(self.family, socket.SOCK_STREAM)
                try:
                    await sock.connect(self.addr)
                except BaseException:
                    sock.close()
                    raise
                stream: trio.abc.Stream = trio.SocketStream(sock)
                if kind == "tcp-tls":
                    assert self.tls is not None
                    stream = trio.SSLStream(stream, self.tls, server_hostname=self.server_name)
                    try:
                        await stream.do_handshake()
                    except BaseException:
                        sock.close()
                        raise
        except trio.TooSlowError:
            raise UpstreamError(f"dial {net} {self.to}: i/o timeout") from None
        except ssl.SSLError as e:
            raise UpstreamError(f"tls: {e.reason or e}") from None
        except trio.BrokenResourceError as e:
            cause = e.__cause__
            text = cause.reason if isinstance(cause, ssl.SSLError) and cause.reason else str(cause or e)
            raise UpstreamError(f"tls: {text}") from None
        except OSError as e:
            raise UpstreamError(f"dial {net} {self.to}: connect: {_os_text(e)}") from None
        try:
            local = _fmt_addr(sock.getsockname())
        except OSError:
            local = "?"
        return StreamConn(stream, local)

    async def _stream_exchange(self, kind: str, data: bytes, timeout: float) -> bytes:
        conn = self._take(kind)
        cached = conn is not None
        if conn is None:
            conn_cache_misses.inc(self.proxy_name, self.to, kind)
            conn = await self._dial(kind, timeout)
        else:
            conn_cache_hits.inc(self.proxy_name, self.to, kind)
        qid = random.getrandbits(16).to_bytes(2, "big")
        try:
            with trio.fail_after(timeout):
                await conn.stream.send_all(_LEN.pack(len(data)) + qid + data[2:])
                while True:
                    reply = await conn.read_msg()
                    if reply[:2] == qid:  # drop out-of-order replies
                        break
        except trio.TooSlowError:
            conn.close()
            raise UpstreamError(f"read tcp {conn.local}->{self.to}: i/o timeout") from None
        except (EOFError, trio.BrokenResourceError, trio.ClosedResourceError, OSError) as e:
            conn.close()
            if cached:
                raise CachedClosed("cached connection was closed by peer") from None
            if isinstance(e, EOFError):
                raise UpstreamError("EOF") from None
            cause = e.__cause__ if isinstance(e, trio.BrokenResourceError) else e
            text = _os_text(cause) if isinstance(cause, OSError) else str(cause or e)
            raise UpstreamError(f"read tcp {conn.local}->{self.to}: {text}") from None
        conn.used = _now()
        pool = self.pools[kind]
        if self.max_idle and len(pool) >= self.max_idle:
            conn.close()
        else:
            pool.append(conn)
        return reply

    def close(self) -> None:
        """Shutdown: close the UDP socket and every pooled connection."""
        self.udp.close()
        for pool in self.pools.values():
            while pool:
                pool.popleft().close()
