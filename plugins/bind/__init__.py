"""bind: the addresses (or interfaces) a server block listens on (CoreDNS `bind`; README.md)."""

from .setup import setup

__all__ = ["setup"]
