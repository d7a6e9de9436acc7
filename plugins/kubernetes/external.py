"""What `k8s_external` reads from the kubernetes handler (CoreDNS's Externaler), as plain data.

k8s_external never imports this plugin: it looks the handler up in its block (`c.handler`) and calls
these methods (duck typing). Everything comes from the index the watches keep.
"""

from __future__ import annotations

from typing import Any

from .nsaddrs import ns_addresses

Key = tuple[str, str]


class ExternalMixin:
    """Mixed into the Kubernetes handler: `index`, `local_ips`, `ttl` and `namespaces` come from it."""

    index: Any
    local_ips: list[str]
    ttl: int

    def external_exposed(self, ns: str) -> bool:
        """Whether names in namespace `ns` may be answered (it exists and is not filtered out)."""
        return self.index is not None and self.index.exposed(ns)

    def external_service(self, ns: str, name: str) -> tuple[tuple[str, ...], tuple, bool] | None:
        """(external IPs and LoadBalancer ingress IPs/hostnames, ports, headless) of a service, or None.

        Ports have `name`, `proto` (lowercase) and `port`."""
        svc = self.index.services.get((ns, name)) if self.index is not None else None
        if svc is None:
            return None
        return svc.external_ips, svc.ports, svc.headless

    def external_service_keys(self) -> list[Key]:
        """(namespace, name) of every Service (zone transfers; CoreDNS does not filter namespaces here)."""
        return list(self.index.services) if self.index is not None else []

    def external_endpoints(self, ns: str, name: str) -> list[tuple[str, str, tuple]]:
        """(endpoint hostname, IP, ports) of every ready address of the service."""
        if self.index is None:
            return []
        return [(host, ip, sl.ports) for sl, addrs in self.index.ready_addresses((ns, name)) for host, ip in addrs]

    def external_reverse(self, ip: str) -> list[Key]:
        """(namespace, name) of the services that have `ip` among their external IPs."""
        if self.index is None:
            return []
        return sorted(key for key, svc in self.index.services.items()
                      if ip in svc.external_ips and self.index.exposed(key[0]))

    def external_serial(self) -> int:
        """The SOA serial: when an update last changed a service's external IPs or ports (unix
        seconds), 0 before any such update (CoreDNS's extModified ignores adds and deletes)."""
        return self.index.ext_serial if self.index is not None else 0

    def external_ns_addresses(self, zone: str, headless: bool) -> list[tuple[str, str]]:
        """(owner name, IP) for the apex NS glue: CoreDNS's nsAddrs(external=true)."""
        return ns_addresses(self.index, self.local_ips, zone, True, headless)
