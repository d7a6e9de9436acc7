"""The record index: reduced objects in, precomputed wire answers out.

Every change marks the services it touches dirty; `apply()` rebuilds only those, replacing their
entries in `answers` ((lowercased qname wire, qtype) -> wire counts + record bytes) and in `exists`
(qname wire -> ExternalName target, or "" for the few names that exist without any stored answer). A
query for a service/endpoint/SRV/PTR name is one dict lookup; the reply is the header, the client's
own question, and these bytes. Whether a name exists at all (NODATA vs NXDOMAIN) is a handful of
lookups in the same dicts.

Record owners are the pointer 0xC00C (the qname as the client spelled it) and in-zone names inside
answers point at the zone's labels in that question (their offset only depends on the qname length,
which the key fixes), so the zone keeps the client's spelling the way CoreDNS builds it. SRV targets
are never compressed (RFC 2782), so they carry the zone as configured.
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
import math
import socket
import struct
import time
from collections.abc import Iterable
from typing import Any

from pycoredns import wire

from .objects import Pod, Port, Service, Slice

A, NS, CNAME, SOA = wire.TYPE_A, wire.TYPE_NS, wire.TYPE_CNAME, wire.TYPE_SOA
PTR, TXT, AAAA, SRV = wire.TYPE_PTR, wire.TYPE_TXT, wire.TYPE_AAAA, wire.TYPE_SRV
Key = tuple[str, str]  # (namespace, name)
Answer = bytes  # ANCOUNT, NSCOUNT (0), ARCOUNT as on the wire, then the answer + additional records

_RR = struct.Struct(">HHIH")
# memoised outcomes (search-path misses repeat per namespace): ~180 bytes each, ~12 MB when full.
# The seed path's 5,000 services + 5,000 external names ask ~45,000 distinct cluster.local keys
# (bench/README.md, seventh session); at 20,000 most of them were computed again on every ask.
MEMO_SIZE = 65536


@functools.lru_cache(maxsize=16384)  # a build asks for each endpoint label 3-4 times
def label(text: str) -> bytes:
    b = text.encode()
    if not 0 < len(b) < 64:
        raise ValueError(f"bad DNS label {text!r}")
    return bytes([len(b)]) + b


def labels_wire(*labels: str) -> bytes:
    return b"".join(label(x) for x in labels)


def rr(owner: bytes, rtype: int, ttl: int, rdata: bytes) -> bytes:
    return owner + _RR.pack(rtype, 1, ttl, len(rdata)) + rdata


def addr_rr(owner: bytes, ip: str, ttl: int) -> bytes:
    """A or AAAA for an IP string already validated by the reducer (inet_pton: 10x ipaddress)."""
    if ":" in ip:
        return rr(owner, AAAA, ttl, socket.inet_pton(socket.AF_INET6, ip))
    return rr(owner, A, ttl, socket.inet_pton(socket.AF_INET, ip))


def answer(an: list[bytes], ad: list[bytes] = ()) -> Answer:  # type: ignore[assignment]
    """One bytes object per stored answer (a tuple around it would cost as much as the records)."""
    return struct.pack(">HHH", len(an), 0, len(ad)) + b"".join(an) + b"".join(ad)


def zone_pointer(rel_len: int) -> bytes:
    """Pointer to the zone labels in the question of a query whose relative part is `rel_len` bytes."""
    return struct.pack(">H", 0xC000 | (12 + rel_len))


OWNER = b"\xc0\x0c"


def endpoint_name(addr_ip: str, hostname: str, target: str, pod_names: bool) -> str:
    """Endpoint label: hostname, else (endpoint_pod_names) the pod name under 64 chars, else dashed IP."""
    if hostname:
        return hostname
    if pod_names and target and len(target) < 64:
        return target
    dashed = addr_ip.replace(".", "-").replace(":", "-")
    return dashed + "0" if dashed.endswith("-") else dashed


_IN_ADDR = labels_wire("in-addr", "arpa") + b"\x00"
_OCTETS = {str(i): label(str(i)) for i in range(256)}  # reducer-validated IPv4 octets as wire labels
_IP6 = labels_wire("ip6", "arpa") + b"\x00"


def reverse_wire(ip: str) -> bytes:
    """The PTR owner of an address, in wire form, built directly (the hot part of a large rebuild)."""
    if ":" in ip:
        nibbles = socket.inet_pton(socket.AF_INET6, ip).hex()[::-1]
        return b"".join(b"\x01" + c.encode() for c in nibbles) + _IP6
    return b"".join([_OCTETS[o] for o in reversed(ip.split("."))]) + _IN_ADDR


class Zone:
    """A forward zone the plugin serves: its text and wire form."""

    __slots__ = ("text", "wire")

    def __init__(self, text: str) -> None:
        self.text = text
        self.wire = wire.text_to_wire(text)


class Index:
    """All DNS-visible state of the cluster plus the answers precomputed from it (trio side only)."""

    def __init__(self, zones: list[str], ttl: int = 5, pod_names: bool = False, endpoints: bool = True,
                 ignore_empty: bool = False, namespaces: Iterable[str] = (), reverse_zones: Iterable[str] = ()) -> None:
        self.zones = [Zone(z) for z in zones]
        # PTR answers exist only under the plugin's reverse zones (a wire suffix test is exact here:
        # reverse labels are digits/hex, never a byte that reads as a length)
        self.reverse = tuple(wire.text_to_wire(z) for z in reverse_zones)
        self.primary = self.zones[0].text if self.zones else ""
        self.ttl = ttl
        self.pod_names = pod_names
        self.endpoints = endpoints
        self.ignore_empty = ignore_empty
        self.only_ns = set(namespaces)
        # reduced objects
        self.namespaces: set[str] = set()
        self.services: dict[Key, Service] = {}
        self.slices: dict[Key, Slice] = {}
        self.svc_slices: dict[Key, set[str]] = {}
        self.ns_services: dict[str, set[str]] = {}
        self.pods: dict[Key, Pod] = {}
        self.pod_ip_ns: dict[str, dict[str, int]] = {}  # ip -> {namespace: count}
        # derived
        self.answers: dict[tuple[bytes, int], Answer] = {}
        self.exists: dict[bytes, str] = {}
        self._owned: dict[Key, list[tuple[bytes, int]]] = {}
        self._owned_names: dict[Key, list[bytes]] = {}
        # ip -> ((service, is a ClusterIP), ...): most IPs have one source, and a service's endpoints
        # share one (service, False); the PTR targets are derived from the service on the first ask
        self._ptr_src: dict[str, tuple[tuple[Key, bool], ...]] = {}
        self._svc_ips: dict[Key, list[str]] = {}
        self._ptr_asked: dict[str, bytes] = {}  # ip -> its reverse name, for the PTR answers built on ask
        self.dirty: set[Key] = set()
        # True from "every kind listed" until the first build has emptied `dirty`: the server is ready
        # meanwhile (as CoreDNS once its informers synced), and a query settles what it needs first
        self.lazy = False
        self._ptr_passed = False  # `_ptr_prepass` ran in this lazy phase
        self.serial = 0
        self.ext_serial = 0  # k8s_external's SOA serial: CoreDNS's extModified (service updates only)
        self.synced_kinds: set[str] = set()
        # outcomes computed per query (negatives, fallthrough, synthesised names), memoised until
        # the next change: (qname wire, qtype) -> (rcode, counts + records) or the plugin's NEXT
        self.memo: dict[tuple[bytes, int], Any] = {}
        self._soas: dict[tuple[bytes, int, int], bytes] = {}  # `soa`'s records
        self._memo_values: dict[object, object] = {}

    # -- changes ------------------------------------------------------------------------------
    def exposed(self, ns: str) -> bool:
        return ns in self.namespaces and (not self.only_ns or ns in self.only_ns)

    def forget(self) -> None:
        self.memo.clear()
        self._memo_values.clear()

    def remember(self, key: tuple[bytes, int], value: object) -> None:
        """Store a computed outcome. The memo is bounded: when full, its oldest quarter goes (insertion
        order), so the names asked lately stay memoised instead of all being dropped at once."""
        memo = self.memo
        if len(memo) >= MEMO_SIZE:
            for old in list(itertools.islice(memo, MEMO_SIZE // 4)):
                del memo[old]
            if len(self._memo_values) >= MEMO_SIZE:  # its values are only shared copies: start afresh
                self._memo_values.clear()
        # negatives of one zone and name length are the same bytes: store them once
        self.memo[key] = self._memo_values.setdefault(value, value)

    def _changed(self) -> None:
        self.forget()
        self.serial = int(time.time()) & 0xFFFFFFFF

    def set_namespace(self, name: str, present: bool) -> None:
        if present == (name in self.namespaces):
            return
        if present:
            self.namespaces.add(name)
        else:
            self.namespaces.discard(name)
        self._changed()
        self.dirty.update((name, s) for s in self.ns_services.get(name, ()))

    def set_service(self, key: Key, svc: Service | None) -> None:
        old = self.services.get(key)
        if old == svc:
            return
        if old is not None and svc is not None and (old.external_ips, old.ports) != (svc.external_ips, svc.ports):
            self.ext_serial = int(time.time()) & 0xFFFFFFFF
        if svc is None:
            del self.services[key]
            names = self.ns_services.get(key[0])
            if names is not None:
                names.discard(key[1])
        else:
            self.services[key] = svc
            self.ns_services.setdefault(key[0], set()).add(key[1])
        self._changed()
        self.dirty.add(key)

    def set_slice(self, key: Key, sl: Slice | None) -> None:
        old = self.slices.get(key)
        if old == sl:
            return
        if old is not None and sl is not None and old[:5] == sl[:5]:
            self.slices[key] = sl  # only the trigger time moved: nothing DNS-visible, no new serial
            return
        if old is not None:
            self.svc_slices.get((old.ns, old.service), set()).discard(key[1])
            self.dirty.add((old.ns, old.service))
        if sl is None:
            self.slices.pop(key, None)
        else:
            self.slices[key] = sl
            self.svc_slices.setdefault((sl.ns, sl.service), set()).add(key[1])
            self.dirty.add((sl.ns, sl.service))
        self._changed()

    def set_pod(self, key: Key, pod: Pod | None) -> None:
        old = self.pods.get(key)
        if old == pod:
            return
        if old is not None:
            counts = self.pod_ip_ns.get(old.ip, {})
            counts[old.ns] = counts.get(old.ns, 1) - 1
            if counts[old.ns] <= 0:
                del counts[old.ns]
            if not counts:
                self.pod_ip_ns.pop(old.ip, None)
        if pod is None:
            self.pods.pop(key, None)
        else:
            self.pods[key] = pod
            counts = self.pod_ip_ns.setdefault(pod.ip, {})
            counts[pod.ns] = counts.get(pod.ns, 0) + 1
        self._changed()

    def keys_of(self, kind: str) -> list[Key]:
        """Current keys of one object kind (a relist deletes the ones it did not see)."""
        if kind == "namespaces":
            return [("", n) for n in self.namespaces]
        tables: dict[str, dict[Any, Any]] = {"services": self.services, "endpointslices": self.slices,
                                             "pods": self.pods}
        return list(tables[kind])

    # -- rebuild ------------------------------------------------------------------------------
    def apply(self, limit: int | None = None) -> list[Key]:
        """Rebuild the answers of dirty services (at most `limit`); returns the keys rebuilt."""
        if limit is None or len(self.dirty) <= limit:
            done = list(self.dirty)
            self.dirty.clear()
        else:
            done = [self.dirty.pop() for _ in range(limit)]
        self._rebuild(done)
        if not self.dirty:
            self.lazy = self._ptr_passed = False
        return done

    def settle(self, qname: bytes) -> None:
        """Before the first build is complete (`lazy`): build what the answer for `qname` depends on.

        A name under a forward zone with `svc` as its last relative label and 3-5 labels belongs to
        one service, `<name>.<ns>.svc` (every answer of a service lives under that base): only that
        service is built, if still dirty. A reverse name needs the PTR sources of every service
        (`ptr_sources_ready`). No other answer reads what the build makes (the apex NS reads the PTR
        sources through `ptr_sources`; pod names, `dns-version`, `ns.dns` and the empty nodes only the
        reduced objects), so nothing waits for the whole build and the query loop never stalls on it.
        """
        if not self.lazy:
            return
        for z in self.zones:
            if len(qname) > len(z.wire) and qname.endswith(z.wire):
                rel = _split(qname[: len(qname) - len(z.wire)])
                if rel is not None and 3 <= len(rel) <= 5 and rel[-1] == b"svc":
                    try:
                        key = (rel[-2].decode(), rel[-3].decode())
                    except UnicodeDecodeError:
                        return  # no object has such a name
                    if key in self.dirty:
                        self.dirty.discard(key)
                        self._rebuild([key])
                    return
        if self.reverse and qname.endswith(self.reverse):
            self.ptr_sources_ready()

    def ptr_sources_ready(self) -> None:
        """Before the first build ends: register the PTR sources of the services not built yet (once)."""
        if self.lazy and not self._ptr_passed:
            self._ptr_passed = True
            self._ptr_prepass()

    def _rebuild(self, done: list[Key]) -> None:
        self.forget()  # rebuilt answers may turn a memoised negative positive, and back
        ptr_dirty: set[str] = set()
        for key in done:
            self._drop(key, ptr_dirty)
            svc = self.services.get(key)
            if svc is not None and self.exposed(key[0]):
                try:
                    self._build(svc, ptr_dirty)
                except (ValueError, struct.error):  # a name or number DNS cannot carry: no records
                    self._drop(key, ptr_dirty)
        for ip in ptr_dirty:
            self._build_ptr(ip)
        if self.reverse:  # ClusterIP PTRs: one per service and asked often, so built here, not on ask
            for key in done:
                svc = self.services.get(key)
                for ip in svc.ips if svc is not None else ():
                    if ip in self._ptr_src:
                        self.ptr(reverse_wire(ip))

    def _drop(self, key: Key, ptr_dirty: set[str]) -> None:
        for k in self._owned.pop(key, ()):
            self.answers.pop(k, None)
        for n in self._owned_names.pop(key, ()):
            self.exists.pop(n, None)
        for ip in self._svc_ips.pop(key, ()):
            src = tuple(e for e in self._ptr_src.get(ip, ()) if e[0] != key)
            if src:
                self._ptr_src[ip] = src
            else:
                self._ptr_src.pop(ip, None)
            ptr_dirty.add(ip)

    def ready_addresses(self, key: Key) -> list[tuple[Slice, list[tuple[str, str]]]]:
        """Per slice: (slice, [(endpoint label, ip)]) for the service's ready addresses."""
        out: list[tuple[Slice, list[tuple[str, str]]]] = []
        if not self.endpoints:
            return out
        for name in sorted(self.svc_slices.get(key, ())):
            sl = self.slices.get((key[0], name))
            if sl is not None:
                out.append((sl, [(endpoint_name(a.ip, a.hostname, a.target, self.pod_names), a.ip) for a in sl.addrs]))
        return out

    _TYPES = (A, AAAA, SRV, CNAME, PTR)

    def _answered(self, n: bytes) -> bool:
        answers = self.answers
        for t in self._TYPES:  # noqa: SIM110  # a loop, not any() over a generator: asked per NXDOMAIN
            if (n, t) in answers:
                return True
        return False

    def name_target(self, n: bytes) -> str | None:
        """None: no such name; "": it exists; else the ExternalName target it points to."""
        t = self.exists.get(n)
        if t is not None:
            return t
        return "" if self._answered(n) else None

    def _build(self, svc: Service, ptr_dirty: set[str]) -> None:
        self._build_records(svc, ptr_dirty)
        # `exists` only keeps what the answers cannot tell (saves an entry per name): plain names
        # are entered once every answer is built, and only when none answers them
        for n in self._owned_names.get((svc.ns, svc.name), ()):
            if n not in self.exists and not self._answered(n):
                self.exists[n] = ""

    def _build_records(self, svc: Service, ptr_dirty: set[str]) -> None:
        key = (svc.ns, svc.name)
        owned: list[tuple[bytes, int]] = []
        names: list[bytes] = []
        ptr_ips: list[str] = []
        # registered first, so that a build failing half-way is dropped completely
        self._owned[key], self._owned_names[key], self._svc_ips[key] = owned, names, ptr_ips
        ttl = self.ttl
        slices = self.ready_addresses(key)

        interned: dict[bytes, bytes] = {}  # one bytes object per qname, shared by answers and exists

        def put(rel: bytes, zone: Zone, qtype: int, an: list[bytes], ad: list[bytes] = ()) -> None:  # type: ignore[assignment]
            if an:
                n = rel + zone.wire
                k = (interned.setdefault(n, n), qtype)
                a = answer(an, ad)
                self.answers[k] = interned.setdefault(a, a)  # `_port._proto` A answers repeat the service's
                owned.append(k)

        def name(rel: bytes, zone: Zone, target: str = "") -> None:
            n = rel + zone.wire
            n = interned.setdefault(n, n)
            if target:  # an ExternalName's target; plain names are entered by `_build`
                self.exists[n] = target
            names.append(n)

        base = labels_wire(svc.name, svc.ns, "svc")
        if svc.external:
            try:
                ipaddress.ip_address(svc.external.rstrip("."))
                return  # an IP literal yields nothing (NXDOMAIN)
            except ValueError:
                pass
            target = svc.external if svc.external.endswith(".") else svc.external + "."
            try:
                tw = wire.text_to_wire(target.lower())
                labels, end = wire.read_name(tw, 0)
            except (ValueError, UnicodeError):
                return
            if end != len(tw) or len(tw) > 255 or any(len(x) > 63 for x in labels):
                return  # empty or long labels, over 255 bytes (the API refuses these): nothing, as an IP literal
            for z in self.zones:
                put(base, z, CNAME, [rr(OWNER, CNAME, ttl, tw)])
                name(base, z, target)
            return

        by_label, all_ips = _by_label(slices)
        if svc.headless:
            if not all_ips:
                return
            svc_ips = all_ips
        else:
            if self.ignore_empty and not all_ips:
                return
            svc_ips = list(svc.ips)

        for z in self.zones:
            zp = zone_pointer(len(base))
            name(base, z)
            self._put_addrs(put, base, z, svc_ips)
            # SRV: bare name (every port) and _port._proto (named ports)
            if svc.headless:
                cands = [(lab, ip, p) for sl, addrs in slices for lab, ip in addrs for p in sl.ports]
            else:
                # one candidate per cluster IP and port, as CoreDNS weighs them (then drops equal targets)
                cands = [("", ip, p) for p in svc.ports for ip in svc.ips]
            self._put_srv(put, name, base, z, zp, svc, cands, svc_ips, by_label)
            for lab, ips in by_label.items():
                rel = label(lab) + base
                name(rel, z)
                self._put_addrs(put, rel, z, ips)
                # SRV on an endpoint name: built on the first ask (`endpoint_srv`), not for every endpoint
        self._add_ptr_sources(key, svc, by_label, ptr_ips)
        ptr_dirty.update(ptr_ips)

    def _add_ptr_sources(self, key: Key, svc: Service, by_label: dict[str, list[str]], ptr_ips: list[str]) -> None:
        """Register the service as the PTR source of its ClusterIPs, then of its ready endpoints."""
        if self.zones:
            cip, ep = (key, True), (key, False)
            for ip in svc.ips:
                self._ptr_src[ip] = (*self._ptr_src.get(ip, ()), cip)
                ptr_ips.append(ip)
            for ip in dict.fromkeys(ip for ips in by_label.values() for ip in ips):
                if ip in svc.ips:
                    continue
                self._ptr_src[ip] = (*self._ptr_src.get(ip, ()), ep)
                ptr_ips.append(ip)

    def _ptr_prepass(self) -> None:
        """Before the first build ends: the PTR sources of every service not built yet, as their build
        will register them (a PTR needs only those and the reduced objects), so that a PTR asked
        right after ready does not wait for the whole build (seconds at 20k services). The build
        drops and registers them again (`_drop` reads `_svc_ips`)."""
        for key in self.dirty:
            svc = self.services.get(key)
            if key in self._svc_ips or svc is None or svc.external or not self.exposed(key[0]):
                continue
            by_label, all_ips = _by_label(self.ready_addresses(key))
            if not all_ips and (svc.headless or self.ignore_empty):
                continue  # the build returns before registering any (no records at all)
            ptr_ips: list[str] = []
            self._add_ptr_sources(key, svc, by_label, ptr_ips)
            self._svc_ips[key] = ptr_ips

    def on_ask(self, key: tuple[bytes, int]) -> Answer | None:
        """The answers built on their first ask (not at sync): SRV of an endpoint name, PTR."""
        if key[1] == SRV:
            return self.endpoint_srv(key[0])
        if key[1] == PTR:
            return self.ptr(key[0])
        return None

    def endpoint_srv(self, qname: bytes) -> Answer | None:
        """SRV on an endpoint name (`ep.svc.ns.svc.zone`): that endpoint's ports (CoreDNS's findServices
        with r.endpoint). Built on the first ask and kept with the service's answers (dropped at its
        next rebuild): precomputing one per endpoint would cost as much as all the other answers."""
        for z in self.zones:
            if not qname.endswith(z.wire):
                continue
            rel = qname[: len(qname) - len(z.wire)]
            labels = _split(rel)
            if labels is None or len(labels) != 4 or labels[3] != b"svc":
                return None
            try:
                lab, key = labels[0].decode(), (labels[2].decode(), labels[1].decode())
            except UnicodeDecodeError:  # no object has such a name (the mutation fuzz sends them)
                return None
            svc = self.services.get(key)
            owned = self._owned.get(key)
            if svc is None or owned is None or svc.external or not self.exposed(key[0]):
                return None
            slices = self.ready_addresses(key)
            by_label, all_ips = _by_label(slices)
            if lab not in by_label:
                return None
            mine = [(lb, ip, p) for sl, addrs in slices for lb, ip in addrs if lb == lab for p in sl.ports]
            base = rel[len(labels[0]) + 1 :]
            try:
                an, ad = self._srv_records(mine, rel, base, z, all_ips if svc.headless else list(svc.ips), by_label)
            except (ValueError, struct.error):
                return None
            if not an:
                return None
            hit = answer(an, ad)
            self.answers[(qname, SRV)] = hit
            owned.append((qname, SRV))
            return hit
        return None

    def _put_addrs(self, put, rel: bytes, zone: Zone, ips: list[str]) -> None:
        v4 = [addr_rr(OWNER, ip, self.ttl) for ip in ips if ":" not in ip]
        v6 = [addr_rr(OWNER, ip, self.ttl) for ip in ips if ":" in ip]
        put(rel, zone, A, v4)
        put(rel, zone, AAAA, v6)

    def _put_srv(self, put, name, base: bytes, z: Zone, zp: bytes, svc: Service,
                 cands: list[tuple[str, str, Port]], svc_ips: list[str], by_label: dict[str, list[str]]) -> None:
        """Bare-name SRV over every port, `_port._proto` SRV per named port, weights floor(100/N) where N
        counts the candidates before equal (target, port) records are dropped (CoreDNS's SRV)."""
        groups: dict[tuple[str, str] | None, list[tuple[str, str, Port]]] = {None: []}
        for c in cands:  # port -1 (no ports) counts towards the weight, but gets no record (CoreDNS)
            groups[None].append(c)
            if c[2].name:
                groups.setdefault((c[2].name, c[2].proto), []).append(c)
        for group, items in groups.items():
            if not items:
                continue
            try:
                rel = base if group is None else label("_" + group[0]) + label("_" + group[1]) + base
            except ValueError:
                continue  # a port name no label can carry: that SRV name only, not the whole service
            an, ad = self._srv_records(items, rel, base, z, svc_ips, by_label)
            put(rel, z, SRV, an, ad)
            if group is not None:
                name(rel, z)
                # quirk kept from CoreDNS: A/AAAA on a _port._proto name answer the service's addresses
                self._put_addrs(put, rel, z, svc_ips)

    def _srv_records(self, items: list[tuple[str, str, Port]], rel: bytes, base: bytes, z: Zone,
                     svc_ips: list[str], by_label: dict[str, list[str]]) -> tuple[list[bytes], list[bytes]]:
        """SRV answers for the name `rel` (in the zone `z`) and their A/AAAA glue, from candidates
        (endpoint label, ip, port): CoreDNS's plugin.SRV weighs every candidate, then drops repeated
        (target, port) records."""
        if not items:
            return [], []
        zptr = zone_pointer(len(rel))
        at = 12 + len(rel) + len(z.wire) + 4  # where the answer records start
        weight = max(1, math.floor(100.0 / (100 * len(items)) * 100))  # Go's float arithmetic
        seen: set[tuple[str, int]] = set()
        an: list[bytes] = []
        ad: list[bytes] = []
        seen_ad: set[tuple[str, str]] = set()
        for lab, _ip, p in items:
            target_rel = (label(lab) if lab else b"") + base
            if p.port == -1 or (lab, p.port) in seen:
                continue
            seen.add((lab, p.port))
            tw = target_rel + z.wire
            an.append(rr(OWNER, SRV, self.ttl, struct.pack(">HHH", 0, weight, p.port) + tw))
            # the glue's owner is a pointer to this SRV target, as miekg compresses it when it must
            # (so sizes, and truncation, match CoreDNS's); the target carries the zone as the client
            # spelled it and the rest lowercased, as CoreDNS's names. Pointers reach 16 KB only.
            target_at = at + 18
            at += len(an[-1])
            owner = struct.pack(">H", 0xC000 | target_at) if target_at < 0x4000 else target_rel + zptr
            for ip in (by_label.get(lab, []) if lab else svc_ips):
                if (lab, ip) not in seen_ad:
                    seen_ad.add((lab, ip))
                    ad.append(addr_rr(owner, ip, self.ttl))
        return an, ad

    def _build_ptr(self, ip: str) -> None:
        """Drop the PTR answer of a changed address, if it was asked: it is built again on its next ask."""
        rw = self._ptr_asked.pop(ip, None)
        if rw is not None:
            self.answers.pop((rw, PTR), None)

    def ptr(self, qname: bytes) -> Answer | None:
        """The PTR answer of an address with sources, built on the first ask and kept in `answers`
        until one of its services is rebuilt (`_build_ptr` drops it): building one per ClusterIP and
        ready endpoint at sync was a fifth of the index build and 54,500 answers at 5k x 10."""
        ip = _reverse_ip(qname)
        if ip is None:
            return None
        src = self._ptr_src.get(ip)
        if not src or not qname.endswith(self.reverse) or reverse_wire(ip) != qname:
            return None
        cluster = [e for e in src if e[1]]
        an = [rr(OWNER, PTR, self.ttl, t) for e in (cluster[:1] or src) for t in self._ptr_targets(e, ip)]
        if not an:
            return None
        hit = self.answers[(qname, PTR)] = answer(an)
        self._ptr_asked[ip] = qname
        return hit

    def _ptr_targets(self, src: tuple[Key, bool], ip: str) -> list[bytes]:
        """The PTR targets one source gives an address: its service's name (a ClusterIP), or the
        endpoint names with that address, in the service's order."""
        svc = self.services.get(src[0])
        if svc is None:
            return []
        primary = labels_wire(svc.name, svc.ns, "svc") + self.zones[0].wire
        if src[1]:
            return [primary]
        by_label, _ = _by_label(self.ready_addresses(src[0]))
        return [label(lab) + primary for lab, ips in by_label.items() if ip in ips]

    def services_with_endpoint(self, ip: str) -> list[Key]:
        return [e[0] for e in self.ptr_sources(ip)]

    def ptr_sources(self, ip: str) -> tuple[tuple[Key, bool], ...]:
        """(service, is a ClusterIP) for each service that gives `ip` a PTR."""
        self.ptr_sources_ready()
        return self._ptr_src.get(ip, ())

    # -- synthesised records --------------------------------------------------------------------
    def soa(self, zone_ptr: bytes) -> bytes:
        """The SOA record, its names pointing at `zone_ptr`: made once per pointer, serial and TTL (every
        negative answer carries one; the pointer depends only on the qname's length)."""
        key = (zone_ptr, self.serial, self.ttl)
        got = self._soas.get(key)
        if got is None:
            if len(self._soas) >= 1024:
                self._soas.clear()
            rdata = (label("ns") + label("dns") + zone_ptr + label("hostmaster") + zone_ptr
                     + struct.pack(">IIIII", self.serial, 7200, 1800, 86400, self.ttl))
            got = self._soas[key] = rr(zone_ptr, SOA, min(self.ttl, 300), rdata)
        return got


