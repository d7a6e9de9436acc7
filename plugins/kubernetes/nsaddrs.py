"""CoreDNS's nsAddrs: the names and addresses behind this server's NS records.

With a local IP among a Service's endpoints, that Service (its cluster IPs, or for `external` its
external addresses; a headless one's endpoints by name); else `ns.dns.<zone>` with the host's IPs.
Used by the zone transfer (kubernetes) and by k8s_external's apex NS.
"""

from __future__ import annotations

from typing import Any

DEFAULT_NS = "ns.dns."


def ns_addresses(idx: Any, local_ips: list[str], zone: str, external: bool, headless: bool) -> list[tuple[str, str]]:
    """(owner name, IP) pairs, in CoreDNS's order."""
    out: list[tuple[str, str]] = []
    found = False
    for local in local_ips:
        for key, is_cluster_ip in (idx.ptr_sources(local) if idx is not None else ()):
            if is_cluster_ip:
                continue
            found = True
            svc = idx.services.get(key)
            if svc is None:
                continue
            base = f"{svc.name}.{svc.ns}.{zone}" if external else f"{svc.name}.{svc.ns}.svc.{zone}"
            if svc.headless and (headless or not external):
                out += [(f"{host}.{base}", ip) for _sl, addrs in idx.ready_addresses(key) for host, ip in addrs]
            else:
                out += [(base, ip) for ip in (svc.external_ips if external else svc.ips)]
    if not found:
        out = [(DEFAULT_NS + zone, ip) for ip in local_ips]
    return out
