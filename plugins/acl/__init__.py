"""acl: allow, block, filter or drop queries by type and client network (CoreDNS `acl`; README.md)."""

from .setup import setup

__all__ = ["setup"]
