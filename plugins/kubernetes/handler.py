"""kubernetes' handler: answers from the record index, waits only for ExternalName self-lookups.

The watch thread (`watch.py`) feeds reduced objects into the record index
(`index.py`), which precomputes wire answers. `serve_fast` answers from that index without waiting;
only ExternalName A/AAAA waits, for a self-lookup of the target by continuation (`self_lookup`: no task).
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import trio
from dnslib import DNSLabel, DNSRecord

from pycoredns import wire
from pycoredns.layout import layout_of, uncompressed
from pycoredns.log import plugin_logger
from pycoredns.plugin import NEXT, Handler, await_pending, self_lookup
from pycoredns.request import Request, ResponseWriter
from pycoredns.util import Fallthrough, normalize_zones, zone_match
from pycoredns.wire import Reply

from . import objects
from .external import ExternalMixin
from .index import AAAA, CNAME, NS, OWNER, PTR, SOA, SRV, TXT, A, Index, addr_rr, label, rr, zone_pointer
from .metadata import MetadataMixin
from .metrics import programming_duration, rate_limiter_duration, request_duration, requests_total
from .watch import POD_FIELD_SELECTOR, Connection, KindSpec, Watcher
from .xfr import TransferMixin

log = plugin_logger("kubernetes")

DNS_SCHEMA_VERSION = "1.1.0"
AXFR, IXFR = wire.TYPE_AXFR, wire.TYPE_IXFR
REBUILD_STEP = 4  # services rebuilt per Index.apply call (a failing one skips these)
REBUILD_SLICE = 0.001  # seconds of rebuilding between two yields to the query loop
KEPT_FLAGS = wire.OPCODE_MASK | wire.RD | wire.CD  # a reply's flags from the query's (miekg SetReply)
_REPLY_FLAGS: dict[int, bytes] = {}  # kept flags | rcode -> flags + QDCOUNT of a hit's header (<= 1,024)

REDUCERS: dict[str, Callable[..., Any]] = {"namespaces": objects.reduce_namespace, "services": objects.reduce_service,
                                          "endpointslices": objects.reduce_slice, "pods": objects.reduce_pod}


def interface_ips() -> list[str]:
    """Every address of every interface, as Go's net.InterfaceAddrs lists them (Linux: the first IPv4
    address of each interface through SIOCGIFADDR, every IPv6 address from /proc/net/if_inet6)."""
    import fcntl

    out: list[str] = []
    for _idx, ifname in socket.if_nameindex():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                req = struct.pack("256s", ifname.encode()[:15])
                out.append(socket.inet_ntoa(fcntl.ioctl(s.fileno(), 0x8915, req)[20:24]))  # SIOCGIFADDR
            except OSError:
                pass
    try:
        with open("/proc/net/if_inet6") as f:
            for line in f:
                h = line.split()[0]
                out.append(str(ipaddress.IPv6Address(bytes.fromhex(h))))
    except (OSError, ValueError, IndexError):
        pass
    return out


def local_ips(listen_hosts: list[str] | None = None) -> list[str]:
    """CoreDNS's boundIPs: the non-loopback addresses of this host behind `ns.dns.<zone>`. With `bind`,
    CoreDNS 1.14.7 parses the bound hosts as CIDRs, which plain addresses are not, so it knows none."""
    if listen_hosts and listen_hosts[0]:
        return []
    found: list[str] = []
    candidates: list[str] = []
    try:
        candidates += interface_ips()
    except OSError:
        pass
    try:
        candidates += [str(ai[4][0]) for ai in socket.getaddrinfo(socket.gethostname(), None)]
    except OSError:
        pass
    for fam, probe in ((socket.AF_INET, "10.255.255.255"), (socket.AF_INET6, "fd00::1")):
        try:
            with socket.socket(fam, socket.SOCK_DGRAM) as s:
                s.connect((probe, 53))
                candidates.append(s.getsockname()[0])
        except OSError:
            pass
    for ip in candidates:
        try:
            a = ipaddress.ip_address(ip.split("%")[0])
        except ValueError:
            continue
        if not (a.is_loopback or a.is_unspecified) and str(a) not in found:
            found.append(str(a))
    return found


def resolv_search(path: str = "/etc/resolv.conf") -> list[str]:
    """Search domains of this host's resolv.conf (autopath appends them)."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    out: list[str] = []
    for line in lines:
        parts = line.split()
        if parts and parts[0] in ("search", "domain"):
            out = normalize_zones(parts[1:])
    return out


