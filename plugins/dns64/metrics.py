"""dns64's metric, named as CoreDNS's."""

from __future__ import annotations

from pycoredns import metrics

translated_total = metrics.REGISTRY.counter(
    "coredns_dns64_requests_translated_total", "Counter of DNS requests translated by dns64.", ("server",))
