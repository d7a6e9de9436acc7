"""The forward handler: each query is an `Exchange`, a continuation that no task waits for.

`Forward.start` (the fast path; `serve_dns` awaits the same code) builds an Exchange, which sends the
query to the first upstream the policy picks and returns PENDING. From then on the Exchange is driven
by callbacks: the upstream channel's reader calls `on_reply`, a channel failure calls `on_error`, the
deadline timer calls `_timeout`. Each either completes the query (`w.write` + `w.done`) or makes the
next attempt (another upstream, TCP after a truncated UDP reply, a failover rcode), exactly in the
order CoreDNS's `ServeDNS` loop takes them.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from time import perf_counter
from typing import Any

import trio

from pycoredns import metrics, wire
from pycoredns.plugin import (
    PENDING,
    PluginError,
    Request,
    ResponseWriter,
    WaitingHandler,
    call_at,
    call_later,
    complete,
)
from pycoredns.timers import Timer, clock_offset, now
from pycoredns.util import is_subdomain

from .proxy import (
    RCODE_TEXT,
    SWEEP_INTERVAL,
    CachedClosed,
    Proxy,
    StreamConn,
    UdpMux,
    UpstreamError,
    request_duration,
    truncated_reply,
)
from .validate import accept

DEADLINE = 5.0  # overall budget of one query (CoreDNS defaultTimeout)
_NO_RECORDS = bytes(6)  # ANCOUNT, NSCOUNT and ARCOUNT of a reply without records
MAX_RESENDS = 8  # immediate resends of one attempt (closed pooled connections), bounded

healthcheck_broken = metrics.REGISTRY.counter(
    "coredns_forward_healthcheck_broken_total", "Counter of the number of complete failures of the healthchecks.")
max_concurrent_rejects = metrics.REGISTRY.counter(
    "coredns_forward_max_concurrent_rejects_total",
    "Counter of the number of queries rejected because the concurrent queries were at maximum.")


# -- policies ------------------------------------------------------------------------------------


class Policy:
    """Order in which one query tries the upstreams."""

    def list(self, proxies: list[Proxy]) -> list[Proxy]:
        return proxies


class RandomPolicy(Policy):
    def list(self, proxies: list[Proxy]) -> list[Proxy]:
        if len(proxies) == 1:
            return proxies
        if len(proxies) == 2:
            return proxies if random.getrandbits(1) else [proxies[1], proxies[0]]
        return random.sample(proxies, len(proxies))


class RoundRobinPolicy(Policy):
    """Start one further each query; the rest keep their order (CoreDNS: p[i], p[:i], p[i+1:])."""

    def __init__(self) -> None:
        self.robin = 0

    def list(self, proxies: list[Proxy]) -> list[Proxy]:
        self.robin += 1
        i = self.robin % len(proxies)
        return [proxies[i], *proxies[:i], *proxies[i + 1 :]]


POLICIES: dict[str, type[Policy]] = {"random": RandomPolicy, "round_robin": RoundRobinPolicy, "sequential": Policy}


# -- the handler ---------------------------------------------------------------------------------


class Forward(WaitingHandler):
    name = "forward"

    def __init__(self, from_zone: str) -> None:
        self.from_zone = from_zone
        self.ignored: list[str] = []
        self.proxies: list[Proxy] = []
        self.policy: Policy = RandomPolicy()
        self.force_tcp = False
        self.prefer_udp = False
        self.max_fails = 2
        self.expire = 10.0
        self.hc_interval = 0.5
        self.hc_recursion = True
        self.hc_domain = "."
        self.read_timeout = 2.0
        self.max_concurrent = 0
        self.limit_error = ""
        self.concurrent = 0
        self.next_rcodes: list[int] = []
        self.failover_rcodes: list[int] = []
        self.next_on_nodata = False  # NOERROR without answers goes to the following forward too
        self.source_address = ""  # local address the upstream sockets bind to ("" = any)
        self.resolvers: list[str] = []  # `resolver`: DNS servers for host-name TOs (default: the system's)
        self.failfast = False
        self.max_connect_attempts: int | None = None  # None: 2 x upstreams
        self.max_idle_conns = 0
        self.tls_context: Any = None  # ssl.SSLContext for tls:// upstreams
        self.tls_args: list[str] = []  # `tls` arguments: https:// upstreams get a context of their own (ALPN h2)
        self.doh_method = "POST"  # doh_method: POST or GET
        self.tls_servername = ""
        self._scope: trio.CancelScope | None = None
        # the running trio clock as perf_counter() + clock (timers.clock_offset) while `run` runs: a
        # query reads the clock twice (its send, its reply's duration); None: timers.now()
        self.clock: float | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Own the upstream sockets' reader and health-check tasks; sweep idle connections until shutdown."""
        try:
            with trio.CancelScope() as self._scope:
                async with trio.open_nursery() as nursery:
                    for p in self.proxies:
                        p.nursery = nursery
                    self.clock = clock_offset()
                    task_status.started()
                    while True:
                        await trio.sleep(SWEEP_INTERVAL)
                        for p in self.proxies:
                            p.sweep()
        finally:
            self.close()

    def close(self) -> None:
        self.clock = None
        for p in self.proxies:
            p.nursery = None
            p.close()

    async def shutdown(self) -> None:
        if self._scope is not None:
            self._scope.cancel()
        self.close()

    def pending(self) -> int:
        """Queries waiting on this forward's upstream channels (tests: tables drain to empty)."""
        n = 0
        for p in self.proxies:
            n += len(p.udp.pending)
            for conns in p.conns.values():
                n += sum(len(c.pending) for c in conns)
        return n

    # -- serving -----------------------------------------------------------------------------
    def match(self, name: str) -> bool:
        """qname inside FROM and not inside an `except` zone (FROM itself always matches)."""
        if not is_subdomain(self.from_zone, name):
            return False
        if not self.ignored or name == self.from_zone:
            return True
        return not any(is_subdomain(z, name) for z in self.ignored)

    def start(self, req: Request, w: ResponseWriter) -> int:
        # `forward . X` without `except` takes every query without looking at its name
        if (self.from_zone != "." or self.ignored) and not self.match(req.name):
            return self.next_continue(req, w)
        if self.max_concurrent and self.concurrent >= self.max_concurrent:
            max_concurrent_rejects.inc()
            raise PluginError(wire.REFUSED, self.limit_error)
        ex = Exchange(self, req, w)
        self.concurrent += 1
        try:
            rc = ex.attempt()
        except BaseException:
            ex.release()
            raise
        if rc is PENDING and not ex.handed_over:
            return rc  # type: ignore[no-any-return]
        ex.release()
        return rc

    serve_fast = start  # WaitingHandler's serve_fast calls start: one frame less per query


