"""minimal's Corefile parsing: the directive takes no arguments."""

from __future__ import annotations

from pycoredns.plugin import Controller

from .handler import Minimal


def setup(c: Controller) -> None:
    for _ in c.occurrences():
        if c.next_arg():
            raise c.arg_err()
    c.add_handler(Minimal())
