"""kubernetes: cluster DNS from a watched Kubernetes API (CoreDNS `kubernetes`, reference §3.1).

`setup.py` parses the stanza; the watch thread (`watch.py`, transport from `client.py`) feeds objects
reduced on arrival (`objects.py`) into the record index (`index.py`), which precomputes wire answers;
`handler.py` answers from it (`serve_fast`, no waiting) and memoises what it computes per query;
only ExternalName A/AAAA (a self-lookup of the target) waits. Metrics in `metrics.py`.
"""

from .handler import Kubernetes
from .metrics import programming_duration, rate_limiter_duration, request_duration, requests_total
from .setup import parse, setup

__all__ = ["Kubernetes", "parse", "programming_duration", "rate_limiter_duration",
           "request_duration", "requests_total", "setup"]
