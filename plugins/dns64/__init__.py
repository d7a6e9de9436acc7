"""dns64: synthesise AAAA answers from A records for IPv6-only clients (RFC 6147, CoreDNS `dns64`)."""

from .setup import setup

__all__ = ["setup"]
