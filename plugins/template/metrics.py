"""template's metrics."""

from pycoredns import metrics

matches_total = metrics.REGISTRY.counter(
    "coredns_template_matches_total", "Counter of template regex matches.",
    ("server", "zone", "view", "class", "type"))
template_failures_total = metrics.REGISTRY.counter(
    "coredns_template_template_failures_total", "Counter of go template failures.",
    ("server", "zone", "view", "class", "type", "section", "template"))
rr_failures_total = metrics.REGISTRY.counter(
    "coredns_template_rr_failures_total", "Counter of mis-templated RRs.",
    ("server", "zone", "view", "class", "type", "section", "template"))
