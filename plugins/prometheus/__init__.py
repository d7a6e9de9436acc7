"""prometheus: count every query and serve `/metrics` in the Prometheus text format (CoreDNS `metrics`;
README.md). setup.py parses, handler.py counts (in batches), metrics.py serves and adds process metrics."""

from .handler import Metrics, flush
from .setup import setup

__all__ = ["Metrics", "flush", "setup"]
