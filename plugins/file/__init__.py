"""file: authoritative zones from RFC 1035 master files (CoreDNS `file`)."""

from .setup import setup

__all__ = ["setup"]