class Exchange:
    """One forwarded query between its upstream attempts: the state CoreDNS keeps on a goroutine's stack."""

    __slots__ = ("attempts", "cap", "chan", "deadline", "expires", "failovers", "fails", "fwd", "handed_over",
                 "i", "last_err", "proto", "proxies", "proxy", "qid", "released", "req", "resends", "sent",
                 "timer", "w")

    def __init__(self, fwd: Forward, req: Request, w: ResponseWriter) -> None:
        self.fwd = fwd
        self.req = req
        self.w = w
        proxies = fwd.proxies
        n = len(proxies)
        self.proxies = proxies if n == 1 else fwd.policy.list(proxies)  # one upstream: every policy keeps it
        self.cap = 2 * n if fwd.max_connect_attempts is None else fwd.max_connect_attempts
        self.deadline = 0.0  # set by the first send (its clock reading): DEADLINE after it
        self.i = self.fails = self.attempts = self.failovers = self.resends = 0
        self.last_err: UpstreamError | None = None
        self.proxy: Proxy | None = None
        self.proto = "udp"
        self.chan: UdpMux | StreamConn | None = None  # set while a reply is awaited
        self.qid = 0
        self.sent = self.expires = 0.0  # the last send and its read deadline (the channel's sweep reads them)
        self.timer: Timer | None = None  # a deadline of its own (DoH, or a budget shorter than the read timeout)
        self.handed_over = False  # the following forward owns the query now (`next` rcodes)
        self.released = False

    def release(self) -> None:
        """Leave forward's max_concurrent count (once)."""
        if not self.released:
            self.released = True
            self.fwd.concurrent -= 1

    # -- attempts ------------------------------------------------------------------------------
    def attempt(self) -> int:
        """Send to the next upstream in policy order: PENDING once sent; raises when out of attempts."""
        fwd = self.fwd
        proxies = self.proxies
        n = len(proxies)
        # the first attempt has the whole budget (the deadline is set when it sends): no clock reading
        while (left := self.deadline - now() if self.deadline else DEADLINE) > 0:
            if self.i >= n:
                self.i = self.fails = 0
            proxy = proxies[self.i]
            self.i += 1
            if fwd.max_fails and proxy.fails > fwd.max_fails:  # proxy.down(), inlined
                self.fails += 1
                if self.fails < n:
                    continue
                healthcheck_broken.inc()
                if fwd.failfast:
                    break
                proxy = random.choice(fwd.proxies)  # health checking assumed broken
            self.proxy = proxy
            self.proto = "tcp" if fwd.force_tcp else "udp" if fwd.prefer_udp or self.req.proto == "udp" else "tcp"
            self.resends = 0
            try:
                self._send(left)
                return PENDING  # type: ignore[no-any-return]
            except UpstreamError as e:
                if not self.deadline:  # failed before any send: the budget runs from here (no endless retries)
                    self.deadline = now() + DEADLINE
                if self._count_failure(e):
                    break
        return self._give_up()

    def _send(self, left: float) -> None:
        """Send on the current proxy/protocol and arm the read timeout (CachedClosed: a fresh channel)."""
        assert self.proxy is not None
        while True:
            chan = self.proxy.channel(self.proto)
            try:
                self.qid = chan.send(self, self.req.wire)
            except CachedClosed:
                self.resends += 1
                if self.resends > MAX_RESENDS:
                    raise
                continue
            break
        self.chan = chan
        off = self.fwd.clock
        self.sent = sent = perf_counter() + off if off is not None else now()
        if not self.deadline:
            self.deadline = sent + DEADLINE
        rt = self.proxy.read_timeout  # forward's read_timeout; DoH: 2 s (CoreDNS's http.Client timeout)
        self.expires = sent + rt
        if rt > left:  # the overall budget ends first
            self.timer = call_at(sent + left, self._timeout)
        elif chan.sweeps:  # the common case: the channel's sweep times it out (proxy.Expiry), no timer
            if chan.sweep is None:
                chan.watch(self.expires)
        else:
            self.timer = call_later(rt, self._timeout)

    def _resend(self) -> int:
        """The same upstream again at once (TC retry over TCP, a pooled connection that closed)."""
        left = self.deadline - now()
        self.resends += 1
        if left <= 0 or self.resends > MAX_RESENDS:
            return self._after_failure(UpstreamError("i/o timeout"))
        try:
            self._send(left)
        except UpstreamError as e:
            return self._after_failure(e)
        return PENDING  # type: ignore[no-any-return]

    def _count_failure(self, e: UpstreamError) -> bool:
        """Note a failed attempt; True when max_connect_attempts is reached."""
        self.last_err = e
        if self.fwd.max_fails and self.proxy is not None:
            self.proxy.healthcheck()
        self.attempts += 1
        return bool(self.cap and self.attempts >= self.cap)

    def _after_failure(self, e: UpstreamError) -> int:
        if self._count_failure(e):
            return self._give_up()
        return self.attempt()

    def _give_up(self) -> int:
        if self.last_err is not None:
            raise PluginError(wire.SERVFAIL, str(self.last_err))
        raise PluginError(wire.SERVFAIL, "no healthy proxies")

    # -- callbacks -------------------------------------------------------------------------------
    def on_reply(self, data: bytes) -> None:
        if self.chan is None:
            return  # not waiting (a late duplicate delivery)
        self.chan = None  # _stop_waiting, inlined: this runs for every reply
        timer = self.timer
        if timer is not None:
            timer.fn = None  # Timer.cancel(), inlined
            self.timer = None
        self._continue(self._reply, data)

    def on_error(self, err: UpstreamError) -> None:
        if self._stop_waiting():
            self._continue(self._error, err)

    def _timeout(self) -> None:
        chan = self.chan
        if chan is None:
            return
        self.timer = None
        self.chan = None
        err = chan.timed_out(self.qid, self, self.sent)
        self._continue(self._error, err)

    def _stop_waiting(self) -> bool:
        if self.chan is None:
            return False  # not waiting (a late duplicate delivery)
        self.chan = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        return True

    def _continue(self, step: Callable[[Any], int], arg: Any) -> None:
        """Run one step from a callback; complete the query through the writer unless still pending."""
        error: Exception | None = None
        try:
            rc = step(arg)
        except PluginError as e:
            rc, error = e.rcode, e
        except Exception as e:  # a bug: a panic for this query, never for the channel's reader
            rc, error = wire.SERVFAIL, e
        if rc is PENDING and not self.handed_over:
            return
        if not self.released:  # release(), inlined
            self.released = True
            self.fwd.concurrent -= 1
        if rc is not PENDING:
            complete(self.w, rc, error)

    def _error(self, err: UpstreamError) -> int:
        if isinstance(err, CachedClosed):
            return self._resend()
        return self._after_failure(err)

    def _reply(self, data: bytes) -> int:
        fwd, req, proxy = self.fwd, self.req, self.proxy
        assert proxy is not None
        n = len(data)
        udp = self.proto == "udp" and proxy.transport == "dns"
        if udp and n > 512 and n > req.size():  # size() is never below 512
            data = truncated_reply(data)
            n = len(data)
        if n < 12:
            return self._after_failure(UpstreamError("dns: overflow unpacking uint16"))
        # Decided before `accept`, which keeps the header's QR and QDCOUNT and the question as they are:
        # a matching question is not walked again there.
        qend = _matches(req, data)
        if qend and data[6:12] == _NO_RECORDS:  # the question and nothing after it (an NXDOMAIN without
            if qend != n:  # SOA): what `accept` makes of it without its call; trailing bytes dropped
                data = data[:qend]
        else:
            try:  # what miekg's ReadMsg makes of the reply (proxy.check_reply, inlined)
                data = accept(data, udp, qend)
            except (wire.WireError, struct.error, IndexError) as e:
                return self._after_failure(UpstreamError(f"dns: bad reply: {e}"))
        rcode = data[3] & 0x0F
        off = fwd.clock
        t = perf_counter() + off if off is not None else now()
        request_duration.observe(t - self.sent, proxy.proxy_name, proxy.to, RCODE_TEXT[rcode])
        if self.proto == "udp" and fwd.prefer_udp and not fwd.force_tcp and data[2] & 0x02:
            self.proto = "tcp"  # truncated: retry over TCP
            return self._resend()
        if not qend:
            self.w.write(req.empty_reply(wire.FORMERR))
            return 0
        if rcode in fwd.failover_rcodes and self.failovers < len(self.proxies) - 1:
            self.failovers += 1  # not reset when the list wraps: after n replies the last one is written
            return self.attempt()
        if rcode in fwd.next_rcodes and isinstance(fwd.next, Forward):
            self.handed_over = True
            return fwd.next_continue(req, self.w)
        if fwd.next_on_nodata and rcode == wire.NOERROR and data[6:8] == b"\x00\x00" and isinstance(fwd.next, Forward):
            self.handed_over = True  # CoreDNS's next_on_nodata: an empty answer section
            return fwd.next_continue(req, self.w)
        self.w.write(req.wire[:2] + data[2:])
        return 0


def _matches(req: Request, reply: bytes) -> int:
    """CoreDNS request.Match: a response with one question of the same (case-insensitive) name and
    type. The end of that question when it matches, else 0.

    Compared on the wire without walking the reply's name: `lower()` only changes bytes 65-90, never a
    label length (at most 63), so the lowered bytes equal the query's name only where the reply holds
    the same labels (a compression pointer, 0xC0 and up, never equals one). 0.69 -> 0.36 µs."""
    qn = req.qname_wire
    end = 12 + len(qn)
    if (reply[2] & 0x80 and reply[4] == 0 and reply[5] == 1 and len(reply) >= end + 4
            and (reply.startswith(qn, 12) or reply[12:end].lower() == qn)  # the first: no copy, the usual case
            and ((reply[end] << 8) | reply[end + 1]) == req.qtype):
        return end + 4
    return 0
