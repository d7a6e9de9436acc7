"""transfer: AXFR and IXFR (answered as AXFR) out of `file` and other transferers, NOTIFY (CoreDNS `transfer`)."""

from .setup import setup

__all__ = ["setup"]
