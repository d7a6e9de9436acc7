"""minimal: strip authority and additional from successful answers (CoreDNS `minimal`; README.md)."""

from .handler import Minimal
from .setup import setup

__all__ = ["Minimal", "setup"]
