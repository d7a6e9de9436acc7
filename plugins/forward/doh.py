"""forward's DNS-over-HTTPS upstreams (`https://HOST[:PORT]`): HTTP/2 over TLS with the `h2` state machine.

What CoreDNS 1.14.7 does (plugin/pkg/proxy/connect.go lookupDoH, plugin/pkg/doh), and so we do:

- the query goes with ID 0 (RFC 8484's SHOULD) to `https://HOST:PORT/dns-query`, as a POST with an
  `application/dns-message` body, or with `doh_method GET` as `?dns=` + unpadded base64url; both carry
  `Content-Type` and `Accept: application/dns-message`;
- the reply is the response body, whatever the HTTP status and content type: a body that unpacks as a
  DNS message is the answer (its ID replaced by the client's), anything else is a failed attempt
  (the next upstream, health checking, SERVFAIL at the end); a body over 65,536 bytes is refused;
- one attempt may take 2 s (Go's `http.Client.Timeout`; `read_timeout` does not apply to DoH);
- the TLS settings are forward's `tls` and `tls_servername` (verified against the upstream's IP
  address without `tls_servername`; a `%name` suffix on an https:// TO is ignored, as in CoreDNS);
- health probes are an HTTPS POST of `<domain> IN NS` with a 1 s budget.

No task per query: a connection (`H2Conn`) is one task that reads frames and completes the queries
by calling their waiters back, plus the inherited writer task that flushes what the `h2` state machine
queued. Many queries are in flight on one connection (one stream each, up to the server's
SETTINGS_MAX_CONCURRENT_STREAMS, capped at 100; more wait in a FIFO on the connection); a proxy opens
another connection when every one is full, up to `POOL_MAX`. Idle connections close after 90 s
(Go's IdleConnTimeout); a GOAWAY lets the streams the server took finish and resends the others.
"""

from __future__ import annotations

import base64
import ssl
from collections import deque

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import trio

from .proxy import (
    HC_TIMEOUT,
    POOL_MAX,
    CachedClosed,
    Proxy,
    StreamConn,
    UpstreamError,
    Waiter,
    _now,
    check_reply,
    guarded,
)

PATH = "/dns-query"
MIME = "application/dns-message"
DOH_TIMEOUT = 2.0  # CoreDNS: http.Client{Timeout: 2 * time.Second} per attempt
DOH_IDLE = 90.0  # Go's http.DefaultTransport IdleConnTimeout
MAX_STREAMS = 100  # streams in flight per connection at most (unbound's and Go's server default)
MAX_BODY = 65536  # doh.toMsg reads through http.MaxBytesReader(nil, body, 65536)
# Our request headers are constants and the response headers are not read (CoreDNS checks neither status
# nor content type): h2's per-header validation and normalisation are CPU we do not need.
_H2_CONFIG = h2.config.H2Configuration(client_side=True, header_encoding=None, validate_outbound_headers=False,
                                       normalize_outbound_headers=False, validate_inbound_headers=False)
_TIMEOUT_TEXT = "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"


def alpn_context(ctx: ssl.SSLContext) -> ssl.SSLContext:
    """`ctx` offering HTTP/2 by ALPN (a DoH upstream's own context: DoT must not offer h2)."""
    ctx.set_alpn_protocols(["h2"])
    return ctx


def _b64(body: bytes) -> str:
    """base64url without padding (Go's base64.RawURLEncoding)."""
    return base64.urlsafe_b64encode(body).rstrip(b"=").decode()


def _label(method: str, url: str, body: bytes) -> str:
    """How Go's http client names a request in its errors: `Post "URL"`, `Get "URL?dns=…"`."""
    return f'Get "{url}?dns={_b64(body)}"' if method == "GET" else f'Post "{url}"'


