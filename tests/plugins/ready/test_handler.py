"""ready: GET /ready through a running server."""

from __future__ import annotations

from conftest import free_port, http_get, running


async def test_ready_once_every_plugin_is_ready() -> None:
    port = free_port()
    async with running(f". {{\n ready 127.0.0.1:{port}\n whoami\n}}\n"):
        assert await http_get(port, "/ready") == (200, "text/plain; charset=utf-8", b"OK")
