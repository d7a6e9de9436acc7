"""hosts' metrics, with CoreDNS's names and help texts."""

from pycoredns.metrics import REGISTRY

entries_gauge = REGISTRY.gauge(
    "coredns_hosts_entries", "The combined number of entries in hosts and Corefile.")
reload_timestamp = REGISTRY.gauge(
    "coredns_hosts_reload_timestamp_seconds", "The timestamp of the last reload of hosts file.")
hits_total = REGISTRY.counter("coredns_hosts_hits_total", "The number of requests served from the hosts file")
HITS = hits_total.values  # incremented in place on the hot path
