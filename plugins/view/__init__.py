"""view: route queries to a server block only when its expressions hold (CoreDNS `view`)."""

from .setup import setup

__all__ = ["setup"]
