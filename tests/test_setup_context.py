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
