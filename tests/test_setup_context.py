"""The setup context plugins see (`pycoredns.plugin.Controller`): another plugin's handler by name,
hooks, HTTP routes, shared state, spawn, listen addresses. Each case runs a real server."""

from __future__ import annotations

import sys
import types

from conftest import query, running

from pycoredns import directives
from pycoredns.plugin import Controller

_seen: dict[str, object] = {}


def _probe_setup(c: Controller) -> None:
    c.next()
    _seen["during_setup"] = c.handler("whoami")  # whoami comes later in plugin.cfg: not set up yet

    async def link() -> None:
        _seen["at_startup"] = c.handler("whoami")
        _seen["missing"] = c.handler("hosts")

    c.on_startup(link)


_probe = types.ModuleType("ctxtest_probe")
_probe.setup = _probe_setup  # type: ignore[attr-defined]
sys.modules["ctxtest_probe"] = _probe


async def test_handler_by_name_resolves_after_setup() -> None:
    directives.register("ctxtest_probe", _probe, before="whoami")
    _seen.clear()
    async with running(". {\n ctxtest_probe\n whoami\n}\n") as srv:
        assert _seen["during_setup"] is None
        found = _seen["at_startup"]
        assert found is not None and type(found).__name__ == "Whoami" and found.name == "whoami"
        assert _seen["missing"] is None
        r = await query(srv.port(), "example.org", "A")
        assert r.rcode() == 0


class _Seen:
    """What the `ctxtest_state` plugin observed, across configurations of one test."""

    def __init__(self) -> None:
        self.spawn_at_setup: list[bool] = []
        self.served: list[int] = []
        self.blocks: list[object] = []
        self.configs: list[object] = []


_state_seen = _Seen()


def _state_setup(c: Controller) -> None:
    c.next()
    process_counter = c.process_state("ctxtest", lambda: {"loads": 0})
    config = c.config_state("ctxtest", list)
    block = c.block_state("ctxtest", object)
    first = not config
    if first:
        process_counter["loads"] += 1
        c.on_serving(lambda: _state_seen.served.append(process_counter["loads"]))
    config.append(block)
    _state_seen.configs.append(config)
    _state_seen.blocks.append(block)

    async def nothing() -> None:
        pass

    _state_seen.spawn_at_setup.append(c.spawn(nothing))  # not running yet: refused
    c.http_route("127.0.0.1:0", "/gone", lambda method, target: (200, "text/plain", b"x"))
    c.remove_http_route("127.0.0.1:0", "/gone")  # withdrawn during setup: no HTTP server is bound


_state = types.ModuleType("ctxtest_state")
_state.setup = _state_setup  # type: ignore[attr-defined]
sys.modules["ctxtest_state"] = _state


async def test_state_scopes_hooks_and_routes() -> None:
    directives.register("ctxtest_state", _state, before="whoami")
    text = "a.test {\n ctxtest_state\n whoami\n}\nb.test {\n ctxtest_state\n whoami\n}\n"
    async with running(text) as srv:
        assert _state_seen.spawn_at_setup == [False, False]
        assert _state_seen.configs[0] is _state_seen.configs[1]  # one object per configuration
        assert _state_seen.blocks[0] is not _state_seen.blocks[1]  # one per block
        assert _state_seen.served == [1]  # on_serving ran once the configuration served
        assert srv.http == {}  # the withdrawn route bound nothing
        assert await srv.reload()
        assert _state_seen.configs[2] is not _state_seen.configs[0]  # fresh on reload
        assert _state_seen.served == [1, 2]  # the process-wide counter survived the reload
