"""chaos: CH-class TXT answers for version.bind, authors.bind, hostname.bind (CoreDNS `chaos`; README.md)."""

from .setup import setup

__all__ = ["setup"]
