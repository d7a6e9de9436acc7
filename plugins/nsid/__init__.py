"""nsid: add the NSID EDNS option (RFC 5001) to replies when the query asks for it (CoreDNS `nsid`)."""

from .setup import setup

__all__ = ["setup"]
