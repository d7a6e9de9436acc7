"""minimal: strip authority and additional from successful answers (CoreDNS `minimal`)."""

from __future__ import annotations

from pycoredns import response, wire
from pycoredns.plugin import Controller, Request, ResponseWriter, Wrapper, WrapperHandler
from pycoredns.wire import Reply


class _MinimalWriter(Wrapper):
    __slots__ = ()

    def write(self, reply: Reply) -> None:
        data = wire.to_bytes(reply)
        if (data[8] or data[9] or data[10] or data[11]) and response.typify(data) == response.Type.NOERROR:
            reply = wire.answer_only(data)
        super().write(reply)


class Minimal(WrapperHandler):
    name = "minimal"

    def wrap(self, req: Request, w: ResponseWriter) -> tuple[Request, _MinimalWriter]:
        return req, _MinimalWriter(w)


def setup(c: Controller) -> None:
    for _ in c.occurrences():
        if c.next_arg():
            raise c.arg_err()
    c.add_handler(Minimal())
