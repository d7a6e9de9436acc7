"""debug: show DEBUG log lines and let panics crash the server (CoreDNS `debug`)."""

from __future__ import annotations

from pycoredns import log
from pycoredns.plugin import Controller


def setup(c: Controller) -> None:
    for _ in c.occurrences():
        if c.next_arg():
            raise c.arg_err()
    c.block.debug = True
    log.set_debug(True)
