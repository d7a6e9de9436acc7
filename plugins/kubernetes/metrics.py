"""kubernetes' metrics (CoreDNS's names, labels and buckets)."""

from __future__ import annotations

from pycoredns.metrics import REGISTRY, exponential_buckets

programming_duration = REGISTRY.histogram(
    "coredns_kubernetes_dns_programming_duration_seconds",
    "Histogram of the time (in seconds) it took to program a dns instance.",
    exponential_buckets(0.001, 2, 20), ("service_kind",))
request_duration = REGISTRY.histogram(
    "coredns_kubernetes_rest_client_request_duration_seconds",
    "Request latency in seconds. Broken down by verb and host.",
    [0.005, 0.025, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60], ("verb", "host"))
rate_limiter_duration = REGISTRY.histogram(
    "coredns_kubernetes_rest_client_rate_limiter_duration_seconds",
    "Client side rate limiter latency in seconds. Broken down by verb and host.",
    [0.005, 0.025, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60], ("verb", "host"))
requests_total = REGISTRY.counter(
    "coredns_kubernetes_rest_client_requests_total",
    "Number of HTTP requests, partitioned by status code, method, and host.", ("code", "method", "host"))
