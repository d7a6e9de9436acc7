"""k8s_external: names for Services' external IPs and LoadBalancer ingress (CoreDNS `k8s_external`)."""

from .setup import setup

__all__ = ["setup"]
