"""The `/health` route and the lameduck sleep: one `Health` per configuration (the last directive wins)."""

from __future__ import annotations

import trio

from pycoredns.log import plugin_logger
from pycoredns.util import format_duration

log = plugin_logger("health")
DEFAULT_ADDRESS = ":8080"


def ok(method: str, target: str) -> tuple[int, str, bytes]:
    """GET /health: always OK while the process serves HTTP."""
    return 200, "text/plain; charset=utf-8", b"OK"


class Health:
    """Process-wide settings of one configuration: where `/health` is served, how long the lameduck is."""

    def __init__(self) -> None:
        self.address = ""  # empty until a health directive was set up
        self.lameduck = 0.0

    async def lameduck_sleep(self) -> None:
        """Final-shutdown hook: keep serving DNS and /health for the lameduck duration."""
        if self.lameduck > 0:
            log.info(f"Going into lameduck mode for {format_duration(self.lameduck)}")
            await trio.sleep(self.lameduck)
