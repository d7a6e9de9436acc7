"""`local { localhost_prefix on|off }`: CoreDNS's parse, with its error texts."""

from __future__ import annotations

from pycoredns.plugin import Controller

from .handler import Local

PREFIX_VALUES = {"on": False, "off": True}  # -> disable the legacy `localhost.` prefix match


def setup(c: Controller) -> None:
    disable_prefix = False
    for _ in c.occurrences():
        if c.remaining_args():
            raise c.arg_err()
        while c.next_block():
            if c.val() != "localhost_prefix":
                raise c.errf("unknown property '%s'", c.val())
            args = c.remaining_args()
            if len(args) != 1:
                raise c.arg_err()
            if args[0] not in PREFIX_VALUES:
                raise c.errf("localhost_prefix expects 'on' or 'off', got %q", args[0])
            disable_prefix = PREFIX_VALUES[args[0]]
    c.add_handler(Local(disable_prefix))
