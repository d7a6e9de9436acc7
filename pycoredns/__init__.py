"""pycoredns: a CoreDNS-compatible DNS server in Python."""

__version__ = "0.1.0"
COREDNS_VERSION = "1.14.7"
