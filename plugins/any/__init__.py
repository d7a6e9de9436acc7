"""any: answer ANY queries with the RFC 8482 HINFO record (CoreDNS `any`; README.md)."""

from .setup import setup

__all__ = ["setup"]
