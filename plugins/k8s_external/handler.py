"""The k8s_external handler: a port of CoreDNS's plugin/k8s_external (and kubernetes' External).

Names are `<service>.<namespace>.<zone>` (plus `<endpoint>.` with `headless`, and
`_<port>._<proto>.` for SRV), answered from the Services' external IPs and LoadBalancer ingress:
A/AAAA with the plugin's TTL, a CNAME (and the target looked up through the server, by continuation)
for ingress hostnames, SRV with kubernetes' TTL, PTR for external IPs in reverse zones; the apex has SOA and
NS (`ns1.<apex>.<zone>`), `<apex>.<zone>` holds `ns1` only. The kubernetes handler is reached
through the duck-typed methods in REQUIRED (it never gets imported).
"""

from __future__ import annotations

import ipaddress
import math
from functools import partial
from typing import Any

from dnslib import AAAA, CNAME, NS, PTR, QTYPE, RR, SOA, SRV, A, DNSLabel, DNSRecord

from pycoredns import wire
from pycoredns.plugin import WaitingHandler, self_lookup_all
from pycoredns.request import Request, ResponseWriter
from pycoredns.util import Fallthrough, is_subdomain, zone_match
from pycoredns.wire import Reply

from .svc import Svc

REQUIRED = ("external_exposed", "external_service", "external_endpoints", "external_reverse",
            "external_serial", "external_ns_addresses")
IN = 1


def _target_strip(name: str, labels: int) -> str:
    """msg's targetStrip: drop `labels` leading labels (the whole name if that overshoots)."""
    parts = name.split(".")
    return ".".join(parts[labels:]) if labels < len(parts) - 1 else name


def _records(reply: Reply | None) -> tuple[list[RR], bool]:
    """A self-lookup's answer records and TC bit (None: no server to ask, nothing found)."""
    if reply is None:
        return [], False
    m = wire.to_record(reply)
    return list(m.rr), bool(m.header.tc)


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


class External(WaitingHandler):
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

    def address_parts(self, req: Request, svcs: list[Svc], qtype: int) -> tuple[list[RR | int], list[Request]]:
        """CoreDNS's a()/aaaa(): the answer in order, with an int where the records of a lookup go (an
        ingress hostname's CNAME is followed by its target's `qtype` records), and those lookups."""
        parts: list[RR | int] = []
        subs: list[Request] = []
        seen: set[str] = set()
        for s in svcs:
            what = s.host_type()
            if what == QTYPE.CNAME:
                parts.append(RR(req.qlabel, QTYPE.CNAME, ttl=self._kube_ttl(), rdata=CNAME(s.host + ".")))
                parts.append(len(subs))
                subs.append(req.copy_with(qname=s.host.rstrip(".") + ".", qtype=qtype))
            elif what == qtype and s.host not in seen:
                seen.add(s.host)
                rd = A(s.host) if qtype == QTYPE.A else AAAA(s.host)
                parts.append(RR(req.qlabel, qtype, ttl=self.ttl, rdata=rd))
        return parts, subs

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

    def _srv_rr(self, owner, weight: int, port: int, target: str) -> RR:
        return RR(owner, QTYPE.SRV, ttl=self._kube_ttl(), rdata=SRV(0, weight, port & 0xFFFF, target))

    # -- serving ------------------------------------------------------------------------------
    def start(self, req: Request, w: ResponseWriter) -> int:
        """Every answer is made here; ingress hostnames' targets (A/AAAA after their CNAME, SRV's
        additional addresses) are looked up through the server by continuation (`self_lookup_all`: no
        task waits): the rcode, or PENDING."""
        zone = zone_match(self.zones, req.name)
        if zone is None or self.backend is None:
            return self.next_continue(req, w)
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
                return self.next_continue(req, w)
            m.header.rcode = rcode
            m.add_auth(self.soa(zone))
            w.write(m)
            return wire.NOERROR
        qtype = req.qtype
        if qtype in (QTYPE.A, QTYPE.AAAA):
            parts, subs = self.address_parts(req, svcs, qtype)
            if subs:
                return self_lookup_all(subs, w, partial(self._addresses_reply, w, m, zone, parts))
            m.rr = [p for p in parts if isinstance(p, RR)]
        elif qtype == QTYPE.SRV:
            m.rr, m.ar, lookups = self.srv_records(req.qlabel, svcs)
            if lookups:
                subs = [req.copy_with(qname=t, qtype=qt) for t in lookups for qt in (QTYPE.A, QTYPE.AAAA)]
                return self_lookup_all(subs, w, partial(self._srv_reply, w, m, zone))
        elif qtype == QTYPE.PTR:
            seen: set[str] = set()
            for s in svcs:
                if s.host not in seen:
                    seen.add(s.host)
                    m.add_answer(RR(req.qlabel, QTYPE.PTR, ttl=self.ttl, rdata=PTR(f"{s.host}.{self.zones[0]}")))
        return self._reply(w, m, zone)

    def _addresses_reply(self, w: ResponseWriter, m: DNSRecord, zone: str, parts: list[RR | int],
                         replies: list[Reply | None]) -> int:
        """The lookups arrived: each target's records after its CNAME; TC when any lookup was truncated."""
        looked = [_records(r) for r in replies]
        for p in parts:
            if isinstance(p, int):
                m.rr += looked[p][0]
            else:
                m.rr.append(p)
        m.header.tc = int(any(tc for _rrs, tc in looked))
        return self._reply(w, m, zone)

    def _srv_reply(self, w: ResponseWriter, m: DNSRecord, zone: str, replies: list[Reply | None]) -> int:
        """The lookups arrived: the CNAME targets' A and AAAA records go to the additional section."""
        for r in replies:
            m.ar += _records(r)[0]
        return self._reply(w, m, zone)

    def _reply(self, w: ResponseWriter, m: DNSRecord, zone: str) -> int:
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