class Kubernetes(ExternalMixin, TransferMixin, MetadataMixin, Handler):
    name = "kubernetes"

    def __init__(self, zones: list[str]) -> None:
        self.zones = zones
        # CoreDNS's IsReverse wants a label before in-addr.arpa./ip6.arpa., so those apexes count as
        # "non-reverse" when it picks the primary zone (PTR targets live there)
        self.primary = next(z for z in zones if not _below_reverse(z))
        self.ttl = 5
        self.pods = "disabled"
        self.pod_names = False
        self.endpoints = True
        self.ignore_empty = False
        self.namespaces: list[str] = []
        self.namespace_labels = ""
        self.labels = ""
        self.fall = Fallthrough()
        self.startup_timeout = 5.0
        self.conn = Connection()
        self.index: Index | None = None
        self.synced = False
        self._synced = trio.Event()  # set with `synced`: start() waits on it, not by polling
        self.serving_unsynced = False  # startup gave up waiting: apply partial state as it comes
        self._rebuild_needed = trio.Event()
        self.activated = trio.Event()  # set once the configuration serves (Controller.on_serving)
        self._programmed: list[tuple[str, float]] = []  # (service kind, trigger time) awaiting a rebuild
        self.watcher: Watcher | None = None
        self.local_ips: list[str] = []
        self.listen_hosts: list[str] = []  # `bind`'s hosts, read at setup as CoreDNS does
        self.search = resolv_search()
        self._needed: set[str] = set()
        self._zone_labels = {z: len(wire.label_offsets(wire.text_to_wire(z))) - 1 for z in zones}
        self._zone_wires = _longest_first(zones)  # `decide` matches zones on the wire name
        self._fall_wires: list[tuple[bytes, str]] = []
        self._fall_of: list[str] | None = None  # the `fall.zones` list `_fall_wires` was made from

    # -- lifecycle ----------------------------------------------------------------------------
    def build(self) -> None:
        """Create the index once the options are known."""
        fwd = [z for z in self.zones if not _is_reverse(z)] or [self.primary]
        rev = [z for z in self.zones if _is_reverse(z)]
        self.index = Index(fwd, self.ttl, self.pod_names, self.endpoints, self.ignore_empty, self.namespaces, rev)
        self._needed = {"namespaces", "services"}
        if self.endpoints:
            self._needed.add("endpointslices")
        if self.pods == "verified":
            self._needed.add("pods")
        self.local_ips = local_ips(self.listen_hosts)

    def kinds(self) -> list[KindSpec]:
        out = []
        for k in ("namespaces", "services", "endpointslices", "pods"):
            if k not in self._needed:
                continue
            reduce = REDUCERS[k]
            if k == "endpointslices":
                reduce = partial(objects.reduce_slice, keep_targets=self.pod_names)
            out.append(KindSpec(k, self.namespace_labels if k == "namespaces" else self.labels,
                                POD_FIELD_SELECTOR if k == "pods" else "", reduce))
        return out

    async def start(self) -> None:
        """on_startup: start watching and block until synced or `startup_timeout` passes."""
        self.watcher = Watcher(self.conn, self.kinds(), self.deliver)
        self.watcher.start()
        deadline = trio.current_time() + self.startup_timeout
        while not self.synced:
            now = trio.current_time()
            if now >= deadline:
                log.warning("starting server with unsynced Kubernetes API")
                self.serving_unsynced = True
                self._rebuild_needed.set()  # serve what has arrived so far
                return
            with trio.move_on_after(min(0.5, deadline - now)):
                await self._synced.wait()
            if not self.synced:
                log.info("waiting for Kubernetes API before starting server")

    async def rebuilder(self) -> None:
        """Background task: rebuild dirty services in chunks, yielding to queries in between.

        A relist or the first sync of a large cluster can touch thousands of services; done in one go
        on the trio loop it would stall every query (a reload's old configuration serves meanwhile).
        The first build runs here too, after `synced` (every kind listed): queries meanwhile build
        the one service they need first (`Index.settle`). It yields every REBUILD_SLICE: the start
        that follows `synced` (listeners, the /ready route) waits for the loop at each step, and with
        100 services between yields (~12 ms) /ready answered 105-158 ms after the last list instead
        of 8-9 ms (5k x 10, load 4-5). It starts once the configuration serves: a build running
        beside the start still took one slice per step of the start (listeners, HTTP servers, the route
        swap), ~10 ms from the last list to /ready.
        """
        idx = self.index
        assert idx is not None
        clock = time.perf_counter
        await self.activated.wait()
        while True:
            await self._rebuild_needed.wait()
            self._rebuild_needed = trio.Event()
            while idx.dirty:
                until = clock() + REBUILD_SLICE
                while idx.dirty and clock() < until:
                    try:
                        idx.apply(REBUILD_STEP)
                    except Exception as e:  # one odd object must not take the server down (the step is skipped)
                        log.error(f"building answers failed: {type(e).__name__}: {e}")
                await trio.sleep(0)
            now = time.time()
            for kind, trigger in self._programmed:  # from the change to its answers being served
                programming_duration.observe(max(0.0, now - trigger), kind)
            self._programmed.clear()

    async def stop(self) -> None:
        if self.watcher is not None:
            w, self.watcher = self.watcher, None
            await trio.to_thread.run_sync(w.stop)

    def ready(self) -> bool:
        return self.synced

    def deliver(self, batch: list[tuple]) -> None:
        """Apply a batch of events from the watch thread (trio loop, never raises)."""
        idx = self.index
        assert idx is not None
        slices_seen: list[objects.Slice] = []
        for ev in batch:
            try:
                self._event(ev, slices_seen)
            except Exception as e:  # one odd event is skipped, the rest of the batch applies
                log.warning(f"skipping API event {str(ev)[:80]}: {type(e).__name__}: {e}")
        for sl in slices_seen:
            if sl.trigger is not None:
                svc = idx.services.get((sl.ns, sl.service))
                kind = "cluster_ip" if svc is None or not svc.headless else (
                    "headless_with_selector" if svc.selector else "headless_without_selector")
                self._programmed.append((kind, sl.trigger))
        lists_done = self._needed <= idx.synced_kinds
        # before the first full list the rebuild waits for every kind: one build per service, not two
        if idx.dirty and (self.serving_unsynced or lists_done):
            self._rebuild_needed.set()
        if lists_done and not self.synced:
            # ready now, as CoreDNS once its informers synced: the answers are built in the
            # background (`rebuilder`), and a query first builds what it needs (`Index.settle`)
            idx.lazy = bool(idx.dirty)
            self.synced = True
            self._synced.set()

    def _event(self, ev: tuple, slices_seen: list[objects.Slice]) -> None:
        idx = self.index
        assert idx is not None
        op = ev[0]
        if op == "request":
            _op, verb, code, host, seconds, wait = ev
            requests_total.inc(code, verb, host)
            request_duration.observe(seconds, verb, host)
            rate_limiter_duration.observe(wait, verb, host)
        elif op == "synced":
            idx.synced_kinds.add(ev[1])
        elif op == "replace":
            kind, items = ev[1], ev[2]
            seen = {key for key, _ in items}
            for key in idx.keys_of(kind):
                if key not in seen:
                    self._set(kind, key, None)
            for key, obj in items:
                self._set(kind, key, obj)
        elif op == "upsert":
            self._set(ev[1], ev[2], ev[3])
            if ev[1] == "endpointslices" and ev[3] is not None:
                slices_seen.append(ev[3])
        elif op == "delete":
            self._set(ev[1], ev[2], None)
        else:
            raise ValueError(f"unknown event {op!r}")

    def _set(self, kind: str, key: tuple[str, str], obj: Any) -> None:
        idx = self.index
        assert idx is not None
        if kind not in REDUCERS:
            raise ValueError(f"unknown kind {kind!r}")
        if kind == "namespaces":
            idx.set_namespace(key[1], obj is not None)
            return
        if self.namespaces and key[0] not in self.namespaces and kind != "pods":
            obj = None  # `namespaces`: keep no services or slices of the others (pods stay for autopath)
        if kind == "services":
            idx.set_service(key, obj)
        elif kind == "endpointslices":
            idx.set_slice(key, obj)
        elif kind == "pods":
            idx.set_pod(key, obj)

    # -- autopath -------------------------------------------------------------------------------
    def autopath_search(self, req: Request) -> list[str] | None:
        """CoreDNS's AutoPath(): the client pod's search list, only with `pods verified`."""
        if self.pods != "verified" or self.index is None:
            return None
        nss = self.index.pod_ip_ns.get(req.remote[0].split("%")[0])
        if not nss:
            return None
        ns = next(iter(nss))
        z = self.primary
        return [f"{ns}.svc.{z}", f"svc.{z}", z, *self.search, ""]

    # -- serving --------------------------------------------------------------------------------
    def serve_fast(self, req: Request, w: ResponseWriter) -> int | None:
        idx = self.index
        if idx is not None:
            key = (req.qname_wire, req.qtype)
            hit = idx.answers.get(key)
            if hit is None and idx.lazy:
                idx.settle(key[0])
                hit = idx.answers.get(key)
            if hit is not None:
                return self._write_hit(req, w, hit)
            seen = idx.memo.get(key)  # before on_ask: a memoised outcome is what on_ask found nothing for
            if seen is not None:
                if seen is NEXT:
                    return self.next_fast(req, w)
                return self._write_hit(req, w, seen[1], seen[0])
            hit = idx.on_ask(key)
            if hit is not None:
                return self._write_hit(req, w, hit)
        out = self.decide(req)
        if isinstance(out, bytes):
            return self._write_alias(req, w, out)
        if out is NEXT:
            return self.next_fast(req, w)
        if isinstance(out, str):
            return self._external(req, w, out)  # ExternalName A/AAAA: a self-lookup, by continuation
        return self._emit(out, w)

    async def serve_dns(self, req: Request, w: ResponseWriter) -> int:
        idx = self.index
        if idx is not None:
            key = (req.qname_wire, req.qtype)
            hit = idx.answers.get(key)
            if hit is None and idx.lazy:
                idx.settle(key[0])
                hit = idx.answers.get(key)
            if hit is None and key not in idx.memo:
                hit = idx.on_ask(key)
            if hit is not None:
                return self._write_hit(req, w, hit)
            seen = idx.memo.get(key)
            if seen is not None and seen is not NEXT:
                return self._write_hit(req, w, seen[1], seen[0])
        out = self.decide(req)
        if isinstance(out, bytes):
            return self._write_alias(req, w, out)
        if out is NEXT:
            return await self.next_or_failure(req, w)
        if isinstance(out, str):
            return await await_pending(partial(self._external, target=out), req, w)
        return self._emit(out, w)

    def _write_hit(self, req: Request, w: ResponseWriter, hit: bytes, rcode: int = 0) -> int:
        """A precomputed or memoised answer: header (id, flags, QDCOUNT + the stored counts), question,
        records. Returns the rcode written."""
        data = req.wire
        kept = (req.flags & KEPT_FLAGS) | (rcode & 0x0F)  # what SetReply keeps of the query's flags, and the rcode
        flags = _REPLY_FLAGS.get(kept)
        if flags is None:
            flags = _REPLY_FLAGS[kept] = struct.pack(">HH", wire.QR | wire.AA | kept, 1)  # + QDCOUNT 1
        body = hit[6:]
        if req.qtype == SRV:
            qwire = data[12 : req.qend - 4]
            if qwire != req.qname_wire:
                # SRV targets cannot be compressed: give them the zone as the client spelled it
                zone = zone_match(self.zones, req.name)
                if zone is not None:
                    zw = wire.text_to_wire(zone)
                    body = body.replace(zw, qwire[len(qwire) - len(zw):])
        w.write(b"".join((data[:2], flags, hit[:6], data[12 : req.qend], body)))
        return rcode

    def _write_alias(self, req: Request, w: ResponseWriter, canon: bytes) -> int:
        """A `port.proto` name answered from its `_port._proto` twin `canon` (rare, so dnslib): the
        stored records point into a question with the twin's name, so unpack them that way and rename."""
        hit = self.index.answers[(canon, req.qtype)]  # type: ignore[union-attr]
        msg = DNSRecord.parse(b"".join((req.reply_header(0, aa=True)[:6], hit[:6], canon,
                                        req.question[-4:], hit[6:])))
        asked, twin = DNSLabel(wire.read_name(req.wire, 12)[0]), DNSLabel(wire.read_name(canon, 0)[0])
        msg.questions[0].qname = asked
        for r in msg.rr:
            if r.rname == twin:
                r.rname = asked
        w.write(bytes(msg.pack()))
        return 0

    @staticmethod
    def _emit(out: Any, w: ResponseWriter) -> int:
        if isinstance(out, int):
            return out  # REFUSED: not written
        reply, rcode = out
        w.write(reply)
        return rcode

    def decide(self, req: Request) -> Any:
        """Everything but a precomputed hit: NEXT, an rcode to return, (reply, rcode), a CNAME target,
        or (bytes) the precomputed hit of the `_port._proto` name a `port.proto` name stands for."""
        offs = wire.label_offsets(req.qname_wire)
        zone, rel_end = _zone_of(self._zone_wires, req.qname_wire, offs)  # no text name made for it
        if zone is None or self.index is None:
            return NEXT
        qtype = req.qtype
        if qtype in (AXFR, IXFR):
            return wire.REFUSED
        zp = zone_pointer(rel_end)
        rel = _labels(req.qname_wire[:rel_end])
        qname = req.qname_wire
        if len(rel) == 5 and rel[-1] == b"svc" and not (rel[0][:1] == rel[1][:1] == b"_"):
            # CoreDNS strips one optional underscore from the port and protocol labels (parse.go
            # stripUnderscore): `http.tcp.svc.ns.svc.zone` is `_http._tcp.svc.ns.svc.zone`
            qname = _name_wire([x if x[:1] == b"_" else b"_" + x for x in rel[:2]] + rel[2:])[:-1] + \
                req.qname_wire[rel_end:]
            if (qname, qtype) in self.index.answers:
                return qname
        outcome = self._classify(req, rel, qtype, zone, zp, qname)
        if isinstance(outcome, str):
            return outcome
        if isinstance(outcome, tuple):
            return self._remember(req, outcome)
        if outcome == wire.NXDOMAIN:
            if self._falls(req.qname_wire, offs):
                return self._remember(req, NEXT)
            if not self.synced:  # written, so returned as success (CoreDNS's BackendError)
                return self._negative(req, wire.SERVFAIL, zp), wire.NOERROR
        return self._remember(req, (self._negative(req, outcome, zp), outcome))

    def _remember(self, req: Request, out: Any) -> Any:
        """Memoise a computed outcome (NEXT or (reply, rcode)) as wire bytes keyed like the answers.

        The stored bytes hold no id, flags or question: owners and the SOA's names point into the
        question, so a hit keeps the client's spelling (0x20) of the zone. Only a synced index is
        memoised, and any index change clears the memo (`Index.memo`).
        """
        idx = self.index
        if self.synced and idx is not None:
            key = (req.qname_wire, req.qtype)
            if out is NEXT:
                idx.remember(key, NEXT)
            else:
                reply, rcode = out
                idx.remember(key, (rcode, reply[6:12] + reply[12 + len(req.question):]))
        return out

    def _falls(self, qname: bytes, offs: list[int]) -> bool:
        """`fallthrough`'s zones hold the name: `Fallthrough.through` on the wire name."""
        zones = self.fall.zones
        if not zones:
            return False
        if self._fall_of is not zones:  # setup sets the list once: made on the first ask
            self._fall_wires, self._fall_of = _longest_first(zones), zones
        return _zone_of(self._fall_wires, qname, offs)[0] is not None

    def _rel_end(self, req: Request, zone: str) -> int:
        """Length of the qname's labels left of `zone` (where the zone starts in the question)."""
        offs = wire.label_offsets(req.qname_wire)
        return offs[len(offs) - 1 - self._zone_labels[zone]]

    def _negative(self, req: Request, rcode: int, zp: bytes) -> bytes:
        assert self.index is not None
        return req.reply_header(rcode, 0, 1, 0, aa=True) + req.question + self.index.soa(zp)

    def _positive(self, req: Request, answers: list[bytes], extra: list[bytes] = ()) -> tuple[bytes, int]:  # type: ignore[assignment]
        return (req.reply_header(0, len(answers), 0, len(extra), aa=True) + req.question
                + b"".join(answers) + b"".join(extra)), 0

    def _classify(self, req: Request, rel: list[bytes], qtype: int, zone: str, zp: bytes, qname: bytes) -> Any:
        """NODATA (0) / NXDOMAIN (3), a positive (reply, rcode), or an ExternalName target (str)."""
        idx = self.index
        assert idx is not None
        n = len(rel)
        txt_nx = wire.NXDOMAIN if qtype == TXT else wire.NOERROR  # the TXT quirk on empty nodes
        if n == 0:
            if qtype == SOA:
                return self._positive(req, [idx.soa(zp)])
            if qtype == NS:  # no address of our own (e.g. under `bind`): NODATA, as CoreDNS
                return self._ns(req, zp) if self.local_ips else wire.NOERROR
            return txt_nx
        if qtype == SOA:
            return wire.NOERROR  # SOA below the apex: NODATA without looking (CoreDNS)
        if _is_reverse(zone):
            return wire.NXDOMAIN  # only PTR answers below a reverse zone; the rest fails parseRequest
        top = rel[-1]
        if n == 1 and top == b"dns-version":
            if qtype == TXT:
                v = DNS_SCHEMA_VERSION.encode()
                return self._positive(req, [rr(OWNER, TXT, 28800, bytes([len(v)]) + v)])
            return wire.NXDOMAIN
        if n == 2 and rel == [b"ns", b"dns"]:
            if qtype in (A, AAAA):
                fam = [ip for ip in self.local_ips if (":" in ip) == (qtype == AAAA)]
                if fam:
                    return self._positive(req, [addr_rr(OWNER, ip, self.ttl) for ip in fam])
                return wire.NOERROR
            # CoreDNS: TXT and PTR look the name up as a record (none: NXDOMAIN), the rest is isDefaultNS
            return wire.NXDOMAIN if qtype in (TXT, PTR) else wire.NOERROR
        if top not in (b"svc", b"pod"):
            return wire.NXDOMAIN
        if n == 1:
            return txt_nx
        ns = rel[-2].decode(errors="replace")
        if top == b"pod":
            if self.pods == "disabled" or not idx.exposed(ns):
                return wire.NXDOMAIN
            if n == 2:
                return txt_nx
            if n > 4:
                return wire.NXDOMAIN
            return self._pod(req, rel[-3].decode(errors="replace"), ns, qtype)
        if not idx.exposed(ns):
            return wire.NXDOMAIN
        if n == 2:
            return txt_nx
        if n > 5:
            return wire.NXDOMAIN
        target = idx.name_target(qname)
        if target is None:
            return wire.NXDOMAIN
        if target and qtype in (A, AAAA):
            return target
        return wire.NOERROR

    def _pod(self, req: Request, text: str, ns: str, qtype: int) -> Any:
        v4 = text.count("-") == 3 and "--" not in text
        ip_text = text.replace("-", "." if v4 else ":")
        try:
            ip = ipaddress.ip_address(ip_text)
        except ValueError:
            return wire.NXDOMAIN
        assert self.index is not None
        if self.pods == "verified" and ns not in self.index.pod_ip_ns.get(str(ip), {}):
            return wire.NXDOMAIN
        if qtype == (AAAA if ip.version == 6 else A):
            return self._positive(req, [addr_rr(OWNER, str(ip), self.ttl)])
        if qtype == SRV:  # CoreDNS: the pod as a port-0 service, target its own (lower-case) name
            target = req.qname_wire
            return self._positive(req, [rr(OWNER, SRV, self.ttl, struct.pack(">HHH", 0, 100, 0) + target)],
                                  [addr_rr(target, str(ip), self.ttl)])
        return wire.NOERROR

    def _ns(self, req: Request, zp: bytes) -> tuple[bytes, int]:
        """NS at the apex: our own service if a local IP is one of its endpoints, else ns.dns."""
        idx = self.index
        assert idx is not None
        answers: list[bytes] = []
        extra: list[bytes] = []
        seen: set[tuple[str, str]] = set()
        for ip in self.local_ips:
            for key in idx.services_with_endpoint(ip):
                svc = idx.services.get(key)
                if svc is None or key in seen:
                    continue
                seen.add(key)
                owner = label(svc.name) + label(svc.ns) + label("svc") + zp
                answers.append(rr(OWNER, NS, self.ttl, owner))
                extra += [addr_rr(owner, a, self.ttl) for a in (svc.ips or [ip])]
        if not answers:
            owner = label("ns") + label("dns") + zp
            answers.append(rr(OWNER, NS, self.ttl, owner))
            extra += [addr_rr(owner, a, self.ttl) for a in self.local_ips]
        return self._positive(req, answers, extra)

    def _external(self, req: Request, w: ResponseWriter, target: str) -> int:
        """ExternalName A/AAAA: the CNAME, then the target resolved through this server itself, by
        continuation (`self_lookup`): the rcode when that answered at once, else PENDING."""
        if req.listener is None or target.lower() == req.name:
            return self._external_reply(req, w, target, None)
        sub = req.copy_with(qname=target)  # carries the nesting depth: a CNAME loop ends at MAX_REENTRIES
        return self_lookup(sub, w, partial(self._external_reply, req, w, target))

    def _external_reply(self, req: Request, w: ResponseWriter, target: str, reply: Reply | None) -> int:
        types: list[int] = []
        records: list[bytes] = []  # the target's answers, uncompressed: spliced after the CNAME
        if reply is not None:
            try:
                data = wire.to_bytes(reply)
                lay = layout_of(data)
                an = lay.counts[0]
                types, records = lay.types[:an], uncompressed(data, lay)[:an]
            except Exception as e:  # a garbage upstream reply: keep the CNAME alone
                log.debug(f"resolving ExternalName target {target}: {e!r}")
        if zone_match(self.zones, target.lower()) and req.qtype not in types:
            # CoreDNS quirk: a target inside the zone without that family is NODATA, CNAME dropped
            zone = zone_match(self.zones, req.name) or self.primary
            w.write(self._negative(req, wire.NOERROR, zone_pointer(self._rel_end(req, zone))))
            return 0
        cname = rr(OWNER, CNAME, self.ttl, wire.text_to_wire(target))
        w.write(req.reply_header(0, 1 + len(records), 0, 0, aa=True) + req.question + cname + b"".join(records))
        return 0


