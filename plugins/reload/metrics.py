"""reload's metrics, with CoreDNS's names and help texts."""

from pycoredns.metrics import REGISTRY

version_info = REGISTRY.gauge(
    "coredns_reload_version_info",
    "A metric with a constant '1' value labeled by hash, and value which type of hash generated.",
    ("hash", "value"))
failed_total = REGISTRY.counter(
    "coredns_reload_failed_total", "Counter of the number of failed reload attempts.")
