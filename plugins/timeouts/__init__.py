"""timeouts: read, write and idle timeouts (and maxtcpqueries) of the block's TCP listeners (CoreDNS `timeouts`)."""

from .setup import setup

__all__ = ["setup"]
