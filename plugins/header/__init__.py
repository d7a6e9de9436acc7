"""header: set or clear the aa, ra and rd flags of queries and responses (CoreDNS `header`)."""

from .setup import setup

__all__ = ["setup"]