def _by_label(slices: list[tuple[Slice, list[tuple[str, str]]]]) -> tuple[dict[str, list[str]], list[str]]:
    """Endpoint label -> its IPs, and every IP once, in order of appearance (dicts keep it linear)."""
    by_label: dict[str, dict[str, None]] = {}
    all_ips: dict[str, None] = {}
    for _sl, addrs in slices:
        for lab, ip in addrs:
            by_label.setdefault(lab, {})[ip] = None
            all_ips[ip] = None
    return {lab: list(ips) for lab, ips in by_label.items()}, list(all_ips)


def _reverse_ip(qname: bytes) -> str | None:
    """The address a reverse name stands for (canonical form), None for any other name."""
    labels = _split(qname[:-1]) if qname.endswith(b"\x00") else None
    try:
        if labels is not None and len(labels) == 6 and qname.endswith(_IN_ADDR):
            return ".".join(x.decode("ascii") for x in reversed(labels[:4]))
        if labels is not None and len(labels) == 34 and qname.endswith(_IP6):
            nib = "".join(x.decode("ascii") for x in reversed(labels[:32]))
            return str(ipaddress.IPv6Address(int(nib, 16)))
    except (UnicodeDecodeError, ValueError):
        return None
    return None


def _split(rel: bytes) -> list[bytes] | None:
    """Labels of an uncompressed relative name, None when it does not parse."""
    out = []
    off = 0
    while off < len(rel):
        n = rel[off]
        if n == 0 or n > 63 or off + 1 + n > len(rel):
            return None
        out.append(rel[off + 1 : off + 1 + n])
        off += 1 + n
    return out
