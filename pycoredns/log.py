"""CoreDNS-style log lines: `[LEVEL] plugin/<name>: message`, on stdout, no timestamp.

Built on stdlib `logging` so that programs embedding pycoredns can route the lines anywhere;
`configure()` installs the CoreDNS format for the command-line program.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

logging.addLevelName(logging.CRITICAL, "FATAL")
ROOT = "pycoredns"
_debug = False


class PluginLogger:
    """A logger for one plugin; prefixes its messages with `plugin/<name>: `."""

    __slots__ = ("_log", "prefix")

    def __init__(self, name: str) -> None:
        self._log = logging.getLogger(f"{ROOT}.plugin.{name}")
        self.prefix = f"plugin/{name}: "

    def debug(self, msg: str) -> None:
        if _debug:
            self._log.debug(self.prefix + msg)

    def info(self, msg: str) -> None:
        self._log.info(self.prefix + msg)

    def warning(self, msg: str) -> None:
        self._log.warning(self.prefix + msg)

    def error(self, msg: str) -> None:
        self._log.error(self.prefix + msg)

    def fatal(self, msg: str) -> None:
        self._log.critical(self.prefix + msg)


def plugin_logger(name: str) -> PluginLogger:
    return PluginLogger(name)


core = logging.getLogger(ROOT)
"""Unprefixed lines (`[INFO] Reloading`, query logs)."""


def set_debug(on: bool) -> None:
    """The `debug` plugin: DEBUG lines are shown only while it is on."""
    global _debug
    _debug = on
    logging.getLogger(ROOT).setLevel(logging.DEBUG if on else logging.INFO)


def configure(stream: TextIO | None = None) -> None:
    """Install CoreDNS's format on the `pycoredns` logger (idempotent)."""
    logger = logging.getLogger(ROOT)
    for h in list(logger.handlers):
        if getattr(h, "_pycoredns", False):
            logger.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(logging.Formatter("[%(levelname)s] %(message)s"))
    handler._pycoredns = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if _debug else logging.INFO)
    logger.propagate = False
