"""`root PATH`: the block's base directory for relative file paths (a missing one is a warning)."""

from __future__ import annotations

import os

from pycoredns.log import plugin_logger
from pycoredns.plugin import Controller

log = plugin_logger("root")


def setup(c: Controller) -> None:
    for _ in c.occurrences():
        if not c.next_arg():
            raise c.arg_err()
        path = c.val()
        if not os.path.exists(path):
            log.warning(f"Root path does not exist: {path}")
        c.block.root = path
        if c.next_arg():
            raise c.arg_err()
