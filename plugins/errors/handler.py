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
from pycoredns.plugin import PluginError, Request, ResponseWriter, Wrapper, WrapperHandler
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


class _ErrorsWriter(Wrapper):
    """Reports the chain's error when the query completes (returned, raised or by continuation).

    Its `after` acts only on errors, so the wrapper machinery skips it for a successful query. Replies
    pass straight through: `write` is the writer below's own bound method, set per query (no frame of
    ours per reply), and `written` reads the writer below's."""

    __slots__ = ("errors", "req", "write")
    after_on_error_only = True

    def __init__(self, inner: ResponseWriter, errors: Errors, req: Request) -> None:
        self.inner = inner
        self.write = inner.write  # type: ignore[method-assign]
        self.errors = errors
        self.req = req

    @property
    def written(self) -> bool:  # type: ignore[override]
        return self.inner.written

    def after(self, rcode: int, error: PluginError | None) -> int:
        if error is not None:
            self.errors._report(self.req, error)
            return error.rcode
        return rcode


class Errors(WrapperHandler):
    name = "errors"
    writer = _ErrorsWriter  # every query, unchanged: no `wrap` call

    def __init__(self, patterns: list[Pattern], spawn: Callable[..., bool]) -> None:
        self.patterns = patterns
        self.spawn = spawn  # Controller.spawn: runs the consolidation timer in the configuration

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