class _Req:
    """One DoH request on a connection: the query's waiter, its stream, the body read so far.

    Errors reach the waiter prefixed as Go's http client words them: `Post "https://…/dns-query": …`.
    """

    __slots__ = ("body", "buf", "key", "label", "out", "sid", "waiter")

    def __init__(self, key: int, waiter: Waiter, body: bytes, label: str) -> None:
        self.key = key
        self.waiter = waiter
        self.body = body  # the query, ID 0
        self.label = label
        self.sid = 0  # the stream, once opened
        self.out = b""  # POST body not yet within the flow-control window
        self.buf = bytearray()

    def on_reply(self, data: bytes) -> None:
        self.waiter.on_reply(data)

    def on_error(self, err: UpstreamError) -> None:
        if not isinstance(err, CachedClosed):  # CachedClosed: the query is resent at once, not reported
            err = UpstreamError(f"{self.label}: {err}")
        self.waiter.on_error(err)


class H2Conn(StreamConn):
    """One HTTP/2 connection to a DoH upstream; `send` returns a request key (not a stream id: a
    request may wait in the FIFO for a free stream). Dialing, TLS, `close` and the writer task are
    StreamConn's; reading is the `h2` event loop."""

    __slots__ = ("blocked", "by_sid", "draining", "h2", "method", "next_key", "queue")
    sweeps = False  # `pending` holds requests, not waiters: each query keeps a timer of its own

    def __init__(self, proxy: DohProxy, method: str = "") -> None:
        super().__init__(proxy, "tcp-tls")
        self.method = method or proxy.method  # POST or GET
        self.h2 = h2.connection.H2Connection(_H2_CONFIG)
        self.by_sid: dict[int, _Req] = {}
        self.queue: deque[_Req] = deque()  # waiting for a stream
        self.blocked: dict[int, _Req] = {}  # POST bodies waiting for flow-control window
        self.next_key = 1
        self.draining = False  # GOAWAY received: no new streams

    @property
    def doh(self) -> DohProxy:
        assert isinstance(self.proxy, DohProxy)
        return self.proxy

    def capacity(self) -> int:
        return min(self.h2.remote_settings.max_concurrent_streams, MAX_STREAMS)

    # -- the waiter side -----------------------------------------------------------------------
    def send(self, waiter: Waiter, data: bytes) -> int:
        if self.state == "closed" or self.draining:
            raise CachedClosed("cached connection was closed by peer")
        key = self.next_key
        self.next_key += 1
        body = b"\x00\x00" + data[2:]
        req = _Req(key, waiter, body, _label(self.method, self.doh.url, body))
        self.pending[key] = req
        self.queue.append(req)
        self.used = _now()
        if self.state == "open":
            self._pump()
        return key

    def forget(self, qid: int, waiter: Waiter) -> None:
        req = self.pending.get(qid)
        if not isinstance(req, _Req) or req.waiter is not waiter:
            return
        del self.pending[qid]
        if req.sid:
            self.by_sid.pop(req.sid, None)
            self.blocked.pop(req.sid, None)
            try:
                self.h2.reset_stream(req.sid, h2.errors.ErrorCodes.CANCEL)
            except h2.exceptions.H2Error:
                pass
            self._flush()

    def timed_out(self, qid: int, waiter: Waiter, sent: float) -> UpstreamError:
        req = self.pending.get(qid)
        label = req.label if isinstance(req, _Req) else _label(self.method, self.doh.url, b"")
        self.forget(qid, waiter)
        if self.state == "open" and self.last_recv < sent:
            self.close()  # nothing read since this query went out: the connection is stuck
        return UpstreamError(f"{label}: {_TIMEOUT_TEXT}")

    # -- h2 --------------------------------------------------------------------------------------
    def _pump(self) -> None:
        """Open streams for queued requests while the server allows more; flush what h2 queued."""
        try:
            # by_sid holds exactly the streams in flight (h2's open_outbound_streams walks all streams)
            while self.queue and not self.draining and len(self.by_sid) < self.capacity():
                req = self.queue.popleft()
                if self.pending.get(req.key) is req:  # not timed out while queued
                    self._open(req)
        except h2.exceptions.H2Error:  # e.g. stream ids exhausted: run() fails (or resends) every query here
            self.close()
            return
        self._flush()

    def _open(self, req: _Req) -> None:
        get = self.method == "GET"
        sid = self.h2.get_next_available_stream_id()
        path = PATH + "?dns=" + _b64(req.body) if get else PATH
        headers = [(b":method", self.method.encode()), (b":scheme", b"https"), (b":authority", self.doh.authority),
                   (b":path", path.encode()), (b"content-type", MIME.encode()), (b"accept", MIME.encode())]
        if not get:
            headers.append((b"content-length", str(len(req.body)).encode()))
        req.sid = sid
        self.by_sid[sid] = req
        self.h2.send_headers(sid, headers, end_stream=get)
        if not get:
            req.out = req.body
            self._push(req)

    def _push(self, req: _Req) -> None:
        """Send as much of a POST body as the flow-control windows allow (DNS queries fit at once)."""
        while req.out:
            n = min(len(req.out), self.h2.local_flow_control_window(req.sid), self.h2.max_outbound_frame_size)
            if n <= 0:
                self.blocked[req.sid] = req
                return
            chunk, req.out = req.out[:n], req.out[n:]
            self.h2.send_data(req.sid, chunk, end_stream=not req.out)

    def _flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.outbuf += data
            self.wake.unpark_all()

    def _finish(self, sid: int) -> _Req | None:
        """The request of stream `sid`, no longer pending."""
        req = self.by_sid.pop(sid, None)
        if req is not None:
            self.blocked.pop(sid, None)
            self.pending.pop(req.key, None)
        return req

    def _event(self, ev: h2.events.Event) -> None:
        if isinstance(ev, h2.events.DataReceived):
            assert ev.stream_id is not None and ev.data is not None
            self.h2.acknowledge_received_data(ev.flow_controlled_length or 0, ev.stream_id)
            req = self.by_sid.get(ev.stream_id)
            if req is not None:
                req.buf += ev.data
                if len(req.buf) > MAX_BODY:  # reported as CoreDNS does, without the request's name
                    self.forget(req.key, req.waiter)
                    req.waiter.on_error(UpstreamError("http: request body too large"))
        elif isinstance(ev, h2.events.StreamEnded):
            assert ev.stream_id is not None
            req = self._finish(ev.stream_id)
            if req is not None:
                self.served += 1
                req.on_reply(bytes(req.buf))  # status and content type are not checked (CoreDNS)
        elif isinstance(ev, h2.events.StreamReset):
            assert ev.stream_id is not None
            req = self._finish(ev.stream_id)
            if req is not None:
                code = ev.error_code
                if code == h2.errors.ErrorCodes.REFUSED_STREAM:  # not processed: safe to resend
                    req.on_error(CachedClosed("http2: stream refused"))
                else:
                    name = code.name if isinstance(code, h2.errors.ErrorCodes) else str(code)
                    req.on_error(UpstreamError(f"stream error: stream ID {ev.stream_id}; {name}; received from peer"))
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self._goaway(ev.last_stream_id or 0)
        elif isinstance(ev, h2.events.WindowUpdated):
            blocked, self.blocked = self.blocked, {}
            for req in blocked.values():
                self._push(req)

    def _goaway(self, last_sid: int) -> None:
        """GOAWAY: streams above `last_sid` were not processed, queued requests never sent: resend them."""
        self.draining = True
        self.proxy.drop_conn(self)  # no new queries here
        retry = [self._finish(sid) for sid in list(self.by_sid) if sid > last_sid]
        retry += [r for r in self.queue if self.pending.pop(r.key, None) is r]
        self.queue.clear()
        for req in retry:
            if req is not None:
                req.on_error(CachedClosed("http2: server sent GOAWAY"))

    # -- the connection's task -----------------------------------------------------------------
    async def run(self) -> None:
        err: UpstreamError | None = None
        try:
            await self._dial()
            if self.state == "closed":
                return
            assert self.stream is not None
            if self.stream.selected_alpn_protocol() != "h2":
                raise UpstreamError("http2: the server did not negotiate HTTP/2 (ALPN h2)")
            self.h2.initiate_connection()
            self.state = "open"
            self._pump()
            async with trio.open_nursery() as nursery:  # neither task raises: no exception groups here
                nursery.start_soon(self._write)
                err = await self._read()
                nursery.cancel_scope.cancel()
        except UpstreamError as e:
            err = e
        finally:
            cached = self.served > 0
            self.close()
            self.by_sid.clear()
            self.queue.clear()
            self._fail_pending(err, cached, "http2: client connection lost")

    async def _write(self) -> None:
        """StreamConn's writer; a failed write closes the connection (the reader then ends)."""
        try:
            await self._writer()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            self.close()

    async def _read(self) -> UpstreamError | None:  # type: ignore[override]
        """Feed what arrives to h2 and act on its events; the error that ended the connection, if any."""
        stream = self.stream
        assert stream is not None
        try:
            while True:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return None  # EOF: run() fails what is pending
                self.last_recv = self.used = _now()
                for ev in self.h2.receive_data(chunk):
                    self._event(ev)
                self._pump()
                if self.draining and not self.pending:
                    return None
                await trio.lowlevel.checkpoint_if_cancelled()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            return UpstreamError("http2: client connection lost")
        except h2.exceptions.H2Error as e:  # a protocol error of the server's
            return UpstreamError(f"http2: {e}")


