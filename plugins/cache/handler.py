"""cache's handler: a positive and a denial cache in front of the rest of the chain.

Hits are served synchronously from stored wire bytes (`serve_fast`, no dnslib, no task); misses
run the rest of the chain with a writer that classifies the reply, stores it and writes it downstream
with uniform TTLs. Prefetch, serve_stale refreshes and `verify` continue the chain below by callback
(no task), one refresh per entry at a time.
"""

from __future__ import annotations

import math
import struct
import time
from functools import partial

from pycoredns import wire
from pycoredns.log import plugin_logger
from pycoredns.plugin import PENDING, Handler, PluginError, await_pending, call_later, complete
from pycoredns.request import Recorder, Request, ResponseWriter, WriterWrapper
from pycoredns.timers import Timer
from pycoredns.util import zone_match
from pycoredns.wire import Reply

from .metrics import (
    Labels,
    drops_total,
    evictions_total,
    hits_total,
    inc,
    misses_total,
    prefetch_total,
    requests_total,
    served_stale_total,
)
from .store import (
    DELEGATION,
    META,
    NAMEERROR,
    NODATA,
    NOERROR,
    OTHERERROR,
    SERVERERROR,
    XFR,
    Entry,
    Store,
    analyze,
)

log = plugin_logger("cache")

MAX_TTL = 3600
MAX_NTTL = 1800
MIN_TTL = 5
DEFAULT_CAP = 10000
DEFAULT_PREFETCH_WINDOW = 60.0
DEFAULT_PERCENTAGE = 10
NO_RRS_TTL = 5  # a reply without records is kept this long (before clamping)
ZONE_MEMO_SIZE = 16384  # qnames whose zone membership is remembered (cleared when full)
REFRESH_LIMIT = 30.0  # a `verify` client waits this long at most for a refresh without VERIFY_TIMEOUT
OPCODE = wire.OPCODE_MASK  # opcode bits of the flags word
_I = struct.Struct(">I")
_pack_ttl = _I.pack
COMPLETE = (wire.NOERROR, wire.NXDOMAIN)  # rcodes of a complete reply (RFC 8767: a refresh may replace)
AD, CD, TC = wire.AD, wire.CD, wire.TC
_QUESTION_ONLY = b"\x00\x01" + bytes(6)  # QDCOUNT 1, no records: header bytes 4-12 of a reply without any
_KEPT_EMPTY = (wire.NOERROR, wire.SERVFAIL, wire.NOTIMP)  # rcodes whose reply without records is stored
_monotonic = time.monotonic
_new = object.__new__

# -- the handler --------------------------------------------------------------------------------


