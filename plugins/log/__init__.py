"""log: one line per query in CoreDNS's Common or Combined format (CoreDNS `log`; README.md)."""

from .handler import COMBINED, COMMON, Log, Rule, format_line
from .setup import setup

__all__ = ["COMBINED", "COMMON", "Log", "Rule", "format_line", "setup"]
