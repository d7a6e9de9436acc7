"""`loop` (no arguments, once per block): Corefile parsing and the probe's target."""

from __future__ import annotations

from pycoredns.plugin import Controller

from .handler import Loop

WILDCARD_PROBE = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}  # a wildcard listener is probed here


def setup(c: Controller) -> None:
    for _ in c.occurrences(once=True):
        if c.next_arg():
            raise c.arg_err()
    h = Loop(c.zones[0] if c.zones else ".")

    async def target() -> tuple[str, int]:
        """The block's first listen host and port, once the listeners are bound."""
        await c.wait_serving()
        _, host, port = c.listen_addresses()[0]
        return WILDCARD_PROBE.get(host, host), port

    c.start_soon(h.probe, target)
    c.add_handler(h)
