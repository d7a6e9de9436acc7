"""acl's metrics, with CoreDNS's names, help texts and labels."""

from pycoredns.metrics import REGISTRY

blocked_total = REGISTRY.counter(
    "coredns_acl_blocked_requests_total", "Counter of DNS requests being blocked.", ("server", "zone", "view"))
filtered_total = REGISTRY.counter(
    "coredns_acl_filtered_requests_total", "Counter of DNS requests being filtered.", ("server", "zone", "view"))
allowed_total = REGISTRY.counter(
    "coredns_acl_allowed_requests_total", "Counter of DNS requests being allowed.", ("server", "view"))
dropped_total = REGISTRY.counter(
    "coredns_acl_dropped_requests_total", "Counter of DNS requests being dropped.", ("server", "zone", "view"))
