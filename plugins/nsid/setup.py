"""`nsid [DATA...]`: the words joined with spaces, default the hostname; once per server block."""

from __future__ import annotations

import socket

from pycoredns.plugin import Controller

from .handler import Nsid


def setup(c: Controller) -> None:
    try:
        data = socket.gethostname()
    except OSError:
        data = "localhost"
    for _ in c.occurrences(once=True):
        args = c.remaining_args()
        if args:
            data = " ".join(args)
    c.add_handler(Nsid(data))
