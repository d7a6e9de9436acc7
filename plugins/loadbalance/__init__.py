"""loadbalance: shuffle A, AAAA and MX records of NOERROR replies (CoreDNS `loadbalance`).

`setup.py` reads the Corefile, `policy.py` holds the orderings (round robin, prefer, weighted),
`handler.py` the writer wrapper that applies them on wire bytes.
"""

from .handler import LoadBalance
from .setup import setup

__all__ = ["LoadBalance", "setup"]
