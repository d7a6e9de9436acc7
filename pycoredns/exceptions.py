"""Every error type a plugin raises, in one place at the bottom of the import graph."""

from __future__ import annotations


class PluginError(Exception):
    """An error a handler returns with an rcode: `errors` logs it, the server writes the rcode."""

    def __init__(self, rcode: int, message: str) -> None:
        super().__init__(message)
        self.rcode = rcode


class ConfigError(Exception):
    """A setup error; the runner prints it as `plugin/<name>: <message>`."""