class _Probe:
    """The waiter of a health probe: healthy when any DNS message comes back."""

    def __init__(self) -> None:
        self.done = trio.Event()
        self.ok = False

    def on_reply(self, data: bytes) -> None:
        try:
            check_reply(data)
            self.ok = True
        except UpstreamError:
            pass
        self.done.set()

    def on_error(self, err: UpstreamError) -> None:
        self.done.set()


class DohProxy(Proxy):
    """One `https://` TO: a pool of HTTP/2 connections instead of UDP and TCP channels."""

    def __init__(self, addr: tuple[str, int], tls: ssl.SSLContext, server_name: str | None = None,
                 method: str = "POST") -> None:
        super().__init__(addr, "https", tls, server_name)
        self.method = method  # POST or GET
        self.read_timeout = DOH_TIMEOUT
        self.url = f"https://{self.to}{PATH}"
        self.authority = self.to.encode()

    def channel(self, proto: str) -> H2Conn:
        """The least busy connection with a free stream; a new one when all are full (up to POOL_MAX).

        CoreDNS's DoH goes through Go's http.Transport, not its connection cache: no cache metrics."""
        conns = self.conns["tcp-tls"]
        now = _now()
        best: H2Conn | None = None
        for c in list(conns):
            if not isinstance(c, H2Conn):
                continue
            if not c.pending and now - c.used >= DOH_IDLE:
                c.close()
            elif best is None or len(c.pending) < len(best.pending):
                best = c
        if best is not None and (len(best.pending) < best.capacity() or len(conns) >= POOL_MAX):
            return best
        if self.nursery is None:
            raise UpstreamError("forward is not running")
        conn = H2Conn(self)
        conns.append(conn)
        self.nursery.start_soon(guarded, f"DoH connection to {self.to}", conn.run)
        return conn

    def sweep(self) -> None:
        now = _now()
        for c in list(self.conns["tcp-tls"]):
            if not c.pending and now - c.used >= DOH_IDLE:
                c.close()

    async def probe(self) -> bool:
        """An HTTPS POST of `<domain> IN NS` on a connection of its own; any DNS reply in 1 s is healthy."""
        waiter = _Probe()
        conn = H2Conn(self, "POST")  # whatever doh_method says (CoreDNS's dohHc)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(conn.run)
            conn.send(waiter, self._probe_query())
            with trio.move_on_after(HC_TIMEOUT):
                await waiter.done.wait()
            conn.close()
            nursery.cancel_scope.cancel()
        return waiter.ok
