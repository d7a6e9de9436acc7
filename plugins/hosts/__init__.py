"""hosts: answer A, AAAA and PTR from a hosts(5) file and inline entries (CoreDNS `hosts`; README.md)."""

from .setup import setup

__all__ = ["setup"]
