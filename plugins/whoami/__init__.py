"""whoami: reply with the client's address and port in the additional section (CoreDNS `whoami`; README.md)."""

from .setup import setup

__all__ = ["setup"]
