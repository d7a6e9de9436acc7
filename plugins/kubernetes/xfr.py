"""Zone transfer of the cluster zone for the `transfer` plugin (CoreDNS's kubernetes/xfr.go).

`transfer` finds transferers by duck typing (`transfer(zone, serial) -> list[RR] | None`); this mixin
gives the kubernetes handler that method, built from the same index the answers come from.
"""

from __future__ import annotations

import ipaddress
import math
from typing import Any

from dnslib import AAAA, CNAME, NS, QTYPE, RR, SOA, SRV, A

from pycoredns.util import zone_match

from .nsaddrs import DEFAULT_NS, ns_addresses


def _addr(owner: str, ip: str, ttl: int) -> RR:
    if ipaddress.ip_address(ip).version == 4:
        return RR(owner, QTYPE.A, ttl=ttl, rdata=A(ip))
    return RR(owner, QTYPE.AAAA, ttl=ttl, rdata=AAAA(ip))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


class TransferMixin:
    """Mixed into the Kubernetes handler: `zones`, `index`, `ttl` and `local_ips` come from it."""

    zones: list[str]
    index: Any
    ttl: int
    local_ips: list[str]

    def transfer(self, zone: str, serial: int) -> list[RR] | None:
        """SOA, NS and their addresses, every exposed Service's records, SOA; the SOA alone when
        `serial` is current; None when `zone` is not one of ours."""
        idx = self.index
        if idx is None or zone_match(self.zones, zone) is None:
            return None
        ttl = self.ttl
        soa = RR(zone, QTYPE.SOA, ttl=min(ttl, 300),
                 rdata=SOA(DEFAULT_NS + zone, "hostmaster." + zone, (idx.serial, 7200, 1800, 86400, ttl)))
        if serial and idx.serial == serial:
            return [soa]
        out = [soa]
        addrs = ns_addresses(self.index, self.local_ips, zone, False, False)
        for host in dict.fromkeys(owner for owner, _ip in addrs):
            out.append(RR(zone, QTYPE.NS, ttl=ttl, rdata=NS(host)))
        out += [_addr(owner, ip, 0) for owner, ip in addrs]  # CoreDNS leaves these TTLs at 0
        for (ns, name), svc in sorted(idx.services.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            if idx.exposed(ns):
                out += self._service_records(svc, f"{name}.{ns}.svc.{zone}", ttl)
        out.append(soa)
        return out

    def _service_records(self, svc: Any, base: str, ttl: int) -> list[RR]:
        out: list[RR] = []
        if svc.external:
            if not _is_ip(svc.external):
                out.append(RR(base, QTYPE.CNAME, ttl=ttl, rdata=CNAME(svc.external.rstrip(".") + ".")))
            return out
        if svc.ips:
            out += [_addr(base, ip, ttl) for ip in svc.ips]
            for p in svc.ports:
                if p.port == -1:
                    continue
                out.append(RR(base, QTYPE.SRV, ttl=ttl, rdata=SRV(0, 100, p.port, base)))
                if p.name:
                    out.append(RR(f"_{p.name}._{p.proto}.{base}", QTYPE.SRV, ttl=ttl, rdata=SRV(0, 100, p.port, base)))
            return out
        for sl, addrs in self.index.ready_addresses((svc.ns, svc.name)):
            weight = max(1, math.floor(100.0 / (100 * len(addrs)) * 100)) if addrs else 1
            for host, ip in addrs:
                target = f"{host}.{base}"
                out += [_addr(base, ip, ttl), _addr(target, ip, ttl)]
                for p in sl.ports:
                    if p.name and p.port != -1:
                        out.append(RR(f"_{p.name}._{p.proto}.{base}", QTYPE.SRV, ttl=ttl,
                                      rdata=SRV(0, weight, p.port, target)))
        return out
