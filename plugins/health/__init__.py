"""health: `GET /health` answers 200 OK while the process runs; `lameduck` delays shutdown.

Process-wide like CoreDNS: the last `health` line wins. The HTTP server is shared per address and
survives reloads; on SIGTERM the lameduck sleep runs before the DNS listeners stop, while `/health`
keeps answering.
"""

from __future__ import annotations

import trio

from pycoredns.log import plugin_logger
from pycoredns.plugin import ConfigError, Controller
from pycoredns.util import format_duration, parse_duration

log = plugin_logger("health")
DEFAULT_ADDRESS = ":8080"


def _ok(method: str, target: str) -> tuple[int, str, bytes]:
    return 200, "text/plain; charset=utf-8", b"OK"


def setup(c: Controller) -> None:
    addr, lameduck = "", 0.0
    for _ in c.occurrences():
        addr = c.address_arg(addr)
        while c.next_block():
            if c.val() != "lameduck":
                raise c.arg_err()
            largs = c.remaining_args()
            if len(largs) != 1:
                raise c.arg_err()
            try:
                lameduck = parse_duration(largs[0])
            except ValueError as e:
                raise ConfigError(f"unable to parse lameduck duration value: '{largs[0]}' : {e}") from None
    addr = addr or DEFAULT_ADDRESS
    # Process-wide: the last health directive in the whole Corefile wins.
    shared = c.instance.__dict__.setdefault("_health", {})
    if shared:
        c.instance.http_routes.remove((shared["addr"], "/health", _ok))
        c.instance.final_shutdown_hooks.remove(shared["hook"])
    c.http_route(addr, "/health", _ok)

    async def lameduck_sleep() -> None:
        if lameduck > 0:
            log.info(f"Going into lameduck mode for {format_duration(lameduck)}")
            await trio.sleep(lameduck)

    shared.update(addr=addr, hook=lameduck_sleep)
    c.on_final_shutdown(lameduck_sleep)
