"""metadata: collect request metadata from the block's providers for other plugins (CoreDNS `metadata`)."""

from .setup import setup

__all__ = ["setup"]
