"""The k8s_external handler: a port of CoreDNS's plugin/k8s_external (and kubernetes' External).

Names are `<service>.<namespace>.<zone>` (plus `<endpoint>.` with `headless`, and
`_<port>._<proto>.` for SRV), answered from the Services' external IPs and LoadBalancer ingress:
A/AAAA with the plugin's TTL, a CNAME (and the target looked up through the server) for ingress
hostnames, SRV with kubernetes' TTL, PTR for external IPs in reverse zones; the apex has SOA and
NS (`ns1.<apex>.<zone>`), `<apex>.<zone>` holds `ns1` only. The kubernetes handler is reached
through the duck-typed methods in REQUIRED (it never gets imported).
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Coroutine
from typing import Any

from dnslib import AAAA, CNAME, NS, PTR, QTYPE, RR, SOA, SRV, A, DNSLabel

from pycoredns import wire
from pycoredns.plugin import Handler
from pycoredns.request import Request, ResponseWriter
from pycoredns.util import Fallthrough, is_subdomain, zone_match

from .svc import Svc

REQUIRED = ("external_exposed", "external_service", "external_endpoints", "external_reverse",
            "external_serial", "external_ns_addresses")
IN = 1


def _target_strip(name: str, labels: int) -> str:
    """msg's targetStrip: drop `labels` leading labels (the whole name if that overshoots)."""
    parts = name.split(".")
    return ".".join(parts[labels:]) if labels < len(parts) - 1 else name


