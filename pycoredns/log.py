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
        h = _sole_handler(self._log, logging.ERROR)
        if h is None:
            self._log.error(self.prefix + msg)
        else:  # the line configure()'s format makes, without a LogRecord (errors logs one per failed query)
            _write(h, "[ERROR] " + self.prefix + msg)

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


_FORMAT = logging.Formatter("[%(levelname)s] %(message)s")
_installed: logging.StreamHandler[TextIO] | None = None  # configure()'s handler


def _sole_handler(logger: logging.Logger, level: int) -> logging.StreamHandler[TextIO] | None:
    """configure()'s handler when a record at `level` from `logger` would go to it and nowhere else,
    with no filter on the way: then the line can be written as its formatter would write it. Checked
    on every call (cheap), so a handler or filter added later (an embedding program, tests) sees
    every record as before."""
    h = _installed
    if h is None or h.formatter is not _FORMAT or h.filters or level < h.level or logger.filters \
            or not logger.isEnabledFor(level):
        return None
    lg: logging.Logger | None = logger
    while lg is not None:
        if lg.handlers and (lg.handlers[0] is not h or len(lg.handlers) > 1):
            return None
        if lg.handlers or not lg.propagate:
            return h if lg.handlers else None
        lg = lg.parent
    return None


def _write(h: logging.StreamHandler[TextIO], line: str) -> None:
    """What StreamHandler.emit does with a formatted line (the write and the flush, under its lock)."""
    assert h.lock is not None
    with h.lock:
        h.stream.write(line + h.terminator)
        h.flush()


def configure(stream: TextIO | None = None) -> None:
    """Install CoreDNS's format on the `pycoredns` logger (idempotent)."""
    logger = logging.getLogger(ROOT)
    for h in list(logger.handlers):
        if getattr(h, "_pycoredns", False):
            logger.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(_FORMAT)
    handler._pycoredns = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    global _installed
    _installed = handler
    logger.setLevel(logging.DEBUG if _debug else logging.INFO)
    logger.propagate = False