class Cache(Handler):
    name = "cache"

    def __init__(self) -> None:
        self.zones: list[str] = ["."]
        self.zones_label = "."
        self.server = ""
        self.pcap = DEFAULT_CAP
        self.pttl = float(MAX_TTL)
        self.minpttl = float(MIN_TTL)
        self.ncap = DEFAULT_CAP
        self.nttl = float(MAX_NTTL)
        self.minnttl = float(MIN_TTL)
        self.failttl = float(MIN_TTL)
        self.prefetch = 0
        self.prefetch_window = DEFAULT_PREFETCH_WINDOW
        self.percentage = DEFAULT_PERCENTAGE
        self.stale_up_to = 0.0
        self.verify = False
        self.verify_timeout = 0.0
        self.stale_ttl = 0
        self.failure_recheck = 0.0
        self.prefer_positive = False
        self.pexcept: list[str] = []
        self.nexcept: list[str] = []
        self.keepttl = False
        self.pcache: Store
        self.ncache: Store
        self._all: bool
        self._zone_wires: frozenset[bytes]
        self._zone_memo: dict[bytes, bool]
        self._labels: dict[object, Labels] = {}
        self._lifetimes: list[tuple[float, float, bool]]
        self.finish()  # the defaults' stores and tables; setup calls it again with the options

    def finish(self) -> None:
        """Build the stores, the zone matcher and the lifetime table once the options are known."""
        self.pcache = Store(self.pcap)
        self.ncache = Store(self.ncap)
        self.zones_label = ",".join(self.zones)
        self._all = "." in self.zones
        self._zone_wires = frozenset(wire.text_to_wire(z).lower() for z in self.zones)
        self._zone_memo = {}
        # Per reply class (store.analyze's kinds): (MINTTL, TTL, positive) of the cache that takes it.
        pos, neg = (self.minpttl, self.pttl, True), (self.minnttl, self.nttl, False)
        fail, other = (self.failttl, self.failttl, False), (self.minpttl, self.pttl, False)
        table = {NOERROR: pos, DELEGATION: pos, NODATA: neg, NAMEERROR: neg, SERVERERROR: fail, OTHERERROR: other}
        self._lifetimes = [table[k] for k in range(META)]

    # -- keys, zones, labels ------------------------------------------------------------------
    def in_zones(self, qn: bytes) -> bool:
        """Whether the lowercased wire qname is at or below one of our zones (label-wise); memoised
        per qname (bounded), as the listener's routing is: node-local's cluster.local block asks it for
        every query."""
        if self._all:
            return True
        memo = self._zone_memo
        inside = memo.get(qn)
        if inside is None:
            inside = self._walk_zones(qn)
            if len(memo) >= ZONE_MEMO_SIZE:
                memo.clear()
            memo[qn] = inside
        return inside

    def _walk_zones(self, qn: bytes) -> bool:
        zw = self._zone_wires
        off = 0
        while True:
            if (qn[off:] if off else qn) in zw:
                return True
            n = qn[off]
            if n == 0:
                return False
            off += 1 + n

    def labels(self, req: Request) -> Labels:
        """Metric labels for the listener the request came in on (cached per listener object)."""
        lst = req.listener
        lb = self._labels.get(lst)
        if lb is None:
            server = lst.label if lst is not None else self.server
            lb = self._labels[lst] = Labels(server, self.zones_label)
        return lb

    def lookup(self, key: tuple, now: float) -> Entry | None:
        """The entry to answer from (fresh or servable stale), denial first as in CoreDNS."""
        n = self.ncache.entries.get(key)
        p = self.pcache.entries.get(key)
        if p is not None and self.prefer_positive and self._servable(p, now):
            return p
        if n is not None and self._servable(n, now):
            if n.servfail and p is not None and p.ttl(now) > 0:
                return p  # HEAD: a cached SERVFAIL does not hide a still-valid positive entry
            return n
        if p is not None and self._servable(p, now):
            return p
        return None

    def _servable(self, e: Entry, now: float) -> bool:
        ttl = e.ttl(now)
        return ttl > 0 or (self.stale_up_to > 0 and -ttl < self.stale_up_to)

    # -- the hot path ---------------------------------------------------------------------------
    def serve_fast(self, req: Request, w: ResponseWriter) -> int | None:
        if req.flags & OPCODE or (not self._all and not self.in_zones(req.qname_wire)):
            return self.next_continue(req, w)  # not a QUERY (HEAD passes NOTIFY/UPDATE on), or not our zones
        edns = req.edns
        do = edns is not None and edns.do
        key = (req.qname_wire, req.qtype, req.qclass, do, bool(req.flags & CD))  # key_of, inline
        now = _monotonic()
        denials = self.ncache.entries
        # With a denial entry for the key the full lookup rules apply; else (the common case) only the
        # positive map is looked at.
        e = self.lookup(key, now) if denials and key in denials else self.pcache.entries.get(key)
        if e is not None:
            ttl = e.orig_ttl - int(now - e.stored)
            if ttl > 0:  # a fresh hit
                lb = self._labels.get(req.listener) or self.labels(req)
                v = requests_total.values
                v[lb.plain] = v.get(lb.plain, 0.0) + 1.0
                k = lb.success if e.positive else lb.denial
                v = hits_total.values
                v[k] = v.get(k, 0.0) + 1.0
                if self.prefetch > 0 and self._should_prefetch(e, now, ttl):
                    self.start_refresh(req, key, e, now, prefetch=True)
                return _write_hit(req, w, e, do, e.orig_ttl if self.keepttl else ttl)
            rc = self._serve_stale(req, w, key, e, now, ttl, do)
            if rc is not None:
                return rc
            # Only `verify` leaves a servable entry unanswered (a stale one: ask the chain first).
            if self.verify and self._servable(e, now):
                return self._verify(req, w, key, e, do)
        # A miss: synchronous backends (whoami, hosts, precomputed answers) fill the cache here.
        # The miss decision (key, writer) is made once: if the chain below must wait, it completes
        # through the writer (PENDING), never through a slow path that would look the key up again.
        lb = self._labels.get(req.listener) or self.labels(req)
        v = requests_total.values
        v[lb.plain] = v.get(lb.plain, 0.0) + 1.0
        v = misses_total.values
        v[lb.plain] = v.get(lb.plain, 0.0) + 1.0
        dreq = req if req.flags & AD else req.with_flags(req.flags | AD)  # `downstream`, inline
        cw = _new(CacheWriter)  # CacheWriter(...) without the class call: __init__ as a method
        cw.__init__(w, self, req, key, lb)  # type: ignore[misc]  # exactly CacheWriter
        return self.next_continue(dreq, cw)

    def _serve_stale(self, req: Request, w: ResponseWriter, key: tuple, e: Entry, now: float, ttl: int,
                     do: bool) -> int | None:
        """An expired entry: answered within the serve_stale window (in `verify` mode only without
        waiting), with a refresh started; None when it must not be served now."""
        if not (self.stale_up_to > 0 and -ttl < self.stale_up_to):
            return None
        if self.verify and not self._hold_stale(e, now):
            return None
        lb = self.labels(req)
        inc(requests_total, lb.plain)
        inc(hits_total, lb.success if e.positive else lb.denial)
        inc(served_stale_total, lb.plain)
        if not self.verify:
            self.start_refresh(req, key, e, now, prefetch=False)
        return _write_hit(req, w, e, do, self.stale_ttl)

    def _should_prefetch(self, e: Entry, now: float, ttl: int) -> bool:
        hits = e.popular(self.prefetch_window, now)
        threshold = math.ceil(self.percentage / 100 * e.orig_ttl)
        return hits >= self.prefetch and ttl <= threshold and not e.refreshing

    def _hold_stale(self, e: Entry, now: float) -> bool:
        """verify mode with FAILURE_RECHECK: serve stale while a refresh runs or after a failure."""
        if self.failure_recheck <= 0:
            return False
        return e.refreshing or now - e.failed_at < self.failure_recheck

    # -- the slow path --------------------------------------------------------------------------
    async def serve_dns(self, req: Request, w: ResponseWriter) -> int:
        """The fast path, awaited: it never needs a task of its own (misses and `verify` continue)."""
        return await await_pending(self.serve_fast, req, w)

    def _verify(self, req: Request, w: ResponseWriter, key: tuple, e: Entry, do: bool) -> int:
        """serve_stale `verify`: refresh through the chain (by continuation) and answer what it brings
        if acceptable, else the stale entry. With VERIFY_TIMEOUT (else REFRESH_LIMIT) the stale entry
        goes out when the refresh takes longer, and the refresh goes on and updates the cache.
        The rcode, or PENDING."""
        lb = self.labels(req)
        inc(requests_total, lb.plain)
        inc(hits_total, lb.success if e.positive else lb.denial)
        rec = RefreshWriter(self, req, key, e)
        dreq = self.downstream(req, req.proto)
        timer: Timer | None = None
        waiting = False  # PENDING was returned: the answer completes w

        def answer() -> int:
            """The refreshed reply, else the stale entry (once: the refresh or the deadline)."""
            nonlocal timer
            rec.on_done = partial(self._refreshed, dreq, e)  # from now on a late refresh only updates
            if timer is not None:
                timer.cancel()
                timer = None
            if rec.refreshed and rec.out is not None:
                w.write(rec.out)
                return rec.rc
            inc(served_stale_total, lb.plain)
            return _write_hit(req, w, e, do, self.stale_ttl)

        def refreshed(_rec: Recorder) -> None:
            self._refreshed(dreq, e, rec)
            if waiting:
                complete(w, answer())

        def deadline() -> None:
            complete(w, answer())

        rec.on_done = refreshed
        e.refreshing = True
        self._continue(dreq, rec)
        if rec.rcode is not None:  # the chain answered at once
            return answer()
        waiting = True
        timer = call_later(self.verify_timeout if self.verify_timeout > 0 else REFRESH_LIMIT, deadline)
        return PENDING  # type: ignore[no-any-return]

    # -- refreshes ------------------------------------------------------------------------------
    def downstream(self, req: Request, proto: str) -> Request:
        """The query the rest of the chain sees: a copy with AD set (HEAD), same id and question."""
        if req.flags & wire.AD and proto == req.proto:
            return req
        return req.with_flags(req.flags | wire.AD, proto)

    def start_refresh(self, req: Request, key: tuple, e: Entry, now: float, prefetch: bool) -> None:
        """Refresh `e` in the background: at most one in flight per entry, none within FAILURE_RECHECK."""
        if e.refreshing or now - e.failed_at < self.failure_recheck:
            return
        e.refreshing = True
        if prefetch:
            inc(prefetch_total, self.labels(req).plain)
        # Like CoreDNS, the refresh claims TCP so that nothing truncates the reply. It is a continuation
        # of the chain below (no task when that chain completes by callback, as forward does).
        dreq = self.downstream(req, "tcp")
        rec = RefreshWriter(self, req, key, e)
        rec.on_done = partial(self._refreshed, dreq, e)
        self._continue(dreq, rec)

    def _continue(self, dreq: Request, rec: RefreshWriter) -> None:
        """Run the chain below for a refresh; `rec.done` runs when it completes (maybe at once)."""
        try:
            rc = self.next_continue(dreq, rec)
        except Exception as ex:
            rec.done(wire.SERVFAIL, ex)
            return
        if rc is not PENDING:
            rec.done(rc)

    def _refreshed(self, dreq: Request, e: Entry, rec: Recorder) -> None:
        """A refresh completed: keep the popularity, or note the failure (FAILURE_RECHECK)."""
        assert isinstance(rec, RefreshWriter)
        ex = rec.error
        if isinstance(ex, PluginError):
            log.debug(f"refresh of {dreq.name} failed: {ex}")
        elif ex is not None:  # a broken plugin below must not take the cache down
            log.warning(f"refresh of {dreq.name} failed: {type(ex).__name__}: {ex}")
        e.refreshing = False
        if rec.refreshed:
            if rec.entry is not None:  # keep the popularity gathered so far (freq.Reset)
                rec.entry.hits = e.hits
                rec.entry.last = time.monotonic()
        else:
            e.failed_at = time.monotonic()

    # -- storing --------------------------------------------------------------------------------
    def ingest(self, req: Request, key: tuple, reply: Reply,
               refresh_of: Entry | None = None, lb: Labels | None = None) -> tuple[Reply, Entry | None, bool]:
        """Classify and maybe store a reply: (what to write downstream, stored entry, refreshed).

        `refreshed` tells a refresh whether the reply may replace the stale entry (RFC 8767: a
        matching, complete NOERROR or NXDOMAIN). A reply that does not unpack is passed on as it is
        and counted in coredns_cache_drops_total.
        """
        if lb is None:
            lb = self.labels(req)
        data = reply if type(reply) is bytes else wire.to_bytes(reply)
        edns = req.edns
        ad_off = not (edns is not None and edns.do) and not req.flags & AD  # AD only for DNSSEC or AD askers
        if (refresh_of is None and data[4:12] == _QUESTION_ONLY and data[2] & 0xF8 == 0x80
                and data[3] & 0xF not in _KEPT_EMPTY and req.qtype not in XFR
                and data.startswith(req.wire[12 : req.qend], 12)):
            # A reply without records (the question echoed, QR, a QUERY) whose rcode is not NOERROR,
            # SERVFAIL or NOTIMP: OTHERERROR, never stored, TTLs none, what `analyze` would find without
            # its walk (an NXDOMAIN without SOA, a REFUSED: the node-local row's misses).
            return ((_without_ad(data) if ad_off and data[3] & AD else data), None,
                    data[3] & 0xF == wire.NXDOMAIN and not data[2] & 0x02)
        try:
            kind, matched, qend, ttls, min_ttl, max_ttl, message = analyze(data, req)
        except Exception:
            inc(drops_total, lb.plain)
            return reply, None, False
        if kind >= META:  # not stored; AD cleared all the same (CoreDNS)
            return (_without_ad(data) if ad_off and data[3] & AD else data), None, False
        rcode_tc = data[3] & 0xF | (data[2] & 0x02) << 8  # the rcode, and TC as 0x200
        msg_ttl = NO_RRS_TTL if min_ttl < 0 else min_ttl
        lo, hi, positive = self._lifetimes[kind]
        low = msg_ttl if msg_ttl > lo else lo  # min(max(msg_ttl, lo), hi), inline
        duration = low if low < hi else hi
        ttl = int(duration)
        refreshed = matched and rcode_tc in COMPLETE  # NOERROR or NXDOMAIN, TC clear
        if refresh_of is not None and refresh_of.positive and not positive and self.prefer_positive:
            refreshed = False  # last-known-good positive answer wins over a new denial
        entry = None
        if not rcode_tc & 0x200 and kind != OTHERERROR and duration > 0:
            if not matched:
                inc(drops_total, lb.plain)
            elif refresh_of is None or refreshed:
                entry = self._store(req, key, message, qend, ttl, positive, lb)
        # Downstream with uniform TTLs: rewritten unless they all are `ttl` already.
        if min_ttl >= 0 and not min_ttl == max_ttl == ttl:
            if len(ttls) == 1 and not (ad_off and data[3] & AD):  # one record: two slices, no bytearray
                o = ttls[0]
                return data[:o] + _pack_ttl(ttl) + data[o + 4 :], entry, refreshed
            out = bytearray(data)
            pack = _I.pack_into
            for o in ttls:
                pack(out, o, ttl)
            if ad_off:
                out[3] &= ~AD & 0xFF
            return bytes(out), entry, refreshed
        return (_without_ad(data) if ad_off and data[3] & AD else data), entry, refreshed

    def _store(self, req: Request, key: tuple, message: bytes, qend: int, ttl: int, positive: bool,
               lb: Labels) -> Entry | None:
        zones = self.pexcept if positive else self.nexcept
        if zones and zone_match(zones, req.name) is not None:
            return None
        entry = Entry(message, qend, None, ttl, _monotonic(), positive)
        if positive:
            if self.pcache.add(key, entry):
                v = evictions_total.values
                v[lb.success] = v.get(lb.success, 0.0) + 1.0  # inc, inline: every miss of a full cache
            if self.ncache.entries:
                self.ncache.remove(key)  # a positive answer supersedes a cached denial
        else:
            if self.ncache.add(key, entry):
                inc(evictions_total, lb.denial)
            if not entry.servfail and not self.prefer_positive:
                self.pcache.remove(key)
        return entry


