"""autopath's metrics."""

from pycoredns import metrics

success_total = metrics.REGISTRY.counter(
    "coredns_autopath_success_total", "Counter of requests that did autopath.", ("server",))
