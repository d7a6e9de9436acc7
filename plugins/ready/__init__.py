"""ready: `GET /ready` is 200 OK once every plugin that reports readiness is ready, else 503 (README.md)."""

from .setup import setup

__all__ = ["setup"]
