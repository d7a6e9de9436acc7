"""debug: show DEBUG log lines and let panics crash the server (CoreDNS `debug`; README.md)."""

from .setup import setup

__all__ = ["setup"]
