"""Every error type of pycoredns, in one place at the bottom of the import graph."""

from __future__ import annotations


class PluginError(Exception):
    """An error a handler returns with an rcode: `errors` logs it, the server writes the rcode."""

    def __init__(self, rcode: int, message: str) -> None:
        super().__init__(message)
        self.rcode = rcode


class ConfigError(Exception):
    """A setup error; the runner prints it as `plugin/<name>: <message>`."""


class ServerBlockKeyError(ConfigError):
    """A bad server-block key; ``str(e)`` is CoreDNS's ``error inspecting server blocks: <msg>``."""

    def __init__(self, msg: str) -> None:
        super().__init__(f"error inspecting server blocks: {msg}")
        self.msg = msg


class StartupError(Exception):
    """The configuration cannot run; str() is the message CoreDNS prints before exiting 1."""
