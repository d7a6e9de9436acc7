"""count: a writer-wrapping handler (WrapperHandler): counts the rcodes of everything below it.

`Wrapper.after` runs once per query whichever way the chain below completed it: returned an rcode,
raised a PluginError, or completed later by continuation (`w.done`, as forward does).
"""

from __future__ import annotations

from pycoredns.plugin import Controller, PluginError, Request, ResponseWriter, Wrapper, WrapperHandler

AFTER = "errors"


class _Counted(Wrapper):
    __slots__ = ("plugin",)

    def __init__(self, inner: ResponseWriter, plugin: Count) -> None:
        super().__init__(inner)
        self.plugin = plugin

    def after(self, rcode: int, error: PluginError | None) -> int:
        seen = self.plugin.seen
        seen[rcode] = seen.get(rcode, 0) + 1
        return super().after(rcode, error)  # passes the rcode up, or re-raises the error


class Count(WrapperHandler):
    name = "count"

    def __init__(self) -> None:
        self.seen: dict[int, int] = {}

    def wrap(self, req: Request, w: ResponseWriter) -> tuple[Request, _Counted]:
        return req, _Counted(w, self)


def setup(c: Controller) -> None:
    for _ in c.occurrences():
        if c.next_arg():
            raise c.arg_err()
    c.add_handler(Count())
