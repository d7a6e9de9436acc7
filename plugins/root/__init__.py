"""root: the block's base directory for relative file paths (CoreDNS `root`; README.md)."""

from .setup import setup

__all__ = ["setup"]
