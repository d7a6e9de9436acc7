"""local: answer localhost and the loopback reverse zones locally (CoreDNS `local`)."""

from .setup import setup

__all__ = ["setup"]
