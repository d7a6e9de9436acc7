"""local's metric, named as CoreDNS's."""

from __future__ import annotations

from pycoredns import metrics

localhost_total = metrics.REGISTRY.counter(
    "coredns_local_localhost_requests_total", "Counter of special localhost subdomain requests.")
