"""loop: detect forwarding loops with a self-query and exit fatally (CoreDNS `loop`; README.md)."""

from .setup import setup

__all__ = ["setup"]
