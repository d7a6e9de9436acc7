"""`chaos [VERSION] [AUTHORS...]`: Corefile parsing (a block is an argument error)."""

from __future__ import annotations

from pycoredns import COREDNS_VERSION
from pycoredns.plugin import Controller

from .handler import AUTHORS, Chaos


def setup(c: Controller) -> None:
    version, authors = f"CoreDNS-{COREDNS_VERSION}", AUTHORS
    for _ in c.occurrences():
        args = c.remaining_args()
        if args:
            version = args[0]
        if len(args) > 1:
            authors = args[1:]
        if c.next_block():
            raise c.arg_err()
    c.add_handler(Chaos(version, authors))
