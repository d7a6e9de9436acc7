"""stats: the setup context in one plugin (DEVELOPERS.md, "The setup context").

    stats [ADDRESS] { zone ZONE }

Counts the queries of its server block per qname and serves them as JSON on `GET /stats` (default
`127.0.0.1:9153`). What it shows, using only `pycoredns.plugin`:

- an HTTP route registered at setup (`c.http_route`); the process serves it while this configuration
  runs and moves it on reload;
- state shared by every block of one configuration, made by a factory (`c.config_state`): one table
  whatever the number of blocks with `stats`;
- a startup hook (`c.on_startup`) that looks up another plugin of the block by name (`c.handler`) once
  the whole block is set up;
- the block's listen addresses (`c.listen_addresses`), read when the route is asked (the ports are
  real once the configuration serves, also for `:0`);
- a task spawned while the configuration runs (`c.spawn`), here to log the first query once.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from pycoredns.log import plugin_logger
from pycoredns.plugin import NEXT, Controller, Request, ResponseWriter, SyncHandler

AFTER = "errors"  # count every query, before any plugin answers it
DEFAULT_ADDRESS = "127.0.0.1:9153"
log = plugin_logger("stats")


class Table:
    """One per configuration: query counts per qname, plus what the startup hooks found."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.blocks: list[tuple[Callable[[], list[tuple[str, str, int]]], bool]] = []  # (addresses, has hello)
        self.logged_first = False

    def route(self, method: str, target: str) -> tuple[int, str, bytes]:
        """GET /stats: the counts, and per listen address whether its block has a `hello` plugin."""
        neighbours = {f"{host}:{port}": has_hello for addresses, has_hello in self.blocks
                      for _transport, host, port in addresses()}
        body = {"counts": self.counts, "neighbours": neighbours}
        return 200, "application/json", json.dumps(body, sort_keys=True).encode()


class Stats(SyncHandler):
    name = "stats"

    def __init__(self, table: Table, c: Controller) -> None:
        self.table = table
        self.c = c  # kept for c.spawn: the controller stays valid while its configuration runs

    def handle(self, req: Request, w: ResponseWriter) -> int:
        self.table.counts[req.name] = self.table.counts.get(req.name, 0) + 1
        if not self.table.logged_first:
            self.table.logged_first = True
            self.c.spawn(self._log_first, req.name)  # a task in the running configuration
        return NEXT

    @staticmethod
    async def _log_first(name: str) -> None:
        log.info(f"first query: {name}")


def setup(c: Controller) -> None:
    address = DEFAULT_ADDRESS
    for _ in c.occurrences(once=True):
        address = c.address_arg(address)
    table = c.config_state("stats", Table)  # the same object for every block of this configuration
    c.http_route(address, "/stats", table.route)  # registering it twice replaces it

    async def look_around() -> None:  # startup: every plugin of every block is set up by now
        table.blocks.append((c.listen_addresses, c.handler("hello") is not None))

    c.on_startup(look_around)
    c.add_handler(Stats(table, c))
