"""health: `GET /health` answers 200 OK while the process runs; `lameduck` delays shutdown (README.md)."""

from .setup import setup

__all__ = ["setup"]
