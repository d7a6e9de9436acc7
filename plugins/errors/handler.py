"""errors' handler: log the errors the chain below returns, optionally consolidated.

`[ERROR] plugin/errors: <rcode> <qname> <qtype>: <error>`; a consolidation Pattern counts matching
errors and logs one summary line per period.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import trio

from pycoredns import wire
from pycoredns.log import plugin_logger
from pycoredns.plugin import ObserverHandler, PluginError, Request, ResponseWriter
from pycoredns.util import format_duration

log = plugin_logger("errors")


class Pattern:
    def __init__(self, period: float, regexp: str, level: str, show_first: bool) -> None:
        self.period = period
        self.regexp = regexp
        self.pattern = re.compile(regexp)
        self.level = level
        self.show_first = show_first
        self.count = 0

    def emit(self, text: str) -> None:
        getattr(log, self.level)(text)


class Errors(ObserverHandler):
    """Reports the chain's error when the query completes (returned, raised or by continuation).

    An observer of failures only: no writer of its own per query, and nothing runs for a query that
    succeeds (`ObserverHandler`)."""

    name = "errors"
    observe_errors_only = True

    def __init__(self, patterns: list[Pattern], spawn: Callable[..., bool]) -> None:
        self.patterns = patterns
        self.spawn = spawn  # Controller.spawn: runs the consolidation timer in the configuration

    def observe(self, req: Request, w: ResponseWriter, rcode: int, error: PluginError | None, started: object) -> int:
        if error is not None:
            self._report(req, error)
            return error.rcode
        return rcode

    def _report(self, req: Request, e: PluginError) -> None:
        text = f"{e.rcode} {req.name} {wire.type_name(req.qtype)}: {e}"
        for p in self.patterns:
            if p.pattern.search(text):
                p.count += 1
                if p.count == 1:
                    if p.show_first:
                        p.emit(text)
                    self.spawn(self._flush_later, p)
                return
        log.error(text)

    async def _flush_later(self, p: Pattern) -> None:
        await trio.sleep(p.period)
        n, p.count = p.count, 0
        if p.show_first and n <= 1:
            return
        p.emit(f"{n} errors like '{p.regexp}' occurred in last {format_duration(p.period)}")