def _run_now(coro: Coroutine[Any, Any, int]) -> int:
    """The result of a coroutine that does not suspend (serve_dns when no lookup is needed)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("k8s_external: an answer needed a lookup on the fast path")


def _strip_underscore(s: str) -> str:
    return s[1:] if s.startswith("_") else s


def _match(a: str, b: str) -> bool:
    return a == "" or a.lower() == b.lower()


def _from_reverse(name: str) -> str | None:
    """dnsutil.ExtractAddressFromReverse for in-addr.arpa. and ip6.arpa. names."""
    labels = name.rstrip(".").split(".")
    try:
        if name.endswith(".in-addr.arpa.") and len(labels) == 6:
            return str(ipaddress.IPv4Address(".".join(reversed(labels[:4]))))
        if name.endswith(".ip6.arpa.") and len(labels) == 34:
            h = "".join(reversed(labels[:32]))
            return str(ipaddress.IPv6Address(":".join(h[i : i + 4] for i in range(0, 32, 4))))
    except ValueError:
        return None
    return None


class External(Handler):
    name = "k8s_external"

    def __init__(self) -> None:
        self.zones: list[str] = []
        self.fall = Fallthrough()
        self.hostmaster = "hostmaster"
        self.apex = "dns"
        self.ttl = 5
        self.headless = False
        self.backend: Any = None  # the kubernetes handler (duck typed: REQUIRED), set at startup

    # -- the lookup (kubernetes' External) ---------------------------------------------------
    def lookup(self, req: Request, zone: str) -> tuple[list[Svc], int]:
        b = self.backend
        if req.qtype == QTYPE.PTR:
            ip = _from_reverse(req.name)
            if ip is not None:
                keys = b.external_reverse(ip)
                if not keys:
                    return [], wire.NXDOMAIN
                return [Svc(f"{name}.{ns}") for ns, name in keys], wire.NOERROR
        base = req.name[: len(req.name) - len(zone)].rstrip(".")
        segs = base.split(".") if base else []
        if not segs:
            return [], wire.SERVFAIL
        namespace = segs.pop()
        if not b.external_exposed(namespace):
            return [], wire.NXDOMAIN
        if not segs:
            return [], wire.NOERROR
        service = segs.pop()
        port = protocol = endpoint = ""
        if len(segs) == 1:
            endpoint = _strip_underscore(segs.pop())
        elif len(segs) == 2:
            protocol, port = _strip_underscore(segs[1]), _strip_underscore(segs[0])
            segs = []
        if segs:
            return [], wire.NXDOMAIN
        found = b.external_service(namespace, service)
        out: list[Svc] = []
        rcode = wire.NXDOMAIN
        domain = f"{service}.{namespace}.{zone}"
        if found is not None:
            ips, ports, headless = found
            if self.headless and not ips and (headless or endpoint):
                for host, ip, eports in b.external_endpoints(namespace, service):
                    if endpoint and not _match(endpoint, host):
                        continue
                    for p in eports:
                        if _match(port, p.name) and _match(protocol, p.proto):
                            rcode = wire.NOERROR
                            out.append(Svc(ip, p.port, f"{host}.{domain}"))
            else:
                for ip in ips:
                    for p in ports:
                        if _match(port, p.name) and _match(protocol, p.proto):
                            rcode = wire.NOERROR
                            out.append(Svc(ip, p.port, domain))
        if req.qtype == QTYPE.PTR:
            return [], rcode
        return out, rcode

    # -- transfer's interface -----------------------------------------------------------------
    def transfer(self, zone: str, serial: int) -> list[RR] | None:
        from .transfer import transfer

        return transfer(self, zone, serial)

    # -- records ------------------------------------------------------------------------------
    def soa(self, zone: str) -> RR:
        return RR(zone, QTYPE.SOA, ttl=self.ttl, rdata=SOA(
            f"ns1.{self.apex}.{zone}", f"{self.hostmaster}.{self.apex}.{zone}",
            (self.backend.external_serial() & 0xFFFFFFFF, 7200, 1800, 86400, self.ttl)))

    async def _upstream(self, req: Request, name: str, qtype: int) -> tuple[list[RR], bool]:
        if req.listener is None:
            return [], False
        reply = await req.listener.resolve(req.copy_with(qname=name, qtype=qtype))
        if reply is None:
            return [], False
        m = wire.to_record(reply)
        return list(m.rr), bool(m.header.tc)

    async def addresses(self, req: Request, svcs: list[Svc], qtype: int) -> tuple[list[RR], bool]:
        out: list[RR] = []
        tc = False
        seen: set[str] = set()
        for s in svcs:
            what = s.host_type()
            if what == QTYPE.CNAME:
                out.append(RR(req.qlabel, QTYPE.CNAME, ttl=self._kube_ttl(), rdata=CNAME(s.host + ".")))
                rrs, trunc = await self._upstream(req, s.host.rstrip(".") + ".", qtype)
                out += rrs
                tc = tc or trunc
            elif what == qtype and s.host not in seen:
                seen.add(s.host)
                rd = A(s.host) if qtype == QTYPE.A else AAAA(s.host)
                out.append(RR(req.qlabel, qtype, ttl=self.ttl, rdata=rd))
        return out, tc

    def _kube_ttl(self) -> int:
        return getattr(self.backend, "ttl", 5)

    def srv_records(self, owner, svcs: list[Svc]) -> tuple[list[RR], list[RR], list[str]]:
        """CoreDNS's srv(): SRV records (kubernetes' TTL, weights over all services), the address
        records of IP targets, and the CNAME targets whose addresses need a lookup."""
        weight = max(1, math.floor(100.0 / (100 * len(svcs)) * 100)) if svcs else 1
        records: list[RR] = []
        extra: list[RR] = []
        lookups: list[str] = []
        dup: set[tuple] = set()
        for s in svcs:
            what = s.host_type()
            if s.port == -1 or not what:
                continue
            if what == QTYPE.CNAME:
                target = _target_strip(s.host.rstrip(".") + ".", s.strip)
                if (target, s.port, "") not in dup:
                    dup.add((target, s.port, ""))
                    records.append(self._srv_rr(owner, weight, s.port, target))
                if (target, 0, s.host) not in dup:
                    dup.add((target, 0, s.host))
                    lookups.append(s.host.rstrip(".") + ".")
                continue
            target = _target_strip(s.domain, s.strip)
            if (target, s.port, "") not in dup:
                dup.add((target, s.port, ""))
                records.append(self._srv_rr(owner, weight, s.port, target))
            if (target, 0, s.host) not in dup:
                dup.add((target, 0, s.host))
                rd = A(s.host) if what == QTYPE.A else AAAA(s.host)
                extra.append(RR(target, what, ttl=self.ttl, rdata=rd))
        return records, extra, lookups

    async def srv(self, req: Request, svcs: list[Svc]) -> tuple[list[RR], list[RR]]:
        records, extra, lookups = self.srv_records(req.qlabel, svcs)
        for target in lookups:
            for qt in (QTYPE.A, QTYPE.AAAA):
                extra += (await self._upstream(req, target, qt))[0]
        return records, extra

    def _srv_rr(self, owner, weight: int, port: int, target: str) -> RR:
        return RR(owner, QTYPE.SRV, ttl=self._kube_ttl(), rdata=SRV(0, weight, port & 0xFFFF, target))

    # -- serving ------------------------------------------------------------------------------
    def serve_fast(self, req: Request, w: ResponseWriter) -> int | None:
        """Answers without a lookup through the server (every one but ingress hostnames' addresses)
        are made here, by running `serve_dns`, which then never suspends; the rest take the task path."""
        zone = zone_match(self.zones, req.name)
        if zone is None or self.backend is None:
            return self.next_fast(req, w)
        if not any(req.name == z or is_subdomain(f"{self.apex}.{z}", req.name) for z in self.zones):
            svcs, rcode = self.lookup(req, zone)
            if not svcs and rcode == wire.NXDOMAIN and self.fall.through(req.name):
                return self.next_fast(req, w)
            if req.qtype in (QTYPE.A, QTYPE.AAAA, QTYPE.SRV) and any(s.host_type() == QTYPE.CNAME for s in svcs):
                return None
        return _run_now(self.serve_dns(req, w))

    async def serve_dns(self, req: Request, w: ResponseWriter) -> int:
        zone = zone_match(self.zones, req.name)
        if zone is None or self.backend is None:
            return await self.next_or_failure(req, w)
        for z in self.zones:
            if req.name == z:
                w.write(self.apex_reply(req, z))
                return wire.NOERROR
            if is_subdomain(f"{self.apex}.{z}", req.name):
                w.write(self.sub_apex_reply(req, z))
                return wire.NOERROR
        svcs, rcode = self.lookup(req, zone)
        m = req.reply_record()
        m.header.aa = 1
        if not svcs:
            if self.fall.through(req.name) and rcode == wire.NXDOMAIN:
                return await self.next_or_failure(req, w)
            m.header.rcode = rcode
            m.add_auth(self.soa(zone))
            w.write(m)
            return wire.NOERROR
        qtype = req.qtype
        if qtype in (QTYPE.A, QTYPE.AAAA):
            m.rr, tc = await self.addresses(req, svcs, qtype)
            m.header.tc = int(tc)
        elif qtype == QTYPE.SRV:
            m.rr, m.ar = await self.srv(req, svcs)
        elif qtype == QTYPE.PTR:
            seen: set[str] = set()
            for s in svcs:
                if s.host not in seen:
                    seen.add(s.host)
                    m.add_answer(RR(req.qlabel, QTYPE.PTR, ttl=self.ttl, rdata=PTR(f"{s.host}.{self.zones[0]}")))
        if not m.rr:
            m.auth = [self.soa(zone)]
        w.write(m)
        return wire.NOERROR

    def apex_reply(self, req: Request, zone: str):
        m = req.reply_record()
        m.header.aa = 1
        if req.qtype == QTYPE.SOA:
            m.add_answer(self.soa(zone))
        elif req.qtype == QTYPE.NS:
            m.add_answer(RR(zone, QTYPE.NS, ttl=self.ttl, rdata=NS(f"ns1.{self.apex}.{zone}")))
            owner = DNSLabel(f"ns1.{self.apex}.{req.qname}")
            for _name, ip in self.backend.external_ns_addresses(zone, self.headless):
                m.add_ar(self._addr(owner, ip))
        else:
            m.add_auth(self.soa(zone))
        return m

    def sub_apex_reply(self, req: Request, zone: str):
        m = req.reply_record()
        m.header.aa = 1
        base = req.name[: len(req.name) - len(zone)]
        labels = base.rstrip(".").split(".") if base else []
        if len(labels) == 1:
            m.add_auth(self.soa(zone))
        elif len(labels) == 2 and labels[0] == "ns1":
            for _name, ip in self.backend.external_ns_addresses(zone, self.headless):
                rr = self._addr(req.qlabel, ip)
                if rr.rtype == req.qtype:
                    m.add_answer(rr)
            if not m.rr:
                m.add_auth(self.soa(zone))
        else:
            m.header.rcode = wire.NXDOMAIN
            m.add_auth(self.soa(zone))
        return m

    def _addr(self, owner, ip: str) -> RR:
        if ipaddress.ip_address(ip).version == 4:
            return RR(owner, QTYPE.A, ttl=self.ttl, rdata=A(ip))
        return RR(owner, QTYPE.AAAA, ttl=self.ttl, rdata=AAAA(ip))
