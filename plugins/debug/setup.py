"""`debug` (no arguments): DEBUG log lines, and panics propagate instead of becoming SERVFAIL."""

from __future__ import annotations

from pycoredns import log
from pycoredns.plugin import Controller


def setup(c: Controller) -> None:
    for _ in c.occurrences():
        if c.next_arg():
            raise c.arg_err()
    c.block.debug = True
    log.set_debug(True)
