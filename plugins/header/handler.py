"""The header handler: flag rules applied to the query (wire and `flags`) and to every reply written."""

from __future__ import annotations

from typing import NamedTuple

from pycoredns import wire
from pycoredns.plugin import Wrapper, WrapperHandler
from pycoredns.request import Request, ResponseWriter
from pycoredns.wire import Reply


class Rule(NamedTuple):
    bit: int  # wire.AA, wire.RA or wire.RD
    state: bool


def apply(flags: int, rules: list[Rule]) -> int:
    for bit, state in rules:
        flags = flags | bit if state else flags & ~bit
    return flags


class _HeaderWriter(Wrapper):
    __slots__ = ("rules",)

    def __init__(self, inner: ResponseWriter, rules: list[Rule]) -> None:
        super().__init__(inner)
        self.rules = rules

    def write(self, reply: Reply) -> None:
        data = wire.to_bytes(reply)
        flags = apply((data[2] << 8) | data[3], self.rules)
        super().write(data[:2] + flags.to_bytes(2, "big") + data[4:])


class Header(WrapperHandler):
    name = "header"

    def __init__(self, query_rules: list[Rule], response_rules: list[Rule]) -> None:
        self.query_rules = query_rules
        self.response_rules = response_rules

    def wrap(self, req: Request, w: ResponseWriter) -> tuple[Request, Wrapper] | None:
        if self.query_rules:
            flags = apply(req.flags, self.query_rules)
            if flags != req.flags:
                req.flags = flags
                req.wire = req.wire[:2] + flags.to_bytes(2, "big") + req.wire[4:]
        return req, _HeaderWriter(w, self.response_rules)
