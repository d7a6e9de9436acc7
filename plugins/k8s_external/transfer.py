"""The external zone for the `transfer` plugin: a port of CoreDNS's k8s_external/transfer.go.

CoreDNS builds the records with the same a/aaaa/srv helpers as its answers, without a server for
lookups (so CNAME targets get no address records), and keeps its quirks: only the first SRV per
owner name for Services with external addresses, a CNAME twice (from a and aaaa), headless SRV sets
sent twice. The order of Services follows the index (CoreDNS's follows its informer store).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dnslib import AAAA, CNAME, NS, QTYPE, RR, A

from pycoredns.util import zone_match

from .svc import Svc

if TYPE_CHECKING:
    from .handler import External


def addresses(e: External, owner: str, svcs: list[Svc], qtype: int) -> list[RR]:
    """CoreDNS's a()/aaaa() without the upstream lookup of CNAME targets."""
    out: list[RR] = []
    seen: set[str] = set()
    for s in svcs:
        what = s.host_type()
        if what == QTYPE.CNAME:
            out.append(RR(owner, QTYPE.CNAME, ttl=e._kube_ttl(), rdata=CNAME(s.host.rstrip(".") + ".")))
        elif what == qtype and s.host not in seen:
            seen.add(s.host)
            out.append(RR(owner, qtype, ttl=e.ttl, rdata=A(s.host) if qtype == QTYPE.A else AAAA(s.host)))
    return out


def _all(e: External, owner: str, svcs: list[Svc]) -> tuple[list[RR], list[RR]]:
    return addresses(e, owner, svcs, QTYPE.A) + addresses(e, owner, svcs, QTYPE.AAAA), e.srv_records(owner, svcs)[0]


def transfer(e: External, zone: str, serial: int) -> list[RR] | None:
    b = e.backend
    if b is None or zone_match(e.zones, zone) != zone:
        return None
    soa = e.soa(zone)
    if serial and serial >= soa.rdata.times[0]:
        return [soa]
    ns_name = f"ns1.{e.apex}.{zone}"
    out = [soa, RR(zone, QTYPE.NS, ttl=e.ttl, rdata=NS(ns_name))]
    out += [e._addr(ns_name, ip) for _owner, ip in b.external_ns_addresses(zone, e.headless)]
    srv_seen: set[str] = set()
    headless: dict[str, list[Svc]] = {}  # CoreDNS's headlessServices, keyed by owner name and kind
    for ns, name in b.external_service_keys():
        found = b.external_service(ns, name)
        if found is None:
            continue
        ips, ports, is_headless = found
        base = f"{name}.{ns}.{zone}"
        if e.headless and not ips and is_headless:
            for host, ip, eports in b.external_endpoints(ns, name):
                for p in eports:
                    headless.setdefault(f"endpoint:{base}", []).append(Svc(ip, p.port, f"{host}.{base}"))
                    if p.name:
                        key = f"srv:_{p.name}._{p.proto}.{base}"
                        headless.setdefault(key, []).append(Svc(f"{host}.{base}", p.port, key[4:]))
            continue
        for ip in ips:
            for p in ports:
                named = f"_{p.name}._{p.proto}.{base}"
                for svc, owner in ((Svc(ip, p.port, base), base), (Svc(ip, p.port, named, 2), named)):
                    if not svc.strip:
                        out += addresses(e, owner, [svc], QTYPE.A) + addresses(e, owner, [svc], QTYPE.AAAA)
                    for rr in e.srv_records(owner, [svc])[0]:
                        if owner not in srv_seen:
                            srv_seen.add(owner)
                            out.append(rr)
    for key, svcs in headless.items():
        kind, owner = key.split(":", 1)
        if kind == "srv":
            out += e.srv_records(owner, svcs)[0]
            continue
        addrs, srvs = _all(e, owner, svcs)
        out += addrs + srvs + srvs
        for svc in svcs:
            addrs, srvs = _all(e, svc.domain, [svc])
            out += addrs + srvs + srvs
    out.append(soa)
    return out
