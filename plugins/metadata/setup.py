"""`metadata [ZONES...]`: no block, no other arguments; providers are found at startup."""

from __future__ import annotations

from pycoredns.plugin import Controller

from .handler import Metadata


def setup(c: Controller) -> None:
    c.next()
    handler = Metadata(c.zones_from(c.remaining_args()))
    if c.next_block() or c.next():
        raise c.arg_err()
    block = c.block

    async def find_providers() -> None:
        handler.providers = [h for h in block.handlers if h is not handler and callable(getattr(h, "metadata", None))]

    c.on_startup(find_providers)
    block.extra["metadata"] = handler  # `view` collects before it filters, as CoreDNS's server does
    c.add_handler(handler)
