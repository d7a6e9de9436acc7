"""reload: poll the Corefile (imports expanded) and reload gracefully when it changed (CoreDNS `reload`).

See README.md. `setup.py` reads the directive, `poller.py` is the process-wide polling task,
`metrics.py` its metrics.
"""

from .poller import Poller, period, poller
from .setup import setup

__all__ = ["Poller", "period", "poller", "setup"]
