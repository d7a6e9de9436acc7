"""minimal's handler: strip authority and additional from successful answers."""

from __future__ import annotations

from pycoredns import response, wire
from pycoredns.plugin import Request, ResponseWriter, Wrapper, WrapperHandler
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
