"""errors: log the errors the chain below returns, optionally consolidated (CoreDNS `errors`; README.md)."""

from .handler import Errors, Pattern
from .setup import setup

__all__ = ["Errors", "Pattern", "setup"]
