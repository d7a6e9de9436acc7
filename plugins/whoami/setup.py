"""`whoami` (no arguments): Corefile parsing."""

from __future__ import annotations

from pycoredns.plugin import Controller

from .handler import Whoami


def setup(c: Controller) -> None:
    for _ in c.occurrences():
        if c.next_arg():
            raise c.arg_err()
    c.add_handler(Whoami())
