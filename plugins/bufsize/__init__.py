"""bufsize: cap the EDNS UDP size of queries (CoreDNS `bufsize`, DNS Flag Day 2020's 1232)."""

from .setup import setup

__all__ = ["setup"]