def _longest_first(zones: list[str]) -> list[tuple[bytes, str]]:
    """(wire, text) of each zone, the longest wire first: the first that matches is the longest match."""
    return sorted(((wire.text_to_wire(z).lower(), z) for z in zones), key=lambda zw: -len(zw[0]))


def _zone_of(zones: list[tuple[bytes, str]], qname: bytes, offs: list[int]) -> tuple[str | None, int]:
    """The longest of `zones` (`_longest_first`) that holds the lowercased wire name `qname` label by
    label, as CoreDNS's Zones.Matches does, and the offset where it starts in `qname` (`offs`: its
    label offsets); (None, -1) when none does. Unlike a text suffix test, a label with an escaped dot
    (`a\\.cluster.local.`) is not taken for two labels."""
    n = len(qname)
    for zw, z in zones:
        start = n - len(zw)
        if start >= 0 and qname.endswith(zw) and start in offs:
            return z, start
    return None, -1


def _name_wire(labels: list[bytes]) -> bytes:
    return b"".join(bytes([len(x)]) + x for x in labels) + b"\x00"


def _labels(w: bytes) -> list[bytes]:
    out = []
    off = 0
    while off < len(w) and w[off]:
        n = w[off]
        out.append(w[off + 1 : off + 1 + n])
        off += 1 + n
    return out


def _below_reverse(zone: str) -> bool:
    """CoreDNS's dnsutil.IsReverse: strictly below in-addr.arpa. or ip6.arpa."""
    return zone.endswith(".in-addr.arpa.") or zone.endswith(".ip6.arpa.")


def _is_reverse(zone: str) -> bool:
    return zone.endswith("in-addr.arpa.") or zone.endswith("ip6.arpa.")