def key_of(req: Request) -> tuple[tuple, bool]:
    """(cache key, DO): lowercased wire qname, qtype, qclass, DO, CD."""
    qn = req.qname_wire
    edns = req.edns
    do = edns is not None and edns.do
    return (qn, req.qtype, req.qclass, do, bool(req.flags & wire.CD)), do


def _without_ad(data: bytes) -> bytes:
    return data[:3] + bytes([data[3] & ~AD & 0xFF]) + data[4:]


def _write_hit(req: Request, w: ResponseWriter, e: Entry, do: bool, ttl: int) -> int:
    """Write the stored reply tailored to `req` (AD only for DO or AD requests); the rcode to return."""
    w.write(e.reply(req.id, req.flags, req.wire[12 : req.qend], do or bool(req.flags & wire.AD), ttl))
    return e.ret


# -- writers ------------------------------------------------------------------------------------


class CacheWriter(WriterWrapper):
    """A miss: store what the chain writes, then pass it on with uniform TTLs. The completion goes
    straight to the writer below (`done` is its bound method, set per miss: no frame of ours)."""

    __slots__ = ("cache", "done", "key", "lb", "req")

    def __init__(self, inner: ResponseWriter, cache: Cache, req: Request, key: tuple,
                 lb: Labels | None = None) -> None:
        self.written = False  # WriterWrapper's state, set here: made once per miss
        self.inner = inner
        self.done = inner.done  # type: ignore[method-assign]
        self.cache = cache
        self.req = req
        self.key = key
        self.lb = lb

    def write(self, reply: Reply) -> None:
        out, _entry, _ok = self.cache.ingest(self.req, self.key, reply, None, self.lb)
        self.written = True
        self.inner.write(out)


class RefreshWriter(Recorder):
    """A prefetch, stale refresh or verify: store an acceptable reply, keep it, send nothing."""

    __slots__ = ("cache", "entry", "key", "old", "out", "rc", "refreshed", "req")

    def __init__(self, cache: Cache, req: Request, key: tuple, old: Entry) -> None:
        super().__init__()
        self.cache = cache
        self.req = req
        self.key = key
        self.old = old
        self.out: bytes | None = None  # the reply as the client would get it (set when refreshed)
        self.entry: Entry | None = None
        self.refreshed = False
        self.rc = 0

    def write(self, reply: Reply) -> None:
        if self.written:
            return
        super().write(reply)
        out, self.entry, self.refreshed = self.cache.ingest(self.req, self.key, reply, self.old)
        if self.refreshed:
            self.out = wire.to_bytes(out)
            self.rc = self.out[3] & 0xF
